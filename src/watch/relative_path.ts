/**
 * Paths relative to a watch folder, the form patterns, the ledger and the
 * destination use.
 *
 * @module
 */
import { posix } from "node:path";

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
