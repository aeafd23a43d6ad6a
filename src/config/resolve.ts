/**
 * From validated values to what the program uses: local paths made absolute
 * (relative to the config file's folder, `~` expanded), `verify_transfer`
 * named, defaults that depend on the method filled in, each job named.
 *
 * @module
 */
import type { DaemonInput, JobInput } from "./schema.ts";
import type { Config, JobConfig, VerifyMode } from "./types.ts";
import { expandPath } from "./paths.ts";

/** The daemon-wide settings with their paths resolved against `baseDir`. */
export function resolveDaemon(
  daemon: DaemonInput,
  baseDir: string,
): Omit<Config, "file" | "jobs"> {
  return {
    state_dir: expandPath(daemon.state_dir, baseDir),
    log_file: resolveLogFile(daemon.log_file, baseDir),
    log_format: daemon.log_format,
    status_listen: daemon.status_listen,
    status_token_file: daemon.status_token_file === null
      ? null
      : expandPath(daemon.status_token_file, baseDir),
    status_tls_cert: daemon.status_tls_cert === null
      ? null
      : expandPath(daemon.status_tls_cert, baseDir),
    status_tls_key: daemon.status_tls_key === null
      ? null
      : expandPath(daemon.status_tls_key, baseDir),
  };
}

/** The log file `logFile` names, relative to `baseDir`; `""` (no log file) stays `""`. */
export function resolveLogFile(logFile: string, baseDir: string): string {
  return logFile === "" ? "" : expandPath(logFile, baseDir);
}

/** Name one job, map `verify_transfer` and make its local paths absolute. */
export function resolveJob(data: JobInput, name: string, baseDir: string): JobConfig {
  const verify: VerifyMode = data.verify_transfer === true
    ? "size"
    : data.verify_transfer === false
    ? "none"
    : data.verify_transfer;
  const { name: _name, ...rest } = data;
  return {
    name,
    ...rest,
    verify_transfer: verify,
    max_concurrent_transfers: data.max_concurrent_transfers ??
      (data.transfer_method === "ftp" ? 2 : 4),
    watch_path: expandPath(data.watch_path, baseDir),
    // For scp/rsync this is a path on the remote host: left as written (a leading ~/ included).
    remote_base_path: data.transfer_method === "local"
      ? expandPath(data.remote_base_path, baseDir)
      : data.remote_base_path,
    ssh_identity_file: data.ssh_identity_file === null
      ? null
      : expandPath(data.ssh_identity_file, baseDir),
    archive_path: data.archive_path === "" ? "" : expandPath(data.archive_path, baseDir),
    ftp_password_file: data.ftp_password_file === null
      ? null
      : expandPath(data.ftp_password_file, baseDir),
    ftp_ca_file: data.ftp_ca_file === null ? null : expandPath(data.ftp_ca_file, baseDir),
  };
}
