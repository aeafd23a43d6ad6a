/**
 * The delivery steps of one SSH batch (see `deliver.ts`), over one shared connection:
 * 1. one ssh call creates the destination folders and, in each, the batch's own hidden upload
 *    folder (see `ssh/remote_folders.ts`);
 * 2. upload calls of the method (scp or rsync) copy the sources, under their own names, into
 *    those upload folders, several calls side by side (with `remote_sync`, a large batch has the
 *    destination flushed every second meanwhile);
 * 3. one ssh call verifies each copy, renames the good ones into place and removes the rest (see
 *    `ssh/finish.ts`).
 *
 * A batch of small files into one folder (a camera writing its images into the night folder; no
 * bandwidth limit) goes in ONE call instead: the files are read whole, hashed, and sent (a tar
 * archive of them, which keeps their permission bits and times; on a host without tar, one file's
 * bytes) as the standard input of a script that makes the folder, receives the copies, verifies
 * them against those hashes and renames them (`ssh/one_call.ts`, `SshSession.runStreamed`). That
 * is two round trips on a long link instead of about a dozen, and one call for a whole burst.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { bandwidthLimit } from "../../config/sizes.ts";
import { CommandError, TransferError } from "../../errors.ts";
import { classifyFailure, receivedFor, RemoteFailure } from "../classify.ts";
import {
  checkPartSource,
  checkSource,
  type Delivery,
  type DeliverySteps,
  live,
} from "../deliver.ts";
import {
  baseFailureReason,
  type EarlierCopySpec,
  folderFailedReason,
  type FolderFailure,
  type FolderSpec,
  makeFolders,
} from "./remote_folders.ts";
import { logger } from "../../log/logging.ts";
import { hashSource } from "../source.ts";
import { sayContinued, type SshDelivery, sshDelivery, type SshMethod } from "./method.ts";
import { cutOff, finishBatch, planFinish, settleFinish } from "./finish.ts";
import { flushWhileUploading } from "./remote_sync.ts";
import { oneCallFailures, oneCallScript, readPayload } from "./one_call.ts";
import { remoteJoin } from "./endpoint.ts";
import { uploadFolderName, uploadFolderPrefix } from "../temp_name.ts";
import type { TransferItem } from "../transport.ts";
import type { UploadClaim } from "./upload_folders.ts";
import type { ResultLine } from "./remote_script.ts";

/** Upload calls a batch runs at once. */
const UPLOAD_CALLS_AT_ONCE = 3;

/** A file up to this size may go in one call with its batch (see the module doc). */
export const ONE_CALL_FILE_BYTES = 8 * 1024 * 1024;

/** A batch of up to this many bytes may go in one call (read into memory whole). */
export const ONE_CALL_BATCH_BYTES = 32 * 1024 * 1024;

/** The steps of one batch; create one per `send`. */
export class SshBatch implements DeliverySteps<SshDelivery> {
  readonly #method: SshMethod;
  /** A new name for every batch: nobody can prepare anything under it. */
  readonly #uploadName: string;
  /** The destination folders of the deliveries that took part. */
  #folders: string[] = [];
  #claim: UploadClaim | null = null;
  #log = logger("transfer");
  /** The upload folders this batch created; `null` when the call that makes them failed. */
  #created: string[] | null = [];
  #cleanedUp = false;
  /** Parts of growing files: the copies are kept in the upload folder, never renamed. */
  readonly #part: boolean;
  #resumed = new Map<number, number>();
  /** The folders of a batch sent in one call, prepared by that call (see the module doc). */
  #oneCall: FolderSpec[] | null = null;

  constructor(method: SshMethod, part = false) {
    this.#method = method;
    this.#uploadName = uploadFolderName(method.owner);
    this.#part = part;
  }

  /** Bytes of the earlier copy the delivery at `index` continued (0: none). */
  resumedFrom(index: number): number {
    return this.#resumed.get(index) ?? 0;
  }

  /** Seconds an interrupted copy is kept to be continued (0: not). */
  get #keepSeconds(): number {
    const method = this.#method;
    return method.resumesCopies ? method.job.resume_partial_hours * 3600 : 0;
  }

  place(item: TransferItem): { finalPath: string; tempPath: string } {
    const finalPath = remoteJoin(this.#method.base, item.destination);
    const { dirname, basename, join } = posix;
    return { finalPath, tempPath: join(dirname(finalPath), this.#uploadName, basename(finalPath)) };
  }

  track(delivery: Delivery): SshDelivery {
    return sshDelivery(delivery);
  }

  async makeFolders(deliveries: SshDelivery[], signal: AbortSignal): Promise<void> {
    const method = this.#method;
    this.#folders = [...new Set(deliveries.map((d) => posix.dirname(d.finalPath)))];
    const claim = this.#claim = await method.uploadFolders.claim(this.#folders, this.#uploadName);
    const toSweep = new Set(claim.toSweep);
    try {
      // Unreachable: every call would fail the same way (and wait as long), so fail the batch now.
      const unreachable = await method.session.connect({ timeoutMs: method.timeoutMs, signal });
      if (unreachable !== null) throw unreachable;
    } catch (error) {
      return this.#unprepared(deliveries, error, signal);
    }
    // From here on copies may exist: the finishing step removes those not renamed.
    for (const delivery of deliveries) delivery.attempted = true;
    const specs = this.#folders.map((folder) => ({
      folder,
      uploadName: this.#uploadName,
      sweepPrefix: toSweep.has(folder) ? uploadFolderPrefix(method.owner) : null,
      keepSeconds: this.#keepSeconds,
      earlier: method.earlier,
    }));
    if (this.#goesInOneCall(deliveries)) this.#oneCall = specs;
    else await this.#prepareFolders(deliveries, specs, signal);
  }

  /** The folders could not be prepared: every delivery fails with `error`. */
  #unprepared(deliveries: SshDelivery[], error: unknown, signal: AbortSignal): void {
    if (signal.aborted) throw signal.reason;
    this.#claim!.prepared(false);
    this.#created = null;
    for (const delivery of deliveries) delivery.error = this.#failure(error, delivery);
  }

  /** Make the folders of `specs` and the upload folders in them with one call. */
  async #prepareFolders(
    deliveries: SshDelivery[],
    specs: FolderSpec[],
    signal: AbortSignal,
  ): Promise<void> {
    const method = this.#method;
    const claim = this.#claim!;
    let failures: Map<number, FolderFailure>;
    let earlierCopies: Map<number, number>;
    try {
      ({ failures, earlierCopies } = await makeFolders(
        method.session,
        method.base,
        specs,
        { timeoutMs: method.timeoutMs, signal, remoteBase: method.remoteBase },
        this.#earlierCopySpecs(deliveries, claim),
      ));
    } catch (error) {
      return this.#unprepared(deliveries, error, signal);
    }
    claim.prepared(true);
    // Only the upload folders this batch created are removed at the end, never another's.
    this.#created = this.#folders.filter((_, index) => !failures.has(index))
      .map((folder) => posix.join(folder, this.#uploadName));
    for (const delivery of deliveries) {
      const failure = failures.get(this.#folders.indexOf(posix.dirname(delivery.finalPath)));
      if (failure) delivery.error = this.#folderError(delivery, failure);
      delivery.resumedFrom = earlierCopies.get(delivery.index) ?? 0;
      this.#resumed.set(delivery.index, delivery.resumedFrom);
    }
    sayContinued(method, deliveries, this.#part);
  }

  /** What to look for in each folder: an earlier copy of each file (when copies are resumed). */
  #earlierCopySpecs(deliveries: SshDelivery[], claim: UploadClaim): EarlierCopySpec[] {
    const keepSeconds = this.#keepSeconds;
    if (keepSeconds === 0) return [];
    return deliveries.map((delivery) => {
      const folder = posix.dirname(delivery.finalPath);
      return {
        item: delivery.index,
        folder,
        uploadName: this.#uploadName,
        name: posix.basename(delivery.finalPath),
        size: delivery.item.size,
        active: claim.othersActive(folder),
        prefix: uploadFolderPrefix(this.#method.owner),
        keepSeconds,
      };
    });
  }

  async put(deliveries: SshDelivery[], signal: AbortSignal): Promise<void> {
    const oneCall = this.#oneCall;
    if (oneCall !== null) {
      if (await this.#putInOneCall(deliveries, oneCall, signal)) return;
      // The host lacks a tool the call needs: this batch (and the next) the usual way.
      this.#oneCall = null;
      await this.#prepareFolders(deliveries, oneCall, signal);
      deliveries = live(deliveries);
    }
    const method = this.#method;
    if (method.job.verify_transfer === "checksum" && !method.uploadVerifiesCopies) {
      // Hashed while the upload runs; awaited by the finishing step.
      for (const delivery of deliveries) {
        delivery.sourceSha256 = hashSource(delivery.item);
        delivery.sourceSha256.catch(() => {});
      }
    }
    const queue = method.uploadCalls(deliveries);
    const stopFlushing = flushWhileUploading(method, deliveries, signal);
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        signal.throwIfAborted();
        // Each source is checked again right before the call that reads it.
        for (const delivery of next) (this.#part ? checkPartSource : checkSource)(delivery);
        const group = live(next);
        if (group.length > 0) await this.#uploadGroup(group, signal);
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.min(UPLOAD_CALLS_AT_ONCE, queue.length) }, worker),
      );
    } finally {
      await stopFlushing();
    }
  }

  async finish(deliveries: SshDelivery[], signal: AbortSignal): Promise<void> {
    // Parts stay in their upload folders, to be continued by the next send of the file.
    if (this.#part || this.#oneCall !== null) return;
    const attempted = deliveries.filter((delivery) => delivery.attempted);
    if (attempted.length === 0) return;
    const method = this.#method;
    const kept = await finishBatch(this.#finishContext(), attempted, this.#created ?? [], signal);
    this.#cleanedUp = kept !== null && kept.folders.length === 0 && this.#created !== null;
    for (const delivery of attempted) {
      // Only a copy something was written to: an upload that failed at its start left none.
      if (kept?.copies.has(delivery.index)) {
        this.#log.info("Kept the interrupted copy of {source} to continue it at the next attempt", {
          job: method.job.name,
          source: delivery.item.source,
        });
      }
    }
  }

  end(): Promise<void> {
    // Stopped, unreachable or copies kept: its upload folders may be left, swept next time.
    if (this.#claim !== null && !this.#cleanedUp && !this.#part) {
      this.#claim.leftBehind(this.#folders);
      // (Those a later batch sweeps first are already gone then; a thousand bound the list.)
      const left = this.#method.uploadsLeft;
      if (this.#keepSeconds === 0 && left.size < 1000) {
        for (const folder of this.#created ?? []) left.add(folder);
      }
    }
    this.#claim?.release();
    return Promise.resolve();
  }

  /** What the finishing step needs. */
  #finishContext() {
    const method = this.#method;
    return {
      session: method.session,
      job: method.job,
      context: method.context,
      timeoutMs: method.timeoutMs,
      describeTarget: (destination: string) => method.describeTarget(destination),
      keepInterrupted: this.#keepSeconds > 0,
      unflushed: method.unflushed,
    };
  }

  /** Whether the batch goes in one call (see the module doc). */
  #goesInOneCall(deliveries: SshDelivery[]): boolean {
    const method = this.#method;
    const bytes = deliveries.reduce((sum, delivery) => sum + delivery.item.size, 0);
    const folders = new Set(deliveries.map((delivery) => posix.dirname(delivery.finalPath)));
    return !this.#part && bandwidthLimit(method.job) === null && folders.size === 1 &&
      deliveries.every((delivery) =>
        delivery.item.size <= ONE_CALL_FILE_BYTES &&
        !method.partsSent.has(delivery.item.destination)
      ) &&
      bytes <= ONE_CALL_BATCH_BYTES && deliveries.length <= method.oneCallFiles;
  }

  /**
   * Send a batch of small files into one folder in one call: the folder
   * (`specs`), the copies on standard input, verification against the bytes
   * read, and the renames. Returns `false`, having done nothing, when the
   * host lacks a tool the call needs (it is then not tried again).
   */
  async #putInOneCall(
    deliveries: SshDelivery[],
    specs: FolderSpec[],
    signal: AbortSignal,
  ): Promise<boolean> {
    const method = this.#method;
    const claim = this.#claim!;
    // A tar archive, unless the host has no tar (then only single files come here).
    const archive = method.oneCallFiles > 1;
    const read = readPayload(deliveries, archive);
    if (read === null) {
      claim.prepared(false);
      return true;
    }
    const sent = read.files.map(({ delivery }) => delivery);
    if (method.job.verify_transfer === "checksum") {
      for (const { delivery, data } of read.files) {
        delivery.sourceSha256 = Promise.resolve(createHash("sha256").update(data).digest("hex"));
      }
    }
    const ctx = this.#finishContext();
    const folder = posix.dirname(sent[0].finalPath);
    const plan = await planFinish(ctx, sent, [posix.join(folder, this.#uploadName)]);
    // A copy cut short (the call ended early) is never renamed, whatever verify_transfer says.
    const sizes = new Map(sent.map((delivery) => [delivery.index, delivery.item.size]));
    for (const entry of plan.entries) entry.expectedSize = sizes.get(entry.index)!;
    const script = oneCallScript(method.base, specs, sent, plan, {
      archive,
      base: method.remoteBase.rule,
      dropKept: this.#keepSeconds > 0
        ? { prefix: uploadFolderPrefix(method.owner), active: claim.othersActive(folder) }
        : undefined,
    });
    let results: ResultLine[];
    try {
      results = await method.session.runStreamed(script, read.payload, {
        timeoutMs: method.timeoutMs,
        signal,
        // The folder is ready long before the copies are in: other batches need not wait longer.
        onResult: (result) => {
          if (result.word === "folders-made") claim.prepared(true);
        },
      });
    } catch (error) {
      // Stopped: the launcher may still be writing the payload, so its memory is not reused.
      if (signal.aborted) throw signal.reason;
      read.release();
      claim.prepared(false);
      cutOff(sent, (delivery) => this.#failure(error, delivery));
      return true;
    }
    read.release();
    const failed = oneCallFailures(results, method.remoteBase);
    if (failed.unable !== null) {
      method.oneCallFiles = failed.unable.includes("tar") && failed.unable.length === 1 ? 1 : 0;
      this.#log.info(
        "{host} has no {tools}: files go by the upload program ({method}), not in one call",
        {
          job: method.job.name,
          host: method.context.host,
          tools: failed.unable.join(", ") || "dd",
          method: method.job.transfer_method,
        },
      );
      return false;
    }
    claim.prepared(true);
    // The upload folder was removed by the script, or never made.
    this.#cleanedUp = true;
    // The next batch's call waits for it, its session open and its shell started.
    await method.session.startAhead(method.timeoutMs);
    for (const delivery of sent) {
      if (failed.folder !== null) delivery.error = this.#folderError(delivery, failed.folder);
      else if (failed.receive !== null) {
        // Said by tar or cat: its words tell a full disk, else the room left may (settleFinish).
        delivery.uploadFailed = true;
        const words = receivedFor(failed.receive, posix.basename(delivery.tempPath));
        delivery.error = this.#failure(new RemoteFailure(words), delivery);
      }
    }
    // Where receiving failed, the script said the folder's room (index 0): it tells a full disk.
    if (failed.folder === null) settleFinish(ctx, sent, results, [folder]);
    for (const delivery of sent) delivery.done = delivery.error === null;
    return true;
  }

  /**
   * One upload call. On failure, records each delivery's error, or
   * `callFailure` for those a call that named other files only carried.
   */
  async #uploadGroup(group: SshDelivery[], signal: AbortSignal): Promise<void> {
    const method = this.#method;
    try {
      await method.upload(group, posix.dirname(group[0].tempPath), signal);
      if (method.uploadVerifiesCopies) {
        for (const delivery of group) delivery.verifiedByUpload = true;
      }
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      const named = group.length > 1 && error instanceof CommandError && !error.run.timedOut
        ? method.failedInCall(error, group)
        : null;
      for (const delivery of group) {
        const failure = this.#failure(error, delivery);
        if (named !== null && !named.has(delivery) && failure.kind !== "fatal") {
          delivery.callFailure = failure;
        } else {
          delivery.error = failure;
          delivery.uploadFailed = true;
        }
      }
    }
  }

  #failure(error: unknown, delivery: SshDelivery): TransferError {
    const target = this.#method.describeTarget(delivery.item.destination);
    const what = `send ${delivery.item.source} to ${target}`;
    return classifyFailure(error, what, this.#method.context);
  }

  #folderError(delivery: SshDelivery, failure: FolderFailure): TransferError {
    const target = this.#method.describeTarget(delivery.item.destination);
    const cannot = `Cannot send ${delivery.item.source} to ${target}`;
    if (failure.kind === "link") {
      return new TransferError(
        `${cannot}: a folder on the way is a symbolic link: nothing is written through it; ` +
          "replace it by a real folder",
        "fatal",
      );
    }
    if (failure.kind === "base-gone" || failure.kind === "base-dangling") {
      const why = baseFailureReason(failure, this.#method);
      return new TransferError(`${cannot}: ${why}`, "retry-later");
    }
    const { context, base } = this.#method;
    const { kind, reason, what = "the folder" } = folderFailedReason(failure, context, base);
    return new TransferError(
      `${cannot}: cannot create ${what}: ${reason} (${failure.message})`,
      kind,
    );
  }
}
