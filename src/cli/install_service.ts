/**
 * `install-service`: run the daemon as a service (systemd, launchd or Task Scheduler).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { globalOptions } from "./options.ts";
import { loadConfig, resolveConfigPath } from "../config/load.ts";
import { ConfigError } from "../errors.ts";
import { checkBeforeStart } from "../pipeline/preflight.ts";
import { daemonArgv } from "../service/launch_command.ts";
import { planInstall, servicePath } from "../service/planner.ts";
import { applyPlan, encodeFile, underRoot } from "../service/apply.ts";
import { formatPlan } from "../service/format_plan.ts";
import { oldLaunchdPlistPath } from "../service/launchd.ts";
import { resolveServiceTarget, type ServiceOptions } from "../service/target.ts";
import { SERVICE_OSES } from "../service/plan.ts";
import { daemonFolders } from "../service/writable_paths.ts";

/** The source checkout, used when running from source (`deno run`). */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Add the options `install-service` and `uninstall-service` share. */
export function addServiceOptions(command: Command): Command {
  return command
    .option(
      "--user",
      "run in your own login session (systemd user unit, launchd agent, task at logon) " +
        "instead of starting at boot",
    )
    .option("--print", "show the checks, files and commands, change nothing")
    .addOption(
      new Option("--root <dir>", "write under <dir> instead of / and run no commands (testing)"),
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
  if (!(await exists(configPath))) {
    throw new ConfigError(
      `Cannot install the service: config ${configPath} does not exist; ` +
        "create it with `image-transfer init` or pass -c <file>",
      { file: configPath },
    );
  }
  // The daemon will run as `account`: the config must belong to root or to it.
  const config = await loadConfig(configPath, account.uid);
  const folders = daemonFolders(config);
  // What `run` would refuse is refused now, not in the service's restart loop.
  await checkBeforeStart(config, account.uid);
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
  // The old tool's service: on macOS under its own label; elsewhere a file of the same name
  // that this program did not write.
  const oldPlist = target.os === "darwin" ? oldLaunchdPlistPath(target) : null;
  const replacesOld = oldPlist !== null && await exists(underRoot(options.root, oldPlist));
  const oldFile = replacesOld
    ? oldPlist
    : previous !== undefined && !/written by `image-transfer install-service`/i.test(
        new TextDecoder(target.os === "windows" ? "utf-16le" : "utf-8").decode(previous),
      )
    ? path
    : null;
  const plan = planInstall(target, launch, { update: previous !== undefined, replacesOld });
  for (const warning of warnings) console.error(`warning: ${warning}`);
  if (oldFile !== null) {
    console.log(
      `${options.print ? "Would replace" : "Replacing"} the old tool's service ${oldFile} ` +
        "(written by image-transfer-service --install)",
    );
  }
  if (options.print) {
    for (const line of formatPlan(plan)) console.log(line);
    return;
  }
  const write = plan.steps.find((step) => step.kind === "write");
  const unchanged = previous !== undefined && write?.kind === "write" &&
    equalBytes(previous, encodeFile(write.file));
  await applyPlan(plan, {
    root: options.root,
    log: (line) => console.log(line),
    warn: (line) => console.error(`warning: ${line}`),
  });
  if (previous === undefined) console.log(`Installed the service: ${onDisk}`);
  else if (unchanged) console.log(`Already installed, up to date: ${onDisk}`);
  else console.log(`Already installed, updated: ${onDisk}`);
  console.log(`Config: ${launch.configPath}`);
  for (const note of plan.notes) console.log(note);
  if (target.os === "linux" && target.scope === "system") {
    for (const folder of launch.writtenFolders) {
      if (!(await exists(underRoot(options.root, folder)))) {
        console.log(
          `Note: the folder ${folder} does not exist yet; create it (writable by ` +
            `${target.user}) before files arrive: the service may write only into folders ` +
            "that exist when it starts",
        );
      }
    }
  }
}

/** The `install-service` command. */
export function installServiceCommand(): Command {
  return addServiceOptions(
    new Command("install-service").option(
      "--allow-root",
      "let the service run as root (not recommended)",
    ).description(
      "run the daemon as a service that starts at boot and restarts after a crash: a systemd " +
        "unit (Linux), a launchd daemon (macOS, with sudo) or a scheduled task (Windows, as " +
        "Administrator); re-running updates and restarts it",
    ),
  ).action(async (options: ServiceOptions, command: Command) => {
    await runInstallService(globalOptions(command).config, options);
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function readIfExists(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
