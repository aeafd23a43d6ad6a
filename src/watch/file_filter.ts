/**
 * Which files of a watch folder belong to the job: matching `file_patterns`,
 * not matching `exclude_patterns`, not hidden, not our own temporary files.
 *
 * @module
 */
// @ts-types="@types/picomatch"
import picomatch from "picomatch";
import { isTempName } from "../transfer/temp_name.ts";

/** Decides, from a path relative to the watch folder (`/` separators), what to do with it. */
export interface FileFilter {
  /**
   * Whether a file at `relPath` should be sent.
   *
   * @param parentIncluded the caller already knows the file's folder is
   *   included (a scan that only enters included folders)
   */
  includesFile(relPath: string, parentIncluded?: boolean): boolean;
  /** Whether the folder at `relPath` may hold files to send (not hidden, not excluded). */
  includesDir(relPath: string): boolean;
}

/**
 * Build the filter of a job. A pattern without `/` matches the base name at
 * any depth (`*.fits`); one with `/` matches the whole relative path
 * (`raw/**\/*.fits`). Exclude patterns also apply to every parent folder, so
 * `calib` or `calib/**` skip a whole subtree.
 */
export function createFileFilter(
  job: { file_patterns: string[]; exclude_patterns: string[] },
): FileFilter {
  const include = matcher(job.file_patterns);
  const exclude = matcher(job.exclude_patterns);
  const segments = (relPath: string) => relPath.split("/");
  const hidden = (relPath: string) => segments(relPath).some((s) => s.startsWith("."));

  return {
    includesDir(relPath) {
      if (relPath === "" || relPath === ".") return true;
      if (hidden(relPath)) return false;
      const parts = segments(relPath);
      for (let i = 1; i <= parts.length; i++) {
        if (exclude(parts.slice(0, i).join("/"))) return false;
      }
      return true;
    },
    includesFile(relPath, parentIncluded = false) {
      const slash = relPath.lastIndexOf("/");
      const name = relPath.slice(slash + 1);
      if (name === "" || name.startsWith(".") || isTempName(name)) return false;
      if (!parentIncluded && slash > 0 && !this.includesDir(relPath.slice(0, slash))) return false;
      return include(relPath) && !exclude(relPath);
    },
  };
}

/**
 * Match a relative path against `patterns`: those without `/` against its base
 * name, the others against the whole path. picomatch's `basename` option
 * would apply to every pattern, so the two kinds are compiled apart. The `s`
 * flag lets `*` and `**` match names that start with or contain a newline.
 */
function matcher(patterns: string[]): (relPath: string) => boolean {
  const options = { dot: true, flags: "s" };
  const base = patterns.filter((p) => !p.includes("/"));
  const full = patterns.filter((p) => p.includes("/"));
  const matchBase = base.length > 0 ? picomatch(base, { ...options, basename: true }) : null;
  const matchFull = full.length > 0 ? picomatch(full, options) : null;
  return (relPath) => (matchBase?.(relPath) ?? false) || (matchFull?.(relPath) ?? false);
}
