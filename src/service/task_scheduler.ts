/**
 * Windows: a Task Scheduler task that starts the daemon at logon as the
 * current user (no stored password) and restarts it on failure.
 *
 * @module
 */
import { win32 } from "node:path";
import { fillTemplate } from "./template.ts";
import { TASK_XML_TEMPLATE } from "./templates.ts";
import { windowsQuoteArg, xmlEscape } from "./escape.ts";
import type { DaemonLaunch, ServicePlan, ServiceTarget } from "./plan.ts";

/** The task's name in Task Scheduler. */
export const TASK_NAME = "ImageTransferDaemon";

const FORMAT = "scheduled task";

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
 * @param target the user (`DOMAIN\name` or `name`)
 * @param launch the daemon's argv
 * @returns the task XML
 * @throws {Error} when a path holds characters the task cannot carry, including `%`,
 *   which Task Scheduler would expand as an environment variable
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
  return fillTemplate(TASK_XML_TEMPLATE, {
    TASK_NAME,
    USER: xmlEscape(FORMAT, "user name", target.user),
    EXEC: xmlEscape(FORMAT, "program path", win32.normalize(program)),
    ARGUMENTS: xmlEscape(FORMAT, "argument", args.map(windowsQuoteArg).join(" ")),
    WORKING_DIR: xmlEscape(FORMAT, "home folder", win32.normalize(target.home)),
  });
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
 * Plan the install: write the task XML, register it (`schtasks /Create /XML
 * ... /F` replaces an existing task) and start it now (`schtasks /Run`).
 * A task already installed is ended first so the new definition takes effect.
 *
 * @param target the user
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
  return {
    servicePath: path,
    steps: [
      ...(options.update ? [endTask()] : []),
      {
        kind: "write",
        file: { path, contents: renderTaskXml(target, launch), encoding: "utf-16le-bom" },
      },
      {
        kind: "run",
        command: { argv: ["schtasks", "/Create", "/TN", TASK_NAME, "/XML", path, "/F"] },
      },
      { kind: "run", command: { argv: ["schtasks", "/Run", "/TN", TASK_NAME] } },
    ],
    notes: [
      `Status: schtasks /Query /TN ${TASK_NAME} /V /FO LIST`,
      launch.logFile ? `Log file: ${launch.logFile}` : "Log file: none (log_file is empty)",
    ],
  };
}

/**
 * Plan the uninstall: end the running task, delete it, remove the XML.
 *
 * @param target the user
 * @returns the plan
 */
export function planTaskUninstall(target: ServiceTarget): ServicePlan {
  const path = taskXmlPath(target);
  return {
    servicePath: path,
    steps: [
      endTask(),
      {
        kind: "run",
        command: { argv: ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"], mayFail: true },
      },
      { kind: "remove", path },
    ],
    notes: [],
  };
}

function endTask() {
  return {
    kind: "run" as const,
    command: { argv: ["schtasks", "/End", "/TN", TASK_NAME], mayFail: true },
  };
}
