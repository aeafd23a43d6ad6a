/**
 * `config validate` and `config show`.
 *
 * @module
 */
import { Command } from "commander";
import { stringify } from "yaml";
import { globalOptions } from "./options.ts";
import { runInit } from "./init.ts";
import { loadConfig, resolveConfigPath } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { checkBeforeStart } from "../pipeline/preflight.ts";
import { UsageError } from "../errors.ts";

/**
 * Check the config file and print `ok: <file> (<n> jobs)` with one line per job.
 *
 * @throws {ConfigError} listing every problem in the file
 */
export async function runConfigValidate(configOption?: string): Promise<void> {
  const config = await loadConfig(resolveConfigPath(configOption));
  await checkBeforeStart(config);
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
}

/**
 * Print the effective config (defaults applied, paths expanded) as YAML, or as
 * JSON with `json`. The YAML output is itself a valid config file.
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
  console.log(`# Effective configuration of ${file} (defaults applied, paths expanded)`);
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
    .description("print the effective config (defaults applied, paths expanded)")
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
