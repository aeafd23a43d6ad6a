/**
 * The configuration schema: the single source of truth for every key, its
 * type, its default and its one-line description. The loader, the generated
 * default config (`init`) and the README reference all read from here.
 *
 * @module
 */
import { z } from "zod";

/** File name patterns that mark an instrument file by default. */
export const DEFAULT_FILE_PATTERNS = [
  "*.fits",
  "*.fit",
  "*.fts",
  "*.FITS",
  "*.FIT",
  "*.FTS",
  "*.fits.fz",
  "*.fits.gz",
];

/** Attach the one-line description shown in `init` output and the README. */
function doc<T extends z.ZodType>(schema: T, description: string): T {
  return schema.meta({ description });
}

const sshOption = z.string().regex(
  /^[A-Za-z][A-Za-z0-9]*=\S.*$/,
  'expected "Key=Value", e.g. "Ciphers=aes128-gcm@openssh.com"',
);

/**
 * Keys that describe one transfer job. At the top level of the file they form
 * a single job, or, next to a `jobs:` list, the defaults every job inherits.
 */
export const jobShape = {
  name: doc(
    z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "expected letters, digits, '.', '_' or '-'")
      .optional(),
    "Job name used in logs, the ledger and `status` (default: `default`, or `job<N>` in a jobs list).",
  ),
  watch_path: doc(
    z.string().min(1),
    "Folder the instrument writes into; watched recursively. Required.",
  ),
  transfer_method: doc(
    z.enum(["scp", "rsync", "local"]).default("scp"),
    "How files travel: `scp` or `rsync` over SSH, or `local` (a copy on this machine or a mounted share).",
  ),
  remote_host: doc(
    z.string().default(""),
    "Destination host name or `~/.ssh/config` alias. Required for scp and rsync; ignored by local.",
  ),
  remote_user: doc(
    z.string().default(""),
    "Login name on the destination; empty means the SSH default (your `~/.ssh/config` or local user name).",
  ),
  remote_base_path: doc(
    z.string().min(1),
    "Destination folder; night folders `YYYYMMDD/` are created inside it. Required.",
  ),
  file_patterns: doc(
    z.array(z.string().min(1)).min(1).default(DEFAULT_FILE_PATTERNS),
    "Glob patterns of files to send. A pattern without `/` matches the file name in any subfolder; upper and lower case match alike unless `case_sensitive_patterns` is on.",
  ),
  exclude_patterns: doc(
    z.array(z.string().min(1)).default([]),
    "Glob patterns of files or folders never sent, even if they match `file_patterns`.",
  ),
  case_sensitive_patterns: doc(
    z.boolean().default(false),
    "Match `file_patterns` and `exclude_patterns` case-sensitively (`*.fits` then skips `a.FITS`).",
  ),
  symlinks: doc(
    z.enum(["skip", "inside", "follow"]).default("skip"),
    "Symbolic links in the watch folder: `skip` (never read through a link), `inside` (send a link to a file whose real path is inside the watch folder), `follow` (send what any link points to, and scan linked folders). Each link is logged once.",
  ),
  stability_window_seconds: doc(
    z.number().min(0).max(3600).default(2),
    "A file is complete when its size and mtime have not changed, and no event arrived for it, for this long. A FITS file whose structure is complete goes as soon as its writer closes it (Linux); see close_shortcut_patterns for other files.",
  ),
  close_shortcut_patterns: doc(
    z.array(z.string().min(1)).default([]),
    "Glob patterns (as in `file_patterns`) of files that count as complete 0.2 s after their writer closes them (Linux), instead of after the full stability window. Only for writers that write a file in one go; never for empty files or FITS files whose structure is incomplete.",
  ),
  fits_incomplete_grace_seconds: doc(
    z.number().min(0).max(604800).default(600),
    "A FITS file whose structure says it is incomplete waits; once it has not changed for this long (or its mtime is that old) it is sent anyway, with a warning that it is truncated. Keep it longer than the longest pause of your writer.",
  ),
  night_date_source: doc(
    z.enum(["mtime", "now", "fits"]).default("mtime"),
    "Which date names the night folder: the file's `mtime`, the moment it is found complete (`now`), or the FITS `DATE-OBS` header (`fits`, falling back to mtime).",
  ),
  night_rollover_hour: doc(
    z.int().min(0).max(23).default(0),
    "Local hour at which a new night folder begins; with 12, a file from 03:00 goes into the previous evening's folder.",
  ),
  night_timezone: doc(
    z.string().refine((zone) => zone === "" || isValidTimeZone(zone), {
      error: (issue) =>
        `unknown time zone ${
          JSON.stringify(issue.input)
        }; use an IANA name such as "Europe/Berlin", "America/Santiago" or "UTC"`,
    }).default(""),
    'IANA time zone for the night rule, e.g. "America/Santiago"; empty means the system time zone.',
  ),
  verify_transfer: doc(
    z.union([z.boolean(), z.enum(["none", "size", "checksum"])]).default("checksum"),
    "Check each arrival before it takes its final name: `checksum` (SHA-256 of both copies; the only check that catches a copy of the right size with wrong bytes), `size`, or `none`. `true` means `size`, `false` means `none`.",
  ),
  compression: doc(
    z.boolean().default(false),
    "Compress on the wire (`scp -C`, `rsync -z`). FITS data rarely shrinks; leave off on fast links.",
  ),
  remote_sync: doc(
    z.boolean().default(true),
    "scp/rsync: flush the remote file system before and after each batch's renames (`sync -f`), so a file recorded as done survives a power cut on the server. On a busy server this can cost up to a quarter of a big file's speed (the data must reach the disk before it counts); turn off only for storage that protects written data itself.",
  ),
  retry_attempts: doc(
    z.int().min(0).max(1000).default(3),
    "Retries after the first failed attempt before a file is marked failed (it is tried again at the next start-up or rescan).",
  ),
  retry_delay: doc(
    z.number().min(0).max(86400).default(5),
    "Seconds before the first retry; each further retry waits twice as long (with jitter), up to `retry_max_delay_seconds`.",
  ),
  retry_max_delay_seconds: doc(
    z.number().min(0).max(86400).default(300),
    "Longest wait between two attempts, in seconds.",
  ),
  transfer_timeout_seconds: doc(
    z.number().positive().max(86400).default(300),
    "A transfer command running longer than this is killed and counts as a retryable failure.",
  ),
  max_concurrent_transfers: doc(
    z.int().min(1).max(64).default(2),
    "How many transfers of this job may run at once.",
  ),
  rescan_interval_seconds: doc(
    z.number().min(0).max(604800).default(3600),
    "Seconds between full rescans of the watch folder (catches missed events, retries failed files); 0 turns rescans off.",
  ),
  rsync_options: doc(
    z.array(z.string().min(1)).default([]),
    "Extra arguments appended to every rsync call, e.g. `--bwlimit=50000`.",
  ),
  ssh_port: doc(
    z.int().min(1).max(65535).nullable().default(null),
    "SSH port; empty means the `~/.ssh/config` or default port (22).",
  ),
  ssh_identity_file: doc(
    z.string().min(1).nullable().default(null),
    "Private key for SSH; empty means the SSH defaults (`~/.ssh/config`, agent, `~/.ssh/id_*`).",
  ),
  ssh_options: doc(
    z.array(sshOption).default([]),
    'Extra OpenSSH options as "Key=Value" (passed as `-o`), e.g. "Ciphers=aes128-gcm@openssh.com".',
  ),
};

/** Keys that apply to the whole daemon, allowed only at the top level. */
export const daemonShape = {
  state_dir: doc(
    z.string().min(1).optional(),
    "Folder of the ledger database (default `~/.local/state/image-transfer`, `%LOCALAPPDATA%\\image-transfer` on Windows).",
  ),
  log_file: doc(
    z.string().optional(),
    'Rotating log file (10 MB x 5 files); default `~/logs/image_transfer.log`, "" turns file logging off.',
  ),
  log_format: doc(
    z.enum(["text", "json"]).default("text"),
    "`text` for people, `json` for one JSON object per line (log file and stderr).",
  ),
  status_listen: doc(
    z.string().regex(
      /^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/,
      'expected "HOST:PORT", e.g. "127.0.0.1:8765", or "" for off',
    ).default("127.0.0.1:8765"),
    'Address of the status page, JSON API and `/metrics` (`HOST:PORT`); "" turns it off. A non-loopback host needs `status_token_file`.',
  ),
  status_token_file: doc(
    z.string().min(1).nullable().default(null),
    "File holding the token the status page asks for (HTTP `Authorization: Bearer`); required on a non-loopback address, and guards the actions when set.",
  ),
};

/** Schema of one job after inheritance from the top level. */
export const jobSchema = z.strictObject(jobShape).superRefine((job, ctx) => {
  if (job.transfer_method !== "local" && job.remote_host.trim() === "") {
    ctx.addIssue({
      code: "custom",
      path: ["remote_host"],
      message:
        `required when transfer_method is "${job.transfer_method}"; give a host name or ~/.ssh/config alias, or use transfer_method: local`,
    });
  }
}, {
  // Report a missing remote_host together with every other problem, unless the
  // two keys it depends on are themselves wrong.
  when: (payload) =>
    !payload.issues.some((issue) =>
      issue.path?.[0] === "transfer_method" || issue.path?.[0] === "remote_host"
    ),
});

/** A job exactly as the schema returns it. */
export type JobInput = z.infer<typeof jobSchema>;

/** Schema of the daemon-wide keys. */
export const daemonSchema = z.object(daemonShape);

/** Every key the file may contain at the top level. */
export const TOP_LEVEL_KEYS: readonly string[] = [
  ...Object.keys(daemonShape),
  ...Object.keys(jobShape),
  "jobs",
];

/** Every key a `jobs:` entry may contain. */
export const JOB_KEYS: readonly string[] = Object.keys(jobShape);

/** Whether `zone` is a time zone the runtime knows. */
export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** One documented key, for the generated config and the README reference. */
export interface KeyDoc {
  key: string;
  description: string;
  /** The default as it would be written in YAML, or `undefined` when required. */
  defaultValue: unknown;
  required: boolean;
  scope: "job" | "daemon";
}

/** List every key with its description and default, in schema order. */
export function describeKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  const add = (shape: Record<string, z.ZodType>, scope: "job" | "daemon") => {
    for (const [key, schema] of Object.entries(shape)) {
      const parsed = schema.safeParse(undefined);
      const meta = schema.meta() as { description?: string } | undefined;
      out.push({
        key,
        description: meta?.description ?? "",
        defaultValue: parsed.success ? parsed.data : undefined,
        required: !parsed.success,
        scope,
      });
    }
  };
  add(jobShape, "job");
  add(daemonShape, "daemon");
  return out;
}
