/**
 * The permission set allows the network (any host), because the `ftp` method
 * connects to a host only the config names and the status page listens on
 * the address the config names. A daemon none of whose jobs uses `ftp` gives
 * that permission up once its status page listens: the open socket keeps
 * answering, but no other connection or listener can be opened.
 *
 * @module
 */
import type { Config } from "../config/types.ts";

/** Whether any job of `config` opens network connections of its own (after start-up). */
export function needsNetwork(config: Config): boolean {
  return config.jobs.some((job) => job.transfer_method === "ftp");
}

/**
 * Give up network access for the rest of the process unless `config` needs it.
 *
 * @returns whether it was given up
 */
export async function dropNetworkUnlessNeeded(config: Config): Promise<boolean> {
  if (needsNetwork(config)) return false;
  await Deno.permissions.revoke({ name: "net" });
  return true;
}

/**
 * Refuse a reloaded config that needs the network access given up at start-up.
 *
 * @throws {Error} saying to restart the daemon
 */
export function assertNetworkAvailable(config: Config, dropped: boolean): void {
  if (dropped && needsNetwork(config)) {
    throw new Error(
      "an ftp job needs network access, which this daemon gave up at start-up because no job " +
        "used ftp; restart the daemon to add one",
    );
  }
}
