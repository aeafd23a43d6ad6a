/**
 * The read-only picture of one job for the status surface: its state with
 * since when, what is being sent, and the events it tells
 * ({@linkcode StatusEvents}). The job runner feeds it; nothing here changes
 * what the pipeline does.
 *
 * @module
 */
import type { StatusEvents } from "./events.ts";
import type { FreeSpace } from "./free_space_gauge.ts";

/**
 * Where a job stands, as a person would say it: `unreachable` when the host or the connection
 * fails, `failing` when every attempt fails for another reason, `full` when the destination has
 * no room, `ledger_error` when the daemon cannot record what it sent (nothing new is sent then).
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
  /** Files per work-queue phase, and those still being watched until complete. */
  queue: Record<QueuePhase, number> & { observing: number };
  /** Since when the longest-waiting file in motion (the file table's) waits (ms since epoch), or `null`. */
  oldestWaitingSince: number | null;
  inFlight: InFlight[];
  /** Bytes per second delivered over the last {@linkcode RATE_WINDOW_MS} (the current rate). */
  rateBytesPerSecond: number;
  /** Files sent and failed for good since this runner started. */
  sent: number;
  failed: number;
  /** When a file last arrived (ms since epoch), or `null`. */
  lastSuccessAt: number | null;
  /** Free space at the destination where known (local, scp, rsync), else `null`. */
  freeSpace: FreeSpace | null;
  /** How the watch folder is watched; `null` until it exists. */
  watch: JobWatch | null;
}

/** How a job's watch folder is watched (see `watch/watch_mode.ts`). */
export interface JobWatch {
  /** `events`, `poll`, or `events+poll`. */
  mode: "events" | "poll" | "events+poll";
  /** The file system's name (`ext4`, `nfs4`, `fuse.sshfs`, `unknown`...). */
  fileSystem: string;
  /** Whether that file system's events miss changes made by other machines. */
  remote: boolean;
  /** The share, where known. */
  source: string | null;
  /** Seconds between polls, when polled. */
  pollIntervalSeconds: number | null;
  /** One line saying how and why. */
  summary: string;
  /** Why the (polled) watch folder cannot be read now, e.g. a share that went away; else `null`. */
  unavailable: string | null;
}

/** The phases of a job's files in motion (the file table's), as the status shows them. */
export type QueuePhase = "planning" | "queued" | "waiting" | "sending";

/** Tracks one job's state and in-flight files, and emits its events. */
export class JobStatus {
  readonly job: string;
  readonly method: string;
  #events: StatusEvents | undefined;
  /** Arrivals of the last {@linkcode RATE_WINDOW_MS}, oldest first. */
  #arrivals: Array<{ at: number; bytes: number }> = [];
  #userPaused = false;
  #windowPaused = false;
  /** The connection's last failure since the last arrival. */
  #unreachable: string | null = null;
  /** Files whose attempts failed since the last arrival, and the last reason. */
  #failedFiles = new Set<string>();
  #lastFailure: string | null = null;
  /** Why the ledger cannot be written, or `null`. */
  #ledgerProblem: string | null = null;
  #state: JobState = "watching";
  #since = Date.now();
  /** Whether the full pause held the job when last asked. */
  #lastFull = false;
  lastSuccessAt: number | null = null;

  constructor(job: string, method: string, events?: StatusEvents) {
    this.job = job;
    this.method = method;
    this.#events = events;
  }

  /** Paused from the status page. */
  get userPaused(): boolean {
    return this.#userPaused;
  }

  set userPaused(paused: boolean) {
    this.#userPaused = paused;
    this.state(this.#lastFull);
    this.changed();
  }

  /** Outside a transfer window of the job's schedules. */
  get windowPaused(): boolean {
    return this.#windowPaused;
  }

  set windowPaused(paused: boolean) {
    this.#windowPaused = paused;
    this.state(this.#lastFull);
    this.changed();
  }

  /** The ledger cannot be written (`reason`), or can again (`null`). */
  set ledgerProblem(reason: string | null) {
    this.#ledgerProblem = reason;
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

  /** A batch starts with these files (the file table holds them as being sent). */
  started(files: Array<{ relPath: string; bytes: number }>): void {
    const at = Date.now();
    this.#events?.emit({
      type: "started",
      job: this.job,
      method: this.method,
      relPaths: files.map((f) => f.relPath),
      at,
    });
  }

  /** A file arrived verified; its attempt started at `startedAt` (ms since epoch). */
  sent(relPath: string, destination: string, bytes: number, startedAt = Date.now()): void {
    const at = Date.now();
    this.#arrivals.push({ at, bytes });
    this.#forgetArrivals(at);
    this.lastSuccessAt = at;
    this.#unreachable = null;
    this.#failedFiles.clear();
    this.#lastFailure = null;
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
   * An attempt failed (not for a file that changed or disappeared while sent).
   * `connection`: the host or the connection failed, not this file.
   */
  failed(
    relPath: string,
    errorClass: string,
    reason: string,
    final: boolean,
    connection = false,
  ): void {
    if (connection) this.#unreachable = reason;
    else {
      this.#failedFiles.add(relPath);
      this.#lastFailure = reason;
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
      at: Date.now(),
    });
  }

  /**
   * The state now, given whether the destination-full pause holds the job;
   * called after every change, so `since` is when it changed.
   */
  state(full: boolean): { state: JobState; since: number; reason: string | null } {
    this.#lastFull = full;
    // One file that fails while others arrive is a problem of that file, not of the job.
    const failing = this.#failedFiles.size >= 2 ? this.#lastFailure : null;
    const state: JobState = this.paused
      ? "paused"
      : this.#ledgerProblem !== null
      ? "ledger_error"
      : full
      ? "full"
      : this.#unreachable !== null
      ? "unreachable"
      : failing !== null
      ? "failing"
      : "watching";
    if (state !== this.#state) {
      this.#state = state;
      this.#since = Date.now();
    }
    const reason = state === "ledger_error"
      ? this.#ledgerProblem
      : state === "full"
      ? this.#lastFailure
      : state === "unreachable"
      ? this.#unreachable
      : state === "failing"
      ? failing
      : state === "paused" && !this.#userPaused
      ? "outside a transfer window"
      : null;
    return { state, since: this.#since, reason };
  }

  /** Bytes per second that arrived over the last {@linkcode RATE_WINDOW_MS} before `now`. */
  rate(now: number = Date.now()): number {
    this.#forgetArrivals(now);
    const bytes = this.#arrivals.reduce((sum, arrival) => sum + arrival.bytes, 0);
    return Math.round(bytes / (RATE_WINDOW_MS / 1000));
  }

  #forgetArrivals(now: number): void {
    const from = now - RATE_WINDOW_MS;
    while (this.#arrivals.length > 0 && this.#arrivals[0].at <= from) this.#arrivals.shift();
  }
}
