/**
 * What the log says of a file that arrived, beyond `Successfully transferred {source} ->
 * {destination}` (words users and tests look for, kept as they are): that it had arrived before,
 * unrecorded, and was recorded, not sent again; or that it went to the name of its own copy (a
 * re-send: its source changed, or `resend`, a catch-up or a clean-up's look sent it again), so a
 * re-send's line is told from a first send's: that it replaced that copy, or that the copy was no
 * longer there. That copy is said as recorded as arrived, not as sent: the job may have found it
 * there (sent before a new `state_dir`, a ledger rebuilt). The words for a batch's files found at
 * the destination already.
 *
 * @module
 */

/** When a file found at the destination had arrived, its attempt's end not recorded. */
export const UNRECORDED = "before the last stop or in an attempt cut off after its rename";
/** How a batch's files found at the destination are said (see `#record`), by why they were looked for. */
export const FOUND_WORDS = {
  interrupted:
    `{count} file(s) had arrived at {target} ${UNRECORDED}, unrecorded: recorded now (the first: {source}; the count is this batch's; later batches are logged at debug level)`,
  rebuilt:
    "{count} file(s) are at {target} already with their size: recorded as sent, not sent again (the ledger was rebuilt; the first: {source}; the count is this batch's; later batches are logged at debug level)",
  already:
    "{count} file(s) are at {target} already with their bytes, put there by another than this job (a new state_dir, another instrument): left as they are and counted as arrived, not as sent; no on_transfer hook runs for them (the first: {source}; the count is this batch's; later batches are logged at debug level)",
};

/**
 * What the arrival line adds (see the module doc): `found`, how a file found at the destination
 * was found; `ownCopy`, the copy of its own it went over (`TransferOutcome.ownCopy`).
 */
export function arrivalWords(
  found: string | undefined,
  ownCopy: { at: number; changed: boolean | null; gone: boolean | null } | undefined,
): string {
  if (found) return ` (it had arrived ${UNRECORDED}: recorded, not sent again)`;
  if (ownCopy === undefined) return "";
  const copy = `its copy recorded as arrived at ${new Date(ownCopy.at).toISOString()}`;
  if (ownCopy.gone === true) {
    const changed = ownCopy.changed ? "; the source changed since" : "";
    return ` (sent again: ${copy} was no longer at the destination${changed})`;
  }
  const why = ownCopy.changed === null
    ? ""
    : ownCopy.changed
    ? ": the source changed since"
    : ": the same version, sent again";
  return ` (replaced ${copy}${why})`;
}
