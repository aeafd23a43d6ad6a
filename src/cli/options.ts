/**
 * Options shared by every command (`-c/--config`, `-v/--verbose`), and the `--set KEY=VALUE` of
 * a run without a config file, which `run`, `doctor`, `status`, `stop` and `restart` take.
 *
 * @module
 */
import type { Command } from "commander";
import { parse } from "yaml";
import { UsageError } from "../errors.ts";
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

/**
 * A `--set KEY=VALUE`'s key and value: YAML scalars, quoted text (as in the file) and lists (`5`,
 * `""`, `[a, b]`), else the text as is.
 *
 * @throws {UsageError} when `pair` is no KEY=VALUE
 */
export function parseSet(pair: string): [string, unknown] {
  const at = pair.indexOf("=");
  if (at <= 0) throw new UsageError(`--set expects KEY=VALUE, got ${JSON.stringify(pair)}`);
  return [pair.slice(0, at), setValue(pair.slice(at + 1))];
}

/** A `--set` value: YAML scalars, quoted text and lists, else the text as is (see `parseSet`). */
function setValue(text: string): unknown {
  if (/^(-?\d+(\.\d+)?|true|false|null)$/.test(text)) return JSON.parse(text);
  const list = /^\[.*\]$/.test(text);
  try {
    if (list || /^("[^]*"|'[^]*')$/.test(text)) return list ? JSON.parse(text) : parse(text);
  } catch { // Not JSON (`[*.fit, 'a b']`): split at its commas, an item's quotes as in the file.
    const items = list ? text.slice(1, -1).split(",").map((part) => part.trim()) : [];
    if (list) return items.filter((p) => p).map((p) => p.replace(/^(["'])(.*)\1$/, "$2"));
  }
  return text;
}
