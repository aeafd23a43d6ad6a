/**
 * What installing or removing the service means, as data: the files to
 * write or remove and the commands to run, in order. The per-OS planners
 * build it from a {@linkcode ServiceTarget}; `--print` shows it and
 * `applyPlan` carries it out.
 *
 * @module
 */

/** The operating systems a service can be installed on. */
export type ServiceOs = "linux" | "darwin" | "windows";

/** Every OS in {@linkcode ServiceOs}, for option validation. */
export const SERVICE_OSES: readonly ServiceOs[] = ["linux", "darwin", "windows"];

/** Where and as whom the service is installed. */
export interface ServiceTarget {
  os: ServiceOs;
  /**
   * `system`: a system-wide systemd unit running as {@linkcode ServiceTarget.user};
   * `user`: a per-user unit. launchd agents and scheduled tasks are always per user.
   */
  scope: "system" | "user";
  /** The account the daemon runs as (`DOMAIN\name` on Windows). */
  user: string;
  /** Numeric user id, for `launchctl ... gui/<uid>`; `null` on Windows. */
  uid: number | null;
  /** That account's home folder. */
  home: string;
  /** `XDG_CONFIG_HOME` for per-user systemd units (default `<home>/.config`). */
  configHome?: string;
}

/** How the daemon is started, and where it logs. */
export interface DaemonLaunch {
  /** Absolute program path, then its arguments (`run -c <config>`). */
  argv: string[];
  /** The absolute config file the daemon reads. */
  configPath: string;
  /** The daemon's own log file (`log_file` in the config), `""` when off. */
  logFile: string;
}

/** A file the plan writes. */
export interface PlannedFile {
  /** Absolute path (before any `--root` prefix). */
  path: string;
  contents: string;
  /** `utf-16le-bom` for Task Scheduler XML, which `schtasks /XML` requires. */
  encoding: "utf-8" | "utf-16le-bom";
}

/** A command the plan runs. */
export interface PlannedCommand {
  /** Program and arguments, spawned without a shell. */
  argv: string[];
  /** Tried when `argv` fails (older service managers). */
  fallback?: string[];
  /** A failure is reported as a warning and the plan goes on (e.g. stopping what is not running). */
  mayFail?: boolean;
}

/** One step of a plan. */
export type PlanStep =
  | { kind: "write"; file: PlannedFile }
  | { kind: "remove"; path: string }
  | { kind: "run"; command: PlannedCommand };

/** Everything an install or uninstall does, in order, and what to tell the user afterwards. */
export interface ServicePlan {
  /** The one service file this plan is about. */
  servicePath: string;
  steps: PlanStep[];
  /** Lines printed after success: how to see status and logs. */
  notes: string[];
}
