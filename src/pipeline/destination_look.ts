/**
 * The look at the destination before a batch is sent, for the files whose copy may be there
 * without the ledger knowing: an attempt cut short before its end was recorded (`interrupted`: a
 * stop, a crash, a ledger that could not be written, a call cut off after its renames, the
 * transport's `mayBeInPlace`) and, after the ledger was rebuilt, a file older than the rebuild
 * (by its mtime, or its ctime where its mtime is later: {@linkcode olderThan}) whose arrival it
 * has not recorded since (`rebuilt`). A look that fails fails the batch, and
 * keeps each file's reason to be looked for: the next attempt looks again.
 *
 * An interrupted file's copy under its final name counts by its SHA-256 alone, asked whatever
 * `verify_transfer` says: a file of its size there may be another's (the attempt may have been
 * cut off before its rename), an earlier version (it arrived before and changed since, or changed
 * since the attempt: rewritten in place, the same size), or its own unconfirmed copy. Found, it
 * arrived and is recorded, not sent again; else the file is sent (where it changed since the
 * attempt, a copy of the version that attempt sent, by size and mtime, is its own and replaced:
 * {@linkcode findEarlier}). After a rebuild one found there
 * with its size arrived (only a complete, verified copy is ever renamed there); with `checksum`
 * its SHA-256 must be the source's too. After a rebuild a final name that holds another file is
 * never written over (the ledger no longer knows whose copy it is): the file's copy is looked for
 * at the numbered names beside it (`v~2.fits`, ...), else it goes to the first one free.
 *
 * Where the transport confirms arrivals on disk (SSH with `remote_sync`), the call that asks
 * also flushes the folders where it found files: an attempt cut off between its rename and the
 * flush after it never had its copy confirmed. A copy found where that flush fails does not
 * count as arrived: the file is sent, and one whose attempt was interrupted replaces its own copy
 * there (the next flush confirms it), as a file sent before replaces its own. The ledger keeps
 * which files' copies are in place unconfirmed (`ledger/unconfirmed_copies.ts`: a failed flush
 * after the renames, or found here): after a stop, such a file is looked at first too; its copy
 * counts only by its SHA-256 once flushed, and any other bytes there are its own to replace.
 *
 * @module
 */
import { freeDestination, namesBeside } from "../layout/destination.ts";
import type { Logger } from "../log/logging.ts";
import { hashSource } from "../transfer/source.ts";
import type { TransferItem, TransferOutcome, Transport } from "../transfer/transport.ts";
import { writeIfWritable } from "../ledger/file_rows.ts";
import { UnconfirmedCopies } from "../ledger/unconfirmed_copies.ts";
import type { FileVersion } from "../watch/file_version.ts";
import type { FileTable, WorkRecord } from "./file_table.ts";

/** What the look found for one item of a batch. */
export interface Looked {
  /** Found there, not sent now (see the module doc); `undefined`: it is sent. */
  found?: "interrupted" | "rebuilt";
  /** Where its copy is, or goes: the planned destination, or a name beside it after a rebuild. */
  destination: string;
  /**
   * Its interrupted attempt's copy is there, not confirmed on disk (the flush failed): it is
   * sent, replacing that copy of its own (never beside it).
   */
  replacesOwn?: true;
}

/** What {@linkcode lookAtDestination} works with. */
export interface LookContext {
  job: { verify_transfer: string };
  table: FileTable;
  transport: Transport;
  log: Logger;
}

/** Numbered names asked about in one call, while looking for a place beside another file. */
const NAMES_PER_CALL = 8;
/** Numbered names looked at, at most, before the batch fails (and is tried again). */
const MOST_NAMES = 64;

/** What is at the destination for each of `items` (of `batch`); see the module doc. */
export async function lookAtDestination(
  context: LookContext,
  batch: WorkRecord[],
  items: TransferItem[],
  signal: AbortSignal,
): Promise<Looked[]> {
  const { table, transport } = context;
  const looked: Looked[] = items.map((item) => ({ destination: item.destination }));
  const rebuilt = table.ledger.rebuilt;
  const interrupted = batch.map((record) => table.interrupted.of(record.relPath, record.version));
  const unconfirmed = interrupted.some(Boolean) ? unconfirmedCopies(table) : new Map();
  const older = await Promise.all(batch.map((record, index) => {
    return !interrupted[index] && rebuilt !== null && olderThan(rebuilt.at, record, items[index]);
  }));
  const asking = batch.map((record, index) => {
    if (!interrupted[index] && !older[index]) return null;
    if (!interrupted[index]) {
      let arrivedBefore = true;
      try {
        arrivedBefore = (table.rows.get(record.relPath)?.transferredAt ?? null) !== null;
      } catch { /* Unreadable: as if its copy were known. */ }
      // Its arrival recorded since the rebuild: the ledger knows its copy.
      return arrivedBefore ? null : { why: "rebuilt" as const, sizeTells: true };
    }
    // Its size proves nothing, only its SHA-256: a file of that size there may be another's (an
    // attempt may be cut off before its rename), an earlier version (arrived before, or the file
    // changed since the attempt), or a copy of its own unconfirmed, which is replaced.
    const own = unconfirmed.get(record.relPath) === items[index].destination;
    // Sent as another version than the source's now: a copy of that one there is its own too.
    const sent = interrupted[index] === "changed" && !own
      ? table.interrupted.sent(record.relPath)
      : null;
    return { why: "interrupted" as const, sizeTells: false, own, sent };
  });
  const lookedAt = () => table.interrupted.looked(batch.map((record) => record.relPath));
  if (!transport.destinationSizes || asking.every((ask) => ask === null)) {
    lookedAt();
    return looked;
  }
  const asked = items.flatMap((_, index) => asking[index] ? [index] : []);
  let at: Holding[];
  try {
    at = await whatIsAt(
      context,
      asked.map((index) => [items[index], items[index].destination, asking[index]!.sizeTells]),
      signal,
    );
    await findEarlier(context, asked.map((index) => [items[index], asking[index]]), at, signal);
  } catch (error) {
    // Not known whose a file there is: the batch fails and is tried again, nothing written over
    // (an interrupted file is looked for again at its next attempt: its copy may be there).
    throw error;
  }
  lookedAt();
  for (const [n, index] of asked.entries()) {
    const ask = asking[index]!;
    if (at[n] === "copy") looked[index].found = ask.why;
    else if (at[n] === "unconfirmed" && ask.why === "interrupted") looked[index].replacesOwn = true;
    else if (at[n] === "earlier") {
      context.log.info(
        "{source} changed since its attempt that was cut off: the copy of that attempt at {destination} is replaced by the new version",
        { source: items[index].source, destination: items[index].destination },
      );
      looked[index].replacesOwn = true;
    } else if (at[n] === "other" && ask.why === "interrupted" && ask.own) {
      looked[index].replacesOwn = true;
    } else if (at[n] === "other" && ask.why === "rebuilt") {
      looked[index] = await placeBeside(context, batch[index], items[index], signal);
    }
  }
  const own = items.map((item, n) =>
    looked[n].replacesOwn ? { item, unconfirmedCopy: true as const } : null
  );
  keepUnconfirmed(table, batch, own);
  return looked;
}

/**
 * Whether the source of `record` (sent as `item`) was there before the ledger was rebuilt `at`, so
 * that its copy may be at the destination: its mtime is no later, or else its ctime, which this
 * machine's kernel stamps (a file written where the clock is ahead has an mtime in the future).
 * A file written since has both later. Deno tells a ctime in whole seconds: one in the rebuild's
 * second is not known to be older.
 */
async function olderThan(at: number, record: WorkRecord, item: TransferItem): Promise<boolean> {
  if (record.version.mtimeMs <= at) return true;
  const ctimeMs = await Deno.stat(item.source).then((info) => info.ctime?.getTime(), () => null);
  return typeof ctimeMs === "number" && ctimeMs + 1000 <= at;
}

/**
 * Record the files of `records` whose outcome (same order) says their copy is in place
 * unconfirmed, with the destination it is at: a later run looks at it first (see the module doc).
 */
export function keepUnconfirmed(
  table: FileTable,
  records: readonly WorkRecord[],
  outcomes: ReadonlyArray<Pick<TransferOutcome, "item" | "unconfirmedCopy"> | null | undefined>,
): void {
  const copies = records.flatMap((record, n) => {
    const outcome = outcomes[n];
    return outcome?.unconfirmedCopy
      ? [{ relPath: record.relPath, destination: outcome.item.destination }]
      : [];
  });
  if (copies.length > 0) writeIfWritable(() => new UnconfirmedCopies(table.rows).add(copies));
}

/** Where each file's copy is in place unconfirmed, as the ledger says (none where it cannot). */
function unconfirmedCopies(table: FileTable): Map<string, string> {
  try {
    return new UnconfirmedCopies(table.rows).all();
  } catch {
    return new Map();
  }
}

/**
 * What a name at the destination holds for an item: `unconfirmed`, its copy, where the flush of
 * its folder failed (see the module doc); `earlier`, the copy its interrupted attempt put there
 * of the version it sent then (see {@linkcode findEarlier}).
 */
type Holding = "copy" | "unconfirmed" | "earlier" | "other" | "nothing";

/**
 * The `at` (one per `[item, ask]`) that hold another file where the item's interrupted attempt
 * sent another version than its source's now (`ask.sent`): `earlier` where that file has the size
 * and the mtime (to the second) of that version, as its copy has (a copy gets its source's mtime):
 * its own, replaced by the new version (never put beside it). Where the transport cannot tell
 * mtimes, they stay `other`. @throws when the destination cannot be asked
 */
async function findEarlier(
  { transport }: LookContext,
  asked: Array<[TransferItem, { sent?: FileVersion | null } | null]>,
  at: Holding[],
  signal: AbortSignal,
): Promise<void> {
  const earlier = asked.flatMap(([, ask], n) => at[n] === "other" && ask?.sent ? [n] : []);
  if (earlier.length === 0 || !transport.destinationVersions) return;
  const destinations = earlier.map((n) => asked[n][0].destination);
  const versions = await transport.destinationVersions(destinations, signal);
  for (const n of earlier) {
    const there = versions.get(asked[n][0].destination);
    const sent = asked[n][1]!.sent!;
    if (there?.size === sent.size && there.mtimeS === Math.floor(sent.mtimeMs / 1000)) {
      at[n] = "earlier";
    }
  }
}

/**
 * For each `[item, destination, sizeTells]`: whether `destination` holds the item's copy (its
 * size, and its SHA-256 where the job hashes or the size does not tell), another file, or no
 * regular file. @throws when the destination cannot be asked
 */
async function whatIsAt(
  { job, transport, log }: LookContext,
  asked: Array<[TransferItem, string, boolean]>,
  signal: AbortSignal,
): Promise<Holding[]> {
  const destinations = asked.map(([, destination]) => destination);
  const { sizes, notFlushed } = transport.destinationSizesOnDisk
    ? await transport.destinationSizesOnDisk(destinations, signal)
    : { sizes: await transport.destinationSizes!(destinations, signal), notFlushed: null };
  const holding: Holding[] = asked.map(([item, destination]) => {
    const size = sizes.get(destination) ?? null;
    return size === null ? "nothing" : size === item.size ? "copy" : "other";
  });
  const canHash = transport.destinationSha256 !== undefined;
  const hashing = job.verify_transfer === "checksum" && canHash;
  const toHash = asked.flatMap(([, , sizeTells], n) =>
    holding[n] === "copy" && (hashing || !sizeTells) ? [n] : []
  );
  // Where the size tells nothing, the SHA-256 is asked whatever verify_transfer says.
  const asking = hashing || (canHash && toHash.some((n) => !asked[n][2]));
  if (toHash.length > 0) await compareHashes(transport, asked, holding, toHash, asking, signal);
  if (notFlushed === null || !holding.includes("copy")) return holding;
  const unconfirmed = asked.flatMap(([item], n) => holding[n] === "copy" ? [item.source] : []);
  log.warn(
    "{count} file(s) found at {target} were not confirmed on disk by the server (remote_sync): not counted as arrived, they are sent again (the first: {source}): {said}",
    {
      count: unconfirmed.length,
      target: transport.describeTarget(""),
      source: unconfirmed[0],
      said: notFlushed,
    },
  );
  return holding.map((held) => held === "copy" ? "unconfirmed" : held);
}

/**
 * The `holding` at the `toHash` (indices of `asked`) found with their size, where their SHA-256
 * is not the source's: `other`.
 */
async function compareHashes(
  transport: Transport,
  asked: Array<[TransferItem, string, boolean]>,
  holding: Holding[],
  toHash: number[],
  hashing: boolean,
  signal: AbortSignal,
): Promise<void> {
  const theirs = hashing
    ? await transport.destinationSha256!(toHash.map((n) => asked[n][1]), signal)
    : null;
  for (const n of toHash) {
    const [item, destination, sizeTells] = asked[n];
    const hash = theirs === null ? undefined : theirs.get(destination);
    // The destination cannot hash: the size decides where it tells.
    if (hash === null && sizeTells) continue;
    const ours = typeof hash === "string" ? await hashSource(item).catch(() => null) : null;
    if (ours === null || ours !== hash) holding[n] = "other";
  }
}

/**
 * After a rebuild, the final name of `item` holds another file: its copy at a numbered name beside
 * it, else the first of those names that holds nothing and no other source's copy in the ledger.
 */
async function placeBeside(
  context: LookContext,
  record: WorkRecord,
  item: TransferItem,
  signal: AbortSignal,
): Promise<Looked> {
  const { table, log } = context;
  const names = [...namesBeside(item.destination, record.relPath)].slice(0, MOST_NAMES);
  const sourcesFrom = (prefix: string) => table.rows.destinationsFrom(prefix);
  for (let from = 0; from < names.length; from += NAMES_PER_CALL) {
    const chunk = names.slice(from, from + NAMES_PER_CALL);
    const at = await whatIsAt(context, chunk.map((name) => [item, name, true]), signal);
    for (const [n, name] of chunk.entries()) {
      if (at[n] === "copy") return { found: "rebuilt", destination: name };
      // Not confirmed on disk: sent there again, where it is found to be the file's copy.
      if (at[n] === "unconfirmed") return { destination: name };
      if (at[n] === "nothing" && freeDestination(name, record.relPath, sourcesFrom) === name) {
        log.info(
          "{source} would go to {taken}, which holds another file (the ledger was rebuilt, so whose is not known; a file sent is never replaced by another): it goes to {destination}, beside it",
          { source: item.source, taken: item.destination, destination: name },
        );
        return { destination: name };
      }
    }
  }
  throw new Error(`no name beside ${item.destination} is free at the destination`);
}
