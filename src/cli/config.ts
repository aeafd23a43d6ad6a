/**
 * `config validate` and `config show`.
 *
 * `init` (and the old `--create-config` flag): write a commented default config.
 *
 * The commented default config written by `init`, generated from the schema
 * (`describeKeys()`), so every key appears with its description and default.
 *
 * @module
 */
import { Command } from "commander";
import { stringify } from "yaml";
import { type GlobalOptions, globalOptions } from "./options.ts";
import { loadConfig } from "../config/load.ts";
import { keyPlace } from "../config/key_lines.ts";
import type { Config } from "../config/types.ts";
import { checkBeforeStart } from "../pipeline/start_checks.ts";
import { answerWithin, unreadableForNow } from "../config/file_systems.ts";
import { fileInPlaceOfFolder, otherOsPathProblem, resolveConfigPath } from "../config/paths.ts";
import { PAUSES_FOR_GOOD, pausesForGood } from "../pipeline/pause_windows.ts";
import { ConfigError, guardedPathReason, UsageError } from "../errors.ts";
import { pastedWord } from "../shell_words.ts";
import { dirname, join } from "node:path";
import { whyUnwritable } from "../ledger/state_files.ts";
import { describeKeys, type KeyDoc } from "../config/reference.ts";
import { assertNoTemplateValues } from "../config/template_values.ts";
import { FITS_NOT_CONFIG, isFitsImageFile } from "../config/data_file.ts";

/**
 * Check the config file and print `ok: <file> (<n> jobs)` with one line per job. A job that still
 * holds every example value of the template `init` writes is refused (see `template_values.ts`).
 *
 * @throws {ConfigError} listing every problem in the file
 */
export async function runConfigValidate(configOption?: string): Promise<void> {
  const config = await loadConfig(resolveConfigPath(configOption));
  const warn = (message: string) => console.error(`warning: ${message}`);
  assertNoTemplateValues(config, configOption);
  await checkBeforeStart(config, undefined, warn, true);
  const count = config.jobs.length;
  console.log(`ok: ${config.file} (${count} job${count === 1 ? "" : "s"})`);
  for (const job of config.jobs) {
    const host = job.transfer_method === "local"
      ? ""
      : `${job.remote_user ? `${job.remote_user}@` : ""}${job.remote_host}:`;
    console.log(
      `  ${job.name}: ${job.watch_path} -> ${host}${job.remote_base_path} (${job.transfer_method})`,
    );
  }
  for (const [index, job] of config.jobs.entries()) {
    // A folder on a share that stopped answering was said by the checks above.
    const watched = await answerWithin(
      Deno.stat(job.watch_path).then(
        (info) => info.isDirectory,
        (error) => unreadableForNow(error) ? String(error.message) : false,
      ),
    );
    if (typeof watched === "string") {
      console.error(
        `warning: ${keyPlace(config.file, index, ["watch_path"])}: watch folder of job ` +
          `${job.name} ${job.watch_path} cannot be read now (${watched}): \`run\` waits until ` +
          "it can (`run --once` exits with 4); mount the share again (its client or server gone?)",
      );
    } else if (watched === false && otherOsPathProblem(job.watch_path) === null) {
      console.error(
        `warning: ${keyPlace(config.file, index, ["watch_path"])}: watch folder of job ` +
          `${job.name} ${job.watch_path} is not a folder that exists (yet): \`run\` waits until ` +
          "it appears (`run --once` exits with 4); create it, mount its disk, or fix the path",
      );
    }
    if (!pausesForGood(job)) continue;
    console.error(
      `warning: ${keyPlace(config.file, index, ["schedules"])}: schedules of job ${job.name} ` +
        PAUSES_FOR_GOOD,
    );
  }
}

/**
 * Print the effective config (defaults applied, paths on this machine made
 * absolute) as YAML, or as JSON with `json`. The YAML output is itself a valid
 * config file. Remote paths and the programs of hooks and scheduled commands
 * stay as written (a program named bare is looked up on `PATH` at start).
 *
 * @throws {ConfigError} listing every problem in the file
 */
export async function runConfigShow(
  configOption: string | undefined,
  json: boolean,
): Promise<void> {
  const config = await loadConfig(resolveConfigPath(configOption));
  if (json) {
    console.log(JSON.stringify(config, null, 2));
    return;
  }
  const { file, ...effective } = config satisfies Config;
  console.log(
    `# Effective configuration of ${file} (defaults applied, paths on this machine made ` +
      "absolute; remote paths and the programs of hooks and commands as written)",
  );
  console.log(stringify(effective, { lineWidth: 0 }).trimEnd());
}

/** The `config` command group: `validate`, `show`, and `generate` (another name for `init`). */
export function configCommand(): Command {
  const config = new Command("config").description("check or print the configuration")
    .action(() => {
      throw new UsageError(
        "missing subcommand for `config`: use `config validate`, `config show` or `config generate`",
      );
    });
  config.command("validate")
    .description("check the config file; print every problem with its line")
    .action(async (_options: unknown, command: Command) => {
      await runConfigValidate(globalOptions(command).config);
    });
  config.command("show")
    .description("print the effective config (defaults applied, local paths made absolute)")
    .option("--json", "print JSON instead of YAML")
    .action(async (options: { json?: boolean }, command: Command) => {
      await runConfigShow(globalOptions(command).config, options.json ?? false);
    });
  config.command("generate")
    .description("write a commented default config file (the same as `init`)")
    .option("--force", "overwrite an existing file")
    .action(async (options: { force?: boolean }, command: Command) => {
      await runInit(globalOptions(command), { force: options.force ?? false });
    });
  return config;
}

/**
 * Write the commented default config to the `-c` path or the default location,
 * creating its folder, and print the path written.
 *
 * @param global the global options (`-c` chooses the file)
 * @param options `force` overwrites an existing file
 * @throws {ConfigError} when the file exists and `force` is not set
 */
export async function runInit(global: GlobalOptions, options: { force: boolean }): Promise<void> {
  const file = resolveConfigPath(global.config);
  await prepareConfigFile(file, "-c");
  const flag = global.config ? ` -c ${pastedWord(global.config)}` : "";
  try {
    // Never group or others writable (the daemon refuses such a config), whatever the umask.
    await Deno.writeTextFile(file, renderDefaultConfig(), {
      createNew: !options.force,
      mode: 0o644,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new ConfigError(
        `Cannot write config ${file}: the file already exists; keep it and check it with ` +
          `\`image-transfer${flag} config validate\`, or overwrite it with ` +
          `\`image-transfer${flag} init --force\``,
        { file, cause: error },
      );
    }
    throw unwritableConfig(file, error, "-c");
  }
  console.log(`wrote ${file}`);
  console.log(
    `next: set watch_path, remote_host and remote_base_path in it, then run ` +
      `\`image-transfer${flag} config validate\``,
  );
}

/**
 * Make ready to write a config to `file` (as `expandPath` gives it): refuse another system's path,
 * a path that is not UTF-8, a `.toml` name (every command reads one as TOML), a FITS image (see
 * `config/data_file.ts`) and a folder, each with the name to give instead (after `option`), and
 * make the folders it goes in.
 *
 * @throws {ConfigError} naming the file and what to give instead
 */
export async function prepareConfigFile(file: string, option: string): Promise<void> {
  const elsewhere = otherOsPathProblem(file);
  if (elsewhere !== null) throw new ConfigError(`Cannot write config ${file}: ${elsewhere}`);
  if (file.includes("\uFFFD")) {
    // The runtime put U+FFFD for bytes of the name that are not UTF-8: the file would get another.
    throw new ConfigError(
      `Cannot write config ${file}: its path is not valid UTF-8 (\uFFFD stands for the bytes ` +
        "that are not), and the file would be written under another name; give a UTF-8 name",
    );
  }
  if (/\.toml$/i.test(file)) {
    throw new ConfigError(
      `Cannot write config ${file}: the config is YAML, and a .toml name is read as TOML; ` +
        `give a .yaml name (${option} ${pastedWord(file.replace(/\.toml$/i, ".yaml"))})`,
      { file },
    );
  }
  // An instrument's data: never written over, --force or not.
  if (await isFitsImageFile(file)) {
    const name = `${file.replace(/\.(fits?|fts)$/i, "")}.yaml`;
    throw new ConfigError(
      `Cannot write config ${file}: ${FITS_NOT_CONFIG}, and is left as it is; give the config ` +
        `a name of its own (${option} ${pastedWord(name)})`,
      { file },
    );
  }
  if (await Deno.stat(file).then((info) => info.isDirectory, () => false)) {
    throw new ConfigError(
      `Cannot write config ${file}: it is a folder; give a file name in it ` +
        `(${option} ${pastedWord(join(file, "config.yaml"))})`,
      { file },
    );
  }
  await Deno.mkdir(dirname(file), { recursive: true }).catch((error) => {
    const inTheWay = fileInPlaceOfFolder(dirname(file));
    if (inTheWay !== null) {
      throw new ConfigError(
        `Cannot write config ${file}: ${inTheWay} on its path is a file, not a folder; give a ` +
          `file in a folder (${option} FILE), or move ${inTheWay} away`,
        { file, cause: error },
      );
    }
    const guarded = guardedPathReason(error);
    throw guarded === null
      ? unwritableConfig(file, error, option)
      : new ConfigError(`Cannot write config ${file}: ${guarded}`);
  });
}

/**
 * Why the config `file` (or its folder) could not be written (no permission, a read-only file
 * system), and to give a file elsewhere (after `option`); an error of another kind as it is.
 */
export function unwritableConfig(file: string, error: unknown, option: string): Error {
  const read = error instanceof Deno.errors.PermissionDenied ||
    (error as { code?: string }).code === "EROFS";
  if (!read) return error instanceof Error ? error : new Error(String(error));
  let folder = dirname(file);
  while (!existsFolder(folder) && dirname(folder) !== folder) folder = dirname(folder);
  return new ConfigError(
    `Cannot write config ${file}: ${whyUnwritable(error)}; give a file in a folder this user ` +
      `can write (${option} FILE), or make ${folder} writable`,
    { file, cause: error },
  );
}

function existsFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** The `init` command. */
export function initCommand(): Command {
  return new Command("init")
    .description("write a commented default config file")
    .option("--force", "overwrite an existing file")
    .action(async (options: { force?: boolean }, command: Command) => {
      await runInit(globalOptions(command), { force: options.force ?? false });
    });
}

const LINE_WIDTH = 100;

/**
 * Render the commented default config: required keys active with an example
 * value, every other key commented out with its default, and a commented
 * `jobs:` example. The result loads with `loadConfig`.
 *
 * @returns YAML text ending in a newline
 */
export function renderDefaultConfig(): string {
  const keys = describeKeys();
  const out: string[] = [
    "# image-transfer configuration",
    "#",
    "# Lines starting with '#' are comments; remove the '#' in front of a key to change it.",
    "# Check this file with:   image-transfer config validate",
    "# See effective values:   image-transfer config show",
    "#",
    "# The keys below describe one transfer job. To run several jobs, see `jobs:` at the end.",
    "",
  ];
  for (const key of keys.filter((k) => k.scope === "job")) out.push(...renderKey(key), "");
  out.push(
    "# ---------------------------------------------------------------------------",
    "# Daemon-wide settings (top level only, never inside a `jobs:` entry)",
    "# ---------------------------------------------------------------------------",
    "",
  );
  for (const key of keys.filter((k) => k.scope === "daemon")) out.push(...renderKey(key), "");
  out.push(...JOBS_EXAMPLE);
  return out.join("\n") + "\n";
}

/** The comment and the (possibly commented-out) `key: value` lines of one key. */
function renderKey(key: KeyDoc): string[] {
  const lines = wrapComment(key.description);
  if (key.example !== undefined) {
    lines.push(...yamlLines(key.key, key.example));
  } else {
    lines.push(...yamlLines(key.key, key.defaultValue).map((line) => `# ${line}`));
  }
  return lines;
}

/** `key: value` as YAML lines (lists in block style). */
function yamlLines(key: string, value: unknown): string[] {
  if (value === null || value === undefined) return [`${key}:`];
  return stringify({ [key]: value }, { lineWidth: 0 }).trimEnd().split("\n");
}

/** Wrap `text` into `# ` comment lines no wider than the line width. */
function wrapComment(text: string): string[] {
  const lines: string[] = [];
  let current = "#";
  for (const word of text.split(/\s+/)) {
    if (current.length + 1 + word.length > LINE_WIDTH && current !== "#") {
      lines.push(current);
      current = "#";
    }
    current += ` ${word}`;
  }
  lines.push(current);
  return lines;
}

const JOBS_EXAMPLE = [
  "# ---------------------------------------------------------------------------",
  "# Several jobs",
  "# ---------------------------------------------------------------------------",
  "# With a `jobs:` list, every entry is one job. The job keys at the top level of this file",
  "# become defaults that every job inherits; a key inside an entry overrides them. Job names",
  "# must be unique (default: job1, job2, ...). Daemon-wide settings stay at the top level.",
  "#",
  "# jobs:",
  "#   - name: camera-north",
  "#     watch_path: ~/data/north",
  "#     remote_base_path: /data/incoming/north",
  "#   - name: camera-south",
  "#     watch_path: ~/data/south",
  "#     remote_base_path: /data/incoming/south",
  "#     transfer_method: rsync",
  "#     rsync_options:",
  "#       - --bwlimit=50000",
];
