/**
 * Watch a folder recursively from a worker thread (see `watch_worker.ts`),
 * with the FIFO guard (see `watch_worker.ts`) where FIFOs exist. One worker
 * per folder: every `Deno.watchFs` of a thread shares one watcher thread of
 * the runtime, so a FIFO or device that stalls it in one folder would hold
 * up every folder watched from that thread.
 *
 * The rescans every minute of a job whose folder cannot be watched: no
 * inotify watch was left, or the watcher got stuck on something it cannot
 * release (a device whose open blocks). Before each rescan it tries to watch
 * again, unless the watcher got stuck (its thread may never come back), and
 * once that works the rescans stop. The failure is said once, at ERROR. The
 * runtime watches the whole tree or nothing: one folder inside that the
 * daemon's account cannot read fails it all; such folders are named, with what
 * to do, and looked at every few seconds, so that once they can be read the
 * folder is watched again at once. While the rescans last, the session tells
 * its mode as `rescans` (status, API, the start line).
 *
 * Gathering the watcher's events: only the latest kind per path is kept (and
 * whether the path appeared), and everything gathered is handed over a few
 * milliseconds later in one go, so the watcher is drained quickly even during
 * a burst.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { sharedSkipLog, type SkipLog } from "./skip_log.ts";
import type { WatchEvent, WatchRequest } from "./watch_worker.ts";
import type { WatchHow } from "./fs_type.ts";
import { logger, quoteIfUnsafe } from "../log/logging.ts";

export type { WatchEvent };

/** Options of {@linkcode FolderWatcher}. */
export interface FolderWatcherOptions {
  /** Job name for log lines. */
  job?: string;
  /** Where held FIFOs are reported (once per path). @default sharedSkipLog */
  skipLog?: SkipLog;
  /** Keep the watcher from stalling on FIFOs. @default true (except on Windows) */
  fifoGuard?: boolean;
  /**
   * Paths whose names are not valid UTF-8 (which no event can carry), each
   * reported once. Without it they arrive as one event with `flag: "rescan"`.
   */
  onUndecodable?: (paths: string[]) => void;
  /**
   * The daemon's runtime folder: the guard's heartbeat folder goes there, so
   * that one a killed daemon left is removed with it at the next start.
   */
  runtimeDir?: string;
}

/** A message from the worker. */
interface WorkerMessage {
  ready?: true;
  events?: WatchEvent[];
  undecodable?: string[];
  fifo?: { path: string; isLink: boolean };
  stuck?: string;
  error?: string;
}

/** A running watch; {@linkcode FolderWatcher.close} stops it. */
export class FolderWatcher {
  #worker: Worker;
  #ready: () => void;
  #heartbeatDir: string | undefined;
  /** Resolves once the watch is in place (or watching failed): scan after this. */
  readonly ready: Promise<void>;

  /**
   * Start watching `path` (recursively).
   *
   * @param onEvents called with every batch of events, in order (names that
   *   are not valid UTF-8: see {@linkcode FolderWatcherOptions.onUndecodable})
   * @param onError called once if watching fails (e.g. the folder vanished, or
   *   no inotify watch is left), or stays stuck on something that cannot be
   *   released (`stuck`; its thread may never come back: do not watch again)
   */
  constructor(
    path: string,
    onEvents: (events: WatchEvent[]) => void,
    onError: (message: string, stuck: boolean) => void,
    options: FolderWatcherOptions = {},
  ) {
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.#ready = ready.resolve;
    const skipLog = options.skipLog ?? sharedSkipLog;
    const fields = options.job === undefined ? {} : { job: options.job };
    const request: WatchRequest = { path };
    if (options.fifoGuard ?? Deno.build.os !== "windows") {
      request.heartbeat = this.#makeHeartbeat(options.runtimeDir);
    }
    this.#worker = new Worker(new URL("./watch_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = ({ data }: MessageEvent<WorkerMessage>) => {
      if (data.events) onEvents(data.events);
      else if (data.fifo) {
        const { path, isLink } = data.fifo;
        skipLog.skipped(path, {
          code: isLink ? "link" : "special",
          reason: `${isLink ? "symbolic link to a FIFO" : "FIFO"}; never read. ` +
            "It is held open for writing while it stays there, so that watching cannot stall on it",
          level: "info",
        }, fields);
      } else if (data.undecodable) {
        if (options.onUndecodable) options.onUndecodable(data.undecodable);
        else onEvents([{ kind: "other", paths: [], flag: "rescan" }]);
      } else if (data.ready) ready.resolve();
      else if (data.stuck !== undefined) onError(data.stuck, true);
      else if (data.error !== undefined) {
        ready.resolve();
        onError(data.error, false);
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      ready.resolve();
      onError(event.message, false);
    };
    this.#worker.postMessage(request);
  }

  /** Stop watching (`ready` resolves, if it has not yet). */
  close(): void {
    this.#worker.terminate();
    this.#ready();
    if (this.#heartbeatDir !== undefined) {
      try {
        Deno.removeSync(this.#heartbeatDir, { recursive: true });
      } catch { /* already gone */ }
      this.#heartbeatDir = undefined;
    }
  }

  /**
   * A file in a private folder whose closes the guard watches for: in the
   * daemon's runtime folder when given, else in the runtime folder the service
   * manager cleans (`$RUNTIME_DIRECTORY`, `$XDG_RUNTIME_DIR`) if there is
   * one, else in the temp folder.
   */
  #makeHeartbeat(runtimeDir: string | undefined): string | undefined {
    const parents = [
      runtimeDir,
      Deno.env.get("RUNTIME_DIRECTORY"),
      Deno.env.get("XDG_RUNTIME_DIR"),
      undefined,
    ];
    for (const parent of parents) {
      if (parent !== undefined && !isAbsolute(parent)) continue;
      try {
        const made = Deno.makeTempDirSync({ dir: parent, prefix: "image-transfer-watch-" });
        const dir = Deno.realPathSync(made);
        this.#heartbeatDir = dir;
        const file = join(dir, "heartbeat");
        Deno.writeFileSync(file, new Uint8Array());
        return file;
      } catch {
        // Not there or not writable: try the next one.
      }
    }
    return undefined; // no folder at all: watch without the guard
  }
}

/** Time between the rescans (each also tries to watch again). */
export const FALLBACK_RESCAN_MS = 60_000;

/** How often the folders a failed watch named as unreadable are looked at (see `failed`). */
export const READABLE_CHECK_MS = 2000;

/**
 * The folders a failed watch could not read, from the runtime's error
 * (`Permission denied (os error 13) about ["/w/locked"]`); `[]` when it names none, or when
 * the failure is not a permission one.
 */
export function unreadableFolders(error: string): string[] {
  if (!/os error 13\b|Permission denied/i.test(error)) return [];
  const about = /about (\[.*\])\s*$/s.exec(error);
  if (about === null) return [];
  try {
    const paths: unknown = JSON.parse(about[1]);
    return Array.isArray(paths) ? paths.filter((p): p is string => typeof p === "string") : [];
  } catch {
    return [];
  }
}

/** Options of {@linkcode FallbackRescans}. */
export interface FallbackRescansOptions {
  /** Job name and watch folder, for the log lines. */
  job: string;
  root: string;
  /** Try to watch the folder again; resolves whether the watch is in place. */
  watchAgain(): Promise<boolean>;
  /** A full rescan. */
  rescan(): Promise<void>;
}

/** See the module doc. */
export class FallbackRescans {
  #options: FallbackRescansOptions;
  #log = logger("watch");
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Looks at the unreadable folders the failure named, to watch again once they can be read. */
  #readableTimer: ReturnType<typeof setInterval> | undefined;
  /** Whether the rescans also try to watch again (not after a stuck watcher). */
  #watchAgain = false;
  /** Why the folder is rescanned instead of watched, while it is; else `null`. */
  #reason: string | null = null;
  /** The folders inside the daemon's account cannot read, named by the latest failure. */
  #unreadable: string[] = [];
  #ticking = false;

  constructor(options: FallbackRescansOptions) {
    this.#options = options;
  }

  /** Why the folder is rescanned every minute instead of watched (in words), or `null`. */
  get reason(): string | null {
    return this.#reason;
  }

  /**
   * `how` as it is now: mode `rescans` while watching failed and the folder is rescanned every
   * minute instead (unless it is polled anyway).
   */
  how(how: WatchHow | undefined): WatchHow | undefined {
    const why = this.#reason;
    if (how === undefined || why === null || how.mode === "poll") return how;
    const every = how.pollIntervalSeconds;
    const polls = every === null ? "" : `, a poll every ${every} s`;
    const summary = `a rescan every minute${polls}, no file events (${why}; ${how.fileSystem})`;
    return { ...how, mode: "rescans", summary };
  }

  /**
   * Watching failed (`stuck`: the watcher hangs). The first failure is
   * logged and starts the rescans; those of the tries to watch again are not.
   * A folder inside that the daemon's account cannot read (the runtime watches
   * the whole tree or nothing) is named, with what to do; it is looked at every
   * {@linkcode READABLE_CHECK_MS}, and once it can be read the folder is watched
   * again at once.
   */
  failed(error: string, stuck: boolean): void {
    const { job, root } = this.#options;
    if (stuck) this.#watchAgain = false;
    const unreadable = stuck ? [] : unreadableFolders(error);
    const folders = unreadable.map(quoteIfUnsafe).join(", ");
    this.#unreadable = unreadable;
    this.#reason = unreadable.length > 0
      ? `the daemon's account cannot read ${folders}`
      : `no watch: ${error}`;
    if (this.#timer !== undefined) {
      this.#log.debug("Watching {path} still fails: {error}", { job, path: root, error });
      return;
    }
    if (unreadable.length > 0) {
      this.#log.error(
        "Watching {path} failed: {error}: the daemon's account cannot read {folders}, and one " +
          "such folder stops file events for the whole watch folder; rescanning every minute " +
          "instead (new files wait up to a minute). Give the daemon's account read and search " +
          "access to it (r-x: chmod, or a group it is in) or remove it; then the folder is " +
          "watched again at once",
        { job, path: root, error, folders, unreadable },
      );
    } else {
      this.#log.error(
        stuck
          ? "Watching {path} failed: {error}; rescanning every minute instead"
          : "Watching {path} failed: {error}; rescanning every minute instead, and trying to watch it again each time",
        { job, path: root, error },
      );
    }
    this.#watchAgain = !stuck;
    this.#timer = setInterval(() => void this.#tick(), FALLBACK_RESCAN_MS);
    this.#readableTimer = setInterval(() => {
      const named = this.#unreadable;
      if (this.#watchAgain && named.length > 0 && named.every(canRead)) void this.#tick();
    }, READABLE_CHECK_MS);
  }

  /** Stop the rescans. */
  close(): void {
    clearInterval(this.#timer);
    clearInterval(this.#readableTimer);
    this.#timer = undefined;
    this.#readableTimer = undefined;
    this.#reason = null;
    this.#unreadable = [];
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const { job, root } = this.#options;
      if (this.#watchAgain && await this.#options.watchAgain()) {
        this.close();
        this.#log.info("Watching {path} again; the rescans every minute stop", {
          job,
          path: root,
        });
      }
      await this.#options.rescan();
    } finally {
      this.#ticking = false;
    }
  }
}

/** Whether the folder at `path` can be listed now (or is gone: nothing to wait for). */
function canRead(path: string): boolean {
  try {
    for (const _ of Deno.readDirSync(path)) break;
    return true;
  } catch (error) {
    return error instanceof Deno.errors.NotFound;
  }
}

/** What happened to one path since the last hand-over. */
export interface GatheredEvent {
  /** The latest kind of event. */
  kind: Deno.FsEvent["kind"];
  /** Whether it was created or renamed in at some point. */
  appeared: boolean;
  /** Whether it was closed before the latest event (a chmod right after the close). */
  closedFirst: boolean;
  /** Its new name, where the latest event renamed it within the watch (Linux tells both names). */
  renamedTo?: string;
}

/** How long events are gathered before they are handed over. */
const GATHER_MS = 5;

/** Gathers the watcher's events per path; see the module doc. */
export class EventGatherer {
  #events = new Map<string, GatheredEvent>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onEvents: (events: Map<string, GatheredEvent>) => void;

  /** @param onEvents receives the gathered events, in the order their paths were last seen */
  constructor(onEvents: (events: Map<string, GatheredEvent>) => void) {
    this.#onEvents = onEvents;
  }

  /** Add one event of `kind` for `paths`. */
  add(kind: Deno.FsEvent["kind"], paths: string[]): void {
    const appeared = kind === "create" || kind === "rename";
    for (const path of paths) {
      const seen = this.#events.get(path);
      this.#events.delete(path);
      this.#events.set(path, {
        kind,
        appeared: appeared || (seen?.appeared ?? false),
        closedFirst: kind !== "access" && (seen?.kind === "access" || (seen?.closedFirst ?? false)),
        renamedTo: kind === "rename" && paths.length === 2 && path === paths[0]
          ? paths[1]
          : undefined,
      });
    }
    this.#timer ??= setTimeout(() => this.flush(), GATHER_MS);
  }

  /** Hand over what is gathered now (if anything). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const events = this.#events;
    this.#events = new Map();
    if (events.size > 0) this.#onEvents(events);
  }

  /** Drop what is gathered and stop the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#events.clear();
  }
}
