/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * Each file is copied from the source (opened without following links, see
 * `source.ts`) into a new temporary file in its destination folder,
 * created exclusively under an unpredictable name (see `temp_name.ts`), with
 * the source's permission bits (without group/other write) and mtime,
 * verified through the same open file and flushed to disk, and renamed into
 * place once the name still points at that file; the renames of a batch are
 * flushed once per folder.
 *
 * @module
 */
import { fchmodSync, fstatSync, fsync, fsyncSync, futimesSync } from "node:fs";
import { promisify } from "node:util";
import { basename, dirname, join } from "node:path";
import { bandwidthLimit } from "../../config/sizes.ts";
import type { JobConfig } from "../../config/types.ts";
import { isDestinationFull } from "../../errors.ts";
import { deliver, type DeliverySteps, verifyCopy } from "../deliver.ts";
import {
  assertSameFile,
  copyData,
  syncFolder,
  toTransferError,
  whereSupported,
  type Written,
} from "./copy.ts";
import { localDestinationSha256, localDestinationSizes } from "../destination_sizes.ts";
import { type DiskSpace, localDiskSpace } from "../../config/free_space.ts";
import { BaseFileSystem, makeLocalFolders, probeLocalDestination } from "./folders.ts";
import type { Ledger } from "../../ledger/ledger.ts";
import { closeTarget, type LocalDelivery, LocalTempCopies } from "./temp_copies.ts";
import {
  closeSource,
  deliveredPermissions,
  inspectOpenSource,
  openSource,
  sha256OfDescriptor,
  unchanged,
} from "../source.ts";
import { logger } from "../../log/logging.ts";
import { jobOwner, tempNameFor } from "../temp_name.ts";
import { Throttle } from "../throttle.ts";
import type {
  PartSent,
  ProbeCheck,
  TransferItem,
  TransferOutcome,
  Transport,
} from "../transport.ts";

/** Copies into `remote_base_path` on this machine: temp name, verify, rename. */
export class LocalTransport implements Transport {
  readonly method = "local" as const;
  /**
   * Files of a batch are copied one after another; a batch shares its ledger
   * writes (a burst of small files costs less CPU), and stays small enough to
   * finish well within its deadline.
   */
  readonly maxBatchFiles = 16;
  readonly maxBatchBytes = 64 * 1024 * 1024;
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  #owner: string;
  /** The temporary copies: new, continued, released, swept. */
  #copies: LocalTempCopies;
  /** Parts of growing files being sent, by final path: a copy of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();
  #log = logger("transfer");
  /** Files arrived in the base folder before (see `Transport.deliveredBefore`): not made again. */
  #deliveredBefore = false;
  /** The file system they arrived on: an empty folder on another one is an unmounted share. */
  #arrivedOn: BaseFileSystem;
  /** Paces all copies together at `bandwidth_limit` (none without one). */
  readonly throttle: Throttle | null;

  /** `ledger`: where the file system files arrived on is kept (see `BaseFileSystem`). */
  constructor(job: JobConfig, ledger: Ledger | null = null) {
    this.#job = job;
    this.#arrivedOn = new BaseFileSystem(job.remote_base_path, ledger);
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#owner = jobOwner(job);
    this.#copies = new LocalTempCopies(job, this.#owner);
  }

  deliveredBefore(): void {
    this.#deliveredBefore = true;
  }

  /** See `Transport.dropKeptCopies`: in the background, never throws. */
  dropKeptCopies(destinations: string[]): void {
    if (this.#copies.keepMs === 0) return;
    for (const destination of destinations) {
      this.#copies.drop(this.describeTarget(destination)).catch(() => {});
    }
  }

  destinationSizes(destinations: string[]): Promise<Map<string, number | null>> {
    return localDestinationSizes(this.#job.remote_base_path, destinations);
  }

  destinationSha256(destinations: string[]): Promise<Map<string, string | null>> {
    return localDestinationSha256(this.#job.remote_base_path, destinations);
  }

  diskSpace(_signal?: AbortSignal, _options?: { onlyIfFree?: boolean }): Promise<DiskSpace | null> {
    return localDiskSpace(this.#job.remote_base_path);
  }

  describeTarget(destination: string): string {
    return join(this.#job.remote_base_path, ...destination.split("/"));
  }

  send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    return deliver(items, this.#steps(), signal);
  }

  /** See {@linkcode Transport.sendPart}: a part of a growing file, appended to its kept copy. */
  sendPart(item: TransferItem, signal: AbortSignal): Promise<PartSent> {
    const finalPath = this.describeTarget(item.destination);
    const before = this.#parts.get(finalPath);
    const sending = (async () => {
      await before;
      try {
        return await this.#putPart(item, finalPath, signal);
      } catch (error) {
        throw toTransferError(item, error);
      }
    })();
    const settled = sending.catch(() => {});
    this.#parts.set(finalPath, settled);
    settled.then(() => {
      if (this.#parts.get(finalPath) === settled) this.#parts.delete(finalPath);
    });
    return sending;
  }

  probe(): Promise<ProbeCheck[]> {
    return probeLocalDestination(
      this.#job.remote_base_path,
      this.#job.min_free_space,
      this.#arrivedOn,
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The delivery steps: each file on its own, one after another. */
  #steps(): DeliverySteps<LocalDelivery> {
    const fail = (delivery: LocalDelivery, error: unknown, signal: AbortSignal) => {
      if (signal.aborted) throw signal.reason;
      delivery.error = toTransferError(delivery.item, error);
    };
    return {
      place: (item) => {
        const finalPath = this.describeTarget(item.destination);
        const tempName = tempNameFor(basename(finalPath), this.#owner);
        return { finalPath, tempPath: join(dirname(finalPath), tempName) };
      },
      track: (delivery) => ({ ...delivery, target: null, written: null, keep: false }),
      putChecksSources: true,
      // Each destination folder once per batch: made, and swept of this daemon's leftovers.
      makeFolders: async (deliveries, signal) => {
        for (const [folder, inFolder] of byFolder(deliveries)) {
          try {
            await makeLocalFolders(
              this.#job.remote_base_path,
              inFolder[0].item.destination,
              !this.#deliveredBefore,
              this.#arrivedOn,
            );
            await this.#copies.sweep(folder);
          } catch (error) {
            for (const delivery of inFolder) fail(delivery, error, signal);
          }
        }
      },
      // Each copy is flushed to disk on a thread of its own while the next one is written.
      put: async (deliveries, signal) => {
        const flushes: Array<Promise<void>> = [];
        for (const delivery of deliveries) {
          try {
            const target = await this.#put(delivery, signal);
            flushes.push(fsyncOff(target).catch((error) => fail(delivery, error, signal)));
          } catch (error) {
            fail(delivery, error, signal);
          }
        }
        await Promise.all(flushes);
      },
      // The renames of a batch are flushed once per folder, after the last of them.
      finish: async (deliveries, signal) => {
        const renamed: LocalDelivery[] = [];
        for (const delivery of deliveries) {
          try {
            if (delivery.error === null && await this.#finish(delivery)) renamed.push(delivery);
          } catch (error) {
            fail(delivery, error, signal);
          }
          this.#copies.release(delivery);
        }
        for (const [folder, inFolder] of byFolder(renamed)) {
          try {
            await syncFolder(folder);
            for (const delivery of inFolder) delivery.sha256 = delivery.written!.sha256;
            this.#arrivedOn.arrived(inFolder[0].item.destination);
          } catch (error) {
            for (const delivery of inFolder) fail(delivery, error, signal);
          }
        }
      },
      end: (deliveries) => {
        for (const delivery of deliveries) this.#copies.release(delivery);
        return Promise.resolve();
      },
    };
  }

  /**
   * Copy the source into its temporary file, with its mode and times: a new
   * file, or an earlier copy of this file continued (see
   * `local/temp_copies.ts`), verified through the open file. The source is
   * checked again once read, through the file it was read from (still the
   * version that was queued: see `Delivery.checkedAfterRead`). An interrupted
   * copy is kept when copies may be resumed. Returns the temporary file, to be
   * flushed to disk.
   */
  async #put(delivery: LocalDelivery, signal: AbortSignal): Promise<number> {
    // A part of this file being sent ends first: this copy continues it.
    await this.#parts.get(delivery.finalPath);
    const source = openSource(delivery.item);
    try {
      // Still the version judged complete (no check came before: see `putChecksSources`).
      unchanged(delivery.item, source.info);
      const start = await this.#copies.open(delivery, source, signal);
      const target = delivery.target!;
      try {
        delivery.written = await copyData(source, target, signal, {
          ...start,
          throttle: this.throttle,
        });
      } catch (error) {
        // A copy cut short by a full disk is not kept: its room is better used by whole files.
        delivery.keep = this.#copies.keepMs > 0 &&
          !isDestinationFull(toTransferError(delivery.item, error));
        throw error;
      }
      delivery.source = inspectOpenSource(delivery.item, source);
      delivery.checkedAfterRead = true;
      this.#logResumed(delivery, start.from);
      // Windows keeps no permission bits beyond read-only.
      if (Deno.build.os !== "windows") {
        whereSupported(() => fchmodSync(target, deliveredPermissions(source.info)));
      }
      whereSupported(() =>
        futimesSync(target, source.info.atimeMs / 1000, delivery.item.mtimeMs / 1000)
      );
      // Verified through the open file.
      await this.#verify(delivery.item, target, delivery.written);
      return target;
    } finally {
      closeSource(source);
    }
  }

  /** Append the source's bytes up to `item.size` to its kept copy (a new one at first). */
  async #putPart(item: TransferItem, finalPath: string, signal: AbortSignal): Promise<PartSent> {
    await makeLocalFolders(
      this.#job.remote_base_path,
      item.destination,
      !this.#deliveredBefore,
      this.#arrivedOn,
    );
    await this.#copies.sweep(dirname(finalPath));
    const delivery: LocalDelivery = {
      index: 0,
      item,
      finalPath,
      tempPath: join(dirname(finalPath), tempNameFor(basename(finalPath), this.#owner)),
      error: null,
      source: null,
      sha256: null,
      done: false,
      checkedAfterRead: false,
      target: null,
      written: null,
      keep: true,
    };
    const source = openSource(item);
    try {
      const start = await this.#copies.open(delivery, source, signal);
      const written = await copyData(source, delivery.target!, signal, {
        from: start.from,
        upTo: item.size,
        throttle: this.throttle,
      });
      fsyncSync(delivery.target!);
      return { bytes: written.bytes, appended: written.appended };
    } finally {
      closeSource(source);
      this.#copies.release(delivery);
    }
  }

  #logResumed(delivery: LocalDelivery, from: number): void {
    if (from === 0) return;
    this.#log.info("Resumed {source} at byte {from}: {appended} bytes appended", {
      job: this.#job.name,
      source: delivery.item.source,
      from,
      appended: delivery.written?.appended ?? 0,
    });
  }

  /**
   * Rename the verified copy into place (its folder is flushed by the
   * caller). Returns whether it was renamed.
   */
  async #finish(delivery: LocalDelivery): Promise<boolean> {
    const { tempPath, finalPath } = delivery;
    assertSameFile(tempPath, delivery.target!);
    // Closed first: the final name is only ever made by the rename of a finished file.
    delivery.target = closeTarget(delivery.target!);
    await Deno.rename(tempPath, finalPath);
    return true;
  }

  async #verify(item: TransferItem, target: number, written: Written): Promise<void> {
    const verify = this.#job.verify_transfer;
    const error = verifyCopy(item, verify, {
      bytesRead: written.bytes,
      size: verify === "none" ? undefined : fstatSync(target).size,
      sourceSha256: written.sha256,
      copySha256: written.sha256 === null ? null : await sha256OfDescriptor(target),
    });
    if (error) throw error;
  }
}

/** The deliveries of a batch by the folder of their final paths. */
function byFolder(deliveries: LocalDelivery[]): Map<string, LocalDelivery[]> {
  const folders = new Map<string, LocalDelivery[]>();
  for (const delivery of deliveries) {
    const folder = dirname(delivery.finalPath);
    const inFolder = folders.get(folder);
    if (inFolder === undefined) folders.set(folder, [delivery]);
    else inFolder.push(delivery);
  }
  return folders;
}

/** Flush an open file to disk without holding up the event loop. */
const fsyncOff: (fd: number) => Promise<void> = promisify(fsync);
