/**
 * Permissions given up once the daemon has started. The permission set
 * allows the network (any host), because the `ftp` method connects to a host
 * only the config names and the status page listens on the address the
 * config names; and it allows starting programs, because hooks and scheduled
 * commands are the user's own (the config check guards them: see
 * `process/program_trust.ts`).
 *
 * A daemon none of whose jobs uses `ftp` gives up the network once its status
 * page listens: the open socket keeps answering, but no other connection or
 * listener can be opened. A daemon none of whose jobs starts a program (only
 * `local` or `ftp` jobs, no hooks, no scheduled commands) gives up starting
 * programs altogether. Deno cannot take back one program out of a permission
 * that allows them all, so a daemon that starts `ssh` or a hook keeps the
 * power to start `systemctl` too: the program check, the service's own
 * account and (under systemd) its sandbox are what bound it.
 *
 * @module
 */
import type { Config } from "../config/types.ts";

/** Whether any job of `config` opens network connections of its own (after start-up). */
export function needsNetwork(config: Config): boolean {
  return config.jobs.some((job) => job.transfer_method === "ftp");
}

/** Whether any job of `config` starts programs (ssh, scp, rsync, hooks, scheduled commands). */
export function needsPrograms(config: Config): boolean {
  return config.jobs.some((job) =>
    job.transfer_method === "scp" || job.transfer_method === "rsync" ||
    job.on_transfer.length > 0 || job.on_failure.length > 0 ||
    job.schedules.some((entry) => entry.action === "command")
  );
}

/** What was given up at start-up. */
export interface Dropped {
  net: boolean;
  run: boolean;
}

/** Give up network access and starting programs for the rest of the process unless `config` needs them. */
export async function dropUnneededPermissions(config: Config): Promise<Dropped> {
  const dropped = { net: !needsNetwork(config), run: !needsPrograms(config) };
  if (dropped.net) await Deno.permissions.revoke({ name: "net" });
  if (dropped.run) await Deno.permissions.revoke({ name: "run" });
  return dropped;
}

/**
 * Refuse a reloaded config that needs a permission given up at start-up.
 *
 * @throws {Error} saying to restart the daemon
 */
export function assertPermissionsAvailable(config: Config, dropped: Dropped): void {
  if (dropped.net && needsNetwork(config)) {
    throw new Error(
      "an ftp job needs network access, which this daemon gave up at start-up because no job " +
        "used ftp; restart the daemon to add one",
    );
  }
  if (dropped.run && needsPrograms(config)) {
    throw new Error(
      "the new config starts programs (ssh, scp, rsync, a hook or a scheduled command), which " +
        "this daemon gave up at start-up because no job started any; restart the daemon to use it",
    );
  }
}
