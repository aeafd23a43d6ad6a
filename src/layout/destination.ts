/**
 * Where a file goes at the destination: its night folder, then the subfolders
 * it had under the watch folder, then its name, byte for byte.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { observationDate, readFitsHeader } from "./fits_header.ts";
import { nightFolder } from "./night_folder.ts";

/** A file ready to be placed. */
export interface PlannedFile {
  /** absolute source path */
  path: string;
  /** path relative to the watch folder, "/" separators */
  relPath: string;
  mtimeMs: number;
}

/**
 * Where a file goes, relative to remote_base_path: `<YYYYMMDD>/<subdirs of relPath>/<name>`
 * with "/" separators. The date comes from `job.night_date_source`: `mtime` (file
 * mtime), `now` (the `now` argument), `fits` (DATE-OBS via
 * {@linkcode readFitsHeader}; when the header cannot be read or has no usable
 * date, the mtime is used and `onFallback(reason)` is called).
 *
 * @param job The night rule settings of the job.
 * @param file The file to place; only `fits` reads it.
 * @param now The current time, used by `now`.
 * @param onFallback Told why DATE-OBS could not be used, once per call.
 * @returns The destination path, e.g. "20240314/flats/M 42.fits".
 * @throws {Error} When `relPath` is empty, absolute, or has an empty, "." or ".." segment.
 */
export async function planDestination(
  job: Pick<JobConfig, "night_date_source" | "night_rollover_hour" | "night_timezone">,
  file: PlannedFile,
  now: Date,
  onFallback?: (reason: string) => void,
): Promise<string> {
  const segments = file.relPath.split("/");
  if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) {
    throw new Error(
      `Cannot plan destination of ${file.path}: relative path "${file.relPath}" ` +
        `must name a file inside the watch folder`,
    );
  }
  const instant = await nightDate(job.night_date_source, file, now, onFallback);
  const folder = nightFolder(instant, job.night_rollover_hour, job.night_timezone);
  return [folder, ...segments].join("/");
}

/** The instant that names the night, per the date source. */
async function nightDate(
  source: JobConfig["night_date_source"],
  file: PlannedFile,
  now: Date,
  onFallback?: (reason: string) => void,
): Promise<Date> {
  if (source === "now") return now;
  const mtime = new Date(file.mtimeMs);
  if (source === "mtime") return mtime;
  let reason: string;
  try {
    await assertRegularFile(file.path);
    const header = await readFitsHeader(file.path);
    const date = observationDate(header);
    if (date !== null) return date;
    const raw = header.get("DATE-OBS");
    reason = `Cannot use DATE-OBS of ${file.path}: ` +
      (raw === undefined
        ? "the primary header has no DATE-OBS card"
        : `${JSON.stringify(raw)} is not a date in a known form`);
  } catch (error) {
    reason = error instanceof Error ? error.message : String(error);
  }
  onFallback?.(`${reason}; using the file mtime instead`);
  return mtime;
}

/** Throw unless `path` is a regular file: a FIFO or device would block or never end. */
async function assertRegularFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`Cannot read FITS header of ${path}: ${why}`, { cause: error });
  }
  if (!info.isFile) throw new Error(`Cannot read FITS header of ${path}: not a regular file`);
}
