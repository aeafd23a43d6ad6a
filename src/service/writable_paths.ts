/**
 * The folders the daemon writes and the paths it reads, from its config. The
 * hardened systemd unit makes the whole file system read-only for the daemon
 * except the folders it writes (`ReadWritePaths=`), so they must name every
 * place it writes; and it gives the daemon a private `/tmp`, which hides any
 * of these paths that lie there.
 *
 * @module
 */
import { posix } from "node:path";
import type { Config } from "../config/types.ts";

/** The folders a daemon writes, in two kinds, and the other paths it reads. */
export interface DaemonFolders {
  /** Its own: `state_dir` (ledger, lock) and the log file's folder (rotation writes next to it). */
  own: string[];
  /**
   * The other folders it writes: the destination of every `local` job and,
   * with `after_transfer: delete` or `move`, the watch folder it removes
   * sources from and the `archive_path` it moves them into.
   */
  written: string[];
  /** The other local paths it reads: watch folders and the files the config names. */
  read: string[];
}

/**
 * Find the folders the daemon of `config` writes, and what else it reads.
 *
 * @param config the loaded config (absolute paths)
 * @returns each kind normalised and without duplicates
 */
export function daemonFolders(config: Config): DaemonFolders {
  const own = [config.state_dir];
  if (config.log_file) own.push(posix.dirname(config.log_file));
  const written: string[] = [];
  const read: string[] = [];
  for (const file of [config.status_token_file, config.status_tls_cert, config.status_tls_key]) {
    if (file) read.push(file);
  }
  for (const job of config.jobs) {
    if (job.transfer_method === "local") written.push(job.remote_base_path);
    if (job.after_transfer === "keep") read.push(job.watch_path);
    else written.push(job.watch_path);
    if (job.after_transfer === "move") written.push(job.archive_path);
    for (const file of [job.ssh_identity_file, job.ftp_password_file, job.ftp_ca_file]) {
      if (file) read.push(file);
    }
  }
  return { own: unique(own), written: unique(written), read: unique(read) };
}

/**
 * The paths among `paths` that a private `/tmp` (systemd's `PrivateTmp=`,
 * which covers `/tmp` and `/var/tmp`) would hide from the daemon.
 *
 * @param paths absolute POSIX paths
 * @returns those in `/tmp` or `/var/tmp`
 */
export function inTmpFolders(paths: string[]): string[] {
  return unique(paths).filter((path) => /^\/(var\/)?tmp(\/|$)/.test(path));
}

/**
 * Merge folder lists for `ReadWritePaths=`: sorted, without duplicates, and
 * without a folder that lies inside another listed one.
 *
 * @param lists absolute POSIX paths
 * @returns the folders to list
 */
export function outermostFolders(...lists: string[][]): string[] {
  const all = unique(lists.flat()).sort();
  return all.filter((path) =>
    !all.some((other) => other !== path && (other === "/" || path.startsWith(`${other}/`)))
  );
}

function unique(paths: string[]): string[] {
  return [...new Set(paths.map((path) => posix.normalize(path).replace(/(.)\/+$/, "$1")))];
}
