/**
 * `stop` and `restart`: the daemon of a config, found through its state
 * folder's lock and PID file, is sent SIGTERM (it stops cleanly, as on
 * Ctrl-C) and awaited; `restart` then runs it again in this terminal.
 *
 * @module
 */
import { join } from "node:path";
import { Command } from "commander";
import { PID_FILE } from "../ledger/daemon_lock.ts";
import { runProcess } from "../process/run.ts";
import { LAUNCHD_LABEL } from "../service/launchd.ts";
import { SYSTEMD_UNIT_NAME } from "../service/systemd.ts";
import { TASK_NAME } from "../service/task_scheduler.ts";
import { CommandError, UsageError } from "../errors.ts";
import { loadConfig } from "../config/load.ts";
import { configCommand } from "../config/paths.ts";
import { COMMAND_LINE_CONFIG } from "../config/types.ts";
import { checkBeforeStart } from "../pipeline/start_checks.ts";
import { assertNoTemplateValues } from "../config/template_values.ts";
import {
  addFindOptions,
  daemonConfig,
  daemonStatus,
  findCommand,
  type FindOptions,
  otherStateDirHint,
  statusConfig,
} from "./daemon_state.ts";
import { type GlobalOptions, globalOptions } from "./options.ts";

/** How long `stop` waits for the daemon to finish stopping. */
const STOP_WAIT_MS = 60_000;

/**
 * Stop the daemon running on `stateDir`.
 *
 * @returns the pid stopped, or `undefined` when none was running
 * @throws {Error} when it cannot be signalled or does not stop in time
 */
export async function stopDaemon(stateDir: string): Promise<number | undefined> {
  const status = daemonStatus(stateDir);
  if (!status.running) return undefined;
  const pidFile = join(stateDir, PID_FILE);
  if (status.pid === undefined) {
    throw new Error(
      `A daemon holds state_dir ${stateDir} but wrote no ${pidFile}; stop it with Ctrl-C ` +
        "or through its service manager",
    );
  }
  if (Deno.build.os === "windows") {
    throw new Error(
      `Cannot stop pid ${status.pid} from here on Windows: stop it with Ctrl-C in its window, ` +
        `or end its task: schtasks /End /TN ${TASK_NAME}`,
    );
  }
  try {
    Deno.kill(status.pid, "SIGTERM");
  } catch (error) {
    throw new Error(
      `Cannot stop the daemon (pid ${status.pid}, from ${pidFile}): ${
        error instanceof Error ? error.message : String(error)
      }; it runs as another user? Use sudo, or its service manager`,
      { cause: error },
    );
  }
  const deadline = Date.now() + STOP_WAIT_MS;
  while (daemonStatus(stateDir).running) {
    if (Date.now() > deadline) {
      throw new Error(
        `The daemon (pid ${status.pid}) has not stopped ${STOP_WAIT_MS / 1000} s after SIGTERM; ` +
          "see its log",
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status.pid;
}

/**
 * Stop the daemon of the config `global` names, or of the run without a config file `find` gives
 * the options of, saying what happened.
 */
async function stopFor(global: GlobalOptions, find: FindOptions = {}): Promise<void> {
  // A config the daemon refused to reload still names the state folder to find it by.
  const { config, problem } = await daemonConfig(global.config, find);
  if (problem) console.error(`warning: ${problem.message.split("\n")[0]} (stopping all the same)`);
  const pid = await stopDaemon(config.state_dir);
  // No config file, nor the options of a run without one: the default state folder's.
  const elsewhere = !problem && config.file !== COMMAND_LINE_CONFIG && config.jobs.length === 0;
  console.log(
    pid === undefined
      ? `No daemon is running with state_dir ${config.state_dir}` +
        (elsewhere ? ` (${otherStateDirHint("stop")})` : "")
      : `Stopped the daemon (pid ${pid})`,
  );
}

/** The `stop` command. */
export function stopCommand(): Command {
  return addFindOptions(new Command("stop"))
    .description("stop the running daemon of this config (through its PID file), and wait for it")
    .action(async (options: FindOptions, command: Command) => {
      await stopFor(globalOptions(command), options);
    });
}

/**
 * The command that restarts a daemon its service manager started, by the
 * `service` its service file gave it; `null` for a daemon started by hand.
 */
export function serviceRestartArgv(service: string | undefined, uid: number): string[] | null {
  switch (service) {
    case "systemd-system":
      return ["systemctl", "restart", SYSTEMD_UNIT_NAME];
    case "systemd-user":
      return ["systemctl", "--user", "restart", SYSTEMD_UNIT_NAME];
    case "launchd-system":
      return ["launchctl", "kickstart", "-k", `system/${LAUNCHD_LABEL}`];
    case "launchd-user":
      return ["launchctl", "kickstart", "-k", `gui/${uid}/${LAUNCHD_LABEL}`];
    default:
      return null;
  }
}

/**
 * The `restart` command: a daemon its service manager started is restarted
 * through it; any other is stopped, then run in this terminal (`run` is the
 * callback, so the daemon starts as the `run` command would).
 */
export function restartCommand(run: (global: GlobalOptions) => Promise<void>): Command {
  return addFindOptions(new Command("restart"))
    .description(
      "restart the running daemon of this config: through its service manager when it runs " +
        "as a service, else stop it and run it here",
    )
    .action(async (options: FindOptions, command: Command) => {
      const global = globalOptions(command);
      // The options of a run without a config file find its daemon, as for status and stop.
      const config = await statusConfig(global.config, options);
      const found = config.file === COMMAND_LINE_CONFIG;
      // Nothing is stopped that cannot be started again: the config loads (above), is not the
      // untouched template, and passes what run checks before it starts (a hook program or login
      // file that is not there...).
      if (config.jobs.length > 0 && !found) {
        assertNoTemplateValues(config, global.config);
        await checkBeforeStart(config, undefined, () => {});
      }
      const status = daemonStatus(config.state_dir);
      const argv = status.running ? serviceRestartArgv(status.service, Deno.uid() ?? 0) : null;
      if (argv) {
        try {
          await runProcess(argv, { timeoutMs: STOP_WAIT_MS + 30_000 });
        } catch (error) {
          const reason = error instanceof CommandError
            ? error.run.stderr.trim() || error.message
            : String(error);
          throw new Error(
            `The daemon (pid ${status.pid ?? "?"}) runs as a service; \`${
              argv.join(" ")
            }\` failed: ${reason}${argv.includes("--user") ? "" : " (run it with sudo?)"}`,
            { cause: error },
          );
        }
        console.log(`Restarted the service: ${argv.join(" ")}`);
        return;
      }
      if (status.running && status.config === COMMAND_LINE_CONFIG) {
        // Stopped by the command that finds it (its --set state_dir=DIR), started by the one the
        // daemon said (one of an earlier version said none: the run typed then, in its folder).
        const again = status.runCommand === undefined
          ? "the `image-transfer run --watch \u2026 --to \u2026` that started it, in the folder it " +
            "was typed in"
          : `\`${status.runCommand}\``;
        const stop = findCommand(config, "stop");
        throw new UsageError(
          `The daemon (pid ${status.pid ?? "?"}) was started without a config file, so restart ` +
            `cannot start it again: stop it with \`${stop}\`, then start it with ${again}`,
        );
      }
      if (found) {
        // No config file to start: a daemon of one is restarted with its -c, none is started.
        throw new UsageError(
          status.running
            ? `The daemon (pid ${status.pid ?? "?"}) with state_dir ${config.state_dir} was ` +
              `started with a config file: restart it with ${
                configCommand(status.config ?? "", "restart")
              }`
            : `No daemon is running with state_dir ${config.state_dir}: restart has nothing to ` +
              "start again; a run without a config file starts with image-transfer run --watch " +
              "DIR --to DEST",
        );
      }
      // Nothing is stopped that cannot be started again.
      if (config.jobs.length === 0) await loadConfig(config.file);
      await stopFor(global);
      await run(global);
    });
}
