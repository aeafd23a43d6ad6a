/**
 * Keys only some transfer methods use (the SSH ones, rsync's, FTP's, the remote login's), written
 * for a job that sends by another: such a key is not used, so each is said at the start (`run`,
 * `config validate`, `doctor`, a reload) with its file and line, rather than silently ignored. A
 * key left empty (`ssh_port:`, `ssh_options: []`, `remote_user: ""`) says nothing and is not said. A top-level key next
 * to a `jobs:` list is a default: said only when no job that inherits it uses it.
 *
 * @module
 */
import { jobKeyPlace, keyPlace } from "./key_lines.ts";
import { writtenJobKeys } from "./jobs.ts";
import type { Config, JobConfig } from "./types.ts";

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

/** Where a key of the other kind of login is meant to go. */
const INSTEAD: Readonly<Record<string, string>> = {
  ssh_port: "an FTP server's port goes in ftp_port",
  ftp_port: "an SSH server's port goes in ssh_port",
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

/** What to say of each method-only key written for a job whose method does not use it. */
export function keysOfOtherMethods(config: Config): string[] {
  const written = writtenJobKeys(config.file);
  if (written === null) return [];
  const notes: string[] = [];
  const unused = (key: string, job: JobConfig) =>
    ignoredByMethod(key, (job as unknown as Record<string, unknown>)[key], job.transfer_method) !==
      null;
  const why = (key: string, methods: string) => {
    const instead = INSTEAD[key] ? ` (${INSTEAD[key]})` : "";
    return `is ignored: ${onlyThose(METHOD_KEYS.get(key)!)}, and ${methods}${instead}; remove it`;
  };
  const listed = written.entries.length > 0;
  config.jobs.forEach((job, index) => {
    const own = listed ? written.entries[index] ?? new Set<string>() : written.top;
    for (const key of own) {
      if (METHOD_KEYS.has(key) && unused(key, job)) {
        notes.push(
          `${jobKeyPlace(config, index, key)} ` +
            why(key, `this job sends by ${job.transfer_method}`),
        );
      }
    }
  });
  if (!listed) return notes;
  // A top-level default: said when every job that inherits it sends by a method not using it.
  for (const key of written.top) {
    if (!METHOD_KEYS.has(key)) continue;
    const heirs = config.jobs.filter((_, index) => !written.entries[index]?.has(key));
    if (heirs.length === 0 || !heirs.every((job) => unused(key, job))) continue;
    const methods = [...new Set(heirs.map((job) => job.transfer_method))].join(" and ");
    notes.push(
      `${keyPlace(config.file, -1, [key])}: ${key} at the top level ` +
        why(key, `the jobs that inherit it send by ${methods}`),
    );
  }
  return notes;
}
