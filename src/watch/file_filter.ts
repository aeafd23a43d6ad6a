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
  /** Whether a file at `relPath` should be sent. */
  includesFile(relPath: string): boolean;
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
  const options = { dot: true, basename: true };
  const include = picomatch(job.file_patterns, options);
  const exclude = job.exclude_patterns.length > 0
    ? picomatch(job.exclude_patterns, options)
    : () => false;
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
    includesFile(relPath) {
      const parts = segments(relPath);
      const name = parts[parts.length - 1];
      if (name === "" || name.startsWith(".") || isTempName(name)) return false;
      if (parts.length > 1 && !this.includesDir(parts.slice(0, -1).join("/"))) return false;
      return include(relPath) && !exclude(relPath);
    },
  };
}
