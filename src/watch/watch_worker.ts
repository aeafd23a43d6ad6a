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
 * Keeps the file-system watcher from stalling on a FIFO.
 *
 * `Deno.watchFs` opens the path of every event it reports, for reading, on
 * its single watcher thread (to tell which watch the event belongs to).
 * Opening a FIFO for reading waits until something opens it for writing, so
 * one FIFO created in (or linked into) the watch folder stops every later
 * event. The guard notices: it closes a heartbeat file (outside the watch
 * folder, watched by the same watcher) every {@linkcode HEARTBEAT_MS}, and
 * when the event for it does not come back within {@linkcode STALL_MS} it
 * looks for FIFOs in the watch folder and opens each one for writing without
 * blocking (`O_NONBLOCK`; it never writes). That releases the waiting open,
 * and while the guard holds its end, later opens of that FIFO return at once.
 * It lets go when the FIFO is no longer at that path.
 *
 * Runs inside the watcher's worker. Linux and macOS (Windows has no FIFOs in
 * folders).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { hasUndecodableBytes } from "./entry_check.ts";
import { walkEntries } from "./scan.ts";

import { dirname } from "node:path";

/**
 * The runtime's Node file API, for opening a FIFO without blocking
 * (`O_NONBLOCK`, which `Deno.open` lacks); loaded by the first stall only,
 * because loading it costs the worker about 7 MB.
 */
let nodeFs: typeof import("node:fs") | null = null;

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

/** How often the heartbeat file is closed (ms). */
export const HEARTBEAT_MS = 500;
/** A heartbeat not seen back after this long means the watcher is stuck (ms). */
export const STALL_MS = 1_000;
/** Longest wait between two searches while the watcher stays stuck (ms). */
const MAX_SEARCH_INTERVAL_MS = 60_000;
/** Stuck this long with no FIFO to release: tell the owner to rescan instead (ms). */
const GIVE_UP_MS = 30_000;

/** Timings of a {@linkcode FifoGuard} (ms); the defaults are the module's constants. */
export interface FifoGuardTimings {
  heartbeatMs?: number;
  stallMs?: number;
  giveUpMs?: number;
}

/** What the guard tells its owner. */
export interface FifoGuardEvents {
  /** A FIFO at `path` (or a link to one) was opened for writing and is held. */
  onHeld(path: string, isLink: boolean): void;
  /** The watcher stays stuck and no FIFO explains it (a device?). Called once per stall. */
  onStuck(message: string): void;
}

interface Held {
  path: string;
  fd: number;
  dev: number;
  ino: number;
}

/** See the module doc. */
export class FifoGuard {
  #root: string;
  #heartbeat: string;
  #events: FifoGuardEvents;
  #timer: ReturnType<typeof setInterval> | undefined;
  #held = new Map<string, Held>();
  /** When the unanswered heartbeat was sent (performance.now()), or null. */
  #sentAt: number | null = null;
  #stuckSince: number | null = null;
  #nextSearchAt = 0;
  #searchIntervalMs: number;
  #reportedStuck = false;
  #timings: Required<FifoGuardTimings>;

  /**
   * @param root the watch folder
   * @param heartbeat a file outside `root` whose folder the same watcher watches
   */
  constructor(
    root: string,
    heartbeat: string,
    events: FifoGuardEvents,
    timings: FifoGuardTimings = {},
  ) {
    this.#root = root;
    this.#heartbeat = heartbeat;
    this.#events = events;
    this.#timings = {
      heartbeatMs: timings.heartbeatMs ?? HEARTBEAT_MS,
      stallMs: timings.stallMs ?? STALL_MS,
      giveUpMs: timings.giveUpMs ?? GIVE_UP_MS,
    };
    this.#searchIntervalMs = this.#timings.stallMs;
  }

  /** Start the heartbeat. */
  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), this.#timings.heartbeatMs);
  }

  /** Whether `path` is the heartbeat file (its events are the guard's, not the job's). */
  isHeartbeat(path: string): boolean {
    return path === this.#heartbeat;
  }

  /** The watcher reported the heartbeat: it is alive. */
  echo(): void {
    this.#sentAt = null;
    this.#stuckSince = null;
    this.#searchIntervalMs = this.#timings.stallMs;
    this.#reportedStuck = false;
  }

  /** Stop, and let go of every held FIFO. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const held of this.#held.values()) this.#release(held);
  }

  /** Paths of the FIFOs held now. */
  get held(): string[] {
    return [...this.#held.keys()];
  }

  #tick(): void {
    this.#releaseMoved();
    const now = performance.now();
    if (this.#sentAt === null) {
      this.#beat(now);
      return;
    }
    if (now - this.#sentAt < this.#timings.stallMs || now < this.#nextSearchAt) return;
    this.#stuckSince ??= this.#sentAt;
    if (nodeFs === null) {
      // Search at the next tick, once it is loaded.
      import("node:fs").then((module) => nodeFs ??= module.default, () => {});
      return;
    }
    const released = this.#search();
    if (released > 0) {
      this.#searchIntervalMs = this.#timings.stallMs;
    } else {
      // Nothing to release (a burst dropped the heartbeat, or something else blocks): back off.
      this.#searchIntervalMs = Math.min(this.#searchIntervalMs * 2, MAX_SEARCH_INTERVAL_MS);
      if (!this.#reportedStuck && now - this.#stuckSince >= this.#timings.giveUpMs) {
        this.#reportedStuck = true;
        this.#events.onStuck(
          `the file-system watcher has reported nothing for ${
            Math.round((now - this.#stuckSince) / 1000)
          } s and no FIFO explains it (a device or a link to one in the watch folder?)`,
        );
      }
    }
    this.#nextSearchAt = now + this.#searchIntervalMs;
    this.#beat(now);
  }

  /** Close the heartbeat file after opening it for writing: the watcher reports that close. */
  #beat(now: number): void {
    try {
      Deno.openSync(this.#heartbeat, { write: true, create: true }).close();
      this.#sentAt ??= now;
    } catch {
      // The heartbeat folder is gone (removed by someone): nothing to measure with.
      this.#sentAt = null;
    }
  }

  /** Look for FIFOs below the watch folder and hold each one; returns how many were new. */
  #search(): number {
    let added = 0;
    const seenFolders = new Set<string>();
    walkEntries(this.#root, (path, entry) => {
      if (entry.isDirectory) return true;
      if (entry.isFile) return false;
      let info: Deno.FileInfo;
      try {
        // The watcher opens through links, so look through them too (stat opens nothing).
        info = entry.isSymlink ? Deno.statSync(path) : Deno.lstatSync(path);
      } catch {
        return false;
      }
      if (info.isDirectory && entry.isSymlink) {
        // Linked folders present at start-up are watched too; enter each real folder once.
        const real = realPath(path);
        if (real === null || seenFolders.has(real)) return false;
        seenFolders.add(real);
        return true;
      }
      if (info.isFifo && !this.#held.has(path) && this.#hold(path, info)) {
        added++;
        this.#events.onHeld(path, entry.isSymlink);
      }
      return false;
    });
    return added;
  }

  /**
   * Open the FIFO at `path` for writing without blocking and keep that end. A
   * read-write open never waits; with it in place the write-only open
   * succeeds, and the read-write end is closed again, so only a writer
   * remains (a reader of the FIFO still sees its own writers' data).
   */
  #hold(path: string, info: Deno.FileInfo): boolean {
    const fs = nodeFs!;
    const flags = fs.constants;
    let both: number | undefined;
    let writer: number | undefined;
    try {
      both = fs.openSync(path, flags.O_RDWR | flags.O_NONBLOCK);
      const opened = fs.fstatSync(both);
      if (!opened.isFIFO() || opened.ino !== info.ino) return false;
      writer = fs.openSync(path, flags.O_WRONLY | flags.O_NONBLOCK);
      if (fs.fstatSync(writer).ino !== opened.ino) {
        fs.closeSync(writer);
        return false;
      }
      this.#held.set(path, { path, fd: writer, dev: opened.dev, ino: opened.ino });
      return true;
    } catch {
      if (writer !== undefined && !this.#held.has(path)) fs.closeSync(writer);
      return false;
    } finally {
      if (both !== undefined) fs.closeSync(both);
    }
  }

  /** Let go of FIFOs that were removed, renamed or replaced. */
  #releaseMoved(): void {
    for (const held of this.#held.values()) {
      let same = false;
      try {
        const info = Deno.statSync(held.path);
        same = info.isFifo === true && info.ino === held.ino && info.dev === held.dev;
      } catch { /* gone */ }
      if (!same) this.#release(held);
    }
  }

  #release(held: Held): void {
    this.#held.delete(held.path);
    try {
      nodeFs!.closeSync(held.fd);
    } catch { /* already closed */ }
  }
}

function realPath(path: string): string | null {
  try {
    return Deno.realPathSync(path);
  } catch {
    return null;
  }
}
