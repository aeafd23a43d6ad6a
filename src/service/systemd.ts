/**
 * Linux: a systemd unit, system-wide (runs as the invoking user) or per user.
 *
 * @module
 */
import { posix } from "node:path";
import { fillTemplate } from "./template.ts";
import { SYSTEMD_UNIT_TEMPLATE } from "./templates.ts";
import { systemdCommandLine } from "./escape.ts";
import type { DaemonLaunch, PlanStep, ServicePlan, ServiceTarget } from "./plan.ts";

/** The unit name, also used by `journalctl -u`. */
export const SYSTEMD_UNIT_NAME = "image-transfer.service";

/** A user name systemd accepts in `User=` (its "relaxed" rule, without `%`). */
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/;

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
 * The system unit orders itself after `network-online.target` and runs as
 * `User=`; the user unit has neither (the user manager has no
 * `network-online.target`; the daemon retries transfers until the network is up).
 *
 * @param target where and as whom
 * @param launch the daemon's argv
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
  return fillTemplate(SYSTEMD_UNIT_TEMPLATE, {
    USER: system ? target.user : "",
    EXEC_START: systemdCommandLine(launch.argv),
  }, { system, user: !system });
}

/**
 * Plan the install: write the unit, reload systemd, enable and start it
 * (restart it when it was already installed, so a new binary or config path takes effect).
 *
 * @param target where and as whom
 * @param launch the daemon's argv and log file
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
  const steps: PlanStep[] = [
    {
      kind: "write",
      file: { path, contents: renderSystemdUnit(target, launch), encoding: "utf-8" },
    },
    { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
  ];
  if (options.update) {
    steps.push({ kind: "run", command: { argv: [...systemctl, "enable", SYSTEMD_UNIT_NAME] } });
    steps.push({ kind: "run", command: { argv: [...systemctl, "restart", SYSTEMD_UNIT_NAME] } });
  } else {
    steps.push({
      kind: "run",
      command: { argv: [...systemctl, "enable", "--now", SYSTEMD_UNIT_NAME] },
    });
  }
  const user = target.scope === "user" ? " --user" : "";
  const notes = [
    `Status: systemctl${user} status image-transfer`,
    `Logs:   journalctl${user} -u image-transfer -f`,
    launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
  ];
  if (target.scope === "user") {
    notes.push(
      "A per-user service stops when you log out; to keep it running, allow lingering once:",
      `  sudo loginctl enable-linger ${target.user}`,
    );
  }
  return { servicePath: path, steps, notes };
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
    steps: [
      {
        kind: "run",
        command: { argv: [...systemctl, "disable", "--now", SYSTEMD_UNIT_NAME], mayFail: true },
      },
      { kind: "remove", path },
      { kind: "run", command: { argv: [...systemctl, "daemon-reload"] } },
    ],
    notes: [],
  };
}

function systemctlArgv(target: ServiceTarget): string[] {
  return target.scope === "user" ? ["systemctl", "--user"] : ["systemctl"];
}
