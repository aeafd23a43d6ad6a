/**
 * The one rule for when two spellings of `remote_base_path` name the same folder, shared by the
 * ledger's destination identity (`ledger/destination_identity.ts`: files sent to one spelling are
 * not sent again to another), the check that two jobs do not send into one folder
 * (`pipeline/destinations_apart.ts`) and the folder scp and rsync write to
 * (`transfer/ssh/endpoint.ts`).
 *
 * Repeated and trailing slashes and `.` segments never change the folder: `/data`, `/data/`,
 * `/data//` and `/data/./` are one. A `..` segment is kept as written where the folder's system
 * resolves it (an FTP server, this machine for `local`): through a link, `/data/link/..` is not
 * `/data`, and taking two folders for one would leave files unsent. scp and rsync write to the
 * path with `..` taken out and `~/` read as the login's home (`remoteBasePath`), so that path is
 * their folder. Where the question is whether two jobs might meet (refused before the start), a
 * `..` is also taken out ({@linkcode mayBeOneFolder}): refusing is the safe side there.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "./types.ts";

/**
 * `path` without repeated or trailing separators and `.` segments, `..` kept; a relative path
 * stays relative (`.` for the folder itself). `windows`: `\` separates too (then the one written
 * between segments), and a drive (`C:`) or network share (`\\server\share`) starts the path.
 */
export function folderSpelling(path: string, windows = false): string {
  const separators = windows ? /[\\/]+/ : /\/+/;
  // A network path (`\\server\share`) starts with two separators, a drive path with `C:`.
  const root = windows
    ? /^(?:[\\/]{2}|[A-Za-z]:[\\/]?|[\\/])/.exec(path)?.[0] ?? ""
    : path.startsWith("/")
    ? "/"
    : "";
  const segments = path.slice(root.length).split(separators)
    .filter((segment) => segment !== "" && segment !== ".");
  const separator = windows ? "\\" : "/";
  const spelled = `${windows ? root.replaceAll("/", "\\") : root}${segments.join(separator)}`;
  return spelled === "" ? "." : spelled;
}

/**
 * The folder scp and rsync write to for `path`: `~` and `~/x` are the login's home and a folder in
 * it (relative: ssh starts there), `..` taken out (the path sent is that one), spelled as
 * {@linkcode folderSpelling} spells it.
 */
export function remoteBasePath(path: string): string {
  const home = path === "~" || path.startsWith("~/") ? `./${path.slice(1)}` : path;
  return folderSpelling(posix.normalize(home === "" ? "." : home));
}

/**
 * The folder `job` sends into, one spelling for each folder: the base path as its method reads it
 * (see the module doc). Host, user and port are not part of it.
 */
export function destinationFolder(job: JobConfig): string {
  const base = job.remote_base_path;
  if (job.transfer_method === "local") return folderSpelling(base, Deno.build.os === "windows");
  if (job.transfer_method === "ftp") return folderSpelling(base);
  return remoteBasePath(base);
}

/**
 * The remote folder of `job` as the check that two jobs do not share one compares it: its
 * {@linkcode destinationFolder} of the trimmed path, with `..` also taken out (a spelling that may
 * be the same folder counts as the same, so two jobs that might meet are refused).
 */
export function mayBeOneFolder(job: JobConfig): string {
  const folder = destinationFolder({ ...job, remote_base_path: job.remote_base_path.trim() });
  return folderSpelling(posix.normalize(folder));
}
