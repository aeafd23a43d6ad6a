/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * Each file is copied from the source (opened without following links, see
 * `source.ts`) into a new temporary file in its destination folder,
 * created exclusively under an unpredictable name (see `temp_name.ts`), with
 * the source's permission bits (without group/other write) and mtime, flushed
 * to disk, verified through the same open file, and renamed into place once
 * the name still points at that file.
 *
 * @module
 */
import { fchmodSync, fstatSync, fsyncSync, futimesSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { bandwidthLimit } from "../../config/bandwidth.ts";
import type { JobConfig } from "../../config/types.ts";
import { isDestinationFull } from "../../errors.ts";
import { checkSource, deliver, type DeliverySteps, verifyCopy } from "../deliver.ts";
import {
  assertSameFile,
  copyData,
  sha256OfOpenFile,
  syncFolder,
  toTransferError,
  whereSupported,
  type Written,
} from "./copy.ts";
import { localDestinationSha256, localDestinationSizes } from "../destination_sizes.ts";
import { type DiskSpace, localDiskSpace } from "../disk_space.ts";
import { makeLocalFolders, probeLocalDestination } from "./folders.ts";
import { closeTarget, type LocalDelivery, LocalTempCopies } from "./temp_copies.ts";
import { closeSource, deliveredPermissions, openSource } from "../source.ts";
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
  readonly maxBatchFiles = 1;
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  #owner: string;
  /** The temporary copies: new, continued, released, swept. */
  #copies: LocalTempCopies;
  /** Parts of growing files being sent, by final path: a copy of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();
  #log = logger("transfer");
  /** Paces all copies together at `bandwidth_limit` (none without one). */
  readonly throttle: Throttle | null;

  constructor(job: JobConfig) {
    this.#job = job;
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#owner = jobOwner(job);
    this.#copies = new LocalTempCopies(job, this.#owner);
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
    return probeLocalDestination(this.#job.remote_base_path, this.#job.min_free_space);
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
            await this.#copies.sweep(dirname(delivery.finalPath));
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
          this.#copies.release(delivery);
        }
      },
      end: (deliveries) => {
        for (const delivery of deliveries) this.#copies.release(delivery);
        return Promise.resolve();
      },
    };
  }

  /**
   * Copy the source into its temporary file, with its mode and times, flushed
   * to disk: a new file, or an earlier copy of this file continued (see
   * `local/resume.ts`). An interrupted copy is kept when copies may be resumed.
   */
  async #put(delivery: LocalDelivery, signal: AbortSignal): Promise<void> {
    // A part of this file being sent ends first: this copy continues it.
    await this.#parts.get(delivery.finalPath);
    const source = openSource(delivery.item);
    try {
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

  async #verify(item: TransferItem, target: number, written: Written): Promise<void> {
    const verify = this.#job.verify_transfer;
    const error = verifyCopy(item, verify, {
      bytesRead: written.bytes,
      size: verify === "none" ? undefined : fstatSync(target).size,
      sourceSha256: written.sha256,
      copySha256: written.sha256 === null ? null : await sha256OfOpenFile(target),
    });
    if (error) throw error;
  }
}
