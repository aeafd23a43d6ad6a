/**
 * Linux: a systemd unit, system-wide (starts at boot as the invoking user,
 * sandboxed) or per user.
 *
 * @module
 */
import { posix } from "node:path";
import { fillTemplate } from "./template.ts";
import { SYSTEMD_UNIT_TEMPLATE } from "./templates.ts";
import { systemdCommandLine, systemdPathWord } from "./escape.ts";
import { inTmpFolders, outermostFolders } from "./writable_paths.ts";
import type {
  DaemonLaunch,
  PlanStep,
  RollbackStep,
  ServiceCheck,
  ServicePlan,
  ServiceTarget,
} from "./plan.ts";

/** The unit name, also used by `journalctl -u`. */
export const SYSTEMD_UNIT_NAME = "image-transfer.service";

/** A user name systemd accepts in `User=` (its "relaxed" rule, without `%`). */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/;

/** Exists only while systemd runs as the init system (what `sd_booted()` tests). */
export const SYSTEMD_BOOTED_PATH = "/run/systemd/system";

/**
 * Tell where the unit file goes.
 *
 * @param target system scope: `/etc/systemd/system`; user scope: `<XDG_CONFIG_HOME>/systemd/user`
 * @returns absolute path of the unit file
 */
export function systemdUnitPath(target: ServiceTarget): string {
  if (target.scope === "system") return posix.join("/etc/systemd/system", SYSTEMD_UNIT_NAME);
  const configHome = target.configHome ?? posix.join(target.home, ".config");
  return posix.join(configHome, "systemd", "user", SYSTEMD_UNIT_NAME);
}

/**
 * Render the unit file text.
 *
 * The system unit orders itself after `network-online.target`, runs as
 * `User=` and is sandboxed: the file system is read-only except the daemon's
 * folders (`ReadWritePaths=`), no capabilities, a system call filter. The user
 * unit keeps the sandboxing a user's service manager can apply without user
 * namespaces (system call and socket filters, no new privileges), since some
 * distributions refuse those namespaces to unprivileged users and the unit
 * would then not start at all.
 *
 * @param target where and as whom
 * @param launch the daemon's argv and the folders it writes
 * @returns the unit file
 * @throws {Error} when a path or the user name cannot be written in a unit file
 */
export function renderSystemdUnit(target: ServiceTarget, launch: DaemonLaunch): string {
  const system = target.scope === "system";
  if (system && !USER_NAME.test(target.user)) {
    throw new Error(
      `Cannot write the systemd unit: the user name ${
        JSON.stringify(target.user)
      } is not one systemd accepts in User=; run the command as that account's login name`,
    );
  }
  const folders = outermostFolders(launch.ownFolders, launch.writtenFolders);
  const sharedTmp = hiddenByPrivateTmp(launch).length > 0;
  return fillTemplate(SYSTEMD_UNIT_TEMPLATE, {
    USER: system ? target.user : "",
    EXEC_START: systemdCommandLine(launch.argv),
    SERVICE: `systemd-${target.scope}`,
    READ_WRITE_PATHS: system ? folders.map((path) => systemdPathWord(path, "-")).join(" ") : "",
  }, {
    system,
    user: !system,
    privateTmp: system && !sharedTmp,
    sharedTmp: system && sharedTmp,
  });
}

/**
 * Tell which paths of `launch` a private `/tmp` would hide from the daemon:
 * the program and its files, the config, the folders it writes and reads.
 * The system unit leaves `PrivateTmp=` out when there are any.
 *
 * @param launch the daemon's argv and folders
 * @returns the paths in `/tmp` or `/var/tmp`
 */
export function hiddenByPrivateTmp(launch: DaemonLaunch): string[] {
  return inTmpFolders([
    ...launch.argv.filter((arg) => posix.isAbsolute(arg)),
    launch.configPath,
    ...launch.ownFolders,
    ...launch.writtenFolders,
    ...launch.readPaths,
  ]);
}

/**
 * Plan the install: check that systemd runs, create the daemon's own folders
 * (system scope, owned by the service's user), write the unit, reload
 * systemd, enable and start it (restart it when it was already installed, so
 * a new binary or config takes effect). A failure disables and removes what
 * was written.
 *
 * @param target where and as whom
 * @param launch the daemon's argv, log file and folders
 * @param options `update`: a unit file is already there
 * @returns the plan
 */
export function planSystemdInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean },
): ServicePlan {
  const path = systemdUnitPath(target);
  const systemctl = systemctlArgv(target);
  const owner = target.uid !== null && target.gid !== undefined && target.gid !== null
    ? { uid: target.uid, gid: target.gid }
    : undefined;
  const steps: PlanStep[] = [];
  if (target.scope === "system") {
    for (const folder of launch.ownFolders) steps.push({ kind: "mkdir", path: folder, owner });
  }
  steps.push(
    {
      kind: "write",
      file: { path, contents: renderSystemdUnit(target, launch), encoding: "utf-8" },
    },
    { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
  );
  if (options.update) {
    steps.push({ kind: "run", command: { argv: [...systemctl, "enable", SYSTEMD_UNIT_NAME] } });
    steps.push({ kind: "run", command: { argv: [...systemctl, "restart", SYSTEMD_UNIT_NAME] } });
  } else {
    steps.push({
      kind: "run",
      command: { argv: [...systemctl, "enable", "--now", SYSTEMD_UNIT_NAME] },
    });
  }
  const rollback: RollbackStep[] = options.update
    ? [
      { kind: "restore" },
      { kind: "run", argv: [...systemctl, "daemon-reload"] },
      { kind: "run", argv: [...systemctl, "restart", SYSTEMD_UNIT_NAME] },
    ]
    : [
      { kind: "run", argv: [...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME] },
      { kind: "restore" },
      { kind: "run", argv: [...systemctl, "daemon-reload"] },
    ];
  const user = target.scope === "user" ? " --user" : "";
  const notes = [
    `Status: systemctl${user} status image-transfer`,
    `Logs:   journalctl${user} -u image-transfer -f`,
    launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
  ];
  const hidden = hiddenByPrivateTmp(launch);
  if (target.scope === "system" && hidden.length > 0) {
    notes.push(
      `Note: ${hidden.join(", ")} lie in /tmp or /var/tmp, which a private /tmp would hide: ` +
        "the service shares the system's /tmp; move them elsewhere for the full sandbox",
    );
  }
  if (target.scope === "user") {
    notes.push(
      "A per-user service stops when you log out; to keep it running, allow lingering once:",
      `  sudo loginctl enable-linger ${target.user}`,
    );
  }
  return { servicePath: path, checks: systemdChecks(target), steps, rollback, notes };
}

/**
 * Plan the uninstall: stop and disable the unit, remove the file, reload systemd.
 *
 * @param target where the unit was installed
 * @returns the plan
 */
export function planSystemdUninstall(target: ServiceTarget): ServicePlan {
  const path = systemdUnitPath(target);
  const systemctl = systemctlArgv(target);
  return {
    servicePath: path,
    checks: [],
    steps: [
      {
        kind: "run",
        command: { argv: [...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME], mayFail: true },
      },
      { kind: "remove", path },
      { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
    ],
    rollback: [],
    notes: [],
  };
}

/** The systemd manager (the system's or the user's) must answer, and be the init system. */
function systemdChecks(target: ServiceTarget): ServiceCheck[] {
  const notInit = "systemd is not running as this machine's init system (process 1): this " +
    "happens in containers, in WSL without systemd, or with another init system, and nothing " +
    "would start the service. Enable systemd (WSL: put `[boot]` and `systemd=true` in " +
    "/etc/wsl.conf, then `wsl --shutdown`), or start `image-transfer run` with the supervisor " +
    "this machine uses";
  const booted: ServiceCheck = { kind: "exists", path: SYSTEMD_BOOTED_PATH, problem: notInit };
  if (target.scope === "system") {
    return [{
      kind: "run",
      argv: ["systemctl", "show", "--property=Version"],
      problem: `systemctl cannot reach systemd; ${notInit}`,
    }, booted];
  }
  return [{
    kind: "run",
    argv: ["systemctl", "--user", "show", "--property=Version"],
    problem: "systemctl --user cannot reach your systemd user manager. It runs in a login " +
      "session: log in as this user directly (not through su or sudo) or enable lingering with " +
      "`sudo loginctl enable-linger <user>`, or install system-wide with sudo. If systemd is " +
      "not this machine's init system (containers, WSL without systemd), no service can run",
  }, booted];
}

function systemctlArgv(target: ServiceTarget): string[] {
  return target.scope === "user" ? ["systemctl", "--user"] : ["systemctl"];
}
