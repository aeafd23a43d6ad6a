/**
 * What the log says of a file under a name sent before that goes elsewhere than its name and the
 * night rule lead (`layout/sent_before.ts` decides where): over its own copy in another night,
 * beside its copy, or to its own place as a new file or a new observation; and a FITS file sent
 * before that grew by HDUs appended after its writer closed it.
 *
 * @module
 */
import { nightOf, type Observation } from "../layout/sent_before.ts";
import type { Logger } from "../log/logging.ts";

/** Where a file under a name sent before goes, and why (see {@linkcode sayPlaced}). */
export interface Placed {
  /** Where the ledger's copy of its name is. */
  earlier: string;
  /** Where its name and the night rule lead. */
  planned: string;
  /** Where it goes. */
  placed: string;
  /** What its FITS header said of it (`observationOf`). */
  header: Observation;
  /** It is the file sent, changed before its clean-up (`changedBeforeCleanup`), not a new one. */
  changed?: boolean;
  /** Incomplete (a FITS file sent as it is), it would have gone over the copy `earlier`. */
  keptOff?: boolean;
}

/** Say why the file at `path` goes to `placed`, where that is not `planned` (or its header told). */
export function sayPlaced(log: Logger, path: string, where: Placed): void {
  const { earlier, planned, placed, header } = where;
  const night = nightOf(planned);
  if (where.keptOff) {
    return log.warn(
      "{path} changed after it was sent to {earlier} and is incomplete now (cut short or emptied by its writer): an incomplete file never replaces a copy sent before, so it goes to {destination}, beside that copy, which stays as it is",
      { path, earlier, destination: placed },
    );
  }
  if (header === "new") {
    return log.warn(
      "{path} changed after it was sent to {earlier}, and its DATE-OBS says it is a new observation (begun after the version sent was written, in another night): it goes to {destination}; the copy sent stays as it is",
      { path, earlier, destination: placed },
    );
  }
  if (header === "same") {
    return log.info(
      "{path} is a new file under a name sent before, and its DATE-OBS says it holds the observation of its copy {earlier} (saved again as a new file): it goes to {destination}, beside that copy, not into night folder {night} that the night rule gives it now",
      { path, earlier, destination: placed, night },
    );
  }
  if (placed === planned) return;
  if (placed === earlier) {
    // Its own copy (one numbered in the same night, changed in place, goes over it unsaid).
    if (nightOf(placed) === night) return;
    return log.info(
      "{path} goes over its own copy {destination}, sent before (the ledger keeps one copy of each file), not into night folder {night} that the night rule gives it now",
      { path, destination: placed, night },
    );
  }
  if (nightOf(placed) !== night) {
    // Only the file sent, changed before its clean-up, goes beside its copy in another night.
    return log.info(
      "{path} changed after it was sent to {earlier} (a job that deletes or moves sources never replaces a copy it sent): it goes to {destination}, beside that copy, not into night folder {night} that the night rule gives it now",
      { path, earlier, destination: placed, night },
    );
  }
  if (where.changed) {
    return log.info(
      "{path} changed after it was sent to {earlier} (a job that deletes or moves sources never replaces a copy it sent, but by the same file grown by HDUs appended to it): it goes to {destination}, beside that copy",
      { path, earlier, destination: placed },
    );
  }
  log.info(
    "{path} is a new file under a name sent before (the earlier one is at {earlier}; a file sent is never replaced by a new one): it goes to {destination}, beside it",
    { path, earlier, destination: placed },
  );
}

/**
 * Say (WARNING) that the FITS file `file`, whose version `sent` was sent before, grew by HDUs
 * appended after its writer closed it: that version ended where one of its HDUs starts now, and
 * each closed version is sent. Whether it was said (say it once).
 */
export function sayIfAppended(
  log: Logger,
  file: { path: string; size: number; hduStarts: number[] },
  sent: { size: number } | undefined,
): boolean {
  if (sent === undefined || sent.size >= file.size || !file.hduStarts.includes(sent.size)) {
    return false;
  }
  log.warn(
    "{path} was sent with {sent} bytes and has grown to {size} by HDUs appended after its writer closed it: each closed version is sent; if the writer appends HDUs this way, set fits_appends_extensions: true (and stability_window_seconds above its longest pause) so that such a file goes once, complete",
    { path: file.path, sent: sent.size, size: file.size },
  );
  return true;
}
