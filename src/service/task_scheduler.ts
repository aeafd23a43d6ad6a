/**
 * Windows: a Task Scheduler task that runs the daemon as the current user
 * with no stored password. System scope (the default, needs an
 * Administrator prompt): it starts at boot, logged on with S4U, so nobody
 * needs to log in. User scope (`--user`): it starts when the user logs on.
 * Both have a trigger every 5 minutes that starts the daemon again after a
 * crash (a running daemon makes it a no-op), and run without a time limit.
 *
 * @module
 */
import { win32 } from "node:path";
import { fillTemplate, TASK_XML_TEMPLATE } from "./template.ts";
import { windowsQuoteArg, xmlEscape } from "./escape.ts";
import {
  configLocalPaths,
  type DaemonLaunch,
  type RollbackStep,
  type ServicePlan,
  type ServiceTarget,
} from "./plan.ts";
import type { Config } from "../config/types.ts";
import { uncShare } from "../watch/fs_type.ts";

/** The task's name in Task Scheduler. */
export const TASK_NAME = "ImageTransferDaemon";

const FORMAT = "scheduled task";

/** The longest program path or working folder the task schema accepts (`pathType`). */
const MAX_PATH_CHARS = 260;

/**
 * Tell where the task definition is kept (it is also registered with Task Scheduler).
 *
 * @param target the user
 * @returns `<home>\.config\image-transfer\ImageTransferDaemon.xml`
 */
export function taskXmlPath(target: ServiceTarget): string {
  return win32.join(target.home, ".config", "image-transfer", `${TASK_NAME}.xml`);
}

/**
 * Render the task XML (as text; write it with {@linkcode encodeUtf16LeBom}).
 *
 * Paths are written in Windows form (`C:/Users/x` becomes `C:\Users\x`).
 *
 * @param target the user (`DOMAIN\name` or `name`) and scope
 * @param launch the daemon's argv
 * @returns the task XML
 * @throws {Error} when a path holds characters the task cannot carry, including `%`,
 *   which Task Scheduler would expand as an environment variable, or is longer than 260
 *   characters
 */
export function renderTaskXml(target: ServiceTarget, launch: DaemonLaunch): string {
  const [program, ...args] = launch.argv;
  for (const [i, value] of launch.argv.entries()) {
    const what = i === 0 ? "program path" : "argument";
    if (value.includes("%")) {
      throw new Error(
        `Cannot write the ${FORMAT}: the ${what} ${
          JSON.stringify(value)
        } contains "%", which Task Scheduler expands as an environment variable; ` +
          "rename or move it",
      );
    }
  }
  const exec = win32.normalize(program);
  const workingDir = win32.normalize(target.home);
  for (const [what, path] of [["program path", exec], ["home folder", workingDir]]) {
    if (path.length > MAX_PATH_CHARS) {
      throw new Error(
        `Cannot write the ${FORMAT}: the ${what} ${JSON.stringify(path)} is longer than ` +
          `${MAX_PATH_CHARS} characters, which Task Scheduler refuses; move it to a shorter path`,
      );
    }
  }
  const system = target.scope === "system";
  return fillTemplate(TASK_XML_TEMPLATE, {
    TASK_NAME,
    USER: xmlEscape(FORMAT, "user name", target.user),
    LOGON_TYPE: system ? "S4U" : "InteractiveToken",
    EXEC: xmlEscape(FORMAT, "program path", exec),
    ARGUMENTS: xmlEscape(FORMAT, "argument", args.map(windowsQuoteArg).join(" ")),
    WORKING_DIR: xmlEscape(FORMAT, "home folder", workingDir),
  }, { system, user: !system });
}

/**
 * Encode text as UTF-16 little-endian with a byte order mark, the encoding
 * `schtasks /Create /XML` requires.
 *
 * @param text the XML text
 * @returns the bytes to write
 */
export function encodeUtf16LeBom(text: string): Uint8Array {
  const bytes = new Uint8Array(2 + text.length * 2);
  bytes[0] = 0xff;
  bytes[1] = 0xfe;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 + i * 2] = unit & 0xff;
    bytes[3 + i * 2] = unit >> 8;
  }
  return bytes;
}

/**
 * Plan the install: check that Task Scheduler answers, write the task XML,
 * register it (`schtasks /Create /XML ... /F` replaces an existing task) and
 * start it now (`schtasks /Run`). A task already installed is ended first so
 * the new definition takes effect. A failure deletes what was registered and
 * written (or puts the previous task back).
 *
 * @param target the user and scope
 * @param launch the daemon's argv and log file
 * @param options `update`: the task XML is already there
 * @returns the plan
 */
export function planTaskInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean },
): ServicePlan {
  const path = taskXmlPath(target);
  const create = ["schtasks", "/Create", "/TN", TASK_NAME, "/XML", path, "/F"];
  const run = ["schtasks", "/Run", "/TN", TASK_NAME];
  const rollback: RollbackStep[] = options.update
    ? [{ kind: "restore" }, { kind: "run", argv: create }, { kind: "run", argv: run }]
    : [
      { kind: "run", argv: endTask().command.argv },
      { kind: "run", argv: ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"] },
      { kind: "restore" },
    ];
  return {
    servicePath: path,
    checks: [{
      kind: "run",
      argv: ["schtasks", "/Query", "/FO", "CSV", "/NH"],
      problem: "schtasks cannot reach Task Scheduler; is the Task Scheduler service running?",
    }],
    steps: [
      ...(options.update ? [disableTask(), endTask()] : []),
      {
        kind: "write",
        file: { path, contents: renderTaskXml(target, launch), encoding: "utf-16le-bom" },
      },
      { kind: "run", command: { argv: create } },
      { kind: "run", command: { argv: run } },
    ],
    rollback,
    failureHint: target.scope === "system"
      ? "a task that starts at boot with nobody logged on must be installed from an " +
        "Administrator prompt (Run as administrator); without admin rights, add --user for a " +
        "task that starts when you log on"
      : undefined,
    notes: [
      `Status: schtasks /Query /TN ${TASK_NAME} /V /FO LIST`,
      // In Windows form, as every path of the task.
      launch.logFile
        ? `Log file: ${win32.normalize(launch.logFile)}`
        : "Log file: none (log_file is empty)",
    ],
  };
}

/**
 * Plan the uninstall: disable the task (so its triggers stop), end the
 * running daemon, delete the task, remove the XML.
 *
 * @param target the user
 * @returns the plan
 */
export function planTaskUninstall(target: ServiceTarget): ServicePlan {
  const path = taskXmlPath(target);
  return {
    servicePath: path,
    steps: [
      disableTask(),
      endTask(),
      {
        kind: "run",
        command: { argv: ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"], mayFail: true },
      },
      { kind: "remove", path },
    ],
    checks: [],
    rollback: [],
    notes: [],
  };
}

function disableTask() {
  return {
    kind: "run" as const,
    command: { argv: ["schtasks", "/Change", "/TN", TASK_NAME, "/Disable"], mayFail: true },
  };
}

function endTask() {
  return {
    kind: "run" as const,
    command: { argv: ["schtasks", "/End", "/TN", TASK_NAME], mayFail: true },
  };
}

/**
 * Warn of the Windows shares (`\\server\share\...`) a boot task cannot open:
 * logged on with S4U it has no network credentials, so a watch folder,
 * `local` destination, archive folder, state folder, log file or key file on a
 * share would fail in the service while it works from the prompt. The task at
 * logon (`--user`) runs with the user's credentials.
 *
 * @param config the loaded config
 * @param target the scope (only `system` on Windows warns)
 * @returns one warning per path on a share
 */
export function s4uShareWarnings(config: Config, target: ServiceTarget): string[] {
  if (target.os !== "windows" || target.scope !== "system") return [];
  return configLocalPaths(config).flatMap(([what, path]) => {
    const share = uncShare(path);
    return share === null ? [] : [
      `${what} ${path} is on the Windows share ${share}, which the boot task cannot open: ` +
      "logged on with S4U (no password stored) it has no network credentials; install with " +
      "--user (a task at logon, with your credentials), or use a local folder or scp/rsync",
    ];
  });
}
