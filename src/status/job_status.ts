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
  /** The last error while `unreachable` or `full`. */
  reason: string | null;
  /** Files per work-queue phase, and those still being watched until complete. */
  queue: Record<QueuePhase, number> & { observing: number };
  /** Since when the longest-waiting file of the work queue waits (ms since epoch), or `null`. */
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
}

/** The phases of a job's work queue, as the status shows them. */
export type QueuePhase = "planning" | "queued" | "waiting" | "sending";

/** Tracks one job's state and in-flight files, and emits its events. */
export class JobStatus {
  readonly job: string;
  readonly method: string;
  #events: StatusEvents | undefined;
  #inFlight = new Map<string, InFlight>();
  /** Arrivals of the last {@linkcode RATE_WINDOW_MS}, oldest first. */
  #arrivals: Array<{ at: number; bytes: number }> = [];
  #userPaused = false;
  #windowPaused = false;
  #failing: string | null = null;
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

  /** Whether no new batch may start (paused from the page or by a transfer window). */
  get paused(): boolean {
    return this.#userPaused || this.#windowPaused;
  }

  /** Something shown of the job changed (no transfer event tells it). */
  changed(): void {
    this.#events?.emit({ type: "job", job: this.job, at: Date.now() });
  }

  /** A batch starts with these files. */
  started(files: Array<{ relPath: string; bytes: number }>): void {
    const at = Date.now();
    for (const f of files) this.#inFlight.set(f.relPath, { ...f, startedAt: at });
    this.#events?.emit({
      type: "started",
      job: this.job,
      method: this.method,
      relPaths: files.map((f) => f.relPath),
      at,
    });
  }

  /** A file arrived verified. */
  sent(relPath: string, destination: string, bytes: number): void {
    const at = Date.now();
    const startedAt = this.#inFlight.get(relPath)?.startedAt ?? at;
    this.#inFlight.delete(relPath);
    this.#arrivals.push({ at, bytes });
    this.#forgetArrivals(at);
    this.lastSuccessAt = at;
    this.#failing = null;
    this.state(this.#lastFull);
    this.#events?.emit({
      type: "sent",
      job: this.job,
      method: this.method,
      relPath,
      destination,
      bytes,
      durationMs: at - startedAt,
      at,
    });
  }

  /** An attempt failed (not for a file that changed or disappeared while sent). */
  failed(relPath: string, errorClass: string, reason: string, final: boolean): void {
    this.#inFlight.delete(relPath);
    // A fatal error is about this file (unreadable, refused); the others about the destination.
    if (errorClass !== "fatal") {
      this.#failing = reason;
      this.state(this.#lastFull);
    }
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

  /** A batch ended: whatever is still listed from it is not in flight any more. */
  ended(relPaths: string[]): void {
    for (const p of relPaths) this.#inFlight.delete(p);
  }

  /**
   * The state now, given whether the destination-full pause holds the job;
   * called after every change, so `since` is when it changed.
   */
  state(full: boolean): { state: JobState; since: number; reason: string | null } {
    this.#lastFull = full;
    const state: JobState = this.paused
      ? "paused"
      : full
      ? "full"
      : this.#failing !== null
      ? "unreachable"
      : "watching";
    if (state !== this.#state) {
      this.#state = state;
      this.#since = Date.now();
    }
    const reason = state === "full" || state === "unreachable"
      ? this.#failing
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

  /** The files being sent, oldest first. */
  inFlight(): InFlight[] {
    return [...this.#inFlight.values()];
  }
}
