/**
 * Where a file goes whose name the ledger records a copy of (a row of this job and destination).
 * The source itself, sent before (changed in place since, or sent again by `resend` or a
 * catch-up), goes over its own copy wherever that is, in its night folder even where its mtime,
 * its DATE-OBS or the night rule now names another night: the destination holds one copy of each
 * file, the latest. A new file under the name never replaces the file sent: it goes beside the
 * earlier copy (`flat~2.fits`, see `besideEarlier`), or where its own date leads in another
 * night. What tells the two apart: the file's birth time, and, where that leads to another night
 * than its copy's or away from it, its FITS DATE-OBS ({@linkcode observationOf}).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { assertRegularFile, besideEarlier, nightFolder } from "./destination.ts";
import { observationDate, readFitsHeader } from "./fits_header.ts";
import { readFitsStructure } from "./fits_structure.ts";

/** What is read here of the ledger's row of a name. */
export interface NameRow {
  state: string;
  destination: string;
  transferredAt: number | null;
  createdAt: number;
  /** The version last recorded (the one sent, for a done row). */
  size: number;
  mtimeMs: number;
  /** The source's birth time at that version (ms); `null` or absent: not recorded. */
  bornMs?: number | null;
  /**
   * Its copy arrived from another watch folder than the job's now (`fromWatchFolder` in
   * `ledger/job_names.ts`): a file under the name now is another file, that goes where its name
   * leads and never over a file there.
   */
  otherFolder?: boolean;
}

/**
 * What a FITS file's DATE-OBS says of a file under a name sent before (see
 * {@linkcode observationOf}): `new`, another observation than the copy's; `same`, the copy's
 * observation, saved again; `null`, nothing (not asked, not FITS, no DATE-OBS).
 */
export type Observation = "new" | "same" | null;

/** The night folder of a destination path (its first part). */
export function nightOf(destination: string): string {
  return destination.slice(0, destination.indexOf("/"));
}

/**
 * Where the file at `source`, whose name leads to `planned`, goes, given the ledger's row of that
 * name (`undefined`: none; a file never sent goes where its name leads). The source itself goes
 * over its own copy ({@linkcode ownCopy}). With `after_transfer: delete` or `move` no file
 * replaces a copy the job sent but the file sent grown only by HDUs appended to that version
 * before its clean-up (`grownByHdus`: over its copy, as with `keep`); the file sent, changed
 * otherwise before its clean-up (its birth time, see `madeAfter`), goes beside its copy, in that
 * copy's night folder; any other is new. With `keep`, another file than the one sent (a camera
 * whose counter started again after the sources were cleared, `resend` of such a name included;
 * a file renamed over it while its copy was on the way) is new. A new file goes
 * beside the earlier copy in its night folder, or where its name leads in another. `header`
 * (see {@linkcode observationOf}) decides before the birth time: a new observation is a new file;
 * the copy's observation saved again as a new file goes beside its copy, in that copy's night
 * folder (never over it: the header alone does not tell the same file). An `incomplete` version
 * (a FITS file sent as it is after its grace: cut short or emptied by its writer) never goes over
 * a copy that arrived: beside it, in that copy's night folder, the copy kept as it is.
 */
export function placeBeside(
  job: Pick<JobConfig, "after_transfer">,
  planned: string,
  row: NameRow | undefined,
  source: string,
  header: Observation = null,
  incomplete = false,
): string {
  if (row === undefined || row.otherFolder) return planned;
  if (header === "new") return besideEarlier(planned, row.destination);
  // Beside its copy, in that copy's night folder: the source's copies together.
  const besideCopy = () =>
    besideEarlier(nightOf(row.destination) + planned.slice(planned.indexOf("/")), row.destination);
  if (header === "same") return besideCopy();
  const own = ownCopy(job, row, source);
  if (own !== null) return incomplete ? besideCopy() : own;
  if (job.after_transfer !== "keep") {
    // The file sent, changed before its clean-up: beside its copy, unless it only grew by HDUs
    // appended to that version (over it, as with `keep`).
    if (changedBeforeCleanup(job, row, source)) {
      return grownByHdus(source, row) && !incomplete ? row.destination : besideCopy();
    }
    return besideEarlier(planned, row.destination, row.state === "done");
  }
  // No copy arrived (`besideEarlier` keeps a place it was given in the night), or a new file.
  return besideEarlier(planned, row.destination, row.transferredAt !== null);
}

/**
 * Whether the file at `source` is the file sent under the name the ledger's `row` records, changed
 * before a job that deletes or moves sources cleaned it up: made before that version was found
 * complete (its birth time, see `madeAfter`). Always false with `after_transfer: keep`.
 */
export function changedBeforeCleanup(
  job: Pick<JobConfig, "after_transfer">,
  row: NameRow,
  source: string,
): boolean {
  if (job.after_transfer === "keep" || row.state !== "done" || row.transferredAt === null) {
    return false;
  }
  return madeAfter(source, row, Math.min(row.transferredAt, row.createdAt)) === false;
}

/**
 * The copy at the destination the file at `source` goes over, as the ledger's `row` of its name
 * records it, or `null` where it has none there: a version of this source arrived at
 * `row.destination` (an arrival is recorded there) and the file there now is that source (sent
 * again on request or by a catch-up, or changed in place since). With `after_transfer: keep`, that
 * is the file sent (by its birth time, see `madeAfter`; where a file system keeps none, the same
 * file); with `delete` or `move`, only a row made pending again
 * (`resend`, a catch-up: the row is not done): a file under a name such a job sent is new.
 */
export function ownCopy(
  job: Pick<JobConfig, "after_transfer">,
  row: NameRow,
  source: string,
): string | null {
  if (row.transferredAt === null) return null;
  if (job.after_transfer !== "keep") return row.state === "done" ? null : row.destination;
  // A row without a birth time: made after the version sent was found complete is new, as a file
  // renamed over it while its copy was on the way (a local copy reads on from the file it opened).
  const sentAt = Math.min(row.transferredAt, row.createdAt);
  return madeAfter(source, row, sentAt) === true ? null : row.destination;
}

/**
 * What the FITS header of the file at `file.path` (at version `file` now) says of it, where the
 * ledger's `row` records a copy of its name in another night than `planned`, where its name leads
 * now, and it changed since the version `row` records: `new` where it would go to its copy's night
 * folder (over that copy, or beside it) and its DATE-OBS says it began after that version was
 * written, in another night (by the job's night rule) than its copy's (a camera that writes its
 * next night's image into the same file); `same` where it would go to `planned`'s night as a new
 * file and its DATE-OBS says it began before, in its copy's night (the copy's observation, saved
 * by a program that writes a new file and renames it over the name: astropy's `mode="update"` where
 * the header grows). `null` otherwise, and where no usable DATE-OBS tells (not FITS, none in the
 * header): the birth time decides.
 */
export async function observationOf(
  job: Pick<JobConfig, "after_transfer" | "night_rollover_hour" | "night_timezone">,
  file: { path: string; size: number; mtimeMs: number },
  planned: string,
  row: NameRow | undefined,
): Promise<Observation> {
  if (row === undefined || row.transferredAt === null || row.otherFolder) return null;
  if (row.size === file.size && row.mtimeMs === file.mtimeMs) return null;
  const night = nightOf(row.destination);
  if (night === nightOf(planned)) return null;
  const toCopy = nightOf(placeBeside(job, planned, row, file.path)) === night;
  let began: Date | null;
  try {
    await assertRegularFile(file.path);
    began = observationDate(await readFitsHeader(file.path, { observation: true }));
  } catch {
    return null; // Not FITS, or a header that cannot be read: nothing said.
  }
  if (began === null) return null;
  const after = began.getTime() > row.mtimeMs;
  const inCopyNight = nightFolder(began, job.night_rollover_hour, job.night_timezone) === night;
  if (toCopy) return after && !inCopyNight ? "new" : null;
  return !after && inCopyNight ? "same" : null;
}

/**
 * Whether the file at `path` is another file than the version `row` records: its birth time is
 * not the one recorded with that version (a file edited in place keeps it; clock steps change
 * neither). A row that recorded none (written by an earlier version): whether it was made after
 * `at` (ms since epoch, by the daemon's clock). `null` when not known (no birth time, or it
 * cannot be looked at).
 */
function madeAfter(path: string, row: NameRow, at: number): boolean | null {
  const born = birthTimeOf(path);
  if (born === null) return null;
  return row.bornMs === undefined || row.bornMs === null ? born > at : born !== row.bornMs;
}

/**
 * Whether the file at `path` is the one whose version `row` records as sent (its birth time is the
 * one recorded then, so the same file on disk) grown since by HDUs appended at that version's end
 * (astropy's `fits.append` after the close): longer, and one of the extensions of its complete
 * FITS structure starts where that version ended. The ledger keeps no digest of the bytes sent:
 * that they are still its start is known as far as its structure and its identity tell. Any other
 * change (a file not FITS, bytes rewritten) is not taken as grown.
 */
function grownByHdus(path: string, row: NameRow): boolean {
  if (row.bornMs === undefined || row.bornMs === null || birthTimeOf(path) !== row.bornMs) {
    return false;
  }
  try {
    const now = readFitsStructure(path);
    return now.kind === "complete" && now.size > row.size &&
      now.hdus.slice(1).some((hdu) => hdu.start === row.size);
  } catch {
    return false; // Cannot be read now: not known, so not taken as grown.
  }
}

/** The birth time of the file at `path` (ms since epoch); `null` when not known. */
export function birthTimeOf(path: string): number | null {
  try {
    return Deno.statSync(path).birthtime?.getTime() ?? null;
  } catch {
    return null;
  }
}
