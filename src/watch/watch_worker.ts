/**
 * The file-system watcher, in its own worker thread. It only reads events
 * and forwards them in small batches, so it keeps up with a burst of
 * thousands of files even while the main thread is busy; a watcher that
 * falls behind loses events.
 *
 * Protocol: the parent posts `{ path, heartbeat? }` once; the worker posts
 * `{ ready: true }` once the watch is in place, then any of
 * `{ events: WatchEvent[] }`, `{ undecodable: string[] }` (names that are
 * not valid UTF-8, found after the runtime failed to report an event for
 * one; each posted once), `{ fifo: { path, isLink } }` (a FIFO the guard holds open),
 * `{ stuck: string }` (the watcher stays stuck), or `{ error: string }` if
 * watching fails. Terminating the worker stops watching.
 *
 * With `heartbeat` (a file in a folder outside the watch folder), the
 * {@linkcode FifoGuard} keeps a FIFO from stalling the watcher.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { dirname } from "node:path";
import { FifoGuard } from "./fifo_guard.ts";
import { hasUndecodableBytes, walkEntries } from "./entry_check.ts";

/** One event as forwarded to the parent. */
export interface WatchEvent {
  kind: Deno.FsEvent["kind"];
  paths: string[];
  flag?: Deno.FsEvent["flag"];
}

/** What the parent sends to start watching. */
export interface WatchRequest {
  path: string;
  /** Heartbeat file for the FIFO guard; no guard without it. */
  heartbeat?: string;
}

/** How long events are gathered before they are posted together (ms). */
const BATCH_MS = 2;

/** The runtime's error for an event whose path is not valid UTF-8 (the event itself is lost). */
const UNDECODABLE = "invalid UTF-8";

/** Shortest time between two searches for undecodable names (ms). */
const UNDECODABLE_SEARCH_MS = 5_000;

self.onmessage = async (message: MessageEvent<WatchRequest>) => {
  const { path, heartbeat } = message.data;
  let batch: WatchEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    const events = batch;
    batch = [];
    self.postMessage({ events });
  };
  const guard = heartbeat === undefined ? undefined : new FifoGuard(path, heartbeat, {
    onHeld: (fifo, isLink) => self.postMessage({ fifo: { path: fifo, isLink } }),
    onStuck: (reason) => self.postMessage({ stuck: reason }),
  });
  const undecodable = new UndecodableSearch(
    path,
    (found) => self.postMessage({ undecodable: found }),
  );
  try {
    const paths = heartbeat === undefined ? path : [path, dirname(heartbeat)];
    const watcher = Deno.watchFs(paths, { recursive: true });
    self.postMessage({ ready: true });
    guard?.start();
    const events = watcher[Symbol.asyncIterator]();
    while (true) {
      let next: IteratorResult<Deno.FsEvent>;
      try {
        next = await events.next();
      } catch (error) {
        // One event was lost; the watcher itself goes on.
        if (error instanceof Error && error.message.includes(UNDECODABLE)) {
          undecodable.seen();
          continue;
        }
        throw error;
      }
      if (next.done) break;
      const event = next.value;
      if (guard && event.paths.length > 0 && event.paths.every((p) => guard.isHeartbeat(p))) {
        guard.echo();
        continue;
      }
      batch.push({ kind: event.kind, paths: event.paths, flag: event.flag });
      timer ??= setTimeout(flush, BATCH_MS);
    }
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.message : String(error) });
  } finally {
    guard?.stop();
    undecodable.stop();
  }
};

/**
 * Looks for names that are not valid UTF-8 after the watcher lost an event
 * for one: at once, then at most every {@linkcode UNDECODABLE_SEARCH_MS}
 * while such events keep coming (a file with such a name being written).
 * Reports each path once.
 */
class UndecodableSearch {
  #root: string;
  #report: (paths: string[]) => void;
  #known = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAt = -Infinity;

  constructor(root: string, report: (paths: string[]) => void) {
    this.#root = root;
    this.#report = report;
  }

  /** An event for an undecodable name was lost. */
  seen(): void {
    if (this.#timer !== undefined) return;
    const delayMs = Math.max(0, this.#lastAt + UNDECODABLE_SEARCH_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#lastAt = performance.now();
      const fresh = findUndecodableNames(this.#root).filter((p) => !this.#known.has(p));
      if (this.#known.size + fresh.length > 10_000) this.#known.clear();
      for (const p of fresh) this.#known.add(p);
      if (fresh.length > 0) this.#report(fresh);
    }, delayMs);
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * Every entry below `root` whose listed name holds U+FFFD and that cannot be
 * found by that name (a name with a real U+FFFD is fine). Folders reached
 * through links are not entered; nothing is opened.
 */
export function findUndecodableNames(root: string): string[] {
  const out: string[] = [];
  walkEntries(root, (path, entry) => {
    if (!hasUndecodableBytes(entry.name) || exists(path)) return entry.isDirectory;
    out.push(path);
    return false;
  });
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
