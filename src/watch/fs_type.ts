/**
 * The file system a watch folder is on, and whether its events can be
 * trusted. The kernel reports events only for changes made through this
 * machine: on a network or FUSE file system (NFS, SMB/CIFS, sshfs, 9p...)
 * a file written by another machine, or below the FUSE layer, raises none.
 *
 * - Linux: `statfs` gives the file system's magic number; the mount table
 *   (`/proc/self/mountinfo`, the longest mount point that holds the folder's
 *   real path) gives its name and source, e.g. `nfs4 server:/data` or
 *   `fuse.sshfs`.
 * - Windows: a UNC path (`\\server\share\...`) is a network share. A mapped
 *   drive letter cannot be told from a local disk without asking the system
 *   for more than reading files: set `watch_mode: poll` for one.
 * - macOS and others: not detected (the runtime gives no file system name);
 *   set `watch_mode: poll` for a network volume.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { statfs } from "node:fs/promises";

/** What is known of the file system of a folder. */
export interface FileSystemInfo {
  /** Its name, e.g. `ext4`, `nfs4`, `cifs`, `fuse.sshfs`, `unc`; `unknown` when it cannot be told. */
  type: string;
  /** Whether its events may miss changes made elsewhere (network, FUSE). */
  remote: boolean;
  /** The mount's source where known (`server:/export`, `//server/share`), else `null`. */
  source: string | null;
  /** The statfs magic number (Linux), for noticing a remount or an unmount; else `null`. */
  magic: number | null;
}

/** Linux statfs magic numbers of file systems whose events miss changes made elsewhere. */
const REMOTE_MAGIC = new Map<number, string>([
  [0x6969, "nfs"],
  [0x517b, "smb"],
  [0xff534d42, "cifs"],
  [0xfe534d42, "smb3"],
  [0x65735546, "fuse"],
  [0x01021997, "9p"],
  [0x00c36400, "ceph"],
  [0x5346414f, "afs"],
  [0x6b414653, "afs"],
  [0x73757245, "coda"],
  [0x564c, "ncp"],
  [0x0bd00bd0, "lustre"],
  [0x47504653, "gpfs"],
  [0xaad7aaea, "panfs"],
  [0x786f4256, "vboxsf"],
  [0x20030528, "orangefs"],
  [0x01161970, "gfs2"],
  [0x7461636f, "ocfs2"],
]);

/** Mount table names of remote file systems (when the magic number is not in the list). */
const REMOTE_NAMES =
  /^(nfs\d?|cifs|smb\d?|smbfs|9p|virtiofs|ceph|glusterfs|afs|lustre|gpfs|beegfs|fuse(\..+)?)$/;

/** Local file systems served through FUSE (a disk of this machine). */
const LOCAL_FUSE = /^(fuseblk|fuse\.(ntfs-3g|exfat|ntfs|ntfs3|apfs-fuse))$/;

/** One line of the mount table. */
interface Mount {
  mountPoint: string;
  type: string;
  source: string;
}

/**
 * The file system of `path` (an existing folder); never throws (an unknown
 * type counts as local).
 */
export function fileSystemOf(path: string): FileSystemInfo {
  if (Deno.build.os === "windows") return windowsFileSystem(path);
  if (Deno.build.os !== "linux") {
    return { type: "unknown", remote: false, source: null, magic: null };
  }
  let magic: number | null = null;
  try {
    magic = Number(statfsSync(path).type);
  } catch {
    // No statfs: the mount table alone decides.
  }
  const mount = mountOf(path);
  const byMagic = magic === null ? undefined : REMOTE_MAGIC.get(magic);
  const type = mount?.type ?? byMagic ?? (magic === null ? "unknown" : `0x${magic.toString(16)}`);
  const remote = !LOCAL_FUSE.test(type) && (byMagic !== undefined || REMOTE_NAMES.test(type));
  return { type, remote, source: mount?.source ?? null, magic };
}

/** The statfs magic number of `path` now (Linux), or `null`; rejects when it cannot be read. */
export async function magicOf(path: string): Promise<number | null> {
  if (Deno.build.os !== "linux") return null;
  return Number((await statfs(path)).type);
}

/** A UNC path is a network share; anything else is taken as local (see the module doc). */
function windowsFileSystem(path: string): FileSystemInfo {
  const unc = /^[\\/]{2}(?![?.][\\/])([^\\/]+)[\\/]+([^\\/]+)/.exec(path) ??
    /^[\\/]{2}\?[\\/]UNC[\\/]([^\\/]+)[\\/]+([^\\/]+)/i.exec(path);
  if (unc) return { type: "smb", remote: true, source: `\\\\${unc[1]}\\${unc[2]}`, magic: null };
  return { type: "unknown", remote: false, source: null, magic: null };
}

/** The mount that holds `path` (Linux), from `/proc/self/mountinfo`; `undefined` if unreadable. */
function mountOf(path: string): Mount | undefined {
  let real: string;
  let table: string;
  try {
    real = Deno.realPathSync(path);
    table = Deno.readTextFileSync("/proc/self/mountinfo");
  } catch {
    return undefined;
  }
  let best: Mount | undefined;
  for (const line of table.split("\n")) {
    const mount = parseMountInfoLine(line);
    if (!mount || !holds(mount.mountPoint, real)) continue;
    // Later lines are mounted on top of earlier ones at the same point.
    if (!best || mount.mountPoint.length >= best.mountPoint.length) best = mount;
  }
  return best;
}

/**
 * One line of `/proc/self/mountinfo`: `id parent major:minor root mount-point
 * options [optional fields] - type source super-options`, spaces and
 * backslashes in paths written as octal escapes.
 */
export function parseMountInfoLine(line: string): Mount | undefined {
  const fields = line.split(" ");
  const dash = fields.indexOf("-", 6);
  if (fields.length < 7 || dash < 0 || dash + 2 >= fields.length) return undefined;
  const unescape = (text: string) =>
    text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return {
    mountPoint: unescape(fields[4]),
    type: unescape(fields[dash + 1]),
    source: unescape(fields[dash + 2]),
  };
}

function holds(mountPoint: string, path: string): boolean {
  if (mountPoint === "/") return true;
  return path === mountPoint || path.startsWith(`${mountPoint}/`);
}
