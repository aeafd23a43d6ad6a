/**
 * The folders the daemon writes, from its config. The hardened systemd unit
 * makes the whole file system read-only for the daemon except these
 * (`ReadWritePaths=`), so they must name every place it writes.
 *
 * @module
 */
import { posix } from "node:path";
import type { Config } from "../config/types.ts";

/** The folders a daemon writes, in two kinds. */
export interface DaemonFolders {
  /** Its own: `state_dir` (ledger, lock) and the log file's folder (rotation writes next to it). */
  own: string[];
  /** The destination of every `local` job. */
  destinations: string[];
}

/**
 * Find the folders the daemon of `config` writes.
 *
 * @param config the loaded config (absolute paths)
 * @returns its own folders and the local destinations, each normalised and without duplicates
 */
export function daemonFolders(config: Config): DaemonFolders {
  const own = [config.state_dir];
  if (config.log_file) own.push(posix.dirname(config.log_file));
  const destinations = config.jobs.filter((job) => job.transfer_method === "local")
    .map((job) => job.remote_base_path);
  return { own: unique(own), destinations: unique(destinations) };
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
