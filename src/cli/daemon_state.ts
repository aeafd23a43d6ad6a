/**
 * The "is a daemon running" part of `status`: read from the state folder's
 * lock and PID file.
 *
 * @module
 */
import { join } from "node:path";
import { type DaemonState, type JobPause, PID_FILE, probeDaemon } from "../ledger/daemon_lock.ts";

/** What `status --json` reports about the daemon. */
export interface DaemonStatus {
  running: boolean;
  pid?: number;
  startedAt?: string;
  version?: string;
  config?: string;
  /** PID file left by a daemon that did not stop cleanly. */
  stalePid?: number;
  /** Jobs the running daemon has paused (a full destination), by name. */
  paused?: Record<string, JobPause>;
  /** The service manager that started it (see `DaemonInfo.service`), if one did. */
  service?: string;
  /** Where its status page listens (see `DaemonInfo.statusListen`), if it said. */
  statusListen?: string;
}

/** Whether a daemon runs on `stateDir`, for `status`. */
export function daemonStatus(stateDir: string): DaemonStatus {
  const state: DaemonState = probeDaemon(stateDir);
  if (!state.running) {
    return state.stalePid === undefined
      ? { running: false }
      : { running: false, stalePid: state.stalePid };
  }
  return { running: true, ...state.info };
}

/** One line for the text output of `status`. */
export function describeDaemon(status: DaemonStatus, stateDir: string): string {
  if (status.running) {
    if (status.pid === undefined) return `Daemon: running (state_dir ${stateDir})`;
    const since = status.startedAt ? new Date(status.startedAt).toLocaleString("sv-SE") : "?";
    return `Daemon: running, pid ${status.pid}, since ${since}, version ${status.version}` +
      (status.config ? `, config ${status.config}` : "");
  }
  const stale = status.stalePid === undefined
    ? ""
    : ` (stale PID file ${
      join(stateDir, PID_FILE)
    } of pid ${status.stalePid}: that daemon did not stop cleanly)`;
  return `Daemon: not running${stale}`;
}

/** `; paused: destination full since …: reason` for a job the daemon has paused, else "". */
export function describePause(status: DaemonStatus, job: string): string {
  const pause = status.running ? status.paused?.[job] : undefined;
  if (!pause) return "";
  const since = new Date(pause.since).toLocaleString("sv-SE");
  return `; paused: ${pause.state} since ${since} (${pause.reason})`;
}
