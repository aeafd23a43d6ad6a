/**
 * The collaborators of one job's {@linkcode JobRunner} (`job_runner.ts`) and how they are wired
 * to each other and back to the runner (its callbacks): stability checker, file table, intake,
 * watch session, batch sender, full-destination pause, free-space guard, growing files and extras.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Logger } from "../log/logging.ts";
import type { StatusEvents } from "../status/events.ts";
import { isConnectionFailure } from "../errors.ts";
import type { Transport } from "../transfer/transport.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { relativeTo } from "../watch/relative_path.ts";
import { StabilityChecker } from "../watch/stability.ts";
import { WatchSession } from "../watch/watch_session.ts";
import { BatchSender } from "./batch_sender.ts";
import { FreeSpaceGauge } from "../status/free_space_gauge.ts";
import { FullDestinationPause } from "./full_pause.ts";
import { GrowingSender } from "./growing_sender.ts";
import { Intake } from "./intake.ts";
import { JobExtras } from "./job_extras.ts";
import type { JobStatus } from "../status/job_status.ts";
import { SpaceGuard } from "./space_guard.ts";
import { FileTable } from "./file_table.ts";

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

/** What a job did during this run: each file counted by its last outcome. */
export interface JobSummary {
  sent: number;
  failed: number;
}

/** What a job did during this run, file by file. */
export interface JobOutcomes {
  sent: number;
  /** Files given up and not arrived since (a later arrival takes them out). */
  failed: Set<string>;
}

/** What the collaborators call back into the runner for. */
export interface RunnerCallbacks {
  /** Start batches while there is work and room. */
  pump: () => void;
  /** Start batches in a moment (files that become ready together go out together). */
  pumpSoon: () => void;
  /** Wake those waiting for the job to be idle, if it is. */
  checkIdle: () => void;
  /** Retries whose time has come. */
  onDue: (relPaths: string[]) => void;
  /** Before a periodic rescan. */
  beforeRescan: () => void;
  /** Whether the runner is stopping. */
  stopping: () => boolean;
}

/** What {@linkcode wireJob} needs from the runner. */
export interface JobWiringInput {
  job: JobConfig;
  ledger: Ledger;
  transport: Transport;
  options: JobRunnerOptions;
  log: Logger;
  /** Aborted when the runner stops. */
  signal: AbortSignal;
  status: JobStatus;
  /** Kept as files arrive or are given up. */
  outcomes: JobOutcomes;
  callbacks: RunnerCallbacks;
}

/** The collaborators of one job's runner. */
export interface JobParts {
  checker: StabilityChecker;
  /** The one owner of every file's state from complete to done. */
  table: FileTable;
  intake: Intake;
  session: WatchSession;
  /** Parts of files that are still growing (`growing_patterns`). */
  growing: GrowingSender;
  /** Paused while the destination is full. */
  full: FullDestinationPause;
  /** `min_free_space` at the destination and the watch folder's disk. */
  space: SpaceGuard;
  sender: BatchSender;
  /** Hooks, source clean-up, schedules. */
  extras: JobExtras;
  /** Free space at the destination, where the transport can tell it. */
  freeSpace: FreeSpaceGauge | null;
}

/** Create the collaborators of one job's runner and wire them to each other and to the runner's `callbacks`. */
export function wireJob(input: JobWiringInput): JobParts {
  const { job, transport, options, log, signal, status, outcomes } = input;
  const callbacks = input.callbacks;
  const filter = createFileFilter(job);
  const freeSpace = transport.diskSpace
    ? new FreeSpaceGauge(
      // Only when an SSH session is free: the page never holds up a transfer.
      async () =>
        (await transport.diskSpace!(signal, { onlyIfFree: true }))?.availableBytes ??
          null,
      () => status.changed(),
    )
    : null;
  // The stability checker: decides when a file is completely written.
  const stableForMs = job.stability_window_seconds * 1000;
  // Only asks whether a name matches: what it does not match is not skipped, so it says nothing.
  const shortcut = createFileFilter({
    ...job,
    watch_path: undefined,
    file_patterns: job.close_shortcut_patterns,
    exclude_patterns: [],
  }, { skipLog: null });
  const checker = new StabilityChecker({
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
        log.warn(
          "Sending {path} although it is truncated ({reason}); it has not changed for {seconds} s or more",
          {
            path: file.path,
            reason: file.truncated.reason,
            seconds: job.fits_incomplete_grace_seconds,
          },
        );
      }
      intake.ready(file);
    },
    onGone: (path) => void intake.gone(path),
    onLeft: (path, reason) => {
      log.info("Left {path} for a later run: {reason}", { path, reason });
      callbacks.checkIdle();
    },
  });
  const table = new FileTable({
    job,
    ledger: input.ledger,
    filter,
    observer: { has: (path) => checker.has(path), touch: (path) => checker.touch(path) },
    onDue: callbacks.onDue,
  });
  const full = new FullDestinationPause({
    job: job.name,
    target: transport.describeTarget(""),
    fullSpeed: job.max_concurrent_transfers * transport.maxBatchFiles,
    onProbeDue: callbacks.pump,
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
  const space = new SpaceGuard({
    job,
    target: transport.describeTarget(""),
    measure: transport.diskSpace?.bind(transport),
    signal: signal,
    repeatWatchCheck: !options.once,
    watchCheckMs: options.watchDiskCheckMs,
  });
  const session: WatchSession = new WatchSession({
    root: job.watch_path,
    job: job.name,
    filter: filter,
    once: options.once,
    missingFolderRetryMs: options.missingFolderRetryMs ?? 10_000,
    rescanIntervalMs: job.rescan_interval_seconds * 1000,
    watchMode: job.watch_mode,
    pollIntervalMs: job.poll_interval_seconds * 1000,
    onActivity: (path, rel, activity) => {
      intake.activity(path, rel, activity);
      growing.touched(path, rel);
    },
    onFound: (files, quick) => {
      const found = intake.found(files, quick);
      for (const file of found) growing.touched(file.path, file.relPath);
      return found;
    },
    beforeRescan: callbacks.beforeRescan,
    // The first file should not wait for an SSH handshake (~0.3 s or more).
    onFolderReady: () => void transport.warmUp?.(),
  });
  const growing = new GrowingSender({
    job,
    transport,
    signal: signal,
    growing: (path) => checker.has(path),
  });
  const intake: Intake = new Intake({
    job,
    table,
    checker: checker,
    scanIfFolder: (path) => session.scanIfFolder(path),
    stopping: callbacks.stopping,
    onQueued: callbacks.pumpSoon,
    onSettled: callbacks.checkIdle,
  });
  const extras = new JobExtras({
    job,
    table,
    transport,
    signal: signal,
    rescan: () => session.rescan(),
    pause: () => void (status.windowPaused = true),
    resume: () => {
      status.windowPaused = false;
      callbacks.pump();
    },
    once: options.once,
  });
  const sender = new BatchSender({
    job,
    table,
    transport,
    signal: signal,
    observe: (path) => checker.touch(path),
    onSent: (record, sha256) => {
      const { relPath, version, destination } = record;
      outcomes.sent++;
      outcomes.failed.delete(relPath);
      extras.arrived(relPath, { ...version }, destination, sha256);
      status.sent(relPath, destination, version.size, record.sendingSince);
    },
    onRecognised: (rel, version) => {
      outcomes.failed.delete(rel);
      extras.recognised(rel, version);
    },
    onGaveUp: (record, error, attempts) => {
      outcomes.failed.add(record.relPath);
      extras.gaveUp(record, error, attempts);
    },
    onFailed: (rel, error, final) =>
      status.failed(rel, error.kind, error.message, final, isConnectionFailure(error)),
    pauseWhenFull: !options.once,
    slowRetries: !options.once,
    onFull: (error) => {
      full.full(error.message);
      status.state(true);
    },
    admit: (bytes) => space.admit(bytes),
    deadlineMs: options.batchDeadlineMs,
  });
  return { checker, table, intake, session, growing, full, space, sender, extras, freeSpace };
}
