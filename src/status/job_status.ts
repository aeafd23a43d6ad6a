/**
 * The read-only picture of one job for the status surface: its state with since when, what is
 * being sent, and the events it tells (`status/events.ts`). The job runner feeds it; nothing here
 * changes what the pipeline does. The destination's free space is `status/free_space_gauge.ts`'s.
 *
 * @module
 */
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { WatchHow } from "../watch/fs_type.ts";
import type { StatusEvents } from "./events.ts";
import { type FreeSpace, FreeSpaceGauge } from "./free_space_gauge.ts";

/**
 * Where a job stands, as a person would say it: `unreachable` when the host or the connection
 * fails, or while an upload waits on a server that takes none of its data, `failing` when every
 * attempt fails for another reason, `full` when the destination has no room, `ledger_error` when
 * the daemon cannot record what it sent (nothing new is sent then).
 */
export const JOB_STATES = [
  "watching",
  "paused",
  "unreachable",
  "failing",
  "full",
  "ledger_error",
] as const;

/** One of {@linkcode JOB_STATES}. */
export type JobState = typeof JOB_STATES[number];
/** Whose problem a failed attempt is (see {@linkcode JobStatus.failed}). */
export type FailureScope = "file" | "connection" | "destination" | "changed";

/** How far back the current transfer rate looks. */
export const RATE_WINDOW_MS = 10_000;

/** One file being sent. */
export interface InFlight {
  relPath: string;
  bytes: number;
  startedAt: number;
}

/** What {@linkcode JobRunner.snapshot} returns. */
export interface JobSnapshot {
  job: string;
  method: string;
  /** Where files go (`user@host:/path` or a local folder). */
  target: string;
  state: JobState;
  /** When the job entered `state` (ms since epoch). */
  since: number;
  /** The last error while `unreachable`, `failing`, `full` or `ledger_error`. */
  reason: string | null;
  /**
   * The job's files not arrived yet, each counted once (the file table's count, which every report
   * reads): per phase (`observing`: watched until complete), `failed` (fast retries used up, in
   * whichever phase) and `unrecorded`.
   */
  queue: Record<QueuePhase, number>;
  /** Since when the longest-waiting file in motion (the file table's) waits (ms since epoch), or `null`. */
  oldestWaitingSince: number | null;
  inFlight: InFlight[];
  /** Transfers (batches, each of one or more of `inFlight`'s files) under way, at most the job's
   * `max_concurrent_transfers`. */
  transfers: number;
  /** Bytes per second delivered over the last {@linkcode RATE_WINDOW_MS} (the current rate). */
  rateBytesPerSecond: number;
  /** Files sent since this runner started. */
  sent: number;
  /** Files failing now: `queue.failed` (what `status` prints). */
  failed: number;
  /**
   * Whether the destination pause holds the job (full, or not reachable: one file is tried at a
   * time until one arrives), whatever the job's state says of the last failure.
   */
  held: boolean;
  /** That pause as `status` tells it (`destination failing`, since when, why), else `null`. */
  pause: JobPause | null;
  /** When a file last arrived (ms since epoch), or `null`. */
  lastSuccessAt: number | null;
  /**
   * Files and folders found that cannot be sent (a name not UTF-8, a name with a line break over
   * FTP, a folder not readable).
   */
  cannotSend: number;
  /**
   * Files under observation (among `queue.observing`) that cannot be looked at now: their stat
   * fails otherwise than "not found" (a share's I/O error, a folder's permissions); looked at
   * again until it works.
   */
  unreadable: number;
  /** Hooks that failed, timed out or could not run, since the daemon started. */
  hookFailures: number;
  /** Schedule actions (a command, a report, a rescan) that failed or could not run, since then. */
  scheduleFailures: number;
  /**
   * Sources `after_transfer` could not delete or move into the archive, since the daemon started
   * (each logged; the file stays in the watch folder and is tried again).
   */
  cleanupFailures: number;
  /** Free space at the destination where known (local, scp, rsync), else `null`. */
  freeSpace: FreeSpace | null;
  /** How the watch folder is watched; `null` until it exists. */
  watch: JobWatch | null;
}

/** How a job's watch folder is watched (see `watch/fs_type.ts`), and whether it can be read now. */
export interface JobWatch extends WatchHow {
  /** Why the (polled) watch folder cannot be read now, e.g. a share that went away; else `null`. */
  unavailable: string | null;
}

/**
 * Where a job's files not arrived yet stand, as the status shows them: the phases of the file
 * table's files in motion, `failed` (fast retries used up, whatever the phase), and `unrecorded`:
 * found complete, or arrived at the destination, while the ledger could not be written, waiting
 * for it (an arrived file is not counted `sending`).
 */
export type QueuePhase =
  | "observing"
  | "planning"
  | "queued"
  | "waiting"
  | "sending"
  | "failed"
  | "unrecorded";

/** What a job did during this run: each file counted by its last outcome. */
export interface JobSummary {
  sent: number;
  failed: number;
}

/** The reason of a job paused from the status page (a window's pause says its own). */
export const PAUSED_FROM_PAGE = "from the status page; Resume there ends it";

/** Tracks one job's state and in-flight files, and emits its events. */
export class JobStatus {
  readonly job: string;
  readonly method: string;
  #events: StatusEvents | undefined;
  /**
   * Why the watch folder cannot be read now (a share that went away), else
   * `null`, asked of the watch: no file is seen meanwhile, so the job counts
   * as failing.
   */
  #watchProblem: () => string | null;
  /** Arrivals of the last {@linkcode RATE_WINDOW_MS}, oldest first: bytes sent from `from` to `at`. */
  #arrivals: Array<{ from: number; at: number; bytes: number }> = [];
  #userPaused = false;
  #windowPaused = false;
  /** When the window's pause ends, in words (`until its resume at ...`), or "". */
  #windowEnd = "";
  /** The connection's last failure since the last arrival. */
  #unreachable: string | null = null;
  /** Files whose attempts failed since the last arrival, and the last reason. */
  #failedFiles = new Set<string>();
  /** Whether the last failure said the destination folder is gone (since the last arrival). */
  #destinationGone = false;
  #lastFailure: string | null = null;
  /** Why the ledger cannot be written, or `null`. */
  #ledgerProblem: string | null = null;
  /** Why an upload waits on the destination now (it takes none of its data), or `null`. */
  #stalledUpload: string | null = null;
  #state: JobState = "watching";
  #since = Date.now();
  /** The replaced runner's state and since when, until this one enters it (a full destination
   * is first seen failing files: its pause is new), a file arrives or a pause begins or ends. */
  #before: { state: JobState; since: number } | null = null;
  /** Whether the full pause held the job when last asked. */
  #lastFull = false;
  /** Files that arrived during this run. */
  #sentCount = 0;
  /** Files given up during this run and not arrived since (a later arrival takes them out). */
  #givenUp = new Set<string>();
  lastSuccessAt: number | null = null;

  /** Free space at the destination, where it can be measured. */
  readonly freeSpace: FreeSpaceGauge | null;

  /** @param measureFreeSpace the destination's free bytes (`null`: cannot tell now), if measured */
  constructor(
    job: string,
    method: string,
    events?: StatusEvents,
    measureFreeSpace?: () => Promise<number | null>,
    watchProblem: () => string | null = () => null,
  ) {
    this.job = job;
    this.method = method;
    this.#events = events;
    this.#watchProblem = watchProblem;
    this.freeSpace = measureFreeSpace
      ? new FreeSpaceGauge(measureFreeSpace, () => this.changed())
      : null;
  }

  /** Paused from the status page. */
  get userPaused(): boolean {
    return this.#userPaused;
  }

  set userPaused(paused: boolean) {
    if (paused !== this.#userPaused) this.#before = null; // Begins or ends: since now.
    this.#userPaused = paused;
    this.state(this.#lastFull);
    this.changed();
  }

  /** Outside a transfer window of the job's schedules. */
  get windowPaused(): boolean {
    return this.#windowPaused;
  }

  /** `true`, or the words of when the window's pause ends (`until its resume at ...`); `false`. */
  set windowPaused(paused: boolean | string) {
    if ((paused !== false) !== this.#windowPaused) this.#before = null; // As the page's.
    this.#windowPaused = paused !== false;
    this.#windowEnd = typeof paused === "string" ? paused : "";
    this.state(this.#lastFull);
    this.changed();
  }

  /** The ledger cannot be written (`reason`), or can again (`null`). */
  set ledgerProblem(reason: string | null) {
    this.#ledgerProblem = reason;
    this.state(this.#lastFull);
    this.changed();
  }

  /**
   * The job waits on the destination, which takes none of an upload's data (`why`: the
   * transport's words), not given up yet, nor moves another; or no longer (`null`). The job is
   * `unreachable` meanwhile.
   */
  set stalledUpload(why: string | null) {
    this.#stalledUpload = why;
    // Its end is seen at the next look: an upload given up has failed by then, and the job is
    // unreachable since the stall began, not since it was given up.
    if (why === null) return;
    this.state(this.#lastFull);
    this.changed();
  }

  /** Whether no new batch may start (paused from the page or by a transfer window). */
  get paused(): boolean {
    return this.#userPaused || this.#windowPaused;
  }

  /** Something shown of the job changed (no transfer event tells it). */
  changed(): void {
    this.#events?.emit({ type: "job", job: this.job, at: Date.now() });
  }

  /**
   * A batch starts with the files at `relPaths` (the file table holds them as being sent);
   * `probe`: it is the destination pause's probe.
   */
  started(relPaths: string[], probe = false): void {
    const { job, method } = this;
    this.#events?.emit({ type: "started", job, method, relPaths, probe, at: Date.now() });
  }

  /** Files sent and failed during this run, each file counted by its last outcome. */
  get summary(): JobSummary {
    return { sent: this.#sentCount, failed: this.#givenUp.size };
  }

  /**
   * Go on from the picture of the runner this one replaces (a reload keeps the job): this run's
   * counts, the arrivals of the rate, the last success, a pause from the page, which only a resume
   * from the page ends, a window's pause (the new schedules' window may end it), and since when the
   * job is in its state (while it stays in it, until a pause begins or ends): the failures it is
   * judged by go on too, so a job whose destination could not be reached (or every file of which
   * failed) stays so, since the outage began, until an outcome of the next runner says otherwise.
   */
  continueFrom(previous: JobStatus): void {
    this.#sentCount = previous.#sentCount;
    this.#givenUp = new Set(previous.#givenUp);
    this.#arrivals = [...previous.#arrivals];
    this.lastSuccessAt = previous.lastSuccessAt;
    this.#unreachable = previous.#unreachable;
    this.#failedFiles = new Set(previous.#failedFiles);
    this.#lastFailure = previous.#lastFailure;
    this.#destinationGone = previous.#destinationGone;
    this.#state = previous.#state;
    this.#since = previous.#since;
    this.#before = { state: previous.#state, since: previous.#since };
    // Its pauses go on, not begun now.
    [this.#userPaused, this.#windowPaused] = [previous.#userPaused, previous.#windowPaused];
    this.#windowEnd = previous.#windowEnd;
    if (this.paused) this.changed();
  }

  /** Said to take files again (its pause ended): not unreachable, though no file arrived. */
  reachable(): void {
    this.#unreachable = null;
    this.state(this.#lastFull);
    this.changed();
  }

  /** A file used up its fast retries (counted as failed until it arrives). */
  gaveUp(relPath: string): void {
    this.#givenUp.add(relPath);
    this.state(this.#lastFull);
  }

  /**
   * A file counted as failed is not: found at the destination after the ledger was rebuilt, or
   * gone from the watch folder.
   */
  notFailed(relPath: string): void {
    this.#givenUp.delete(relPath);
    if (this.#failedFiles.delete(relPath)) this.state(this.#lastFull);
  }

  /** A file arrived verified; its attempt started at `startedAt` (ms since epoch). */
  sent(relPath: string, destination: string, bytes: number, startedAt = Date.now()): void {
    const at = Date.now();
    this.#sentCount++;
    this.#givenUp.delete(relPath);
    this.#arrivals.push({ from: Math.min(startedAt, at), at, bytes });
    this.#forgetArrivals(at);
    this.lastSuccessAt = at;
    this.#before = null;
    this.#unreachable = null;
    this.#failedFiles.clear();
    this.#lastFailure = null;
    this.#destinationGone = false;
    this.state(this.#lastFull);
    this.#events?.emit({
      type: "sent",
      job: this.job,
      method: this.method,
      relPath,
      destination,
      bytes,
      durationMs: Math.max(0, at - startedAt),
      at,
    });
  }

  /**
   * An attempt failed (not for a file that disappeared while sent).
   * `scope`: `connection` (the host or the connection failed) and
   * `destination` (its folder is gone) are the job's problem from the first
   * file on; `file`, this file's, until a second file fails too before
   * another arrives (or, before any file arrived in this run, it used up its
   * fast retries); `changed`, the file changed while it was sent (counted, not the job's problem).
   * `attempted`: `false` for a file refused unsent (no room at the destination), no failed attempt.
   */
  failed(
    relPath: string,
    errorClass: string,
    reason: string,
    final: boolean,
    scope: FailureScope = "file",
    attempted = true,
  ): void {
    if (scope === "connection") this.#unreachable = reason;
    else if (scope !== "changed") {
      // The host answered (a file or its folder failed): it is reachable again.
      this.#unreachable = null;
      this.#failedFiles.add(relPath);
      this.#lastFailure = reason;
      if (scope === "destination") this.#destinationGone = true;
    }
    this.state(this.#lastFull);
    this.#events?.emit({
      type: "failed",
      job: this.job,
      method: this.method,
      relPath,
      errorClass,
      reason,
      final,
      attempted,
      at: Date.now(),
    });
  }

  /**
   * The state now, given whether the destination-full pause holds the job;
   * called after every change, so `since` is when it changed.
   */
  state(full: boolean): { state: JobState; since: number; reason: string | null } {
    this.#lastFull = full;
    // One file that fails while others arrive is a problem of that file, not of the job; until a
    // file arrived in this run, one that failed until its fast retries were used up is the job's
    // (it may never have worked).
    const watch = this.#watchProblem();
    const jobFails = this.#failedFiles.size >= 2 || this.#destinationGone ||
      (this.#sentCount === 0 &&
        [...this.#failedFiles].some((relPath) => this.#givenUp.has(relPath)));
    const failing = (jobFails ? this.#lastFailure : null) ??
      (watch === null ? null : `the watch folder cannot be read: ${watch}`);
    // An upload the server takes no data of says more of now than the last failure.
    const unreachable = this.#stalledUpload ?? this.#unreachable;
    const state: JobState = this.paused
      ? "paused"
      : this.#ledgerProblem !== null
      ? "ledger_error"
      : full
      ? "full"
      : unreachable !== null
      ? "unreachable"
      : failing !== null
      ? "failing"
      : "watching";
    if (state !== this.#state) {
      this.#state = state;
      this.#since = this.#before?.state === state ? this.#before.since : Date.now();
      if (this.#before?.state === state) this.#before = null;
    }
    const window = `outside a transfer window${this.#windowEnd ? ` (${this.#windowEnd})` : ""}`;
    const reasons: Partial<Record<JobState, string | null>> = {
      ledger_error: this.#ledgerProblem,
      full: this.#lastFailure,
      unreachable,
      failing,
      paused: this.#userPaused ? PAUSED_FROM_PAGE : window,
    };
    return { state, since: this.#since, reason: reasons[state] ?? null };
  }

  /**
   * Bytes per second that arrived over the last {@linkcode RATE_WINDOW_MS}
   * before `now`, each arrival's bytes spread over the time it took to send
   * (a file sent for a minute counts a sixth of its bytes in the window, not
   * all of them in the window after it arrived).
   */
  rate(now: number = Date.now()): number {
    this.#forgetArrivals(now);
    const from = now - RATE_WINDOW_MS;
    let bytes = 0;
    for (const arrival of this.#arrivals) {
      const took = arrival.at - arrival.from;
      const inWindow = Math.min(arrival.at, now) - Math.max(arrival.from, from);
      bytes += took <= 0
        ? arrival.bytes
        : arrival.bytes * Math.max(0, Math.min(1, inWindow / took));
    }
    return Math.round(bytes / (RATE_WINDOW_MS / 1000));
  }

  #forgetArrivals(now: number): void {
    const from = now - RATE_WINDOW_MS;
    while (this.#arrivals.length > 0 && this.#arrivals[0].at <= from) this.#arrivals.shift();
  }
}
