/**
 * What the stability checker (`stability.ts`) knows of one file under observation (and what a
 * watcher's event tells of it), where it keeps it, and how it looks at the file: a stat that
 * fails otherwise than "not found" (a share's I/O error or stale handle, a folder's permissions
 * being fixed, a share remounting) says nothing of whether the file is there, so the file is not
 * taken as gone: it is looked at again, less often the longer it lasts (from the window,
 * doubling, up to a minute or the window), and said at the first failure, then at most hourly
 * while it lasts.
 *
 * @module
 */
import type { FitsStructure } from "../layout/fits_structure.ts";
import { isGoneError } from "./file_version.ts";

/** What kind of activity was seen for a file. */
export type Activity =
  /** Created, written, renamed in (where closes are not told), or changed as a poll saw it. */
  | "changed"
  /** Renamed or moved in, alone or in its folder (Linux, which tells closes): put there whole. */
  | "moved"
  /** Found by a scan as it was left: its mtime may say since when. */
  | "found"
  /** Written, as told by a watcher that also tells the close (Linux): open until "closed". */
  | "written"
  /** Closed by a writer (close-after-write). */
  | "closed";

/**
 * What a watcher's event of kind `kind` tells of a file, where the watcher
 * tells closes (`closesTold`: Linux): a close-after-write, a write (its
 * writer has it open until the close), a rename or move into the folder, or
 * a change no close follows (made as a link).
 */
export function activityOf(kind: Deno.FsEvent["kind"], closesTold: boolean): Activity {
  if (kind === "access") return "closed";
  if (kind === "rename" && closesTold) return "moved";
  return kind === "modify" && closesTold ? "written" : "changed";
}

/**
 * The observations of a `StabilityChecker`, by path: what holds them (a `Map` will do). The
 * checker alone changes an observation.
 */
export interface ObservationStore {
  get(path: string): Observation | undefined;
  set(path: string, observation: Observation): void;
  delete(path: string): void;
  values(): Iterable<Observation>;
  clear(): void;
}

/** What the checker knows of one file under observation (its own to change). */
export interface Observation {
  size: number;
  mtimeMs: number;
  /** Last change of size/mtime or last event (performance.now() ms). */
  lastActivityMs: number;
  /** The latest activity was a close, and nothing changed since. */
  closed: boolean;
  /** Its writer has it open: written (as told by a watcher that tells closes), not closed since. */
  open?: boolean;
  /** Renamed or moved in (Linux), not written since: its writer is done with it. */
  movedIn?: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** When `timer` fires (performance.now() ms). */
  dueMs: number;
  /** The structure last read (valid while size and mtime match). */
  structure: FitsStructure | undefined;
  /** Whether `onIncomplete` was called for it. */
  saidIncomplete?: boolean;
  /** An event, a poll or a check saw it change: its mtime says nothing of how long it is quiet. */
  told?: boolean;
  /** Its last look failed otherwise than "not found" (see {@linkcode lookAt}). */
  unreadable?: Unreadable;
}

/** A file that cannot be looked at for now (performance.now() ms). */
export interface Unreadable {
  /** Since the first failed look. */
  sinceMs: number;
  /** When it was last said. */
  saidMs: number;
  /** The wait before the next look. */
  waitMs: number;
}

/** A file that cannot be looked at is said again at most this often while it lasts. */
export const UNREADABLE_SAID_EVERY_MS = 3_600_000;

/** The longest wait between two looks at a file that cannot be looked at (unless the window's). */
const UNREADABLE_MOST_WAIT_MS = 60_000;

/** The shortest wait before looking again at a file that cannot be looked at. */
const UNREADABLE_LEAST_WAIT_MS = 1000;

/** How many of the files under observation in `store` cannot be looked at now. */
export function unreadableCount(store: ObservationStore): number {
  let count = 0;
  for (const observation of store.values()) if (observation.unreadable) count++;
  return count;
}

/**
 * Events were lost (a queue overflowed) before `beforeMs` (performance.now() ms): a file seen
 * written before then and not closed since may have had its close among them, and a lost close
 * must not hold a file. It is no longer taken as open: the window (or its FITS structure) decides,
 * as for a file a scan found; a write told later marks it open again. @returns how many
 */
export function forgetOpen(store: ObservationStore, beforeMs: number): number {
  let count = 0;
  for (const observation of store.values()) {
    if (observation.open !== true || observation.lastActivityMs >= beforeMs) continue;
    observation.open = false;
    count++;
  }
  return count;
}

/** What a look at a file found: its stat, nothing there, or an error that says neither. */
export type Look = Deno.FileInfo | "gone" | Error;

/** Stat `path` (synchronous, through a link); "gone" when nothing, or no file, is there. */
export function lookAt(path: string): Look {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (isGoneError(error)) return "gone";
    return error instanceof Error ? error : new Error(String(error));
  }
  return info.isFile ? info : "gone";
}

/**
 * A look at the file of `entry` failed (not "not found"): notes it, and returns whether to say
 * it now (the first failure, or an hour since it was last said).
 */
export function lookFailed(entry: Observation, windowMs: number, nowMs: number): boolean {
  const state = entry.unreadable;
  if (state === undefined) {
    const waitMs = Math.max(windowMs, UNREADABLE_LEAST_WAIT_MS);
    entry.unreadable = { sinceMs: nowMs, saidMs: nowMs, waitMs };
    return true;
  }
  state.waitMs = Math.min(state.waitMs * 2, Math.max(windowMs, UNREADABLE_MOST_WAIT_MS));
  if (nowMs - state.saidMs < UNREADABLE_SAID_EVERY_MS) return false;
  state.saidMs = nowMs;
  return true;
}
