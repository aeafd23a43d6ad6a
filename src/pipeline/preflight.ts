/**
 * What `run` checks in a valid config before it starts anything, shared by
 * `config validate`, `doctor` and `install-service` so that a config they
 * accept starts: the programs it runs of its own (hooks, scheduled
 * commands), the archive folders of source cleanup, and the status page's
 * address and token.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { type ListenSettings, listenSettings } from "../status/listen.ts";
import { checkUserPrograms } from "./hooks.ts";
import { assertCleanupSafe } from "./source_cleanup.ts";

/**
 * Check `config` as `run` does before it starts.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @returns the status page's settings (`null` when it is off)
 * @throws {ConfigError} naming what is wrong and what to do
 */
export async function checkBeforeStart(
  config: Config,
  runsAs?: number | null,
): Promise<ListenSettings | null> {
  await checkUserPrograms(config.jobs, config.file, runsAs);
  assertCleanupSafe(config.jobs);
  return await listenSettings(config);
}
