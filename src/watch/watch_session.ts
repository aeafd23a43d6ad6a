/**
 * The watch session of one job: waits for the watch folder to exist, watches it (from a worker
 * thread), gathers events, watches it again when it is removed, created again or mounted over,
 * and scans it: at start, folders that appear, every `rescan_interval_seconds` (every minute while
 * it cannot be watched: `folder_watcher.ts`). Where events cannot be trusted (a network or FUSE
 * file system, `watch_mode: poll`: `fs_type.ts`) it also polls (`poll_loop.ts`). It reports files
 * and names gone; what becomes of them is the pipeline's business.
 *
 * @module
 */
import { dirname } from "node:path";
import { logger } from "../log/logging.ts";
import type { FileFilter } from "./file_filter.ts";
import { type Activity, activityOf } from "./stability.ts";
import { absolutePath } from "./file_version.ts";
import {
  EventGatherer,
  FallbackRescans,
  FolderWatcher,
  type GatheredEvent,
  type WatchEvent,
} from "./folder_watcher.ts";
import { waitForFolder } from "./folder_wait.ts";
import { folderWords, LostEvents, type LostEventsOptions, parentOf } from "./missed_events.ts";
import { PollLoop } from "./poll_loop.ts";
import { type FoundFile, scanFolderBatches, type ScanOptions } from "./scan.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { UnreadFolders } from "./unread_folders.ts";
import { MountWatch, type WatchHow, watchHow, type WatchModeSetting } from "./fs_type.ts";
import type { FolderFileSystem } from "../config/file_systems.ts";

/** The lines when the watch folder's file system changed (a mount), and when it disappeared. */
const MOUNTED = "Watch folder {path} is on another file system now ({types}): " +
  "something was mounted there, or unmounted; watching it again";
const REMOVED = "Watch folder {path} was removed; watching it again once it exists";
const NOT_NOW = "Rescan of {path} skipped: it cannot be read ({reason}); it is scanned once it can";
/** Whether the watcher tells closes (Linux): a written file is then open until its close. */
const CLOSES_TOLD = Deno.build.os === "linux";
/** What a scan tells of the files it found (see {@linkcode WatchSessionOptions.onFound}). */
export type ScanFound = Extract<Activity, "found" | "moved">;
/** Options of {@linkcode WatchSession} (`forgottenUntil`, `onLost`: see `LostEventsOptions`). */
export interface WatchSessionOptions extends Pick<LostEventsOptions, "forgottenUntil" | "onLost"> {
  /** The watch folder (`watch_path`). */
  root: string;
  /** Job name, for log lines. */
  job: string;
  filter: FileFilter;
  /** Scan once; no watcher, no rescans. */
  once: boolean;
  /** How often to look for a watch folder that does not exist yet. */
  missingFolderRetryMs: number;
  /** Time between full rescans; 0 = none. */
  rescanIntervalMs: number;
  /** `watch_mode`. @default "auto" */
  watchMode?: WatchModeSetting;
  /** The daemon's runtime folder (see `FolderWatcherOptions.runtimeDir`). */
  runtimeDir?: string;
  /** Time between two polls, where the folder is polled. @default 2000 */
  pollIntervalMs?: number;
  /** The file system the folder's files were on (in the ledger), to tell a share not mounted. */
  watchedOn?: FolderFileSystem;
  /** A file of the filter created, written, closed, renamed (to `to`); one, or a folder, removed. */
  onActivity(path: string, relPath: string, activity: Activity | "removed", to?: string): void;
  /**
   * Files a scan found; returns those that are new or changed. `quick`: files already sent may
   * be taken as unchanged without a stat (the re-reads for lost events, which look for new
   * files, and the first scan, whose files sent before are checked right after it). `how`:
   * "moved" for the files of a folder renamed or moved in (told by a watcher that tells closes,
   * Linux): put there whole, as a file moved in on its own; else "found" (as they were left).
   */
  onFound(files: FoundFile[], quick: boolean, how?: ScanFound): FoundFile[];
  /** Before each periodic rescan, the fallback rescans and the scan of a folder back. */
  beforeRescan(): void;
  /** The folder exists and is about to be watched (warm up what the first file needs). */
  onFolderReady?(): void;
  /** Where it is polled: it became unavailable, or available again (see `unavailable`). */
  onAvailability?(): void;
}

/** One job's watch; see the module doc. */
export class WatchSession {
  #options: WatchSessionOptions;
  #log = logger("watch");
  #watcher: FolderWatcher | undefined;
  #events = new EventGatherer((events) => this.#handleEvents(events));
  #rescanTimer: ReturnType<typeof setInterval> | undefined;
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  #fallback: FallbackRescans; // The rescans every minute while the folder cannot be watched.
  /** Folders with events, read again when the watcher goes quiet (see `missed_events.ts`). */
  #lost: LostEvents;
  #unread: UnreadFolders; // Folders a scan could not read: said; after a shortage, read again.
  #closed = false;
  #closing = new AbortController(); // Aborts on close: ends waits for the folder.
  #rewatching = false;
  /** How the folder is watched, once it exists. */
  #how: WatchHow | undefined;
  /** The polls, where the folder is polled. */
  #polls: PollLoop | undefined;
  /** The folder's device when the watch was decided (`null`: unknown, or Windows). */
  #dev: number | null = null;
  /** Looks for a file system mounted on a folder watched by events alone. */
  #mounts: MountWatch | undefined;
  /** Why the folder cannot be looked at yet (missing, or no answer), or `null`. */
  #silent: string | null = null;
  /** A file arrived at its destination: where the folder is polled, a change in place is seen. */
  arrived = (relPath: string, size: number, mtimeMs: number): void =>
    this.#polls?.arrived(absolutePath(this.#options.root, relPath), relPath, size, mtimeMs);

  constructor(options: WatchSessionOptions) {
    this.#options = options;
    this.#unread = new UnreadFolders(options, (rel) => this.scan(rel));
    this.#lost = new LostEvents({
      ...options,
      onFound: (files) => this.#options.onFound(files, true),
      onError: this.#unread.report,
      skip: () => this.#closed || this.#rewatching,
      polled: () => this.#polls !== undefined,
      onUnwatched: (folders) =>
        void this.#rewatch(
          "New files in {inFolders} came without any event (the watch may be missing after the kernel dropped events); watching {path} again",
          folderWords(folders),
        ),
    });
    this.#fallback = new FallbackRescans({
      job: options.job,
      root: options.root,
      watchAgain: () => this.#watchAgain(),
      rescan: () => this.rescan(),
    });
  }

  /**
   * Wait for the folder, watch it (unless `once`), scan it, and start the periodic rescans.
   * Resolves `false` when closed meanwhile. Throws with `once` when the folder does not exist,
   * and when it is no folder.
   */
  async start(): Promise<boolean> {
    const { once, rescanIntervalMs } = this.#options;
    if (!(await this.#waitForFolder())) return false;
    const unmounted = await this.#options.watchedOn?.unmountedShare().catch(() => null);
    if (unmounted) {
      this.#log.warn(
        "The watch folder {path} looks like the mount point of a share that is not mounted ({why}): files written to the share are not seen until it is mounted here",
        { job: this.#options.job, path: this.#options.root, why: unmounted },
      );
    }
    let watching: Promise<boolean> | null = null;
    if (!once) {
      this.#options.onFolderReady?.();
      this.#decide();
      watching = this.#watch();
    }
    // The first scan runs while the watch is set up (a large tree's takes a while); the polls learn
    // the tree from it. New files first: it takes files sent before as unchanged until the check.
    await this.scan("", this.#polls?.learnFromScan(), !once);
    await watching;
    if (this.#closed) return false;
    this.#polls?.start();
    this.#watchMounts();
    if (!once && rescanIntervalMs > 0) {
      this.#rescanTimer = setInterval(() => void this.rescan(), rescanIntervalMs);
    }
    // Then a second scan `stat`s the files sent before (changed while no one watched?) and finds
    // those the first missed before the watch was in place. About a second for 100,000 files.
    if (!once) this.#checkTimer = setTimeout(() => void this.#checkSentBefore(), 0);
    return true;
  }

  /** Stop watching, scanning and every timer. */
  close(): void {
    this.#closed = true;
    this.#closing.abort();
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#events.close();
    clearInterval(this.#rescanTimer);
    clearTimeout(this.#checkTimer);
    this.#mounts?.close();
    this.#polls?.close();
    this.#fallback.close();
    this.#lost.close();
    this.#unread.close();
  }

  /** How the folder is watched (`undefined` until it exists, and with `once`): see `FallbackRescans.how`. */
  get how(): WatchHow | undefined {
    return this.#fallback.how(this.#how);
  }

  /** Why the watch folder cannot be read now (missing, gone away, or hangs), or `null`. */
  get unavailable(): string | null {
    return this.#silent ?? this.#polls?.unavailable ?? null;
  }

  /** {@linkcode unavailable}, the folder asked now where it is polled (see `PollLoop.lookNow`). */
  async unavailableNow(): Promise<string | null> {
    return this.#silent ?? (await this.#polls?.lookNow()) ?? null;
  }

  /** Decide how to watch the folder (it exists), and set up the polls if it is polled. */
  #decide(): WatchHow {
    const { root, job, filter } = this.#options;
    const intervalMs = this.#options.pollIntervalMs ?? 2000;
    this.#how = watchHow(root, this.#options.watchMode ?? "auto", intervalMs / 1000);
    try {
      this.#dev = Deno.build.os === "windows" ? null : Deno.statSync(root).dev;
    } catch {
      this.#dev = null;
    }
    if (this.#how.mode === "events") return this.#how;
    this.#polls = new PollLoop({
      job,
      root,
      filter,
      intervalMs,
      onChanged: (files) => {
        for (const file of files) this.#options.onActivity(file.path, file.relPath, "changed");
      },
      onBack: async (onListed) => {
        if (this.#how?.mode !== "poll") await this.#watchAgain();
        this.#options.beforeRescan(); // Files that failed while it could not be read go again.
        await this.scan("", onListed);
      },
      onError: this.#unread.report,
      onAvailability: this.#options.onAvailability,
    });
    return this.#how;
  }

  /**
   * Watch for another file system mounted on a folder watched by events alone (a share mounted
   * after the start, whose files raise no event there): the folder is then watched again as that
   * one asks (polled, for a share) and scanned.
   */
  #watchMounts(): void {
    if (this.#how?.mode !== "events" || this.#dev === null || this.#closed) return;
    const { job, root } = this.#options;
    this.#mounts = new MountWatch(root, this.#dev, async () => {
      if (this.#closed) return;
      const was = this.#how?.fileSystem, type = this.#decide().fileSystem;
      const types = type === was ? `of the same type, ${type}` : `${type}; it was on ${was}`;
      this.#log.info(MOUNTED, { job, path: root, type, was, types });
      await this.#watchAgain();
      await this.scan("", this.#polls?.learnFromScan()).catch((e) => this.#unread.report(root, e));
      this.#polls?.start();
      this.#watchMounts();
    });
  }

  /**
   * A path under observation turned out to be no file. A folder that may hold files (moved in, or
   * created with a matching name) is scanned.
   *
   * @returns whether it was such a folder
   */
  async scanIfFolder(path: string): Promise<boolean> {
    const rel = relativeTo(this.#options.root, path);
    // lstat: a symbolic link to a folder is not followed (as in a scan).
    const isFolder = await Deno.lstat(path).then((info) => info.isDirectory, () => false);
    if (!isFolder || rel === null || rel === "" || !this.#options.filter.includesDir(rel)) {
      return false;
    }
    await this.scan(rel);
    return true;
  }

  /**
   * Scan below `startRel` (`""`: everything) and report what is there (`onListed`: see
   * {@linkcode ScanOptions.onListed}; `quick`, `how`: see {@linkcode WatchSessionOptions.onFound}).
   */
  async scan(
    startRel: string,
    onListed?: ScanOptions["onListed"],
    quick = false,
    how: ScanFound = "found",
  ): Promise<void> {
    const { root, filter, job } = this.#options;
    let found = 0;
    const batches = scanFolderBatches(root, filter, {
      startRel,
      onError: this.#unread.report,
      onListed,
    });
    for await (const batch of batches) {
      if (this.#closed) return;
      found += this.#options.onFound(batch, quick, how).length;
      if (batch.length > 0) await this.#options.watchedOn?.remember(batch[0].relPath);
    }
    if (found > 0) {
      this.#log.info("Found {count} new or changed file(s) in {path}", {
        job,
        count: found,
        path: absolutePath(root, startRel),
      });
    }
  }

  /** A full rescan, errors logged; not while the folder cannot be read (a scan of a share that
   * hangs would hold the daemon): the scan once it is back stands for it. */
  async rescan(): Promise<void> {
    const { job, root: path } = this.#options, reason = this.unavailable;
    if (reason !== null && !this.#closed) this.#log.info(NOT_NOW, { job, path, reason });
    if (this.#closed || reason !== null) return;
    await this.#scanLogged(() => this.#options.beforeRescan());
  }

  /** The scan right after the start (see `start`). */
  async #checkSentBefore(): Promise<void> {
    await this.#scanLogged();
    const { job, root: path } = this.#options;
    const said = "Checked the files in {path} against the ledger";
    if (!this.#closed) this.#log.debug(said, { job, path });
  }

  /** A full scan (after `before`); errors are logged. */
  async #scanLogged(before?: () => void): Promise<void> {
    try {
      before?.();
      await this.scan("");
    } catch (error) {
      if (this.#closed) return;
      this.#log.error("Rescanning {path} failed: {error}; trying again at the next rescan", {
        job: this.#options.job,
        path: this.#options.root,
        error: String(error),
      });
    }
  }

  #waitForFolder(): Promise<boolean> {
    const signal = this.#closing.signal, how = () => this.#how; // A late look: said for its kind.
    const onSilent = (reason: string | null) => this.#silent = reason;
    return waitForFolder(this.#options.root, { ...this.#options, signal, onSilent, how });
  }

  /** Watch the folder (from a worker thread); resolves once it is in place, with whether it is. */
  async #watch(): Promise<boolean> {
    if (this.#closed) return false;
    if (this.#how?.mode === "poll") return true;
    let failed = false;
    this.#watcher = new FolderWatcher(
      this.#options.root,
      (events) => {
        for (const event of events) this.#onEvent(event);
      },
      (message, stuck) => {
        failed = true;
        if (!this.#closed) this.#fallback.failed(message, stuck);
      },
      {
        job: this.#options.job,
        runtimeDir: this.#options.runtimeDir,
        // Reading their folders again reports them (once each); no event was lost but theirs.
        onUndecodable: (paths) => this.#markFoldersOf(paths),
      },
    );
    await this.#watcher.ready;
    return !failed && !this.#closed;
  }

  /** Read the folders that hold `paths` again once the watcher is quiet. */
  #markFoldersOf(paths: string[]): void {
    if (this.#closed) return;
    const { root, filter } = this.#options;
    const folders = paths.map((path) => relativeTo(root, dirname(path)));
    this.#lost.mark(
      folders.filter((rel): rel is string => rel !== null && filter.includesDir(rel)),
    );
  }

  /** Try to watch again, for the fallback rescans; resolves whether the watch is in place. */
  async #watchAgain(): Promise<boolean> {
    if (this.#closed || this.#rewatching) return false;
    this.#rewatching = true;
    try {
      this.#watcher?.close();
      this.#watcher = undefined;
      return await this.#watch();
    } finally {
      this.#rewatching = false;
    }
  }

  /**
   * Watch the path again, once a folder exists there, and scan it: the watch folder itself was
   * removed or moved away (and its watch with it), or events were lost.
   *
   * @param message the warning to log (`{path}`: the watch folder; more in `properties`)
   */
  async #rewatch(message: string, properties: Record<string, unknown> = {}): Promise<void> {
    if (this.#rewatching || this.#closed) return;
    this.#rewatching = true;
    const { job, root } = this.#options;
    try {
      this.#watcher?.close();
      this.#watcher = undefined;
      this.#log.warn(message, { ...properties, job, path: root });
      if (!(await this.#waitForFolder()) || this.#closed) return;
      if (await this.#watch()) this.#log.info("Watching {path} again", { job, path: root });
      await this.scan("");
    } catch (error) {
      if (!this.#closed) this.#fallback.failed(String(error), false);
    } finally {
      this.#rewatching = false;
    }
  }

  #onEvent(event: WatchEvent): void {
    if (this.#closed) return;
    if (event.flag === "rescan") {
      this.#events.flush(); // The events before the loss first: their writes were told.
      this.#options.onLost?.(performance.now());
      return void this.#rewatch("The watcher lost events; watching {path} again and rescanning it");
    }
    this.#events.add(event.kind, event.paths);
  }

  #handleEvents(events: Map<string, GatheredEvent>): void {
    if (this.#closed) return;
    const { root, filter } = this.#options;
    const folders = new Set<string>();
    for (const [path, { kind, appeared, closedFirst, renamedTo }] of events) {
      const rel = relativeTo(root, path);
      if (rel === "" && kind === "remove") void this.#rewatch(REMOVED);
      if (rel === "" && kind !== "remove") folders.add("");
      if (!rel) continue;
      const included = kind !== "remove" && filter.includesFile(rel);
      // Removed, or moved away (no longer there to include): a file or a folder, by its name.
      if (!included && (kind === "remove" || kind === "rename") && filter.includesDir(rel)) {
        this.#options.onActivity(path, rel, "removed", renamedTo);
      }
      if (kind === "remove") continue;
      folders.add(parentOf(rel));
      this.#lost.heard(rel, appeared);
      if (included) {
        // Told in order: what follows a close is judged against the closed file.
        if (closedFirst) this.#options.onActivity(path, rel, "closed");
        this.#options.onActivity(path, rel, activityOf(kind, CLOSES_TOLD), renamedTo);
      } else if (appeared && filter.includesDir(rel)) {
        // A new (or moved-in) folder: files may have landed before the watch covered it. Renamed
        // or moved in (not made here and written into), its files were put there whole.
        const how = kind === "rename" && CLOSES_TOLD ? "moved" : "found";
        void Deno.stat(path).then((info) => {
          if (info.isDirectory) return this.scan(rel, undefined, false, how);
        }).catch(() => {});
      }
    }
    this.#lost.mark([...folders].filter((folder) => filter.includesDir(folder)));
  }
}
