/**
 * Finding files whose events were lost. `Deno.watchFs` passes events through
 * a small channel and drops, unreported, what does not fit; the kernel drops
 * events when its queue (`/proc/sys/fs/inotify/max_queued_events`) is full,
 * and folders created meanwhile then get no watch. A burst of thousands of
 * files loses events both ways.
 *
 * So every folder that had events is read again once the watcher has been
 * quiet for a moment ({@linkcode SAFETY_QUIET_MS}; during a long stream of
 * events at least every {@linkcode SAFETY_MAX_DELAY_MS}), together with its
 * subfolders that changed since (a folder's mtime moves when a file is
 * created in it). Reading a folder is cheap, and files already sent are not
 * even looked at: this looks for new files (a file rewritten after it was sent
 * whose events were all lost waits for the periodic rescan). New files no event
 * told of say that events were lost, maybe closes too (`onLost`): the files
 * seen written and not closed since must not wait for a close that never
 * comes. Said at once, and again at the next re-read after the watcher was
 * quiet: events queued ahead of the loss (a write among them) may be handled
 * after the re-read that found it, during a long burst.
 *
 * @module
 */
import { logger, quoteIfUnsafe } from "../log/logging.ts";
import type { FileFilter } from "./file_filter.ts";
import type { Skip } from "./skip_log.ts";
import { absolutePath } from "./file_version.ts";
import { type FoundFile, scanFolderBatches } from "./scan.ts";
import { birthOf, NewFolders, writtenAsCreated } from "./new_folders.ts";

/** Quiet time after the last event before the folders that had events are read again. */
export const SAFETY_QUIET_MS = 1000;

/** During a long stream of events, the folders that had events are read at least this often. */
export const SAFETY_MAX_DELAY_MS = 10_000;

/** Tolerance when comparing folder mtimes with event times (coarse or stepped clocks). */
const MTIME_SLACK_MS = 2000;

/**
 * A file written longer ago than this should have sent its events by now,
 * even under load: if it did not, its folder may have no watch.
 */
const EVENT_LATENCY_MS = 2000;

/** The folders that had events since they were last read, each with the time of its first event. */
export class DirtyFolders {
  #folders = new Map<string, number>();
  #onDue: (quiet: boolean) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #firstAt = 0;

  /**
   * @param onDue called when the folders should be read: the watcher went quiet (`quiet`), or
   *   events kept coming for {@linkcode SAFETY_MAX_DELAY_MS}
   */
  constructor(onDue: (quiet: boolean) => void) {
    this.#onDue = onDue;
  }

  /** Whether no folder waits to be read. */
  get empty(): boolean {
    return this.#folders.size === 0;
  }

  /** Folders (relative, `""` = the root) had events just now. */
  mark(folderRels: Iterable<string>): void {
    const now = Date.now();
    if (this.#folders.size === 0) this.#firstAt = now;
    for (const folder of folderRels) {
      if (!this.#folders.has(folder)) this.#folders.set(folder, now);
    }
    if (this.#folders.size === 0) return;
    clearTimeout(this.#timer);
    const quiet = now + SAFETY_QUIET_MS <= this.#firstAt + SAFETY_MAX_DELAY_MS;
    const dueAt = quiet ? now + SAFETY_QUIET_MS : this.#firstAt + SAFETY_MAX_DELAY_MS;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#onDue(quiet);
    }, Math.max(0, dueAt - now));
  }

  /** The folders to read now (and forget them). */
  take(): Map<string, number> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const folders = this.#folders;
    this.#folders = new Map();
    return folders;
  }

  /** Stop the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#folders.clear();
  }
}

/** What {@linkcode scanDirtyFolders} found. */
export interface DirtyScanResult {
  /** Files that were new or changed (their events were lost, or are still on their way). */
  found: number;
  /** Of those, how many were written long enough ago that their events should have come. */
  overdue: number;
  /** The others (relative paths): just written, so their events may still come. */
  fresh: string[];
  /** Folders without events but with new files written a while ago: their watch may be missing. */
  unwatched: string[];
  /**
   * New files (relative paths) no event told of, in folders made during the burst and written as
   * each was made (see `writtenAsCreated`), by folder: maybe written before the watch covered
   * their folder, as is normal for a folder made and written into at once; not counted above.
   * Whether the folder's watch is in place is for `NewFolders` to tell.
   */
  newFolders?: Map<string, string[]>;
  /** The folders (relative) of the files counted in `overdue` and `fresh`. */
  missedIn?: string[];
}

/** A folder a re-read leaves alone: read on its own, or unchanged since the burst (not logged). */
const NOT_DIRTY: Skip = { code: "not-dirty", reason: "no change since the burst", level: "none" };

/**
 * Read every folder in `dirty` and, below it, the subfolders whose mtime is
 * not older than that folder's first event; report the files through
 * `onFound` (which returns those that were new or changed); what the files
 * found say about lost events is for {@linkcode MissedFiles}.
 */
export async function scanDirtyFolders(
  dirty: Map<string, number>,
  options: {
    /** The watch folder. */
    root: string;
    filter: FileFilter;
    /** Report found files; returns those that were new or changed. */
    onFound: (files: FoundFile[]) => FoundFile[];
    onError: (path: string, error: unknown) => void;
    isClosed: () => boolean;
    forgottenUntil?: ForgottenUntil;
  },
): Promise<DirtyScanResult> {
  const { root, filter, onFound, onError } = options;
  const result: DirtyScanResult = {
    found: 0,
    overdue: 0,
    fresh: [],
    unwatched: [],
    newFolders: new Map(),
    missedIn: [],
  };
  const silentBefore = Date.now() - EVENT_LATENCY_MS;
  const forgottenUntil = options.forgottenUntil?.() ?? -Infinity;
  for (const [startRel, firstEventAt] of dirty) {
    const since = firstEventAt - MTIME_SLACK_MS;
    const changedOnly: FileFilter = {
      ...filter,
      // A folder with events of its own is read on its own; one unchanged since is not entered.
      dirSkip: (rel) =>
        filter.dirSkip(rel) ??
          (dirty.has(rel) || !changedSince(root, rel, since) ? NOT_DIRTY : null),
    };
    for await (const batch of scanFolderBatches(root, changedOnly, { startRel, onError })) {
      if (options.isClosed()) return result;
      const found = onFound(batch);
      result.found += found.length;
      // On a busy machine a fresh file's event may still be on its way.
      let late = 0;
      const missedBefore = result.overdue + result.fresh.length;
      const folder = parentOf(batch[0].relPath); // A batch is one folder's files.
      // The watch folder itself is watched from the start: never a new folder.
      const bornMs = found.length > 0 && folder !== "" ? birthOf(absolutePath(root, folder)) : null;
      for (const file of found) {
        const mtimeMs = mtimeOf(file.path);
        if (mtimeMs <= forgottenUntil) continue; // Known before the ledger was rebuilt: no sign.
        if (writtenAsCreated(mtimeMs, bornMs, since, EVENT_LATENCY_MS)) {
          const files = result.newFolders!.get(folder);
          if (files) files.push(file.relPath);
          else result.newFolders!.set(folder, [file.relPath]);
        } else if (mtimeMs < silentBefore) late++;
        else result.fresh.push(file.relPath);
      }
      const missed = result.overdue + late + result.fresh.length > missedBefore;
      if (missed && !result.missedIn!.includes(folder)) result.missedIn!.push(folder);
      result.overdue += late;
      if (!dirty.has(folder) && !result.unwatched.includes(folder) && late > 0) {
        result.unwatched.push(folder);
      }
    }
  }
  return result;
}

/**
 * Says when reading folders again found files no event told of: at once for
 * files written long enough ago that their events should have come, and for
 * the freshly written ones once their events had that long to come and did
 * not (a busy machine delivers events late; a late event is not a lost one).
 * One warning per re-read.
 */
export class MissedFiles {
  #job: string;
  #root: string;
  #latencyMs: number;
  #onLost: (() => void) | undefined;
  /** Fresh files found by a re-read whose events have not come yet (relative paths). */
  #awaiting = new Set<string>();
  #timers = new Set<ReturnType<typeof setTimeout>>();

  /** @param onLost events were lost (files were missed), said with the warning */
  constructor(job: string, root: string, latencyMs = EVENT_LATENCY_MS, onLost?: () => void) {
    this.#job = job;
    this.#root = root;
    this.#latencyMs = latencyMs;
    this.#onLost = onLost;
  }

  /** A re-read of `folders` (relative) found `result`. */
  found(result: DirtyScanResult, folders: string[]): void {
    if (result.overdue === 0 && result.fresh.length === 0) return;
    const folderPaths = folders.map((rel) => absolutePath(this.#root, rel));
    const fresh = result.fresh.filter((rel) => !this.#awaiting.has(rel));
    for (const rel of fresh) this.#awaiting.add(rel);
    if (fresh.length === 0) {
      this.#warn(result.overdue, folderPaths);
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      let missed = result.overdue;
      for (const rel of fresh) if (this.#awaiting.delete(rel)) missed++;
      this.#warn(missed, folderPaths);
    }, this.#latencyMs);
    this.#timers.add(timer);
  }

  /** An event told of the file `rel` (relative). */
  heard(rel: string): void {
    this.#awaiting.delete(rel);
  }

  /** Stop the timers. */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#awaiting.clear();
  }

  #warn(count: number, folders: string[]): void {
    if (count === 0) return;
    logger("watch").warn(
      "The watcher missed {count} new file(s) in {inFolders}; found them by reading the folders again",
      { job: this.#job, count, ...folderWords(folders) },
    );
    this.#onLost?.();
  }
}

/**
 * The moment the ledger was started anew (ms), if it was: files last written before it were known
 * and forgotten, so a re-read finding them says nothing of lost events.
 */
export type ForgottenUntil = () => number | undefined;

/** Options of {@linkcode LostEvents}. */
export interface LostEventsOptions {
  /** Job name, for log lines. */
  job: string;
  /** The watch folder. */
  root: string;
  filter: FileFilter;
  /** Report found files; returns those that were new or changed. */
  onFound: (files: FoundFile[]) => FoundFile[];
  onError: (path: string, error: unknown) => void;
  /** Whether a read is left out now (a rewatch scans everything anyway). */
  skip: () => boolean;
  /** Whether the folder is polled: files without events are expected then. */
  polled: () => boolean;
  /** New files in `folders` (absolute) came without any event: their watch may be missing. */
  onUnwatched: (folders: string[]) => void;
  /** See {@linkcode ForgottenUntil}. */
  forgottenUntil?: ForgottenUntil;
  /**
   * Events were lost before `beforeMs` (performance.now() ms), closes maybe among them: a re-read
   * found new files no event told of (told at once, and again with the next re-read after the
   * watcher was quiet), or the watcher said so.
   */
  onLost?: (beforeMs: number) => void;
}

/**
 * The watch session's search for lost events: the folders that had events
 * ({@linkcode DirtyFolders}) are read again, one read after the other, and
 * what the reads found that no event told of is said ({@linkcode MissedFiles}).
 */
export class LostEvents {
  #options: LostEventsOptions;
  #dirty = new DirtyFolders((quiet) => this.#read(quiet));
  #reads: Promise<void> = Promise.resolve();
  #missed: MissedFiles;
  #closed = false;
  /** A loss was found: events queued ahead of it may still be handled (see the module doc). */
  #lossUnsettled = false;
  #newFolders: NewFolders;

  constructor(options: LostEventsOptions) {
    this.#options = options;
    this.#missed = new MissedFiles(options.job, options.root, undefined, () => {
      this.#lossUnsettled = true;
      options.onLost?.(performance.now());
    });
    this.#newFolders = new NewFolders({
      ...options,
      latencyMs: EVENT_LATENCY_MS,
      skip: () => this.#closed || options.skip(),
      onSilent: (folders, count) => {
        this.#missed.found({ found: count, overdue: count, fresh: [], unwatched: [] }, folders);
        options.onUnwatched(folders.map((rel) => absolutePath(options.root, rel)));
      },
    });
  }

  /** Folders (relative, `""` = the root) had events just now. */
  mark(folderRels: Iterable<string>): void {
    if (!this.#closed) this.#dirty.mark(folderRels);
  }

  /**
   * An event told of `rel` (relative): its folder is watched; and so is `rel`, where it
   * `appeared` as a folder of the job's (made or moved in).
   */
  heard(rel: string, appeared = false): void {
    this.#missed.heard(rel);
    this.#newFolders.told(parentOf(rel));
    const { filter } = this.#options;
    if (appeared && !filter.includesFile(rel) && filter.includesDir(rel)) {
      this.#newFolders.told(rel);
    }
  }

  /** Stop the timers; no read starts any more. */
  close(): void {
    this.#closed = true;
    this.#dirty.close();
    this.#missed.close();
    this.#newFolders.close();
  }

  /** Read the folders with events again (`quiet`: the watcher was quiet for a moment first). */
  #read(quiet: boolean): void {
    this.#reads = this.#reads.then(async () => {
      const dirty = this.#dirty.take(), startedMs = performance.now();
      if (this.#closed || this.#options.skip()) return;
      const result = await scanDirtyFolders(dirty, {
        ...this.#options,
        isClosed: () => this.#closed,
      });
      if (this.#closed || this.#options.polled()) return;
      // Everything queued ahead of a loss found before was handled before this read began.
      if (quiet && this.#lossUnsettled) {
        this.#lossUnsettled = false;
        this.#options.onLost?.(startedMs);
      }
      this.#missed.found(result, result.missedIn ?? [...dirty.keys()]);
      if (result.newFolders) this.#newFolders.settle(result.newFolders, dirty);
      if (result.unwatched.length === 0) return;
      this.#options.onUnwatched(
        result.unwatched.map((rel) => absolutePath(this.#options.root, rel)),
      );
    }).catch((error) => {
      if (this.#closed) return;
      logger("watch").error("Reading the folders with events again failed: {error}", {
        job: this.#options.job,
        error: String(error),
      });
    });
  }
}

/** How many folders a line names before it says how many more there are. */
export const FOLDERS_NAMED = 3;

/**
 * Folders (absolute) as a line says them: the one folder, or how many and the first
 * {@linkcode FOLDERS_NAMED} (`50 folders: /w/f07, /w/f08, /w/f09 and 47 more`), each quoted where
 * it holds a control character; with every folder and their count as properties (the JSON log
 * has them all).
 */
export function folderWords(
  folders: string[],
): { inFolders: string; folders: string[]; folderCount: number } {
  const named = folders.slice(0, FOLDERS_NAMED).map(quoteIfUnsafe).join(", ");
  const more = folders.length > FOLDERS_NAMED ? ` and ${folders.length - FOLDERS_NAMED} more` : "";
  const inFolders = folders.length === 1 ? named : `${folders.length} folders: ${named}${more}`;
  return { inFolders, folders, folderCount: folders.length };
}

/** The folder a relative path is in (`""` = the root). */
export function parentOf(relPath: string): string {
  const slash = relPath.lastIndexOf("/");
  return slash < 0 ? "" : relPath.slice(0, slash);
}

/** A file's mtime in ms; `Infinity` where it has none or cannot be looked at (taken as fresh). */
function mtimeOf(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? Infinity;
  } catch {
    return Infinity;
  }
}

/** Whether the folder `rel` was changed at `sinceMs` or later (its mtime; an unreadable one: no). */
function changedSince(root: string, rel: string, sinceMs: number): boolean {
  try {
    const info = Deno.statSync(absolutePath(root, rel));
    return (info.mtime?.getTime() ?? Infinity) >= sinceMs;
  } catch {
    return false;
  }
}
