/**
 * The polls of one watch folder, every `poll_interval_seconds` (see
 * `FolderPoller` below for what one poll does), and a share that goes away:
 * before each poll the watch folder itself is checked; a folder that cannot
 * be read (ENOENT, EIO, ENOTCONN, a stale NFS handle...) or a network share
 * that is no longer mounted (its mount point now shows a local file system)
 * is reported once at ERROR and checked again at every poll; once it is back
 * that is said at INFO and the caller looks for the files written meanwhile.
 *
 * Polling a watch folder whose events cannot be trusted (a network or FUSE
 * file system: see `fs_type.ts`). A poll costs one `stat` per folder when
 * nothing changed:
 *
 * - it remembers every folder's mtime and the names of the files the filter
 *   includes in it (from the walk of `scan.ts`);
 * - a folder whose mtime moved (a file was created, renamed or removed in it)
 *   is listed again, and so for a few seconds after each change (coarse
 *   timestamps); its listing is compared by name with what is known: new
 *   files are reported, new folders are walked, vanished ones are forgotten;
 * - files it reported, or that arrived at their destination, during the last
 *   {@linkcode RECENT_MS} (at most the newest {@linkcode MAX_RECENT}) are
 *   `stat`ed at every poll, and reported again when their size or mtime
 *   changed (a writer on the other side still at work, also on a file found
 *   by a scan).
 *
 * Only "not found" (see `isGoneError`) makes it forget a folder or a file: one
 * whose `stat` or listing fails otherwise (an I/O error or a stale handle on a
 * share, a folder's permissions for a while) is kept, and looked at again at
 * the coming polls, so a change made meanwhile is still seen once it can be
 * read. A folder that cannot be listed is said once (`onError`) until it can.
 *
 * A file that changes after that without any name changing in its folder
 * waits for the periodic rescan, as a file whose events were lost does.
 *
 * @module
 */
import { logger } from "../log/logging.ts";
import { answerWithin } from "../config/file_systems.ts";
import { FOLDER_ANSWER_MS } from "./folder_wait.ts";
import type { FileFilter } from "./file_filter.ts";
import { type FileSystemInfo, fileSystemOf, magicOf } from "./fs_type.ts";
import {
  FolderLister,
  type FolderListing,
  type FoundFile,
  scanFolderBatches,
  type ScanOptions,
} from "./scan.ts";
import { absolutePath, isGoneError } from "./file_version.ts";

/** What a scan calls for each folder it lists (see `ScanOptions.onListed`). */
type OnListed = NonNullable<ScanOptions["onListed"]>;

/** Options of {@linkcode PollLoop}. */
export interface PollLoopOptions {
  job: string;
  root: string;
  filter: FileFilter;
  intervalMs: number;
  /** Files that are new or changed since they were last seen. */
  onChanged(files: FoundFile[]): void;
  /**
   * The watch folder is back after it went away: watch it again and scan it,
   * passing `onListed` to the scan (the polls learn the tree from it).
   */
  onBack(onListed: OnListed): Promise<void>;
  onError(path: string, error: unknown): void;
  /** The folder became unavailable, or available again (see {@linkcode PollLoop.unavailable}). */
  onAvailability?(): void;
}

/** See the module doc. */
export class PollLoop {
  #options: PollLoopOptions;
  #log = logger("watch");
  #poller: FolderPoller;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The file system when the polls started (an unmount shows as another one). */
  #fs: FileSystemInfo | undefined;
  /** Why the watch folder cannot be read, while it cannot. */
  #unavailable: string | null = null;
  /** Whether the last poll failed (said once). */
  #failing = false;
  /** The check of the watch folder under way. */
  #pending: Promise<string | null> | undefined;

  constructor(options: PollLoopOptions) {
    this.#options = options;
    this.#poller = new FolderPoller(options);
  }

  /** Why the watch folder cannot be read now (a share that went away), or `null`. */
  get unavailable(): string | null {
    return this.#unavailable;
  }

  /**
   * Forget the tree, to learn it from the scan about to run: pass the result
   * as that scan's `onListed`. Before the first scan (what the scan misses,
   * the first poll finds).
   */
  learnFromScan(): OnListed {
    this.#fs ??= fileSystemOf(this.#options.root);
    this.#poller.forget();
    return this.#poller.listed;
  }

  /**
   * The file `relPath` at `path` arrived at its destination as `size` bytes with mtime `mtimeMs`:
   * it is `stat`ed at the coming polls, so a change in place is seen (see the module doc).
   */
  arrived(path: string, relPath: string, size: number, mtimeMs: number): void {
    this.#poller.remember({ path, relPath }, size, mtimeMs);
  }

  /** Start polling (after the first scan). */
  start(): void {
    if (this.#closed) return;
    this.#schedule();
  }

  /** Stop polling. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.intervalMs);
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    const { job, root } = this.#options;
    try {
      if ((await this.lookNow()) !== null) return;
      if (this.#unavailable !== null) {
        this.#unavailable = null;
        this.#options.onAvailability?.();
        this.#log.info(
          "Watch folder {path} can be read again; looking for the files written meanwhile",
          { job, path: root },
        );
        await this.#options.onBack(this.learnFromScan());
        return;
      }
      if (!this.#poller.knowsRoot) {
        // The folder vanished between the check and a poll, and is there again.
        await this.#options.onBack(this.learnFromScan());
        return;
      }
      const changed = await this.#poller.poll();
      if (!this.#closed && changed.length > 0) this.#options.onChanged(changed);
      this.#failing = false;
    } catch (error) {
      if (this.#closed || this.#failing) return;
      this.#failing = true;
      this.#log.error("Polling {path} failed: {error}; trying again at every poll", {
        job,
        path: root,
        error: String(error),
      });
    } finally {
      this.#schedule();
    }
  }

  /**
   * Why the watch folder cannot be read now, or `null` when it can: a poll's look, also asked at
   * once by others (an attempt that could not read a file of it). A problem found is said once at
   * ERROR and held (`unavailable`) until a poll finds the folder back and has it scanned.
   */
  async lookNow(): Promise<string | null> {
    // Found unreadable and its question still open (a share that hangs): said at once, not waited
    // for again (each file of a batch that failed through it asks).
    if (this.#unavailable !== null && this.#pending !== undefined) return this.#unavailable;
    const problem = await this.#check();
    if (problem === null || this.#closed) return problem;
    const { job, root } = this.#options, was = this.#unavailable;
    this.#unavailable = problem;
    if (was === null) {
      this.#log.error(
        "Cannot read watch folder {path}: {error}; checking it again every {seconds} s",
        { job, path: root, error: problem, seconds: this.#options.intervalMs / 1000 },
      );
      this.#options.onAvailability?.();
    }
    return problem;
  }

  /**
   * Why the watch folder cannot be polled now, or `null` when it can. Asked
   * off the main thread: a dead server behind a hard NFS mount never answers,
   * which counts as a problem after {@linkcode FOLDER_ANSWER_MS} (the question
   * stays open; no second one is asked meanwhile).
   */
  async #check(): Promise<string | null> {
    this.#pending ??= this.#ask().finally(() => this.#pending = undefined);
    const answer = await answerWithin(
      this.#pending.then((problem) => ({ problem })),
      FOLDER_ANSWER_MS,
    );
    return answer === null ? `no answer within ${FOLDER_ANSWER_MS / 1000} s` : answer.problem;
  }

  async #ask(): Promise<string | null> {
    const { root } = this.#options;
    try {
      if (!(await Deno.stat(root)).isDirectory) return "it is not a folder";
      // Readable too (one entry is enough): a poll lists it when it changes.
      for await (const _ of Deno.readDir(root)) break;
      const fs = this.#fs;
      if (fs?.remote && fs.magic !== null && (await magicOf(root)) !== fs.magic) {
        const now = fileSystemOf(root);
        if (!now.remote) {
          const share = fs.source === null ? fs.type : `${fs.type} ${fs.source}`;
          return `the share (${share}) is not mounted there (${now.type} instead)`;
        }
      }
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
}

/** How long after it was first seen or last changed a file is still `stat`ed at every poll. */
export const RECENT_MS = 60_000;

/** At most this many recent files are `stat`ed at every poll (the newest; a burst is cut short). */
export const MAX_RECENT = 1_000;

/** A folder is listed again at every poll for this long after its mtime last moved. */
const RELIST_MS = 3_000;

interface KnownFolder {
  /** The folder's mtime when it was last listed (ms). */
  mtimeMs: number;
  /** When its mtime was last seen to move (performance.now() ms). */
  changedAt: number;
  /** Names (relative paths) of the files the filter includes. */
  files: Set<string>;
  /** Its subfolders that are walked (relative paths). */
  folders: Set<string>;
  /** It could not be looked at or listed (said once, until it can). */
  failing?: boolean;
}

interface RecentFile {
  path: string;
  size: number;
  mtimeMs: number;
  changedAt: number;
}

/** Options of {@linkcode FolderPoller}. */
export interface FolderPollerOptions {
  root: string;
  filter: FileFilter;
  /**
   * A folder below the root cannot be read (not called for the root: the caller checks it);
   * once while it lasts.
   */
  onError(path: string, error: unknown): void;
}

/** One watch folder's poller; see the module doc. */
export class FolderPoller {
  #options: FolderPollerOptions;
  #folders = new Map<string, KnownFolder>();
  #recent = new Map<string, RecentFile>();

  constructor(options: FolderPollerOptions) {
    this.#options = options;
  }

  /** How many folders and files are known. */
  get size(): { folders: number; files: number } {
    let files = 0;
    for (const folder of this.#folders.values()) files += folder.files.size;
    return { folders: this.#folders.size, files };
  }

  /**
   * Learn the whole tree as it is now, reporting nothing. Forgets what was
   * known before. (The watch session learns from its own scan instead: see
   * {@linkcode FolderPoller.forget} and {@linkcode FolderPoller.listed}.)
   */
  async learn(): Promise<void> {
    this.forget();
    const { root, filter, onError } = this.#options;
    const walk = scanFolderBatches(root, filter, { onError, onListed: this.listed });
    for await (const _ of walk) { /* learnt through onListed */ }
  }

  /** Whether the watch folder itself is known (it is forgotten when it vanishes). */
  get knowsRoot(): boolean {
    return this.#folders.has("");
  }

  /** Forget everything known (before learning the tree again). */
  forget(): void {
    this.#folders.clear();
    this.#recent.clear();
  }

  /** A walk listed the folder `rel`, whose mtime was `mtimeMs` just before: learn it. */
  listed = (rel: string, mtimeMs: number, listing: FolderListing): void => {
    this.#folders.set(rel, {
      mtimeMs,
      changedAt: -Infinity,
      files: new Set(listing.files.map((file) => file.relPath)),
      folders: new Set(listing.folders),
    });
  };

  /** Poll once; returns the files that are new or changed since they were last seen. */
  async poll(): Promise<FoundFile[]> {
    const { root, filter } = this.#options;
    const now = performance.now();
    const changed: FoundFile[] = [];
    const lister = new FolderLister(root, filter);
    for (const [rel, known] of [...this.#folders]) {
      if (!this.#folders.has(rel)) continue; // forgotten with a vanished parent
      let mtimeMs: number;
      let listing: FolderListing;
      try {
        mtimeMs = Deno.statSync(absolutePath(root, rel)).mtime?.getTime() ?? 0;
        if (mtimeMs !== known.mtimeMs) known.changedAt = now;
        else if (now - known.changedAt > RELIST_MS && !known.failing) continue;
        listing = lister.list(rel);
      } catch (error) {
        this.#failed(rel, known, error);
        continue;
      }
      known.failing = false;
      known.mtimeMs = mtimeMs;
      const names = new Set<string>();
      for (const file of listing.files) {
        names.add(file.relPath);
        if (!known.files.has(file.relPath)) this.#seen(file, now, changed);
      }
      for (const name of known.files) {
        if (!names.has(name)) this.#recent.delete(name);
      }
      known.files = names;
      const folders = new Set(listing.folders);
      for (const folder of known.folders) {
        if (!folders.has(folder)) this.#forget(folder);
      }
      known.folders = folders;
      for (const folder of listing.folders) {
        if (!this.#folders.has(folder)) await this.#walk(folder, changed);
      }
      await Promise.resolve();
    }
    this.#checkRecent(now, changed);
    return changed;
  }

  /** `stat` the recent files; report those whose size or mtime changed. */
  #checkRecent(now: number, changed: FoundFile[]): void {
    const reported = new Set(changed.map((file) => file.relPath));
    for (const [relPath, file] of this.#recent) {
      let info: Deno.FileInfo;
      try {
        info = Deno.statSync(file.path);
      } catch (error) {
        // Kept while it cannot be looked at: a change meanwhile is seen once it can.
        if (isGoneError(error)) this.#recent.delete(relPath);
        continue;
      }
      const mtimeMs = info.mtime?.getTime() ?? 0;
      if (info.size !== file.size || mtimeMs !== file.mtimeMs) {
        file.size = info.size;
        file.mtimeMs = mtimeMs;
        file.changedAt = now;
        if (!reported.has(relPath)) changed.push({ path: file.path, relPath });
      } else if (now - file.changedAt > RECENT_MS) this.#recent.delete(relPath);
    }
  }

  /** A file not known before: report it and `stat` it at the coming polls. */
  #seen(file: FoundFile, now: number, changed: FoundFile[]): void {
    changed.push(file);
    let size = -1;
    let mtimeMs = -1;
    try {
      const info = Deno.statSync(file.path);
      size = info.size;
      mtimeMs = info.mtime?.getTime() ?? 0;
    } catch {
      // Gone already (the next poll forgets it), or it cannot be looked at now: reported again
      // once it can (its size and mtime unknown so far).
    }
    this.remember(file, size, mtimeMs, now);
  }

  /** `stat` `file` at the coming polls, reporting it once it is no longer `size` and `mtimeMs`. */
  remember(file: FoundFile, size: number, mtimeMs: number, now = performance.now()): void {
    this.#recent.delete(file.relPath);
    this.#recent.set(file.relPath, { path: file.path, size, mtimeMs, changedAt: now });
    if (this.#recent.size > MAX_RECENT) {
      this.#recent.delete(this.#recent.keys().next().value!);
    }
  }

  /** Walk the new folder `start` and everything below it: learn it, and report every file. */
  async #walk(start: string, changed: FoundFile[]): Promise<void> {
    const { root, filter, onError } = this.#options;
    const now = performance.now();
    const onListed = (rel: string, mtimeMs: number, listing: FolderListing) => {
      this.listed(rel, mtimeMs, listing);
      // Listed again at the coming polls (files still arriving).
      this.#folders.get(rel)!.changedAt = now;
    };
    for await (
      const files of scanFolderBatches(root, filter, { startRel: start, onError, onListed })
    ) {
      for (const file of files) this.#seen(file, now, changed);
    }
  }

  /**
   * The folder `rel` could not be looked at or listed: forgotten when it is gone, else kept
   * (listed again at every poll until it can be) and said once (not the root: the caller
   * checks it).
   */
  #failed(rel: string, known: KnownFolder, error: unknown): void {
    if (isGoneError(error)) return this.#forget(rel);
    const said = known.failing === true;
    known.failing = true;
    if (!said && rel !== "") this.#options.onError(absolutePath(this.#options.root, rel), error);
  }

  /** Forget the folder `rel` and everything below it. */
  #forget(rel: string): void {
    const known = this.#folders.get(rel);
    if (!known) return;
    this.#folders.delete(rel);
    for (const file of known.files) this.#recent.delete(file);
    for (const folder of known.folders) this.#forget(folder);
  }
}
