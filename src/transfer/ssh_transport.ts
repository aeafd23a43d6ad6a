/**
 * What `scp` and `rsync` transports share: planning temporary names, checking
 * sources, hashing, creating the batch's upload folders, and the one remote
 * call per batch that verifies and renames every uploaded copy (see
 * `ssh_finish.ts`). Subclasses only upload.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { CommandError, TransferError } from "../errors.ts";
import { classifyFailure, classifyText, type FailureContext } from "./classify.ts";
import { parseDfAvailable, remoteFreeScript } from "./free_space.ts";
import { buildMkdirScript } from "./remote_folders.ts";
import { buildFollowScript } from "./remote_follow.ts";
import { newMarker, parseScriptOutput, type ScriptReport } from "./remote_verify.ts";
import { sha256File } from "./sha256.ts";
import { finishBatch } from "./ssh_finish.ts";
import { byTempFolder, live, type Plan } from "./ssh_plan.ts";
import { closeSource, inspectSource, openSource } from "./source_open.ts";
import { endpointFromJob, remoteBasePath, remoteJoin, SshSession } from "./ssh.ts";
import { parseReceiverOutput, RECEIVER_PROBE, receiverCommand } from "./stream_receiver.ts";
import { jobOwner, uploadFolderName, uploadFolderPrefix } from "./temp_name.ts";
import type { TransferItem, TransferOutcome, Transport } from "./transport.ts";
import { UploadFolders } from "./upload_folders.ts";

export { byTempFolder, live, type Plan };

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

/** How long asking the remote host for its free space may take. */
const FREE_SPACE_TIMEOUT_MS = 10_000;

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
  /** Tells this daemon's upload folders apart (see `uploadOwner`). */
  protected readonly owner: string;
  /** Destination folders in use by the batches under way. */
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
    this.owner = jobOwner(job);
  }

  /**
   * Upload the sources of `group` into `folder` (their upload folder, which
   * exists) with one command; each copy is named after its source, as its
   * destination is. Throws when the command fails.
   */
  protected abstract copy(group: Plan[], folder: string, signal: AbortSignal): Promise<void>;

  /**
   * The plans of `group` whose failure the failed {@linkcode SshTransport.copy}
   * reported, when every error it reported can be tied to files of `group`
   * (the others then went through without error and are verified by their
   * bytes); `null` when that cannot be told, and the whole group fails.
   */
  protected abstract failedInCall(error: CommandError, group: Plan[]): Set<Plan> | null;

  /**
   * The upload calls of a batch: by default one per upload folder. Calls run
   * side by side, up to {@linkcode UPLOAD_CALLS_AT_ONCE} at a time.
   */
  protected uploadCalls(plans: Plan[]): Plan[][] {
    return byTempFolder(plans);
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
    // A new upload folder name for every batch: nobody can prepare anything under it.
    const uploadName = uploadFolderName(this.owner);
    const plans = this.#plan(items, uploadName);
    for (const plan of plans) this.#checkSource(plan);
    if (this.job.verify_transfer === "checksum") {
      for (const plan of live(plans)) {
        plan.sha256 = sha256File(plan.item.source);
        plan.sha256.catch(() => {}); // Awaited later; avoid an unhandled rejection meanwhile.
      }
    }
    const uploaded = live(plans);
    const folders = [...new Set(uploaded.map((plan) => posix.dirname(plan.finalPath)))];
    const large = uploaded.filter((plan) => plan.item.size >= LARGE_FILE_BYTES);
    const mayStream = this.streamsLargeFiles && Deno.build.os !== "windows" &&
      large.length > 0 && this.#receiverReady !== false;
    const claim = await this.#uploadFolders.claim(folders);
    const stopFollowing = new AbortController();
    const stop = () => stopFollowing.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    let cleanedUp = false;
    /** The upload folders this batch created; `null` when the mkdir call itself failed. */
    let created: string[] | null = [];
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
        const probe = mayStream && this.#receiverReady === undefined;
        const made = await this.#makeFolders(
          uploaded,
          folders,
          uploadName,
          new Set(claim.toSweep),
          probe ? [RECEIVER_PROBE] : [],
          signal,
        );
        if (probe && made !== null) this.#receiverReady = made.receiverReady;
        claim.prepared(made !== null);
        // Only the upload folders this batch created are removed at the end, never a name
        // someone else holds.
        created = made === null
          ? null
          : folders.filter((_, i) => !made.folderErrors.has(i) && !made.folderLinks.has(i))
            .map((folder) => posix.join(folder, uploadName));
        const streamed = new Set(mayStream && this.#receiverReady ? live(large) : []);
        const follow = this.job.verify_transfer === "checksum" || this.job.remote_sync;
        const followed = this.copiesGrowInPlace && follow
          ? large.filter((plan) => !streamed.has(plan))
          : [];
        const following = this.#follow(live(followed), stopFollowing.signal);
        await this.#upload(uploaded, streamed, signal);
        signal.throwIfAborted();
        for (const plan of uploaded) this.#checkSource(plan);
        // A failed upload, or a source that changed meanwhile, leaves a copy of
        // another size than expected: stop waiting for it to complete.
        if (followed.some((plan) => plan.error || plan.callFailure)) stopFollowing.abort();
        await following;
      }
      signal.throwIfAborted();
      for (const plan of uploaded) this.#checkSource(plan);
      const finishing = {
        session: this.session,
        job: this.job,
        context: this.context,
        timeoutMs: this.timeoutMs,
        describeTarget: (destination: string) => this.describeTarget(destination),
      };
      const ran = await finishBatch(finishing, uploaded, created ?? [], signal);
      cleanedUp = ran && created !== null;
    } finally {
      // Stopped or unreachable: this batch's upload folders may be left; sweep them next time.
      if (!cleanedUp) claim.leftBehind(folders);
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
   * does not pay each call's start-up in turn. Each source is checked again
   * right before its call starts. Records failures on the plans (`error`, or
   * `callFailure` for the files of a failed call that reported errors for
   * other files only); throws only when `signal` is aborted.
   */
  async #upload(plans: Plan[], streamed: ReadonlySet<Plan>, signal: AbortSignal): Promise<void> {
    const queue = [
      ...[...streamed].map((plan) => [plan]),
      ...this.uploadCalls(plans.filter((plan) => !streamed.has(plan))),
    ];
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        signal.throwIfAborted();
        for (const plan of next) this.#checkSource(plan);
        const group = live(next);
        if (group.length === 0) continue;
        const stream = streamed.has(group[0]);
        try {
          if (stream) await this.#stream(group[0], signal);
          else await this.copy(group, posix.dirname(group[0].tempPath), signal);
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          const named = !stream && group.length > 1 && error instanceof CommandError &&
              !error.run.timedOut
            ? this.failedInCall(error, group)
            : null;
          for (const plan of group) {
            const failure = this.classify(
              error,
              `send ${plan.item.source} to ${this.#target(plan)}`,
            );
            if (named !== null && !named.has(plan) && failure.kind !== "fatal") {
              plan.callFailure = failure;
            } else {
              plan.error = failure;
              plan.uploadFailed = true;
            }
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
   * `stream_receiver.ts`); ssh reads the source through a descriptor opened
   * here (never through a link the item does not allow). With checksum
   * verification, records the copy's SHA-256 on the plan.
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
    const source = openSource(plan.item);
    try {
      ({ stdout } = await this.session.run(await this.session.sshArgv(command), {
        stdinFile: { fd: source.fd },
        timeoutMs: this.timeoutMs,
        signal,
      }));
    } catch (error) {
      // python3 may have gone from the remote host: look again before the next stream.
      if (error instanceof CommandError && error.run.code === 127) this.#receiverReady = undefined;
      throw error;
    } finally {
      closeSource(source);
    }
    const report = parseReceiverOutput(new TextDecoder().decode(stdout), marker);
    if (report === null) throw new Error("the remote receiver reported nothing");
    plan.remoteSha256 = report.sha256;
  }

  /** Open the shared SSH connection now (see {@linkcode Transport.warmUp}). */
  async warmUp(): Promise<void> {
    await this.session.connect({ timeoutMs: this.timeoutMs }).catch(() => {});
  }

  /** Free space at the base path (`df` over the shared connection, only when a session is free). */
  async freeBytes(): Promise<number | null> {
    try {
      const output = await this.session.runScript(remoteFreeScript(this.base), {
        timeoutMs: FREE_SPACE_TIMEOUT_MS,
        onlyIfFree: true,
      });
      return parseDfAvailable(output);
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    await this.session.close();
  }

  /**
   * Create, with one ssh call, the destination `folders` (no link below the
   * base path), sweep this daemon's leftover upload folders out of those in
   * `toSweep`, and create the batch's upload folder `uploadName` in each (see
   * `remote_folders.ts`). Plans whose folder could not be made (or all of
   * `plans`, when the call itself failed) get their error. `probe` lines run
   * last.
   *
   * @returns what the script reported, or `null` when the call failed
   * @throws `signal.reason` when aborted
   */
  async #makeFolders(
    plans: Plan[],
    folders: string[],
    uploadName: string,
    toSweep: ReadonlySet<string>,
    probe: string[],
    signal: AbortSignal,
  ): Promise<ScriptReport | null> {
    const marker = newMarker();
    let stdout: string;
    try {
      const specs = folders.map((folder) => ({
        folder,
        upload: posix.join(folder, uploadName),
        sweepPrefix: toSweep.has(folder) ? uploadFolderPrefix(this.owner) : null,
      }));
      const script = buildMkdirScript(this.base, specs, marker, probe);
      stdout = await this.session.runScript(script, { timeoutMs: this.timeoutMs, signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      for (const plan of live(plans)) {
        plan.error = this.classify(error, `send ${plan.item.source} to ${this.#target(plan)}`);
      }
      return null;
    }
    const report = parseScriptOutput(stdout, marker);
    for (const plan of live(plans)) {
      const index = folders.indexOf(posix.dirname(plan.finalPath));
      const message = report.folderErrors.get(index);
      if (report.folderLinks.has(index)) {
        plan.error = new TransferError(
          `Cannot send ${plan.item.source} to ${this.#target(plan)}: a folder on the way is a ` +
            "symbolic link: nothing is written through it; replace it by a real folder",
          "fatal",
        );
      } else if (message !== undefined) {
        const { kind, reason } = classifyText(message, this.context);
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

  #plan(items: TransferItem[], uploadName: string): Plan[] {
    const seen = new Set<string>();
    return items.map((item, index) => {
      const plan: Plan = {
        index,
        item,
        finalPath: "",
        tempPath: "",
        error: null,
        uploadFailed: false,
        callFailure: null,
        source: null,
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
      const { dirname, basename, join } = posix;
      plan.tempPath = join(dirname(plan.finalPath), uploadName, basename(plan.finalPath));
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

  /**
   * Fail a plan whose source is a link it may not follow, is not a regular
   * file, cannot be read, or no longer matches the queued size and mtime (see
   * `inspectSource`); otherwise record what the copy carries over.
   */
  #checkSource(plan: Plan): void {
    if (plan.error) return;
    try {
      plan.source = inspectSource(plan.item);
    } catch (error) {
      plan.error = error instanceof TransferError
        ? error
        : this.classify(error, `send ${plan.item.source}`);
    }
  }
}
