/**
 * The events of symbolic links in the watch folder that lead out of it, which the runtime's
 * watcher does not tell (Linux).
 *
 * `Deno.watchFs` passes an event on to a watch only where the event's path, resolved through
 * links, is inside one of the watch's paths: a link made in the watch folder to a folder or file
 * outside it (`ln -s /data/other watch/link`, or `../other`) is never told to the watch of the
 * watch folder, so nothing would say it until a rescan. Every `Deno.watchFs` of one thread shares
 * one watcher, and each watch is told the events of all of them whose resolved path is inside its
 * paths: a watch of `/`, not recursive (one more inotify watch, on `/` alone), is told every one.
 * Of those, {@linkcode watchOutsideLinks} passes on only the events of links in the watch folder
 * that lead out of it or nowhere, the ones the watch of the watch folder was not told; the
 * session then judges each link as a scan judges it (and so says it once, in the same words).
 *
 * Linux only: on macOS a watch of `/` would have FSEvents deliver every change on the disk. There
 * such a link is found by the next scan (a folder appearing, `rescan_interval_seconds`).
 *
 * @module
 */
import { relativeTo } from "./entry_check.ts";

/** A running watch of links out of the watch folder; `close` stops it. */
export interface OutsideLinks {
  close(): void;
}

/**
 * Pass to `onEvent` the events (not removals, which the runtime tells anyway) of symbolic links
 * below `root` whose resolved path is outside `root`, or that cannot be resolved. `null` where
 * this cannot be done (not Linux, or `/` cannot be watched): links out are found by scans.
 */
export function watchOutsideLinks(
  root: string,
  onEvent: (event: Deno.FsEvent) => void,
): OutsideLinks | null {
  if (Deno.build.os !== "linux") return null;
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs("/", { recursive: false });
  } catch {
    return null;
  }
  void (async () => {
    const events = watcher[Symbol.asyncIterator]();
    while (true) {
      let next: IteratorResult<Deno.FsEvent>;
      try {
        next = await events.next();
      } catch (error) {
        // One event lost (a name that is not UTF-8: the worker's own watch looks for those).
        if (error instanceof Error && error.message.includes("invalid UTF-8")) continue;
        return;
      }
      if (next.done) return;
      const { kind, paths, flag } = next.value;
      if (kind === "remove") continue;
      const links = paths.filter((path) => leadsOut(root, path));
      if (links.length > 0) onEvent({ kind, paths: links, flag });
    }
  })().catch(() => {}); // Closed, or the watch failed: links out are found by scans.
  return { close: () => watcher.close() };
}

/** Whether `path`, below `root`, is a symbolic link that leads out of `root` (or nowhere). */
function leadsOut(root: string, path: string): boolean {
  const rel = relativeTo(root, path);
  if (rel === null || rel === "") return false;
  try {
    if (!Deno.lstatSync(path).isSymlink) return false;
  } catch {
    return false;
  }
  try {
    return relativeTo(Deno.realPathSync(root), Deno.realPathSync(path)) === null;
  } catch {
    return true;
  }
}
