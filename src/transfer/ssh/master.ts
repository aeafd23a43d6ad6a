/**
 * Looking after the master process of a shared SSH connection (OpenSSH
 * `ControlMaster`): asking whether it still answers (`ssh -O check`), and
 * ending one that died, hangs, or whose connection no longer works (`ssh -O
 * exit`, else SIGKILL), so that the next call opens a fresh connection.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CommandError } from "../../errors.ts";
import { killProcess, runProcess } from "../../process/run.ts";
import { join } from "node:path";
import { escapePercent } from "./endpoint.ts";

const logger = getLogger(["image-transfer", "transfer"]);

/**
 * Longest wait for a master to answer a control request. It answers on its
 * own, without the server, within milliseconds when it is well.
 */
const CONTROL_REQUEST_TIMEOUT_MS = 5_000;

/** The argv of `ssh -O <operation>` for one shared connection. */
export type ControlArgv = (operation: "check" | "exit") => Promise<string[]>;

/** What `ssh -O check` found. */
export type MasterState =
  /** A master answered; `pid` is its process id when ssh said it. */
  | { state: "running"; pid: number | null }
  /** No master listens on the socket (none was started, or it died). */
  | { state: "gone" }
  /** The socket exists but the master did not answer in time. */
  | { state: "hung" };

/** Ask the master whether it runs (`ssh -O check`). Never throws. */
export async function checkMaster(
  argv: ControlArgv,
  env: Record<string, string>,
): Promise<MasterState> {
  try {
    const { stderr } = await runProcess(await argv("check"), {
      timeoutMs: CONTROL_REQUEST_TIMEOUT_MS,
      env,
      ownSession: false,
    });
    const pid = stderr.match(/\(pid=(\d+)\)/);
    return { state: "running", pid: pid ? Number(pid[1]) : null };
  } catch (error) {
    if (error instanceof CommandError && error.run.timedOut) {
      return { state: "hung" };
    }
    return { state: "gone" };
  }
}

/**
 * End the master of `controlPath` and remove its socket, whatever state it is
 * in: ask it to exit, and if it does not answer, kill process `pid` (when
 * that is still the master of this socket). Calls under way over it fail.
 * Never throws.
 */
export async function stopMaster(
  argv: ControlArgv,
  env: Record<string, string>,
  controlPath: string,
  pid: number | null,
): Promise<void> {
  let exited = false;
  try {
    await runProcess(await argv("exit"), {
      timeoutMs: CONTROL_REQUEST_TIMEOUT_MS,
      env,
      ownSession: false,
    });
    exited = true;
  } catch {
    // No answer: a hung master, or none at all.
  }
  if (!exited && pid !== null) {
    if (await isMasterOf(pid, controlPath)) {
      logger.warn("Killing the unresponsive SSH connection master (pid {pid})", { pid });
      await killProcess(pid);
    }
  }
  // A master that died without cleaning up (or was killed) leaves its socket.
  await Deno.remove(controlPath).catch(() => {});
}

/**
 * Whether process `pid` is the ssh master listening on `controlPath` (its
 * process title names the socket, as `ps` shows it): guards against killing
 * a reused pid. Asked of `ps`, since the daemon may not read `/proc`;
 * `false` where it cannot tell.
 */
async function isMasterOf(pid: number, controlPath: string): Promise<boolean> {
  try {
    const { stdout } = await runProcess(["ps", "-ww", "-o", "args=", "-p", String(pid)], {
      timeoutMs: CONTROL_REQUEST_TIMEOUT_MS,
      ownSession: false,
    });
    return new TextDecoder().decode(stdout).includes(controlPath);
  } catch {
    return false;
  }
}

/**
 * Prefix of the link, in the runtime folder, to a private socket folder made
 * elsewhere because the runtime folder's path is too long for a socket.
 */
export const CONTROL_DIR_LINK_PREFIX = "ctl-";

/**
 * End the shared connections a daemon that was killed left in its runtime
 * folder `dir` (sockets named `cm-*`, and those in the socket folders its
 * `ctl-*` links point to, which are removed), so no ssh master outlives it by
 * more than one start. Never throws.
 *
 * @returns how many sockets were found
 */
export async function endLeftoverMasters(dir: string): Promise<number> {
  let found = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(CONTROL_DIR_LINK_PREFIX) && entry.isSymlink) {
        const target = await Deno.readLink(join(dir, entry.name)).catch(() => "");
        // Only a socket folder this program made (`itx-*`) is ended and removed.
        if (!/(^|[/\\])itx-[^/\\]+$/.test(target)) continue;
        found += await endLeftoverMasters(target);
        await Deno.remove(target, { recursive: true }).catch(() => {});
        continue;
      }
      if (!entry.name.startsWith("cm-")) continue;
      found++;
      const socket = join(dir, entry.name);
      const argv: ControlArgv = (operation) =>
        Promise.resolve([
          "ssh",
          "-O",
          operation,
          "-o",
          `ControlPath=${escapePercent(socket)}`,
          "leftover-connection",
        ]);
      await stopMaster(argv, {}, socket, null);
    }
  } catch {
    // No folder (cleaned at reboot or logout): nothing was left.
  }
  return found;
}
