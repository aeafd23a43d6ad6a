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
import { createHash, type Hash } from "node:crypto";
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
import { discard, samePrefix, takeEarlierCopy } from "./local_resume.ts";
import { closeSource, deliveredPermissions, type OpenSource, openSource } from "./source_open.ts";
import { logger } from "../log/logging.ts";
import { jobOwner, tempNameFor } from "./temp_name.ts";
import { Throttle } from "./throttle.ts";
import type {
  PartSent,
  ProbeCheck,
  TransferItem,
  TransferOutcome,
  Transport,
} from "./transport.ts";

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** One file of a local batch: the open temporary copy while it is on its way. */
interface LocalDelivery extends Delivery {
  /** The temporary file: a new name, or an earlier copy's that is continued. */
  tempPath: string;
  /** The temporary file, open for reading and writing, or `null` (not created, or closed). */
  target: number | null;
  /** What the copy step wrote. */
  written: Written | null;
  /** Keep the temporary file when it is not renamed (an interrupted copy, to be resumed). */
  keep: boolean;
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
  /** Temporary files being written now (never swept nor resumed by another copy). */
  #inUse = new Set<string>();
  /** Parts of growing files being sent, by final path: a copy of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();
  #log = logger("transfer");

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
      track: (delivery) => ({ ...delivery, target: null, written: null, keep: false }),
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

  /**
   * Copy the source into its temporary file, with its mode and times, flushed
   * to disk: a new file, or an earlier copy of this file continued (see
   * `local_resume.ts`). An interrupted copy is kept when copies may be resumed.
   */
  async #put(delivery: LocalDelivery, signal: AbortSignal): Promise<void> {
    // A part of this file being sent ends first: this copy continues it.
    await this.#parts.get(delivery.finalPath);
    const source = openSource(delivery.item);
    try {
      const start = await this.#start(delivery, source, signal);
      const target = delivery.target!;
      const share = bandwidthShare(this.#job);
      const throttle = share === null ? null : new Throttle(share);
      try {
        delivery.written = await copyData(source, target, signal, { ...start, throttle });
      } catch (error) {
        delivery.keep = this.#keepMs() > 0;
        throw error;
      }
      this.#logResumed(delivery, start.from);
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

  /** Append the source's bytes up to `item.size` to its kept copy (a new one at first). */
  async #putPart(item: TransferItem, finalPath: string, signal: AbortSignal): Promise<PartSent> {
    await makeLocalFolders(this.#job.remote_base_path, item.destination);
    await this.#sweep(dirname(finalPath));
    const delivery: LocalDelivery = {
      index: 0,
      item,
      finalPath,
      tempPath: join(dirname(finalPath), tempNameFor(basename(finalPath), this.#owner)),
      error: null,
      source: null,
      sha256: null,
      target: null,
      written: null,
      keep: true,
    };
    const source = openSource(item);
    try {
      const start = await this.#start(delivery, source, signal);
      const share = bandwidthShare(this.#job);
      const throttle = share === null ? null : new Throttle(share);
      const written = await copyData(source, delivery.target!, signal, {
        from: start.from,
        upTo: item.size,
        throttle,
      });
      fsyncSync(delivery.target!);
      return { bytes: written.bytes, appended: written.appended };
    } finally {
      closeSource(source);
      this.#release(delivery);
    }
  }

  /**
   * Open the temporary file of `delivery`: an earlier copy of this file whose
   * bytes are the source's first bytes (the copy continues from its end), or
   * a new file. Returns where the copy starts and the hash of the source so far.
   */
  async #start(
    delivery: LocalDelivery,
    source: OpenSource,
    signal: AbortSignal,
  ): Promise<{ from: number; hash: Hash | null }> {
    const hashIt = this.#wantsChecksum();
    const keepMs = this.#keepMs();
    const earlier = keepMs === 0 ? null : await takeEarlierCopy(
      dirname(delivery.finalPath),
      basename(delivery.finalPath),
      this.#owner,
      keepMs,
      this.#inUse,
    );
    if (earlier !== null) {
      const hash = hashIt ? createHash("sha256") : null;
      this.#inUse.add(earlier.path);
      const fits = earlier.size <= delivery.item.size &&
        await samePrefix(source.fd, earlier.fd, earlier.size, hash, signal).catch((error) => {
          this.#inUse.delete(earlier.path);
          closeSync(earlier.fd);
          throw error;
        });
      if (fits) {
        delivery.tempPath = earlier.path;
        delivery.target = earlier.fd;
        return { from: earlier.size, hash };
      }
      this.#log.info(
        "The earlier copy of {source} at the destination does not match the source; sending it whole",
        { job: this.#job.name, source: delivery.item.source, bytes: earlier.size },
      );
      this.#inUse.delete(earlier.path);
      discard(earlier);
    }
    this.#inUse.add(delivery.tempPath);
    delivery.target = openSync(delivery.tempPath, CREATE_NEW, 0o600);
    return { from: 0, hash: hashIt ? createHash("sha256") : null };
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

  /**
   * Close the temporary file, removing it if it is still there and still ours
   * (unless it is kept to be resumed).
   */
  #release(delivery: LocalDelivery): void {
    if (delivery.target !== null) {
      if (!delivery.keep) removeIfOurs(delivery.tempPath, delivery.target);
      delivery.target = closeTarget(delivery.target);
    }
    this.#inUse.delete(delivery.tempPath);
  }

  /** How long an interrupted copy is kept to be resumed (0: not). */
  #keepMs(): number {
    return this.#job.resume_partial_hours * 3_600_000;
  }

  #wantsChecksum(): boolean {
    return this.#job.verify_transfer === "checksum";
  }

  /** Remove this daemon's leftover temporary files from `folder`, once per folder. */
  #sweep(folder: string): Promise<void> {
    let sweep = this.#swept.get(folder);
    if (sweep === undefined) {
      sweep = sweepLocalLeftovers(folder, this.#owner, this.#inUse, this.#keepMs());
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
