/**
 * `min_free_space`: room a job keeps free.
 *
 * Before a batch is sent, the room at the destination is looked at: a
 * measurement (the transport's `diskSpace`: `statfs` for local, `df` over the
 * shared SSH connection) is kept for {@linkcode SPACE_CACHE_MS}, less the
 * bytes let through since. A batch that would leave less than the job keeps
 * is refused (measured afresh first) with an error the pipeline takes for a
 * full destination (see `isDestinationFull`): the job pauses exactly as for
 * a full disk (below: one ERROR line, one file tried every 15 s and
 * refused here without being sent while there is still no room) and resumes
 * by itself once there is. A measurement that fails lets the batch go (the
 * transfer itself then says what is wrong).
 *
 * The watch folder's disk is looked at when the job starts and every
 * {@linkcode WATCH_DISK_CHECK_MS}: with less free than the job keeps, one
 * WARN line says so, and one INFO line when it has room again.
 *
 * A job paused because its destination is full, or cannot be reached now (the
 * host, the connection, a share that is not mounted). While paused, files wait in
 * the queue without counting attempts; every `probeEveryMs` one file is sent
 * as a probe (the first to a destination that cannot be reached sooner, after
 * `firstProbeMs`). When it arrives the job recovers step by step: 2, 4, 8 ... files
 * may be on their way at once (a destination with room for a few files only
 * must not take a whole batch), and the pause ends when the job is back to
 * full speed, never on the probe alone while other files wait. A probe that
 * fails as no other file would (a folder the login may not write, a name the
 * server refuses) says nothing of the destination: another file is the probe
 * at once, and with none left the pause ends: a host back up whose waiting
 * files all fail so is not held as unreachable until a new file arrives. A
 * file that becomes ready while the job waits for room, smaller than every file
 * refused for room in this pause, is the probe at once ({@linkcode DestinationPause.offer}).
 * Running out of space again meanwhile goes back to probing, within the same
 * pause: a full destination is said once, not per file or per probe.
 *
 * ```
 *  running --full--> probe scheduled --time--> probe due --taken--> probing --arrived--> recovering
 *     ^                    ^    ^                                     |                    |   |
 *     |                    |    +------- full or unreachable ---------+                    |   |
 *     |                    +--------------------------- full ------------------------------+   |
 *     +----------------------------------- full speed reached ---------------------------------+
 * ```
 *
 * @module
 */
import { formatBytes } from "../config/sizes.ts";
import type { JobConfig } from "../config/types.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import {
  bytesToKeep,
  type DiskSpace,
  type FreeSpaceRule,
  localDiskSpace,
  parseFreeSpace,
} from "../config/free_space.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import { type Clock, systemClock } from "./retry_timer.ts";

/** The room a full destination's probe needs: its own bytes. */
const NOTHING_KEPT: FreeSpaceRule = { bytes: 0 };

/** How long a measurement of the destination is used. */
export const SPACE_CACHE_MS = 5_000;
/** A refusal measures again unless the measurement is younger than this. */
const REMEASURE_AFTER_MS = 500;
/** How often the watch folder's disk is looked at. */
export const WATCH_DISK_CHECK_MS = 60_000;

/** Options of {@linkcode SpaceGuard}. */
export interface SpaceGuardOptions {
  job: JobConfig;
  /** The destination, for log lines. */
  target: string;
  /** The destination's space; absent when the method cannot tell (ftp). */
  measure?: (signal: AbortSignal) => Promise<DiskSpace | null>;
  /** Aborted when the job stops. */
  signal: AbortSignal;
  /** Whether the watch folder's disk is looked at again after the start. */
  repeatWatchCheck: boolean;
  /** @default WATCH_DISK_CHECK_MS */
  watchCheckMs?: number;
}

/** The room checks of one job; see the module doc. */
export class SpaceGuard {
  #options: SpaceGuardOptions;
  #rule: FreeSpaceRule | null;
  /** The last measurement, and when (`performance.now()`). */
  #measured: { atMs: number; space: DiskSpace } | null = null;
  /** Bytes let through since the measurement. */
  #spent = 0;
  #measuring: Promise<DiskSpace | null> | null = null;
  #saidUnknown = false;
  #watchLow = false;
  #watchTimer: ReturnType<typeof setInterval> | undefined;
  #log: Logger;

  constructor(options: SpaceGuardOptions) {
    this.#log = jobLogger("pipeline", options.job.name);
    this.#options = options;
    this.#rule = parseFreeSpace(options.job.min_free_space) ?? null;
  }

  /** Say what is not checked, and start looking at the watch folder's disk. */
  start(): void {
    if (this.#rule === null) return;
    const { job } = this.#options;
    if (!this.#options.measure) {
      this.#log.warn(
        "min_free_space of job {job} is not checked at the destination: the {method} method cannot ask it for free space",
        { method: job.transfer_method },
      );
    }
    void this.#checkWatchDisk();
    if (this.#options.repeatWatchCheck) {
      this.#watchTimer = setInterval(
        () => void this.#checkWatchDisk(),
        this.#options.watchCheckMs ?? WATCH_DISK_CHECK_MS,
      );
    }
  }

  /**
   * Whether `bytes` more may be sent now: within `min_free_space`, and, while
   * the destination is paused as `full`, within the room it has (a probe that
   * cannot fit is refused unsent: no large file written and removed again at
   * every probe). `files`: how many files the `bytes` are, for the words.
   *
   * @returns `null` to go ahead, else why not (the words of a full destination's error)
   */
  async admit(bytes: number, full = false, files = 1): Promise<string | null> {
    const rule = this.#rule ?? (full ? NOTHING_KEPT : null);
    if (rule === null || !this.#options.measure) return null;
    let space = await this.#current(false);
    if (space === null) return null;
    if (
      !this.#fits(rule, space, bytes) &&
      performance.now() - this.#measured!.atMs >= REMEASURE_AFTER_MS
    ) {
      // The estimate may be short (a batch that failed, files removed there since).
      space = await this.#current(true);
      if (space === null) return null;
    }
    if (this.#fits(rule, space, bytes)) {
      this.#spent += bytes;
      return null;
    }
    const free = `${formatBytes(space.availableBytes - this.#spent)} free and ${
      formatBytes(bytes)
    } to send${files > 1 ? ` in ${files} files` : ""}`;
    if (rule === NOTHING_KEPT) return `no space left: ${free}`;
    const share = "percent" in rule ? ` (${rule.percent}% of the file system)` : "";
    return `${free}, but min_free_space keeps ${
      formatBytes(bytesToKeep(rule, space.totalBytes))
    }${share} free`;
  }

  /** Stop looking at the watch folder's disk. */
  close(): void {
    clearInterval(this.#watchTimer);
    this.#watchTimer = undefined;
  }

  #fits(rule: FreeSpaceRule, space: DiskSpace, bytes: number): boolean {
    return space.availableBytes - this.#spent - bytes >= bytesToKeep(rule, space.totalBytes);
  }

  /** The last measurement while it is fresh (unless `fresh`), else a new one. */
  async #current(fresh: boolean): Promise<DiskSpace | null> {
    const measured = this.#measured;
    // The monotonic clock: a wall clock set back (NTP) must not keep a measurement for as long.
    const age = measured ? performance.now() - measured.atMs : Infinity;
    if (!fresh && measured && age < SPACE_CACHE_MS) return measured.space;
    this.#measuring ??= this.#measure().finally(() => this.#measuring = null);
    return await this.#measuring;
  }

  async #measure(): Promise<DiskSpace | null> {
    const { target, signal } = this.#options;
    try {
      const space = await this.#options.measure!(signal);
      if (space !== null) {
        this.#measured = { atMs: performance.now(), space };
        this.#spent = 0;
      } else if (!this.#saidUnknown && this.#rule !== null) {
        this.#saidUnknown = true;
        this.#log.warn(
          "Cannot tell the free space at {target}: min_free_space of job {job} is not checked",
          {
            target,
          },
        );
      }
      return space;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      this.#log.debug("Cannot measure the free space at {target}: {reason}", {
        target,
        reason: error instanceof Error ? error.message : String(error),
      });
      return null;
    }
  }

  /** Warn once when the watch folder's disk has less free than the job keeps. */
  async #checkWatchDisk(): Promise<void> {
    const { job } = this.#options;
    const space = await localDiskSpace(job.watch_path);
    if (space === null || this.#rule === null) return;
    const keep = bytesToKeep(this.#rule, space.totalBytes);
    const low = space.availableBytes < keep;
    const fields = {
      path: job.watch_path,
      free: formatBytes(space.availableBytes),
      keep: formatBytes(keep),
    };
    if (low && !this.#watchLow) {
      this.#log.warn(
        "The disk of the watch folder {path} is running low: {free} free, less than the {keep} min_free_space keeps; free space there before the instrument cannot write",
        fields,
      );
    } else if (!low && this.#watchLow) {
      this.#log.info("The disk of the watch folder {path} has room again: {free} free", fields);
    }
    this.#watchLow = low;
  }
}

/** How often a paused job tries one file. */
export const FULL_PROBE_MS = 15_000;

type State = "running" | "scheduled" | "due" | "probing" | "recovering";

/** Options of {@linkcode DestinationPause}. */
export interface DestinationPauseOptions {
  /** Job name and destination, for the two log lines. */
  job: string;
  target: string;
  /** Files on their way at full speed (transfers × batch size). */
  fullSpeed: number;
  /** Called when a probe may start. */
  onProbeDue: () => void;
  /**
   * Called when the pause begins (as `daemon.json` reports it), when its
   * reason changes, and when it ends (`null`).
   */
  onChange?: (pause: JobPause | null) => void;
  /** @default FULL_PROBE_MS */
  probeEveryMs?: number;
  /**
   * When a destination that cannot be reached gets its first probe, if
   * sooner than `probeEveryMs` (the job's `retry_delay_seconds`: a short
   * hiccup does not hold the job for a whole interval).
   */
  firstProbeMs?: number;
  clock?: Clock;
}

/** The pause of one job; see the module doc. */
export class DestinationPause {
  #state: State = "running";
  /** While recovering: how many files may be on their way. */
  #window = 1;
  #options:
    & Required<Omit<DestinationPauseOptions, "onChange">>
    & Pick<DestinationPauseOptions, "onChange">;
  /** Whether the pause is for a full destination (else one that cannot be reached). */
  #full = false;
  /** The pause as last reported (see `onChange`). */
  #reported: JobPause | null = null;
  /** The smallest file refused for room in this pause (see {@linkcode offer}). */
  #refusedBytes = Infinity;
  #cancelTimer: (() => void) | undefined;
  #log: Logger;

  constructor(options: DestinationPauseOptions) {
    this.#log = jobLogger("pipeline", options.job);
    const probeEveryMs = options.probeEveryMs ?? FULL_PROBE_MS;
    this.#options = {
      ...options,
      probeEveryMs,
      firstProbeMs: Math.min(options.firstProbeMs ?? probeEveryMs, probeEveryMs),
      clock: options.clock ?? systemClock,
    };
  }

  /** Whether the job is paused (probing or recovering). */
  get paused(): boolean {
    return this.#state !== "running";
  }

  /** Whether the job is paused because its destination is full. */
  get full(): boolean {
    return this.paused && this.#full;
  }

  /**
   * How many more files may start now, with `inFlight` on their way
   * (`Infinity` when running). A due probe counts 1: start it with
   * {@linkcode started}.
   */
  room(inFlight: number): number {
    switch (this.#state) {
      case "running":
        return Infinity;
      case "due":
        return 1;
      case "recovering":
        return Math.max(0, this.#window - inFlight);
      default:
        return 0;
    }
  }

  /** A batch starts. Returns whether it is the probe. */
  started(): boolean {
    if (this.#state !== "due") return false;
    this.#state = "probing";
    return true;
  }

  /**
   * The destination is full (`full`: a file of `bytes` found no room), or
   * cannot be reached now (`reason`: the transport's words). Returns whether
   * this began the pause (or, for one that cannot be reached, one anew while
   * recovering), which is logged once, at ERROR.
   */
  pause(reason: string, full: boolean, bytes = 0): boolean {
    // Unreachable again while recovering, after files arrived ("back"): a pause of its own.
    const began = this.#state === "running" || (this.#state === "recovering" && !full);
    if (this.#state === "running") this.#refusedBytes = Infinity;
    if (full) this.#refusedBytes = Math.min(this.#refusedBytes, bytes);
    const { job, target, probeEveryMs, firstProbeMs } = this.#options;
    if (began || this.#state === "probing" || this.#state === "recovering") {
      this.#schedule(began && !full ? firstProbeMs : probeEveryMs);
    }
    this.#full = full;
    const state = full ? "destination full" : "destination unreachable";
    if (!began) this.#stillDown(reason, state);
    if (began) {
      this.#log.error(
        full
          ? "The destination {target} is full: {reason}. Job {job} pauses; one file is tried every {seconds} s, and sending resumes as soon as one arrives"
          : "The destination {target} cannot be reached: {reason}. Job {job} pauses (no file uses up its retries meanwhile); one file is tried in {first} s, then every {seconds} s, and sending resumes as soon as one arrives",
        { job, target, reason, seconds: probeEveryMs / 1000, first: firstProbeMs / 1000 },
      );
      this.#report({ state, since: new Date(this.#options.clock.now()).toISOString(), reason });
    }
    return began;
  }

  /**
   * A file of `bytes` became sendable. While the job waits for room, one
   * smaller than every file refused for room in this pause may fit: it is
   * tried at once, not at the next probe (a file too large for the room left
   * does not hold up smaller ones); `bytes` is asked only then. Returns whether a probe is due
   * now.
   */
  offer(bytes: number | (() => number)): boolean {
    if (this.#state !== "scheduled" || !this.#full) return false;
    if ((typeof bytes === "number" ? bytes : bytes()) >= this.#refusedBytes) return false;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#state = "due";
    return true;
  }

  /**
   * A file failed while paused as no one file would (see `failureScope`):
   * if for another reason than the pause says (a host back up that refuses
   * the login), the pause says that now.
   */
  stillDown(reason: string): void {
    this.#stillDown(reason, this.#reported?.state ?? "destination unreachable");
  }

  #stillDown(reason: string, state: JobPause["state"]): void {
    const was = this.#reported;
    if (was && (was.state !== state || was.reason !== reason)) {
      this.#report({ ...was, state, reason });
    }
  }

  #report(pause: JobPause | null): void {
    this.#reported = pause;
    this.#options.onChange?.(pause);
  }

  /**
   * A batch ended with `arrived` files at the destination; `caughtUp`:
   * nothing else waits to be sent. Returns whether this ended the pause
   * (back to full speed, or nothing else waits), which is logged.
   */
  ended(probe: boolean, arrived: number, caughtUp = false): boolean {
    if (probe && this.#state === "probing") {
      if (arrived === 0) {
        // Failed as no other file would (a full or unreachable destination paused it again,
        // ending the probing): it tells nothing of the destination. Another file is the probe
        // now; with none left, the pause ends and that file waits for its own retry.
        if (caughtUp) return this.#resume();
        this.#state = "due";
        return false;
      }
      // The probe alone does not end the pause (unless nothing else waits): a file that fits
      // in the room a removed copy left says little; the batch after it has to arrive too.
      this.#state = "recovering";
      this.#window = 2;
      return caughtUp ? this.#resume() : false;
    }
    if (this.#state !== "recovering") return false;
    // Caught up: what is left waits for its own retry (a file that fails as no other would).
    if (arrived === 0) return caughtUp ? this.#resume() : false;
    this.#window *= 2;
    if (this.#window < this.#options.fullSpeed && !caughtUp) return false;
    return this.#resume();
  }

  /** Back to full speed: the pause is over. */
  #resume(): true {
    this.#state = "running";
    this.#log.info("The destination {target} takes files again; job {job} resumes", {
      target: this.#options.target,
    });
    this.#report(null);
    return true;
  }

  /** Stop the timer. */
  close(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #schedule(inMs = this.#options.probeEveryMs): void {
    this.#state = "scheduled";
    this.#cancelTimer?.();
    this.#cancelTimer = this.#options.clock.setTimer(() => {
      this.#cancelTimer = undefined;
      this.#state = "due";
      this.#options.onProbeDue();
    }, inMs);
  }
}
