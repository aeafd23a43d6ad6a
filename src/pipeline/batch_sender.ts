/**
 * Delivery of one batch: record it `transferring`, hand it to the transport,
 * and settle every record in it (done, or what the attempt's outcome says),
 * whatever happens on the way.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { TransferItem, TransferOutcome, Transport } from "../transfer/transport.ts";
import { absolutePath, type FileVersion, versionOf } from "../watch/file_version.ts";
import { attemptOutcome, type NextStep, slowRetryMs } from "./attempt_outcome.ts";
import { retryDelayMs } from "./backoff.ts";
import type { AfterAttempt, WorkQueue, WorkRecord } from "./work_queue.ts";

/** What a {@linkcode BatchSender} works with. */
export interface BatchSenderContext {
  job: JobConfig;
  ledger: Ledger;
  transport: Transport;
  queue: WorkQueue;
  /** Aborted when the job stops: records are left as they are (resumed at the next start). */
  signal: AbortSignal;
  /** Observe a source file again (the stability checker). */
  observe(path: string): void;
  /**
   * A file arrived verified at `destination` (relative to the base path);
   * `sha256` when the transport hashed what it delivered.
   */
  onSent(relPath: string, version: FileVersion, destination: string, sha256?: string): void;
  /**
   * A file used up its fast retries after `attempts` attempts (once per file:
   * its slow retries failing again do not call this).
   */
  onGaveUp(record: WorkRecord, reason: string, attempts: number): void;
  /** An attempt failed (`final`: the file is failing, past its fast retries). */
  onFailed?(relPath: string, error: TransferError, final: boolean): void;
  /**
   * Whether a failing file keeps being tried every `retry_max_delay_seconds`
   * until it arrives (the daemon), instead of waiting for the next rescan or
   * start-up (`run --once`, which must end).
   */
  slowRetries?: boolean;
  /** Whether a full destination pauses the job (see `full_pause.ts`). */
  pauseWhenFull: boolean;
  /** The destination is full (called before the file is queued again). */
  onFull(error: TransferError): void;
  /**
   * Whether a batch of `bytes` may go now (`min_free_space`, see
   * `space_guard.ts`): `null`, or why there is no room for it.
   */
  admit?(bytes: number): Promise<string | null>;
  /**
   * Longest time one batch may take; then it is aborted and its files are
   * retried. Default: three times `transfer_timeout_seconds` plus a minute
   * (each command of a batch has that timeout already; this catches a wait
   * anywhere else).
   */
  deadlineMs?: number;
}

/** Sends batches of one job; see the module doc. */
export class BatchSender {
  #context: BatchSenderContext;
  #log: Logger;

  constructor(context: BatchSenderContext) {
    this.#log = jobLogger("pipeline", context.job.name);
    this.#context = context;
  }

  /**
   * Send `batch` (records in phase `sending`) and settle each of them.
   *
   * @returns how many of them arrived
   */
  async send(batch: WorkRecord[]): Promise<number> {
    const { job, ledger, queue, signal } = this.#context;
    const items: TransferItem[] = batch.map((record) =>
      withLinkPolicy({
        source: absolutePath(job.watch_path, record.relPath),
        destination: record.destination,
        size: record.version.size,
        mtimeMs: record.version.mtimeMs,
      }, job.symlinks)
    );
    const deadlineMs = this.#context.deadlineMs ?? 3 * job.transfer_timeout_seconds * 1000 + 60_000;
    let sent = 0;
    const batchAbort = new AbortController();
    const stop = () => batchAbort.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const watchdog = setTimeout(() => {
      batchAbort.abort(
        new Error(
          `Sending ${items.length} file(s) took longer than ${deadlineMs / 1000} s; aborted`,
        ),
      );
    }, deadlineMs);
    try {
      ledger.markTransferring(job.name, batch.map((record) => record.relPath));
      this.#log.debug("Sending {count} file(s) in one batch", {
        count: batch.length,
      });
      const noRoom = await this.#context.admit?.(items.reduce((sum, item) => sum + item.size, 0));
      const outcomes = noRoom
        ? refuseAll(items, noRoom)
        : await this.#transfer(items, batchAbort.signal);
      sent = outcomes.filter((outcome) => outcome.error === null).length;
      const failures: Array<[WorkRecord, TransferError]> = [];
      // One transaction for the whole batch's arrivals.
      ledger.transaction(() => {
        for (const [index, outcome] of outcomes.entries()) {
          if (outcome.error === null) this.#succeeded(batch[index], items[index], outcome.sha256);
          else failures.push([batch[index], outcome.error]);
        }
      });
      for (const [record, error] of failures) await this.#failed(record, error);
    } catch (error) {
      if (signal.aborted) return sent;
      this.#log.error("Sending a batch failed: {error}; its files are retried", {
        error: error instanceof Error ? error.message : String(error),
      });
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener("abort", stop);
      // Whatever went wrong above, no record stays `sending`: it is retried after a delay.
      for (const record of batch) {
        if (signal.aborted || queue.get(record.relPath)?.phase !== "sending") continue;
        const attempts = record.attempts + 1;
        const delayMs = retryDelayMs(
          attempts,
          job.retry_delay_seconds,
          job.retry_max_delay_seconds,
        );
        const nextAttemptAt = Date.now() + delayMs;
        ledger.recordFailure(job.name, record.relPath, {
          error: "the batch it was sent in failed",
          attempts,
          nextAttemptAt,
          final: false,
        });
        queue.finish(record.relPath, { to: "waiting", attempts, nextAttemptAt });
      }
    }
    return sent;
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

  #succeeded(record: WorkRecord, item: TransferItem, sha256: string | undefined): void {
    const { job, ledger, transport, queue } = this.#context;
    ledger.markDone(job.name, record.relPath);
    this.#context.onSent(record.relPath, { ...record.version }, record.destination, sha256);
    this.#log.info("Successfully transferred {source} -> {destination}", {
      source: item.source,
      destination: transport.describeTarget(record.destination),
      bytes: record.version.size,
    });
    if (queue.finish(record.relPath, { to: "removed" })) this.#context.observe(item.source);
  }

  async #failed(record: WorkRecord, error: TransferError): Promise<void> {
    const { job, ledger, queue, signal } = this.#context;
    const source = absolutePath(job.watch_path, record.relPath);
    const current = await Deno.stat(source).then(versionOf, () => null);
    if (signal.aborted) return;
    const outcome = attemptOutcome({
      error,
      sent: record.version,
      attempts: record.attempts,
      current,
      policy: job,
      pauseWhenFull: this.#context.pauseWhenFull,
      now: Date.now(),
      failing: record.failing,
      slowRetryMs: this.#context.slowRetries ? slowRetryMs(job) : 0,
    });
    if (outcome.ledger.kind === "remove") ledger.remove(job.name, record.relPath);
    else ledger.recordFailure(job.name, record.relPath, outcome.ledger.failure);
    this.#logFailure(source, error, outcome.next);
    const { kind } = outcome.next;
    if (kind === "retry" || kind === "give-up" || kind === "hold") {
      this.#context.onFailed?.(record.relPath, error, kind === "give-up");
    }
    if (outcome.next.kind === "give-up" && outcome.next.first) {
      this.#context.onGaveUp(record, error.message, outcome.next.attempts);
    }
    // Before the file is back in the queue: the pause must hold it.
    if (outcome.next.kind === "hold") this.#context.onFull(error);
    const recheck = queue.finish(record.relPath, afterAttempt(outcome.next));
    if (outcome.next.kind === "observe" || (recheck && outcome.next.kind !== "drop")) {
      this.#context.observe(source);
    }
  }

  #logFailure(source: string, error: TransferError, next: NextStep): void {
    const { job } = this.#context;
    switch (next.kind) {
      case "drop":
        this.#log.info("Dropped {path}: it disappeared while being sent", {
          path: source,
        });
        return;
      case "observe":
        this.#log.info("{path} changed while being sent; waiting until it is complete again", {
          path: source,
        });
        return;
      case "hold":
        this.#log.debug("{source} waits for space at the destination: {reason}", {
          source,
          reason: error.message,
        });
        return;
      case "retry": {
        const fields = {
          source,
          reason: error.message,
          attempt: next.attempts,
          of: job.retry_attempts,
          seconds: Math.round(next.delayMs / 100) / 10,
        };
        const message =
          "Attempt {attempt} of {source} failed: {reason}; retry {attempt}/{of} in {seconds} s";
        if (error.kind === "retry-later") this.#log.error(message, fields);
        else this.#log.warn(message, fields);
        return;
      }
      case "give-up": {
        const seconds = Math.round((next.nextAttemptAt - Date.now()) / 1000);
        const again = next.nextAttemptAt === 0
          ? "it is tried again at the next rescan or start-up"
          : `it is tried again every ${
            Math.round(slowRetryMs(job) / 1000)
          } s (retry_max_delay_seconds) until it arrives, or at once with Retry on the status page`;
        if (!next.first) {
          this.#log.warn(
            "Attempt {attempt} of {source} failed: {reason}; still failing, next try in {seconds} s",
            { source, reason: error.message, attempt: next.attempts, seconds },
          );
          return;
        }
        const hint = error.retryable
          ? `gave up after ${next.attempts} attempt(s); ${again}`
          : `this needs a fix first; ${again}`;
        this.#log.error("Failed to transfer {source}: {reason} ({hint})", {
          source,
          reason: error.message,
          hint,
        });
      }
    }
  }
}

/** Every item failed, unsent, for a destination without room (`reason`). */
function refuseAll(items: TransferItem[], reason: string): TransferOutcome[] {
  return items.map((item) => ({
    item,
    error: new TransferError(
      `Cannot send ${item.source}: ${reason}`,
      "retry-later",
    ),
  }));
}

/** Where a record goes after a failed attempt. */
function afterAttempt(next: NextStep): AfterAttempt {
  if (next.kind === "retry") {
    return { to: "waiting", attempts: next.attempts, nextAttemptAt: next.nextAttemptAt };
  }
  if (next.kind === "give-up" && next.nextAttemptAt > 0) {
    return {
      to: "waiting",
      attempts: next.attempts,
      nextAttemptAt: next.nextAttemptAt,
      failing: true,
    };
  }
  return next.kind === "hold" ? { to: "queued" } : { to: "removed" };
}

/**
 * The item as the transport must treat it: a symbolic link that the job's
 * `symlinks` policy let through (`inside`, `follow`) is read through; under
 * `skip`, or for a regular file, no transport follows a link.
 */
function withLinkPolicy(item: TransferItem, policy: JobConfig["symlinks"]): TransferItem {
  if (policy === "skip") return item;
  try {
    return Deno.lstatSync(item.source).isSymlink ? { ...item, followLink: true } : item;
  } catch {
    return item;
  }
}
