/**
 * The command-line interface: one commander program, one file per command.
 *
 * Check the command words before commander sees them. `run` is the default
 * command, so commander would take any unknown word as an argument of `run`
 * ("too many arguments for 'run'"); here it is an unknown command with a
 * suggestion. The old tool's `--install`/`--uninstall` point to the commands
 * that replaced them.
 *
 * @module
 */
import { Command, CommanderError, Help, Option } from "commander";
import { versionText } from "../version.ts";
import { LOG_LEVELS } from "../log/logging.ts";
import { CommandError, UsageError } from "../errors.ts";
import { askMountTableWith, SHARE_ANSWER_MS } from "../config/file_systems.ts";
import { runProcess } from "../process/run.ts";
import { runCommand } from "./run.ts";
import { globalOptions } from "./options.ts";
import { closestWord } from "../config/key_lines.ts";
import { pastedWord } from "../shell_words.ts";

/**
 * Build the program. Commands throw on failure; `main.ts` turns errors into exit codes.
 * `runOnly`: only the default command `run` (a daemon does not load the other commands' modules,
 * whose text the runtime would keep in memory for as long as it runs).
 */
export async function buildProgram(runOnly = false): Promise<Command> {
  const program = new Command("image-transfer")
    .description(
      "Watch an instrument's output folder and ship every completed file to a processing " +
        "server (scp, rsync, FTP/FTPS or a local copy) into night folders (YYYYMMDD/), verified " +
        "and retried.",
    )
    .version(versionText(), "-V, --version", "print the version, commit, target and Deno version")
    .option(
      "-c, --config <file>",
      "config file (default: ~/.config/image-transfer/config.yaml)",
      nonEmptyConfig,
    )
    .option("-v, --verbose", "debug logging (over any --log-level), and the cause of every error")
    .addOption(
      new Option("--log-level <level>", "the lowest level logged (default: info; debug with -v)")
        .choices(LOG_LEVELS),
    )
    .addOption(
      new Option("--create-config", "same as `init` (the old tool's flag)").hideHelp(false),
    )
    .helpCommand(true);

  program.hook("preAction", async (thisCommand, actionCommand) => {
    if (thisCommand.opts().createConfig && !CREATE_CONFIG_WITH.includes(actionCommand.name())) {
      // Else it would be ignored, the command run as if it were not given.
      throw new UsageError(
        `--create-config (the old tool's flag for \`init\`) does nothing with ` +
          `\`${commandPath(actionCommand)}\`: leave it out, or write the config with ` +
          "`image-transfer init` (-c FILE for another file than the default)",
      );
    }
    if (thisCommand.opts().createConfig && actionCommand.name() === "run") {
      const { runInit } = await import("./config.ts");
      // `--force` is run's own option (with --save-config): here, as init takes it.
      await runInit(globalOptions(actionCommand), { force: actionCommand.opts().force === true });
      throw new CommanderError(0, "image-transfer.createConfig", "");
    }
  });

  const run = runCommand();
  program.addCommand(run, { isDefault: true });
  program.addHelpText("after", (context) => defaultCommandHelp(context.command, run));
  if (!runOnly) {
    const [config, status, resend, doctor, service, stop] = await Promise.all([
      import("./config.ts"),
      import("./status.ts"),
      import("./resend.ts"),
      import("./doctor.ts"),
      import("./install_service.ts"),
      import("./stop.ts"),
    ]);
    program.addCommand(config.initCommand());
    program.addCommand(config.configCommand());
    program.addCommand(status.statusCommand());
    program.addCommand(resend.resendCommand());
    program.addCommand(doctor.doctorCommand());
    program.addCommand(service.installServiceCommand());
    program.addCommand(service.uninstallServiceCommand());
    program.addCommand(stop.stopCommand());
    program.addCommand(stop.restartCommand(async (global) => {
      const args = [
        ...(global.config === undefined ? [] : ["-c", global.config]),
        ...(global.verbose ? ["-v"] : []),
        ...(global.logLevel === undefined ? [] : ["--log-level", global.logLevel]),
        "run",
      ];
      await (await buildProgram(true)).parseAsync(args, { from: "user" });
    }));
  }
  applyToAll(
    program,
    (command) =>
      command.exitOverride().configureOutput({ outputError: () => {} }).showHelpAfterError(false)
        // Every command's help lists -c, -v and --log-level too; --create-config where it acts.
        .configureHelp({
          showGlobalOptions: true,
          visibleGlobalOptions(this: Help, command: Command) {
            const all = Help.prototype.visibleGlobalOptions.call(this, command);
            return CREATE_CONFIG_WITH.includes(command.name())
              ? all
              : all.filter((option) => option.long !== "--create-config");
          },
        }),
  );
  return program;
}

/** The commands `--create-config` acts with: `run` (as the old tool's flag did), and `init`. */
const CREATE_CONFIG_WITH = ["run", "init"];

/** `config generate` for the command `generate` of `config`: its words, without the program's. */
function commandPath(command: Command): string {
  const words: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) words.unshift(at.name());
  return words.join(" ");
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

/**
 * The value of `-c`, refused when empty (`-c "$CONFIG"` with the variable unset would otherwise
 * run with the default config, as if no `-c` had been typed), and when `-c` was given already
 * (commander would keep the last one, and a service or a daemon would run with a config the
 * other `-c` did not name).
 *
 * @param previous the value of an earlier `-c`, if any
 * @throws {UsageError} when `value` is empty or blank, or `-c` is given twice
 */
function nonEmptyConfig(value: string, previous: string | undefined): string {
  if (previous !== undefined) {
    throw new UsageError(
      `-c/--config is given twice (${pastedWord(previous)}, then ${pastedWord(value)}): a ` +
        "command reads one config file; give -c once",
    );
  }
  if (value.trim() !== "") return value;
  throw new UsageError(
    "-c/--config is empty: give it the config file, or leave -c out for the default " +
      "(~/.config/image-transfer/config.yaml)",
  );
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
 * Whether Linux lists a mount at `path`, asked of `findmnt` (util-linux; see
 * `askMountTableWith`); `null` when it cannot tell (elsewhere, or without it).
 */
async function findmnt(path: string): Promise<boolean | null> {
  if (Deno.build.os !== "linux") return null;
  const argv = ["findmnt", "--noheadings", "--output", "TARGET", "--mountpoint", path];
  try {
    await runProcess(argv, { timeoutMs: SHARE_ANSWER_MS, ownSession: false });
    return true;
  } catch (error) {
    return error instanceof CommandError && error.run.code === 1 ? false : null;
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
  askMountTableWith(findmnt);
  const args = argsForProgramName(programPath(), given);
  let program = await buildProgram(true);
  if (!runsDaemon(program, args)) program = await buildProgram();
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

/**
 * Whether `args` run the daemon and nothing else: no command named but `run`, and no help asked
 * for (which lists every command).
 */
function runsDaemon(program: Command, args: string[]): boolean {
  if (args.some((arg) => arg === "-h" || arg === "--help")) return false;
  const options = program.commands.flatMap((command) => command.options);
  const first = firstOperand([...program.options, ...options], args);
  return first === undefined || first.word === "run";
}

/** Words people type for this tool that are no command, and what they are after. */
const MEANT: Record<string, { command: string; why?: string }> = {
  reload: {
    command: "status",
    why: "a running daemon reloads its config on SIGHUP (kill -HUP <pid>); `status` shows its pid",
  },
  start: { command: "run" },
  daemon: { command: "run" },
  install: { command: "install-service" },
  uninstall: { command: "uninstall-service" },
  validate: { command: "config validate" },
  check: { command: "config validate" },
  show: { command: "config show" },
};

/** The service names install-service writes, one per OS. */
const SERVICE_NAMES = "image-transfer (systemd), com.image-transfer.daemon (launchd), " +
  "ImageTransferDaemon (Windows)";

/** The older tools' flags (the old tool's service flags, the sync tool's) and what replaced them. */
const OLD_FLAGS: Record<string, string> = {
  "--install": "the service is installed with `image-transfer install-service` " +
    "(Linux: run it with sudo for a system-wide service, or add --user)",
  "--uninstall": "the service is removed with `image-transfer uninstall-service`",
  "--status": "the daemon's state is shown by `image-transfer status`",
  "--foreground": "`run` always runs in the foreground (install-service makes it a service); " +
    "leave --foreground out",
  "--service-name": `the service's name is fixed: ${SERVICE_NAMES}; leave --service-name out`,
  "--description": `the service's name is fixed: ${SERVICE_NAMES}; leave --description out`,
};

/**
 * The sync tool's `config generate --output FILE`, answered for the command it is given to: the
 * commands that write a config (or none named), and `config show`, which prints one; another
 * command's `--output` is commander's unknown option.
 */
const OUTPUT_OF: Record<string, string> = {
  "": "`init` (or `config generate`) writes the file that -c names: " +
    "`image-transfer config generate -c FILE.yaml`",
  "config show": "`config show` prints the config: `image-transfer config show > FILE.yaml`",
};
for (const command of ["init", "config", "config generate"]) OUTPUT_OF[command] = OUTPUT_OF[""];

/** The old tool's service program name, which the binary answers to when named so. */
export const OLD_SERVICE_PROGRAM = "image-transfer-service";

/** The old service program's flags, as this program's commands. */
const OLD_SERVICE_FLAGS: Record<string, string> = {
  "--install": "install-service",
  "--uninstall": "uninstall-service",
  "--status": "status",
};

/**
 * The arguments for this program when it was started as `programPath`: named
 * `image-transfer-service` (the old tool's service program, e.g. a copy or a
 * link kept for scripts), its `--install`, `--uninstall` and `--status` become
 * `install-service`, `uninstall-service` and `status`, with the other
 * arguments kept. Any other name leaves `args` as they are.
 *
 * @throws {UsageError} when started under the old name without one of those flags
 */
export function argsForProgramName(programPath: string, args: string[]): string[] {
  const name = programPath.replaceAll("\\", "/").split("/").at(-1)!.replace(/\.exe$/i, "");
  if (name !== OLD_SERVICE_PROGRAM) return args;
  const at = args.findIndex((arg) => arg in OLD_SERVICE_FLAGS);
  if (at >= 0) return [OLD_SERVICE_FLAGS[args[at]], ...args.slice(0, at), ...args.slice(at + 1)];
  if (args.some((arg) => arg === "--help" || arg === "-h")) return args;
  throw new UsageError(
    `started as ${OLD_SERVICE_PROGRAM}, this program takes --install, --uninstall or --status ` +
      "(the old tool's service commands); every other command is `image-transfer COMMAND`",
  );
}

/**
 * Refuse an unknown command word in `args` (top level, `help <word>`, or a
 * subcommand of a command group such as `config`). `defaultCommand` is the
 * command that runs when none is named: its options may come first.
 *
 * @throws {UsageError} naming the word, with a suggestion
 */
export function checkCommandWords(program: Command, defaultCommand: Command, args: string[]): void {
  const topOptions = [...program.options, ...defaultCommand.options];
  for (const arg of args) {
    if (arg === "--") break;
    const flag = arg.split("=", 1)[0];
    const reason = flag === "--output"
      ? OUTPUT_OF[commandWords(program, topOptions, args)]
      : OLD_FLAGS[flag];
    if (reason) throw new UsageError(`unknown option '${arg}': ${reason}`);
  }
  const first = firstOperand(topOptions, args);
  if (!first) return;
  if (first.word === "help") {
    const topic = firstOperand(topOptions, first.rest);
    if (topic && !findCommand(program, topic.word)) throw unknownCommand(program, topic.word);
    return;
  }
  const command = findCommand(program, first.word);
  if (!command && /[\\/]/.test(first.word)) throw folderAsCommand(first.word, first.rest);
  if (!command) throw unknownCommand(program, first.word);
  if (command.commands.length === 0) return;
  const sub = firstOperand([...command.options, ...program.options], first.rest);
  if (sub && sub.word !== "help" && !findCommand(command, sub.word)) {
    throw unknownCommand(command, sub.word);
  }
}

/** The command `args` name (`config show`, `init`), or "" for none: the words of known commands. */
function commandWords(program: Command, topOptions: readonly Option[], args: string[]): string {
  const first = firstOperand(topOptions, args);
  const command = first && findCommand(program, first.word);
  if (!first || !command) return "";
  const sub = firstOperand([...command.options, ...program.options], first.rest);
  const inner = sub && findCommand(command, sub.word);
  return inner ? `${command.name()} ${inner.name()}` : command.name();
}

/** The first word of `args` that is neither one of `options` nor an option's value. */
function firstOperand(
  options: readonly Option[],
  args: string[],
): { word: string; rest: string[] } | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") return i + 1 < args.length ? { word: args[i + 1], rest: [] } : undefined;
    if (!arg.startsWith("-") || arg === "-") return { word: arg, rest: args.slice(i + 1) };
    const takesValue = options.find((o) => o.long === arg || o.short === arg);
    // "--config=x" and "-cx" carry their value; "--config x" takes the next word.
    if (takesValue && (takesValue.required || takesValue.optional)) i++;
  }
  return undefined;
}

function findCommand(parent: Command, word: string): Command | undefined {
  return parent.commands.find((c) => c.name() === word || c.aliases().includes(word));
}

/**
 * A folder where a command belongs: the FTP monitor's `WATCH HOST PORT REMOTE_DIR` (or a folder and
 * a destination) is `run --watch WATCH --to ftp://HOST:PORT/REMOTE_DIR` here.
 */
function folderAsCommand(folder: string, rest: string[]): UsageError {
  const [host, port, remote] = rest;
  const to = rest.length === 3 && /^\d+$/.test(port) && !/[/@:]/.test(host)
    ? `ftp://${host}:${port}/${remote.replace(/^\/+/, "")}`
    : rest.length === 1
    ? rest[0]
    : "DEST";
  return new UsageError(
    `unknown command '${folder}': a folder to watch is given with --watch, and where its files ` +
      `go with --to: \`image-transfer run --watch ${pastedWord(folder)} --to ${pastedWord(to)}\`` +
      " (DEST: user@host:/path, ftp:// or ftps://user@host:port/path, or a folder; " +
      "a config file is given with -c)",
  );
}

function unknownCommand(parent: Command, word: string): UsageError {
  const names = parent.commands.map((c) => c.name()).filter((n) => n !== "help");
  const prefix = parent.parent ? `${parent.name()} ` : "";
  const meant = parent.parent ? undefined : MEANT[word.toLowerCase()];
  const guess = meant?.command ?? closestWord(word, names);
  const suggestion = guess
    ? `; did you mean '${guess.startsWith(prefix) ? guess : prefix + guess}'?` +
      (meant?.why ? ` (${meant.why})` : "")
    : `; the commands are: ${names.map((n) => prefix + n).join(", ")}`;
  return new UsageError(`unknown command '${prefix}${word}'${suggestion}`);
}
