/**
 * Free space at a destination, for the status page and `/metrics`: a local
 * folder's file system read with `statfs`, a remote one's with `df -Pk` over
 * the job's SSH connection. A folder that does not exist yet counts as its
 * nearest existing parent (where it will be created).
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { shellQuote } from "./ssh.ts";

/**
 * Bytes an unprivileged writer may still use on the file system holding
 * `folder` (or its nearest existing parent).
 */
export async function localFreeBytes(folder: string): Promise<number> {
  let path = folder;
  for (;;) {
    try {
      const fs = await statfs(path);
      return fs.bavail * fs.bsize;
    } catch (error) {
      const parent = dirname(path);
      const missing = (error as { code?: string }).code === "ENOENT";
      if (!missing || parent === path) throw error;
      path = parent;
    }
  }
}

/**
 * A POSIX `sh` script printing `df -Pk` of `base` (or its nearest existing
 * parent); `base` travels quoted, never as shell code.
 */
export function remoteFreeScript(base: string): string {
  return [
    "LC_ALL=C; export LC_ALL",
    `p=${shellQuote(base)}`,
    `while [ ! -e "$p" ] && [ "$p" != / ] && [ "$p" != . ]; do p=$(dirname -- "$p"); done`,
    `df -Pk -- "$p" | tail -n 1`,
    "",
  ].join("\n");
}

/**
 * The available bytes in the output of {@linkcode remoteFreeScript}, or
 * `null` when it holds no `df -Pk` line.
 */
export function parseDfAvailable(output: string): number | null {
  const line = output.trim().split("\n").at(-1) ?? "";
  const fields = line.match(/\s(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s/);
  return fields ? Number(fields[3]) * 1024 : null;
}
