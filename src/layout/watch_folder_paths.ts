/**
 * Paths below a watch folder: relative to it (the form patterns, the ledger and the destination
 * use), and whether a folder on the way to a file is a symbolic link (which the `symlinks`
 * policies `skip` and `inside` never go through, whether the link was there when the file was
 * found or took a folder's place later).
 *
 * @module
 */
import { join, posix } from "node:path";

const WINDOWS = Deno.build.os === "windows";
/** What normalising would change in a path: `//`, `.` or `..` parts, a `/` at its end. */
const NOT_PLAIN = /\/\/|\/\.\.?(?:\/|$)|\/$/;

/**
 * The path of `path` relative to `root` with `/` separators, or `null` if outside it.
 * Both are normalised first (`//`, `.`), as joined and watcher paths are. A
 * backslash is a separator only on Windows; elsewhere it is part of a file name.
 */
export function relativeTo(root: string, path: string): string | null {
  // The common case, a path joined below a root as given (nothing to normalise), without the cost
  // of normalising both: the daemon asks this several times of every file it looks at.
  if (
    path.length > root.length + 1 && path.startsWith(root) && path[root.length] === "/" &&
    root.startsWith("/") && !root.endsWith("/") && !WINDOWS && !NOT_PLAIN.test(path)
  ) {
    return path.slice(root.length + 1);
  }
  const normalize = (p: string) =>
    posix.normalize(Deno.build.os === "windows" ? p.replaceAll("\\", "/") : p)
      .replace(/\/+$/, "");
  const normRoot = normalize(root);
  const normPath = normalize(path);
  if (normPath === normRoot) return "";
  if (!normPath.startsWith(normRoot + "/")) return null;
  return normPath.slice(normRoot.length + 1);
}

/**
 * The first folder between the watch folder and `path` that is a symbolic
 * link (relative path), or `null`. One lstat per folder level.
 */
export function linkedFolder(root: string, path: string): string | null {
  const rel = relativeTo(root, path);
  if (rel === null) return null;
  const parts = rel.split("/");
  let dir = root;
  for (let i = 0; i < parts.length - 1; i++) {
    dir = join(dir, parts[i]);
    try {
      if (Deno.lstatSync(dir).isSymlink) return parts.slice(0, i + 1).join("/");
    } catch {
      return null;
    }
  }
  return null;
}
