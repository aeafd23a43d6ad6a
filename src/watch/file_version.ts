/**
 * A file's version (size and mtime) and where a watch-relative path lives on
 * disk: the two facts every stage compares and rebuilds.
 *
 * @module
 */
import { join } from "node:path";

/** What identifies one written state of a file: a new size or mtime is a new version. */
export interface FileVersion {
  size: number;
  /** Modification time in ms since the epoch (0 when the system gives none). */
  mtimeMs: number;
}

/** Whether `a` and `b` are the same version (same size and mtime). */
export function sameVersion(a: FileVersion, b: FileVersion): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** The version of a file from its stat result. */
export function versionOf(info: Deno.FileInfo): FileVersion {
  return { size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 };
}

/**
 * The absolute path of `relPath` (relative to `root`, `/` separators), the
 * inverse of `relativeTo` in `scan.ts`.
 */
export function absolutePath(root: string, relPath: string): string {
  return relPath === "" ? root : join(root, ...relPath.split("/"));
}

/**
 * Whether `error` (of a stat or an open) says nothing is at its path: not found, or a part of the
 * path is no folder. Any other (an I/O error or a stale handle on a share, a folder's
 * permissions) says nothing of whether a file is there.
 */
export function isGoneError(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory;
}

/**
 * The version of the file at `path` now (synchronous stat): "gone" when nothing is there,
 * "unknown" when the stat fails otherwise (see {@linkcode isGoneError}).
 */
export function statVersion(path: string): FileVersion | "gone" | "unknown" {
  try {
    return versionOf(Deno.statSync(path));
  } catch (error) {
    return isGoneError(error) ? "gone" : "unknown";
  }
}

/**
 * Whether a file is at `path` now (synchronous stat, through a link, as the checker reads
 * files): "unknown" when the stat fails otherwise than "not found" (see {@linkcode isGoneError}).
 */
export function isFileAt(path: string): boolean | "unknown" {
  try {
    return Deno.statSync(path).isFile;
  } catch (error) {
    return isGoneError(error) ? false : "unknown";
  }
}
