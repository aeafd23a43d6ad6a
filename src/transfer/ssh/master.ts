/**
 * Looking after the master process of a shared SSH connection (OpenSSH
 * `ControlMaster`): opening it, asking whether it still answers (`ssh -O
 * check`, before a batch or alongside the calls of one), and ending one that
 * died, hangs, or whose connection no longer works (`ssh -O exit`, else
 * SIGKILL), so that the next call opens a fresh connection.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CommandError } from "../../errors.ts";
import { onCrash } from "../../process/crash_cleanup.ts";
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
 * Longest wait for a round trip over a shared connection that is in doubt
 * (after a call over it failed); one that takes longer is closed and the
 * next call opens a new connection. Far more than a healthy round trip, even
 * behind a busy upload.
 */
const PROBE_TIMEOUT_MS = 20_000;

/**
 * Seconds allowed for opening a connection beyond `ConnectTimeout` (which
 * covers the TCP connection and the key exchange): for authentication.
 */
const OPEN_GRACE_S = 30;

/**
 * A master that carried a call which ended well this recently is not asked
 * whether it runs before the next batch, but alongside its calls (see
 * {@linkcode SharedMaster.connect}): the check costs a program start (about
 * 20 ms here) on the way of every file otherwise.
 */
export const SERVED_RECENTLY_MS = 10_000;

/** How often a master that serves calls is asked whether it runs, at most. */
const CHECK_ALONGSIDE_EVERY_MS = 1_000;

/** What a {@linkcode SharedMaster} needs of its session. */
export interface MasterSession {
  controlArgv: ControlArgv;
  env: Record<string, string>;
  /** Run a call that does nothing over the shared connection (opening it when there is none). */
  open(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  host(): string;
  connectTimeoutS(): number;
}

/**
 * The master of one session's shared connection, looked after: what is known
 * of it (its pid, whether a call failed since it last answered, when it last
 * carried a call that ended well and when it was last asked), opening it,
 * checking it before a batch or alongside its calls, and ending it. One check
 * or opening at a time.
 */
export class SharedMaster {
  /** Process id of the master, as `ssh -O check` last told it. */
  #pid: number | null = null;
  /** A call failed since the shared connection was last known to work. */
  #inDoubt = false;
  #servedAt = -Infinity;
  #checkedAt = -Infinity;
  #session: MasterSession;
  /** The opening (or check before a batch) under way: settles to `null`, or why it failed. */
  #opening: Promise<unknown> | null = null;
  /** The check alongside calls under way. */
  #alongside: Promise<void> | null = null;
  /** The check planned alongside calls (see {@linkcode SharedMaster.connect}). */
  #checkTimer: ReturnType<typeof setTimeout> | undefined;
  /** Calls under way (see {@linkcode SharedMaster.carry}). */
  #calls = new Set<Promise<unknown>>();
  /** Aborted by {@linkcode SharedMaster.close}: ends the calls under way, refuses new ones. */
  #closing = new AbortController();

  /** Takes back the ending of the master should the program crash (see {@linkcode SharedMaster.track}). */
  #untrack: () => void = () => {};

  constructor(session: MasterSession) {
    this.#session = session;
  }

  /**
   * The master's socket is `controlPath`, in folder `own` (made for it) unless
   * `null`: should the program crash before {@linkcode SharedMaster.close},
   * the master is ended and `own` removed all the same (`process/crash_cleanup.ts`),
   * at once; calls under way end, and later ones are refused, as after a close
   * (the program runs on until it exits: a call would open a master no one ends).
   */
  track(controlPath: string, own: string | null): void {
    this.#untrack();
    this.#untrack = onCrash(async () => {
      this.#closing.abort(new Error("the program is ending on a crash"));
      clearTimeout(this.#checkTimer);
      await stopMaster(this.#session.controlArgv, this.#session.env, controlPath, this.#pid);
      if (own !== null) await Deno.remove(own, { recursive: true }).catch(() => {});
    });
  }

  /** A call over the master ended well. */
  served(): void {
    this.#servedAt = performance.now();
  }

  /** A call over the master failed: the connection may be what failed. */
  failed(): void {
    this.#inDoubt = true;
  }

  /**
   * Make sure the shared connection of `controlPath` works before a batch's
   * calls start: open it when there is none (so parallel first calls do not
   * each pay for a full SSH handshake of ~0.3 s), replace a master that died,
   * hangs, or, after a failed call, no longer gets an answer through (e.g.
   * across a link cut it has not noticed yet). Bounded in time:
   * `ConnectTimeout` plus a little. A master that carried a call well within
   * {@linkcode SERVED_RECENTLY_MS} is asked alongside the batch's calls
   * instead (a hung one is then ended, and the calls waiting on it fail).
   *
   * @returns `null`, or why no connection could be opened (a
   *   {@linkcode CommandError}, an `Error` when that timed out, or the abort
   *   reason): calls now would fail alike
   */
  async connect(
    controlPath: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<unknown> {
    if (this.#opening === null && await this.servedRecently(controlPath)) {
      this.#planCheck(controlPath);
      return null;
    }
    // A check alongside calls settles nothing for this batch: it is asked again after it.
    while (this.#alongside !== null) await this.#alongside;
    this.#opening ??= this.#ensure(controlPath, options).then(() => null, (error) => error)
      .finally(() => {
        this.#opening = null;
      });
    return await this.#opening;
  }

  /**
   * Run `call`, one that may open the master (any ssh, scp or rsync call with
   * `ControlMaster=auto`, the first of them does), as one its owner ends:
   * {@linkcode SharedMaster.close} aborts the signal given to it and waits for
   * it to be over before it ends the master, so none opened meanwhile is left
   * running (for `ControlPersist`) once the owner is gone. `signal` aborts it too.
   *
   * @throws {Error} once the master was closed (a call now would open one no one ends)
   */
  async carry<T>(
    signal: AbortSignal | undefined,
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    this.assertOpen();
    const own = new AbortController();
    const abort = () => own.abort(signal?.aborted ? signal.reason : this.#closing.signal.reason);
    if (signal?.aborted) abort();
    signal?.addEventListener("abort", abort, { once: true });
    this.#closing.signal.addEventListener("abort", abort, { once: true });
    const running = call(own.signal);
    this.#calls.add(running);
    try {
      return await running;
    } finally {
      this.#calls.delete(running);
      signal?.removeEventListener("abort", abort);
      this.#closing.signal.removeEventListener("abort", abort);
    }
  }

  /** @throws {Error} once closed (or on a crash): a call now would open a master no one ends */
  assertOpen(): void {
    if (!this.#closing.signal.aborted) return;
    throw new Error(`Cannot call ${this.#session.host()}: its shared SSH connection was closed`);
  }

  /**
   * End the master of `controlPath` (`null`: none was made) for good, once the
   * calls under way (ended now: see {@linkcode SharedMaster.carry}) and a check
   * or opening are over.
   */
  async close(controlPath: string | null): Promise<void> {
    this.#closing.abort(new Error("the shared SSH connection is closing"));
    clearTimeout(this.#checkTimer);
    this.#checkTimer = undefined;
    await Promise.allSettled([...this.#calls]);
    while (this.#opening !== null || this.#alongside !== null) {
      await (this.#opening ?? this.#alongside);
    }
    if (controlPath !== null && await exists(controlPath)) await this.#stop(controlPath);
    this.#untrack();
  }

  /** Whether the master is known and no call failed since it last answered. */
  trusted(): boolean {
    return !this.#inDoubt && this.#pid !== null;
  }

  /** Whether the master is known, served a call well lately, none failed since, and its socket is there. */
  async servedRecently(controlPath: string): Promise<boolean> {
    if (!this.trusted() || performance.now() - this.#servedAt >= SERVED_RECENTLY_MS) return false;
    return await exists(controlPath);
  }

  /**
   * Ask the master whether it runs once it may be asked again (at most once a
   * second), unless a check that starts later than now is planned already:
   * so a check that starts after them covers the calls of every batch. One
   * that hangs is ended (the calls waiting on it go on over a connection ssh
   * opens for them, or fail and are tried again, instead of waiting for their
   * time-out); one that is gone leaves the connection in doubt, so the next
   * batch opens a new one first.
   */
  #planCheck(controlPath: string): void {
    if (this.#checkTimer !== undefined) return;
    const due = Math.max(0, this.#checkedAt + CHECK_ALONGSIDE_EVERY_MS - performance.now());
    this.#checkTimer = setTimeout(async () => {
      // One check or opening at a time.
      while (this.#opening !== null || this.#alongside !== null) {
        await (this.#opening ?? this.#alongside);
      }
      this.#checkTimer = undefined;
      this.#alongside = this.#check().then(async (master) => {
        if (master.state !== "running") this.#inDoubt = true;
        if (master.state === "hung") await this.#stop(controlPath, { hung: true });
      }).finally(() => {
        this.#alongside = null;
      });
    }, due);
  }

  /** See {@linkcode SharedMaster.connect}; throws when no connection could be opened. */
  async #ensure(
    controlPath: string,
    options: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<void> {
    const openMs = (this.#session.connectTimeoutS() + OPEN_GRACE_S) * 1000;
    const bound = (ms: number) => Math.min(ms, options.timeoutMs ?? ms);
    if (await exists(controlPath)) {
      const master = await this.#check();
      if (master.state === "running") {
        if (!this.#inDoubt) return;
        this.#inDoubt = false;
        const answered = await this.#session.open(bound(PROBE_TIMEOUT_MS), options.signal)
          .then(() => true, () => false);
        if (answered || options.signal?.aborted) return;
      }
      await this.#stop(controlPath, { hung: master.state === "hung" });
    }
    this.#pid = null;
    this.#inDoubt = false;
    const timeoutMs = bound(openMs);
    try {
      await this.#session.open(timeoutMs, options.signal);
    } catch (error) {
      if (!(error instanceof CommandError && error.run.timedOut)) throw error;
      throw new Error(
        `no SSH connection to ${this.#session.host()} could be opened within ` +
          `${timeoutMs / 1000} s (is the host up and reachable?)`,
        { cause: error },
      );
    }
    await this.#check();
  }

  /** Ask the master whether it runs ({@linkcode checkMaster}), keeping its pid. */
  async #check(): Promise<MasterState> {
    this.#checkedAt = performance.now();
    const master = await checkMaster(this.#session.controlArgv, this.#session.env);
    if (master.state === "running") this.#pid = master.pid ?? this.#pid;
    return master;
  }

  async #stop(controlPath: string, options: { hung?: boolean } = {}): Promise<void> {
    await stopMaster(this.#session.controlArgv, this.#session.env, controlPath, this.#pid, options);
    this.#pid = null;
  }
}

/** Whether something exists at `path` (a control socket). */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * End the master of `controlPath` and remove its socket, whatever state it is
 * in: ask it to exit (not when it is known to hang: `hung`), and if it does
 * not answer, kill process `pid` when that is still the master of this
 * socket (`null`: not known, as for a killed daemon's leftovers; the master is
 * then found by its process title, also one that hangs and cannot be asked).
 * Said at WARNING only when it hangs (the request timed out, or `hung`): a
 * request ended otherwise, by a Ctrl-C pressed again while the daemon stops
 * (it reaches every program of the daemon's process group, this request too)
 * or by a master that ended meanwhile, is no fault of the master.
 * Calls under way over it fail. Never throws.
 */
export async function stopMaster(
  argv: ControlArgv,
  env: Record<string, string>,
  controlPath: string,
  pid: number | null,
  options: { hung?: boolean } = {},
): Promise<void> {
  let exited = false;
  let hung = options.hung === true;
  if (!hung) {
    try {
      await runProcess(await argv("exit"), {
        timeoutMs: CONTROL_REQUEST_TIMEOUT_MS,
        env,
        ownSession: false,
      });
      exited = true;
    } catch (error) {
      // No answer in time: a hung master. Else none at all, or the request was interrupted.
      hung = error instanceof CommandError && error.run.timedOut;
    }
  }
  // One that hangs cannot tell its pid: it is found by its process title all the same.
  const master = exited ? null : await masterPid(controlPath, pid);
  if (master !== null) {
    const said = hung
      ? "Killing the unresponsive SSH connection master (pid {pid})"
      : "Ending the SSH connection master (pid {pid}): the request to exit did not get through";
    logger[hung ? "warn" : "debug"](said, { pid: master });
    await killProcess(master);
  }
  // A master that died without cleaning up (or was killed) leaves its socket.
  await Deno.remove(controlPath).catch(() => {});
}

/**
 * The ssh master listening on `controlPath`, as `ps` shows it: process `pid`
 * (as the master told it) when its command line names the socket (never a
 * reused pid), or with `pid` `null` the process whose title is the master's
 * (`ssh: <controlPath> [mux]`, set as it goes to the background for
 * `ControlPersist`), never a call over it. Asked of `ps`, since the daemon may
 * not read `/proc`; `null` where it cannot tell.
 */
async function masterPid(controlPath: string, pid: number | null): Promise<number | null> {
  try {
    const { stdout } = await runProcess(["ps", "-A", "-ww", "-o", "pid=", "-o", "args="], {
      timeoutMs: CONTROL_REQUEST_TIMEOUT_MS,
      ownSession: false,
    });
    for (const line of new TextDecoder().decode(stdout).split("\n")) {
      const [, id, args] = line.match(/^\s*(\d+) (.*)$/) ?? [];
      if (id === undefined) continue;
      const found = pid === null
        ? args.trimEnd() === `ssh: ${controlPath} [mux]`
        : Number(id) === pid && args.includes(controlPath);
      if (found) return Number(id);
    }
  } catch { /* No ps, or it failed: cannot tell. */ }
  return null;
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
