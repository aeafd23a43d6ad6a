/**
 * One job: the object that builds and owns its parts (watch session, intake,
 * file table, sender, pauses, extras) and calls them; they report back to it.
 * A file goes watch -> intake (observed until complete: `intake.ts`) -> file
 * table (the one owner of its state from complete to done: `file_table.ts`)
 * -> sender -> verified, and only then said to have arrived.
 *
 * While the ledger cannot be written the job starts no transfer; when it can again, the arrivals
 * that waited are recorded and the folder is looked at again (a file found meanwhile may not be).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { FolderFileSystem } from "../config/file_systems.ts";
import { failureScope, isDestinationFull, RefusedUnsent } from "../errors.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { type JobSnapshot, JobStatus, type JobSummary } from "../status/job_status.ts";
import type { StatusEvents } from "../status/events.ts";
import { tellArrivalsBefore, type Transport } from "../transfer/transport.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { WatchSession } from "../watch/watch_session.ts";
import { unreadableCount } from "../watch/observation.ts";
import { BatchSender } from "./batch_sender.ts";
import { FileTable } from "./file_table.ts";
import { SpaceGuard } from "./space_guard.ts";
import { DestinationPause, downKind } from "./destination_pause.ts";
import { Intake } from "./intake.ts";
import { JobExtras } from "./job_extras.ts";
import { windowEnd } from "./pause_windows.ts";
import { PatternSkips, type SkipsSaid } from "./reload_changes.ts";
import type { FinishingHooks } from "./hooks.ts";

/** Options of {@linkcode JobRunner}. */
export interface JobRunnerOptions {
  /** Scan, send what is complete, and finish (no watcher, no rescans). */
  once: boolean;
  /** Quiet time after a close-after-write event (Linux) before a file matching
   * `close_shortcut_patterns` counts as complete (elsewhere: the window). @default 200 */
  closedForMs?: number;
  /** How often to look for a watch folder that does not exist yet. @default 10000 */
  missingFolderRetryMs?: number;
  /** Longest time one batch may take before it is aborted and retried; see `batch_sender.ts`. */
  batchDeadlineMs?: number;
  /** How often a job paused by a full destination tries one file. @default 15000 */
  fullProbeMs?: number;
  /** How often the watch folder's disk is looked at (`min_free_space`). @default 60000 */
  watchDiskCheckMs?: number;
  /** Called when the job pauses (its destination full or unreachable), and when it resumes (`null`). */
  onPauseChange?: (pause: JobPause | null) => void;
  /** Where transfers are told to the status page and metrics. */
  events?: StatusEvents;
  /** The runner this one goes on from (a reload: `formerJob`): its picture goes on here. */
  replaces?: JobRunner;
  runtimeDir?: string; // The daemon's runtime folder (see `FolderWatcherOptions.runtimeDir`).
  skipsSaid?: SkipsSaid; // How what its patterns leave out is said (a config file's keys: default).
}

/** How long files that became ready are gathered before a batch starts. */
const BATCH_GATHER_MS = 3;
/** How often the ledger is checked for pending files nothing holds (belt and braces). */
const SWEEP_INTERVAL_MS = 60_000;

/** Runs one job; see the module doc. */
export class JobRunner {
  readonly job: JobConfig;
  #table: FileTable; // The one owner of every file's state from complete to done.
  #transport: Transport;
  #options: JobRunnerOptions;
  #intake: Intake; // Files under observation, until they are complete.
  #session: WatchSession;
  #pause: DestinationPause; // Paused while the destination is full or cannot be reached.
  #space: SpaceGuard; // `min_free_space` at the destination and the watch folder's disk.
  #patternSkips: PatternSkips; // Its patterns' skips at its start: one line, with their count.
  #filesInFlight = 0; // Files in the batches being sent.
  #sender: BatchSender;
  #extras: JobExtras; // Hooks, source clean-up, schedules.
  #log: Logger;
  #stopListening: () => void;
  #batches = new Set<Promise<void>>(); // Batches being sent.
  #abort = new AbortController();
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #idleWaiters: Array<() => void> = [];
  #lookingAgain: Promise<unknown> | null = null; // The rescan once the ledger can be written.
  #status: JobStatus;

  constructor(job: JobConfig, ledger: Ledger, transport: Transport, options: JobRunnerOptions) {
    this.#log = jobLogger("pipeline", job.name);
    this.job = job;
    this.#transport = transport;
    this.#options = options;
    const signal = this.#abort.signal;
    // Free space is asked only when an SSH session is free: the page never holds up a transfer.
    const status = this.#status = new JobStatus(
      job.name,
      job.transfer_method,
      options.events,
      transport.diskSpace &&
        (async () =>
          (await transport.diskSpace!(signal, { onlyIfFree: true }))?.availableBytes ?? null),
      () => this.#session?.unavailable ?? null,
    );
    if (options.replaces) status.continueFrom(options.replaces.#status);
    transport.watchStalls?.((why) => void (status.stalledUpload = why)); // Unreachable meanwhile.
    this.#patternSkips = new PatternSkips(job, options.replaces !== undefined, options.skipsSaid);
    const filter = createFileFilter(job, this.#patternSkips.filterOptions);
    const table = this.#table = new FileTable({
      job,
      ledger,
      filter,
      observe: (path, activity) => intake.observe(path, activity),
      onDue: () => this.#pump(),
    });
    const intake: Intake = this.#intake = new Intake({
      job,
      table,
      once: options.once,
      closedForMs: options.closedForMs ?? 200,
      transport,
      signal,
      scanIfFolder: (path) => this.#session.scanIfFolder(path),
      stopping: () => this.#stopping,
      onQueued: (bytes) => this.#pause.offer(bytes) ? this.#pump() : this.#pumpSoon(),
      onSettled: () => this.#checkIdle(),
      onFailedGone: (rel) => this.#status.notFailed(rel),
      watchProblem: () => this.#session.unavailableNow(), // A share unmounted: its files not gone.
    });
    this.#pause = new DestinationPause({
      job: job.name,
      target: transport.describeTarget(""),
      fullSpeed: job.max_concurrent_transfers * transport.maxBatchFiles,
      onProbeDue: () => this.#pump(),
      probeEveryMs: options.fullProbeMs,
      firstProbeMs: job.retry_delay_seconds * 1000,
      onChange: options.onPauseChange,
      onBack: () => status.reachable(), // Reachable, though the file that ended the pause waits.
      continues: options.replaces?.target === this.target ? options.replaces.#pause : undefined,
    });
    this.#space = new SpaceGuard({
      job,
      target: transport.describeTarget(""),
      measure: transport.diskSpace?.bind(transport),
      signal,
      repeatWatchCheck: !options.once,
      watchCheckMs: options.watchDiskCheckMs,
    });
    this.#session = new WatchSession({
      root: job.watch_path,
      job: job.name,
      filter,
      once: options.once,
      missingFolderRetryMs: options.missingFolderRetryMs ?? 10_000,
      rescanIntervalMs: job.rescan_interval_seconds * 1000,
      watchMode: job.watch_mode,
      runtimeDir: options.runtimeDir,
      pollIntervalMs: job.poll_interval_seconds * 1000,
      watchedOn: new FolderFileSystem(job.watch_path, ledger, "watched"),
      forgottenUntil: () => ledger.rebuilt?.at,
      onActivity: (path, rel, activity, to) => intake.activity(path, rel, activity, to),
      onFound: (files, quick, how) => intake.found(files, quick, how),
      // Before a periodic rescan: failed files get another chance, pending ones are looked at.
      beforeRescan: () => void (this.#table.beforeRescan() && this.#pump()),
      onLost: intake.closesLost, // Closes may have been lost: none holds a file for ever.
      onFolderReady: () => void transport.warmUp?.(), // The first file waits no SSH handshake.
      onAvailability: () => void status.state(this.#pause.full),
    });
    const extras = this.#extras = new JobExtras({
      job,
      table,
      transport,
      signal,
      rescan: () => this.#session.rescan(),
      pause: () => void (status.windowPaused = windowEnd(job)),
      windowPaused: () => status.windowPaused,
      resume: () => {
        status.windowPaused = false;
        this.#pump();
        return !status.userPaused;
      },
      once: options.once,
      replaces: options.replaces && options.replaces.#extras,
      events: options.events,
    });
    this.#sender = new BatchSender({
      job,
      table,
      transport,
      signal,
      observe: (path) => intake.observe(path),
      onSent: (record, sha256) => {
        const { relPath, version, destination, sendingSince: since } = record;
        transport.deliveredBefore?.(); // Its base folder is not made again once gone.
        extras.arrived(relPath, { ...version }, destination, sha256);
        this.#session.arrived(relPath, version.size, version.mtimeMs);
        status.sent(relPath, destination, version.size, since && table.wallTime(since));
      },
      onRecognised: (rel, version) => {
        status.notFailed(rel);
        extras.recognised(rel, version);
      },
      onGaveUp: (record, error, attempts) => {
        status.gaveUp(record.relPath);
        extras.gaveUp(record, error, attempts);
      },
      onFailed: (rel, error, final, scope) => {
        const tried = !(error instanceof RefusedUnsent); // Refused for room: not an attempt.
        status.failed(rel, error.kind, error.message, final, scope, tried);
        if (failureScope(error) !== "file") this.#pause.stillDown(error.message, downKind(error)); // If paused: why now
      },
      pauseWhenUnavailable: !options.once,
      slowRetries: !options.once,
      onHold: (error, { version, relPath }) => {
        const kind = downKind(error);
        this.#pause.pause(error.message, isDestinationFull(error), version.size, kind, relPath);
        status.state(this.#pause.full);
        // A file that waited meanwhile, smaller than every one refused, may fit: tried at once.
        if (this.#pause.offer(() => this.#table.smallestSendable)) this.#pumpSoon();
      },
      admit: (bytes, files) => this.#space.admit(bytes, this.#pause.full, files),
      neverFits: (bytes) => this.#space.neverFits(bytes),
      onBack: () => this.retry(undefined, false),
      watchProblem: () => this.#session.unavailableNow(),
      onDropped: (rel) => status.notFailed(rel),
      deadlineMs: options.batchDeadlineMs,
    });
    this.#stopListening = ledger.subscribe(() => this.#ledgerChanged());
    this.#status.ledgerProblem = ledger.problem?.error ?? null;
  }

  /** The identity of the destination this job sends to (part of each file's ledger key). */
  get target(): string {
    return this.#table.target;
  }

  /** Files sent and failed so far, each file counted by its last outcome. */
  get summary(): JobSummary {
    return this.#status.summary;
  }

  /** What the status page shows of this job (read only). */
  snapshot(): JobSnapshot {
    // Every report (page, API, metrics, `status`) counts the files from the table's one count.
    const queue = this.#table.counts();
    return {
      job: this.job.name,
      method: this.job.transfer_method,
      target: this.#transport.describeTarget(""),
      ...this.#status.state(this.#pause.full),
      held: this.#pause.paused,
      pause: this.#pause.reported,
      queue,
      oldestWaitingSince: this.#table.oldestFoundAt,
      inFlight: this.#table.inFlight(),
      transfers: this.#batches.size,
      rateBytesPerSecond: this.#status.rate(),
      sent: this.summary.sent,
      failed: queue.failed,
      lastSuccessAt: this.#status.lastSuccessAt,
      cannotSend: this.#patternSkips.cannotSend(this.job.name),
      unreadable: unreadableCount(this.#table.observations),
      ...this.#extras.failures,
      freeSpace: this.#status.freeSpace?.read() ?? null,
      watch: this.#session.how
        ? { ...this.#session.how, unavailable: this.#session.unavailable }
        : null,
    };
  }

  /** Stop starting transfers (those on their way finish) until {@linkcode resume}. */
  pause(): void {
    this.#status.userPaused = true;
  }

  /** Start transfers again after {@linkcode pause} (inside a window's pause: until its next). */
  resume(): void {
    this.#status.userPaused = false;
    this.#status.windowPaused = false;
    this.#pump();
  }

  /** Try failed files again now: one (`relPath`) or all of the job's (`fresh`: see FileTable). */
  retry(relPath?: string, fresh = true): number {
    if (this.#stopping) return 0;
    const { count, queued } = this.#table.retry(relPath, fresh);
    if (queued) this.#pump();
    return count;
  }

  /** Resume from the ledger, watch (unless `once`), scan for files that came meanwhile. */
  async start(): Promise<void> {
    this.#extras.beforeStart();
    this.#startFromLedger();
    // Copies kept for sources gone are dropped (an optional call not made would not resume rows).
    const notFailed = (rel: string) => this.#status.notFailed(rel); // A reload left it out.
    const started = await this.#table.resumeUnfinished(notFailed).then(async (gone) => {
      this.#transport.dropKeptCopies?.(gone);
      return !this.#stopping && (await this.#session.start());
    }).finally(() => this.#patternSkips.release()); // Said once: stopped meanwhile or failed too.
    if (!started || this.#stopping) return;
    const verb = this.#options.once ? "Checked" : "Watching", how = this.#session.how;
    this.#log.info(
      `${verb} {path} for job {job} ({method} to {target})${how ? " with {how}" : ""}`,
      {
        path: this.job.watch_path,
        method: this.job.transfer_method,
        target: this.#transport.describeTarget(""),
        ...(how ? { how: how.summary } : {}),
      },
    );
    // See FileTable.sweep.
    const sweep = () => !this.#stopping && this.#table.sweep().length > 0 && this.#pump();
    if (!this.#options.once) this.#sweepTimer = setInterval(sweep, SWEEP_INTERVAL_MS);
    this.#extras.start();
    this.#space.start();
    this.#pump();
    this.#checkIdle();
  }

  /** Resolve when nothing is observed, queued, sent or waited for, nor looked for to clean up. */
  async whenIdle(): Promise<void> {
    do {
      await new Promise<void>((resolve) => this.#checkIdle(resolve));
    } while (await this.#extras.cleanupSettled() && !this.#stopping);
  }

  /**
   * Stop: no new transfers; transfers in flight are aborted (final names untouched, temporary
   * copies removed or kept to be continued) and resumed at the next start. `reloading` (a reload
   * replaces the job, or `removed` it): its hooks and scheduled commands finish in the background.
   */
  async stop(reloading = false, removed = false): Promise<FinishingHooks | null> {
    this.#stopping = true;
    this.#stopListening();
    this.#session.close();
    this.#table.close();
    this.#pause.close();
    this.#space.close();
    this.#status.freeSpace?.close();
    const intakeClosed = this.#intake.close();
    clearTimeout(this.#pumpTimer);
    clearInterval(this.#sweepTimer);
    this.#abort.abort(new Error("stopping"));
    await Promise.allSettled([...this.#batches]);
    await intakeClosed;
    // The arrivals that waited for the ledger are recorded as the hooks stop (see its doc).
    const finishing = await this.#extras.close(reloading, removed, () => this.#sender.close());
    await this.#transport.close();
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
    return finishing;
  }

  /**
   * At start: rows from before destinations were told apart become this destination's, rows left
   * by the last run go back into motion (said how); a destination folder delivered to is not made
   * again once gone (an unmounted share); the last arrival is the ledger's until a file arrives.
   */
  #startFromLedger(): void {
    const lastArrival = tellArrivalsBefore(this.#transport, this.#table.rows);
    this.#status.lastSuccessAt ??= lastArrival;
    const fields = { target: this.#transport.describeTarget("") };
    const { interrupted, failed, doneElsewhere: elsewhere } = this.#table.takeOverLedger();
    if (elsewhere > 0) {
      this.#log.info(
        "{count} file(s) of job {job} went to another destination before (or by another transfer_method), not to {target} by {method}; those still in the watch folder are sent there now",
        { ...fields, count: elsewhere, method: this.#transport.method },
      );
    }
    if (interrupted > 0) {
      // Which copy arrived, and which partial copy is kept, is known per file once looked at.
      const resumes = ["local", "rsync"].includes(this.#transport.method) &&
        this.job.resume_partial_hours > 0;
      const others = resumes
        ? "a partial copy kept there is continued; the others are sent whole"
        : "the others are sent again, whole";
      this.#log.info(
        `Taking up {count} interrupted file(s) of job {job}: each is looked for at {target} first, and one found there is recorded, not sent again; ${others}`,
        { ...fields, count: interrupted },
      );
    }
    if (failed > 0) this.#log.info("Trying {failed} failed file(s) of job {job} again", { failed });
  }

  /** The ledger can be written again, or no longer: pause or go on. */
  #ledgerChanged(): void {
    if (this.#stopping) return;
    const problem = this.#table.ledger.problem;
    this.#status.ledgerProblem = problem?.error ?? null;
    if (problem) return;
    this.#sender.recordWaiting();
    this.#intake.replan(this.#table.ledgerWritable()); // Found complete meanwhile: unrecorded.
    const lookingAgain = this.#session.rescan().finally(() => {
      if (this.#lookingAgain === lookingAgain) this.#lookingAgain = null;
      this.#checkIdle();
    });
    this.#lookingAgain = lookingAgain;
    this.#pump();
  }

  /** Start batches in a moment ({@linkcode BATCH_GATHER_MS}): files that become ready together
   * (a scan, a burst) go out in one batch instead of the first one alone. */
  #pumpSoon(): void {
    this.#pumpTimer ??= setTimeout(() => {
      this.#pumpTimer = undefined;
      this.#pump();
    }, BATCH_GATHER_MS);
  }

  /** Start batches while there is work and room; while the destination is full, only what the
   * pause allows (a probe, then a growing number of files). */
  #pump(): void {
    const { maxBatchFiles, maxBatchBytes, maxBatchesAtOnce = Infinity } = this.#transport;
    while (
      !this.#stopping && !this.#status.paused && !this.#table.ledger.problem &&
      this.#batches.size < Math.min(this.job.max_concurrent_transfers, maxBatchesAtOnce)
    ) {
      const room = this.#pause.room(this.#filesInFlight);
      if (room <= 0) break;
      // While the destination is full, what still fits goes before what cannot.
      const files = Math.min(room, maxBatchFiles);
      const batch = this.#table.takeBatch(files, maxBatchBytes, this.#pause.full);
      if (batch.length === 0) break;
      const probe = this.#pause.started();
      this.#filesInFlight += batch.length;
      this.#status.started(batch.map((record) => record.relPath), probe);
      const sending: Promise<void> = this.#sender.send(batch).catch(() => null).then((arrived) => {
        this.#filesInFlight -= batch.length;
        const caughtUp = !this.#table.hasSendable && this.#filesInFlight === 0;
        if (!this.#stopping) this.#pause.ended(probe, arrived, caughtUp); // A stop tells nothing.
      }).finally(() => {
        this.#status.state(this.#pause.full);
        this.#batches.delete(sending);
        this.#pump();
        this.#checkIdle();
      });
      this.#batches.add(sending);
    }
  }

  #checkIdle(waiter?: () => void): void {
    if (waiter) this.#idleWaiters.push(waiter);
    if (this.#idleWaiters.length === 0) return;
    // Files found while the ledger could not be written wait for it and a look again.
    const idle = this.#table.inMotion === 0 &&
      this.#batches.size === 0 && !this.#table.ledger.problem && this.#lookingAgain === null;
    if (idle || this.#stopping) { for (const resolve of this.#idleWaiters.splice(0)) resolve(); }
  }
}
