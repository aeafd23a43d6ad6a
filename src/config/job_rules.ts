/**
 * Rules that tie several keys of one job together (a required key that
 * depends on another, keys that exclude each other).
 *
 * @module
 */
import type { z } from "zod";
import { Cron } from "croner";
import type { jobShape } from "./schema.ts";
import { isValidCron, isValidTimeZone, unexpandedLocalPath } from "./values.ts";
import { rsyncOptionsInOne, sshOptionsInOne } from "./several_options.ts";

/** A job's values as its keys' own schemas return them. */
type JobValues = z.output<z.ZodObject<typeof jobShape>>;

/**
 * Add an issue to `ctx` for every rule `job` breaks. Runs even when other
 * keys are wrong (see `jobSchema`), so a value is looked at only when its
 * type is right.
 */
export function checkJobRules(job: JobValues, ctx: z.RefinementCtx): void {
  if (
    job.after_transfer === "move" && typeof job.archive_path === "string" &&
    job.archive_path.trim() === ""
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["after_transfer"],
      message: '"move" needs archive_path: add the folder sources are moved into, e.g. ' +
        '"archive_path: /data/sent"',
    });
  }
  const removes = job.after_transfer === "delete" || job.after_transfer === "move";
  if (removes && (job.verify_transfer === false || job.verify_transfer === "none")) {
    ctx.addIssue({
      code: "custom",
      path: ["after_transfer"],
      message:
        `"${job.after_transfer}" removes sources only once they arrived verified; set verify_transfer to "checksum" or "size"`,
    });
  }
  if (
    Array.isArray(job.growing_patterns) && job.growing_patterns.length > 0 &&
    job.resume_partial_hours === 0
  ) {
    ctx.addIssue({
      code: "custom",
      path: ["growing_patterns"],
      message:
        "needs resume_partial_hours above 0: the parts sent while a file grows are kept as its resumable copy; set resume_partial_hours (e.g. 24) or remove growing_patterns",
    });
  }
  if (job.transfer_method !== "local" && job.remote_host.trim() === "") {
    ctx.addIssue({
      code: "custom",
      path: ["remote_host"],
      message:
        `required when transfer_method is "${job.transfer_method}"; give a host name or ~/.ssh/config alias, or use transfer_method: local`,
    });
  }
  if (
    job.transfer_method === "ftp" && job.ftp_password_file === null &&
    job.ftp_password_env === null && !["", "anonymous"].includes(job.remote_user)
  ) {
    ctx.addIssue({
      code: "custom",
      // At the line of the login that needs it: ftp_password_file is not written.
      path: ["remote_user"],
      message:
        "transfer_method ftp with a remote_user needs a password: give ftp_password_file (a file holding it) or ftp_password_env (a variable holding it)",
    });
  }
  if (job.ftp_password_file !== null && job.ftp_password_env !== null) {
    ctx.addIssue({
      code: "custom",
      path: ["ftp_password_env"],
      message: "give either ftp_password_file or ftp_password_env, not both",
    });
  }
  const ssh = job.transfer_method === "scp" || job.transfer_method === "rsync";
  const host = typeof job.remote_host === "string" ? job.remote_host.trim() : "";
  const notHostOnly = job.transfer_method === "local" ? null : hostWithMore(host, ssh);
  const notExpanded = (key: "remote_host" | "remote_user", what: string): boolean => {
    // Only what can be nothing but a variable: `${NAME}`, or the whole value `$NAME` or `%NAME%`;
    // a $ inside a login is taken as written (`svc$backup`, an Azure FTP login `app\$app`).
    const text = String(job[key] ?? "").trim();
    const variable = /\$\{[A-Za-z_][^}]*\}/.exec(text)?.[0] ??
      /^(\$[A-Za-z_]\w*|%[A-Za-z_]\w*%)$/.exec(text)?.[0];
    if (variable === undefined || job.transfer_method === "local") return false;
    const message = `${variable} is not expanded here (only local paths expand environment ` +
      `variables): write the ${what} itself`;
    ctx.addIssue({ code: "custom", path: [key], message });
    return true;
  };
  if (notExpanded("remote_host", "host")) {
    // Said as such.
  } else if (notHostOnly !== null) {
    ctx.addIssue({ code: "custom", path: ["remote_host"], message: notHostOnly });
  } else if (ssh && (host.startsWith("-") || /[\s@/\\'"`$;&|<>]/.test(host))) {
    ctx.addIssue({
      code: "custom",
      path: ["remote_host"],
      message: "expected a host name, address or ~/.ssh/config alias" +
        (host.includes("@") ? " (the user goes in remote_user)" : ""),
    });
  }
  const unexpandedBase = typeof job.remote_base_path !== "string"
    ? null
    : job.transfer_method === "local"
    ? unexpandedLocalPath(job.remote_base_path)
    : unexpandedRemotePath(job.remote_base_path, ssh);
  if (unexpandedBase !== null) {
    ctx.addIssue({ code: "custom", path: ["remote_base_path"], message: unexpandedBase });
  }
  const portFirst = job.transfer_method === "local" || typeof job.remote_base_path !== "string"
    ? null
    : portBeforeFolder(job.remote_base_path);
  if (portFirst !== null) {
    const { port, folder } = portFirst;
    const written = job.remote_base_path.trim();
    ctx.addIssue({
      code: "custom",
      path: ["remote_base_path"],
      message: `expected the folder only, without the port; write ${ssh ? "ssh" : "ftp"}_port: ` +
        `${port}, remote_base_path: ${folder ?? "<the folder on the server>"} (for a folder ` +
        `of that name in the login's home, ./${written})`,
    });
  }
  const user = typeof job.remote_user === "string" ? job.remote_user.trim() : "";
  if (notExpanded("remote_user", "login name")) {
    // Said as such.
  } else if (ssh && (user.startsWith("-") || /[\s@/\\:'"`$;&|<>]/.test(user))) {
    ctx.addIssue({ code: "custom", path: ["remote_user"], message: "expected a plain login name" });
  }
  const clash = pauseAndResumeTogether(job);
  if (clash !== null) {
    const [earlier, later] = clash;
    const [first, second] = [job.schedules[earlier], job.schedules[later]];
    ctx.addIssue({
      code: "custom",
      path: ["schedules", later, "cron"],
      message: `this ${second.action} comes at the same time as the ${first.action} of ` +
        `schedules[${earlier}].cron (${JSON.stringify(second.cron)} and ` +
        `${JSON.stringify(first.cron)}), so whether transfers stop then is not defined; ` +
        `give the ${second.action} or the ${first.action} another time`,
    });
  }
  if (Array.isArray(job.rsync_options)) {
    for (const [index, why] of refusedRsyncOptions(job.rsync_options)) {
      ctx.addIssue({ code: "custom", path: ["rsync_options", index], message: why });
    }
  }
  if (Array.isArray(job.ssh_options)) {
    for (const [index, option] of job.ssh_options.entries()) {
      const why = typeof option === "string"
        ? sshOptionsInOne(option) ?? sessionChangingOption(option)
        : null;
      if (why !== null) {
        ctx.addIssue({ code: "custom", path: ["ssh_options", index], message: why });
      }
    }
  }
}

/** How many times of each window edge are compared with the other's (years of daily times). */
const EDGE_TIMES_COMPARED = 400;

/**
 * The first `pause` and `resume` cron entries of `job`'s schedules that come at a same time (each
 * in its time zone, both written for it: not one only because the clocks going forward moved one
 * onto the other), as their indexes in order; `null` when none do. Each edge's next
 * {@linkcode EDGE_TIMES_COMPARED} times are looked at in the other, so the rarer of the two is
 * followed for years. An entry that is not valid itself is left to its own message.
 */
function pauseAndResumeTogether(job: JobValues): [number, number] | null {
  if (!Array.isArray(job.schedules)) return null;
  const nightZone = typeof job.night_timezone === "string" ? job.night_timezone : "";
  const edges = job.schedules.flatMap((entry, index) => {
    if (entry?.action !== "pause" && entry?.action !== "resume") return [];
    if (typeof entry.cron !== "string" || !isValidCron(entry.cron)) return [];
    const zone = (typeof entry.timezone === "string" && entry.timezone) || nightZone;
    if (zone !== "" && !isValidTimeZone(zone)) return [];
    return [{
      index,
      pause: entry.action === "pause",
      cron: new Cron(entry.cron, { timezone: zone || undefined, paused: true }),
    }];
  });
  const from = new Date();
  // Only times both are written for: one the clocks going forward move onto the other (a pause
  // at 02:00, the resume at 03:00) has a meaning (see `pipeline/pause_windows.ts`).
  const meet = (a: Cron, b: Cron) =>
    [[a, b], [b, a]].some(([walked, other]) =>
      walked.nextRuns(EDGE_TIMES_COMPARED, from).some((at) => walked.match(at) && other.match(at))
    );
  for (const pause of edges.filter((edge) => edge.pause)) {
    for (const resume of edges.filter((edge) => !edge.pause)) {
      if (meet(pause.cron, resume.cron)) {
        return pause.index < resume.index
          ? [pause.index, resume.index]
          : [resume.index, pause.index];
      }
    }
  }
  return null;
}

/**
 * Why an `ssh_options` entry is refused: it changes what an SSH session runs or how its bytes
 * flow (another command, a terminal), so every transfer would fail, said as a lost connection
 * (`RemoteCommand`), a tool's odd complaint (tar refusing a terminal), or calls nobody waits
 * for (`ForkAfterAuthentication`, `StdinNull`); or it takes over the
 * shared connection the daemon keeps per destination (`ControlMaster`, `ControlPath`,
 * `ControlPersist`: ssh takes an option's first value, the job's before the daemon's), whose
 * master would outlive a stop, or clash with the daemon's; `null` for any other.
 */
function sessionChangingOption(option: string): string | null {
  // `Key=value`, `Key = value` or `Key value`, as ssh reads it.
  const [, key = "", given = ""] = /^\s*([^\s=]+)\s*(?:=\s*|\s+)?(.*)$/.exec(option) ?? [];
  const value = given.trim().toLowerCase();
  if (/^control(?:master|path|persist)$/i.test(key)) {
    return `${option}: image-transfer keeps its own shared connection per destination ` +
      "(ControlMaster, ControlPath and ControlPersist are its own), opened and closed with the " +
      "job; one set here would be left running after a stop, or clash with it; remove it";
  }
  const fails = " (every transfer would fail)";
  const why = ({
    remotecommand: value === "none" ? null : "runs a command of its own on the server instead of " +
      `image-transfer's${fails}`,
    requesttty: value !== "force" ? null : "gives each session a terminal, which " +
      `changes the bytes image-transfer sends and reads${fails}`,
    stdinnull: value !== "yes" ? null : "takes away ssh's standard input, which carries " +
      `image-transfer's scripts and copies${fails}`,
    forkafterauthentication: value !== "yes" ? null : "puts ssh in the background once logged " +
      "in: image-transfer could not wait for its calls, and they would be left running after a stop",
  } as Record<string, string | null>)[key.toLowerCase()] ?? null;
  return why === null ? null : `${option} ${why}; remove it`;
}

/**
 * What to write instead of a `remote_host` that holds more than the host: a
 * URL (`ftp://host:2121/data`) or a port (`host:2121`, `[::1]:2121`), for
 * every method, and a user (`obs@host`) or a path for ftp (scp and rsync
 * have their own check); `null` for a plain host.
 */
function hostWithMore(host: string, ssh: boolean): string | null {
  const portKey = ssh ? "ssh_port" : "ftp_port";
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(host);
  const url = isUrl ? URL.parse(host) : null;
  if (isUrl && (url === null || url.hostname === "")) {
    return "expected the host name only, not a URL; write the host in remote_host and the port " +
      `in ${portKey}`;
  }
  if (url !== null) {
    const keys = [`remote_host: ${url.hostname.replace(/^\[(.*)\]$/, "$1")}`];
    if (url.port !== "") keys.push(`${portKey}: ${url.port}`);
    if (url.username !== "") keys.push(`remote_user: ${decodedOrAsIs(url.username)}`);
    if (url.pathname.replace(/\/+$/, "") !== "") {
      keys.push(`remote_base_path: ${decodedOrAsIs(url.pathname)}`);
    }
    return `expected the host name only, not a URL; write ${keys.join(", ")}`;
  }
  // A login before the host (obs@archive:2222) goes in remote_user.
  const withPort = /^(?:([^@]+)@)?\[(.+)\]:(\d+)$/.exec(host) ??
    /^(?:([^@:]+)@)?([^@:]+):(\d+)$/.exec(host);
  if (withPort !== null) {
    const [, user, name, port] = withPort;
    return `expected the host name only, without the port; write remote_host: ${name}, ` +
      `${user === undefined ? "" : `remote_user: ${user}, `}${portKey}: ${port}`;
  }
  if (ssh) return null;
  if (host.includes("@")) {
    return "expected the host name only; the user goes in remote_user " +
      `(remote_host: ${host.slice(host.lastIndexOf("@") + 1)})`;
  }
  if (/[\s/\\]/.test(host)) {
    return "expected a host name or address (no spaces or slashes; the folder goes in remote_base_path)";
  }
  return null;
}

/**
 * Why the remote folder `path` is refused where it holds a variable (`$HOME/x`, `${DATA}`): the
 * server takes it as written and would make a folder named so; what to write instead (`~/x` for
 * the login's home with scp and rsync, a relative path with ftp, whose servers do not expand `~`);
 * `null` for a path without one.
 */
function unexpandedRemotePath(path: string, ssh: boolean): string | null {
  const variable = /\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)/.exec(path)?.[0];
  if (variable === undefined) return null;
  const rest = /^\$(?:HOME|\{HOME\})(?:[/]+(.*))?$/.exec(path.trim());
  const inHome = rest === null
    ? ""
    : ssh
    ? `, or ${rest[1] ? `~/${rest[1]}` : "~"} (~ is the login's home folder there)`
    : `, or ${rest[1] || "."} (a relative path starts in the login's folder; FTP servers do not ` +
      "expand ~ either)";
  return `${variable} is not expanded: the server takes the path as written and would make a ` +
    `folder named "${variable}" there; write the path in full (e.g. /data/incoming)${inHome}`;
}

/**
 * The port and folder a relative remote folder that starts with a port stands for: `2301:/data/x`
 * and `2301/data/x` (as after a host, `host:2301:/data/x`, or in a URL) are port 2301 and
 * `/data/x`, `2301:data/x` the folder `data/x` in the login's home (`2301:` that home); the server
 * would take each for a folder `2301:` or `2301` there. A port alone (`2301`) has no folder
 * (`null`). `null` for any other folder (one written `./2301/x` is one).
 */
export function portBeforeFolder(path: string): { port: number; folder: string | null } | null {
  const found = /^([1-9]\d{0,4})(?:([:/])(.*))?$/.exec(path.trim());
  if (found === null || Number(found[1]) > 65535) return null;
  const [, port, mark, rest] = found;
  if (mark === undefined) return { port: Number(port), folder: null };
  return { port: Number(port), folder: mark === "/" ? `/${rest}` : rest || "." };
}

/** A part of a URL with its %XX escapes decoded; as written where a % starts no escape (`100%`). */
function decodedOrAsIs(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** rsync's long options whose value may follow as the next word (`--exclude PATTERN`). */
const RSYNC_VALUE_OPTIONS = new Set(
  [
    "exclude",
    "include",
    "filter",
    "exclude-from",
    "include-from",
    "files-from",
    "temp-dir",
    "partial-dir",
    "compare-dest",
    "copy-dest",
    "link-dest",
    "backup-dir",
    "suffix",
    "chmod",
    "chown",
    "usermap",
    "groupmap",
    "rsync-path",
    "rsh",
    "log-file",
    "log-file-format",
    "out-format",
    "password-file",
    "bwlimit",
    "timeout",
    "contimeout",
    "modify-window",
    "max-size",
    "min-size",
    "max-delete",
    "block-size",
    "compress-choice",
    "compress-level",
    "checksum-choice",
    "cc",
    "info",
    "debug",
    "iconv",
    "skip-compress",
    "max-alloc",
    "stop-after",
    "stop-at",
  ].map((name) => `--${name}`),
);

/** rsync's short options that take a value (`-f RULE`, or glued: `-B1024`). */
const RSYNC_SHORT_VALUE = "BTMfe@";

/** The first flag of a short-option word (`-avze ssh`, `-B1024`) that takes a value, if any. */
function firstValueFlag(option: string): string | undefined {
  const group = option.startsWith("--") ? "" : option.match(/^-([A-Za-z0-9@]+)/)?.[1] ?? "";
  return [...group].find((flag) => RSYNC_SHORT_VALUE.includes(flag));
}

/** Whether `option` (`--checksum-choice=none` or `--cc none`) turns rsync's file checksum off. */
function uncheckedChoice(name: string, option: string, next: unknown): boolean {
  if (name !== "--checksum-choice" && name !== "--cc") return false;
  const value = option.includes("=") ? option.slice(option.indexOf("=") + 1) : next;
  return typeof value === "string" && value.split(",")[0].trim().toLowerCase() === "none";
}

/**
 * The rsync options of `options` that are refused, by index, with why: one that removes files
 * (sources, or at the destination: `--delete`), sends nothing, leaves some of the files it is
 * given behind (filters and size limits: such a file would never arrive, and be tried again and
 * again), skips the whole-file checksum that verifies an arrival (`--append`,
 * `--checksum-choice=none`), or changes which files go where. The daemon sends its own list of
 * files into its own upload folder, and a source leaves only by `after_transfer`, once it arrived
 * verified. A word that is the value of the option before it (`--bwlimit -n`) is not an option.
 */
function refusedRsyncOptions(options: unknown[]): Array<[number, string]> {
  const refused: Array<[number, string]> = [];
  let valueNext = false;
  for (const [index, option] of options.entries()) {
    if (typeof option !== "string") continue;
    if (valueNext) {
      valueNext = false;
      continue;
    }
    const name = option.split("=")[0];
    if (option.startsWith("--")) valueNext = !option.includes("=") && RSYNC_VALUE_OPTIONS.has(name);
    // Short options together (-avz), up to one that takes a value (-B1024 or -f RULE).
    const short = /^-[A-Za-z0-9@]+$/.test(option) ? option.slice(1) : "";
    const at = [...short].findIndex((flag) => RSYNC_SHORT_VALUE.includes(flag));
    const flags = at < 0 ? short : short.slice(0, at);
    if (at >= 0 && at === short.length - 1) valueNext = true;
    const why = /^--remove-(?:source|sent)-files$/.test(name)
      ? "removes files; a source leaves only by after_transfer, once it arrived verified"
      : /^--(?:del|delete(?:-.*)?)$/.test(name)
      ? "removes files at the destination that are not among those sent (the files that arrived " +
        "there before, and other senders')"
      : /^--(?:dry-run|list-only|only-write-batch|read-batch|existing|ignore-non-existing)$/.test(
          name,
        ) || flags.includes("n")
      ? "sends nothing"
      : /^--(?:exclude|include|filter|exclude-from|include-from|cvs-exclude|max-size|min-size)$/
          .test(name) || /[CF]/.test(flags) || (at >= 0 && short[at] === "f")
      ? "leaves files it is given behind (each would never arrive, and be tried again and again); " +
        "choose the files with file_patterns and exclude_patterns"
      : /^--(?:files-from|from0|relative)$/.test(name) || /[R0]/.test(flags)
      ? "changes which files go where, which image-transfer decides (its own list of files, into " +
        "its own upload folder)"
      : name === "--append" || uncheckedChoice(name, option, options[index + 1])
      ? "skips rsync's whole-file checksum, which verifies each rsync arrival (a kept partial " +
        "copy whose source changed since would arrive with wrong bytes, counted as verified); " +
        "image-transfer continues copies itself, with --append-verify"
      : name === "--rsh" || firstValueFlag(option) === "e"
      ? "replaces the ssh command image-transfer runs (with ssh_port, ssh_identity_file and " +
        "ssh_options, never prompting, only to known hosts); give the port in ssh_port and other " +
        "SSH options in ssh_options"
      : null;
    if (why !== null) refused.push([index, `${option} ${why}; remove it`]);
    else if (rsyncOptionsInOne(option) !== null) refused.push([index, rsyncOptionsInOne(option)!]);
  }
  return refused;
}
