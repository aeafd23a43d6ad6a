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
import { buildScript, call, parseResults, type RemoteScript } from "./ssh/remote_script.ts";

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
 * The remote script (`remote/disk_space.sh`) asking for the space of the file
 * system holding `base` (or its nearest existing parent).
 */
export function remoteDiskSpaceScript(base: string): RemoteScript {
  return buildScript("disk_space", [call("disk_space", posix.normalize(base))]);
}

/** The space a {@linkcode remoteDiskSpaceScript} reported, or `null` for no answer. */
export function parseRemoteDiskSpace(script: RemoteScript, stdout: string): DiskSpace | null {
  const result = parseResults(stdout, script.marker).find((r) => r.word === "disk-space");
  const match = result?.detail.match(/^(\d+) (\d+)$/);
  if (!match) return null;
  return { totalBytes: Number(match[1]) * 1024, availableBytes: Number(match[2]) * 1024 };
}
