/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * Each file is copied from the source (opened without following links, see
 * `source_open.ts`) into a new temporary file in its destination folder,
 * created exclusively under an unpredictable name (see `temp_name.ts`), with
 * the source's permission bits (without group/other write) and mtime, flushed
 * to disk, verified through the same open file, and renamed into place once
 * the name still points at that file.
 *
 * @module
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  openSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { bandwidthShare } from "../config/bandwidth.ts";
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import { checkSource, deliver, type Delivery, type DeliverySteps } from "./deliver.ts";
import {
  assertSameFile,
  copyData,
  removeIfOurs,
  sha256OfOpenFile,
  syncFolder,
  toTransferError,
  whereSupported,
  type Written,
} from "./local_file.ts";
import { localDestinationSizes } from "./destination_sizes.ts";
import { type DiskSpace, localDiskSpace } from "./disk_space.ts";
import { makeLocalFolders, probeLocalDestination, sweepLocalLeftovers } from "./local_folders.ts";
import { closeSource, deliveredPermissions, openSource } from "./source_open.ts";
import { jobOwner, tempNameFor } from "./temp_name.ts";
import { Throttle } from "./throttle.ts";
import type { ProbeCheck, TransferItem, TransferOutcome, Transport } from "./transport.ts";

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** One file of a local batch: the open temporary copy while it is on its way. */
interface LocalDelivery extends Delivery {
  /** The temporary file, open for reading and writing, or `null` (not created, or closed). */
  target: number | null;
  /** What the copy step wrote. */
  written: Written | null;
}

/** Copies into `remote_base_path` on this machine: temp name, verify, rename. */
export class LocalTransport implements Transport {
  readonly method = "local" as const;
  readonly maxBatchFiles = 1;
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  #owner: string;
  /** Destination folders already swept of this daemon's leftovers, and their sweeps. */
  #swept = new Map<string, Promise<void>>();
  /** Temporary files being written now (never swept). */
  #inUse = new Set<string>();

  constructor(job: JobConfig) {
    this.#job = job;
    this.#owner = jobOwner(job);
  }

  destinationSizes(destinations: string[]): Promise<Map<string, number | null>> {
    return localDestinationSizes(this.#job.remote_base_path, destinations);
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

  probe(): Promise<ProbeCheck[]> {
    return probeLocalDestination(this.#job.remote_base_path);
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
      track: (delivery) => ({ ...delivery, target: null, written: null }),
      makeFolders: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          try {
            await makeLocalFolders(this.#job.remote_base_path, delivery.item.destination);
            await this.#sweep(dirname(delivery.finalPath));
          } catch (error) {
            fail(delivery, error, signal);
          }
        }
      },
      put: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          try {
            await this.#put(delivery, signal);
          } catch (error) {
            fail(delivery, error, signal);
          }
        }
      },
      finish: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          try {
            if (delivery.error === null) await this.#finish(delivery);
          } catch (error) {
            fail(delivery, error, signal);
          }
          this.#release(delivery);
        }
      },
      end: (deliveries) => {
        for (const delivery of deliveries) this.#release(delivery);
        return Promise.resolve();
      },
    };
  }

  /** Copy the source into a new temporary file, with its mode and times, flushed to disk. */
  async #put(delivery: LocalDelivery, signal: AbortSignal): Promise<void> {
    const source = openSource(delivery.item);
    try {
      this.#inUse.add(delivery.tempPath);
      const target = delivery.target = openSync(delivery.tempPath, CREATE_NEW, 0o600);
      const share = bandwidthShare(this.#job);
      const throttle = share === null ? null : new Throttle(share);
      delivery.written = await copyData(source, target, signal, this.#wantsChecksum(), throttle);
      // Windows keeps no permission bits beyond read-only.
      if (Deno.build.os !== "windows") {
        whereSupported(() => fchmodSync(target, deliveredPermissions(source.info)));
      }
      whereSupported(() =>
        futimesSync(target, source.info.atimeMs / 1000, delivery.item.mtimeMs / 1000)
      );
      fsyncSync(target);
    } finally {
      closeSource(source);
    }
  }

  /** Verify the copy through its open descriptor, then rename it into place. */
  async #finish(delivery: LocalDelivery): Promise<void> {
    const { item, tempPath, finalPath } = delivery;
    await this.#verify(item, delivery.target!, delivery.written!);
    // The source must not have changed while the copy was verified.
    checkSource(delivery);
    if (delivery.error) return;
    assertSameFile(tempPath, delivery.target!);
    // Closed first: the final name is only ever made by the rename of a finished file.
    delivery.target = closeTarget(delivery.target!);
    await Deno.rename(tempPath, finalPath);
    await syncFolder(dirname(finalPath));
    delivery.sha256 = delivery.written!.sha256;
  }

  /** Close the temporary file, removing it if it is still there and still ours. */
  #release(delivery: LocalDelivery): void {
    if (delivery.target !== null) {
      removeIfOurs(delivery.tempPath, delivery.target);
      delivery.target = closeTarget(delivery.target);
    }
    this.#inUse.delete(delivery.tempPath);
  }

  #wantsChecksum(): boolean {
    return this.#job.verify_transfer === "checksum";
  }

  /** Remove this daemon's leftover temporary files from `folder`, once per folder. */
  #sweep(folder: string): Promise<void> {
    let sweep = this.#swept.get(folder);
    if (sweep === undefined) {
      sweep = sweepLocalLeftovers(folder, this.#owner, this.#inUse);
      this.#swept.set(folder, sweep);
    }
    return sweep;
  }

  async #verify(item: TransferItem, target: number, written: Written): Promise<void> {
    if (written.bytes !== item.size) {
      throw new TransferError(
        `Cannot send ${item.source}: read ${written.bytes} bytes, expected ${item.size} (source changed)`,
        "retry",
      );
    }
    if (this.#job.verify_transfer === "none") return;
    const size = fstatSync(target).size;
    if (size !== item.size) {
      throw new TransferError(
        `Verification failed for ${item.source}: destination has ${size} bytes, expected ${item.size}`,
        "retry",
      );
    }
    if (written.sha256 !== null && await sha256OfOpenFile(target) !== written.sha256) {
      throw new TransferError(
        `Verification failed for ${item.source}: SHA-256 differs at the destination`,
        "retry",
      );
    }
  }
}

/** Close `fd`; always `null`. */
function closeTarget(fd: number): null {
  closeSync(fd);
  return null;
}
