/**
 * The kernel limits a watch runs into on Linux (inotify), and whether they
 * suit a watch tree.
 *
 * @module
 */
import { walkEntries } from "./entry_check.ts";

/** The inotify limits (`/proc/sys/fs/inotify/*`). */
export interface InotifyLimits {
  /** Watches per user, one per watched folder, shared by all programs. */
  maxUserWatches: number;
  /** Events queued per watcher before the kernel drops them. */
  maxQueuedEvents: number;
  /**
   * Watches per user in this user namespace (`user.max_inotify_watches`), when
   * known: a container's may be lower than the system's, and the lower one applies.
   */
  namespaceWatches?: number;
}

/** The kernel's default `max_queued_events`. */
const DEFAULT_QUEUED_EVENTS = 16_384;

/** Watches other programs of the same user commonly need besides ours. */
const WATCH_HEADROOM = 8_192;

/**
 * The command that prints the limits (`/proc/sys` itself may only be read
 * with every permission): `max_user_watches`, then `max_queued_events`.
 */
export const INOTIFY_LIMITS_COMMAND = [
  "sysctl",
  "-n",
  "fs.inotify.max_user_watches",
  "fs.inotify.max_queued_events",
];

/** The command that prints the watch limit of the current user namespace. */
export const NAMESPACE_WATCHES_COMMAND = ["sysctl", "-n", "user.max_inotify_watches"];

/** The limits from the output of {@linkcode INOTIFY_LIMITS_COMMAND}, or `null` if it is not that. */
export function parseInotifyLimits(output: string): InotifyLimits | null {
  const [watches, queued] = output.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(watches) || !Number.isInteger(queued)) return null;
  return { maxUserWatches: watches, maxQueuedEvents: queued };
}

/**
 * Number of folders at and below `root` (each needs a watch; hidden and
 * excluded ones too), not following symbolic links; unreadable ones are
 * skipped. Counting stops at `stopAt`.
 */
export function countFolders(root: string, stopAt = 10_000_000): number {
  let count = 1;
  if (count >= stopAt) return count;
  walkEntries(root, (_, entry) => {
    if (!entry.isDirectory) return false;
    // An unreadable folder is counted, and not entered.
    return ++count >= stopAt ? "stop" : true;
  });
  return count;
}

/**
 * Whether `limits` suit a watch tree of `folders` folders: problems with what
 * to do, empty when they do.
 */
export function watchLimitProblems(limits: InotifyLimits, folders: number): string[] {
  const problems: string[] = [];
  const wantWatches = folders * 2 + WATCH_HEADROOM;
  const { key, watches } = watchLimit(limits);
  if (watches < wantWatches) {
    problems.push(
      `${key} is ${watches} for ${folders} folder(s) to watch ` +
        `(and their growth, and other programs): raise it to at least ${wantWatches}, e.g. ` +
        `"sysctl ${key}=${Math.max(524_288, wantWatches)}" ` +
        `(and in /etc/sysctl.d/ to keep it)`,
    );
  }
  if (limits.maxQueuedEvents < DEFAULT_QUEUED_EVENTS) {
    problems.push(
      `fs.inotify.max_queued_events is ${limits.maxQueuedEvents}, below the kernel default ` +
        `${DEFAULT_QUEUED_EVENTS}: bursts lose events (found again by re-reading folders, but ` +
        `later); raise it, e.g. "sysctl fs.inotify.max_queued_events=65536"`,
    );
  }
  return problems;
}

/**
 * Whether the limits suit the watch tree at `root`, in one line for `doctor`.
 */
export function checkWatchLimits(
  root: string,
  limits: InotifyLimits,
): { ok: boolean; detail: string } {
  const folders = countFolders(root);
  const problems = watchLimitProblems(limits, folders);
  if (problems.length > 0) return { ok: false, detail: problems.join("; ") };
  const { key, watches } = watchLimit(limits);
  return {
    ok: true,
    detail: `${folders} folder(s) to watch; ${key} ${watches}, ` +
      `fs.inotify.max_queued_events ${limits.maxQueuedEvents}`,
  };
}

/** The watch limit that applies (the lower of the system's and the user namespace's), by its key. */
function watchLimit(limits: InotifyLimits): { key: string; watches: number } {
  const namespace = limits.namespaceWatches;
  if (namespace !== undefined && namespace < limits.maxUserWatches) {
    return { key: "user.max_inotify_watches", watches: namespace };
  }
  return { key: "fs.inotify.max_user_watches", watches: limits.maxUserWatches };
}
