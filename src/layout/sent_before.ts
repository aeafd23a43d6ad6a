/**
 * Where a file goes whose name the ledger records a copy of (a row of this job and destination).
 * The source itself, sent before (changed in place since, or sent again by `resend` or a
 * catch-up), goes over its own copy wherever that is, in its night folder even where its mtime,
 * its DATE-OBS or the night rule now names another night: the destination holds one copy of each
 * file, the latest. A new file under the name never replaces the file sent: it goes beside the
 * earlier copy (`flat~2.fits`, see `besideEarlier`), or where its own date leads in another
 * night. What tells the two apart: the file's birth time, and, for a file that would go over (or
 * beside) its copy in another night, its FITS DATE-OBS ({@linkcode newObservation}).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { assertRegularFile, besideEarlier, nightFolder } from "./destination.ts";
import { observationDate, readFitsHeader } from "./fits_header.ts";

/** What is read here of the ledger's row of a name. */
export interface NameRow {
  state: string;
  destination: string;
  transferredAt: number | null;
  createdAt: number;
  /** The version last recorded (the one sent, for a done row). */
  size: number;
  mtimeMs: number;
}

/** The night folder of a destination path (its first part). */
export function nightOf(destination: string): string {
  return destination.slice(0, destination.indexOf("/"));
}

/**
 * Where the file at `source`, whose name leads to `planned`, goes, given the ledger's row of that
 * name (`undefined`: none; a file never sent goes where its name leads). The source itself goes
 * over its own copy ({@linkcode ownCopy}). With `after_transfer: delete` or `move` no file
 * replaces a copy the job sent: one changed before its clean-up (made before its version sent was
 * found complete, by its birth time) goes beside its copy, in that copy's night folder; any other
 * is new. With `keep`, a file made after the earlier one was found complete or arrived (its birth
 * time; a camera whose counter started again after the sources were cleared, `resend` of such a
 * name included; a file renamed over it while its copy was on the way) is new. A new file, and a
 * new observation (`fresh`, see {@linkcode newObservation}), goes beside the earlier copy in its
 * night folder, or where its name leads in another.
 */
export function placeBeside(
  job: Pick<JobConfig, "after_transfer">,
  planned: string,
  row: NameRow | undefined,
  source: string,
  fresh = false,
): string {
  if (row === undefined) return planned;
  if (fresh) return besideEarlier(planned, row.destination);
  const own = ownCopy(job, row, source);
  if (own !== null) return own;
  if (job.after_transfer !== "keep") {
    const sentAt = row.transferredAt === null ? null : Math.min(row.transferredAt, row.createdAt);
    // The file sent, changed before its clean-up (made before that version was found complete):
    // beside its copy, in that copy's night folder, so that the source's copies stay together.
    if (row.state === "done" && sentAt !== null && madeAfter(source, sentAt) === false) {
      return besideEarlier(
        nightOf(row.destination) + planned.slice(planned.indexOf("/")),
        row.destination,
      );
    }
    return besideEarlier(planned, row.destination, row.state === "done");
  }
  // No copy arrived (`besideEarlier` keeps a place it was given in the night), or a new file.
  return besideEarlier(planned, row.destination, row.transferredAt !== null);
}

/**
 * The copy at the destination the file at `source` goes over, as the ledger's `row` of its name
 * records it, or `null` where it has none there: a version of this source arrived at
 * `row.destination` (an arrival is recorded there) and the file there now is that source (sent
 * again on request or by a catch-up, or changed in place since). With `after_transfer: keep`, that
 * is a file not made after the version sent was found complete or arrived (its birth time; where a
 * file system keeps none, the same file); with `delete` or `move`, only a row made pending again
 * (`resend`, a catch-up: the row is not done): a file under a name such a job sent is new.
 */
export function ownCopy(
  job: Pick<JobConfig, "after_transfer">,
  row: NameRow,
  source: string,
): string | null {
  if (row.transferredAt === null) return null;
  if (job.after_transfer !== "keep") return row.state === "done" ? null : row.destination;
  // Made after the version sent was found complete is made after it too: a file renamed over it
  // while its copy was on the way (a local copy reads on from the file it opened) is new.
  const sentAt = Math.min(row.transferredAt, row.createdAt);
  return madeAfter(source, sentAt) === true ? null : row.destination;
}

/**
 * Whether the file at `file.path`, at version `file` now, is a new observation under a name whose
 * copy the ledger's `row` records, as its FITS header tells: where it would go to its copy's night
 * folder (over that copy, or beside it) while its name leads to `planned` in another night, and it
 * changed since the version `row` records, its DATE-OBS says it began after that version was
 * written, in another night (by the job's night rule) than its copy's. A header fixed in place
 * keeps its DATE-OBS; a camera that writes its next night's image over the same file does not.
 * `false` where no usable DATE-OBS tells (not FITS, none in the header): the same file.
 */
export async function newObservation(
  job: Pick<JobConfig, "after_transfer" | "night_rollover_hour" | "night_timezone">,
  file: { path: string; size: number; mtimeMs: number },
  planned: string,
  row: NameRow | undefined,
): Promise<boolean> {
  if (row === undefined || (row.size === file.size && row.mtimeMs === file.mtimeMs)) return false;
  if (nightOf(placeBeside(job, planned, row, file.path)) === nightOf(planned)) return false;
  try {
    await assertRegularFile(file.path);
    const began = observationDate(await readFitsHeader(file.path, { observation: true }));
    return began !== null && began.getTime() > row.mtimeMs &&
      nightFolder(began, job.night_rollover_hour, job.night_timezone) !== nightOf(row.destination);
  } catch {
    return false; // Not FITS, or a header that cannot be read: nothing says it is another file.
  }
}

/**
 * Whether the file at `path` was made after `at` (ms since epoch), by its birth time; `null` when
 * not known (no birth time, or it cannot be looked at).
 */
function madeAfter(path: string, at: number): boolean | null {
  try {
    const born = Deno.statSync(path).birthtime;
    return born === null ? null : born.getTime() > at;
  } catch {
    return null;
  }
}
