/**
 * What the transport is told of each file of a batch: whether a link in its place is read
 * through ({@linkcode withLinkPolicy}), and whether its final name may be replaced.
 *
 * A file at the destination that this job did not send there is never replaced. Before a batch
 * goes, each file whose final name the ledger does not give to it (no copy of this source arrived
 * under that name: a new file, or one placed beside another) is sent with `noReplace`; the
 * transport then leaves a file it finds under that name as it is (`transfer/keep_others.ts`). One
 * with the source's bytes counts as arrived; for another the file goes beside it, to the next
 * numbered name (`light_0001~2.fits`, ...) no copy in the ledger has, and is sent again at once,
 * a call for all such files of the batch. A file the ledger gives its name to (sent before,
 * changed in place, sent again) replaces its own copy; a changed source only once that copy is
 * still the one the job sent (`sent_copy.ts`: its size and mtime those the ledger records of the
 * version sent, one look for the batch's re-sends): a copy changed at the destination since (a
 * pipeline writing into it) is kept, and the file goes beside it as above.
 *
 * @module
 */
import { nameBesideOther } from "../layout/destination.ts";
import { fromWatchFolder } from "../ledger/job_names.ts";
import type { LedgerRow } from "../ledger/file_rows.ts";
import type { JobConfig } from "../config/types.ts";
import type { Logger } from "../log/logging.ts";
import { classifyEntry } from "../watch/entry_check.ts";
import type { TransferItem, TransferOutcome, Transport } from "../transfer/transport.ts";
import type { FileTable, WorkRecord } from "./file_table.ts";
import { lookAtOwnCopies, sourceChanged } from "./sent_copy.ts";

/** What {@linkcode sendAroundOthers} works with. */
export interface AroundContext {
  table: FileTable;
  transport: Pick<Transport, "describeTarget" | "dropKeptCopies" | "destinationVersions">;
  log: Logger;
  /**
   * The files (by relative path) whose copy at their final name is their own, though the ledger
   * does not say so: an interrupted attempt's, not confirmed on disk (`Looked.replacesOwn`).
   */
  ownCopies?: Set<string>;
  /** The batch's (for the look at copies of its own, `sent_copy.ts`). */
  signal?: AbortSignal;
}

/** Numbered names tried, at most, for one file in one batch (one `send` call each). */
export const MOST_TRIES_BESIDE = 8;

/**
 * `send` the `items` (of `records`) so that no file this job did not send is replaced (see the
 * module doc). The outcomes, in order; each names the item as last sent (its destination may be
 * a name beside the one planned, where it arrived).
 */
export async function sendAroundOthers(
  { table, transport, log, ownCopies, signal }: AroundContext,
  records: WorkRecord[],
  items: TransferItem[],
  send: (items: TransferItem[]) => Promise<TransferOutcome[]>,
): Promise<TransferOutcome[]> {
  const rows = items.map((item, n) =>
    ownCopies?.has(records[n].relPath) ? null : ownName(table, records[n], item)
  );
  const marked = items.map((item, n) =>
    ownCopies?.has(records[n].relPath) || rows[n] ? item : { ...item, noReplace: true }
  );
  // A copy of its own changed at the destination since it was sent: kept, the file goes beside.
  // One look: copies changed at the destination since sent, and copies no longer there.
  const { changed, gone } = await lookAtOwnCopies(
    transport,
    marked,
    rows,
    signal ?? new AbortController().signal,
  );
  const taken = new Set(marked.map((item) => item.destination));
  for (const [n, item] of marked.entries()) {
    if (!changed.has(n)) continue;
    rows[n] = null;
    const destination = besideOther(table, item.destination, records[n].relPath, taken);
    // No free name beside: not replaced all the same (the transport says the name is taken).
    marked[n] = { ...item, destination: destination ?? item.destination, noReplace: true };
    if (destination === null) continue;
    log.warn(
      "The copy of {source} at {changed} was changed at the destination since this job sent it (its size or mtime are no longer those sent): it is kept, not replaced; the new version goes to {destination}, beside it",
      {
        source: item.source,
        changed: transport.describeTarget(item.destination),
        destination: transport.describeTarget(destination),
      },
    );
    taken.add(destination);
  }
  // A copy kept at the name it leaves (a growing file's parts) is not continued there.
  if (changed.size > 0) transport.dropKeptCopies?.([...changed].map((n) => items[n].destination));
  const outcomes = (await send(marked)).map((outcome, n) =>
    outcome.error === null && rows[n]
      ? {
        ...outcome,
        ownCopy: {
          at: rows[n]!.transferredAt!,
          changed: sourceChanged(items[n], rows[n]),
          gone: gone === null ? null : gone.has(n),
        },
      }
      : outcome
  );
  for (let tries = 0; tries < MOST_TRIES_BESIDE; tries++) {
    const again: number[] = [];
    const moved: TransferItem[] = [];
    for (const [n, outcome] of outcomes.entries()) {
      if (outcome.occupied !== "other") continue;
      const destination = besideOther(table, outcome.item.destination, records[n].relPath, taken);
      if (destination === null) continue;
      taken.add(destination);
      log.warn(
        "{source} would go to {taken}, which holds another file that this job did not send there (it is never replaced): it goes to {destination}, beside it",
        {
          source: outcome.item.source,
          taken: transport.describeTarget(outcome.item.destination),
          destination: transport.describeTarget(destination),
        },
      );
      again.push(n);
      moved.push({ ...outcome.item, destination });
    }
    if (again.length === 0) break;
    // A copy kept at the name it leaves (a growing file's parts, an interrupted attempt's) is not
    // continued there.
    transport.dropKeptCopies?.(again.map((n) => outcomes[n].item.destination));
    const resent = await send(moved);
    for (const [k, n] of again.entries()) outcomes[n] = resent[k];
  }
  for (const outcome of outcomes) {
    if (outcome.occupied !== "same") continue;
    // Said once per batch by the sender (`already`), each file at debug level.
    log.debug(
      "{source} is at {destination} already: a file with its bytes that this job did not send there; left as it is, counted as arrived",
      {
        source: outcome.item.source,
        destination: transport.describeTarget(outcome.item.destination),
      },
    );
  }
  return outcomes;
}

/** The next free name beside `destination`, for the file at `relPath` (`null`: none found). */
function besideOther(
  table: FileTable,
  destination: string,
  relPath: string,
  taken: Set<string>,
): string | null {
  return nameBesideOther(destination, relPath, taken, (prefix) => {
    try {
      return table.rows.destinationsFrom(prefix);
    } catch {
      return [];
    }
  });
}

/**
 * The ledger's row of `record` where it gives `item`'s final name to its source: a copy of it
 * arrived there (its row's destination, with an arrival recorded); else `null`. Unreadable: not
 * known, so not given.
 */
function ownName(table: FileTable, record: WorkRecord, item: TransferItem): LedgerRow | null {
  try {
    const row = fromWatchFolder(table.rows, table.rows.get(record.relPath));
    return row !== undefined && row.transferredAt !== null && !row.otherFolder &&
        row.destination === item.destination
      ? row
      : null;
  } catch {
    return null;
  }
}

/**
 * The item as the transport must treat it: a symbolic link in the file's place is read through
 * only where the job's `symlinks` policy lets that link through (`inside`: a link to a file inside
 * the watch folder; `follow`), as a link found there by a scan is; otherwise (`skip`, a link out of
 * the watch folder under `inside`: one that took a queued file's name) no transport follows it.
 * Under `skip` and `inside` no folder on the way from the watch folder may be a link either
 * (`watchFolder`), as when the file was found.
 */
export function withLinkPolicy(item: TransferItem, job: JobConfig): TransferItem {
  if (job.symlinks === "follow") return followedLink(item, job);
  item = { ...item, watchFolder: job.watch_path };
  return job.symlinks === "skip" ? item : followedLink(item, job);
}

/** `item` with `followLink` where a link in its place is one the job's policy lets through. */
function followedLink(item: TransferItem, job: JobConfig): TransferItem {
  try {
    if (!Deno.lstatSync(item.source).isSymlink) return item;
  } catch {
    return item;
  }
  return classifyEntry(item.source, job).ok ? { ...item, followLink: true } : item;
}
