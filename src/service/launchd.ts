/**
 * macOS: a launchd agent in `~/Library/LaunchAgents`, started at login.
 *
 * @module
 */
import { posix } from "node:path";
import { fillTemplate } from "./template.ts";
import { LAUNCHD_PLIST_TEMPLATE } from "./templates.ts";
import { xmlEscape } from "./escape.ts";
import type { DaemonLaunch, ServicePlan, ServiceTarget } from "./plan.ts";

/** The agent's label, also its plist file name. */
export const LAUNCHD_LABEL = "com.image-transfer.daemon";

const FORMAT = "launchd plist";

/**
 * Tell where the agent plist goes.
 *
 * @param target the user
 * @returns `<home>/Library/LaunchAgents/com.image-transfer.daemon.plist`
 */
export function launchdPlistPath(target: ServiceTarget): string {
  return posix.join(target.home, "Library", "LaunchAgents", `${LAUNCHD_LABEL}.plist`);
}

/**
 * Tell where launchd writes the daemon's stdout and stderr.
 *
 * @param target the user
 * @returns `<home>/Library/Logs`
 */
export function launchdLogDir(target: ServiceTarget): string {
  return posix.join(target.home, "Library", "Logs");
}

/**
 * Render the agent plist.
 *
 * @param target the user
 * @param launch the daemon's argv
 * @returns the plist XML
 * @throws {Error} when a path holds characters XML cannot carry
 */
export function renderLaunchdPlist(target: ServiceTarget, launch: DaemonLaunch): string {
  const args = launch.argv.map((arg, i) =>
    `    <string>${xmlEscape(FORMAT, i === 0 ? "program path" : "argument", arg)}</string>`
  );
  return fillTemplate(LAUNCHD_PLIST_TEMPLATE, {
    LABEL: LAUNCHD_LABEL,
    PROGRAM_ARGUMENTS: args.join("\n"),
    LOG_DIR: xmlEscape(FORMAT, "log folder", launchdLogDir(target)),
  });
}

/**
 * Plan the install: write the plist and load it into the user's GUI domain
 * (`launchctl bootstrap`, or `launchctl load -w` on older macOS). An agent
 * already loaded is booted out first so the new plist takes effect.
 *
 * @param target the user
 * @param launch the daemon's argv and log file
 * @param options `update`: a plist is already there
 * @returns the plan
 */
export function planLaunchdInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean },
): ServicePlan {
  const path = launchdPlistPath(target);
  const domain = `gui/${target.uid ?? 0}`;
  const logDir = launchdLogDir(target);
  return {
    servicePath: path,
    steps: [
      ...(options.update ? [bootout(target, path, true)] : []),
      {
        kind: "write",
        file: { path, contents: renderLaunchdPlist(target, launch), encoding: "utf-8" },
      },
      {
        kind: "run",
        command: {
          argv: ["launchctl", "bootstrap", domain, path],
          fallback: ["launchctl", "load", "-w", path],
        },
      },
    ],
    notes: [
      `Status: launchctl print ${domain}/${LAUNCHD_LABEL}`,
      `Output: ${posix.join(logDir, "image-transfer.out.log")} and ${
        posix.join(logDir, "image-transfer.err.log")
      }`,
      launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
    ],
  };
}

/**
 * Plan the uninstall: unload the agent (`launchctl bootout`, or `launchctl
 * unload -w`), then remove the plist.
 *
 * @param target the user
 * @returns the plan
 */
export function planLaunchdUninstall(target: ServiceTarget): ServicePlan {
  const path = launchdPlistPath(target);
  return {
    servicePath: path,
    steps: [bootout(target, path, true), { kind: "remove", path }],
    notes: [],
  };
}

function bootout(target: ServiceTarget, path: string, mayFail: boolean) {
  return {
    kind: "run" as const,
    command: {
      argv: ["launchctl", "bootout", `gui/${target.uid ?? 0}/${LAUNCHD_LABEL}`],
      fallback: ["launchctl", "unload", "-w", path],
      mayFail,
    },
  };
}
