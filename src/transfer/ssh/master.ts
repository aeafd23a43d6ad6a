/**
 * Looking after the master process of a shared SSH connection (OpenSSH
 * `ControlMaster`): asking whether it still answers (over its control
 * socket, as `ssh -O check` does), and
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

/** The argv of `ssh -O exit` for one shared connection. */
export type ControlArgv = (operation: "exit") => Promise<string[]>;

/** What a check of the master found. */
export type MasterState =
  /** A master answered; `pid` is its process id. */
  | { state: "running"; pid: number | null }
  /** No master listens on the socket (none was started, or it died). */
  | { state: "gone" }
  /** The socket exists but the master did not answer in time. */
  | { state: "hung" };

/** Messages of OpenSSH's control protocol (its PROTOCOL.mux) that a check uses. */
const MUX_MSG_HELLO = 0x00000001;
const MUX_C_ALIVE_CHECK = 0x10000004;
const MUX_S_ALIVE = 0x80000005;
const MUX_PROTOCOL_VERSION = 4;

/**
 * Ask the master listening on `controlPath` whether it runs, as `ssh -O
 * check` does, over its control socket itself (OpenSSH's control protocol:
 * a hello each way, then an alive check that the master answers with its
 * process id) instead of starting a program for it before every batch.
 * Never throws.
 */
export async function checkMaster(controlPath: string): Promise<MasterState> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: controlPath });
  } catch {
    return { state: "gone" };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, CONTROL_REQUEST_TIMEOUT_MS);
  try {
    await writeAll(conn, packet(MUX_MSG_HELLO, MUX_PROTOCOL_VERSION));
    const reader = packetReader(conn);
    const hello = await reader();
    if (hello === null || hello.getUint32(0) !== MUX_MSG_HELLO) return { state: "gone" };
    const requestId = 1;
    await writeAll(conn, packet(MUX_C_ALIVE_CHECK, requestId));
    const alive = await reader();
    if (alive === null || alive.byteLength < 12 || alive.getUint32(0) !== MUX_S_ALIVE) {
      return { state: "gone" };
    }
    return { state: "running", pid: alive.getUint32(8) || null };
  } catch {
    return timedOut ? { state: "hung" } : { state: "gone" };
  } finally {
    clearTimeout(timer);
    if (!timedOut) conn.close();
  }
}

/** One control message: its length, then `words` as 32-bit big-endian numbers. */
function packet(...words: number[]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * words.length);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 4 * words.length);
  words.forEach((word, i) => view.setUint32(4 + 4 * i, word));
  return bytes;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Reads the control messages of `conn` one at a time (`null` once it ends). */
function packetReader(conn: Deno.Conn): () => Promise<DataView | null> {
  let buffered = new Uint8Array(0);
  const fill = async (bytes: number): Promise<boolean> => {
    while (buffered.length < bytes) {
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) return false;
      const joined = new Uint8Array(buffered.length + n);
      joined.set(buffered);
      joined.set(chunk.subarray(0, n), buffered.length);
      buffered = joined;
    }
    return true;
  };
  return async () => {
    if (!await fill(4)) return null;
    const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(0);
    // Far more than any answer to a check: not a master.
    if (length > 65_536 || !await fill(4 + length)) return null;
    const message = buffered.slice(4, 4 + length);
    buffered = buffered.slice(4 + length);
    return new DataView(message.buffer);
  };
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
 * command line names the socket): guards against killing a reused pid. Only
 * where `/proc` exists (Linux); elsewhere `false`.
 */
async function isMasterOf(pid: number, controlPath: string): Promise<boolean> {
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes(controlPath);
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
