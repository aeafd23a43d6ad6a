/**
 * Walk a watch folder and list the files a job would send.
 *
 * @module
 */
import { join, posix } from "node:path";
import type { FileFilter } from "./file_filter.ts";

/** A file found in the watch folder. */
export interface FoundFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the watch folder, `/` separators. */
  relPath: string;
}

/**
 * Yield every file below `root` (or below `root/startRel`) that the filter
 * includes. Skips hidden and excluded folders without entering them, and
 * does not follow symbolic links to folders. Unreadable folders are reported
 * through `onError` and skipped.
 */
export async function* scanFolder(
  root: string,
  filter: FileFilter,
  options: { startRel?: string; onError?: (path: string, error: unknown) => void } = {},
): AsyncGenerator<FoundFile> {
  const stack: string[] = [options.startRel ?? ""];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    const dir = rel === "" ? root : join(root, rel);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (error) {
      options.onError?.(dir, error);
      continue;
    }
    for (const entry of entries) {
      const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory) {
        if (filter.includesDir(childRel)) stack.push(childRel);
      } else if (entry.isFile || entry.isSymlink) {
        if (filter.includesFile(childRel)) yield { path: join(root, childRel), relPath: childRel };
      }
    }
  }
}

/**
 * The path of `path` relative to `root` with `/` separators, or `null` if outside it.
 * Both are normalised first (`//`, `.`), as joined and watcher paths are. A
 * backslash is a separator only on Windows; elsewhere it is part of a file name.
 */
export function relativeTo(root: string, path: string): string | null {
  const normalize = (p: string) =>
    posix.normalize(Deno.build.os === "windows" ? p.replaceAll("\\", "/") : p)
      .replace(/\/+$/, "");
  const normRoot = normalize(root);
  const normPath = normalize(path);
  if (normPath === normRoot) return "";
  if (!normPath.startsWith(normRoot + "/")) return null;
  return normPath.slice(normRoot.length + 1);
}
