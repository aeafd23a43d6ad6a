/**
 * Files written into a folder as it was made: the watcher adds the folder's watch only once it
 * has seen the folder's creation, so files written at once (an instrument's new night folder)
 * come without events, and the scan of the new folder finds them. That is normal, not a loss:
 * when a re-read of the folders that had events (see `missed_events.ts`) finds such files before
 * the watcher's event for their folder was handled, they are said at DEBUG once the folder's
 * creation, or an event inside it, is told (at once, or within the events' latency). Only a
 * folder never told of is missing its watch: said as missed files, and watched again.
 *
 * @module
 */
import { logger } from "../log/logging.ts";
import { absolutePath } from "./file_version.ts";

/** How long a folder told of is remembered (ms). */
const TOLD_KEPT_MS = 300_000;

/**
 * Whether a file (last written at `mtimeMs`) was written as its folder was made: the folder was
 * born during the burst (`bornMs`, not before `sinceMs`; `null`: unknown) and the file within
 * `latencyMs` of that. Such a file may well precede its folder's watch.
 */
export function writtenAsCreated(
  mtimeMs: number,
  bornMs: number | null,
  sinceMs: number,
  latencyMs: number,
): boolean {
  return bornMs !== null && bornMs >= sinceMs && Math.abs(mtimeMs - bornMs) < latencyMs;
}

/** A folder's birth time in ms (`null` where the system does not tell it, or it is gone). */
export function birthOf(path: string): number | null {
  try {
    return Deno.statSync(path).birthtime?.getTime() ?? null;
  } catch {
    return null;
  }
}

/** Options of {@linkcode NewFolders}. */
export interface NewFoldersOptions {
  /** Job name and watch folder, for the log line. */
  job: string;
  root: string;
  /** How long the watcher's event for a folder may take. */
  latencyMs: number;
  /** Whether to leave the decision out (closed, or a rewatch scans everything anyway). */
  skip: () => boolean;
  /** No event ever told of these folders (relative), holding `count` files: a missing watch. */
  onSilent(folders: string[], count: number): void;
}

/** See the module doc. */
export class NewFolders {
  #options: NewFoldersOptions;
  /** Folders whose creation, or an event inside, was told (relative), with when (ms). */
  #told = new Map<string, number>();
  #timers = new Set<ReturnType<typeof setTimeout>>();

  constructor(options: NewFoldersOptions) {
    this.#options = options;
  }

  /** The folder `rel` (relative) was told of (made, moved in, or an event inside): it is watched. */
  told(rel: string): void {
    this.#told.delete(rel); // Kept in the order told, for the pruning.
    this.#told.set(rel, Date.now());
  }

  /**
   * A re-read found `files` (relative paths, by folder) written as their folders were made, no
   * event told of; `dirty`: the folders read, which had events inside.
   */
  settle(files: Map<string, string[]>, dirty: Map<string, number>): void {
    const old = Date.now() - TOLD_KEPT_MS;
    for (const [folder, at] of this.#told) {
      if (at >= old) break;
      this.#told.delete(folder);
    }
    const known = (folder: string) => dirty.has(folder) || this.#told.has(folder);
    this.#sayNormal([...files.keys()].filter(known), files);
    const waiting = [...files.keys()].filter((folder) => !known(folder));
    if (waiting.length === 0) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#options.skip()) return;
      this.#sayNormal(waiting.filter(known), files);
      const silent = waiting.filter((folder) => !known(folder));
      const count = silent.reduce((sum, folder) => sum + files.get(folder)!.length, 0);
      if (silent.length > 0) this.#options.onSilent(silent, count);
    }, this.#options.latencyMs);
    this.#timers.add(timer);
  }

  /** Stop the timers. */
  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#told.clear();
  }

  #sayNormal(folders: string[], files: Map<string, string[]>): void {
    if (folders.length === 0) return;
    const count = folders.reduce((sum, folder) => sum + files.get(folder)!.length, 0);
    logger("watch").debug(
      "Found {count} file(s) written into {folderCount} new folder(s) as they were made, before their watch was in place (normal)",
      {
        job: this.#options.job,
        count,
        folderCount: folders.length,
        folders: folders.map((rel) => absolutePath(this.#options.root, rel)),
      },
    );
  }
}
