/**
 * Options shared by every command (`-c/--config`, `-v/--verbose`).
 *
 * @module
 */
import type { Command } from "commander";
import type { LogLevel } from "../log/logging.ts";

/** The global options as commander hands them to a command. */
export interface GlobalOptions {
  /** Path given with `-c/--config`, if any. */
  config?: string;
  /** `-v/--verbose`: debug logging and error cause chains. */
  verbose?: boolean;
  /** `--log-level`: the lowest level logged. */
  logLevel?: LogLevel;
}

/** Read the global options of `command` (merged with its parents'). */
export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}
