/**
 * The last check before a copy takes its final name: the source must still be
 * the file that was judged complete.
 *
 * @module
 */
import { TransferError } from "../errors.ts";
import type { TransferItem } from "./transport.ts";

/**
 * Throw a retryable {@linkcode TransferError} when the source no longer has the
 * size and mtime recorded in `item` (it was appended to, rewritten or removed).
 */
export async function assertSourceUnchanged(item: TransferItem): Promise<void> {
  compare(item, await Deno.stat(item.source).catch((error) => vanished(item, error)));
}

function vanished(item: TransferItem, error: unknown): never {
  throw new TransferError(`Cannot send ${item.source}: source vanished during transfer`, "retry", {
    cause: error,
  });
}

function compare(item: TransferItem, info: Deno.FileInfo): void {
  const mtimeMs = info.mtime?.getTime() ?? 0;
  if (info.size !== item.size || mtimeMs !== item.mtimeMs) {
    throw new TransferError(
      `Cannot send ${item.source}: source changed during transfer (size ${item.size} -> ${info.size})`,
      "retry",
    );
  }
}
