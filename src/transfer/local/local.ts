/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * Each file is copied from the source (opened without following links, see
 * `source.ts`) into a new temporary file in its destination folder,
 * created exclusively under an unpredictable name (see `temp_name.ts`), with
 * the source's permission bits (without group/other write) and mtime,
 * verified through the same open file and flushed to disk, and put into
 * place once the name still points at that file (renamed; linked where it may
 * replace nothing: see `renamed.ts`); the folders of a batch are flushed once
 * each.
 *
 * @module
 */
import { fsync } from "node:fs";
import { promisify } from "node:util";
import { basename, dirname, join } from "node:path";
import { bandwidthLimit } from "../../config/sizes.ts";
import type { JobConfig } from "../../config/types.ts";
import { FolderFileSystem } from "../../config/file_systems.ts";
import { isDestinationFull, TransferError } from "../../errors.ts";
import { deliver, type DeliverySteps } from "../deliver.ts";
import { sendKeepingOthers } from "../keep_others.ts";
import { LocalCopier } from "./copier.ts";
import { place, replacedError } from "./renamed.ts";
import { AnswerWatch, assertSameFile, byFolder, CALLS_HERE, copyData, syncFolder } from "./copy.ts";
import { type DestinationCalls, destinationCalls, verifyOpenCopy, whereSupported } from "./copy.ts";
import { toTransferError } from "./failures.ts";
import { localDestinationSha256, localDestinationSizes } from "../destination_sizes.ts";
import { localDestinationVersions } from "../destination_sizes.ts";
import { type DiskSpace, localDiskSpace } from "../../config/free_space.ts";
import { type MadeFolders, makeLocalFolders, probeLocalDestination } from "./folders.ts";
import { vanishedAsBaseGone } from "./folders.ts";
import type { Ledger } from "../../ledger/ledger.ts";
import { closeWriter, type LocalDelivery, LocalTempCopies } from "./temp_copies.ts";
import { closeSource, deliveredPermissions, inspectOpenSource } from "../source.ts";
import { openSource, unchanged } from "../source.ts";
import { jobOwners, tempNameFor } from "../temp_name.ts";
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
  /** A batch's files are copied in turn; it shares its ledger writes, and ends well in time. */
  readonly maxBatchFiles = 64;
  readonly maxBatchBytes = 64 * 1024 * 1024;
  #job: JobConfig;
  /** The temporary copies: new, continued, released, swept. */
  #copies: LocalTempCopies;
  /** Parts of growing files being sent, by final path: a copy of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();
  /** Final paths whose temporary copy vanished before its rename (a share unmounted meanwhile). */
  #vanished = new Set<string>();
  /** Files arrived in the base folder before (see `Transport.deliveredBefore`): not made again. */
  #deliveredBefore = false;
  /** The file system they arrived on: an empty folder on another one is an unmounted share. */
  #arrivedOn: FolderFileSystem;
  /** A call the destination did not answer, until it returns: no other is started meanwhile. */
  #unanswered: Promise<unknown> | null = null;
  /** Copies small files on a local disk on a thread of its own. */
  #copier = new LocalCopier();
  /** Paces all copies together at `bandwidth_limit` (none without one). */
  readonly throttle: Throttle | null;

  /** The base folder, and whether `--to` gave it (a run without a config file), for failures. */
  readonly #base: { path: string; fromTo: boolean };

  /** `ledger`: where the file system files arrived on is kept (see `FolderFileSystem`). */
  constructor(job: JobConfig, ledger: Ledger | null = null, fromTo = false) {
    this.#job = job;
    this.#base = { path: job.remote_base_path, fromTo };
    this.#arrivedOn = new FolderFileSystem(job.remote_base_path, ledger, "arrived");
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#copies = new LocalTempCopies(job, jobOwners(job, ledger));
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

  /** See `Transport.destinationSizes`; rejects when the destination does not answer in time. */
  destinationSizes(paths: string[], stop?: AbortSignal): Promise<Map<string, number | null>> {
    return this.#answered(() => localDestinationSizes(this.#job.remote_base_path, paths), stop);
  }

  /** See `Transport.destinationVersions`; rejects when the destination does not answer in time. */
  destinationVersions(paths: string[], stop?: AbortSignal) {
    return this.#answered(() => localDestinationVersions(this.#job.remote_base_path, paths), stop);
  }

  /** See `Transport.destinationSha256`; rejects when the destination does not answer in time. */
  destinationSha256(paths: string[], stop?: AbortSignal): Promise<Map<string, string | null>> {
    return this.#answered(() => localDestinationSha256(this.#job.remote_base_path, paths), stop);
  }

  /** `call` on the destination; rejects once unanswered for the transfer timeout (stopping: less). */
  async #answered<T>(call: () => Promise<T>, stop?: AbortSignal): Promise<T> {
    if (this.#unanswered !== null) throw new Error("the destination does not answer");
    const answers = new AnswerWatch(this.#job.transfer_timeout_seconds * 1000, stop);
    const calling = call();
    try {
      return await Promise.race([
        answers.on(calling),
        answers.silent.then(() => {
          this.#unanswered = calling.catch(() => {}).finally(() => this.#unanswered = null);
          throw new Error("the destination does not answer");
        }),
      ]);
    } finally {
      answers.stop();
    }
  }

  /** See `Transport.diskSpace`; rejects when the destination does not answer in time. */
  diskSpace(_signal?: AbortSignal, _options?: { onlyIfFree?: boolean }): Promise<DiskSpace | null> {
    return this.#answered(() => localDiskSpace(this.#job.remote_base_path));
  }

  describeTarget(destination: string): string {
    return join(this.#job.remote_base_path, ...destination.split("/"));
  }

  /**
   * Deliver `items` (see the module doc). A call on the destination that
   * does not return within `transfer_timeout_seconds` gives the batch up
   * (see {@linkcode AnswerWatch}): every file fails as the destination not
   * answering, and the job waits for it. A file not this job's under a final name stays (see
   * `keep_others.ts`).
   */
  send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const send = (rest: TransferItem[]) => this.#send(rest, signal);
    return sendKeepingOthers(this, items, signal, send, (item) => this.#notAnswering(item));
  }

  #send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const notAnswered = () => items.map((item) => ({ item, error: this.#notAnswering(item) }));
    // While an earlier call still waits on the share, another would only wait beside it.
    if (this.#unanswered !== null) return Promise.resolve(notAnswered());
    const answers = new AnswerWatch(this.#job.transfer_timeout_seconds * 1000, signal);
    const base = this.#job.remote_base_path;
    const delivering = answers.on(destinationCalls(base)).then(async (calls) => {
      const stop = AbortSignal.any([signal, answers.signal]);
      const made: MadeFolders = new Map();
      const outcomes = await deliver(items, this.#steps(answers, calls, made), stop);
      return await answers.on(vanishedAsBaseGone(outcomes, base, this.#arrivedOn, made));
    });
    const unanswered = answers.silent.then(() => {
      // Abandoned to its hung call, it settles (or not) on its own.
      this.#unanswered = delivering.catch(() => {}).finally(() => this.#unanswered = null);
      return notAnswered();
    });
    return Promise.race([delivering, unanswered]).finally(() => answers.stop());
  }

  #notAnswering(item: TransferItem): TransferError {
    return new TransferError(
      `Cannot send ${item.source} to ${this.describeTarget(item.destination)}: the destination ` +
        `${this.#job.remote_base_path} did not answer for ${this.#job.transfer_timeout_seconds} s ` +
        "(a share whose server stopped answering?); files wait until it answers again",
      "retry-later",
    );
  }

  /** See {@linkcode Transport.sendPart}: a part of a growing file, appended to its kept copy. */
  sendPart(item: TransferItem, signal: AbortSignal): Promise<PartSent> {
    const finalPath = this.describeTarget(item.destination);
    const before = this.#parts.get(finalPath);
    const sending = (async () => {
      await before;
      const [base, made]: [string, MadeFolders] = [this.#job.remote_base_path, new Map()];
      try {
        return await this.#putPart(item, signal, made);
      } catch (error) {
        const failed = {
          item,
          error: toTransferError(item, error, dirname(finalPath), this.#base),
        };
        throw (await vanishedAsBaseGone([failed], base, this.#arrivedOn, made, true))[0].error;
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
    const { fromTo } = this.#base;
    return probeLocalDestination(this.#job, this.#arrivedOn, this.#deliveredBefore, fromTo);
  }

  close(): Promise<void> {
    this.#copier.close();
    return Promise.resolve();
  }

  /**
   * The delivery steps: each file on its own, one after another; each call
   * on the destination made with `calls` and timed by `answers`; the folders made, in `made`.
   */
  #steps(
    answers: AnswerWatch,
    calls: DestinationCalls,
    made: MadeFolders,
  ): DeliverySteps<LocalDelivery> {
    const on = answers.on.bind(answers);
    const fail = (delivery: LocalDelivery, error: unknown, signal: AbortSignal) => {
      if (signal.aborted) throw signal.reason;
      const where = dirname(delivery.finalPath);
      delivery.error = toTransferError(delivery.item, error, where, this.#base);
    };
    return {
      place: (item) => {
        const finalPath = this.describeTarget(item.destination);
        const tempName = tempNameFor(basename(finalPath), this.#copies.owner);
        return { finalPath, tempPath: join(dirname(finalPath), tempName) };
      },
      track: (delivery) => ({ ...delivery, target: null, written: null, keep: false }),
      putChecksSources: true,
      // Each destination folder once per batch: made, and swept of this daemon's leftovers.
      makeFolders: async (deliveries, signal) => {
        for (const [folder, inFolder] of byFolder(deliveries)) {
          try {
            made.set(folder, await on(this.#makeFolders(inFolder[0].item.destination)));
          } catch (error) {
            for (const delivery of inFolder) fail(delivery, error, signal);
          }
        }
      },
      // Small files go to the copier; others' mode, times, checks, flush go on during the next.
      put: async (deliveries, signal) => {
        const settling: Array<Promise<void>> = [];
        const putHere = async (delivery: LocalDelivery) => {
          try {
            const settle = await this.#put(delivery, signal, on, calls);
            settling.push(settle().catch((error) => fail(delivery, error, signal)));
          } catch (error) {
            fail(delivery, error, signal);
          }
        };
        const toCopier =
          calls === CALLS_HERE && this.throttle === null && this.#copier.welcomes(deliveries.length)
            ? deliveries.filter((d) =>
              this.#copier.takes(d) && !this.#parts.has(d.finalPath) && this.#copies.claimNew(d)
            )
            : [];
        const copied = on(this.#copier.put(toCopier, {
          verify: this.#job.verify_transfer,
          setMode: Deno.build.os !== "windows",
        }, (delivery, error) => fail(delivery, error, signal)));
        copied.catch(() => {}); // Awaited below: not unhandled meanwhile.
        for (const delivery of deliveries) {
          if (!toCopier.includes(delivery)) await putHere(delivery);
        }
        // Those the copier could not take (it did not start) are copied here.
        for (const delivery of await copied) await putHere(delivery);
        await Promise.all(settling);
      },
      // The renames of a batch are flushed once per folder, after the last of them.
      finish: async (deliveries, signal) => {
        const renamed: LocalDelivery[] = [];
        const copied = await on(this.#copier.finish(deliveries));
        for (const [delivery, error] of copied.renamed) {
          if (error !== null) fail(delivery, error, signal);
          else renamed.push(delivery);
          // A copy that vanished from under an earlier attempt may be back (the share mounted again).
          if (error === null && this.#vanished.delete(delivery.finalPath)) {
            await this.#copies.drop(delivery.finalPath).catch(() => {});
          }
        }
        for (const delivery of copied.lost) this.#vanished.add(delivery.finalPath);
        for (const delivery of deliveries) {
          if (copied.renamed.has(delivery)) {
            await this.#copies.release(delivery, calls);
            continue;
          }
          try {
            if (delivery.error === null && await on(this.#finish(delivery, calls))) {
              renamed.push(delivery);
            }
          } catch (error) {
            fail(delivery, error, signal);
          }
          await on(this.#copies.release(delivery, calls));
        }
        for (const [folder, inFolder] of byFolder(renamed)) {
          try {
            // Flushed by the copier after its renames; again for those renamed here since.
            const flushed = copied.folders.get(folder);
            if (flushed) throw flushed;
            if (inFolder.some((delivery) => !copied.renamed.has(delivery))) {
              await on(syncFolder(folder));
            }
            for (const delivery of inFolder) delivery.sha256 = delivery.written!.sha256;
            await on(this.#arrivedOn.remember(inFolder[0].item.destination));
          } catch (error) {
            for (const delivery of inFolder) fail(delivery, error, signal);
          }
        }
      },
      end: async (deliveries) => {
        await on(this.#copier.drop(deliveries));
        for (const delivery of deliveries) await on(this.#copies.release(delivery, calls));
      },
    };
  }

  /**
   * Copy the source into its temporary file, with its mode and times: a new
   * file, or an earlier copy of this file continued (see
   * `local/temp_copies.ts`), verified through the open file. The source is
   * checked again once read, through the file it was read from (still the
   * version that was queued: see `Delivery.checkedAfterRead`). An interrupted
   * copy is kept when copies may be resumed. Returns what is left to do once
   * the source is closed: the copy's mode and times, its verification and its
   * flush to disk.
   */
  async #put(
    delivery: LocalDelivery,
    signal: AbortSignal,
    on: AnswerWatch["on"],
    calls: DestinationCalls,
  ): Promise<() => Promise<void>> {
    // A part of this file being sent ends first: this copy continues it.
    await this.#parts.get(delivery.finalPath);
    const source = openSource(delivery.item);
    try {
      // Still the version judged complete (no check came before: see `putChecksSources`).
      unchanged(delivery.item, source.info);
      const start = await on(this.#copies.open(delivery, source, signal, calls));
      const target = delivery.target!;
      try {
        delivery.written = await copyData(source, target, signal, {
          ...start,
          throttle: this.throttle,
          answers: on,
          writer: delivery.writer,
        });
      } catch (error) {
        // A copy cut short by a full disk is not kept: its room is better used by whole files.
        delivery.keep = this.#copies.keepMs > 0 &&
          !isDestinationFull(toTransferError(delivery.item, error));
        throw error;
      }
      delivery.source = inspectOpenSource(delivery.item, source);
      delivery.checkedAfterRead = true;
      this.#copies.logResumed(delivery, start.from);
      const { atimeMs } = source.info;
      const permissions = deliveredPermissions(source.info);
      const written = delivery.written;
      return async () => {
        await Promise.all([
          // Windows keeps no permission bits beyond read-only.
          Deno.build.os === "windows"
            ? null
            : whereSupported(() => on(calls.fchmod(target, permissions))),
          whereSupported(() =>
            on(calls.futimes(target, atimeMs / 1000, delivery.item.mtimeMs / 1000))
          ),
        ]);
        // Verified through the open file.
        await on(verifyOpenCopy(delivery.item, this.#job.verify_transfer, target, written, calls));
        await on(fsyncOff(target));
        closeWriter(delivery);
      };
    } finally {
      closeSource(source);
    }
  }

  /** Append the source's bytes up to `item.size` to its kept copy (a new one at first). */
  async #putPart(item: TransferItem, signal: AbortSignal, made: MadeFolders): Promise<PartSent> {
    const finalPath = this.describeTarget(item.destination);
    made.set(dirname(finalPath), await this.#makeFolders(item.destination));
    const delivery = this.#copies.partDelivery(item, finalPath);
    const calls = await destinationCalls(this.#job.remote_base_path);
    const source = openSource(item);
    try {
      const start = await this.#copies.open(delivery, source, signal, calls);
      const written = await copyData(source, delivery.target!, signal, {
        from: start.from,
        upTo: item.size,
        throttle: this.throttle,
      });
      await fsyncOff(delivery.target!);
      // Still under its name: a copy whose folder was removed meanwhile fails the part.
      await assertSameFile(delivery.tempPath, delivery.target!, calls);
      return { bytes: written.bytes, appended: written.appended };
    } finally {
      closeSource(source);
      await this.#copies.release(delivery, calls);
    }
  }

  /** Make the folders of `destination`, swept of this daemon's leftovers; the file's folder. */
  async #makeFolders(destination: string): Promise<Deno.FileInfo> {
    const { path, fromTo } = this.#base;
    const folder = await makeLocalFolders(
      path,
      destination,
      !this.#deliveredBefore,
      this.#arrivedOn,
      fromTo,
    );
    await this.#copies.sweep(dirname(this.describeTarget(destination)));
    return folder;
  }

  /** Rename the verified copy into place (its folder flushed by the caller); true once renamed. */
  async #finish(delivery: LocalDelivery, calls: DestinationCalls): Promise<boolean> {
    const { tempPath, finalPath } = delivery;
    const lost = (error: unknown) => {
      this.#vanished.add(finalPath);
      throw error;
    };
    const copy = await assertSameFile(tempPath, delivery.target!, calls).catch(lost);
    // Closed first: the final name is only ever made by the rename of a finished file.
    await calls.close(delivery.target!);
    delivery.target = null;
    // Over nothing another put there since the look, for a copy that may replace nothing.
    const { noReplace } = delivery.item;
    if (await place(tempPath, finalPath, copy, noReplace, calls.lstat, calls.remove)) {
      lost(replacedError(tempPath));
    }
    // The copy that vanished from under an earlier attempt may be back (the share mounted again).
    if (this.#vanished.delete(finalPath)) await this.#copies.drop(finalPath).catch(() => {});
    return true;
  }
}

/** Flush an open file to disk without holding up the event loop. */
const fsyncOff: (fd: number) => Promise<void> = promisify(fsync);
