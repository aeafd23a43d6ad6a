/**
 * Why an entry of a watch folder is not sent, and a log that says so once per
 * path, with bounded memory.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { basename, dirname } from "node:path";
import { logger } from "../log/logging.ts";

/** How loudly a skip is logged: `none` is never logged (a folder, a vanished file). */
export type SkipLevel = "none" | "debug" | "info" | "error";

/** Why an entry is not sent. */
export interface Skip {
  /** Short kind, the once-per-path key: `hidden`, `excluded`, `link`, `special`, … */
  code: string;
  /** For people: "matches exclude pattern calib", "FIFO", … */
  reason: string;
  level: SkipLevel;
  /** What a symbolic link points to, as stored in the link. */
  target?: string;
}

/** Most paths remembered; the oldest is forgotten first (and logged again if skipped again). */
export const SKIP_LOG_CAPACITY = 10_000;

/**
 * Logs `Skipped {path}: {reason}` once per path and kind of skip: links,
 * special files and pattern rules at INFO, names that cannot be opened at
 * ERROR, hidden names and temporary files at debug (`-v`). Remembers at most `capacity` paths (least
 * recently logged forgotten first).
 */
export class SkipLog {
  #seen = new Map<string, true>();
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

  /**
   * Log that `path` is skipped, unless this path was already logged for
   * the same `skip.code`.
   *
   * @param fields extra log properties (e.g. `job`)
   * @returns whether a line was written
   */
  skipped(path: string, skip: Skip, fields: Record<string, unknown> = {}): boolean {
    if (skip.level === "none" || !this.#first(`${skip.code}\0${path}`)) return false;
    const properties = {
      ...fields,
      path,
      reason: skip.reason,
      ...(skip.target === undefined ? {} : { target: skip.target }),
    };
    if (skip.code === "name") {
      // The path holds U+FFFD where the name had bytes that are not UTF-8: show it escaped.
      this.#log[skip.level]("Cannot send {name} in folder {folder}: {reason}", {
        ...properties,
        folder: dirname(path),
        name: escapeName(basename(path)),
      });
      return true;
    }
    const message = skip.level === "error"
      ? "Cannot send {path}: {reason}"
      : "Skipped {path}: {reason}";
    this.#log[skip.level](message, properties);
    return true;
  }

  /** Log once (INFO) that the link at `path` is followed to `target`. */
  followed(path: string, target: string, policy: string, fields: Record<string, unknown> = {}) {
    if (!this.#first(`followed\0${path}\0${target}`)) return;
    this.#log.info("Following symbolic link {path} -> {target} (symlinks: {policy})", {
      ...fields,
      path,
      target,
      policy,
    });
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

/** Escape a name for a log line or a listing: quotes, control characters and U+FFFD as `\u…`. */
export function escapeName(name: string): string {
  return JSON.stringify(name).slice(1, -1).replaceAll("\uFFFD", "\\ufffd");
}

/**
 * `path` for a listing: its last part escaped (see {@linkcode escapeName}) when
 * it holds control characters or bytes that were not UTF-8, otherwise as is.
 */
export function readablePath(path: string): string {
  const name = basename(path);
  // deno-lint-ignore no-control-regex
  if (!/[\u0000-\u001f\u007f\uFFFD]/.test(name)) return path;
  return path.slice(0, path.length - name.length) + escapeName(name);
}
