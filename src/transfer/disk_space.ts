/**
 * Free space of the file system a folder is on (for `min_free_space`): on
 * this machine with `statfs`, on an SSH destination with `df -Pk` in a
 * remote script. A folder that does not exist yet is measured at its nearest
 * existing parent (the file system it will be created on).
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname, posix } from "node:path";
import { shellQuote } from "./ssh.ts";

/** Room on one file system. */
export interface DiskSpace {
  /** Bytes an unprivileged writer may still use. */
  availableBytes: number;
  /** Size of the file system in bytes. */
  totalBytes: number;
}

/**
 * The space of the file system holding `path` (or its nearest existing
 * parent), or `null` when the system cannot tell (no `statfs` there).
 */
export async function localDiskSpace(path: string): Promise<DiskSpace | null> {
  let folder = path;
  for (;;) {
    try {
      const info = await statfs(folder);
      return { availableBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize };
    } catch (error) {
      const parent = dirname(folder);
      if ((error as { code?: string }).code !== "ENOENT" || parent === folder) return null;
      folder = parent;
    }
  }
}

/**
 * A POSIX `sh` script printing `<total KiB> <available KiB>` of the file
 * system holding `base` (or its nearest existing parent). The fields are
 * found around `df -P`'s capacity column, so a device or mount point with
 * spaces in its name does not shift them.
 */
export function remoteDiskSpaceScript(base: string): string {
  return [
    "LC_ALL=C; export LC_ALL",
    `d=${shellQuote(posix.normalize(base))}`,
    'while [ ! -d "$d" ]; do p=$(dirname -- "$d"); [ "$p" = "$d" ] && break; d=$p; done',
    `df -Pk -- "$d" | awk 'NR > 1 { for (i = 5; i <= NF; i++) if ($i ~ /^[0-9]+%$/) ` +
    `{ print $(i - 3), $(i - 1); exit } }'`,
    "",
  ].join("\n");
}

/** The space a {@linkcode remoteDiskSpaceScript} printed, or `null` for no answer. */
export function parseRemoteDiskSpace(stdout: string): DiskSpace | null {
  const match = stdout.trim().match(/^(\d+) (\d+)$/);
  if (!match) return null;
  return { totalBytes: Number(match[1]) * 1024, availableBytes: Number(match[2]) * 1024 };
}
