/**
 * `run`: the daemon (default command), `run --once`, `run --dry-run`.
 *
 * Where the daemon logs when its config cannot be loaded: it still writes why
 * it exits to a log file, because a service's console is often seen by no
 * one. Only the top-level `log_file` and `log_format` are read, without
 * validating the rest (aliases are not expanded). A file others can write is
 * not trusted with choosing where to write: the default log file is used.
 *
 * `run --dry-run`: see `dry_run.ts`.
 *
 * @module
 */
import { pastedWord } from "../shell_words.ts";
import { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { regularFileText, resolveConfigPath } from "../config/paths.ts";
import { COMMAND_LINE_CONFIG, type Config } from "../config/types.ts";
import { ConfigError, exitCodeFor, OutcomeError, UsageError } from "../errors.ts";
import { logExit, logger, notOurLog, setupLogging, shutdownLogging } from "../log/logging.ts";
import { runDaemon } from "../pipeline/daemon.ts";
import { openFileLimitProblem, readOpenFileLimit } from "../process/open_file_limit.ts";
import { assertThisMachinePaths, checkBeforeStart } from "../pipeline/start_checks.ts";
import { assertOwnFilesTrusted } from "../pipeline/own_files_trust.ts";
import { readNetworkMounts } from "../watch/fs_type.ts";
import { ProgramLauncher } from "../process/launcher.ts";
import { startProgramsThrough } from "../process/run.ts";
import { userPrograms } from "../pipeline/user_programs.ts";
import { type GlobalOptions, globalOptions, parseSet } from "./options.ts";
import { findCommand, withRunOptions } from "./daemon_state.ts";
import {
  addQuickStartOptions,
  checkQuickStart,
  checkWatchOption,
  quickStartConfig,
  type QuickStartOptions,
  saveQuickConfig,
  wantsQuickStart,
  withoutConfigHint,
} from "./quick_start.ts";
import { dirname, resolve } from "node:path";
import { isMap, parseDocument } from "yaml";
import { daemonShape } from "../config/schema.ts";
import { resolveLogFile } from "../config/resolve.ts";
import { configFileProblem } from "../config/file_mode.ts";
import { sharedSkipLog } from "../watch/skip_log.ts";
import { assertNoTemplateValues } from "../config/template_values.ts";

interface RunOptions extends QuickStartOptions {
  once?: boolean;
  dryRun?: boolean;
}

/** The `run` command. */
export function runCommand(): Command {
  const command = new Command("run")
    .description(
      "watch the folders and transfer every complete file (the daemon; the default command)",
    )
    .option("--once", "scan, transfer what is complete, then exit (1 if any file failed)")
    .option(
      "--dry-run",
      "print what would be transferred where; send and record nothing (1 if the destination " +
        "could not be asked)",
    );
  return addQuickStartOptions(command)
    .option("--save-config <file>", "with --to: also write the equivalent config file")
    .option("--force", "with --save-config: replace an existing file")
    .addHelpText(
      "after",
      "\nStops cleanly on SIGINT/SIGTERM (Ctrl-C): transfers in flight are abandoned without\n" +
        "leaving partial files under final names, and resumed at the next start. SIGHUP reloads\n" +
        "the config (not on Windows): a wrong file is refused and the running config kept.",
    )
    .action(async (options: RunOptions, command: Command) => {
      const global = globalOptions(command);
      let config: Config;
      if (options.force && options.saveConfig === undefined) {
        throw new UsageError("--force goes with --save-config FILE (to replace that file)");
      }
      if (options.dryRun && options.saveConfig !== undefined) {
        throw new UsageError("a dry run writes nothing: leave out --save-config, or --dry-run");
      }
      if (wantsQuickStart(options)) {
        if (global.config !== undefined) {
          throw new UsageError("give either --config or --watch/--to, not both");
        }
        try {
          const quick = quickStartConfig(options);
          config = quick.config;
          await checkQuickStart(config);
          // A run that ends by itself cannot wait for the folder to appear.
          if (options.once || options.dryRun) {
            await checkWatchOption(options.watch!, config.jobs[0].watch_path);
          }
          // Written once it passed what run checks: a saved config is one that runs.
          if (options.saveConfig !== undefined) {
            await saveQuickConfig(options.saveConfig, quick.text, options.force ?? false);
            console.error(`wrote ${quick.config.file}`);
          }
        } catch (error) {
          // Logged where a config file's run logs it: the log file its --set names, or the default.
          if (!options.dryRun) await logEarlyExit(optionsLogSettings(options), error, global);
          throw error;
        }
      } else {
        for (const flag of ["method", "set", "saveConfig", "ftpPasswordFile", "ftpPasswordEnv"]) {
          if (options[flag as keyof RunOptions] !== undefined) {
            throw new UsageError(
              "--method, --set, --save-config and --ftp-* go with --watch and --to",
            );
          }
        }
        const file = resolveConfigPath(global.config);
        try {
          config = await loadConfig(file);
          // The template init writes, never edited: nothing of the user's to watch or send to.
          assertNoTemplateValues(config, global.config);
        } catch (caught) {
          const typed = options.once ? "run --once" : options.dryRun ? "run --dry-run" : "run";
          const error = withoutConfigHint(caught, typed);
          if (!options.dryRun) await logEarlyExit(await earlyLogSettings(file), error, global);
          throw error;
        }
      }
      if (options.dryRun) {
        // What run would refuse, a dry run refuses too; what it would warn of is said (no log yet).
        await checkBeforeStart(
          config,
          undefined,
          (message) => console.error(`warning: ${message}`),
        );
        const { dryRun } = await import("./dry_run.ts");
        await dryRun(config, (line) => console.log(line));
        return;
      }
      const logging = (c: Config) =>
        setupLogging({
          verbose: global.verbose ?? false,
          level: global.logLevel,
          logFile: c.log_file,
          format: c.log_format,
        });
      assertThisMachinePaths(config); // Before the log file is made where it names.
      try {
        // Not a log folder or state_dir another account could write in, nor another file.
        await assertOwnFilesTrusted(config);
        await logging(config);
      } catch (error) {
        // A log file that cannot be opened is one problem of the config: say all of them.
        if (error instanceof ConfigError) await checkBeforeStart(config);
        throw error;
      }
      await checkOpenFileLimit();
      const status = wantsQuickStart(options)
        ? findCommand(config, "status")
        : `image-transfer${
          global.config === undefined ? "" : ` -c ${pastedWord(global.config)}`
        } status`;
      if (config.file === COMMAND_LINE_CONFIG && status !== "image-transfer status") {
        // Not in the default state folder, where status and stop look without a config file.
        logger("daemon").info(
          "This run's state_dir is not the default one: {status} and {stop} find it",
          {
            status,
            stop: findCommand(config, "stop"),
          },
        );
      }
      // Which watch folders are on (or hold) network volumes: asked while programs may run.
      await readNetworkMounts();
      // Given up once the status page listens (its socket stays open).
      let dropped: Dropped = { net: false, programs: null };
      const onListening = async () => {
        dropped = await dropUnneededPermissions(config);
      };
      let running = config;
      const reload = async (next: Config) => {
        assertPermissionsAvailable(next, dropped);
        await logging(next);
        running = next;
      };
      try {
        const summary = await runDaemon(config, {
          once: options.once ?? false,
          onReload: reload,
          onReloadRefused: () => logging(running),
          onListening,
          // What the patterns leave out: said of the options, listed by status given them.
          skipsSaid: {
            fromOptions: config.file === COMMAND_LINE_CONFIG,
            status: wantsQuickStart(options) ? withRunOptions("status", options) : status,
          },
          // Without a config file: what restart says to type to start it again, once stopped.
          runCommand: wantsQuickStart(options) ? withRunOptions("run", options) : undefined,
        });
        // A matching file that cannot even be opened by its name was not transferred either.
        const unnamed = sharedSkipLog.errors;
        if (options.once && summary.failed + unnamed > 0) {
          const why = [
            ...(summary.failed > 0 ? [`${summary.failed} file(s) failed`] : []),
            ...(unnamed > 0
              ? [`${unnamed} matching file(s) or folder(s) cannot be sent by their names or read`]
              : []),
          ];
          throw new OutcomeError(
            `Not every file was transferred: ${why.join(", and ")}; see the log and \`${status}\``,
          );
        }
      } catch (error) {
        logExit(error, exitCodeFor(error));
        throw error;
      } finally {
        dropped.launcher?.close();
        startProgramsThrough(null);
        await shutdownLogging();
      }
    });
}

/**
 * Write why the daemon exits before its config loaded to the log file of `settings` (the config's
 * or the options', see {@linkcode earlyLogSettings}); failing that, stderr alone has it.
 */
async function logEarlyExit(
  settings: EarlyLogSettings,
  error: unknown,
  global: GlobalOptions,
): Promise<void> {
  // Not a file the run would refuse as its log (another file named by mistake): not touched.
  if (!settings.logFile || notOurLog(settings.logFile) !== null) return;
  try {
    await setupLogging({
      verbose: global.verbose ?? false,
      level: global.logLevel,
      logFile: settings.logFile,
      format: settings.format,
    });
    logExit(error, exitCodeFor(error));
  } catch {
    // The log file cannot be opened: the error still reaches stderr.
  } finally {
    await shutdownLogging();
  }
}

/** Whether any job of `config` opens network connections of its own (after start-up). */
export function needsNetwork(config: Config): boolean {
  return config.jobs.some((job) => job.transfer_method === "ftp");
}

/**
 * The programs `config` makes the daemon start: `ssh`, `scp` and `rsync` for
 * the jobs that use them (and `ps`, to tell their connection's master), the
 * hooks and scheduled commands (paths checked at load), and `kill` for
 * stopping a transfer with everything it started.
 */
export function programsToStart(config: Config): string[] {
  const programs = new Set<string>();
  for (const job of config.jobs) {
    if (job.transfer_method === "scp" || job.transfer_method === "rsync") {
      programs.add("ssh").add(job.transfer_method);
      // To tell a hung shared connection's master by its process title before killing it.
      if (Deno.build.os !== "windows") programs.add("ps");
    }
  }
  // To tell a folder of the same disk mounted as a local destination or archive (`file_systems.ts`).
  const folders = config.jobs.some((job) =>
    job.transfer_method === "local" || job.after_transfer === "move"
  );
  if (folders && Deno.build.os === "linux") programs.add("findmnt");
  for (const { argv } of userPrograms(config.jobs)) programs.add(argv[0]);
  if (programs.size > 0 && Deno.build.os !== "windows") programs.add("kill");
  return [...programs];
}

/** What was given up at start-up. */
export interface Dropped {
  net: boolean;
  /** The programs the daemon may still start (through `launcher`); `null`: any. */
  programs: ReadonlySet<string> | null;
  launcher?: ProgramLauncher;
}

/**
 * Give up network access unless an ftp job needs it, and starting programs:
 * from now on only the launcher starts them, and only those of
 * {@linkcode programsToStart}. Should the launcher not load (a build without
 * its module), a warning says so and any program may still be started; a
 * runtime without the `worker-options` feature ends the program here (exit 70).
 */
export async function dropUnneededPermissions(config: Config): Promise<Dropped> {
  const net = !needsNetwork(config);
  if (net) await Deno.permissions.revoke({ name: "net" });
  const programs = programsToStart(config);
  let launcher: ProgramLauncher | undefined;
  if (programs.length > 0) {
    try {
      launcher = await ProgramLauncher.start(programs);
    } catch (error) {
      logger("daemon").warn(
        "Cannot confine starting programs to {programs} ({error}); this daemon may start any program",
        { programs: programs.join(", "), error: error instanceof Error ? error.message : error },
      );
      return { net, programs: null };
    }
    startProgramsThrough(launcher);
    logger("daemon").debug("Programs this daemon may start: {programs}", {
      programs: programs.join(", "),
    });
  }
  await Deno.permissions.revoke({ name: "run" });
  return { net, programs: new Set(programs), launcher };
}

/**
 * Refuse a reloaded config that needs a permission given up at start-up.
 *
 * @throws {Error} saying to restart the daemon
 */
export function assertPermissionsAvailable(config: Config, dropped: Dropped): void {
  if (dropped.net && needsNetwork(config)) {
    throw new Error(
      "an ftp job needs network access, which this daemon gave up at start-up because no job " +
        "used ftp; restart the daemon to add one",
    );
  }
  const allowed = dropped.programs;
  const added = allowed && programsToStart(config).filter((program) => !allowed.has(program));
  if (added && added.length > 0) {
    throw new Error(
      `the new config starts ${
        added.filter((program) => program !== "kill" && program !== "ps").join(", ")
      }, which this daemon may not start: it gave up ` +
        "at start-up starting any program its config did not name; restart the daemon to use " +
        "the new config",
    );
  }
}

/** The log settings of a config file that did not load. */
export interface EarlyLogSettings {
  /** Log file, or `""` for none. */
  logFile: string;
  format: "text" | "json";
}

/**
 * The log file and format `file` asks for, or the schema's defaults where it
 * cannot say; no log file when the default cannot be found (no home folder).
 */
export async function earlyLogSettings(file: string): Promise<EarlyLogSettings> {
  return logSettingsOf(await writtenLogSettings(file), dirname(resolve(file)));
}

/**
 * The log file and format the `--set log_file=...` and `--set log_format=...` of a run without a
 * config file ask for (the last of each, as the run takes them), or the defaults where they cannot
 * say; a relative path is taken from here, as the run takes it.
 */
export function optionsLogSettings(options: QuickStartOptions): EarlyLogSettings {
  const written: WrittenLogSettings = {};
  for (const pair of options.set ?? []) {
    try {
      const [key, value] = parseSet(pair);
      if (key === "log_file" || key === "log_format") written[key] = value;
    } catch { /* No KEY=VALUE: the run's error says so. */ }
  }
  return logSettingsOf(written, Deno.cwd());
}

/** The log settings `written` gives, its log file taken from `baseDir`, or the defaults. */
function logSettingsOf(written: WrittenLogSettings, baseDir: string): EarlyLogSettings {
  const format = daemonShape.log_format.safeParse(written.log_format);
  let logFile: string;
  try {
    const given = daemonShape.log_file.safeParse(written.log_file);
    logFile = resolveLogFile(
      given.success ? given.data : daemonShape.log_file.parse(undefined),
      baseDir,
    );
  } catch {
    logFile = ""; // No home folder: no default log file either.
  }
  return { logFile, format: format.success ? format.data : "text" };
}

/** The `log_file` and `log_format` values a config file or the options give, as written. */
interface WrittenLogSettings {
  log_file?: unknown;
  log_format?: unknown;
}

/** The top-level `log_file` and `log_format` values of `file`, where it can be trusted with them. */
async function writtenLogSettings(file: string): Promise<WrittenLogSettings> {
  // Not a pipe or a device (a refused config may be one), whose reading would never end.
  const text = await regularFileText(file);
  if (text === null) return {};
  if (await configFileProblem(file) !== undefined) return {};
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) return {};
  // Without keepScalar, get() gives a scalar's value, or the node of anything else.
  return { log_file: doc.contents.get("log_file"), log_format: doc.contents.get("log_format") };
}

/**
 * Warn of an open-file limit too low for the daemon's transfers; refuse one so low that it
 * cannot work (the runtime itself may crash for want of files), before anything starts.
 *
 * @throws {Error} below `OPEN_FILES_MINIMUM`
 */
async function checkOpenFileLimit(): Promise<void> {
  const limit = await readOpenFileLimit();
  const problem = limit === null ? null : openFileLimitProblem(limit);
  if (problem === null) return;
  if (problem.level === "refuse") {
    logger("daemon").error("Cannot start: {problem}", { problem: problem.message });
    throw new Error(`Cannot start: ${problem.message}`);
  }
  logger("daemon").warn("Low open-file limit: {problem}", { problem: problem.message });
}
