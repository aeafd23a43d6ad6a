/**
 * From validated values to what the program uses: local paths made absolute
 * (relative to the config file's folder, `~` expanded), `verify_transfer`
 * named, defaults that depend on the method filled in, each job named.
 *
 * @module
 */
import type { DaemonInput, JobInput } from "./schema.ts";
import type { Config, JobConfig, VerifyMode } from "./types.ts";
import { expandPath, quotedAsWritten } from "./paths.ts";
import { ConfigError } from "../errors.ts";

/**
 * Keys, daemon-wide and per job, naming a file or folder on this machine: a
 * relative one is read against the config file's folder (`run --save-config`
 * makes those given on its command line absolute first). `remote_base_path`
 * is one too, with the `local` method only.
 */
export const LOCAL_PATH_KEYS = [
  "state_dir",
  "log_file",
  "status_token_file",
  "status_tls_cert",
  "status_tls_key",
  "watch_path",
  "ssh_identity_file",
  "archive_path",
  "ftp_password_file",
  "ftp_ca_file",
] as const;

/**
 * `values` with the {@linkcode LOCAL_PATH_KEYS} it has made absolute (`null` and `""`: none,
 * kept); those of job `job`, when given.
 *
 * @throws {ConfigError} naming the key of a path in a home folder that cannot be found
 */
function withLocalPaths<T extends object>(values: T, baseDir: string, job?: string): T {
  const resolved = { ...values } as Record<string, unknown>;
  for (const key of LOCAL_PATH_KEYS) {
    const value = resolved[key];
    if (typeof value === "string" && value !== "") {
      resolved[key] = expandKey(key, value, baseDir, job);
    }
  }
  return resolved as T;
}

/** `expandPath` of the value of `key` (of job `job`), or a ConfigError naming the key. */
function expandKey(key: string, value: string, baseDir: string, job?: string): string {
  try {
    return expandPath(value, baseDir);
  } catch (error) {
    // No HOME (a service started without one): what is wrong is a key, and the fix is in it.
    throw new ConfigError(
      `${key}${job === undefined ? "" : ` of job ${job}`}: ${quotedAsWritten(value)} is in the ` +
        "home folder, which cannot be found (neither HOME nor USERPROFILE is set): write " +
        `${key} as an absolute path`,
      { cause: error },
    );
  }
}

/** The daemon-wide settings with their paths resolved against `baseDir`. */
export function resolveDaemon(
  daemon: DaemonInput,
  baseDir: string,
): Omit<Config, "file" | "jobs"> {
  const { state_dir, log_file, log_format, status_listen } = daemon;
  const { status_token_file, status_tls_cert, status_tls_key } = daemon;
  return withLocalPaths({
    state_dir,
    log_file,
    log_format,
    status_listen,
    status_token_file,
    status_tls_cert,
    status_tls_key,
  }, baseDir);
}

/** The log file `logFile` names, relative to `baseDir`; `""` (no log file) stays `""`. */
export function resolveLogFile(logFile: string, baseDir: string): string {
  return logFile === "" ? "" : expandPath(logFile, baseDir);
}

/** Name one job, map `verify_transfer` and make its local paths absolute. */
export function resolveJob(data: JobInput, name: string, baseDir: string): JobConfig {
  // `true` (the old tool's "yes, verify") is the default check, never a weaker one.
  const verify: VerifyMode = data.verify_transfer === true
    ? "checksum"
    : data.verify_transfer === false
    ? "none"
    : data.verify_transfer;
  const { name: _name, ...rest } = data;
  return withLocalPaths(
    {
      name,
      ...rest,
      verify_transfer: verify,
      max_concurrent_transfers: data.max_concurrent_transfers ??
        (data.transfer_method === "ftp" ? 2 : 4),
      // For scp/rsync this is a path on the remote host: left as written (a leading ~/ included).
      remote_base_path: data.transfer_method === "local"
        ? expandKey("remote_base_path", data.remote_base_path, baseDir, name)
        : data.remote_base_path,
    },
    baseDir,
    name,
  );
}
