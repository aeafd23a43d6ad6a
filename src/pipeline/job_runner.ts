/**
 * One job's pipeline: watch → stability → ledger → transfer → verified.
 *
 * The ledger is the source of truth: a file is recorded `pending` when it is
 * complete, `transferring` while it is sent, `done` when it arrived verified,
 * or `failed` when retries are exhausted. Memory only holds what is in motion:
 * files under observation (the stability checker) and files found complete
 * (the work queue, one record per file); the watch session reports files.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { DoneEntry, Ledger } from "../ledger/ledger.ts";
import { planDestination } from "../layout/destination.ts";
import { logger } from "../log/logging.ts";
import type { Transport } from "../transfer/transport.ts";
import { createFileFilter, type FileFilter } from "../watch/file_filter.ts";
import { sameVersion, versionOf } from "../watch/file_version.ts";
import { type FoundFile, relativeTo } from "../watch/scan.ts";
import { type Activity, StabilityChecker, type StableFile } from "../watch/stability.ts";
import { WatchSession } from "../watch/watch_session.ts";
import { BatchSender } from "./batch_sender.ts";
import { type LedgerSyncContext, observeStrayPending, resumeUnfinished } from "./ledger_sync.ts";
import { WorkQueue } from "./work_queue.ts";

/** How long files that became ready are gathered before a batch starts. */
const BATCH_GATHER_MS = 3;

/** Options of {@linkcode JobRunner}. */
export interface JobRunnerOptions {
  /** Scan, send what is complete, and finish (no watcher, no rescans). */
  once: boolean;
  /**
   * Quiet time after a close-after-write event (Linux) before a file counts
   * as complete; the full stability window applies elsewhere.
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
  #queue: WorkQueue;
  #session: WatchSession;
  #sender: BatchSender;
  #sync: LedgerSyncContext;
  #log = logger("pipeline");
  #done = new Map<string, DoneEntry>();
  /** Batches being sent. */
  #batches = new Set<Promise<void>>();
  #abort = new AbortController();
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #stopping = false;
  #idleWaiters: Array<() => void> = [];
  #stats: JobSummary = { sent: 0, failed: 0 };

  constructor(job: JobConfig, ledger: Ledger, transport: Transport, options: JobRunnerOptions) {
    this.job = job;
    this.#ledger = ledger;
    this.#transport = transport;
    this.#options = options;
    this.#filter = createFileFilter(job);
    // The stability checker: decides when a file is completely written.
    const stableForMs = job.stability_window_seconds * 1000;
    this.#checker = new StabilityChecker({
      stableForMs,
      closedForMs: Math.min(stableForMs, options.closedForMs ?? 200),
      onReady: (file) => this.#onReady(file),
      onGone: (path) => void this.#onGone(path),
    });
    this.#queue = new WorkQueue(() => this.#pump());
    this.#session = new WatchSession({
      root: job.watch_path,
      job: job.name,
      filter: this.#filter,
      once: options.once,
      missingFolderRetryMs: options.missingFolderRetryMs ?? 10_000,
      rescanIntervalMs: job.rescan_interval_seconds * 1000,
      onActivity: (path, rel, activity) => this.#onActivity(path, rel, activity),
      onFound: (files) => this.#onFound(files),
      beforeRescan: () => this.#beforeRescan(),
      // The first file should not wait for an SSH handshake (~0.3 s or more).
      onFolderReady: () => void this.#transport.warmUp?.(),
    });
    this.#sync = {
      job,
      ledger,
      filter: this.#filter,
      queue: this.#queue,
      observed: (path) => this.#checker.has(path),
      observe: (path) => this.#checker.touch(path),
    };
    this.#sender = new BatchSender({
      job,
      ledger,
      transport,
      queue: this.#queue,
      signal: this.#abort.signal,
      observe: (path) => this.#checker.touch(path),
      onSent: (rel, version) => {
        this.#done.set(rel, version);
        this.#stats.sent++;
      },
      onGaveUp: () => this.#stats.failed++,
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
    await resumeUnfinished(this.#sync);
    if (this.#stopping || !(await this.#session.start()) || this.#stopping) return;
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

  /** Resolve when nothing is under observation, queued, waiting for a retry or being sent. */
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
    this.#session.close();
    this.#queue.close();
    this.#checker.close();
    clearTimeout(this.#pumpTimer);
    this.#abort.abort(new Error("stopping"));
    await Promise.allSettled([...this.#batches]);
    await this.#transport.close();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** A watched file was created, written or closed. */
  #onActivity(path: string, rel: string, activity: Activity): void {
    if (this.#queue.activity(rel)) this.#checker.touch(path, activity);
  }

  /** Files found by a scan: observe those that are new or changed. */
  #onFound(files: FoundFile[]): number {
    let found = 0;
    for (const file of files) {
      if (this.#queue.get(file.relPath) || this.#checker.has(file.path)) continue;
      const done = this.#done.get(file.relPath);
      if (done) {
        // Synchronous stat: ~4 µs, against ~20 µs for a promise per file at 100,000 files.
        let info: Deno.FileInfo;
        try {
          info = Deno.statSync(file.path);
        } catch {
          continue;
        }
        if (sameVersion(versionOf(info), done)) continue;
      }
      found++;
      this.#checker.touch(file.path);
    }
    return found;
  }

  /** Before a periodic rescan: failed files get another chance, pending ones are looked at. */
  #beforeRescan(): void {
    this.#ledger.requeue(this.job.name, ["failed"]);
    observeStrayPending(this.#sync);
  }

  /** The checker found a file complete. */
  #onReady(file: StableFile): void {
    if (this.#stopping) return;
    const rel = relativeTo(this.job.watch_path, file.path);
    if (rel === null) return;
    const version = { size: file.size, mtimeMs: file.mtimeMs };
    const done = this.#done.get(rel);
    const decision = this.#queue.ready(
      rel,
      version,
      done !== undefined && sameVersion(done, version),
    );
    if (decision === "plan") this.#plan(rel, file);
    else if (decision === "keep") this.#pumpSoon();
    this.#checkIdle();
  }

  /** A file under observation disappeared (or turned out to be a folder). */
  async #onGone(path: string): Promise<void> {
    if (this.#stopping) return;
    if (!(await this.#session.scanIfFolder(path))) {
      const rel = relativeTo(this.job.watch_path, path);
      const phase = rel === null ? undefined : this.#queue.get(rel)?.phase;
      if (rel !== null && (phase === undefined || phase === "queued" || phase === "waiting")) {
        this.#queue.remove(rel);
        if (this.#ledger.get(this.job.name, rel)?.state === "pending") {
          this.#ledger.remove(this.job.name, rel);
        }
      }
      this.#log.info("Dropped {path}: it disappeared before it was complete", {
        job: this.job.name,
        path,
      });
    }
    this.#checkIdle();
  }

  /** Plan the destination of a file found complete, record it pending, and queue it. */
  #plan(rel: string, file: StableFile): void {
    const version = { size: file.size, mtimeMs: file.mtimeMs };
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
      const attempts = this.#ledger.enqueue(this.job.name, rel, { ...version, destination });
      const planned = this.#queue.planned(rel, version, {
        destination,
        attempts,
        nextAttemptAt: 0,
      });
      if (planned === "observe") this.#checker.touch(file.path);
      if (planned !== "queued") return;
      this.#log.debug("Ready: {path} -> {destination}", {
        job: this.job.name,
        path: file.path,
        destination,
      });
      this.#pumpSoon();
    }).catch((error) => {
      if (this.#stopping) return;
      if (this.#queue.get(rel)?.phase === "planning") this.#queue.remove(rel);
      this.#log.error("Cannot plan the destination of {path}: {error}", {
        job: this.job.name,
        path: file.path,
        error: String(error),
      });
    }).finally(() => this.#checkIdle());
  }

  /**
   * Start batches in a moment ({@linkcode BATCH_GATHER_MS}), so files that
   * become ready together (a scan, a burst) go out in one batch instead of
   * the first one alone.
   */
  #pumpSoon(): void {
    this.#pumpTimer ??= setTimeout(() => {
      this.#pumpTimer = undefined;
      this.#pump();
    }, BATCH_GATHER_MS);
  }

  /** Start batches while there is work and room. */
  #pump(): void {
    while (!this.#stopping && this.#batches.size < this.job.max_concurrent_transfers) {
      const batch = this.#queue.takeBatch(this.#transport.maxBatchFiles);
      if (batch.length === 0) break;
      const sending: Promise<void> = this.#sender.send(batch).finally(() => {
        this.#batches.delete(sending);
        this.#pump();
        this.#checkIdle();
      });
      this.#batches.add(sending);
    }
  }

  #checkIdle(): void {
    if (this.#idleWaiters.length === 0) return;
    const idle = this.#checker.pendingCount === 0 && this.#queue.size === 0 &&
      this.#batches.size === 0;
    if (idle || this.#stopping) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }
}
