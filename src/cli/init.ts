/**
 * `init` (and the old `--create-config` flag): write a commented default config.
 *
 * @module
 */
import { dirname } from "node:path";
import { Command } from "commander";
import { type GlobalOptions, globalOptions } from "./options.ts";
import { resolveConfigPath } from "../config/load.ts";
import { renderDefaultConfig } from "../config/default_config.ts";
import { ConfigError } from "../errors.ts";

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
  await Deno.mkdir(dirname(file), { recursive: true });
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
          "`image-transfer config validate`, or overwrite it with `init --force`",
        { file, cause: error },
      );
    }
    throw new Error(`Cannot write config ${file}: ${(error as Error).message}`, { cause: error });
  }
  const flag = global.config ? ` -c ${JSON.stringify(global.config)}` : "";
  console.log(`wrote ${file}`);
  console.log(
    `next: set watch_path, remote_host and remote_base_path in it, then run ` +
      `\`image-transfer${flag} config validate\``,
  );
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
