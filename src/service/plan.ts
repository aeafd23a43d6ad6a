/**
 * What installing or removing the service means, as data: the files to
 * write or remove and the commands to run, in order. The per-OS planners
 * build it from a {@linkcode ServiceTarget}; `--print` shows it and
 * `applyPlan` carries it out.
 *
 * @module
 */
import type { Config } from "../config/types.ts";

/** The operating systems a service can be installed on. */
export type ServiceOs = "linux" | "darwin" | "windows";

/** Every OS in {@linkcode ServiceOs}, for option validation. */
export const SERVICE_OSES: readonly ServiceOs[] = ["linux", "darwin", "windows"];

/** Where and as whom the service is installed. */
export interface ServiceTarget {
  os: ServiceOs;
  /**
   * `system`: starts at boot with nobody logged in, as {@linkcode ServiceTarget.user} (a
   * systemd system unit, a launchd daemon, a boot task); `user`: runs within the user's
   * own session (a systemd user unit, a launchd agent, a logon task).
   */
  scope: "system" | "user";
  /** The account the daemon runs as (`DOMAIN\name` on Windows). */
  user: string;
  /** Numeric user id, for `launchctl ... gui/<uid>`; `null` on Windows. */
  uid: number | null;
  /** Numeric primary group id, to give folders created for the daemon to it; `null` if unknown. */
  gid?: number | null;
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
  /**
   * Absolute folders of the daemon's own (`state_dir`, the log file's folder):
   * a sandboxed service may write there, and installing creates them.
   */
  ownFolders: string[];
  /**
   * The other absolute folders it writes (`local` destinations, and the watch
   * and archive folders of source clean-up): a sandboxed service may write there too.
   */
  writtenFolders: string[];
  /** The other absolute paths it reads (watch folders, key files, the programs it starts). */
  readPaths: string[];
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
  | {
    kind: "mkdir";
    /** Absolute folder to create with its parents, if missing. */
    path: string;
    /** Owner of the folders created (when running as root). */
    owner?: { uid: number; gid: number };
  }
  | { kind: "remove"; path: string }
  | { kind: "run"; command: PlannedCommand };

/**
 * A condition checked before anything is written: the service manager must be
 * there and answer, or the install would leave a service nothing can start.
 */
export type ServiceCheck =
  | {
    kind: "exists";
    path: string;
    /** What it means when the path is missing, and what to do. */
    problem: string;
  }
  | {
    kind: "run";
    argv: string[];
    /** What it means when the command fails, and what to do. */
    problem: string;
  };

/** A step that undoes a failed install: a command (its failure ignored), or putting files back. */
export type RollbackStep = { kind: "run"; argv: string[] } | { kind: "restore" };

/** Everything an install or uninstall does, in order, and what to tell the user afterwards. */
export interface ServicePlan {
  /** The one service file this plan is about. */
  servicePath: string;
  /** Checked before the first step (not with `--root`). */
  checks: ServiceCheck[];
  steps: PlanStep[];
  /**
   * Run in order when a step fails, so a failed install leaves nothing behind
   * (`restore` puts back the files and folders the steps wrote).
   */
  rollback: RollbackStep[];
  /** Added to the error when a step fails (e.g. "run it as Administrator"). */
  failureHint?: string;
  /** Lines printed after success: how to see status and logs. */
  notes: string[];
}

/**
 * The local paths of `config` the daemon opens, each with what it is: the
 * state folder, the log file, and per job the watch folder, a `local`
 * destination, the archive folder of `move` and the key and password files.
 *
 * @param config the loaded config
 * @returns `[what, path]` pairs, e.g. `["watch_path of job cam", "/data/cam"]`
 */
export function configLocalPaths(config: Config): [string, string][] {
  const paths: [string, string][] = [["state_dir", config.state_dir]];
  if (config.log_file) paths.push(["log_file", config.log_file]);
  for (const job of config.jobs) {
    const of = ` of job ${job.name}`;
    paths.push([`watch_path${of}`, job.watch_path]);
    if (job.transfer_method === "local") {
      paths.push([`remote_base_path${of}`, job.remote_base_path]);
    }
    if (job.after_transfer === "move") paths.push([`archive_path${of}`, job.archive_path]);
    for (const key of ["ssh_identity_file", "ftp_password_file", "ftp_ca_file"] as const) {
      const file = job[key];
      if (file) paths.push([`${key}${of}`, file]);
    }
  }
  return paths;
}
