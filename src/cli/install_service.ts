/**
 * `install-service`: run the daemon as a service (systemd, launchd or Task Scheduler).
 *
 * The command line a service starts, and which paths of a file made for another OS are this
 * machine's: `service/launch.ts`.
 *
 * Show a service plan without carrying it out (`--print`): the checks, each
 * file with its full contents, each folder and command, in the order they
 * would happen, then the notes an install prints.
 *
 * `uninstall-service`: stop the service and remove what `install-service` wrote.
 * Both pick the per-OS planner: systemd on Linux, launchd on macOS, Task Scheduler on Windows.
 *
 * @module
 */
import { Command, Option } from "commander";
import { globalOptions } from "./options.ts";
import { initCommandFor, loadConfig } from "../config/load.ts";
import { configCommand, pathExists, resolveConfigPath } from "../config/paths.ts";
import type { JobConfig } from "../config/types.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { addQuickStartOptions, type QuickStartOptions, wantsQuickStart } from "./quick_start.ts";
import { pastedWord } from "../shell_words.ts";
import { checkBeforeStart } from "../pipeline/start_checks.ts";
import {
  assertFoundAsService,
  bareNamedPrograms,
  SERVICE_PATH,
} from "../pipeline/user_programs.ts";
import { applyPlan, encodeFile, installNotes, underRoot } from "../service/apply.ts";
import {
  launchdPlistPath,
  planLaunchdInstall,
  planLaunchdUninstall,
  privacyWarnings,
} from "../service/launchd.ts";
import { resolveServiceTarget, type ServiceOptions } from "../service/target.ts";
import {
  canRemove,
  findOldServices,
  leftOldServicesProblem,
  removalSteps,
} from "../service/old_tool.ts";
import {
  type DaemonLaunch,
  SERVICE_OSES,
  type ServiceOs,
  type ServicePlan,
  type ServiceTarget,
} from "../service/plan.ts";
import {
  daemonFolders,
  planSystemdInstall,
  planSystemdUninstall,
  systemdUnitPath,
} from "../service/systemd.ts";
import { daemonArgv, REPO_ROOT, thisMachinePaths } from "../service/launch.ts";
import { displayArgv } from "../service/escape.ts";
import { assertNoTemplateValues } from "../config/template_values.ts";
import {
  planTaskInstall,
  planTaskUninstall,
  s4uShareWarnings,
  taskXmlPath,
} from "../service/task_scheduler.ts";

/**
 * Add the options `install-service` and `uninstall-service` share (`--user`
 * said as the one or the other does it).
 */
export function addServiceOptions(command: Command, uninstall = false): Command {
  return command
    .option(
      "--user",
      uninstall
        ? "remove the service installed with --user (systemd user unit, launchd agent, task " +
          "at logon)"
        : "run in your own login session (systemd user unit, launchd agent, task at logon) " +
          "instead of starting at boot",
    )
    .option("--print", "show the checks, files and commands, change nothing")
    .addOption(
      new Option(
        "--root <dir>",
        "write under <dir> instead of / (packaging, testing); create no folders, run no commands",
      ),
    )
    .addOption(
      new Option("--os <os>", "plan for another OS (only with --print or --root)").choices(
        SERVICE_OSES,
      ),
    );
}

/**
 * Install or update the service: validate the config, render the service
 * file, write it and start the service.
 *
 * @param configOption `-c` as given, if any
 * @param options the service options
 * @throws {ConfigError} when the config is missing or invalid
 * @throws {UsageError} for impossible option combinations
 */
export async function runInstallService(
  configOption: string | undefined,
  options: ServiceOptions,
): Promise<void> {
  const { target, account, warnings } = resolveServiceTarget(options, "install");
  if (account.viaSudo) {
    // Under sudo, `~` (in -c and inside the config) means the invoking user's home,
    // as it will for the daemon, which runs as that user.
    Deno.env.set("HOME", account.home);
  }
  const configPath = resolveConfigPath(configOption);
  if (!(await pathExists(configPath))) {
    throw new ConfigError(
      `Cannot install the service: config ${configPath} does not exist; ` +
        `create it with \`${initCommandFor(configPath)}\`, or check the path`,
      { file: configPath },
    );
  }
  // The daemon will run as `account`: the config must belong to root or to it.
  const config = await loadConfig(configPath, account.uid);
  assertNoTemplateValues(config, configOption);
  // What `run` would refuse is refused now, not in the service's restart loop.
  const bare = bareNamedPrograms(config.jobs);
  // For another OS (--print, --root) its paths are that machine's: warned of, not refused.
  const warn = (message: string) => console.error(`warning: ${message}`);
  await checkBeforeStart(config, account.uid, warn, target.os !== Deno.build.os && target.os);
  const itsPath = target.os === Deno.build.os ? SERVICE_PATH[target.os] : undefined;
  if (itsPath) assertFoundAsService(bare, config.jobs, config.file || configPath, itsPath);
  // After the checks, which give a hook's bare program name its path on PATH.
  const folders = daemonFolders(config);
  const launch = {
    argv: daemonArgv(target.os, Deno.execPath(), REPO_ROOT, config.file || configPath),
    configPath: config.file || configPath,
    logFile: config.log_file,
    ownFolders: folders.own,
    writtenFolders: folders.written,
    readPaths: folders.read,
  };
  const path = servicePath(target);
  const onDisk = underRoot(options.root, path);
  const previous = await readIfExists(onDisk);
  // The old tool's service, in either scope: replaced where this install may remove it, else
  // the install is refused (two daemons would send the same files). On Linux, also a file at
  // the new unit's own path that this program did not write, which the install overwrites.
  const found = await findOldServices(target, options.root);
  const processIsRoot = Deno.build.os !== "windows" && Deno.uid() === 0;
  const left = found.filter((old) => !canRemove(old, target, processIsRoot));
  const problem = left.length > 0 && target.os !== "windows"
    ? leftOldServicesProblem(left, target.os)
    : undefined;
  if (problem !== undefined && !options.print) {
    // Exit 2, without the usage hint a UsageError gets: the command was typed right.
    throw new ConfigError(`Cannot install the service: ${problem}`);
  }
  const removed = found.filter((old) => !left.includes(old));
  const overwritten = previous !== undefined && !/written by `image-transfer install-service`/i
    .test(new TextDecoder(target.os === "windows" ? "utf-16le" : "utf-8").decode(previous));
  const oldFiles = [...removed.map((old) => old.path), ...(overwritten ? [path] : [])];
  const plan = planInstall(target, launch, { update: previous !== undefined });
  plan.steps.unshift(...removed.flatMap((old) => removalSteps(old, target)));
  const shares = [
    ...s4uShareWarnings(config, target),
    ...privacyWarnings(config, target, launch.argv[0]),
  ];
  for (const warning of [...warnings, ...passwordEnvWarnings(config.jobs, target), ...shares]) {
    console.error(`warning: ${warning}`);
  }
  // Only shown (--print): what installing would refuse, with the commands that clear it.
  if (problem !== undefined) console.error(`warning: installing is refused while ${problem}`);
  for (const oldFile of oldFiles) {
    console.log(
      `${options.print ? "Would replace" : "Replacing"} the old tool's service ${oldFile} ` +
        "(written by image-transfer-service --install)",
    );
  }
  // For another OS (--os): which paths in the file are this machine's, to be changed there.
  const exec = Deno.execPath();
  for (const line of thisMachinePaths(target, Deno.build.os, exec, REPO_ROOT, launch.configPath)) {
    console.error(line);
  }
  if (options.print) {
    // The plan, then what an install would tell (after the file, so its block stays whole).
    for (const line of formatPlan(plan)) console.log(line);
    for (const note of await installNotes(target, launch, plan, options.root)) console.log(note);
    return;
  }
  const write = plan.steps.find((step) => step.kind === "write");
  const now = write?.kind === "write" ? encodeFile(write.file) : undefined;
  const unchanged = previous !== undefined && now?.length === previous.length &&
    now.every((byte, i) => byte === previous[i]);
  await applyPlan(plan, {
    root: options.root,
    log: (line) => console.log(line),
    warn: (line) => console.error(`warning: ${line}`),
  });
  if (previous === undefined) console.log(`Installed the service: ${onDisk}`);
  else if (unchanged) console.log(`Already installed, up to date: ${onDisk}`);
  else console.log(`Already installed, updated: ${onDisk}`);
  console.log(`Config: ${launch.configPath}`);
  for (const note of await installNotes(target, launch, plan, options.root)) console.log(note);
}

/** Jobs whose FTP password comes from a variable of this shell, which the service does not get. */
function passwordEnvWarnings(jobs: JobConfig[], target: ServiceTarget): string[] {
  const how = (name: string) =>
    target.os === "linux"
      ? `a drop-in (\`${target.scope === "user" ? "systemctl --user" : "sudo systemctl"} edit ` +
        "image-transfer`, then `[Service]` and `EnvironmentFile=` a file of mode 600 holding " +
        `${name}=<password>)`
      : target.os === "windows"
      ? "a user or system environment variable (`setx`)"
      : "`EnvironmentVariables` in the plist";
  return jobs.flatMap((job) =>
    job.transfer_method === "ftp" && job.ftp_password_env !== null
      ? [
        `job ${job.name} reads its FTP password from the environment variable ` +
        `${job.ftp_password_env} (ftp_password_env), but the service starts with the ` +
        "service manager's environment, not this shell's: its logins fail until the " +
        `variable is given to the service through ${how(job.ftp_password_env)}; or use ` +
        "ftp_password_file",
      ]
      : []
  );
}

/** The `install-service` command. */
export function installServiceCommand(): Command {
  const command = addServiceOptions(
    new Command("install-service").option(
      "--allow-root",
      "let the service run as root (not recommended)",
    ).description(
      "run the daemon as a service that starts at boot and restarts after a crash: a systemd " +
        "unit (Linux), a launchd daemon (macOS, with sudo) or a scheduled task (Windows, as " +
        "Administrator); re-running updates and restarts it",
    ),
  ).action(async (options: ServiceOptions & QuickStartOptions, command: Command) => {
    const config = globalOptions(command).config;
    if (wantsQuickStart(options) || options.saveConfig) throw await configFirst(options, config);
    await runInstallService(config, options);
  });
  for (const option of RUN_OPTIONS) command.addOption(option.hideHelp());
  return command.addOption(new Option("--force").hideHelp());
}

/** `run`'s options for a config-free run, and install-service's: the refusal names them as typed */
const RUN_OPTIONS = addQuickStartOptions(new Command()).option("--save-config <f>").options;
const SERVICE_OPTIONS = addServiceOptions(new Command()).option("--allow-root").options;

/** Why `install-service --watch ... --to ...` is refused: a service runs a config file's jobs. */
async function configFirst(o: ServiceOptions & QuickStartOptions, config?: string) {
  const os = (o.os ?? Deno.build.os) as ServiceOs; // With --os: that system's file and shell.
  const file = resolveConfigPath(o.saveConfig ?? config, os);
  const exists = os === Deno.build.os && await pathExists(file);
  const g: Record<string, unknown> = { watch: "DIR", to: "DEST", ...o, saveConfig: file };
  // Each option as typed, each word quoted for its shell (a boolean one: its name alone).
  const typed = (options: readonly Option[], values: object) =>
    options.flatMap((opt) =>
      [(values as Record<string, unknown>)[opt.attributeName()] ?? []].flat().flatMap((v) =>
        v === true ? [opt.long!] : [opt.long!, pastedWord(`${v}`, os)]
      )
    );
  const tail = exists ? "--force --once" : "--once"; // the file there replaced only with --force
  const run = ["image-transfer run", ...typed(RUN_OPTIONS, g), tail].join(" ");
  const install = [configCommand(file, "install-service", os), ...typed(SERVICE_OPTIONS, o)]
    .join(" ");
  return new UsageError(
    "install-service takes the jobs of a config file, not --watch/--to/--save-config: write " +
      `one with \`${run}\` (it sends what is complete now and exits), then \`${install}\`` +
      (exists ? `; or, to keep ${file} as it is: \`${install}\` alone` : ""),
  );
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Describe every check and step of `plan`.
 *
 * @param plan the plan
 * @returns lines for standard output
 */
export function formatPlan(plan: ServicePlan): string[] {
  const lines: string[] = [];
  for (const check of plan.checks) {
    lines.push(
      check.kind === "exists"
        ? `would check: ${check.path} exists`
        : `would check: ${displayArgv(check.argv)} succeeds`,
    );
  }
  for (const step of plan.steps) {
    if (step.kind === "write") {
      const encoding = step.file.encoding === "utf-16le-bom" ? "UTF-16LE with BOM" : "UTF-8";
      lines.push(`would write ${step.file.path} (${encoding}):`);
      lines.push("-----BEGIN FILE-----");
      lines.push(...step.file.contents.replace(/\n$/, "").split("\n"));
      lines.push("-----END FILE-----");
    } else if (step.kind === "mkdir") {
      const owner = step.owner ? ` (owned by uid ${step.owner.uid}, gid ${step.owner.gid})` : "";
      lines.push(`would create ${step.path} if missing${owner}`);
    } else if (step.kind === "remove") {
      lines.push(`would remove ${step.path}`);
    } else {
      const { argv, fallback, mayFail } = step.command;
      let line = `would run: ${displayArgv(argv)}`;
      if (fallback) line += `   (if it fails: ${displayArgv(fallback)})`;
      if (mayFail) line += "   (a failure is only a warning)";
      lines.push(line);
    }
  }
  return lines;
}

/**
 * Stop and remove the service. Says so, and changes nothing, when no service file is there.
 *
 * @param options the service options (as for `install-service`)
 * @throws {UsageError} for impossible option combinations
 * @throws {CommandError} when the service manager refuses
 */
export async function runUninstallService(options: ServiceOptions): Promise<void> {
  const { target } = resolveServiceTarget(options, "uninstall");
  const plan = planUninstall(target);
  const onDisk = underRoot(options.root, plan.servicePath);
  // --print --os for another system (no --root): its file is on that machine, not looked for here.
  const elsewhere = options.print && target.os !== Deno.build.os && options.root === undefined;
  if (elsewhere) {
    console.log(
      `Plan for ${target.os} (its service file is not looked for on this machine; paths below ` +
        "this machine's home folder are, there, below the service account's):",
    );
  }
  try {
    if (!elsewhere) await Deno.lstat(onDisk);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log(`Nothing to uninstall: ${onDisk} does not exist`);
    return;
  }
  if (options.print) {
    for (const line of formatPlan(plan)) console.log(line);
    return;
  }
  await applyPlan(plan, {
    root: options.root,
    log: (line) => console.log(line),
    warn: (line) => console.error(`warning: ${line}`),
  });
  console.log(`Uninstalled the service: removed ${onDisk}`);
}

/** The `uninstall-service` command. */
export function uninstallServiceCommand(): Command {
  return addServiceOptions(
    new Command("uninstall-service").description(
      "stop the service and remove what install-service wrote (use the same --user and sudo)",
    ),
    true,
  ).action(async (options: ServiceOptions) => {
    await runUninstallService(options);
  });
}

/**
 * Tell which file the service of `target` lives in.
 *
 * @param target where and as whom
 * @returns absolute path of the unit, plist or task XML
 */
export function servicePath(target: ServiceTarget): string {
  switch (target.os) {
    case "linux":
      return systemdUnitPath(target);
    case "darwin":
      return launchdPlistPath(target);
    case "windows":
      return taskXmlPath(target);
  }
}

/**
 * Plan installing (or updating) the service.
 *
 * @param target where and as whom
 * @param launch the daemon's argv and log file
 * @param options `update`: the service file already exists
 * @returns the plan
 * @throws {Error} when a path cannot be written in the service file format
 */
export function planInstall(
  target: ServiceTarget,
  launch: DaemonLaunch,
  options: { update: boolean },
): ServicePlan {
  switch (target.os) {
    case "linux":
      return planSystemdInstall(target, launch, options);
    case "darwin":
      return planLaunchdInstall(target, launch, options);
    case "windows":
      return planTaskInstall(target, launch, options);
  }
}

/**
 * Plan removing the service.
 *
 * @param target where and as whom it was installed
 * @returns the plan
 */
export function planUninstall(target: ServiceTarget): ServicePlan {
  switch (target.os) {
    case "linux":
      return planSystemdUninstall(target);
    case "darwin":
      return planLaunchdUninstall(target);
    case "windows":
      return planTaskUninstall(target);
  }
}
