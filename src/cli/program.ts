/**
 * The command-line interface: one commander program, one file per command.
 *
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { versionText } from "../version.ts";
import { LOG_LEVELS } from "../log/logging.ts";
import { UsageError } from "../errors.ts";
import { configCommand } from "./config.ts";
import { initCommand, runInit } from "./init.ts";
import { runCommand } from "./run.ts";
import { statusCommand } from "./status.ts";
import { resendCommand } from "./resend.ts";
import { doctorCommand } from "./doctor.ts";
import { installServiceCommand } from "./install_service.ts";
import { uninstallServiceCommand } from "./uninstall_service.ts";
import { globalOptions } from "./options.ts";
import { argsForProgramName, checkCommandWords } from "./command_words.ts";
import { restartCommand, stopCommand } from "./stop.ts";

/** Build the program. Commands throw on failure; `main.ts` turns errors into exit codes. */
export function buildProgram(): Command {
  const program = new Command("image-transfer")
    .description(
      "Watch an instrument's output folder and ship every completed file to a processing " +
        "server (scp, rsync, FTP/FTPS or a local copy) into night folders (YYYYMMDD/), verified " +
        "and retried.",
    )
    .version(versionText(), "-V, --version", "print the version, commit, target and Deno version")
    .option("-c, --config <file>", "config file (default: ~/.config/image-transfer/config.yaml)")
    .option("-v, --verbose", "debug logging, and the cause of every error")
    .addOption(
      new Option("--log-level <level>", "the lowest level logged (default: info)")
        .choices(LOG_LEVELS),
    )
    .addOption(
      new Option("--create-config", "same as `init` (the old tool's flag)").hideHelp(false),
    )
    .helpCommand(true);

  program.hook("preAction", async (thisCommand, actionCommand) => {
    if (thisCommand.opts().createConfig && actionCommand.name() === "run") {
      await runInit(globalOptions(actionCommand), { force: false });
      throw new CommanderError(0, "image-transfer.createConfig", "");
    }
  });

  const run = runCommand();
  program.addCommand(run, { isDefault: true });
  program.addHelpText("after", (context) => defaultCommandHelp(context.command, run));
  program.addCommand(initCommand());
  program.addCommand(configCommand());
  program.addCommand(statusCommand());
  program.addCommand(resendCommand());
  program.addCommand(doctorCommand());
  program.addCommand(installServiceCommand());
  program.addCommand(uninstallServiceCommand());
  program.addCommand(stopCommand());
  program.addCommand(restartCommand(async (global) => {
    const args = [
      ...(global.config === undefined ? [] : ["-c", global.config]),
      ...(global.verbose ? ["-v"] : []),
      ...(global.logLevel === undefined ? [] : ["--log-level", global.logLevel]),
      "run",
    ];
    await buildProgram().parseAsync(args, { from: "user" });
  }));
  applyToAll(
    program,
    (command) =>
      command.exitOverride().configureOutput({ outputError: () => {} }).showHelpAfterError(false)
        // Every command's help lists -c, -v and --log-level too.
        .configureHelp({ showGlobalOptions: true }),
  );
  return program;
}

/** The default command's options, listed in the top-level help like the other options. */
function defaultCommandHelp(program: Command, run: Command): string {
  const helper = program.createHelp();
  const width = Math.max(
    helper.padWidth(program, helper),
    helper.longestOptionTermLength(run, helper),
  );
  const items = helper.visibleOptions(run)
    .filter((option) => option.long !== "--help")
    .map((option) =>
      helper.formatItem(helper.optionTerm(option), width, helper.optionDescription(option), helper)
    );
  return "\n" +
    helper.formatItemList(`Options of ${run.name()}, the default command:`, items, helper)
      .join("\n");
}

/** Commander's message on one line: `unknown option '--onc'; did you mean '--once'?`. */
function usageMessage(message: string): string {
  return message.replace(/^error: /, "")
    .replace(/\n\(Did you mean (\S+)\?\)$/, "; did you mean '$1'?")
    .replace(/\n\(Did you mean (.+)\?\)$/, "; did you mean $1?");
}

/** Apply `fn` to `command` and every subcommand below it (commander does not inherit settings given to `addCommand`). */
function applyToAll(command: Command, fn: (command: Command) => void): void {
  fn(command);
  for (const sub of command.commands) applyToAll(sub, fn);
}

/** The path this program was started from ("" when it cannot be told). */
function programPath(): string {
  try {
    return Deno.execPath();
  } catch {
    return "";
  }
}

/**
 * Parse `given` (the command line; see `argsForProgramName` for the old
 * service program's name) and run the chosen command.
 *
 * @returns the exit code: 0 ok, 2 usage or config error; other errors are thrown
 * @throws whatever the command throws
 */
export async function runCli(given: string[]): Promise<number> {
  const args = argsForProgramName(programPath(), given);
  const program = buildProgram();
  const run = program.commands.find((command) => command.name() === "run")!;
  checkCommandWords(program, run, args);
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0;
      throw new UsageError(usageMessage(error.message));
    }
    throw error;
  }
  return 0;
}
