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
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { DoneEntry, Ledger } from "../ledger/ledger.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { Transport } from "../transfer/transport.ts";
import { createFileFilter, type FileFilter } from "../watch/file_filter.ts";
import { relativeTo } from "../watch/relative_path.ts";
import { StabilityChecker } from "../watch/stability.ts";
import { WatchSession } from "../watch/watch_session.ts";
import { BatchSender } from "./batch_sender.ts";
import { FreeSpaceGauge } from "./free_space_gauge.ts";
import { FullDestinationPause } from "./full_pause.ts";
import { GrowingSender } from "./growing_sender.ts";
import { JobExtras } from "./job_extras.ts";
import { SpaceGuard } from "./space_guard.ts";
import { Intake } from "./intake.ts";
import { type JobSnapshot, JobStatus } from "./job_status.ts";
import type { StatusEvents } from "../status/events.ts";
import {
  type LedgerSyncContext,
  observeStrayPending,
  recordDue,
  resumeUnfinished,
  sweepLedger,
} from "./ledger_sync.ts";
import { WorkQueue } from "./work_queue.ts";

/** How long files that became ready are gathered before a batch starts. */
const BATCH_GATHER_MS = 3;

/** How often the ledger is checked for pending files nothing holds (belt and braces). */
const SWEEP_INTERVAL_MS = 60_000;

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
  /** Longest time one batch may take before it is aborted and retried; see `batch_sender.ts`. */
  batchDeadlineMs?: number;
  /** How often a job paused by a full destination tries one file. @default 15000 */
  fullProbeMs?: number;
  /** How often the watch folder's disk is looked at (`min_free_space`). @default 60000 */
  watchDiskCheckMs?: number;
  /** Called when the job pauses because its destination is full, and when it resumes (`null`). */
  onPauseChange?: (pause: JobPause | null) => void;
  /** Where transfers are told to the status page and metrics. */
  events?: StatusEvents;
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
  #intake: Intake;
  /** Parts of files that are still growing (`growing_patterns`). */
  #growing: GrowingSender;
  /** Paused while the destination is full. */
  #full: FullDestinationPause;
  /** `min_free_space` at the destination and the watch folder's disk. */
  #space: SpaceGuard;
  /** Files in the batches being sent. */
  #filesInFlight = 0;
  #sender: BatchSender;
  /** Hooks, source clean-up, schedules. */
  #extras: JobExtras;
  #sync: LedgerSyncContext;
  #log: Logger;
  #done = new Map<string, DoneEntry>();
  /** Batches being sent. */
  #batches = new Set<Promise<void>>();
  #abort = new AbortController();
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #idleWaiters: Array<() => void> = [];
  #stats: JobSummary = { sent: 0, failed: 0 };
  #status: JobStatus;
  /** Free space at the destination, where the transport can tell it. */
  #freeSpace: FreeSpaceGauge | null;

  constructor(job: JobConfig, ledger: Ledger, transport: Transport, options: JobRunnerOptions) {
    this.#log = jobLogger("pipeline", job.name);
    this.job = job;
    this.#ledger = ledger;
    this.#transport = transport;
    this.#options = options;
    this.#filter = createFileFilter(job);
    this.#status = new JobStatus(job.name, job.transfer_method, options.events);
    this.#freeSpace = transport.diskSpace
      ? new FreeSpaceGauge(
        // Only when an SSH session is free: the page never holds up a transfer.
        async () =>
          (await transport.diskSpace!(this.#abort.signal, { onlyIfFree: true }))?.availableBytes ??
            null,
        () => this.#status.changed(),
      )
      : null;
    // The stability checker: decides when a file is completely written.
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
              path: file.path,
              reason: file.truncated.reason,
              seconds: job.fits_incomplete_grace_seconds,
            },
          );
        }
        this.#intake.ready(file);
      },
      onGone: (path) => void this.#intake.gone(path),
      onLeft: (path, reason) => {
        this.#log.info("Left {path} for a later run: {reason}", { path, reason });
        this.#checkIdle();
      },
    });
    this.#queue = new WorkQueue((due) => this.#onDue(due));
    this.#full = new FullDestinationPause({
      job: job.name,
      target: transport.describeTarget(""),
      fullSpeed: job.max_concurrent_transfers * transport.maxBatchFiles,
      onProbeDue: () => this.#pump(),
      probeEveryMs: options.fullProbeMs,
      onChange: (pause) =>
        options.onPauseChange?.(
          pause && {
            state: "destination full",
            since: new Date(pause.sinceMs).toISOString(),
            reason: pause.reason,
          },
        ),
    });
    this.#space = new SpaceGuard({
      job,
      target: transport.describeTarget(""),
      measure: transport.diskSpace?.bind(transport),
      signal: this.#abort.signal,
      repeatWatchCheck: !options.once,
      watchCheckMs: options.watchDiskCheckMs,
    });
    this.#session = new WatchSession({
      root: job.watch_path,
      job: job.name,
      filter: this.#filter,
      once: options.once,
      missingFolderRetryMs: options.missingFolderRetryMs ?? 10_000,
      rescanIntervalMs: job.rescan_interval_seconds * 1000,
      onActivity: (path, rel, activity) => {
        this.#intake.activity(path, rel, activity);
        this.#growing.touched(path, rel);
      },
      onFound: (files, quick) => {
        const found = this.#intake.found(files, quick);
        for (const file of found) this.#growing.touched(file.path, file.relPath);
        return found;
      },
      beforeRescan: () => this.#beforeRescan(),
      // The first file should not wait for an SSH handshake (~0.3 s or more).
      onFolderReady: () => void this.#transport.warmUp?.(),
    });
    this.#growing = new GrowingSender({
      job,
      transport,
      signal: this.#abort.signal,
      growing: (path) => this.#checker.has(path),
    });
    this.#intake = new Intake({
      job,
      ledger,
      queue: this.#queue,
      checker: this.#checker,
      done: () => this.#done,
      scanIfFolder: (path) => this.#session.scanIfFolder(path),
      stopping: () => this.#stopping,
      onQueued: () => this.#pumpSoon(),
      onSettled: () => this.#checkIdle(),
    });
    this.#extras = new JobExtras({
      job,
      ledger,
      transport,
      done: () => this.#done,
      signal: this.#abort.signal,
      rescan: () => this.#session.rescan(),
      pause: () => void (this.#status.windowPaused = true),
      resume: () => {
        this.#status.windowPaused = false;
        this.#pump();
      },
      once: options.once,
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
      onSent: (rel, version, destination, sha256) => {
        this.#done.set(rel, version);
        this.#stats.sent++;
        this.#extras.arrived(rel, version, destination, sha256);
        this.#status.sent(rel, destination, version.size);
      },
      onGaveUp: (record, error, attempts) => {
        this.#stats.failed++;
        this.#extras.gaveUp(record, error, attempts);
      },
      onFailed: (rel, error, final) => this.#status.failed(rel, error.kind, error.message, final),
      pauseWhenFull: !options.once,
      onFull: (error) => {
        this.#full.full(error.message);
        this.#status.state(true);
      },
      admit: (bytes) => this.#space.admit(bytes),
      deadlineMs: options.batchDeadlineMs,
    });
  }

  /** Files sent and failed so far. */
  get summary(): JobSummary {
    return { ...this.#stats };
  }

  /** What the status page shows of this job (read only). */
  snapshot(): JobSnapshot {
    const q = this.#queue;
    return {
      job: this.job.name,
      method: this.job.transfer_method,
      target: this.#transport.describeTarget(""),
      ...this.#status.state(this.#full.paused),
      queue: {
        planning: q.count("planning"),
        queued: q.count("queued"),
        waiting: q.count("waiting"),
        sending: q.count("sending"),
        observing: this.#checker.pendingCount,
      },
      inFlight: this.#status.inFlight(),
      ...this.#stats,
      lastSuccessAt: this.#status.lastSuccessAt,
      freeSpace: this.#freeSpace?.read() ?? null,
    };
  }

  /** Stop starting transfers (those on their way finish) until {@linkcode resume}. */
  pause(): void {
    this.#status.userPaused = true;
  }

  /** Start transfers again after {@linkcode pause}. */
  resume(): void {
    this.#status.userPaused = false;
    this.#pump();
  }

  /**
   * Try failed files again now: one (`relPath`) or all of the job's.
   *
   * @returns how many files go back into the queue
   */
  retry(relPath?: string): number {
    if (this.#stopping) return 0;
    const count = relPath === undefined
      ? this.#ledger.requeue(this.job.name, ["failed"])
      : this.#ledger.requeueFile(this.job.name, relPath);
    if (count > 0) observeStrayPending(this.#sync);
    return count;
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
        count: requeued,
      });
    }
    this.#done = this.#ledger.doneIndex(job.name);
    await resumeUnfinished(this.#sync);
    if (this.#stopping || !(await this.#session.start()) || this.#stopping) return;
    const verb = this.#options.once ? "Checked" : "Watching";
    this.#log.info(`${verb} {path} for job {job} ({method} to {target})`, {
      path: job.watch_path,
      method: job.transfer_method,
      target: this.#transport.describeTarget(""),
    });
    if (!this.#options.once) this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#extras.start();
    this.#space.start();
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
    this.#full.close();
    this.#space.close();
    this.#freeSpace?.close();
    this.#checker.close();
    clearTimeout(this.#pumpTimer);
    clearInterval(this.#sweepTimer);
    this.#abort.abort(new Error("stopping"));
    await Promise.allSettled([...this.#batches]);
    await this.#growing.close();
    await this.#extras.close();
    await this.#transport.close();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Before a periodic rescan: failed files get another chance, pending ones are looked at. */
  #beforeRescan(): void {
    this.#ledger.requeue(this.job.name, ["failed"]);
    observeStrayPending(this.#sync);
  }

  /** Retries whose time has come go out. */
  #onDue(relPaths: string[]): void {
    recordDue(this.#sync, relPaths);
    this.#pump();
  }

  /** See {@linkcode sweepLedger}. */
  #sweep(): void {
    if (this.#stopping) return;
    const promoted = sweepLedger(this.#sync);
    if (promoted.length > 0) this.#onDue(promoted);
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

  /**
   * Start batches while there is work and room; while the destination is
   * full, only what the pause allows (a probe, then a growing number of files).
   */
  #pump(): void {
    while (
      !this.#stopping && !this.#status.paused &&
      this.#batches.size < this.job.max_concurrent_transfers
    ) {
      const room = this.#full.room(this.#filesInFlight);
      if (room <= 0) break;
      const batch = this.#queue.takeBatch(Math.min(room, this.#transport.maxBatchFiles));
      if (batch.length === 0) break;
      const probe = this.#full.started();
      this.#filesInFlight += batch.length;
      this.#status.started(batch.map((r) => ({ relPath: r.relPath, bytes: r.version.size })));
      const sending: Promise<void> = this.#sender.send(batch).catch(() => 0).then((arrived) => {
        this.#filesInFlight -= batch.length;
        const caughtUp = !this.#queue.hasSendable && this.#filesInFlight === 0;
        this.#full.ended(probe, arrived, caughtUp);
      }).finally(() => {
        this.#status.ended(batch.map((r) => r.relPath));
        this.#status.state(this.#full.paused);
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
