/**
 * `min_free_space`: room a job keeps free.
 *
 * Before a batch is sent, the room at the destination is looked at: a
 * measurement (the transport's `diskSpace`: `statfs` for local, `df` over the
 * shared SSH connection) is kept for {@linkcode SPACE_CACHE_MS}, less the
 * bytes let through since. A batch that would leave less than the job keeps
 * is refused (measured afresh first) with an error the pipeline takes for a
 * full destination (see `isDestinationFull`): the job pauses exactly as for
 * a full disk (`destination_pause.ts`: one ERROR line, one file tried every
 * 15 s and refused here without being sent while there is still no room) and
 * resumes by itself once there is. A measurement that fails lets the batch go (the
 * transfer itself then says what is wrong).
 *
 * The watch folder's disk is looked at when the job starts and every
 * {@linkcode WATCH_DISK_CHECK_MS}: with less free than the job keeps, one
 * WARN line says so, and one INFO line when it has room again.
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

  /**
   * Why a file of `bytes` can never fit at the destination (its whole file system is smaller:
   * the size `statfs` or `df` gives, measured as {@linkcode admit} measures), else `null` (it
   * is not, or the method cannot tell: ftp).
   */
  async neverFits(bytes: number): Promise<string | null> {
    if (!this.#options.measure) return null;
    const space = await this.#current(false);
    if (space === null || space.totalBytes <= 0 || bytes <= space.totalBytes) return null;
    return `it is ${formatBytes(bytes)} (${bytes} bytes), larger than the whole file system ` +
      `at ${this.#options.target} (${formatBytes(space.totalBytes)}, ${space.totalBytes} ` +
      "bytes), so it can never fit there: give the destination a larger file system, or send " +
      "this file another way; other files go on meanwhile";
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
