/**
 * One job's pipeline: watch → stability → ledger → transfer → verified.
 *
 * The job's file table (`file_table.ts`) is the one owner of a file's state
 * from complete to done: its rows in the ledger (`pending` when complete,
 * `transferring` while sent, `done` when it arrived verified, and only then
 * said to have arrived; `failed` when retries are exhausted) and its record
 * in motion (queued, waiting, sending). Before that, files under observation
 * belong to the stability checker.
 *
 * While the ledger cannot be written the job starts no transfer; when it can
 * again, the arrivals that waited are recorded and the folder is looked at
 * once more (a file found meanwhile may not have been recorded).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { Transport } from "../transfer/transport.ts";
import type { StabilityChecker } from "../watch/stability.ts";
import type { WatchSession } from "../watch/watch_session.ts";
import type { BatchSender } from "./batch_sender.ts";
import type { FreeSpaceGauge } from "../status/free_space_gauge.ts";
import type { FullDestinationPause } from "./full_pause.ts";
import type { GrowingSender } from "./growing_sender.ts";
import type { Intake } from "./intake.ts";
import type { JobExtras } from "./job_extras.ts";
import { type JobSnapshot, JobStatus } from "../status/job_status.ts";
import { type JobOutcomes, type JobRunnerOptions, type JobSummary, wireJob } from "./job_wiring.ts";
import type { SpaceGuard } from "./space_guard.ts";
import type { FileTable } from "./file_table.ts";

export type { JobRunnerOptions, JobSummary } from "./job_wiring.ts";

/** How long files that became ready are gathered before a batch starts. */
const BATCH_GATHER_MS = 3;

/** How often the ledger is checked for pending files nothing holds (belt and braces). */
const SWEEP_INTERVAL_MS = 60_000;

/** Runs one job; see the module doc. */
export class JobRunner {
  readonly job: JobConfig;
  /** The one owner of every file's state from complete to done. */
  #table: FileTable;
  #transport: Transport;
  #options: JobRunnerOptions;
  #checker: StabilityChecker;
  #intake: Intake;
  #session: WatchSession;
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
  #log: Logger;
  #stopListening: () => void;
  /** Batches being sent. */
  #batches = new Set<Promise<void>>();
  #abort = new AbortController();
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #idleWaiters: Array<() => void> = [];
  /** The rescan after the ledger could be written again, while it runs. */
  #lookingAgain: Promise<unknown> | null = null;
  #outcomes: JobOutcomes = { sent: 0, failed: new Set() };
  #status: JobStatus;
  /** Free space at the destination, where the transport can tell it. */
  #freeSpace: FreeSpaceGauge | null;

  constructor(job: JobConfig, ledger: Ledger, transport: Transport, options: JobRunnerOptions) {
    this.#log = jobLogger("pipeline", job.name);
    this.job = job;
    this.#transport = transport;
    this.#options = options;
    this.#status = new JobStatus(job.name, job.transfer_method, options.events);
    const parts = wireJob({
      job,
      ledger,
      transport,
      options,
      log: this.#log,
      signal: this.#abort.signal,
      status: this.#status,
      outcomes: this.#outcomes,
      callbacks: {
        pump: () => this.#pump(),
        pumpSoon: () => this.#pumpSoon(),
        checkIdle: () => this.#checkIdle(),
        onDue: () => this.#pump(),
        beforeRescan: () => this.#beforeRescan(),
        stopping: () => this.#stopping,
      },
    });
    this.#checker = parts.checker;
    this.#table = parts.table;
    this.#intake = parts.intake;
    this.#session = parts.session;
    this.#growing = parts.growing;
    this.#full = parts.full;
    this.#space = parts.space;
    this.#sender = parts.sender;
    this.#extras = parts.extras;
    this.#freeSpace = parts.freeSpace;
    this.#stopListening = ledger.subscribe(() => this.#ledgerChanged());
    this.#status.ledgerProblem = ledger.problem?.error ?? null;
  }

  /** The identity of the destination this job sends to (part of each file's ledger key). */
  get target(): string {
    return this.#table.target;
  }

  /** Files sent and failed so far, each file counted by its last outcome. */
  get summary(): JobSummary {
    return { sent: this.#outcomes.sent, failed: this.#outcomes.failed.size };
  }

  /** What the status page shows of this job (read only). */
  snapshot(): JobSnapshot {
    const q = this.#table;
    return {
      job: this.job.name,
      method: this.job.transfer_method,
      target: this.#transport.describeTarget(""),
      ...this.#status.state(this.#full.paused),
      queue: {
        planning: q.count("planning"),
        queued: q.count("queued"),
        // A failing file waiting for its slow retry counts as failed (the ledger's count).
        waiting: q.count("waiting") - q.failingCount,
        sending: q.count("sending"),
        observing: this.#checker.pendingCount,
      },
      oldestWaitingSince: q.oldestFoundAt,
      inFlight: this.#table.inFlight(),
      rateBytesPerSecond: this.#status.rate(),
      ...this.summary,
      lastSuccessAt: this.#status.lastSuccessAt,
      freeSpace: this.#freeSpace?.read() ?? null,
      watch: this.#session.how
        ? { ...this.#session.how, unavailable: this.#session.unavailable }
        : null,
    };
  }

  /** Stop starting transfers (those on their way finish) until {@linkcode resume}. */
  pause(): void {
    this.#status.userPaused = true;
  }

  /**
   * Start transfers again after {@linkcode pause}; inside a transfer window's
   * pause, send again until the window's next pause time.
   */
  resume(): void {
    this.#status.userPaused = false;
    this.#status.windowPaused = false;
    this.#pump();
  }

  /**
   * Try failed files again now: one (`relPath`) or all of the job's.
   *
   * @returns how many files go back into the queue
   */
  retry(relPath?: string): number {
    if (this.#stopping) return 0;
    const { count, queued } = this.#table.retry(relPath);
    if (queued) this.#pump();
    return count;
  }

  /**
   * Resume from the ledger, start watching (unless `once`), and scan the
   * watch folder for files that arrived while the daemon was down.
   */
  async start(): Promise<void> {
    const job = this.job;
    this.#startFromLedger();
    await this.#table.resumeUnfinished();
    if (this.#stopping || !(await this.#session.start()) || this.#stopping) return;
    const verb = this.#options.once ? "Checked" : "Watching";
    const how = this.#session.how;
    this.#log.info(
      `${verb} {path} for job {job} ({method} to {target})${how ? " with {how}" : ""}`,
      {
        path: job.watch_path,
        method: job.transfer_method,
        target: this.#transport.describeTarget(""),
        ...(how ? { how: how.summary } : {}),
      },
    );
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
    this.#stopListening();
    this.#session.close();
    this.#table.close();
    this.#full.close();
    this.#space.close();
    this.#freeSpace?.close();
    this.#checker.close();
    clearTimeout(this.#pumpTimer);
    clearInterval(this.#sweepTimer);
    this.#abort.abort(new Error("stopping"));
    await Promise.allSettled([...this.#batches]);
    this.#sender.recordWaiting();
    if (this.#sender.unrecorded > 0) {
      this.#log.warn(
        "{count} file(s) of job {job} arrived but the ledger could not record them; the next " +
          "start sends them again",
        { count: this.#sender.unrecorded },
      );
    }
    await this.#growing.close();
    await this.#extras.close();
    await this.#transport.close();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /**
   * At start: rows from before destinations were told apart become this
   * destination's, and the rows left by the last run go back into motion
   * (saying whether interrupted copies are continued or sent again whole).
   */
  #startFromLedger(): void {
    const fields = { target: this.#transport.describeTarget("") };
    const { interrupted, failed, doneElsewhere: elsewhere } = this.#table.takeOverLedger();
    if (elsewhere > 0) {
      this.#log.info(
        "{count} file(s) of job {job} went to another destination before, not to {target}; " +
          "those still in the watch folder are sent to {target} now",
        { ...fields, count: elsewhere },
      );
    }
    if (interrupted > 0) {
      const resumes = this.#transport.method === "local" || this.#transport.method === "rsync"
        ? this.job.resume_partial_hours > 0
        : false;
      this.#log.info(
        resumes
          ? "Resuming {count} interrupted file(s) of job {job}: their copies at {target} are continued"
          : "Sending {count} interrupted file(s) of job {job} again, whole",
        { ...fields, count: interrupted },
      );
    }
    if (failed > 0) {
      this.#log.info("Trying {count} failed file(s) of job {job} again", { count: failed });
    }
  }

  /** The ledger can be written again, or no longer: pause or go on. */
  #ledgerChanged(): void {
    if (this.#stopping) return;
    const problem = this.#table.ledger.problem;
    this.#status.ledgerProblem = problem?.error ?? null;
    if (problem) return;
    this.#sender.recordWaiting();
    // A file found complete while the ledger could not be written was not recorded: look again.
    this.#table.ledgerWritable();
    const lookingAgain = this.#session.rescan().finally(() => {
      if (this.#lookingAgain === lookingAgain) this.#lookingAgain = null;
      this.#checkIdle();
    });
    this.#lookingAgain = lookingAgain;
    this.#pump();
  }

  /** Before a periodic rescan: failed files get another chance, pending ones are looked at. */
  #beforeRescan(): void {
    if (this.#table.beforeRescan()) this.#pump();
  }

  /** See {@linkcode FileTable.sweep}. */
  #sweep(): void {
    if (this.#stopping) return;
    if (this.#table.sweep().length > 0) this.#pump();
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
      !this.#stopping && !this.#status.paused && !this.#table.ledger.problem &&
      this.#batches.size < this.job.max_concurrent_transfers
    ) {
      const room = this.#full.room(this.#filesInFlight);
      if (room <= 0) break;
      const batch = this.#table.takeBatch(Math.min(room, this.#transport.maxBatchFiles));
      if (batch.length === 0) break;
      const probe = this.#full.started();
      this.#filesInFlight += batch.length;
      this.#status.started(batch.map((r) => ({ relPath: r.relPath, bytes: r.version.size })));
      const sending: Promise<void> = this.#sender.send(batch).catch(() => 0).then((arrived) => {
        this.#filesInFlight -= batch.length;
        const caughtUp = !this.#table.hasSendable && this.#filesInFlight === 0;
        this.#full.ended(probe, arrived, caughtUp);
      }).finally(() => {
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
    // Files found while the ledger could not be written wait for it and a look again.
    const idle = this.#checker.pendingCount === 0 && this.#table.inMotion === 0 &&
      this.#batches.size === 0 && !this.#table.ledger.problem && this.#lookingAgain === null;
    if (idle || this.#stopping) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }
}
