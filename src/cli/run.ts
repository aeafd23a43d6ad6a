/**
 * `run`: the daemon (default command), `run --once`, `run --dry-run`.
 *
 * @module
 */
import { Command } from "commander";
import { loadConfig, resolveConfigPath } from "../config/load.ts";
import { earlyLogSettings } from "../config/early_log.ts";
import type { Config } from "../config/types.ts";
import { exitCodeFor, UsageError } from "../errors.ts";
import { logExit, setupLogging, shutdownLogging } from "../log/logging.ts";
import { runDaemon } from "../pipeline/daemon.ts";
import { dryRun } from "../pipeline/dry_run.ts";
import {
  assertPermissionsAvailable,
  type Dropped,
  dropUnneededPermissions,
} from "./network_permission.ts";
import { globalOptions } from "./options.ts";
import {
  addQuickStartOptions,
  quickStartConfig,
  type QuickStartOptions,
  saveQuickConfig,
  wantsQuickStart,
} from "./quick_start.ts";

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
    .option("--dry-run", "print what would be transferred where; change nothing");
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
      if (wantsQuickStart(options)) {
        if (global.config !== undefined) {
          throw new UsageError("give either --config or --watch/--to, not both");
        }
        const quick = quickStartConfig(options);
        if (options.saveConfig !== undefined) {
          await saveQuickConfig(options.saveConfig, quick.text, options.force ?? false);
          console.error(`wrote ${quick.config.file}`);
        }
        config = quick.config;
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
        } catch (error) {
          if (!options.dryRun) await logEarlyExit(file, error, global.verbose ?? false);
          throw error;
        }
      }
      if (options.dryRun) {
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
      await logging(config);
      // Given up once the status page listens (its socket stays open), unless a job needs them.
      let dropped: Dropped = { net: false, run: false };
      const onListening = async () => {
        dropped = await dropUnneededPermissions(config);
      };
      const reload = async (next: Config) => {
        assertPermissionsAvailable(next, dropped);
        await logging(next);
      };
      try {
        const summary = await runDaemon(config, {
          once: options.once ?? false,
          onReload: reload,
          onListening,
        });
        if (options.once && summary.failed > 0) {
          throw new Error(
            `${summary.failed} file(s) could not be transferred; see the log and \`image-transfer status\``,
          );
        }
      } catch (error) {
        logExit(error, exitCodeFor(error));
        throw error;
      } finally {
        await shutdownLogging();
      }
    });
}

/**
 * Write why the daemon exits before its config loaded to the log file the
 * config names (or the default one); failing that, stderr alone has it.
 */
async function logEarlyExit(file: string, error: unknown, verbose: boolean): Promise<void> {
  const settings = await earlyLogSettings(file);
  if (!settings.logFile) return;
  try {
    await setupLogging({ verbose, logFile: settings.logFile, format: settings.format });
    logExit(error, exitCodeFor(error));
  } catch {
    // The log file cannot be opened: the error still reaches stderr.
  } finally {
    await shutdownLogging();
  }
}
