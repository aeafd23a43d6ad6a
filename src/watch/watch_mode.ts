/**
 * How a watch folder is watched: by the system's file events, by polling, or
 * both, from `watch_mode` and the folder's file system (see `fs_type.ts`).
 * The same words go to the log at start, `status`, the status page and
 * `doctor`.
 *
 * @module
 */
import { type FileSystemInfo, fileSystemOf } from "./fs_type.ts";

/** The `watch_mode` key. */
export type WatchModeSetting = "auto" | "events" | "poll";

/** How one watch folder is watched. */
export interface WatchHow {
  /** `events`, `poll`, or `events+poll` (events, and polls for what they miss). */
  mode: "events" | "poll" | "events+poll";
  /** The file system's name (`ext4`, `nfs4`, `fuse.sshfs`, `unknown`...). */
  fileSystem: string;
  /** Whether that file system's events miss changes made elsewhere. */
  remote: boolean;
  /** The share (`server:/export`), where known. */
  source: string | null;
  /** Seconds between polls, when polled. */
  pollIntervalSeconds: number | null;
  /** One line saying how and why. */
  summary: string;
}

/** Decide how the folder at `path` (which exists) is watched. */
export function watchHow(
  path: string,
  setting: WatchModeSetting,
  pollIntervalSeconds: number,
): WatchHow {
  return decideWatch(fileSystemOf(path), setting, pollIntervalSeconds);
}

/** {@linkcode watchHow} for a known file system. */
export function decideWatch(
  fs: FileSystemInfo,
  setting: WatchModeSetting,
  pollIntervalSeconds: number,
): WatchHow {
  const on = fs.source === null ? fs.type : `${fs.type}, ${fs.source}`;
  const every = `a poll every ${pollIntervalSeconds} s`;
  const base = { fileSystem: fs.type, remote: fs.remote, source: fs.source };
  if (setting === "poll") {
    return {
      ...base,
      mode: "poll",
      pollIntervalSeconds,
      summary: `${every}, no file events (watch_mode: poll; ${on})`,
    };
  }
  if (setting === "events" || !fs.remote) {
    const summary = fs.remote
      ? `file events only (watch_mode: events; ${on} is a network or FUSE file system: files written by other machines wait for the rescan)`
      : fs.type === "unknown"
      ? "file events (the file system cannot be told here: for a network share set watch_mode: poll)"
      : `file events (${on})`;
    return { ...base, mode: "events", pollIntervalSeconds: null, summary };
  }
  return {
    ...base,
    mode: "events+poll",
    pollIntervalSeconds,
    summary:
      `file events and ${every} (${on} is a network or FUSE file system: files written by other machines raise no events)`,
  };
}
