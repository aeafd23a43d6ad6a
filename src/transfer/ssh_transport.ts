/**
 * What `scp` and `rsync` transports share: planning temporary names, checking
 * sources, hashing, and the one remote call per batch that verifies and
 * renames every uploaded copy. Subclasses only upload.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { CommandError, TransferError } from "../errors.ts";
import {
  classifyFailure,
  classifyText,
  type FailureContext,
  sourceUnreadable,
} from "./classify.ts";
import {
  buildFinishScript,
  buildFollowScript,
  buildMkdirScript,
  type FinishEntry,
  type FinishResult,
  newMarker,
  parseScriptOutput,
  type ScriptReport,
} from "./remote_verify.ts";
import { sha256File } from "./sha256.ts";
import { assertSourceUnchangedSync } from "./source_check.ts";
import { endpointFromJob, remoteBasePath, remoteJoin, SshSession } from "./ssh.ts";
import { parseReceiverOutput, RECEIVER_PROBE, receiverCommand } from "./stream_receiver.ts";
import { uploadFolderName, uploadOwner } from "./temp_name.ts";
import type { TransferItem, TransferOutcome, Transport } from "./transport.ts";
import { type UploadClaim, UploadFolders } from "./upload_folders.ts";

/** One item on its way: where it goes and what happened so far. */
export interface Plan {
  index: number;
  item: TransferItem;
  /** Remote final path and temporary path (see `SshTransport.#tempPathFor`). */
  finalPath: string;
  tempPath: string;
  /** Set once the item has failed; it then takes no further part. */
  error: TransferError | null;
  /**
   * The upload may or may not have completed (the command failed for some
   * files only): the copy's size is checked even with `verify_transfer: none`,
   * and this error is used if the copy turns out missing or short.
   */
  uncertain: TransferError | null;
  /** SHA-256 of the source, when checksum verification is on. */
  sha256: Promise<string> | null;
  /** SHA-256 of the copy, when it was hashed while being written. */
  remoteSha256: string | null;
}

/**
 * Files from this size on are large: where the transport and the remote host
 * allow it they are streamed (see `stream_receiver.ts`), which writes, hashes
 * and flushes the copy in one pass; otherwise their copies are followed on the
 * remote side while they upload: flushed to disk as they grow, and hashed
 * (`verify_transfer: checksum`). Smaller ones are flushed and read once after,
 * which costs less than polling their growth or a call of their own.
 */
const LARGE_FILE_BYTES = 16 * 1024 * 1024;

/** A copy that stops growing for this long is left to the finishing step. */
const FOLLOW_STALL_SECONDS = 60;

/** Upload calls (one per destination folder) a batch runs at once. */
const UPLOAD_CALLS_AT_ONCE = 3;

/** Base class of the SSH transports: subclasses implement {@linkcode SshTransport.copy}. */
export abstract class SshTransport implements Transport {
  abstract readonly method: "scp" | "rsync";
  abstract readonly maxBatchFiles: number;
  protected readonly job: JobConfig;
  protected readonly session: SshSession;
  /** The remote form of `remote_base_path` (see `remoteBasePath`). */
  protected readonly base: string;
  protected readonly context: FailureContext;
  protected readonly timeoutMs: number;
  /** Name of this daemon's upload folders (see `uploadFolderName`). */
  protected readonly uploadFolder: string;
  /** Upload folders in use by the batches under way. */
  readonly #uploadFolders = new UploadFolders();

  constructor(job: JobConfig, runtimeDir: string) {
    this.job = job;
    this.session = new SshSession(endpointFromJob(job), runtimeDir);
    this.base = remoteBasePath(job.remote_base_path);
    this.context = {
      host: this.session.endpoint.host,
      destination: this.session.destination,
      port: this.session.endpoint.port,
    };
    this.timeoutMs = job.transfer_timeout_seconds * 1000;
    this.uploadFolder = uploadFolderName(
      uploadOwner([hostName(), job.name, job.watch_path, job.remote_base_path]),
    );
  }

  /**
   * Upload the sources of `group` into `folder` (their upload folder, which
   * exists) with one command; each copy is named after its source, as its
   * destination is. Throws when the command fails.
   */
  protected abstract copy(group: Plan[], folder: string, signal: AbortSignal): Promise<void>;

  /**
   * Whether a failed {@linkcode SshTransport.copy} may still have delivered
   * some of `group` (the command went on after per-file errors); the size
   * check in the finishing step then settles each file.
   */
  protected abstract someMayHaveArrived(error: CommandError, group: Plan[]): boolean;

  /**
   * The upload calls of a batch: by default one per upload folder. Calls run
   * side by side, up to {@linkcode UPLOAD_CALLS_AT_ONCE} at a time.
   */
  protected uploadCalls(plans: Plan[]): Plan[][] {
    return byTempFolder(plans);
  }

  /**
   * Where the copy of `finalPath` is written before it is verified and renamed:
   * under its own name in this daemon's upload folder inside the final folder
   * ({@linkcode SshTransport.uploadFolder}). Before `upload` those folders are
   * created and leftovers swept out of them; they are removed once no batch
   * uses them.
   */
  #tempPathFor(finalPath: string): string {
    return posix.join(posix.dirname(finalPath), this.uploadFolder, posix.basename(finalPath));
  }

  /**
   * Whether the upload writes each temporary copy front to back from its first
   * byte (scp does; rsync writes elsewhere and renames at the end). Large
   * copies can then be hashed on the remote side while they are written.
   */
  protected readonly copiesGrowInPlace: boolean = false;

  /**
   * Whether large files may go as one `ssh` stream each into the remote
   * receiver (`stream_receiver.ts`) instead of through {@linkcode SshTransport.copy},
   * where the remote host has `python3` (not on Windows, whose ssh cannot be
   * handed a file as input here).
   */
  protected readonly streamsLargeFiles: boolean = false;

  /** Whether the remote host can run the stream receiver; `undefined` until probed. */
  #receiverReady: boolean | undefined;

  describeTarget(destination: string): string {
    return this.session.remoteSpec(posix.join(this.job.remote_base_path, destination));
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    signal.throwIfAborted();
    const plans = this.#plan(items);
    for (const plan of plans) this.#checkSource(plan);
    if (this.job.verify_transfer === "checksum") {
      for (const plan of live(plans)) {
        plan.sha256 = sha256File(plan.item.source);
        plan.sha256.catch(() => {}); // Awaited later; avoid an unhandled rejection meanwhile.
      }
    }
    const uploaded = live(plans);
    const folders = [...new Set(uploaded.map((plan) => posix.dirname(plan.tempPath)))];
    const large = uploaded.filter((plan) => plan.item.size >= LARGE_FILE_BYTES);
    const mayStream = this.streamsLargeFiles && Deno.build.os !== "windows" &&
      large.length > 0 && this.#receiverReady !== false;
    const claim = await this.#uploadFolders.claim(folders);
    const stopFollowing = new AbortController();
    const stop = () => stopFollowing.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    try {
      if (uploaded.length > 0) {
        const unreachable = await this.session.connect({ timeoutMs: this.timeoutMs, signal });
        if (unreachable !== null) {
          // Every call would fail the same way (and wait as long): fail the batch now.
          signal.throwIfAborted();
          for (const plan of live(plans)) {
            plan.error = this.classify(
              unreachable,
              `send ${plan.item.source} to ${this.#target(plan)}`,
            );
          }
          return plans.map((plan) => ({ item: plan.item, error: plan.error }));
        }
        const stale = this.copiesGrowInPlace ? large.map((plan) => plan.tempPath) : [];
        const probe = mayStream && this.#receiverReady === undefined;
        const made = await this.#makeFolders(
          uploaded,
          folders,
          signal,
          new Set(claim.fresh),
          stale,
          probe ? [RECEIVER_PROBE] : [],
        );
        if (probe && made !== null) this.#receiverReady = made.receiverReady;
        claim.prepared();
        const streamed = new Set(mayStream && this.#receiverReady ? live(large) : []);
        const follow = this.job.verify_transfer === "checksum" || this.job.remote_sync;
        const followed = this.copiesGrowInPlace && follow
          ? large.filter((plan) => !streamed.has(plan))
          : [];
        const following = this.#follow(live(followed), stopFollowing.signal);
        await this.#upload(uploaded, streamed, signal);
        signal.throwIfAborted();
        for (const plan of uploaded) this.#checkBeforeRename(plan);
        // A failed upload, or a source that changed meanwhile, leaves a copy of
        // another size than expected: stop waiting for it to complete.
        if (followed.some((plan) => plan.error || plan.uncertain)) stopFollowing.abort();
        await following;
      }
      signal.throwIfAborted();
      for (const plan of uploaded) {
        this.#checkBeforeRename(plan);
        if (plan.sha256 && !plan.error) await this.#awaitHash(plan);
      }
      await this.#finish(uploaded, signal, claim);
    } finally {
      signal.removeEventListener("abort", stop);
      stopFollowing.abort();
      claim.release();
    }
    return plans.map((plan) => ({ item: plan.item, error: plan.error }));
  }

  /**
   * Follow the copies of `plans` on the remote side while they are written
   * (one ssh call): flush them to disk as they grow and, with checksum
   * verification, hash them and record each hash on its plan. What it could
   * not do, the finishing step does; never throws.
   */
  async #follow(plans: Plan[], signal: AbortSignal): Promise<void> {
    if (plans.length === 0) return;
    const marker = newMarker();
    const entries = plans.map((plan) => ({
      index: plan.index,
      tempPath: plan.tempPath,
      size: plan.item.size,
    }));
    const hash = this.job.verify_transfer === "checksum";
    try {
      const stdout = await this.session.runScript(
        buildFollowScript(entries, marker, {
          stallSeconds: FOLLOW_STALL_SECONDS,
          hash,
          flush: this.job.remote_sync,
        }),
        // Never queue for a session: the upload this waits for may need it.
        { timeoutMs: this.timeoutMs, signal, onlyIfFree: true },
      );
      const { hashes } = parseScriptOutput(stdout, marker);
      for (const plan of plans) plan.remoteSha256 = hashes.get(plan.index) ?? null;
    } catch {
      // Stopped or failed: the finishing step flushes and hashes these copies instead.
    }
  }

  /**
   * Copy every live plan to its `tempPath`: the `streamed` ones one stream
   * each ({@linkcode SshTransport.#stream}), the others in upload calls
   * ({@linkcode SshTransport.uploadCalls}), so a batch spread over many folders
   * does not pay each call's start-up in turn. Records failures on the plans
   * (`error`, or `uncertain` when some copies may have arrived); throws only
   * when `signal` is aborted.
   */
  async #upload(plans: Plan[], streamed: ReadonlySet<Plan>, signal: AbortSignal): Promise<void> {
    const queue = [
      ...[...streamed].map((plan) => [plan]),
      ...this.uploadCalls(plans.filter((plan) => !streamed.has(plan))),
    ];
    const worker = async () => {
      for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
        signal.throwIfAborted();
        const stream = streamed.has(group[0]);
        try {
          if (stream) await this.#stream(group[0], signal);
          else await this.copy(group, posix.dirname(group[0].tempPath), signal);
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          const some = !stream && error instanceof CommandError && !error.run.timedOut &&
            this.someMayHaveArrived(error, group);
          for (const plan of group) {
            const failure = this.classify(
              error,
              `send ${plan.item.source} to ${this.#target(plan)}`,
            );
            if (some && failure.kind !== "fatal") plan.uncertain = failure;
            else plan.error = failure;
          }
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(UPLOAD_CALLS_AT_ONCE, queue.length) }, worker),
    );
  }

  /**
   * Stream the source of `plan` into its temporary copy with one ssh call (see
   * `stream_receiver.ts`); with checksum verification, records the copy's
   * SHA-256 on the plan.
   *
   * @throws {CommandError} when the call fails, `Error` when it reports nothing
   */
  async #stream(plan: Plan, signal: AbortSignal): Promise<void> {
    const marker = newMarker();
    const command = receiverCommand(plan.tempPath, marker, {
      hash: this.job.verify_transfer === "checksum",
      sync: this.job.remote_sync,
    });
    let stdout: Uint8Array;
    try {
      ({ stdout } = await this.session.run(await this.session.sshArgv(command), {
        stdinFile: plan.item.source,
        timeoutMs: this.timeoutMs,
        signal,
      }));
    } catch (error) {
      // python3 may have gone from the remote host: look again before the next stream.
      if (error instanceof CommandError && error.run.code === 127) this.#receiverReady = undefined;
      throw error;
    }
    const report = parseReceiverOutput(new TextDecoder().decode(stdout), marker);
    if (report === null) throw new Error("the remote receiver reported nothing");
    plan.remoteSha256 = report.sha256;
  }

  /** Open the shared SSH connection now (see {@linkcode Transport.warmUp}). */
  async warmUp(): Promise<void> {
    await this.session.connect({ timeoutMs: this.timeoutMs }).catch(() => {});
  }

  async close(): Promise<void> {
    await this.session.close();
  }

  /**
   * Create `folders` on the remote host with one ssh call (emptying those in
   * `fresh`; see `buildMkdirScript`). Plans whose temporary copy goes in or below a
   * folder that could not be created (or all of `plans`, when the call itself
   * failed) get their error.
   *
   * `probe` lines run last (see `buildMkdirScript`).
   *
   * @returns what the script reported, or `null` when the call failed
   * @throws `signal.reason` when aborted
   */
  async #makeFolders(
    plans: Plan[],
    folders: string[],
    signal: AbortSignal,
    fresh: ReadonlySet<string> = new Set(),
    removeFiles: string[] = [],
    probe: string[] = [],
  ): Promise<ScriptReport | null> {
    const marker = newMarker();
    let stdout: string;
    try {
      const script = buildMkdirScript(folders, marker, fresh, removeFiles, probe);
      stdout = await this.session.runScript(script, {
        timeoutMs: this.timeoutMs,
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      for (const plan of live(plans)) {
        plan.error = this.classify(error, `send ${plan.item.source} to ${this.#target(plan)}`);
      }
      return null;
    }
    const report = parseScriptOutput(stdout, marker);
    const { folderErrors } = report;
    for (const [index, message] of folderErrors) {
      const { kind, reason } = classifyText(message, this.context);
      for (const plan of live(plans)) {
        const folder = posix.dirname(plan.tempPath);
        if (folder !== folders[index] && !folder.startsWith(`${folders[index]}/`)) continue;
        plan.error = new TransferError(
          `Cannot send ${plan.item.source} to ${this.#target(plan)}: cannot create the folder: ` +
            `${reason} (${message})`,
          kind,
        );
      }
    }
    return report;
  }

  /** The user-facing target of a plan. */
  #target(plan: Plan): string {
    return this.describeTarget(plan.item.destination);
  }

  /** Turn a failure of a whole step into a {@linkcode TransferError}. */
  protected classify(error: unknown, action: string): TransferError {
    return classifyFailure(error, action, this.context);
  }

  #plan(items: TransferItem[]): Plan[] {
    const seen = new Set<string>();
    return items.map((item, index) => {
      const plan: Plan = {
        index,
        item,
        finalPath: "",
        tempPath: "",
        error: null,
        uncertain: null,
        sha256: null,
        remoteSha256: null,
      };
      try {
        plan.finalPath = remoteJoin(this.base, item.destination);
      } catch (error) {
        plan.error = new TransferError(
          `Cannot send ${item.source}: invalid destination ${JSON.stringify(item.destination)}`,
          "fatal",
          { cause: error },
        );
        return plan;
      }
      plan.tempPath = this.#tempPathFor(plan.finalPath);
      if (seen.has(plan.finalPath)) {
        plan.error = new TransferError(
          `Cannot send ${item.source}: another file of the same batch goes to ` +
            `${this.describeTarget(item.destination)}`,
          "retry",
        );
      }
      seen.add(plan.finalPath);
      return plan;
    });
  }

  /** Fail plans whose source cannot be read or no longer matches the queued size/mtime. */
  #checkSource(plan: Plan): void {
    if (plan.error) return;
    try {
      Deno.openSync(plan.item.source, { read: true }).close();
      assertSourceUnchangedSync(plan.item);
    } catch (error) {
      plan.error = error instanceof TransferError
        ? error
        : sourceUnreadable(plan.item.source, error);
    }
  }

  /** The last local checks before a rename: unchanged source, local hash ready. */
  #checkBeforeRename(plan: Plan): void {
    if (plan.error) return;
    try {
      assertSourceUnchangedSync(plan.item);
    } catch (error) {
      plan.error = error instanceof TransferError
        ? error
        : sourceUnreadable(plan.item.source, error);
    }
  }

  /** Wait for the local SHA-256 computed during the upload. */
  async #awaitHash(plan: Plan): Promise<void> {
    try {
      await plan.sha256;
    } catch (error) {
      plan.error = sourceUnreadable(plan.item.source, error);
    }
  }

  /**
   * One remote call: verify and rename the good copies, remove temps of failed
   * ones, and remove the upload folders no other batch uses.
   */
  async #finish(plans: Plan[], signal: AbortSignal, claim: UploadClaim): Promise<void> {
    if (plans.length === 0) return;
    const entries: FinishEntry[] = [];
    for (const plan of plans) {
      const localSha256 = plan.sha256 && !plan.error ? await plan.sha256 : null;
      if (plan.remoteSha256 !== null && localSha256 !== null && !plan.error) {
        // Hashed while written: settled here, and the copy is removed on a mismatch.
        if (plan.remoteSha256 !== localSha256) plan.error = this.#checksumMismatch(plan);
      }
      if (plan.error) {
        entries.push({
          index: plan.index,
          tempPath: plan.tempPath,
          finalPath: null,
          expectedSize: null,
          expectedSha256: null,
        });
        continue;
      }
      const checkSize = this.job.verify_transfer !== "none" || plan.uncertain !== null;
      entries.push({
        index: plan.index,
        tempPath: plan.tempPath,
        finalPath: plan.finalPath,
        expectedSize: checkSize ? plan.item.size : null,
        expectedSha256: plan.remoteSha256 === null ? localSha256 : null,
      });
    }
    const marker = newMarker();
    let stdout: string;
    try {
      const script = buildFinishScript(entries, marker, {
        removeFolders: claim.takeLast(),
        sync: this.job.remote_sync,
      });
      stdout = await this.session.runScript(script, {
        timeoutMs: this.timeoutMs,
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      for (const plan of plans) {
        plan.error ??= this.classify(error, `finish ${plan.item.source}`);
      }
      return;
    }
    const { results } = parseScriptOutput(stdout, marker);
    for (const plan of plans) {
      if (plan.error) continue;
      plan.error = this.#resultError(plan, results.get(plan.index));
    }
  }

  #checksumMismatch(plan: Plan): TransferError {
    return new TransferError(
      `Cannot send ${plan.item.source} to ${this.describeTarget(plan.item.destination)}: ` +
        "SHA-256 of the copy differs from the source; the copy was removed",
      "retry",
    );
  }

  #resultError(plan: Plan, result: FinishResult | undefined): TransferError | null {
    const source = plan.item.source;
    const target = this.describeTarget(plan.item.destination);
    const fail = (reason: string, kind: TransferError["kind"] = "retry") =>
      new TransferError(`Cannot send ${source} to ${target}: ${reason}`, kind);
    if (result === undefined) return fail("no result from the remote host");
    switch (result.status) {
      case "ok":
        return null;
      case "missing":
        return plan.uncertain ?? fail("the uploaded copy is missing");
      case "size-mismatch":
        return plan.uncertain ??
          fail(
            `size check failed (${result.actual} bytes arrived, ${plan.item.size} expected); ` +
              "the copy was removed",
          );
      case "size-unknown":
        return fail("cannot read the size of the uploaded copy (stat failed)");
      case "checksum-mismatch":
        return this.#checksumMismatch(plan);
      case "no-hash-tool":
        return fail(
          "neither sha256sum nor shasum exists on the remote host: install coreutils (or perl's " +
            "shasum) there, or set verify_transfer: size",
          "fatal",
        );
      case "final-is-folder":
        return fail("a folder exists under the final name: remove or rename it", "fatal");
      case "rename-failed": {
        const { kind, reason } = classifyText(result.message, this.context);
        return fail(`cannot rename the copy into place: ${reason} (${result.message})`, kind);
      }
    }
  }
}

/** This machine's name, or "" when it cannot be read. */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/** Plans that have not failed. */
export function live(plans: Plan[]): Plan[] {
  return plans.filter((plan) => plan.error === null);
}

/** The plans that have not failed, by the remote folder their copies go to. */
export function byTempFolder(plans: Plan[]): Plan[][] {
  const groups = new Map<string, Plan[]>();
  for (const plan of live(plans)) {
    const folder = posix.dirname(plan.tempPath);
    const group = groups.get(folder);
    if (group) group.push(plan);
    else groups.set(folder, [plan]);
  }
  return [...groups.values()];
}
