/**
 * The one interface every transfer method implements (`local`, `scp`, `rsync`).
 *
 * @module
 */
import type { TransferError } from "../errors.ts";

/** One file to deliver. */
export interface TransferItem {
  /** Absolute path of the source file on this machine. */
  source: string;
  /**
   * Destination relative to the job's `remote_base_path`, always with `/`
   * separators, e.g. `20240315/flats/flat 001.fits`.
   */
  destination: string;
  /** Size in bytes when the file was judged complete. */
  size: number;
  /** Modification time (ms since epoch) when the file was judged complete. */
  mtimeMs: number;
}

/** What happened to one item of a {@linkcode Transport.send} call. */
export interface TransferOutcome {
  item: TransferItem;
  /** `null` when the file arrived under its final name and passed verification. */
  error: TransferError | null;
}

/**
 * A way of delivering files to a destination.
 *
 * Contract, for every implementation:
 * - A final destination name only ever holds a complete copy that passed the
 *   job's verification: data goes to a temporary name in the destination
 *   folder (see `temp_name.ts`) and is renamed into place last. Leftover
 *   temporary files of an interrupted attempt are overwritten or removed by the
 *   next attempt.
 * - Missing destination folders are created.
 * - Right before the rename, the source is checked with
 *   `assertSourceUnchanged()`; a source that changed fails that item with a
 *   retryable error and the final name is not touched.
 * - An existing file under the final name is replaced (a re-sent file is newer).
 * - `send` does not throw for failures of individual files: it returns exactly
 *   one outcome per item, in the order given. One bad file does not fail the
 *   others. It throws only when `signal` is aborted (after cleaning up).
 * - File names are data: never interpreted by a local or remote shell.
 */
export interface Transport {
  /** The `transfer_method` this implements. */
  readonly method: "local" | "scp" | "rsync";
  /** Largest number of items one `send` call should be given. */
  readonly maxBatchFiles: number;
  /** Deliver `items`; see the interface contract. */
  send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]>;
  /** The user-facing location of a destination, e.g. `obs@freya:/data/20240315/a.fits`. */
  describeTarget(destination: string): string;
  /**
   * Optional: open connections ahead of the first transfer, so the first file
   * does not wait for them. Never throws; problems surface at the first send.
   */
  warmUp?(): Promise<void>;
  /** Release connections and other resources. Safe to call more than once. */
  close(): Promise<void>;
}
