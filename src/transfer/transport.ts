/**
 * The one interface every transfer method implements (`local`, `scp`, `rsync`, `ftp`).
 *
 * Creating the transport a job's `transfer_method` names.
 *
 * @module
 */
import type { TransferError } from "../errors.ts";
import type { DiskSpace } from "../config/free_space.ts";
import type { JobConfig } from "../config/types.ts";
import type { FileRows } from "../ledger/file_rows.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { DestinationVersion } from "./destination_sizes.ts";
import { FtpTransport } from "./ftp/ftp.ts";
import { LocalTransport } from "./local/local.ts";
import { RsyncTransport } from "./ssh/rsync.ts";
import { ScpTransport } from "./ssh/scp.ts";

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
  /**
   * `source` is a symbolic link the job's link policy allows: send the
   * content of the file it points to (which must be a regular file). Without
   * it (the default) a source that is a link is never followed: the item
   * fails and nothing is read through the link.
   */
  followLink?: boolean;
  /**
   * The watch folder `source` is in, where no folder between it and the file may be a symbolic
   * link (the `symlinks` policies `skip` and `inside`): one that took a folder's place after the
   * file was found is not read through (see `openSource` in `source.ts`).
   */
  watchFolder?: string;
  /**
   * The final name may hold a file that is not a copy of this source (the
   * ledger gives it no copy there): never replaced. One with the same bytes
   * counts as arrived (`occupied: "same"`); another fails the item, nothing
   * written over it (`occupied: "other"`), for its caller to place it beside.
   */
  noReplace?: boolean;
}

/** What happened to one item of a {@linkcode Transport.send} call. */
export interface TransferOutcome {
  item: TransferItem;
  /** `null` when the file arrived under its final name and passed verification. */
  error: TransferError | null;
  /** SHA-256 (hex) of the delivered bytes, where the method computed it (checksum verification). */
  sha256?: string;
  /**
   * For an item with `noReplace` whose final name held a file: `same` (the source's bytes, judged
   * by `sameFile` in `keep_others.ts`: left as it is, `error` `null`), `other` (left as it is, `error` set).
   */
  occupied?: "same" | "other";
  /**
   * Set by the pipeline (`pipeline/batch_items.ts`), not the transport: the item went to the name
   * of its own copy, recorded as arrived `at` (ms since epoch: sent, or found there); `changed`: its
   * source changed since (`false`: the same version sent again; `null`: not known); `gone`: that
   * copy was no longer there, so nothing was replaced (`null`: not looked at).
   */
  ownCopy?: { at: number; changed: boolean | null; gone: boolean | null };
  /**
   * With `error`: its copy was renamed into place but the server did not confirm it on disk
   * (`remote_sync`); it is the file's own to replace (see `ledger/unconfirmed_copies.ts`).
   */
  unconfirmedCopy?: true;
  /**
   * With `error`: the call that renames copies into place was cut off before it said what it did
   * (the connection lost, its session killed; over FTP, before the reply to `RNTO`): its copy may
   * be under its final name.
   */
  mayBeInPlace?: true;
}

/** What {@linkcode Transport.sendPart} did. */
export interface PartSent {
  /** Bytes the temporary copy at the destination holds now. */
  bytes: number;
  /** Bytes this call sent (appended to what the copy held before). */
  appended: number;
}

/** One check of a destination, as `doctor` prints it. */
export interface ProbeCheck {
  /** What was checked, e.g. `login`, `free space`. */
  check: string;
  /** `warn`: works, but should be fixed (does not fail `doctor`). */
  verdict: "ok" | "warn" | "fail" | "skip";
  /** What was found, or what to fix. */
  detail: string;
}

/**
 * A way of delivering files to a destination.
 *
 * Contract, for every implementation (`deliver.ts` holds the order; the
 * transport contract test checks it against every method):
 * - A final destination name only ever holds a complete copy that passed the
 *   job's verification: data goes to a temporary name in the destination
 *   folder (see `temp_name.ts`) and is renamed into place last, once. A copy
 *   whose upload reported any error is never renamed into place, whatever
 *   its size.
 * - Temporary names and upload folders hold a random part and are created
 *   exclusively: an existing name (a link someone planted included) fails the
 *   attempt instead of being written through. The rename replaces whatever is
 *   under the final name (a link included), never writes through it.
 *   Leftover temporary files of an interrupted attempt are removed later.
 * - Missing destination folders are created; a folder below the base path
 *   that is a symbolic link fails the item (nothing is written through it).
 * - Sources are opened as `source.ts` does: never through a symbolic
 *   link unless the item says `followLink`, only regular files.
 * - A delivered file has the source's mtime (to the second at least) and its
 *   permission bits without write permission for group and others (where the
 *   destination allows it).
 * - After the upload and before the copy is verified and renamed, the source
 *   is checked again (`checkSource` in `deliver.ts`); a source that changed
 *   (its size, its mtime, or its change time since the check before: a write
 *   in place with the mtime set back) fails that item with a retryable error
 *   and the final name is not touched.
 * - An existing file under the final name is replaced (a re-sent file is newer),
 *   unless the item says `noReplace`: then it is never replaced, and the
 *   outcome says `occupied` (over SSH told by the finishing call itself).
 * - `send` does not throw for failures of individual files: it returns exactly
 *   one outcome per item, in the order given. One bad file does not fail the
 *   others. It throws only when `signal` is aborted (after cleaning up).
 * - File names are data: never interpreted by a local or remote shell.
 */
export interface Transport {
  /** The `transfer_method` this implements. */
  readonly method: "local" | "scp" | "rsync" | "ftp";
  /** Largest number of items one `send` call should be given. */
  readonly maxBatchFiles: number;
  /** Most bytes one `send` call should be given, unless its first item alone is larger. */
  readonly maxBatchBytes?: number;
  /** Most `send` calls at once, when fewer than the job's `max_concurrent_transfers`. */
  readonly maxBatchesAtOnce?: number;
  /**
   * How long the longest call of a batch of `items` may take, where longer than
   * `transfer_timeout_seconds` (scp gives a file whose upload timed out longer): the batch's
   * deadline follows it.
   */
  longestCallMs?(items: TransferItem[]): number;
  /** Deliver `items`; see the interface contract. */
  send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]>;
  /**
   * Check what sending needs, with the tools sending uses (programs, login,
   * the destination folder, free space, a SHA-256 tool), changing nothing but
   * a test entry it removes. Never throws: problems are `fail` checks. Every
   * method implements it; optional for other implementations (test doubles).
   */
  probe?(): Promise<ProbeCheck[]>;
  /**
   * Optional, for methods that continue earlier copies (`growing_patterns`):
   * send the first `item.size` bytes of a file that is still growing into its
   * temporary copy at the destination, appending to what that copy holds
   * (after checking it matches), and keep the copy there, never renamed: the
   * send that delivers the complete file continues it.
   *
   * @throws {TransferError} when the part could not be sent (nothing to do:
   *   the complete file is sent as usual)
   */
  sendPart?(item: TransferItem, signal: AbortSignal): Promise<PartSent>;
  /**
   * Optional: told that files of the job arrived at this destination (at
   * start, when the ledger says so, and at each arrival). Its base folder is
   * then not made again when it is gone: a share that did not mount would
   * otherwise have the copies written to the disk below its mount point.
   * Sending fails (`retry-later`) until it is back.
   */
  deliveredBefore?(): void;
  /**
   * Optional, for methods that keep interrupted copies to continue them, or
   * (ftp) leave upload folders a killed daemon cut off: remove the kept copies
   * or those leftovers of these files (relative destinations), which will not
   * be sent again (they arrived, or their source is gone). Best effort, in the
   * background; never throws.
   */
  dropKeptCopies?(destinations: string[]): void;
  /**
   * Optional: tell `onChange` why the job waits on the destination: an upload under way whose
   * server takes none of its data (not given up yet) while no other upload moves; `null` once
   * none does, or another moves.
   */
  watchStalls?(onChange: (why: string | null) => void): void;
  /** The user-facing location of a destination, e.g. `obs@freya:/data/20240315/a.fits`. */
  describeTarget(destination: string): string;
  /**
   * Optional: open connections ahead of the first transfer, so the first file
   * does not wait for them. Never throws; problems surface at the first send.
   */
  warmUp?(): Promise<void>;
  /**
   * Optional: the sizes of files already delivered under `destinations`
   * (`null`: no regular file there), for the catch-up. `mostlyThere`: most of them are expected
   * there (files sent before), so a transport that can tell absent files in bulk (an FTP folder
   * listing) asks each instead, which costs less then.
   */
  destinationSizes?(
    destinations: string[],
    signal: AbortSignal,
    options?: { mostlyThere?: boolean },
  ): Promise<Map<string, number | null>>;
  /**
   * Optional, for a transport that confirms arrivals on the destination's disk (SSH with
   * `remote_sync`): as `destinationSizes`, for the look at the destination after an interrupted
   * attempt, with the folders of the files found flushed in the same call (a daemon cut off
   * after a rename never had it confirmed). `notFlushed`: what the flush said where it could not
   * confirm them on disk (then none of them counts as arrived); `null` where it did, or where
   * the transport confirms nothing.
   */
  destinationSizesOnDisk?(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<{ sizes: Map<string, number | null>; notFlushed: string | null }>;
  /**
   * Optional: the size and last-written time of the files under `destinations` (`null`: no
   * regular file there), which tell a copy of a version the job sent before (a copy gets its
   * source's mtime), for the look after an interrupted attempt whose source changed since.
   */
  destinationVersions?(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, DestinationVersion | null>>;
  /**
   * Optional: the SHA-256 (lowercase hex) of files already delivered under
   * `destinations` (`null`: no regular file there, or the destination cannot
   * hash), for a rebuilt ledger with `verify_transfer: checksum`.
   */
  destinationSha256?(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, string | null>>;
  /**
   * Optional: the space of the destination's file system (for
   * `min_free_space` and the status page); `null` when it cannot be told.
   * `onlyIfFree`: give up (throw) rather than wait for a connection that
   * transfers are using.
   */
  diskSpace?(signal: AbortSignal, options?: { onlyIfFree?: boolean }): Promise<DiskSpace | null>;
  /** Release connections and other resources. Safe to call more than once. */
  close(): Promise<void>;
}

/**
 * The transport for `job`.
 *
 * @param runtimeDir private local folder (created with mode 700 if missing) for
 *   SSH control sockets; keep its path short (sockets are limited
 *   to ~100 bytes; a private folder under the temp folder is used otherwise)
 * @param ledger where `local` keeps the file system files arrived on (see
 *   `local/folders.ts`); without it an unmounted share at the base folder
 *   itself is told only by a base that is gone
 * @param fromTo the destination came from `--to` (a run without a config file): messages name
 *   that option instead of the keys it sets
 * @throws {ConfigError} when the job's remote host or user cannot be used
 */
export function createTransport(
  job: JobConfig,
  runtimeDir: string,
  ledger: Ledger | null = null,
  fromTo = false,
): Transport {
  switch (job.transfer_method) {
    case "local":
      return new LocalTransport(job, ledger, fromTo);
    case "scp":
      return new ScpTransport(job, runtimeDir, ledger, fromTo);
    case "rsync":
      return new RsyncTransport(job, runtimeDir, ledger, fromTo);
    case "ftp":
      return new FtpTransport(job, { ledger, fromTo });
  }
}

/**
 * Tell `transport` that files of its job arrived at its destination before, where the ledger's
 * `rows` of them (that job's, that destination's) say so (see `Transport.deliveredBefore`): its
 * base folder is then not made again once gone. What `run` does as a job starts and `doctor`
 * before its probe, so that both say the same of a base folder that is gone.
 *
 * @returns when the last of them arrived (ms since the epoch), `null` for none
 */
export function tellArrivalsBefore(
  transport: Transport,
  rows: Pick<FileRows, "lastArrival">,
): number | null {
  const last = rows.lastArrival();
  if (last !== null) transport.deliveredBefore?.();
  return last;
}

/** A {@linkcode Transport} a command that ends by itself uses (see {@linkcode closedOnStop}). */
export interface StoppableTransport {
  /** The signal that stopped the command, if one did. */
  stopped(): Deno.Signal | null;
  /** Close the transport (once, also when a signal closed it already) and stop listening. */
  close(): Promise<void>;
}

/**
 * Close `transport` at once on SIGINT or SIGTERM (Ctrl-C) while a command that ends by itself
 * (`doctor`, `run --dry-run`) uses it: its calls end, and the SSH master they opened, in a
 * session of its own out of reach of the terminal, is ended instead of staying up for
 * `ControlPersist` after the command. Listening keeps the signal from ending the command: the
 * command goes on only to its end, its work over the transport failing, and says it was stopped.
 * Only for scp and rsync, which start such a master (none on Windows).
 */
export function closedOnStop(transport: Transport): StoppableTransport {
  let stopped: Deno.Signal | null = null;
  let closing: Promise<void> | undefined;
  const ssh = ["scp", "rsync"].includes(transport.method) && Deno.build.os !== "windows";
  const listeners = (ssh ? ["SIGINT", "SIGTERM"] as const : []).map((signal) => ({
    signal,
    listener: () => {
      stopped ??= signal;
      closing ??= transport.close();
    },
  }));
  for (const { signal, listener } of listeners) Deno.addSignalListener(signal, listener);
  return {
    stopped: () => stopped,
    async close() {
      await (closing ??= transport.close());
      for (const { signal, listener } of listeners) Deno.removeSignalListener(signal, listener);
    },
  };
}
