/**
 * Delivering a batch, once for every method: plan where each file goes, check
 * its source, make the folders, put each source under a temporary name, check
 * the sources again, then verify each copy and rename it into place (or remove
 * it). The order and the rules live here; each method supplies the steps
 * ({@linkcode DeliverySteps}) the way its destination allows (one call per
 * batch over SSH, a file at a time locally).
 *
 * @module
 */
import { TransferError } from "../errors.ts";
import {
  closeSource,
  inspectSource,
  openSource,
  type SourceInfo,
  sourceUnreadable,
  unchangedSince,
} from "./source.ts";
import type { TransferItem, TransferOutcome } from "./transport.ts";

/** One file of a batch on its way. Methods extend it with what their steps need. */
export interface Delivery {
  /** Position of the item in the batch. */
  readonly index: number;
  readonly item: TransferItem;
  /** The final path, in the form the method's destination uses. */
  readonly finalPath: string;
  /** The temporary path the copy is written under, in or below the final folder. */
  readonly tempPath: string;
  /** Set once the delivery has failed; from then on it takes no part but the clean-up. */
  error: TransferError | null;
  /** The source as last checked (mode and times the copy carries over). */
  source: SourceInfo | null;
  /** SHA-256 (hex) the copy was verified against, when the method hashed it. */
  sha256: string | null;
  /**
   * Put in place already by `put` (a method that sends a small file in one
   * call, verified against the very bytes it read between two checks of the
   * source): the second source check and `finish` leave it alone.
   */
  done: boolean;
  /**
   * Checked by `put` through the very file it read, once read (still the
   * version that was queued): the second check of the source by its path is
   * not needed. A file that took the name since does not change what was read.
   */
  checkedAfterRead: boolean;
  /**
   * Its final name held a file not to be replaced (`TransferItem.noReplace`), told by `finish`:
   * `same` (the source's bytes: arrived, no error), `other` (with its error); see `keep_others.ts`.
   */
  occupied?: "same" | "other";
  /** Its copy is in place, not confirmed on disk (`TransferOutcome.unconfirmedCopy`). */
  unconfirmedCopy?: true;
  /** Its copy may be in place: see `TransferOutcome.mayBeInPlace`. */
  mayBeInPlace?: true;
}

/** What a method does for {@linkcode deliver}, in the order called. */
export interface DeliverySteps<D extends Delivery> {
  /**
   * Where `item` goes: its final path and the temporary path its copy is
   * written under.
   *
   * @throws {Error} when the destination cannot be placed (the item fails, fatal)
   */
  place(item: TransferItem): { finalPath: string; tempPath: string };
  /** The method's own record of `delivery` (every item gets one, failed or not). */
  track(delivery: Delivery): D;
  /**
   * `put` opens each source as {@linkcode checkSource} does and checks it once
   * read (`checkedAfterRead`), failing a source that changed or vanished the
   * same way: the check before the folders are made is then left out (one
   * open of each source fewer).
   */
  readonly putChecksSources?: boolean;
  /** Make the folders the deliveries need; fail those whose folder cannot be made. */
  makeFolders(deliveries: D[], signal: AbortSignal): Promise<void>;
  /** Write each delivery's source under its temporary path; fail those that could not. */
  put(deliveries: D[], signal: AbortSignal): Promise<void>;
  /**
   * Verify each live delivery's copy as the job asks and rename it into place;
   * remove every copy that is not renamed (failed deliveries' included).
   * Given every delivery of the batch.
   */
  finish(deliveries: D[], signal: AbortSignal): Promise<void>;
  /**
   * Release what the batch holds; called once, last, also after an abort
   * (`finished` false: the finishing step did not complete).
   */
  end(deliveries: D[], finished: boolean): Promise<void>;
}

/** Why a copy is not its source, in the same words for every method. */
export const copyMismatch = {
  /** Fewer or more bytes were read from the source than it had when it was queued. */
  sourceChanged: (read: number, expected: number): string =>
    `read ${read} bytes, expected ${expected} (source changed)`,
  /** The copy at the destination has another size. */
  sizeDiffers: (arrived: number | string, expected: number): string =>
    `size check failed (${arrived} bytes arrived, ${expected} expected); the copy was removed`,
  /** The copy's SHA-256 is not the source's. */
  checksumDiffers: "SHA-256 of the copy differs from the source; the copy was removed",
} as const;

/**
 * Verify a copy as `verify_transfer` asks, from what the method measured:
 * the bytes it read from the source, and the copy's size and SHA-256 at the
 * destination (`null`: the destination cannot hash; the size decides). The
 * error says why the copy is not its source, or `null` when it is.
 */
export function verifyCopy(
  item: TransferItem,
  verify: "none" | "size" | "checksum",
  measured: {
    bytesRead: number;
    size?: number;
    sourceSha256?: string | null;
    copySha256?: string | null;
  },
): TransferError | null {
  const fail = (reason: string) =>
    new TransferError(`Cannot send ${item.source}: ${reason}`, "retry");
  if (measured.bytesRead !== item.size) {
    return fail(copyMismatch.sourceChanged(measured.bytesRead, item.size));
  }
  if (verify === "none") return null;
  if (measured.size !== item.size) {
    return fail(copyMismatch.sizeDiffers(measured.size ?? "?", item.size));
  }
  if (verify !== "checksum" || !measured.sourceSha256 || !measured.copySha256) return null;
  return measured.copySha256 === measured.sourceSha256 ? null : fail(copyMismatch.checksumDiffers);
}

/** The deliveries that have not failed. */
export function live<D extends Delivery>(deliveries: D[]): D[] {
  return deliveries.filter((delivery) => delivery.error === null);
}

/**
 * Fail `delivery` unless its source can be opened as `source.ts` does
 * (no link it may not follow, a regular file) and still has the size and
 * mtime it was queued with; otherwise record what the copy carries over.
 */
export function checkSource(delivery: Delivery): void {
  if (delivery.error) return;
  try {
    const now = inspectSource(delivery.item);
    // Checked before the upload too: nothing written to it in between.
    delivery.source = delivery.source === null
      ? now
      : unchangedSince(delivery.item, delivery.source, now);
  } catch (error) {
    delivery.error = error instanceof TransferError
      ? error
      : sourceUnreadable(delivery.item.source, error);
  }
}

/**
 * Fail `delivery` unless its source can be opened as `source.ts` does
 * and holds at least the bytes to send: a part of a file that is still
 * growing (its size and mtime move on).
 */
export function checkPartSource(delivery: Delivery): void {
  if (delivery.error) return;
  try {
    const source = openSource(delivery.item);
    closeSource(source);
    if (source.info.size < delivery.item.size) {
      throw new TransferError(
        `Cannot send a part of ${delivery.item.source}: it shrank (${source.info.size} bytes)`,
        "retry",
      );
    }
    delivery.source = source.info;
  } catch (error) {
    delivery.error = error instanceof TransferError
      ? error
      : sourceUnreadable(delivery.item.source, error);
  }
}

/**
 * Deliver `items` with `steps`: one outcome per item, in order. Throws only
 * when `signal` is aborted (after `end`). With `part`, each item is the first
 * `size` bytes of a file that is still growing: its source is only checked to
 * hold them (see {@linkcode checkPartSource}), and the steps keep the copies.
 */
export async function deliver<D extends Delivery>(
  items: TransferItem[],
  steps: DeliverySteps<D>,
  signal: AbortSignal,
  part = false,
): Promise<TransferOutcome[]> {
  signal.throwIfAborted();
  const deliveries = planAll(items, steps);
  const check = part ? checkPartSource : checkSource;
  let finished = false;
  try {
    if (part || !steps.putChecksSources) { for (const delivery of deliveries) check(delivery); }
    if (live(deliveries).length > 0) {
      await steps.makeFolders(live(deliveries), signal);
      signal.throwIfAborted();
      await steps.put(live(deliveries), signal);
      signal.throwIfAborted();
      // The source must still be the file that was judged complete.
      for (const delivery of deliveries) {
        if (!delivery.done && !delivery.checkedAfterRead) check(delivery);
      }
    }
    await steps.finish(deliveries, signal);
    finished = true;
  } finally {
    await steps.end(deliveries, finished);
  }
  return deliveries.map(({ item, error, sha256, occupied, unconfirmedCopy, mayBeInPlace }) => ({
    item,
    error,
    ...(error === null && sha256 !== null && !occupied ? { sha256 } : {}),
    ...(occupied ? { occupied } : {}),
    ...(error !== null && unconfirmedCopy ? { unconfirmedCopy } : {}),
    ...(error !== null && mayBeInPlace ? { mayBeInPlace } : {}),
  }));
}

/** Plan every item; an unplaceable destination or a second file for one final path fails. */
function planAll<D extends Delivery>(items: TransferItem[], steps: DeliverySteps<D>): D[] {
  const seen = new Set<string>();
  return items.map((item, index) => {
    const delivery: Delivery = {
      index,
      item,
      finalPath: "",
      tempPath: "",
      error: null,
      source: null,
      sha256: null,
      done: false,
      checkedAfterRead: false,
    };
    try {
      Object.assign(delivery, steps.place(item));
    } catch (error) {
      // A method that knows why (a name it cannot carry) says so.
      delivery.error = error instanceof TransferError ? error : new TransferError(
        `Cannot send ${item.source}: invalid destination ${JSON.stringify(item.destination)}`,
        "fatal",
        { cause: error },
      );
      return steps.track(delivery);
    }
    if (seen.has(delivery.finalPath)) {
      delivery.error = new TransferError(
        `Cannot send ${item.source}: another file of the same batch goes to ${delivery.finalPath}`,
        "retry",
      );
    }
    seen.add(delivery.finalPath);
    return steps.track(delivery);
  });
}
