/**
 * The "is a daemon running" part of `status`: read from the state folder's
 * lock and PID file.
 *
 * @module
 */
import { join } from "node:path";
import { type DaemonState, type JobPause, PID_FILE, probeDaemon } from "../ledger/daemon_lock.ts";
import { configCommand } from "../config/paths.ts";
import { escapeControlChars } from "../log/logging.ts";

/** What `status --json` reports about the daemon. */
export interface DaemonStatus {
  running: boolean;
  pid?: number;
  startedAt?: string;
  version?: string;
  config?: string;
  /** PID file left by a daemon that did not stop cleanly. */
  stalePid?: number;
  /** The state_dir it runs with, when not the config's (a reload refused to move it). */
  stateDir?: string;
  /** Jobs the running daemon has paused (a full destination), by name. */
  paused?: Record<string, JobPause>;
  /** The service manager that started it (see `DaemonInfo.service`), if one did. */
  service?: string;
  /** Where its status page listens (see `DaemonInfo.statusListen`), if it said. */
  statusListen?: string;
  /** The jobs it runs, by name, if it said. */
  jobs?: string[];
  /** Its last reload, if refused (see `DaemonInfo.reloadRefused`). */
  reloadRefused?: { at: string; reason: string };
}

/** Whether a daemon runs on `stateDir`, for `status`. */
export function daemonStatus(stateDir: string): DaemonStatus {
  const state: DaemonState = probeDaemon(stateDir);
  if (!state.running) {
    return state.stalePid === undefined
      ? { running: false }
      : { running: false, stalePid: state.stalePid };
  }
  return { running: true, ...state.info, ...(state.stateDir ? { stateDir: state.stateDir } : {}) };
}

/** The daemon's line of the text output of `status` (and one more if its last reload was refused). */
export function describeDaemon(status: DaemonStatus, stateDir: string): string {
  if (status.running) {
    if (status.pid === undefined) return `Daemon: running (state_dir ${stateDir})`;
    const since = status.startedAt ? new Date(status.startedAt).toLocaleString("sv-SE") : "?";
    const refused = status.reloadRefused;
    return `Daemon: running, pid ${status.pid}, since ${since}, version ${status.version}` +
      (status.config ? `, config ${status.config}` : "") +
      (refused
        ? `\n  Its last reload (${new Date(refused.at).toLocaleString("sv-SE")}) was refused, so ` +
          `it runs the config it had before: ${refused.reason}`
        : "") +
      (status.stateDir
        ? `\n  It runs with state_dir ${status.stateDir}, not ${stateDir}: what follows is this ` +
          "config's new state_dir; see its refused reload for how to move the ledger"
        : "");
  }
  const stale = status.stalePid === undefined
    ? ""
    : ` (stale PID file ${
      join(stateDir, PID_FILE)
    } of pid ${status.stalePid}: that daemon did not stop cleanly)`;
  return `Daemon: not running${stale}`;
}

/**
 * `; paused: destination full since ...: reason` for a job the daemon has paused, what it says of
 * a job of the config `file` it does not run (with the restart that adds it), else "".
 */
export function describePause(status: DaemonStatus, job: string, file: string): string {
  if (status.running && status.jobs && !status.jobs.includes(job)) {
    return status.reloadRefused
      ? "; not run by the daemon: the reload that would add it was refused (see above)"
      : "; not run by the daemon: it is not in the config the daemon loaded (reload it with " +
        `SIGHUP, or ${configCommand(file, "restart")})`;
  }
  const pause = status.running ? status.paused?.[job] : undefined;
  if (!pause) return "";
  const since = new Date(pause.since).toLocaleString("sv-SE");
  // The reason names a file, whose name may hold a line break: one line all the same.
  return `; paused: ${pause.state} since ${since} (${escapeControlChars(pause.reason)})`;
}
