/**
 * The configuration schema: the single source of truth for every key, its
 * type, its default and its one-line description. The loader, the generated
 * default config (`init`) and the README reference all read from here.
 * Descriptions, old key names and lenient list forms: `key_meta.ts`.
 *
 * @module
 */
import { z } from "zod";
import { parseBandwidth } from "./sizes.ts";
import { parseFreeSpace } from "./free_space.ts";
import { checkJobRules } from "./job_rules.ts";
import { DEFAULT_LOG_FILE, DEFAULT_STATE_DIR, defaultLogFile, defaultStateDir } from "./paths.ts";
import { doc } from "./key_meta.ts";
import {
  argumentText,
  basePathText,
  filePatterns,
  globPatterns,
  isValidCron,
  isValidTimeZone,
  listenAddress,
  nameText,
  pathText,
  refuseOffWord,
  sshOption,
} from "./values.ts";

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

/** One `schedules` entry: when (a cron expression or an interval) and what. */
export const scheduleEntry = z.strictObject({
  cron: z.string().min(1).refine(isValidCron, {
    error: (issue) =>
      `not a cron expression, or one that never comes (31 February): ${
        JSON.stringify(issue.input)
      }; use five fields (minute hour day month weekday), e.g. "0 8 * * *", or six with seconds first`,
  }).optional(),
  every_seconds: z.number().min(1).max(31_536_000).optional(),
  timezone: z.string().refine((zone) => zone === "" || isValidTimeZone(zone), {
    error: (issue) =>
      `unknown time zone ${
        JSON.stringify(issue.input)
      }; use an IANA name such as "America/Santiago"`,
  }).default(""),
  action: z.enum(["rescan", "command", "report", "pause", "resume"]),
  command: z.array(argumentText).default([]),
  timeout_seconds: z.number().positive().max(604_800).optional(),
  nights: z.int().min(1).max(366).optional(),
}).superRefine((entry, ctx) => {
  // A key the action does not take would be ignored: said instead.
  const takenBy = {
    command: ["command"],
    timeout_seconds: ["command"],
    nights: ["rescan", "report"],
  };
  for (const [key, actions] of Object.entries(takenBy)) {
    const given = key === "command"
      ? entry.command.length > 0
      : entry[key as keyof typeof entry] !== undefined;
    if (given && !actions.includes(entry.action)) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `action "${entry.action}" does not take ${key} (only ${
          actions.map((a) => `"${a}"`).join(" and ")
        }): remove it, or change the action`,
      });
    }
  }
  if ((entry.cron === undefined) === (entry.every_seconds === undefined)) {
    ctx.addIssue({
      code: "custom",
      message: 'give either "cron" (e.g. "0 8 * * *") or "every_seconds", not both or neither',
    });
  }
  if (
    entry.action === "command" && (entry.command.length === 0 || entry.command[0].trim() === "")
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["command"],
      message:
        'required for action "command": the program and its arguments, e.g. ["/usr/local/bin/reduce"]',
    });
  }
});

/**
 * Keys that describe one transfer job. At the top level of the file they form
 * a single job, or, next to a `jobs:` list, the defaults every job inherits.
 */
export const jobShape = {
  name: doc(
    z.string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9._-]*$/, "expected ASCII letters, digits, '.', '_' or '-'")
      // A name of dots alone is no name in a URL (the page's buttons), one starting with "-" an
      // option on the command line (`--job`).
      .regex(/^(?![.]*$)(?!-)/, "expected a name that is not only dots and does not start with '-'")
      .optional(),
    "Job name used in logs, the ledger and `status`: up to 64 ASCII letters, digits, `.`, `_` and `-`, not only dots, not starting with `-`. Default: `default`, or `job<N>` in a jobs list.",
    { writtenDefault: "default" },
  ),
  watch_path: doc(
    pathText.min(1),
    "Folder the instrument writes into; watched recursively. Required.",
    { example: "~/data/images" },
  ),
  transfer_method: doc(
    z.enum(["scp", "rsync", "local", "ftp"]).default("scp"),
    "How files travel: `scp`, `rsync`, `ftp` or `local`. `scp` and `rsync` go over SSH, `ftp` is FTP or FTPS (see the `ftp_*` keys), `local` is a copy on this machine or a mounted share.",
  ),
  remote_host: doc(
    nameText.default(""),
    "Destination host name (or `~/.ssh/config` alias for scp and rsync). Required for scp, rsync and ftp; ignored by local. The host only, not a URL: the port goes in `ssh_port` or `ftp_port`, the user in `remote_user`.",
    { example: "processing-server" },
  ),
  remote_user: doc(
    nameText.default(""),
    "Login name on the destination. Empty means the SSH default (your `~/.ssh/config` or local user name), or `anonymous` for ftp.",
  ),
  remote_base_path: doc(
    basePathText.min(1),
    "Destination folder; night folders `YYYYMMDD/` are created inside it. Required. The folder only: a port goes in `ssh_port` or `ftp_port` (`2222:/data` is refused). The server takes it as written: a variable (`$HOME/x`) is refused; with scp and rsync write `~/x` for a folder in the login's home.",
    { example: "/data/incoming/images" },
  ),
  file_patterns: doc(
    filePatterns.min(1).default(DEFAULT_FILE_PATTERNS),
    "Glob patterns of files to send. A pattern without `/` matches the file name in any subfolder; upper and lower case match alike unless `case_sensitive_patterns` is on.",
  ),
  exclude_patterns: doc(
    globPatterns.default([]),
    'Glob patterns of files or folders never sent, even if they match `file_patterns`. A pattern ending in `/` names folders only (`calib/`: every folder named calib, with all below it). A writer\'s temporary names that still match (`~a.fits`, `a.tmp.fits`) go too unless left out here: `["~*", "*.tmp.*"]`.',
  ),
  case_sensitive_patterns: doc(
    z.boolean().default(false),
    "Match `file_patterns` and `exclude_patterns` case-sensitively (`*.fits` then skips `a.FITS`).",
  ),
  symlinks: doc(
    z.enum(["skip", "inside", "follow"]).default("skip"),
    "Symbolic links in the watch folder: `skip`, `inside` or `follow`. `skip` never reads through a link, `inside` sends a link to a file whose real path is inside the watch folder, `follow` sends what any link points to and scans linked folders. Under `skip` and `inside` a file below a folder that is a link is neither sent nor removed, also when the folder became a link after the file was found. Each link is logged once.",
  ),
  stability_window_seconds: doc(
    z.number().min(0).max(3600).default(2),
    "A file is complete when its size and mtime have not changed, and no event arrived for it, for this long. A FITS file whose structure is complete goes as soon as its writer closes it (Linux); see close_shortcut_patterns for other files.",
  ),
  close_shortcut_patterns: doc(
    filePatterns.default([]),
    "Glob patterns of files complete 0.2 s after their writer closes them (Linux). Patterns as in `file_patterns`; such a file skips the rest of the stability window. Only for writers that write a file in one go; never for empty files or FITS files whose structure is incomplete.",
  ),
  growing_patterns: doc(
    filePatterns.default([]),
    "Glob patterns of files sent while they grow (a log, a spectrum written for hours). Patterns as in `file_patterns`; rsync and local send each appended part into the file's temporary copy, which is verified and renamed into place only once the file is complete (stable as any file). Other methods send such files once complete. Needs `resume_partial_hours` above 0. With `after_transfer: delete` or `move`, one its writer still has open waits for the close (Linux; elsewhere, and with `watch_mode: poll`, the start warns).",
  ),
  fits_incomplete_grace_seconds: doc(
    z.number().min(0).max(604800).default(600),
    "How long an incomplete FITS file waits before it is sent anyway. A FITS file whose structure says it is incomplete waits; once it has not changed for this long (or its mtime is that old) it is sent anyway, with a warning that its structure is incomplete. Keep it longer than the longest pause of your writer.",
  ),
  fits_appends_extensions: doc(
    z.boolean().default(false),
    "For writers that close a FITS file and append HDUs later (astropy's `fits.append`): such files wait the stability window. A complete FITS file that HDUs may be appended to (`EXTEND = T`, or extensions already there, unless `NEXTEND` counts exactly those) then waits `stability_window_seconds` after its last change like other files, instead of going as soon as its writer closes it; keep the window above the writer's longest pause. Without it, each closed version is sent (the last one replaces the others).",
  ),
  night_date_source: doc(
    z.enum(["mtime", "now", "fits"]).default("mtime"),
    "Which date names the night folder: `mtime`, `now` or `fits`. `mtime` is the file's mtime, `now` the moment it is found complete, `fits` the FITS `DATE-OBS` header (falling back to mtime). A file sent before keeps its copy's night folder: changed later (its mtime or DATE-OBS now in another night) or sent again, it goes over that copy (a changed one beside it with `after_transfer` delete or move), unless its DATE-OBS says it is a new observation of a later night.",
  ),
  night_rollover_hour: doc(
    z.int().min(0).max(23).default(0),
    "Local hour at which a new night folder begins. With 12, a file from 03:00 goes into the previous evening's folder.",
  ),
  night_timezone: doc(
    z.string().refine((zone) => zone === "" || isValidTimeZone(zone), {
      error: (issue) =>
        `unknown time zone ${
          JSON.stringify(issue.input)
        }; use an IANA name such as "Europe/Berlin", "America/Santiago" or "UTC"`,
    }).default(""),
    'IANA time zone for the night rule, e.g. "America/Santiago"; empty means the system time zone. A TZ holding a POSIX rule such as "<-03>3" is not read: the zone is then UTC, which run, doctor and config validate warn of.',
  ),
  verify_transfer: doc(
    z.union([z.boolean(), z.enum(["none", "size", "checksum"])]).default("checksum"),
    "Check each arrival before it takes its final name: `checksum`, `size` or `none`. `checksum` compares the SHA-256 of both copies, the only check that catches a copy of the right size with wrong bytes. `true` (as the old tool wrote it) means `checksum`, the default; `false` means `none`.",
  ),
  compression: doc(
    z.boolean().default(false),
    "Compress on the wire (`scp -C`, `rsync -z`). FITS data rarely shrinks; leave off on fast links.",
  ),
  remote_sync: doc(
    z.boolean().default(true),
    "scp/rsync: flush the remote file system (`sync -f`) so a file recorded as done survives a power cut on the server. The flush runs before and after each batch's renames. A flush that fails (sync's error, or no `sync` on the server) fails the attempt: the file is not recorded as arrived and is sent again (a copy already renamed into place is replaced by its next copy, never duplicated, unless the daemon restarts in between: then that copy counts as one found there). On a busy server this can cost up to a quarter of a big file's speed (the data must reach the disk before it counts); turn off only for storage that protects written data itself.",
  ),
  resume_partial_hours: doc(
    z.number().min(0).max(8760).default(24),
    "rsync and local: hours an interrupted copy is kept at the destination to be continued. An interrupted copy (a cut link, a killed daemon, a reboot) stays this long, and the next attempt for the file continues it after checking that the part there matches the source; older ones are removed when their folder is next used. 0 turns resuming off (an interrupted copy is removed and sent again from its start).",
  ),
  retry_attempts: doc(
    z.int().min(0).max(1000).default(3),
    "Quick retries after the first failed attempt before a file is marked failed. The daemon then tries a failed file every `retry_max_delay_seconds` until it arrives, or at once with Retry on the status page.",
  ),
  retry_delay_seconds: doc(
    z.number().min(0).max(86400).default(5),
    "Seconds before the first retry. Each further retry waits twice as long (with jitter), up to `retry_max_delay_seconds`.",
  ),
  retry_max_delay_seconds: doc(
    z.number().min(0).max(86400).default(600),
    "Longest wait between two attempts, in seconds, and how often a failed file is tried again after its quick retries.",
  ),
  transfer_timeout_seconds: doc(
    z.number().positive().max(86400).default(300),
    "Seconds a transfer may take before it fails and is tried again. An scp, rsync or ssh call running longer is killed; FTP gives up an upload or download whose data makes no progress this long (a command the server does not answer within a minute, or this where shorter, is given up then); a `local` destination (a share) that does not answer a call this long fails the batch. A batch still running after three times this plus a minute is stopped and tried again. Where a copy starts over (scp, and rsync with `resume_partial_hours: 0`), a file whose upload timed out is given twice as long at its next attempt (up to a day), so a large file on a slow link arrives; rsync and local otherwise continue the copy (`resume_partial_hours`).",
  ),
  max_concurrent_transfers: doc(
    z.int().min(1).max(64).optional(),
    "How many transfers of this job may run at once (2 for ftp unless set: each FTP transfer is a login of its own, and servers often limit logins per client). An FTP server that refuses a login while one is open gets no more at once than it allows. Several SSH channels fill a long-haul link that one cannot.",
    { writtenDefault: 4 },
  ),
  rescan_interval_seconds: doc(
    // A full rescan many times a second keeps a core busy, and finds nothing one a second would
    // not (below 0 is the range's to say).
    z.number().min(0).max(604800).refine((seconds) => seconds <= 0 || seconds >= 1, {
      error: (issue) =>
        `${issue.input} would rescan the whole watch folder more than once a second, keeping a ` +
        "processor busy; give at least 1 (the default is 3600, an hour), or 0 for no periodic " +
        "rescans",
    }).default(3600),
    "Seconds between full rescans of the watch folder, at least 1; 0 turns rescans off. A rescan catches missed events and retries failed files.",
  ),
  watch_mode: doc(
    z.enum(["auto", "events", "poll"]).default("auto"),
    "How the watch folder is watched: `auto`, `events` or `poll`. `auto` uses the system's file events and also polls folders on network and FUSE file systems (NFS, SMB/CIFS, sshfs, 9p...), whose events miss files written by other machines; `events` never polls (such files then wait for the rescan); `poll` only polls, without any watcher.",
  ),
  poll_interval_seconds: doc(
    z.number().min(0.1).max(3600).default(2),
    "Seconds between two polls of a polled watch folder (see `watch_mode`). A poll reads the mtime of every folder and lists only those that changed.",
  ),
  rsync_options: doc(
    z.array(argumentText.min(1)).default([]),
    "Extra arguments appended to every rsync call, e.g. `--bwlimit=50000`. Each item is one argument (`[--bwlimit=50000, --partial]`: several options in one item are refused). With any, every file goes by rsync (small batches no longer go in one call without it). Options that remove files (`--remove-source-files`: sources leave only by `after_transfer`; `--delete\u2026`, which removes the files at the destination not among those sent), send nothing (`--dry-run`, `--existing`), leave some files behind (`--exclude`, `--filter`, `--max-size`: choose files with `file_patterns` and `exclude_patterns`) or change which files go where (`--files-from`, `--relative`) are refused. So are `-e` and `--rsh`, which would replace the ssh command the daemon runs: the port goes in `ssh_port`, other SSH options in `ssh_options`. And so are `--append` and `--checksum-choice=none`, which skip rsync's whole-file checksum that verifies each arrival.",
  ),
  ssh_port: doc(
    z.int().min(1).max(65535).nullable().default(null),
    "SSH port; empty means the `~/.ssh/config` or default port (22).",
  ),
  ssh_identity_file: doc(
    pathText.min(1).nullable().default(null),
    "Private key for SSH; empty means the SSH defaults (`~/.ssh/config`, agent, `~/.ssh/id_*`). It must belong to the daemon's account or root.",
  ),
  ssh_options: doc(
    z.array(sshOption).default([]),
    'Extra OpenSSH options as "Key=Value" (passed as `-o`), e.g. "Ciphers=aes128-gcm@openssh.com"; one per item (several in one are refused). `StrictHostKeyChecking=no` is warned of (the server\'s key would go unchecked): `StrictHostKeyChecking=accept-new` remembers a new server\'s key at the first login. `RemoteCommand`, `RequestTTY=force` and `StdinNull=yes` are refused: every session would run another command, get a terminal that changes its bytes, or lose its input. So are `ForkAfterAuthentication=yes` (calls nobody waits for, left running after a stop) and `ControlMaster`, `ControlPath` and `ControlPersist`: the daemon keeps its own shared connection per destination, opened and closed with the job.',
  ),
  ftp_tls: doc(
    z.enum(["required", "off"]).default("required"),
    "ftp: `required` (FTPS) or `off` (plain FTP). `required` is explicit TLS: `AUTH TLS` before the login, data encrypted too; the server's certificate must be trusted. With `off` password and data travel readable: only on trusted networks.",
  ),
  ftp_port: doc(
    z.int().min(1).max(65535).nullable().default(null),
    "ftp: control port; empty means 21. Data always uses passive mode.",
  ),
  ftp_password_file: doc(
    pathText.min(1).nullable().default(null),
    "ftp: file whose first line is the password; keep it mode 600, owned by the daemon's account or root. Read at each login, never logged.",
  ),
  ftp_password_env: doc(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected an environment variable name")
      .nullable().default(null),
    "ftp: name of the environment variable holding the password (instead of `ftp_password_file`). Never logged.",
  ),
  ftp_ca_file: doc(
    pathText.min(1).nullable().default(null),
    "ftp with TLS: PEM file of the certificate authority to trust. It may be the server's own self-signed certificate; empty means the system's trusted authorities.",
  ),
  on_transfer: doc(
    z.array(argumentText).default([]).refine((argv) => argv.length === 0 || argv[0].trim() !== "", {
      error: 'the first element must name a program, e.g. ["/usr/local/bin/reduce", "--quick"]',
    }),
    "Program run after each verified arrival, as an argument list (no shell). For example `[/usr/local/bin/reduce, --quick]`; the facts come in `IMAGE_TRANSFER_*` environment variables. The program must be allowed to run (see Hooks). Empty: none.",
  ),
  on_failure: doc(
    z.array(argumentText).default([]).refine((argv) => argv.length === 0 || argv[0].trim() !== "", {
      error: 'the first element must name a program, e.g. ["/usr/local/bin/alert"]',
    }),
    "Program run when a file gives up (retries exhausted or not retryable). An argument list like `on_transfer`; `IMAGE_TRANSFER_ERROR` says why. Empty: none.",
  ),
  hook_timeout_seconds: doc(
    z.number().positive().max(86400).default(60),
    "A hook running longer than this is killed and counted as failed.",
  ),
  max_concurrent_hooks: doc(
    z.int().min(1).max(64).default(2),
    "How many hooks of this job may run at once. More wait their turn (transfers never wait for hooks).",
  ),
  after_transfer: doc(
    z.enum(["keep", "delete", "move"]).default("keep"),
    "What happens to a source once it arrived verified: `keep` it, `delete` it, or `move` it into `archive_path`. Only a file whose size and mtime are still those it was sent with is touched, and (Linux, events) none its writer still has open: one seen written and not closed since waits for its close before it is sent, whatever its kind (a FITS file too, whatever its structure says: a cube whose frames follow its header is complete as it is), unless events were lost meanwhile (a burst that overflowed the kernel's queue: its close may have been among them, so the window decides, as for a file a scan found). A job that deletes or moves sources must be the only one watching its folder (another job would lose files it has not sent). A new file under a name such a job sent before (a camera's counter started again) goes beside the earlier one at the destination (`flat_001~2.fits`), never over it. So does the file sent, changed before its clean-up, but for one only grown by HDUs appended to the version sent (astropy's `fits.append` after the close): it replaces its copy.",
  ),
  archive_path: doc(
    pathText.default(""),
    "Folder sources are moved into with `after_transfer: move` (their subfolders kept); must be outside `watch_path`. A source whose name is there already gets a numbered name beside it (`flat_001~2.fits`).",
  ),
  keep_days: doc(
    z.number().min(0).max(36500).default(0),
    "With `after_transfer: delete` or `move`: days a source stays after it arrived. 0: removed right after its arrival; else checked hourly, and removed only while its copy is still at the destination (one missing or cut short there is sent again).",
  ),
  bandwidth_limit: doc(
    z.union([z.string(), z.number()]).default("").refine(
      (value) => parseBandwidth(value) !== undefined,
      {
        error: (issue) =>
          `not a bandwidth: ${
            JSON.stringify(issue.input)
          }; write a number and a unit per second, e.g. "10MB/s", "500KiB/s" or "20Mbit/s" (at least 1KiB/s), or "" or 0 for no limit`,
      },
    ),
    'What this job sends per second at most, e.g. "10MB/s", "500KiB/s", "20Mbit/s"; "" or 0 is no limit. MB = 1000000 bytes, MiB = 1048576; the transfers in flight share it (one alone gets all of it): scp and rsync calls go one at a time, each at the whole limit (see docs/reference.md).',
  ),
  min_free_space: doc(
    z.union([z.string(), z.number()]).default("0").refine(
      (value) => parseFreeSpace(value) !== undefined,
      {
        error: (issue) =>
          `not an amount of free space: ${
            JSON.stringify(issue.input)
          }; write bytes with a unit, e.g. "5 GiB" or "500MB", or a percent of the file system below 100, e.g. "5%"; "0" turns the check off`,
      },
    ),
    'Room kept free at the destination, e.g. "5 GiB", "500MB" or "5%" of its file system; "0" is off. GB = 1000000000 bytes, GiB = 1073741824. Checked before each batch (cached a few seconds); below it the job pauses as for a full destination, and resumes by itself when there is room again. A watch folder whose disk has less than this free is warned about once. Not checked for ftp.',
  ),
  schedules: doc(
    z.array(scheduleEntry).default([]),
    'Timed actions (`rescan`, `command`, `report`, `pause` / `resume`) at `cron` times or every `every_seconds`. Each entry has `cron` ("0 8 * * *"; six fields for seconds) or `every_seconds` (at least 1), an optional `timezone` (IANA; default `night_timezone`, else the system zone) and an `action`: `rescan` (send again what the last `nights` night folders, counted back from tonight\'s (a night dated ahead by a wrong clock is not one of them), miss at the destination, unless not one of their files is there: a destination folder gone or not mounted; then scan the watch folder and retry failed files), `command` (run `command`, an argument list, killed after `timeout_seconds`, default 3600), `report` (a JSON report of the last `nights` night folders in `state_dir/reports/`, where reports are kept 90 days, and a log line), or `pause` / `resume` (a transfer window: no new transfers from a `pause` until the next `resume`).',
  ),
};

/** Keys that apply to the whole daemon, allowed only at the top level. */
export const daemonShape = {
  state_dir: doc(
    pathText.min(1).default(defaultStateDir),
    "Folder of the ledger database. The default becomes `$XDG_STATE_HOME/image-transfer` when XDG_STATE_HOME is set, and `%LOCALAPPDATA%\\image-transfer` on Windows. A folder group or others can write, or that another account than root and the daemon's owns, is refused.",
    { writtenDefault: DEFAULT_STATE_DIR },
  ),
  log_file: doc(
    pathText.superRefine(refuseOffWord).default(defaultLogFile),
    'Rotating log file (10 MB x 5 files); "" turns file logging off. A symbolic link, an existing file that is not a log image-transfer wrote, or a file in a folder group or others can write, or that another account than root and the daemon\'s owns, is refused.',
    { writtenDefault: DEFAULT_LOG_FILE },
  ),
  log_format: doc(
    z.enum(["text", "json"]).default("text"),
    "`text` for people, `json` for one JSON object per line (log file and stderr).",
  ),
  status_listen: doc(
    listenAddress.default("127.0.0.1:8765"),
    'Address of the status page, JSON API and `/metrics` (`HOST:PORT`); "" turns it off. A non-loopback host needs `status_token_file`.',
  ),
  status_token_file: doc(
    pathText.min(1).nullable().default(null),
    "File holding the token the status page asks for (HTTP `Authorization: Bearer`). Required on a non-loopback address, and guards the actions when set. Only its owner may read it (`chmod 600`), the daemon's account or root.",
  ),
  status_tls_cert: doc(
    pathText.min(1).nullable().default(null),
    "PEM certificate (chain) to serve the status page over HTTPS with; set together with `status_tls_key`. Off loopback the token then does not travel in plain text.",
  ),
  status_tls_key: doc(
    pathText.min(1).nullable().default(null),
    "PEM private key of `status_tls_cert`. Only its owner may read it (`chmod 600`), the daemon's account or root.",
  ),
};

/** Schema of one job after inheritance from the top level. */
export const jobSchema = z.strictObject(jobShape).superRefine(checkJobRules, {
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

/** The daemon-wide settings exactly as the schema returns them. */
export type DaemonInput = z.infer<typeof daemonSchema>;

/** Every key the file may contain at the top level. */
export const TOP_LEVEL_KEYS: readonly string[] = [
  ...Object.keys(daemonShape),
  ...Object.keys(jobShape),
  "jobs",
];

/** Every key a `jobs:` entry may contain. */
export const JOB_KEYS: readonly string[] = Object.keys(jobShape);
