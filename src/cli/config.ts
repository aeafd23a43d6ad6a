/**
 * `config validate` and `config show`.
 *
 * @module
 */
import { Command } from "commander";

/** The `config` command group (placeholder). */
export function configCommand(): Command {
  return new Command("config").description("check or print the configuration");
}
