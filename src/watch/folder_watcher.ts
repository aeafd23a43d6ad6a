/**
 * Watch a folder recursively from a worker thread (see `watch_worker.ts`),
 * with the FIFO guard (see `fifo_guard.ts`) where FIFOs exist.
 *
 * @module
 */
import { isAbsolute, join } from "node:path";
import { sharedSkipLog, type SkipLog } from "./skip_log.ts";
import type { WatchEvent, WatchRequest } from "./watch_worker.ts";

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
      request.heartbeat = this.#makeHeartbeat();
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
   * runtime folder the service manager cleans (`$RUNTIME_DIRECTORY`,
   * `$XDG_RUNTIME_DIR`) if there is one, else in the temp folder.
   */
  #makeHeartbeat(): string | undefined {
    const parents = [Deno.env.get("RUNTIME_DIRECTORY"), Deno.env.get("XDG_RUNTIME_DIR"), undefined];
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
