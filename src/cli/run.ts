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
import { readNetworkMounts } from "../watch/fs_type.ts";
import { dryRun } from "../pipeline/dry_run.ts";
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
      // Which watch folders are on network volumes (macOS, Windows): asked while programs may run.
      await readNetworkMounts();
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

/** Whether any job of `config` opens network connections of its own (after start-up). */
export function needsNetwork(config: Config): boolean {
  return config.jobs.some((job) => job.transfer_method === "ftp");
}

/** Whether any job of `config` starts programs (ssh, scp, rsync, hooks, scheduled commands). */
export function needsPrograms(config: Config): boolean {
  return config.jobs.some((job) =>
    job.transfer_method === "scp" || job.transfer_method === "rsync" ||
    job.on_transfer.length > 0 || job.on_failure.length > 0 ||
    job.schedules.some((entry) => entry.action === "command")
  );
}

/** What was given up at start-up. */
export interface Dropped {
  net: boolean;
  run: boolean;
}

/** Give up network access and starting programs for the rest of the process unless `config` needs them. */
export async function dropUnneededPermissions(config: Config): Promise<Dropped> {
  const dropped = { net: !needsNetwork(config), run: !needsPrograms(config) };
  if (dropped.net) await Deno.permissions.revoke({ name: "net" });
  if (dropped.run) await Deno.permissions.revoke({ name: "run" });
  return dropped;
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
  if (dropped.run && needsPrograms(config)) {
    throw new Error(
      "the new config starts programs (ssh, scp, rsync, a hook or a scheduled command), which " +
        "this daemon gave up at start-up because no job started any; restart the daemon to use it",
    );
  }
}
