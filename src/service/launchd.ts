/**
 * macOS: a launchd job. With sudo, a LaunchDaemon in `/Library/LaunchDaemons`
 * that starts at boot, with nobody logged in, as the invoking user
 * (`UserName`); without, a LaunchAgent in `~/Library/LaunchAgents` that runs
 * while that user is logged in at the screen.
 *
 * @module
 */
import { posix } from "node:path";
import { fillTemplate, LAUNCHD_PLIST_TEMPLATE } from "./template.ts";
import { xmlEscape } from "./escape.ts";
import type { Config } from "../config/types.ts";
import {
  configLocalPaths,
  type DaemonLaunch,
  type PlannedCommand,
  type PlanStep,
  type ServiceCheck,
  type ServicePlan,
  type ServiceTarget,
} from "./plan.ts";

/** The job's label, also its plist file name. */
export const LAUNCHD_LABEL = "com.image-transfer.daemon";

const FORMAT = "launchd plist";

/**
 * Tell where the plist goes.
 *
 * @param target system scope: a daemon; user scope: the user's agent
 * @returns `/Library/LaunchDaemons/...plist` or `<home>/Library/LaunchAgents/...plist`
 */
export function launchdPlistPath(target: ServiceTarget): string {
  const folder = target.scope === "system"
    ? "/Library/LaunchDaemons"
    : posix.join(target.home, "Library", "LaunchAgents");
  return posix.join(folder, `${LAUNCHD_LABEL}.plist`);
}

/**
 * Tell where launchd writes the daemon's stdout and stderr.
 *
 * @param target system scope: `/Library/Logs`; user scope: `<home>/Library/Logs`
 * @returns the folder
 */
export function launchdLogDir(target: ServiceTarget): string {
  return target.scope === "system" ? "/Library/Logs" : posix.join(target.home, "Library", "Logs");
}

/**
 * The launchd domain the job lives in.
 *
 * @param target the scope and user
 * @returns `system` or `gui/<uid>`
 */
export function launchdDomain(target: ServiceTarget): string {
  return target.scope === "system" ? "system" : `gui/${target.uid ?? 0}`;
}

/**
 * Render the plist.
 *
 * @param target the scope and user
 * @param launch the daemon's argv
 * @returns the plist XML
 * @throws {Error} when a path holds characters XML cannot carry
 */
export function renderLaunchdPlist(target: ServiceTarget, launch: DaemonLaunch): string {
  const args = launch.argv.map((arg, i) =>
    `    <string>${xmlEscape(FORMAT, i === 0 ? "program path" : "argument", arg)}</string>`
  );
  const system = target.scope === "system";
  return fillTemplate(LAUNCHD_PLIST_TEMPLATE, {
    LABEL: LAUNCHD_LABEL,
    USER: system ? xmlEscape(FORMAT, "user name", target.user) : "",
    PROGRAM_ARGUMENTS: args.join("\n"),
    HOME: xmlEscape(FORMAT, "home folder", target.home),
    LOG_DIR: xmlEscape(FORMAT, "log folder", launchdLogDir(target)),
    SERVICE: `launchd-${target.scope}`,
  }, { system });
}

/**
 * Plan the install: check that the launchd domain is there, write the plist,
 * enable the job and load it (`launchctl bootstrap`, or `launchctl load -w`
 * on older macOS). A job already loaded is booted out first so the new plist
 * takes effect. A failure unloads and removes what was written.
 *
 * @param target the scope and user
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
  const domain = launchdDomain(target);
  const logDir = launchdLogDir(target);
  const load: PlanStep[] = [
    {
      kind: "run",
      command: { argv: ["launchctl", "enable", `${domain}/${LAUNCHD_LABEL}`], mayFail: true },
    },
    { kind: "run", command: bootstrap(domain, path) },
  ];
  return {
    servicePath: path,
    checks: [launchdCheck(target)],
    steps: [
      ...(options.update ? [{ kind: "run" as const, command: bootout(domain, path) }] : []),
      {
        kind: "write",
        file: { path, contents: renderLaunchdPlist(target, launch), encoding: "utf-8" },
      },
      ...load,
    ],
    rollback: options.update
      ? [{ kind: "restore" }, { kind: "run", argv: bootstrap(domain, path).argv }]
      : [{ kind: "run", argv: bootout(domain, path).argv }, { kind: "restore" }],
    notes: [
      `Status: ${
        target.scope === "system" ? "sudo " : ""
      }launchctl print ${domain}/${LAUNCHD_LABEL}`,
      `Output: ${posix.join(logDir, "image-transfer.out.log")} and ${
        posix.join(logDir, "image-transfer.err.log")
      }`,
      launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
    ],
  };
}

/**
 * Plan the uninstall: unload the job (`launchctl bootout`, or `launchctl
 * unload -w`), then remove the plist.
 *
 * @param target the scope and user
 * @returns the plan
 */
export function planLaunchdUninstall(target: ServiceTarget): ServicePlan {
  const path = launchdPlistPath(target);
  return {
    servicePath: path,
    checks: [],
    steps: [
      { kind: "run", command: bootout(launchdDomain(target), path) },
      { kind: "remove", path },
    ],
    rollback: [],
    notes: [],
  };
}

/** The domain must exist: `system` always does; `gui/<uid>` only during a login at the screen. */
function launchdCheck(target: ServiceTarget): ServiceCheck {
  const domain = launchdDomain(target);
  return {
    kind: "run",
    argv: ["launchctl", "print", domain],
    problem: target.scope === "system"
      ? "launchctl cannot reach launchd's system domain; run the command with sudo on the Mac itself"
      : `there is no login session at the screen for this user (launchd domain ${domain}), ` +
        "and a LaunchAgent runs only in one: log in at the Mac's screen first, or install a " +
        "LaunchDaemon, which starts at boot with nobody logged in: `sudo image-transfer " +
        "install-service`",
  };
}

function bootstrap(domain: string, path: string): PlannedCommand {
  return {
    argv: ["launchctl", "bootstrap", domain, path],
    fallback: ["launchctl", "load", "-w", path],
  };
}

function bootout(domain: string, path: string): PlannedCommand {
  return {
    argv: ["launchctl", "bootout", `${domain}/${LAUNCHD_LABEL}`],
    fallback: ["launchctl", "unload", "-w", path],
    mayFail: true,
  };
}

/**
 * Warn of the folders macOS privacy protection (TCC) keeps a launchd job out
 * of: `~/Desktop`, `~/Documents`, `~/Downloads` and other volumes
 * (`/Volumes/...`, removable and network). A program started from Terminal
 * gets in with Terminal's permission; one started by launchd gets "Operation
 * not permitted" unless it has Full Disk Access, and nobody is asked.
 *
 * @param config the loaded config
 * @param target the macOS account
 * @param program the program the job starts
 * @returns one warning per path in such a folder
 */
export function privacyWarnings(
  config: Config,
  target: ServiceTarget,
  program: string,
): string[] {
  if (target.os !== "darwin") return [];
  const home = target.home.replace(/\/+$/, "");
  const guarded = ["Desktop", "Documents", "Downloads"].map((name) => `${home}/${name}`);
  return configLocalPaths(config).flatMap(([what, path]) => {
    const folder = guarded.find((g) => path === g || path.startsWith(`${g}/`)) ??
      /^\/Volumes\/[^/]+/.exec(path)?.[0];
    return folder === undefined ? [] : [
      `${what} ${path} is in ${folder}, which macOS privacy protection keeps a launchd ` +
      "service out of (Operation not permitted) while it works from Terminal: give " +
      `${program} Full Disk Access (System Settings > Privacy & Security > Full Disk ` +
      "Access), or use a folder outside Desktop, Documents, Downloads and /Volumes",
    ];
  });
}
