/**
 * One job's pipeline: watch → stability → ledger → transfer → verified.
 *
 * The ledger is the source of truth: a file is recorded `pending` when it is
 * complete, `transferring` while it is sent, `done` when it arrived verified,
 * or `failed` when retries are exhausted. Memory only holds what is in motion.
 *
 * @module
 */
import { join } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import type { DoneEntry, Ledger } from "../ledger/ledger.ts";
import { planDestination } from "../layout/destination.ts";
import { logger } from "../log/logging.ts";
import type { TransferItem, Transport } from "../transfer/transport.ts";
import { createFileFilter, type FileFilter } from "../watch/file_filter.ts";
import { FolderWatcher, type WatchEvent } from "../watch/folder_watcher.ts";
import { relativeTo, scanFolderBatches } from "../watch/scan.ts";
import { type Activity, StabilityChecker, type StableFile } from "../watch/stability.ts";
import { retryDelayMs } from "./backoff.ts";

/** How long events are gathered before they are handled together. */
const EVENT_BATCH_MS = 5;

/** How long files that became ready are gathered before a batch starts. */
const BATCH_GATHER_MS = 3;

/** A complete file waiting for (another) attempt. */
interface QueuedFile extends TransferItem {
  relPath: string;
  /** Failed attempts so far. */
  attempts: number;
  /** Earliest start of the next attempt (ms since epoch). */
  nextAttemptAt: number;
}

/** Options of {@linkcode JobRunner}. */
export interface JobRunnerOptions {
  /** Scan, send what is complete, and finish (no watcher, no rescans). */
  once: boolean;
  /**
   * Quiet time after a close-after-write event (Linux) before a file matching
   * `close_shortcut_patterns` counts as complete; the full stability window
   * applies elsewhere.
   * @default 200
   */
  closedForMs?: number;
  /** How often to look for a watch folder that does not exist yet. @default 10000 */
  missingFolderRetryMs?: number;
}

/** What a job did during this run. */
export interface JobSummary {
  sent: number;
  failed: number;
}

/** Runs one job; see the module doc. */
export class JobRunner {
  readonly job: JobConfig;
  #ledger: Ledger;
  #transport: Transport;
  #options: JobRunnerOptions;
  #filter: FileFilter;
  #checker: StabilityChecker;
  #log = logger("pipeline");
  #done = new Map<string, DoneEntry>();
  /** Files due now, in arrival order, by relative path. */
  #queue = new Map<string, QueuedFile>();
  #waiting = new Map<string, QueuedFile>();
  #inFlight = new Set<string>();
  #recheck = new Set<string>();
  /** Files between "ready" and "queued" (their destination is being planned). */
  #planning = new Set<string>();
  #active = 0;
  #abort = new AbortController();
  #watcher: FolderWatcher | undefined;
  /** Events not handled yet: latest kind per path, and whether it appeared. */
  #events = new Map<string, { kind: Deno.FsEvent["kind"]; appeared: boolean }>();
  #eventTimer: ReturnType<typeof setTimeout> | undefined;
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #rescanTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #rewatching = false;
  #idleWaiters: Array<() => void> = [];
  #stats: JobSummary = { sent: 0, failed: 0 };

  constructor(job: JobConfig, ledger: Ledger, transport: Transport, options: JobRunnerOptions) {
    this.job = job;
    this.#ledger = ledger;
    this.#transport = transport;
    this.#options = options;
    this.#filter = createFileFilter(job);
    const stableForMs = job.stability_window_seconds * 1000;
    const shortcut = createFileFilter({
      ...job,
      file_patterns: job.close_shortcut_patterns,
      exclude_patterns: [],
    });
    this.#checker = new StabilityChecker({
      stableForMs,
      closedForMs: Math.min(stableForMs, options.closedForMs ?? 200),
      closeShortcut: (path) => {
        const rel = relativeTo(job.watch_path, path);
        return rel !== null && shortcut.includesFile(rel);
      },
      incompleteGraceMs: job.fits_incomplete_grace_seconds * 1000,
      // `--once` sends what is complete now; an incomplete FITS file waits for the next run.
      waitForIncomplete: !options.once,
      onReady: (file) => {
        if (file.truncated) {
          this.#log.warn(
            "Sending {path} although it is truncated ({reason}); it has not changed for {seconds} s or more",
            {
              job: job.name,
              path: file.path,
              reason: file.truncated.reason,
              seconds: job.fits_incomplete_grace_seconds,
            },
          );
        }
        this.#onReady(file);
        this.#checkIdle();
      },
      onGone: (path) => void this.#onGone(path),
      onLeft: (path, reason) => {
        this.#log.info("Left {path} for a later run: {reason}", { job: job.name, path, reason });
        this.#checkIdle();
      },
    });
  }

  /** Files sent and failed so far. */
  get summary(): JobSummary {
    return { ...this.#stats };
  }

  /**
   * Resume from the ledger, start watching (unless `once`), and scan the
   * watch folder for files that arrived while the daemon was down.
   */
  async start(): Promise<void> {
    const job = this.job;
    const requeued = this.#ledger.requeue(job.name, ["transferring", "failed"]);
    if (requeued > 0) {
      this.#log.info("Resuming {count} interrupted or failed file(s) of job {job}", {
        job: job.name,
        count: requeued,
      });
    }
    this.#done = this.#ledger.doneIndex(job.name);
    await this.#resumeUnfinished();
    if (!(await this.#waitForWatchFolder()) || this.#stopping) return;
    if (!this.#options.once) {
      // The first file should not wait for an SSH handshake (~0.3 s or more).
      void this.#transport.warmUp?.();
      await this.#startWatcher();
    }
    if (this.#stopping) return;
    await this.#scan("");
    if (this.#stopping) return;
    if (!this.#options.once && job.rescan_interval_seconds > 0) {
      this.#rescanTimer = setInterval(
        () => void this.#rescan(),
        job.rescan_interval_seconds * 1000,
      );
    }
    const verb = this.#options.once ? "Checked" : "Watching";
    this.#log.info(`${verb} {path} for job {job} ({method} to {target})`, {
      job: job.name,
      path: job.watch_path,
      method: job.transfer_method,
      target: this.#transport.describeTarget(""),
    });
    this.#pump();
    this.#checkIdle();
  }

  /**
   * A path under observation is no file (any more). A folder whose name matches
   * `file_patterns` (moved in, or created) is scanned; anything else is dropped.
   */
  async #onGone(path: string): Promise<void> {
    const rel = relativeTo(this.job.watch_path, path);
    // lstat: a symbolic link to a folder is not followed (as in a scan).
    const isFolder = await Deno.lstat(path).then((info) => info.isDirectory, () => false);
    if (isFolder && rel !== null && rel !== "" && this.#filter.includesDir(rel)) {
      await this.#scan(rel);
    } else {
      this.#log.info("Dropped {path}: it disappeared before it was complete", {
        job: this.job.name,
        path,
      });
    }
    this.#checkIdle();
  }

  /** Resolve when nothing is pending, queued, waiting for a retry or in flight. */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      this.#checkIdle();
    });
  }

  /**
   * Stop: no new transfers; transfers in flight are aborted (final names
   * untouched; a temporary copy left behind is overwritten or swept by the
   * next attempt) and resumed at the next start.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#watcher?.close();
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#eventTimer);
    clearTimeout(this.#pumpTimer);
    clearInterval(this.#rescanTimer);
    this.#checker.close();
    this.#abort.abort(new Error("stopping"));
    while (this.#active > 0) await new Promise((r) => setTimeout(r, 20));
    await this.#transport.close();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  async #waitForWatchFolder(): Promise<boolean> {
    const path = this.job.watch_path;
    let warned = false;
    while (!this.#stopping) {
      try {
        const info = await Deno.stat(path);
        if (info.isDirectory) return true;
        throw new Error(`Cannot watch ${path}: it is not a folder`);
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (this.#options.once) {
        throw new Error(
          `Cannot watch ${path}: the folder does not exist (job ${this.job.name}); create it or fix watch_path`,
        );
      }
      if (!warned) {
        this.#log.warn("Watch folder {path} does not exist yet; checking again every {seconds} s", {
          job: this.job.name,
          path,
          seconds: (this.#options.missingFolderRetryMs ?? 10_000) / 1000,
        });
        warned = true;
      }
      await new Promise((r) => setTimeout(r, this.#options.missingFolderRetryMs ?? 10_000));
    }
    return false;
  }

  async #resumeUnfinished(): Promise<void> {
    for (const row of this.#ledger.unfinished(this.job.name)) {
      const path = join(this.job.watch_path, ...row.relPath.split("/"));
      let info: Deno.FileInfo | null = null;
      try {
        info = await Deno.stat(path);
      } catch { /* gone */ }
      if (!info?.isFile || !this.#filter.includesFile(row.relPath)) {
        this.#ledger.remove(this.job.name, row.relPath);
        this.#log.info("Dropped {path}: it is gone from the watch folder, or no longer matches", {
          job: this.job.name,
          path,
        });
        continue;
      }
      if (info.size === row.size && (info.mtime?.getTime() ?? 0) === row.mtimeMs) {
        this.#enqueue({
          source: path,
          relPath: row.relPath,
          destination: row.destination,
          size: row.size,
          mtimeMs: row.mtimeMs,
          attempts: row.attempts,
          nextAttemptAt: row.nextAttemptAt,
        });
      } else {
        this.#checker.touch(path);
      }
    }
  }

  /** Watch the folder (from a worker thread); resolves once the watch is in place. */
  async #startWatcher(): Promise<void> {
    if (this.#stopping) return;
    this.#watcher = new FolderWatcher(
      this.job.watch_path,
      (events) => {
        for (const event of events) this.#onEvent(event);
      },
      (message) => {
        if (this.#stopping) return;
        this.#log.error("Watching {path} failed: {error}; rescanning every minute instead", {
          job: this.job.name,
          path: this.job.watch_path,
          error: message,
        });
        this.#rescanTimer ??= setInterval(() => void this.#rescan(), 60_000);
      },
    );
    await this.#watcher.ready;
  }

  /**
   * The watch folder itself was removed or moved away, and its watch with it:
   * watch the path again once a folder exists there, and scan it.
   */
  async #rewatch(): Promise<void> {
    if (this.#rewatching || this.#stopping) return;
    this.#rewatching = true;
    try {
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#log.warn("Watch folder {path} was removed; watching it again once it exists", {
        job: this.job.name,
        path: this.job.watch_path,
      });
      if (!(await this.#waitForWatchFolder()) || this.#stopping) return;
      await this.#startWatcher();
      await this.#scan("");
    } catch (error) {
      if (this.#stopping) return;
      this.#log.error("Cannot watch {path} again: {error}; rescanning every minute instead", {
        job: this.job.name,
        path: this.job.watch_path,
        error: String(error),
      });
      this.#rescanTimer ??= setInterval(() => void this.#rescan(), 60_000);
    } finally {
      this.#rewatching = false;
    }
  }

  /**
   * Collect an event. Events are only gathered here (latest kind per path) and
   * handled a few milliseconds later in one go, so the watcher is drained
   * quickly even during a burst: a watcher that falls behind loses events.
   */
  #onEvent(event: WatchEvent): void {
    if (this.#stopping) return;
    if (event.flag === "rescan") {
      this.#log.info("The watcher lost events; rescanning {path}", {
        job: this.job.name,
        path: this.job.watch_path,
      });
      void this.#rescan();
      return;
    }
    const appeared = event.kind === "create" || event.kind === "rename";
    for (const path of event.paths) {
      const seen = this.#events.get(path);
      this.#events.delete(path);
      this.#events.set(path, { kind: event.kind, appeared: appeared || (seen?.appeared ?? false) });
    }
    this.#eventTimer ??= setTimeout(() => this.#handleEvents(), EVENT_BATCH_MS);
  }

  #handleEvents(): void {
    const events = this.#events;
    this.#events = new Map();
    this.#eventTimer = undefined;
    if (this.#stopping) return;
    for (const [path, { kind, appeared }] of events) {
      const rel = relativeTo(this.job.watch_path, path);
      if (kind === "remove") {
        if (rel === "") void this.#rewatch();
        continue;
      }
      if (rel === null || rel === "") continue;
      if (this.#filter.includesFile(rel)) {
        this.#consider(path, rel, kind === "access" ? "closed" : "changed");
      } else if (appeared && this.#filter.includesDir(rel)) {
        // A new (or moved-in) folder: files may have landed before the watch covered it.
        void Deno.stat(path).then((info) => {
          if (info.isDirectory) return this.#scan(rel);
        }).catch(() => {});
      }
    }
  }

  /** A file changed or appeared: (re)start observing it. */
  #consider(path: string, rel: string, activity: Activity): void {
    if (this.#inFlight.has(rel)) {
      this.#recheck.add(rel);
      return;
    }
    this.#queue.delete(rel);
    this.#waiting.delete(rel);
    this.#checker.touch(path, activity);
  }

  async #scan(startRel: string): Promise<void> {
    let found = 0;
    for await (
      const batch of scanFolderBatches(this.job.watch_path, this.#filter, {
        startRel,
        onError: (path, error) =>
          this.#log.warn("Cannot read folder {path}: {error}", {
            job: this.job.name,
            path,
            error: String(error),
          }),
      })
    ) {
      if (this.#stopping) return;
      for (const file of batch) {
        const rel = file.relPath;
        if (
          this.#queue.has(rel) || this.#inFlight.has(rel) || this.#waiting.has(rel) ||
          this.#planning.has(rel) || this.#checker.has(file.path)
        ) continue;
        const done = this.#done.get(rel);
        if (done) {
          // Synchronous stat: ~4 µs, against ~20 µs for a promise per file at 100,000 files.
          let info: Deno.FileInfo;
          try {
            info = Deno.statSync(file.path);
          } catch {
            continue;
          }
          if (info.size === done.size && (info.mtime?.getTime() ?? 0) === done.mtimeMs) continue;
        }
        found++;
        this.#checker.touch(file.path);
      }
    }
    if (found > 0) {
      this.#log.info("Found {count} new or changed file(s) in {path}", {
        job: this.job.name,
        count: found,
        path: startRel === "" ? this.job.watch_path : join(this.job.watch_path, startRel),
      });
    }
  }

  /** Retry failed files and look for missed ones; errors are logged (it runs from timers). */
  async #rescan(): Promise<void> {
    if (this.#stopping) return;
    try {
      this.#ledger.requeue(this.job.name, ["failed"]);
      for (const row of this.#ledger.unfinished(this.job.name)) {
        if (
          row.state !== "pending" || this.#queue.has(row.relPath) ||
          this.#waiting.has(row.relPath) || this.#inFlight.has(row.relPath) ||
          this.#planning.has(row.relPath)
        ) {
          continue;
        }
        this.#checker.touch(join(this.job.watch_path, ...row.relPath.split("/")));
      }
      await this.#scan("");
    } catch (error) {
      if (this.#stopping) return;
      this.#log.error("Rescanning {path} failed: {error}; trying again at the next rescan", {
        job: this.job.name,
        path: this.job.watch_path,
        error: String(error),
      });
    }
  }

  #onReady(file: StableFile): void {
    if (this.#stopping) return;
    const rel = relativeTo(this.job.watch_path, file.path);
    if (rel === null) return;
    const done = this.#done.get(rel);
    if (done && done.size === file.size && done.mtimeMs === file.mtimeMs) return;
    // Already queued or waiting for its retry as it is: keep that entry (and its backoff).
    const queued = this.#queue.get(rel) ?? this.#waiting.get(rel);
    if (queued && queued.size === file.size && queued.mtimeMs === file.mtimeMs) return;
    if (this.#inFlight.has(rel) || this.#planning.has(rel)) {
      this.#recheck.add(rel);
      return;
    }
    this.#planning.add(rel);
    planDestination(
      this.job,
      { path: file.path, relPath: rel, mtimeMs: file.mtimeMs },
      new Date(),
      (reason) =>
        this.#log.warn("No usable DATE-OBS in {path} ({reason}); using its mtime", {
          job: this.job.name,
          path: file.path,
          reason,
        }),
    ).then((destination) => {
      if (this.#stopping) return;
      if (this.#inFlight.has(rel)) {
        this.#recheck.add(rel);
        return;
      }
      const attempts = this.#ledger.enqueue(this.job.name, rel, {
        size: file.size,
        mtimeMs: file.mtimeMs,
        destination,
      });
      // A changed file replaces a retry that waits for its old version.
      this.#waiting.delete(rel);
      this.#enqueue({
        source: file.path,
        relPath: rel,
        destination,
        size: file.size,
        mtimeMs: file.mtimeMs,
        attempts,
        nextAttemptAt: 0,
      });
      this.#log.debug("Ready: {path} -> {destination}", {
        job: this.job.name,
        path: file.path,
        destination,
      });
      this.#pumpSoon();
    }).catch((error) => {
      this.#log.error("Cannot plan the destination of {path}: {error}", {
        job: this.job.name,
        path: file.path,
        error: String(error),
      });
    }).finally(() => {
      this.#planning.delete(rel);
      // A change seen while planning: observe again (unless a transfer owns the recheck).
      if (!this.#inFlight.has(rel) && this.#recheck.delete(rel) && !this.#stopping) {
        this.#checker.touch(file.path);
      }
      this.#checkIdle();
    });
  }

  /** Queue a complete file: due now, or waiting for its retry time. */
  #enqueue(queued: QueuedFile): void {
    if (queued.nextAttemptAt > Date.now()) {
      this.#waiting.set(queued.relPath, queued);
      this.#scheduleRetry();
    } else {
      this.#queue.set(queued.relPath, queued);
    }
  }

  /**
   * Start batches in a moment ({@linkcode BATCH_GATHER_MS}), so files that
   * become ready together (a scan, a burst) go out in one batch instead of
   * the first one alone.
   */
  #pumpSoon(): void {
    if (this.#pumpTimer !== undefined) return;
    this.#pumpTimer = setTimeout(() => {
      this.#pumpTimer = undefined;
      this.#pump();
    }, BATCH_GATHER_MS);
  }

  /** Start batches while there is work and room. */
  #pump(): void {
    while (
      !this.#stopping && this.#active < this.job.max_concurrent_transfers && this.#queue.size > 0
    ) {
      const batch: QueuedFile[] = [];
      for (const [rel, queued] of this.#queue) {
        if (batch.length >= this.#transport.maxBatchFiles) break;
        this.#queue.delete(rel);
        batch.push(queued);
      }
      this.#active++;
      this.#runBatch(batch).catch((error) => {
        if (!this.#stopping) {
          this.#log.error("Transfer batch failed unexpectedly: {error}", {
            job: this.job.name,
            error: String(error),
          });
        }
      }).finally(() => {
        this.#active--;
        this.#pump();
        this.#checkIdle();
      });
    }
  }

  async #runBatch(batch: QueuedFile[]): Promise<void> {
    const rels = batch.map((q) => q.relPath);
    for (const rel of rels) this.#inFlight.add(rel);
    try {
      this.#ledger.markTransferring(this.job.name, rels);
      this.#log.debug("Sending {count} file(s) in one batch", {
        job: this.job.name,
        count: batch.length,
      });
      const outcomes = await this.#transport.send(batch, this.#abort.signal).catch((error) => {
        if (this.#abort.signal.aborted) throw error;
        // A broken contract must not strand the files as `transferring`: retry them.
        const reason = error instanceof Error ? error.message : String(error);
        return batch.map((item) => ({
          item,
          error: new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", {
            cause: error,
          }),
        }));
      });
      const failures: Array<[QueuedFile, TransferError]> = [];
      // One transaction for the whole batch's arrivals.
      this.#ledger.transaction(() => {
        for (const [index, outcome] of outcomes.entries()) {
          if (outcome.error === null) this.#succeeded(batch[index]);
          else failures.push([batch[index], outcome.error]);
        }
      });
      for (const [queued, error] of failures) await this.#failed(queued, error);
    } finally {
      for (const rel of rels) {
        this.#inFlight.delete(rel);
        if (this.#recheck.delete(rel) && !this.#stopping) {
          this.#checker.touch(join(this.job.watch_path, ...rel.split("/")));
        }
      }
    }
  }

  #succeeded(queued: QueuedFile): void {
    this.#ledger.markDone(this.job.name, queued.relPath);
    this.#done.set(queued.relPath, { size: queued.size, mtimeMs: queued.mtimeMs });
    this.#stats.sent++;
    this.#log.info("Successfully transferred {source} -> {destination}", {
      job: this.job.name,
      source: queued.source,
      destination: this.#transport.describeTarget(queued.destination),
      bytes: queued.size,
    });
  }

  async #failed(queued: QueuedFile, error: TransferError): Promise<void> {
    const job = this.job;
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(queued.source);
    } catch { /* gone */ }
    if (!info) {
      this.#ledger.remove(job.name, queued.relPath);
      this.#log.info("Dropped {path}: it disappeared while being sent", {
        job: job.name,
        path: queued.source,
      });
      return;
    }
    if (info.size !== queued.size || (info.mtime?.getTime() ?? 0) !== queued.mtimeMs) {
      this.#ledger.recordFailure(job.name, queued.relPath, {
        error: error.message,
        attempts: queued.attempts,
        nextAttemptAt: 0,
        final: false,
      });
      this.#log.info("{path} changed while being sent; waiting until it is complete again", {
        job: job.name,
        path: queued.source,
      });
      this.#checker.touch(queued.source);
      return;
    }
    const attempts = queued.attempts + 1;
    if (error.retryable && attempts <= job.retry_attempts) {
      const delayMs = retryDelayMs(attempts, job.retry_delay_seconds, job.retry_max_delay_seconds);
      const nextAttemptAt = Date.now() + delayMs;
      this.#ledger.recordFailure(job.name, queued.relPath, {
        error: error.message,
        attempts,
        nextAttemptAt,
        final: false,
      });
      this.#waiting.set(queued.relPath, { ...queued, attempts, nextAttemptAt });
      const fields = {
        job: job.name,
        source: queued.source,
        reason: error.message,
        attempt: attempts,
        of: job.retry_attempts,
        seconds: Math.round(delayMs / 100) / 10,
      };
      const message =
        "Attempt {attempt} of {source} failed: {reason}; retry {attempt}/{of} in {seconds} s";
      if (error.kind === "retry-later") this.#log.error(message, fields);
      else this.#log.warn(message, fields);
      this.#scheduleRetry();
      return;
    }
    this.#ledger.recordFailure(job.name, queued.relPath, {
      error: error.message,
      attempts,
      nextAttemptAt: 0,
      final: true,
    });
    this.#stats.failed++;
    const hint = error.retryable
      ? `gave up after ${attempts} attempt(s); it is tried again at the next rescan or start-up`
      : "not retrying: this needs a fix first; it is tried again at the next rescan or start-up";
    this.#log.error("Failed to transfer {source}: {reason} ({hint})", {
      job: job.name,
      source: queued.source,
      reason: error.message,
      hint,
    });
  }

  #scheduleRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#stopping || this.#waiting.size === 0) return;
    let earliest = Infinity;
    for (const w of this.#waiting.values()) earliest = Math.min(earliest, w.nextAttemptAt);
    this.#retryTimer = setTimeout(() => {
      const now = Date.now();
      for (const [rel, w] of this.#waiting) {
        if (w.nextAttemptAt <= now) {
          this.#waiting.delete(rel);
          this.#queue.set(rel, w);
        }
      }
      // Files still waiting need the timer again: without it they would only
      // come back at the next rescan or start-up.
      this.#retryTimer = undefined;
      this.#scheduleRetry();
      this.#pump();
    }, Math.max(0, earliest - Date.now()));
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const idle = this.#checker.pendingCount === 0 && this.#queue.size === 0 &&
      this.#waiting.size === 0 && this.#active === 0 && this.#planning.size === 0;
    if (idle || this.#stopping) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }
}
