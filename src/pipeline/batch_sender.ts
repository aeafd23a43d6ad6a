/**
 * Delivery of one batch: record it `transferring`, hand it to the transport, and settle every
 * record in it (done, or what the attempt's outcome says), whatever happens on the way.
 *
 * An arrival counts once the ledger holds it: only then is it logged as transferred, told to the
 * status page and hooks, and out of the queue. When the ledger cannot be written, the arrivals
 * wait in memory ({@linkcode BatchSender.recordWaiting}) until it can, so nothing is sent twice
 * and no hook runs twice because of the ledger. Files whose copy may be at the destination without
 * the ledger knowing (an attempt cut short before its end was recorded; after a rebuilt ledger, the
 * older files) are looked for there first (`destination_look.ts`): one found is recorded, not sent.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { failureScope, isDestinationFull, RefusedUnsent, TransferError } from "../errors.ts";
import { neverArrives } from "../errors.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { TransferItem, TransferOutcome, Transport } from "../transfer/transport.ts";
import { absolutePath, type FileVersion, isGoneError, versionOf } from "../watch/file_version.ts";
import {
  afterAttempt,
  attemptOutcome,
  BaseRefusals,
  logFailure,
  retryDelayMs,
  slowRetryMs,
} from "./attempt_outcome.ts";
import { systemClock } from "./retry_timer.ts";
import type { FileTable, WorkRecord } from "./file_table.ts";
import { keepUnconfirmed, lookAtDestination } from "./destination_look.ts";
import { sendAroundOthers, withLinkPolicy } from "./batch_items.ts";
import { pick } from "./sent_copy.ts";
import { arrivalWords, FOUND_WORDS } from "./arrival_words.ts";
import { classifyEntry } from "../watch/entry_check.ts";
import type { FailureScope } from "../status/job_status.ts";

/** What a {@linkcode BatchSender} works with. */
export interface BatchSenderContext {
  job: JobConfig;
  table: FileTable;
  transport: Transport;
  /** Aborted when the job stops: records are left as they are (resumed at the next start). */
  signal: AbortSignal;
  /** Observe a source file again (the stability checker). */
  observe(path: string): void;
  /** A file arrived verified (its record: version, destination relative to the base path, when
   * the attempt started); `sha256` when the transport hashed what it delivered. */
  onSent(record: Readonly<WorkRecord>, sha256?: string): void;
  /** A file found at the destination (ledger rebuilt, or its bytes put there by another): done. */
  onRecognised(relPath: string, version: FileVersion): void;
  /** A file used up its fast retries after `attempts` attempts (once per file: its slow retries
   * failing again do not call this). */
  onGaveUp(record: WorkRecord, reason: string, attempts: number): void;
  /** An attempt failed (`final`: past its fast retries; `scope`: whose problem, as JobStatus's). */
  onFailed?(relPath: string, error: TransferError, final: boolean, scope: FailureScope): void;
  /**
   * Whether a failing file keeps being tried every `retry_max_delay_seconds` until it arrives
   * (the daemon), instead of waiting for the next rescan or start-up (`run --once`: it ends).
   */
  slowRetries?: boolean;
  /** Whether a destination that cannot take files (full, unreachable) pauses the job. */
  pauseWhenUnavailable: boolean;
  /** The destination cannot take files now (called before `record` is queued again). */
  onHold(error: TransferError, record: Readonly<WorkRecord>): void;
  /**
   * Whether a batch of `files` files, `bytes` in all, may go now (`min_free_space`, see
   * `space_guard.ts`): `null`, or why there is no room for it.
   */
  admit?(bytes: number, files: number): Promise<string | null>;
  /** Why `bytes` never fit there (`SpaceGuard.neverFits`): its full error fails just that file. */
  neverFits?(bytes: number): Promise<string | null>;
  /** Longest time a batch may take, then aborted and retried (default three times
   * `transfer_timeout_seconds` plus a minute: this catches a wait anywhere else). */
  deadlineMs?: number;
  /**
   * A file arrived after a failure of the whole destination was said: the failed get a try. (That
   * it is back is said by the job's pause, once per recovery: see `destination_pause.ts`.)
   */
  onBack?(): void;
  /** A failed file was dropped (gone): it is not failing. */
  onDropped?(relPath: string): void;
  /** Why the watch folder cannot be read now (a share gone, or whose client died), or `null`. */
  watchProblem?(): Promise<string | null>;
}

/** An arrival the ledger does not hold yet. */
interface Arrival {
  record: WorkRecord;
  item: TransferItem;
  sha256?: string;
  /**
   * Found there, not sent now: `interrupted` (its end not recorded: announced as an arrival),
   * `rebuilt` (sent before the ledger was rebuilt: announced then, so no hook now), `already`
   * (a file with its bytes that this job did not send there: nothing sent, so no hook either).
   */
  found?: "interrupted" | "rebuilt" | "already";
  ownCopy?: TransferOutcome["ownCopy"]; // It went over its own copy (`sent_copy.ts`).
}

/** Sends batches of one job; see the module doc. */
export class BatchSender {
  #context: BatchSenderContext;
  #log: Logger;
  /** Arrivals waiting for the ledger to be writable (the table holds them `sending`). */
  #unrecorded: Arrival[] = [];
  /**
   * The kind of the whole destination's failure (base folder gone, login refused) said last, no
   * file arrived since: one of another kind (a login refused once the host is back) is said too.
   */
  #saidDestinationDown: TransferError["kind"] | null = null;
  /** Whether the whole destination failed since the last arrival (not one folder of it). */
  #destinationWasDown = false;
  /** Why batches' files were found at the destination already, said once (then at debug level). */
  #saidFound = new Set<string>();
  #refusals = new BaseRefusals();

  constructor(context: BatchSenderContext) {
    this.#log = jobLogger("pipeline", context.job.name);
    this.#context = context;
  }

  /**
   * The job stops (its batches have ended): record what waited for the ledger, or say what the
   * next start does with it. Their rows say `transferring` (a batch goes only once the ledger
   * recorded that), so the next start looks for each at the destination by its SHA-256 first
   * (`destination_look.ts`): found, it is recorded, not sent; else (gone from there, other bytes,
   * or no SHA-256 to be had there) it is sent again.
   */
  close(): void {
    this.recordWaiting();
    if (this.#unrecorded.length === 0) return;
    this.#log.warn(
      "{count} file(s) of job {job} arrived but the ledger could not record them: the next " +
        "start looks for them at {target}; each found there with its bytes (SHA-256) is " +
        "recorded then, not sent again, and any other is sent again",
      { count: this.#unrecorded.length, target: this.#context.transport.describeTarget("") },
    );
  }

  /**
   * Record the arrivals that waited for the ledger (after it became writable
   * again), and announce them.
   *
   * @returns how many were recorded (0 when the ledger still cannot be written)
   */
  recordWaiting(): number {
    const waiting = this.#unrecorded.splice(0);
    return this.#record(waiting) ? waiting.length : 0;
  }

  /**
   * Send `batch` (taken from the table: `sending`, recorded `transferring`) and settle each of
   * them (a batch past its deadline is stopped: each file's attempt failed, and is retried).
   *
   * @returns how many of them arrived
   * @throws an error no attempt's outcome explains (logged; its files are retried)
   */
  async send(batch: WorkRecord[]): Promise<number> {
    const { job, table, signal, transport } = this.#context;
    const items: TransferItem[] = batch.map((record) =>
      withLinkPolicy({
        source: absolutePath(job.watch_path, record.relPath),
        destination: record.destination,
        size: record.version.size,
        mtimeMs: record.version.mtimeMs,
      }, job)
    );
    const callMs = transport.longestCallMs?.(items) ?? job.transfer_timeout_seconds * 1000;
    const deadlineMs = this.#context.deadlineMs ?? 3 * callMs + 60_000;
    let sent = 0;
    const batchAbort = new AbortController();
    const stop = () => batchAbort.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const watchdog = setTimeout(() => {
      batchAbort.abort(
        new TransferError(
          `the batch of ${items.length} file(s) it was sent in took longer than ` +
            `${deadlineMs / 1000} s (its deadline: a connection that hangs?) and was stopped`,
          "retry",
        ),
      );
    }, deadlineMs);
    const waiting = new Set<string>();
    // A file put back in the queue meanwhile (held while full) may be on its way again: not ours.
    const takes = new Map(batch.map((record) => [record.relPath, record.take]));
    try {
      this.#log.debug("Sending {count} file(s) in one batch", { count: batch.length });
      const context = { job, table, transport, log: this.#log };
      const looked = await lookAtDestination(context, batch, items, batchAbort.signal);
      // After a rebuild, a name that holds another file is not written over: the copy goes beside.
      const records = batch.map((record, index) => {
        const { destination } = looked[index];
        if (destination === record.destination) return record;
        items[index] = { ...items[index], destination };
        return { ...record, destination };
      });
      const toSend = items.filter((_, index) => !looked[index].found);
      const bytes = toSend.reduce((sum, item) => sum + item.size, 0);
      const noRoom = await this.#context.admit?.(bytes, toSend.length);
      // A file this job did not send there is not replaced: the copy goes beside it.
      const ownCopies = new Set(batch.flatMap((r, i) => looked[i].replacesOwn ? [r.relPath] : []));
      const around = { table, transport, log: this.#log, ownCopies, signal: batchAbort.signal };
      const outcomes = toSend.length === 0
        ? []
        : noRoom
        ? refuseAll(toSend, noRoom)
        : await sendAroundOthers(
          around,
          records.filter((_, index) => !looked[index].found),
          toSend,
          (some) => this.#transfer(some, batchAbort.signal),
        );
      const byItem = new Map(outcomes.map((outcome, n) => [toSend[n], outcome]));
      const arrivals: Arrival[] = [];
      const failures: Array<[WorkRecord, TransferError]> = [];
      for (const [index, item] of items.entries()) {
        const outcome = byItem.get(item);
        const found = looked[index].found;
        if (found) arrivals.push({ record: records[index], item, found });
        else if (outcome?.error === null) {
          const record = { ...records[index], destination: outcome.item.destination };
          const found = outcome.occupied === "same" ? "already" as const : undefined;
          arrivals.push({ record, item: outcome.item, found, ...pick(outcome) });
        } else if (outcome?.error) failures.push([batch[index], outcome.error]);
      }
      const cut = batch.filter((_, index) => byItem.get(items[index])?.mayBeInPlace);
      table.interrupted.cutOff(cut.map((record) => [record.relPath, record.version]));
      keepUnconfirmed(table, batch, items.map((item) => byItem.get(item)));
      sent = arrivals.filter((arrival) => !unsent(arrival)).length;
      if (!this.#record(arrivals)) {
        for (const arrival of arrivals) waiting.add(arrival.record.relPath);
      }
      for (const [record, error] of failures) await this.#failed(record, error, batch);
    } catch (thrown) {
      if (signal.aborted) return sent;
      // None settled: the destination could not be asked (down?) or the deadline passed: all fail.
      const { reason } = batchAbort.signal; // the deadline's, whatever the transport threw then
      const error = reason instanceof TransferError ? reason : thrown;
      if (error instanceof TransferError) {
        for (const record of batch) await this.#failed(record, error, batch);
      } else {
        // A fault of this program, said with where it happened: thrown, as it tells nothing of the
        // destination (a paused job stays paused).
        this.#log.error("Sending a batch failed unexpectedly: {error}; its files are retried", {
          error: error instanceof Error ? error.stack ?? error.message : String(error),
        });
        throw error;
      }
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", stop);
      // Whatever went wrong above, no record stays `sending`: it is retried after a delay.
      for (const record of batch) {
        if (signal.aborted || waiting.has(record.relPath)) continue;
        const now = table.record(record.relPath);
        if (now?.phase !== "sending" || now.take !== takes.get(record.relPath)) continue;
        const attempts = record.attempts + 1;
        const nextAttemptAt = systemClock.now() +
          retryDelayMs(attempts, job.retry_delay_seconds, job.retry_max_delay_seconds);
        const failure = { error: "the batch it was sent in failed", attempts, nextAttemptAt };
        table.attemptFailed(
          record.relPath,
          { kind: "failure", failure: { ...failure, final: false } },
          { to: "waiting", attempts, nextAttemptAt },
        );
      }
    }
    return sent;
  }

  /**
   * Record `arrivals` as done, all or none, and announce them; when the
   * ledger cannot be written they wait (their records stay `sending`).
   *
   * @returns whether they were recorded
   */
  #record(arrivals: Arrival[]): boolean {
    if (arrivals.length === 0) return true;
    // Their hooks are owed from the moment they are recorded: a stop before one runs defers it.
    const hooks = this.#context.job.on_transfer.length === 0 ? [] : arrivals
      .filter((arrival) => !unsent(arrival))
      .map(({ record: { relPath, version, destination }, sha256 }) => ({
        relPath,
        destination,
        size: version.size,
        mtimeMs: version.mtimeMs,
        sha256,
      }));
    const again = this.#context.table.arrived(arrivals.map(({ record }) => record), hooks);
    if (again === null) {
      this.#unrecorded.push(...arrivals);
      return false;
    }
    this.#saidDestinationDown = null;
    this.#refusals.arrived(arrivals.map(({ record }) => record.destination));
    if (this.#destinationWasDown) {
      this.#destinationWasDown = false;
      this.#context.onBack?.();
    }
    for (const arrival of arrivals) this.#announce(arrival);
    // Said once per batch, each file at debug level: after a kill or a rebuild, thousands may be.
    for (const [kind, words] of Object.entries(FOUND_WORDS)) {
      const found = arrivals.filter((arrival) => arrival.found === kind);
      if (found.length === 0) continue;
      const target = this.#context.transport.describeTarget("");
      const level = this.#saidFound.has(kind) ? "debug" : "info";
      this.#saidFound.add(kind);
      this.#log[level](words, { count: found.length, target, source: found[0].item.source });
    }
    // A change seen while they were sent: the checker looks again.
    for (const source of again) this.#context.observe(source);
    return true;
  }

  /**
   * The transport's outcomes; a transport that throws (unless aborted) fails
   * every item retryably.
   */
  #transfer(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    return this.#context.transport.send(items, signal).catch((error) => {
      if (signal.aborted) throw error;
      // A broken contract must not strand the files as `transferring`: retry them.
      const reason = error instanceof Error ? error.message : String(error);
      return items.map((item) => ({
        item,
        error: new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", {
          cause: error,
        }),
      }));
    });
  }

  /** An arrival the table holds as done now: log it and tell the others. */
  #announce({ record, item, sha256, found, ownCopy }: Arrival): void {
    const { transport } = this.#context;
    const destination = transport.describeTarget(record.destination);
    const fields = { source: item.source, destination, found };
    if (found) this.#log.debug("{source} is at {destination} already ({found}): recorded", fields);
    if (found === "interrupted") transport.dropKeptCopies?.([record.destination]);
    if (found === "already") transport.deliveredBefore?.(); // Files are there: not made again.
    if (unsent({ found })) this.#context.onRecognised(record.relPath, { ...record.version });
    else {
      this.#context.onSent(record, sha256);
      const how = arrivalWords(found, ownCopy);
      this.#log.info(`Successfully transferred {source} -> {destination}${how}`, {
        source: item.source,
        destination,
        bytes: record.version.size,
      });
    }
  }

  async #failed(record: WorkRecord, error: TransferError, batch: object): Promise<void> {
    // The destination's, or its own?
    error = this.#refusals.of(error, record.attempts, batch, record.destination);
    const { job, table, signal } = this.#context;
    const source = absolutePath(job.watch_path, record.relPath);
    const never = isDestinationFull(error) &&
      await this.#context.neverFits?.(record.version.size).catch(() => null);
    if (never) {
      error = new TransferError(`Cannot send ${source}: ${never}`, "fatal", { cause: error });
    }
    // Its watch folder unreadable now (a share whose client died, may hang): it waits, no failure.
    const watchProblem = failureScope(error) === "file" && await this.#context.watchProblem?.();
    const current = watchProblem ? null : await sourceNow(source, job, record.version);
    if (signal.aborted) return;
    const outcome = attemptOutcome({
      error,
      sent: record.version,
      attempts: record.attempts,
      current,
      watchProblem: watchProblem || null,
      policy: job,
      pauseWhenUnavailable: this.#context.pauseWhenUnavailable,
      now: systemClock.now(),
      failing: record.failing,
      slowRetryMs: this.#context.slowRetries && !neverArrives(error) ? slowRetryMs(job) : 0,
    });
    // A destination gone, refusing the login or its folder fails all alike: its attempts are
    // said once, till back; each file that gives up says so (the line people grep and count).
    const wholeDestination = outcome.next.kind !== "drop" && failureScope(error) !== "file";
    const destinationDown = wholeDestination ||
      (outcome.next.kind !== "drop" && /: cannot create (the|its|folder) /.test(error.message));
    const gaveUp = outcome.next.kind === "give-up" && outcome.next.first;
    if (destinationDown && this.#saidDestinationDown === error.kind && !gaveUp) {
      this.#log.debug("{source} failed the same way: {reason}", { source, reason: error.message });
    } else {
      logFailure(this.#log, this.#context.job, source, error, outcome.next);
    }
    if (destinationDown) this.#saidDestinationDown = error.kind;
    // A folder it cannot make is that folder's: files arriving elsewhere do not make it back.
    if (wholeDestination) this.#destinationWasDown = true;
    const { kind } = outcome.next;
    // A file that changed while it was sent was tried and did not arrive: a failed attempt too.
    const scope = kind === "observe" && !watchProblem ? "changed" : failureScope(error);
    if (scope === "changed" || kind === "retry" || kind === "give-up" || kind === "hold") {
      this.#context.onFailed?.(record.relPath, error, kind === "give-up", scope);
    }
    if (outcome.next.kind === "give-up" && outcome.next.first) {
      this.#context.onGaveUp(record, error.message, outcome.next.attempts);
    }
    // Before the file is back in the queue: the pause must hold it.
    if (outcome.next.kind === "hold") this.#context.onHold(error, record);
    // Its source is gone: a copy kept to continue it never will be.
    if (outcome.next.kind === "drop") {
      this.#context.transport.dropKeptCopies?.([record.destination]);
      this.#context.onDropped?.(record.relPath);
    }
    const recheck = table.attemptFailed(record.relPath, outcome.ledger, afterAttempt(outcome.next));
    if (outcome.next.kind === "observe" || (recheck && outcome.next.kind !== "drop")) {
      this.#context.observe(source);
    }
  }
}

/** Every item failed, unsent, for a destination without room (`reason`). */
function refuseAll(items: TransferItem[], reason: string): TransferOutcome[] {
  return items.map((item) => ({
    item,
    error: new RefusedUnsent(`Cannot send ${item.source}: ${reason}`, "retry-later"),
  }));
}

/** Whether `arrival` was found at the destination without being sent now, so no hook is owed. */
const unsent = ({ found }: Pick<Arrival, "found">) => found === "rebuilt" || found === "already";

/**
 * The version of what has the name of a source whose attempt failed: `null` when it is gone, or
 * is what the job never sends (a FIFO, a link its `symlinks` policy refuses: dropped, as a scan
 * would skip it); `sent` when it cannot be examined (a share that fails to answer, a FUSE mount
 * whose server died, says nothing of the file, which is tried again as it was).
 */
async function sourceNow(
  source: string,
  job: JobConfig,
  sent: FileVersion,
): Promise<FileVersion | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(source);
  } catch (error) {
    return isGoneError(error) ? null : sent;
  }
  // A folder that took its name is observed: the checker drops the file and has it scanned.
  if (info.isFile || info.isDirectory) return versionOf(info);
  if (!info.isSymlink) return null;
  const verdict = classifyEntry(source, job);
  if (!verdict.ok) return verdict.code === "unreadable" ? sent : null;
  return await Deno.stat(verdict.source).then(versionOf, () => sent);
}
