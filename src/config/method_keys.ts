/**
 * Keys a job written with them ignores, each said at the start (`run`, `config validate`,
 * `doctor`, a reload) with its file and line, rather than silently ignored: those only some
 * transfer methods use (the SSH ones, rsync's, FTP's, the remote login's) in a job that sends by
 * another, and the clean-up keys (`keep_days`, `archive_path`) in a job whose `after_transfer` does
 * not use them (`keep`, the default: nothing is ever removed). A key left empty (`ssh_port:`,
 * `ssh_options: []`, `remote_user: ""`, `keep_days: 0`, `archive_path: ""`) says nothing and is
 * not said. A top-level key next to a `jobs:` list is a default: said only when no job that
 * inherits it uses it. So is a `retry_delay_seconds` above `retry_max_delay_seconds`, which wins.
 *
 * @module
 */
import { jobKeyPlace, keyPlace } from "./key_lines.ts";
import { writtenJobKeys } from "./jobs.ts";
import { COMMAND_LINE_CONFIG, type Config, type JobConfig } from "./types.ts";

type Method = JobConfig["transfer_method"];

const SSH: readonly Method[] = ["scp", "rsync"];
const FTP: readonly Method[] = ["ftp"];
const REMOTE: readonly Method[] = ["scp", "rsync", "ftp"];

/** The keys only some methods use, and those methods. */
export const METHOD_KEYS: ReadonlyMap<string, readonly Method[]> = new Map([
  ["remote_host", REMOTE],
  ["remote_user", REMOTE],
  ["ssh_port", SSH],
  ["ssh_identity_file", SSH],
  ["ssh_options", SSH],
  ["remote_sync", SSH],
  ["rsync_options", ["rsync"]],
  ["ftp_tls", FTP],
  ["ftp_port", FTP],
  ["ftp_password_file", FTP],
  ["ftp_password_env", FTP],
  ["ftp_ca_file", FTP],
]);

/**
 * Where a key of the other kind of login is meant to go, said only to a job that sends by that
 * other kind (an `ssh_port` in a `local` job is not a misplaced FTP port).
 */
const INSTEAD: Readonly<Record<string, { methods: readonly Method[]; said: string }>> = {
  ssh_port: { methods: FTP, said: "an FTP server's port goes in ftp_port" },
  ftp_port: { methods: SSH, said: "an SSH server's port goes in ssh_port" },
};

/**
 * Which methods use `key`, said as `only scp and rsync use it`, where `key` set to `value` (not
 * empty) is one a job sending by `method` ignores; else `null`.
 */
export function ignoredByMethod(key: string, value: unknown, method: string): string | null {
  const only = METHOD_KEYS.get(key);
  const empty = value === null || value === undefined || value === "" ||
    (Array.isArray(value) && value.length === 0);
  if (only === undefined || empty || (only as readonly string[]).includes(method)) return null;
  return onlyThose(only);
}

/** `only scp and rsync use it`, `only scp, rsync and ftp use it`, `only rsync uses it`. */
function onlyThose(methods: readonly Method[]): string {
  const said = methods.length > 1
    ? `${methods.slice(0, -1).join(", ")} and ${methods.at(-1)} use`
    : `${methods[0]} uses`;
  return `only ${said} it`;
}

/** The clean-up keys, and the `after_transfer` settings that use each. */
const CLEANUP_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ["keep_days", ["delete", "move"]],
  ["archive_path", ["move"]],
]);

/** What a job does with its sources once sent, by its `after_transfer` (what jobs do: `many`). */
function does(after: string, many: boolean): string {
  return `${after}${many ? "" : "s"} ${many ? "their" : "its"} sources (after_transfer: ${after}` +
    `${after === "keep" ? ", the default" : ""})`;
}

/** Why a job that `does` (see {@linkcode does}) ignores the clean-up `key` set to `value`. */
function cleanupWhy(key: string, value: unknown, does: string): string {
  if (key === "archive_path") {
    return "only after_transfer: move uses it (sources are moved into it once they arrived " +
      `verified), and ${does}; to move them there, set after_transfer: move, else remove it`;
  }
  return "only after_transfer: delete and move use it (the days a source stays after it " +
    `arrived), and ${does}, so no source is ever removed; to remove sources ${value} days ` +
    "after they arrived, set after_transfer: delete (or move, into archive_path), else remove it";
}

/** Whether `job` ignores its `key`, set (not empty): a method-only or clean-up key it does not use. */
function ignores(key: string, job: JobConfig): boolean {
  const value = (job as unknown as Record<string, unknown>)[key];
  if (METHOD_KEYS.has(key)) return ignoredByMethod(key, value, job.transfer_method) !== null;
  const uses = CLEANUP_KEYS.get(key);
  return uses !== undefined && value !== 0 && value !== "" && !uses.includes(job.after_transfer);
}

/** What to say of each method-only or clean-up key written for a job that does not use it. */
export function ignoredJobKeys(config: Config): string[] {
  // A run without a config file: a clean-up key set at all came from --set (its method's keys
  // are refused there).
  const written = config.file === COMMAND_LINE_CONFIG
    ? { top: new Set(CLEANUP_KEYS.keys()), entries: [] }
    : writtenJobKeys(config.file);
  if (written === null) return [];
  const notes: string[] = [];
  const why = (key: string, jobs: JobConfig[], who: string) => {
    if (CLEANUP_KEYS.has(key)) {
      const value = (jobs[0] as unknown as Record<string, unknown>)[key];
      const many = who !== "this job";
      const what = [...new Set(jobs.map((job) => does(job.after_transfer, many)))];
      return `is ignored: ${cleanupWhy(key, value, `${who} ${what.join(" or ")}`)}`;
    }
    const used = [...new Set(jobs.map((job) => job.transfer_method))];
    const methods = used.join(" and ");
    const hint = INSTEAD[key];
    const instead = hint && used.some((method) => hint.methods.includes(method))
      ? ` (${hint.said})`
      : "";
    return `is ignored: ${onlyThose(METHOD_KEYS.get(key)!)}, and ${who} send${
      jobs.length > 1 || who !== "this job" ? "" : "s"
    } by ${methods}${instead}; remove it`;
  };
  const listed = written.entries.length > 0;
  config.jobs.forEach((job, index) => {
    const own = listed ? written.entries[index] ?? new Set<string>() : written.top;
    for (const key of own) {
      if (ignores(key, job)) {
        notes.push(`${jobKeyPlace(config, index, key)} ${why(key, [job], "this job")}`);
      }
    }
  });
  if (!listed) return notes;
  // A top-level default: said when every job that inherits it does not use it.
  for (const key of written.top) {
    if (!METHOD_KEYS.has(key) && !CLEANUP_KEYS.has(key)) continue;
    const heirs = config.jobs.filter((_, index) => !written.entries[index]?.has(key));
    if (heirs.length === 0 || !heirs.every((job) => ignores(key, job))) continue;
    notes.push(
      `${keyPlace(config.file, -1, [key])}: ${key} at the top level ` +
        why(key, heirs, "the jobs that inherit it"),
    );
  }
  return notes;
}

/**
 * Jobs whose written `retry_delay_seconds` is above their `retry_max_delay_seconds`: the longest
 * wait wins (every retry waits at most that long, the first one too; the delay still sets when a
 * destination that cannot be reached is first tried again).
 */
export function retryDelaysAboveMax(config: Config): string[] {
  const written = writtenJobKeys(config.file);
  if (written === null) return [];
  return config.jobs.flatMap((job, index) => {
    const key = "retry_delay_seconds";
    const [delay, most] = [job.retry_delay_seconds, job.retry_max_delay_seconds];
    if (delay <= most || !(written.entries[index]?.has(key) || written.top.has(key))) return [];
    return [
      `${jobKeyPlace(config, index, key)} (${delay}) is above retry_max_delay_seconds (${most}), ` +
      `which wins: every retry waits at most ${most} s, the first one too; lower ` +
      `retry_delay_seconds to ${most} or less, or raise retry_max_delay_seconds`,
    ];
  });
}
