/**
 * The delivery steps of one SSH batch (see `deliver.ts`), over one shared
 * connection:
 * 1. one ssh call creates the destination folders and, in each, the batch's
 *    own hidden upload folder (see `ssh/remote_folders.ts`);
 * 2. upload calls of the method (scp or rsync) copy the sources, under their
 *    own names, into those upload folders, several calls side by side (with
 *    `remote_sync`, a large batch has the destination flushed every second
 *    meanwhile);
 * 3. one ssh call verifies each copy, renames the good ones into place and
 *    removes the rest (see `ssh/finish.ts`).
 *
 * A batch of one small file (the common case of a camera writing one image
 * at a time; no bandwidth limit) goes in ONE call
 * instead: the file's bytes are read whole, hashed, and sent as the standard
 * input of a script that makes the folders, receives the copy, verifies it
 * against that hash and renames it (`SshSession.runStreamed`). That is two
 * round trips on a long link instead of about a dozen.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import { bandwidthLimit } from "../../config/bandwidth.ts";
import { CommandError, TransferError } from "../../errors.ts";
import { classifyFailure, classifyText } from "../classify.ts";
import {
  checkPartSource,
  checkSource,
  type Delivery,
  type DeliverySteps,
  live,
} from "../deliver.ts";
import {
  type EarlierCopySpec,
  type FolderFailure,
  type FolderSpec,
  makeFolders,
} from "./remote_folders.ts";
import { logger } from "../../log/logging.ts";
import { hashSource } from "../sha256.ts";
import { type SshDelivery, sshDelivery } from "./delivery.ts";
import { finishBatch, planFinish, settleFinish } from "./finish.ts";
import { oneCallFailures, oneCallScript, readWhole } from "./one_call.ts";
import { remoteJoin } from "./endpoint.ts";
import type { SshMethod } from "./method.ts";
import { uploadFolderName, uploadFolderPrefix } from "../temp_name.ts";
import type { TransferItem } from "../transport.ts";
import type { UploadClaim } from "./upload_folders.ts";
import { buildScript, call, parseResults, type ResultLine } from "./remote_script.ts";

/** Upload calls a batch runs at once. */
const UPLOAD_CALLS_AT_ONCE = 3;

/** A batch of one file up to this size goes in one call (see the module doc). */
const ONE_CALL_MAX_BYTES = 8 * 1024 * 1024;

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
    let failures: Map<number, FolderFailure>;
    let earlierCopies: Map<number, number>;
    try {
      // Unreachable: every call would fail the same way (and wait as long), so fail the batch now.
      const unreachable = await method.session.connect({ timeoutMs: method.timeoutMs, signal });
      if (unreachable !== null) throw unreachable;
      // From here on copies may exist: the finishing step removes those not renamed.
      for (const delivery of deliveries) delivery.attempted = true;
      const specs = this.#folders.map((folder) => ({
        folder,
        uploadName: this.#uploadName,
        sweepPrefix: toSweep.has(folder) ? uploadFolderPrefix(method.owner) : null,
        keepSeconds: this.#keepSeconds,
      }));
      if (this.#goesInOneCall(deliveries)) {
        this.#oneCall = specs;
        return;
      }
      ({ failures, earlierCopies } = await makeFolders(
        method.session,
        method.base,
        specs,
        { timeoutMs: method.timeoutMs, signal },
        this.#earlierCopySpecs(deliveries, claim),
      ));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      claim.prepared(false);
      this.#created = null;
      for (const delivery of deliveries) delivery.error = this.#failure(error, delivery);
      return;
    }
    claim.prepared(true);
    // Only the upload folders this batch created are removed at the end, never a name
    // someone else holds.
    this.#created = this.#folders.filter((_, index) => !failures.has(index))
      .map((folder) => posix.join(folder, this.#uploadName));
    for (const delivery of deliveries) {
      const failure = failures.get(this.#folders.indexOf(posix.dirname(delivery.finalPath)));
      if (failure) delivery.error = this.#folderError(delivery, failure);
      delivery.resumedFrom = earlierCopies.get(delivery.index) ?? 0;
      this.#resumed.set(delivery.index, delivery.resumedFrom);
      if (delivery.resumedFrom > 0) {
        this.#log.info("Resuming {source} at byte {from} of {size}", {
          job: method.job.name,
          source: delivery.item.source,
          from: delivery.resumedFrom,
          size: delivery.item.size,
        });
      }
    }
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
    if (this.#oneCall !== null) return await this.#putInOneCall(deliveries, this.#oneCall, signal);
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
    this.#cleanedUp = kept !== null && kept.length === 0 && this.#created !== null;
    for (const delivery of attempted) {
      if (delivery.uploadFailed && kept !== null && kept.length > 0) {
        this.#log.info("Kept the interrupted copy of {source} to continue it at the next attempt", {
          job: method.job.name,
          source: delivery.item.source,
        });
      }
    }
  }

  end(): Promise<void> {
    // Stopped or unreachable, or interrupted copies kept: this batch's upload folders may be
    // left; sweep them (of what expired) next time.
    if (this.#claim !== null && !this.#cleanedUp && !this.#part) {
      this.#claim.leftBehind(this.#folders);
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
    };
  }

  /** Whether the batch goes in one call (see the module doc). */
  #goesInOneCall(deliveries: SshDelivery[]): boolean {
    const job = this.#method.job;
    return !this.#part && deliveries.length === 1 &&
      deliveries[0].item.size <= ONE_CALL_MAX_BYTES && bandwidthLimit(job) === null;
  }

  /**
   * Send a batch of one file in one call: its folders (`specs`), the copy
   * on standard input, verification against the bytes read, and the rename.
   */
  async #putInOneCall(
    deliveries: SshDelivery[],
    specs: FolderSpec[],
    signal: AbortSignal,
  ): Promise<void> {
    const [delivery] = deliveries;
    const method = this.#method;
    const claim = this.#claim!;
    if (delivery === undefined) return claim.prepared(false);
    const data = readWhole(delivery);
    if (data === null) return claim.prepared(false);
    if (method.job.verify_transfer === "checksum") {
      delivery.sourceSha256 = Promise.resolve(createHash("sha256").update(data).digest("hex"));
    }
    const ctx = this.#finishContext();
    const folder = posix.dirname(delivery.finalPath);
    const { plan } = await planFinish(ctx, [delivery], [posix.join(folder, this.#uploadName)]);
    // Asked always: a copy the disk had no room for is told apart by it.
    plan.spaceFolders = [folder];
    // A copy cut short (the call ended early) is never renamed, whatever verify_transfer says.
    for (const entry of plan.entries) entry.expectedSize = delivery.item.size;
    const script = oneCallScript(method.base, specs, delivery, plan);
    let results: ResultLine[];
    try {
      const stdout = await method.session.runStreamed(script.text, data, {
        timeoutMs: method.timeoutMs,
        signal,
      });
      results = parseResults(stdout, script.marker);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      claim.prepared(false);
      delivery.error = this.#failure(error, delivery);
      return;
    }
    claim.prepared(true);
    // The upload folder was removed by the script, or never made.
    this.#cleanedUp = true;
    const { folder: folderFailure, receive } = oneCallFailures(results, delivery);
    if (folderFailure !== null) {
      delivery.error = this.#folderError(delivery, folderFailure);
      return;
    }
    if (receive !== null) {
      // Said by the remote side; the room left there may tell a full disk (see settleFinish).
      delivery.uploadFailed = true;
      delivery.error = this.#failure(new Error(receive), delivery);
    }
    settleFinish(ctx, [delivery], results, plan.spaceFolders);
    delivery.done = delivery.error === null;
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
    return classifyFailure(
      error,
      `send ${delivery.item.source} to ${target}`,
      this.#method.context,
    );
  }

  #folderError(delivery: SshDelivery, failure: FolderFailure): TransferError {
    const target = this.#method.describeTarget(delivery.item.destination);
    if (failure.kind === "link") {
      return new TransferError(
        `Cannot send ${delivery.item.source} to ${target}: a folder on the way is a symbolic ` +
          "link: nothing is written through it; replace it by a real folder",
        "fatal",
      );
    }
    const { kind, reason } = classifyText(failure.message, this.#method.context);
    return new TransferError(
      `Cannot send ${delivery.item.source} to ${target}: cannot create the folder: ` +
        `${reason} (${failure.message})`,
      kind,
    );
  }
}

/**
 * With `remote_sync`, a batch of at least this many bytes has the destination
 * file systems flushed while it uploads (`SshBatch.put` in `ssh/batch.ts`).
 */
const FLUSH_WHILE_UPLOADING_BYTES = 64 * 1024 * 1024;

/** How often those flushes start, at most. */
const FLUSH_INTERVAL_MS = 1000;

/**
 * With `remote_sync` and a batch of {@linkcode FLUSH_WHILE_UPLOADING_BYTES}
 * or more: flush the destination file systems every
 * {@linkcode FLUSH_INTERVAL_MS} while the upload runs (one small ssh call
 * each, only when a shared session is free), so the flush before the
 * renames finds little left to write. Returns the function that stops it.
 */
export function flushWhileUploading(
  method: Pick<SshMethod, "job" | "session" | "timeoutMs">,
  deliveries: SshDelivery[],
  signal: AbortSignal,
): () => Promise<void> {
  const bytes = deliveries.reduce((sum, delivery) => sum + delivery.item.size, 0);
  if (!method.job.remote_sync || bytes < FLUSH_WHILE_UPLOADING_BYTES) {
    return () => Promise.resolve();
  }
  const folders = [...new Set(deliveries.map((delivery) => posix.dirname(delivery.finalPath)))];
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const flushing = (async () => {
    while (!stop.signal.aborted) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FLUSH_INTERVAL_MS);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(undefined);
        }, { once: true });
      });
      if (stop.signal.aborted) break;
      const script = buildScript(null, [call("flush_folders", ...folders)]);
      await method.session.runScript(script.text, {
        timeoutMs: method.timeoutMs,
        signal: stop.signal,
        onlyIfFree: true,
      }).catch(() => {}); // Optional: the flush before the renames does it anyway.
    }
  })();
  return async () => {
    signal.removeEventListener("abort", onAbort);
    stop.abort();
    await flushing;
  };
}
