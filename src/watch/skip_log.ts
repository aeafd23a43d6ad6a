/**
 * Why an entry of a watch folder is not sent, and the log that says so once per path, with
 * bounded memory.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { basename, dirname } from "node:path";
import { logger } from "../log/logging.ts";
import { escapeName } from "./readable_names.ts";

/** How loudly a skip is logged: `none` is never logged (a folder, a vanished file). */
export type SkipLevel = "none" | "debug" | "info" | "error";

/** Why an entry is not sent. */
export interface Skip {
  /** Short kind, the once-per-path key: `hidden`, `excluded`, `link`, `special`, ... */
  code: string;
  /** For people: "matches exclude pattern calib", "FIFO", ... */
  reason: string;
  level: SkipLevel;
  /** What a symbolic link points to, as stored in the link. */
  target?: string;
}

/** The skips of names a job's patterns leave out. */
const BY_PATTERN = new Set(["unmatched", "excluded"]);

/**
 * Most paths remembered; the oldest is forgotten first (and logged again if skipped again), but
 * for names the patterns leave out, which past it are not logged.
 */
export const SKIP_LOG_CAPACITY = 10_000;

/**
 * Logs `Skipped {path} of job {job}: {reason}` once per path and kind of skip: links,
 * special files and pattern rules at INFO, names that cannot be opened at
 * ERROR, hidden names and temporary files at debug (`-v`). Remembers at most `capacity` paths (least
 * recently logged forgotten first).
 */
export class SkipLog {
  #seen = new Map<string, true>();
  #saidNotOneByOne = false;
  #errorsByJob = new Map<string, number>();
  #capacity: number;
  #log: Logger;

  constructor(options: { capacity?: number; log?: Logger } = {}) {
    this.#capacity = Math.max(1, options.capacity ?? SKIP_LOG_CAPACITY);
    this.#log = options.log ?? logger("watch");
  }

  /** Paths remembered now. */
  get size(): number {
    return this.#seen.size;
  }

  /** Entries said at ERROR so far: files that cannot be sent (a name not UTF-8), unread folders. */
  get errors(): number {
    return [...this.#errorsByJob.values()].reduce((sum, n) => sum + n, 0);
  }

  /** Entries of job `job` said at ERROR so far (see {@linkcode errors}). */
  errorsOf(job: string): number {
    return this.#errorsByJob.get(job) ?? 0;
  }

  /**
   * Log that `path` is skipped, unless this path was already logged for
   * the same `skip.code`.
   *
   * @param fields extra log properties (`job`: the line names it, as other lines of a job do)
   * @returns whether a line was written
   */
  skipped(path: string, skip: Skip, fields: Record<string, unknown> = {}): boolean {
    if (skip.level === "none") return false;
    const key = `${skip.code}\0${path}`;
    // Names the patterns leave out past the memory: not said one by one (else each rescan would
    // forget and say them all again, in a folder of 18,000: 18,000 lines); once, that they are not.
    const full = this.#seen.size >= this.#capacity && !this.#seen.has(key);
    if (full && skip.level === "info" && BY_PATTERN.has(skip.code)) {
      const ofJob = typeof fields.job === "string" ? " of job {job}" : "";
      if (!this.#saidNotOneByOne) {
        this.#log.info(
          `More names${ofJob} that file_patterns or exclude_patterns leave out than the {capacity} remembered: from now on those are not logged one by one (\`image-transfer status\` lists them)`,
          { ...fields, capacity: this.#capacity },
        );
      }
      this.#saidNotOneByOne = true;
      return false;
    }
    if (!this.#first(key)) return false;
    if (skip.level === "error") {
      const job = typeof fields.job === "string" ? fields.job : "";
      this.#errorsByJob.set(job, this.errorsOf(job) + 1);
    }
    const target = skip.target === undefined ? {} : { target: skip.target };
    const properties = { ...fields, path, reason: skip.reason, ...target };
    const ofJob = typeof fields.job === "string" ? " of job {job}" : "";
    if (skip.code === "name") {
      // The path holds U+FFFD where the name had bytes that are not UTF-8: show it escaped.
      this.#log[skip.level](`Cannot send {name} in folder {folder}${ofJob}: {reason}`, {
        ...properties,
        folder: dirname(path),
        name: escapeName(basename(path)),
      });
      return true;
    }
    const message = skip.level === "error"
      ? `Cannot send {path}${ofJob}: {reason}`
      : `Skipped {path}${ofJob}: {reason}`;
    this.#log[skip.level](message, properties);
    return true;
  }

  /** Log once (INFO) that the link at `path` is followed to `target`. */
  followed(path: string, target: string, policy: string, fields: Record<string, unknown> = {}) {
    if (!this.#first(`followed\0${path}\0${target}`)) return;
    const properties = { ...fields, path, target, policy };
    this.#log.info("Following symbolic link {path} -> {target} (symlinks: {policy})", properties);
  }

  /** Jobs a reload renamed (`[from, to]`; two may swap names): their counts go with them. */
  renameJobs(renamed: ReadonlyArray<readonly [from: string, to: string]>): void {
    const counts = new Map(this.#errorsByJob);
    for (const [from] of renamed) counts.delete(from);
    for (const [from, to] of renamed) counts.set(to, this.#errorsByJob.get(from) ?? 0);
    this.#errorsByJob = counts;
  }

  /** Whether `key` is new; remembers it as the most recent either way. */
  #first(key: string): boolean {
    const known = this.#seen.delete(key);
    this.#seen.set(key, true);
    if (this.#seen.size > this.#capacity) {
      this.#seen.delete(this.#seen.keys().next().value!);
    }
    return !known;
  }
}

/** The process-wide skip log: the watcher, the scan and the filter share it, so each path is logged once. */
export const sharedSkipLog: SkipLog = new SkipLog();
