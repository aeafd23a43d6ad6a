/**
 * Read, validate and resolve the YAML config file.
 * (Placeholder: the full loader with line numbers lands next.)
 *
 * @module
 */
import type { Config } from "./types.ts";
import { defaultConfigPath, expandPath } from "./paths.ts";
import { ConfigError } from "../errors.ts";

/** The config file to use: `-c` if given, else the default location. */
export function resolveConfigPath(option?: string): string {
  return option ? expandPath(option) : defaultConfigPath();
}

/**
 * Load and validate a config file.
 *
 * @throws {ConfigError} naming the key, the line and what was expected
 */
export function loadConfig(file: string): Promise<Config> {
  return Promise.reject(new ConfigError(`Cannot load config ${file}: not implemented`));
}
