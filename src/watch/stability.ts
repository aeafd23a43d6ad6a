/**
 * The stability checker: decides when a file is completely written.
 *
 * A file is ready when its size and mtime have stopped changing for the
 * stability window and no watcher event arrived for it meanwhile (debounced
 * per file). After the writer closes it (Linux reports close-after-write), a
 * shorter confirmation interval is enough. A file that keeps changing waits;
 * one that disappears is dropped.
 *
 * Idle cost is zero: there is one timer per file under observation and none
 * when nothing is pending.
 *
 * @module
 */

/** What the checker knows of a file that became ready. */
export interface StableFile {
  path: string;
  size: number;
  mtimeMs: number;
}

/** What kind of activity was seen for a file. */
export type Activity =
  /** Created, written, renamed in, or found by a scan. */
  | "changed"
  /** Closed by a writer (close-after-write). */
  | "closed";

/** Options of {@linkcode StabilityChecker}. */
export interface StabilityOptions {
  /** Quiet time (ms) required after the last change. */
  stableForMs: number;
  /**
   * Quiet time (ms) required after a close-after-write event, if shorter.
   * @default stableForMs
   */
  closedForMs?: number;
  /** Called once per file when it is ready. */
  onReady: (file: StableFile) => void;
  /** Called when a file under observation disappears. */
  onGone?: (path: string) => void;
}

interface Entry {
  size: number;
  mtimeMs: number;
  /** Last change of size/mtime or last event (ms). */
  lastActivityMs: number;
  /** Quiet time this file needs now. */
  quietMs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** When `timer` fires (performance.now() ms). */
  dueMs: number;
}

/** Tracks files until they are complete; see the module doc. */
export class StabilityChecker {
  #options: Required<Omit<StabilityOptions, "onGone">> & Pick<StabilityOptions, "onGone">;
  #entries = new Map<string, Entry>();
  #closed = false;

  constructor(options: StabilityOptions) {
    // `?? stableForMs` after the spread: an explicit `closedForMs: undefined` means the default.
    const closedForMs = Math.min(options.closedForMs ?? options.stableForMs, options.stableForMs);
    this.#options = { ...options, closedForMs };
  }

  /** Number of files under observation. */
  get pendingCount(): number {
    return this.#entries.size;
  }

  /** Whether `path` is under observation. */
  has(path: string): boolean {
    return this.#entries.has(path);
  }

  /** Record activity for `path`, starting observation if it is new. */
  touch(path: string, activity: Activity = "changed"): void {
    if (this.#closed) return;
    const now = performance.now();
    const quietMs = activity === "closed" ? this.#options.closedForMs : this.#options.stableForMs;
    const entry = this.#entries.get(path);
    if (entry) {
      entry.lastActivityMs = now;
      entry.quietMs = quietMs;
      // The event is the activity: re-take the baseline so the check compares
      // against the file as it was at this event.
      if (!this.#sample(path, entry, "baseline")) return this.#drop(path, entry);
      // A pending check re-arms itself for the rest of the quiet time, so a
      // timer is only replaced when this event asks for an earlier decision.
      if (entry.timer === undefined || entry.dueMs > now + quietMs) {
        this.#schedule(path, entry, quietMs);
      }
      return;
    }
    const fresh: Entry = {
      size: -1,
      mtimeMs: -1,
      lastActivityMs: now,
      quietMs,
      timer: undefined,
      dueMs: 0,
    };
    this.#entries.set(path, fresh);
    // Take the first sample now; the decision comes after the quiet time.
    if (!this.#sample(path, fresh, "baseline")) return this.#drop(path, fresh);
    this.#schedule(path, fresh, quietMs);
  }

  /** Stop observing `path` without a callback. */
  forget(path: string): void {
    const entry = this.#entries.get(path);
    if (entry?.timer !== undefined) clearTimeout(entry.timer);
    this.#entries.delete(path);
  }

  /** Stop all timers; nothing is reported afterwards. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
    }
    this.#entries.clear();
  }

  #schedule(path: string, entry: Entry, delayMs: number): void {
    if (this.#closed || this.#entries.get(path) !== entry) return;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.dueMs = performance.now() + Math.max(0, delayMs);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#check(path, entry);
    }, Math.max(0, delayMs));
  }

  /**
   * Stat the file and update the entry. A `check` sample that differs from the
   * last one counts as activity (written without an event) and needs the full
   * window again. Returns false when the file is gone.
   *
   * Synchronous: a stat takes microseconds, where handing it to another thread
   * and back costs several times that, once per event of a burst.
   */
  #sample(path: string, entry: Entry, mode: "baseline" | "check"): boolean {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return false;
    }
    if (!info.isFile) return false;
    const mtimeMs = info.mtime?.getTime() ?? 0;
    if (info.size !== entry.size || mtimeMs !== entry.mtimeMs) {
      if (mode === "check") {
        entry.lastActivityMs = performance.now();
        // Still being written: a close event no longer counts.
        entry.quietMs = this.#options.stableForMs;
      }
      entry.size = info.size;
      entry.mtimeMs = mtimeMs;
    }
    return true;
  }

  #check(path: string, entry: Entry): void {
    if (this.#closed || this.#entries.get(path) !== entry) return;
    if (!this.#sample(path, entry, "check")) return this.#drop(path, entry);
    const quietForMs = performance.now() - entry.lastActivityMs;
    if (quietForMs >= entry.quietMs - 1) {
      this.#entries.delete(path);
      this.#options.onReady({ path, size: entry.size, mtimeMs: entry.mtimeMs });
      return;
    }
    this.#schedule(path, entry, entry.quietMs - quietForMs);
  }

  /** Drop `entry` (only if it is still the observation of `path`) and report it gone. */
  #drop(path: string, entry: Entry): void {
    if (this.#entries.get(path) !== entry) return;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    this.#entries.delete(path);
    this.#options.onGone?.(path);
  }
}
