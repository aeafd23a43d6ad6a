/**
 * `init`: write a commented default config.
 *
 * @module
 */
import { Command } from "commander";
import { type GlobalOptions, globalOptions } from "./options.ts";

/** Write the default config (placeholder). */
export function runInit(_global: GlobalOptions, _options: { force: boolean }): Promise<void> {
  return Promise.reject(new Error("init: not implemented"));
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
