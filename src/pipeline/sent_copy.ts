/**
 * Whether a copy the job sent is still the one it sent, before a new version of its source
 * replaces it. The destination may have changed it since: a reduction pipeline writing into its
 * copy (`echo processed >> night/img007.fits`), a user editing its header there. Such a copy is no
 * longer the job's to replace: replacing it would silently lose what was written into it. It is
 * kept, and the new version goes beside it (`img007~2.fits`, see `batch_items.ts`), with a WARN
 * line that says so.
 *
 * A copy is told by the size and the mtime (in seconds) of the version whose copy arrived, as
 * the ledger records them (`sentSize`, `sentMtimeMs`, `ledger/ledger_row.ts`): every method gives
 * a copy its source's mtime, and a write into it changes that mtime (and mostly its size; the
 * mtime is taken to {@linkcode MTIME_SLACK_S}). A destination that keeps no mtime the daemon sets
 * (a share that refuses it, an FTP server with neither `MFMT` nor the two-argument `MDTM`) has
 * each copy dated when it was written: a changed source's copy there is always taken for one
 * changed at the destination, and the new version goes beside it (nothing is lost). One
 * look for all of a batch's re-sends (`Transport.destinationVersions`: over SSH one remote call,
 * over FTP `SIZE` and `MDTM` on the batch's connection, `local` a `stat` each); a batch with none
 * asks nothing (the same version sent again is looked at too, for its arrival line: a look that
 * fails then does not hold it back). Nothing at the name (the copy removed since), nothing to
 * lose: the version goes there, and its arrival line says the copy was no longer there. Not told, so replaced as before: an arrival recorded by a ledger older than schema
 * version 8 (no version sent recorded), an FTP server without `MDTM`.
 *
 * @module
 */
import { TransferError } from "../errors.ts";
import type { LedgerRow } from "../ledger/file_rows.ts";
import type { TransferItem, TransferOutcome, Transport } from "../transfer/transport.ts";
import type { DestinationVersion } from "../transfer/destination_sizes.ts";

/**
 * Seconds a copy's mtime may be off the one sent and still be taken for it: FAT keeps mtimes to 2 s
 * (a write into a copy mostly changes its size too, and dates it now, not near its source's time).
 */
const MTIME_SLACK_S = 2;

/**
 * Whether `item` is another version of its source than the one whose copy arrived, as `row` (the
 * ledger's row where the item goes over its own copy) records it; `null`: not known (no row, no
 * version sent recorded).
 */
export function sourceChanged(item: TransferItem, row: LedgerRow | null): boolean | null {
  if (!row || row.sentSize === null || row.sentMtimeMs === null || row.sentMtimeMs < 0) return null;
  return item.size !== row.sentSize || item.mtimeMs !== row.sentMtimeMs;
}

/**
 * The indexes of `items` whose source changed since the version whose copy arrived
 * ({@linkcode sourceChanged}, by `rows[n]`: the ledger's row where the item goes over its own
 * copy, else `null`), and whose copy at the destination has another size or mtime than that
 * version (see the module doc).
 *
 * @throws {TransferError} when the destination cannot be asked (the batch's files fail alike)
 */
export async function copiesChanged(
  transport: Pick<Transport, "destinationVersions" | "describeTarget">,
  items: TransferItem[],
  rows: Array<LedgerRow | null>,
  signal: AbortSignal,
): Promise<Set<number>> {
  const asked = items.flatMap((item, n) => sourceChanged(item, rows[n]) ? [n] : []);
  const changed = new Set<number>();
  if (asked.length === 0 || !transport.destinationVersions) return changed;
  const versions = await versionsThere(transport, items, asked, signal);
  for (const n of asked) {
    if (changedThere(versions.get(items[n].destination) ?? null, rows[n]!)) changed.add(n);
  }
  return changed;
}

/** What a look at the copies a batch's re-sends go over found (see {@linkcode lookAtOwnCopies}). */
export interface OwnCopies {
  /** Those changed at the destination since sent, as {@linkcode copiesChanged} tells them. */
  changed: Set<number>;
  /** Those no longer at the destination (nothing there to replace); `null`: not looked at. */
  gone: Set<number> | null;
}

/**
 * One look at the copies of `items` that go over their own copy (`rows[n]` not `null`): those
 * changed at the destination ({@linkcode copiesChanged}), and those no longer there (removed there,
 * a disk replaced: the arrival line then says so rather than a copy replaced). Where no source
 * changed, the look only serves the words: one that fails is `gone: null`, the batch goes on.
 *
 * @throws {TransferError} when the destination cannot be asked and a source changed
 */
export async function lookAtOwnCopies(
  transport: Pick<Transport, "destinationVersions" | "describeTarget">,
  items: TransferItem[],
  rows: Array<LedgerRow | null>,
  signal: AbortSignal,
): Promise<OwnCopies> {
  const asked = items.flatMap((_, n) => rows[n] ? [n] : []);
  const mustAsk = asked.some((n) => sourceChanged(items[n], rows[n]));
  const changed = new Set<number>();
  if (asked.length === 0 || !transport.destinationVersions) return { changed, gone: null };
  let versions: Map<string, DestinationVersion | null>;
  try {
    versions = await versionsThere(transport, items, asked, signal);
  } catch (error) {
    if (mustAsk || signal.aborted) throw error;
    return { changed, gone: null };
  }
  const gone = new Set<number>();
  for (const n of asked) {
    const there = versions.get(items[n].destination) ?? null;
    if (there === null) gone.add(n);
    else if (sourceChanged(items[n], rows[n]) && changedThere(there, rows[n]!)) changed.add(n);
  }
  return { changed, gone };
}

/** The versions at the destination of the `asked` items, in one look. @throws {TransferError} */
async function versionsThere(
  transport: Pick<Transport, "destinationVersions" | "describeTarget">,
  items: TransferItem[],
  asked: number[],
  signal: AbortSignal,
): Promise<Map<string, DestinationVersion | null>> {
  const destinations = asked.map((n) => items[n].destination);
  try {
    return await transport.destinationVersions!(destinations, signal);
  } catch (error) {
    signal.throwIfAborted();
    if (error instanceof TransferError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new TransferError(
      `Cannot look whether the copies at ${transport.describeTarget(destinations[0])} (and ${
        asked.length - 1
      } more) are still those sent, before replacing them: ${reason}`,
      "retry",
      { cause: error },
    );
  }
}

/** Whether the copy `there` (`null`: none) is no longer the version `row` records as sent. */
function changedThere(there: DestinationVersion | null, row: LedgerRow): boolean {
  if (there === null) return false;
  const off = Math.abs(there.mtimeS - Math.floor(row.sentMtimeMs! / 1000));
  return there.size !== row.sentSize || off > MTIME_SLACK_S;
}

/** What an arrival keeps of its outcome: the SHA-256 sent, and the copy of its own it went over. */
export function pick(outcome: TransferOutcome): Pick<TransferOutcome, "sha256" | "ownCopy"> {
  return { sha256: outcome.sha256, ownCopy: outcome.ownCopy };
}
