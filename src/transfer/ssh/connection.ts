/**
 * Talking to an SSH destination: the OpenSSH options every `ssh`, `scp` and `rsync` call shares,
 * one shared connection (ControlMaster) per destination, and remote scripts run over it. The
 * endpoint, remote paths and quoting are in `ssh/endpoint.ts`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, join } from "node:path";
import { CommandError } from "../../errors.ts";
import { type RunOptions, runProcess, type RunResult } from "../../process/run.ts";
import { rsyncRshQuote, type SshEndpoint, sshOptionArgs } from "./endpoint.ts";
import { CONTROL_DIR_LINK_PREFIX, SharedMaster } from "./master.ts";
import { parseResults, type RemoteScript, type ResultLine } from "./remote_script.ts";
import { StandbyCall } from "./standby_call.ts";

/**
 * The remote command of {@linkcode SshSession.runStreamed}: read the length line, then exactly
 * that many bytes of script, and run them, its standard input the rest. Each `dd bs=N count=1` is
 * one read of at most the N bytes still missing, so no read goes past the script, and a script of
 * 90 KB takes a few reads, not 90,000 of one byte (a tenth of a second of the server's CPU per
 * call). The `.` after each read keeps its trailing line breaks; `LC_ALL=C` makes `${#s}` count
 * bytes. Without `dd`, or when the input ends early, it ends at once, with no result (the caller
 * then knows the host cannot).
 */
export const STREAMED_SCRIPT_COMMAND = [
  "sh",
  "-c",
  '\'LC_ALL=C; IFS= read -r n || exit 0; s=; while [ "${#s}" -lt "$n" ]; do ' +
  'c=$(dd bs="$((n - ${#s}))" count=1 2>/dev/null; echo .); [ "$c" != . ] || exit 0; ' +
  's=$s${c%.}; done; eval "$s"\'',
];

/** Longest control socket path we create (sockets are limited to ~104 bytes, ssh adds 17). */
const CONTROL_PATH_MAX_BYTES = 80;

/**
 * Calls carried at once over one shared connection: below OpenSSH's default
 * `MaxSessions 10`, with room for `doctor` or a user's own ssh joining it.
 */
const MAX_SHARED_SESSIONS = 8;

/**
 * How long a call started ahead of need waits for a batch before it is ended
 * (while it waits, the shared connection does not close on its own).
 */
const STANDBY_IDLE_MS = 120_000;

/** Sessions of the shared connection a call started ahead of need leaves free, at least. */
const STANDBY_KEEPS_FREE = 2;

/** Environment for every SSH-side process: English messages locally and (via SendEnv) remotely. */
export const SSH_ENV: Record<string, string> = { LC_ALL: "C" };

/** One destination reached through ssh, sharing one connection among all calls. */
export class SshSession {
  readonly endpoint: SshEndpoint;
  #runtimeDir: string;
  #tempDir: string | undefined;
  #controlPath: string | null | undefined;
  #ownControlDir: string | null = null;
  #making: Promise<string | null> | undefined; // One path for the calls that come while it is made.
  #slots = new SessionSlots(MAX_SHARED_SESSIONS);
  /** The call started ahead of need, for the next batch (see `ssh/standby_call.ts`). */
  #standby: StandbyCall | null = null;
  #standbyTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The shared connection's master, looked after. */
  #master = new SharedMaster({
    controlArgv: (operation) => this.#controlArgv(operation),
    env: SSH_ENV,
    open: (timeoutMs, signal) => this.runScript("exit 0\n", { timeoutMs, signal }).then(() => {}),
    host: () => this.endpoint.host,
    connectTimeoutS: () => this.endpoint.connectTimeoutS,
  });

  /** `tempDir`: where a socket's own folder goes if `runtimeDir` is too long (default: TMPDIR). */
  constructor(endpoint: SshEndpoint, runtimeDir: string, tempDir?: string) {
    this.endpoint = endpoint;
    this.#runtimeDir = runtimeDir;
    this.#tempDir = tempDir;
  }

  /** `user@host`, or `host` when no user is configured. */
  get destination(): string {
    return this.endpoint.user ? `${this.endpoint.user}@${this.endpoint.host}` : this.endpoint.host;
  }

  /** `[user@]host:path` for scp and rsync (IPv6 addresses in brackets). */
  remoteSpec(path: string): string {
    const host = this.endpoint.host.includes(":") ? `[${this.endpoint.host}]` : this.endpoint.host;
    return `${this.endpoint.user ? `${this.endpoint.user}@` : ""}${host}:${path}`;
  }

  /**
   * The control socket path, creating its private folder (mode 700) on first
   * use; `null` on Windows, where OpenSSH has no connection sharing.
   */
  async controlPath(): Promise<string | null> {
    if (this.#controlPath !== undefined) return this.#controlPath; // Kept at the close.
    this.#master.assertOpen(); // Closed: no folder for a call that is refused.
    return await (this.#making ??= this.#makePath().finally(() => this.#making = undefined));
  }

  async #makePath(): Promise<string | null> {
    if (Deno.build.os === "windows") return this.#controlPath = null;
    const e = this.endpoint;
    const key = JSON.stringify([e.host, e.user, e.port, e.identityFile, e.options]);
    const name = `cm-${createHash("sha256").update(key).digest("hex").slice(0, 16)}`;
    let dir = this.#runtimeDir;
    if (new TextEncoder().encode(join(dir, name)).length > CONTROL_PATH_MAX_BYTES) {
      if (!this.#ownControlDir) {
        const own = await Deno.makeTempDir({ dir: this.#tempDir, prefix: "itx-" });
        this.#ownControlDir = own;
        // Found by the next start if this daemon is killed (see endLeftoverMasters).
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
        await Deno.symlink(own, join(dir, `${CONTROL_DIR_LINK_PREFIX}${basename(own)}`))
          .catch(() => {});
      }
      dir = this.#ownControlDir;
    } else {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    }
    await Deno.chmod(dir, 0o700);
    this.#master.track(join(dir, name), this.#ownControlDir); // Ended even on a crash.
    return this.#controlPath = join(dir, name);
  }

  /**
   * The `-o`/`-i` options shared by ssh and scp (and rsync's ssh): batch mode,
   * the job's `ssh_options`, timeouts, keep-alives, connection sharing.
   * The port is not included (`-p` for ssh, `-P` for scp).
   */
  async optionArgs(): Promise<string[]> {
    return sshOptionArgs(this.endpoint, await this.controlPath());
  }

  /** argv of `ssh` running `remoteCommand` (words joined by ssh with spaces). */
  async sshArgv(remoteCommand: string[]): Promise<string[]> {
    const port = this.endpoint.port === null ? [] : ["-p", String(this.endpoint.port)];
    const compression = this.endpoint.compression ? ["-C"] : [];
    return [
      "ssh",
      ...await this.optionArgs(),
      ...compression,
      ...port,
      "--",
      this.destination,
      ...remoteCommand,
    ];
  }

  /** argv of `scp` copying local `sources` to the remote `target` (SFTP protocol, no `-O`). */
  async scpArgv(sources: string[], target: string): Promise<string[]> {
    const port = this.endpoint.port === null ? [] : ["-P", String(this.endpoint.port)];
    const compression = this.endpoint.compression ? ["-C"] : [];
    return [
      "scp",
      "-q",
      ...await this.optionArgs(),
      ...compression,
      ...port,
      "--",
      ...sources,
      this.remoteSpec(target),
    ];
  }

  /** The value of rsync's `-e`: the ssh command, each word quoted for rsync's own splitting. */
  async rsyncRsh(): Promise<string> {
    const port = this.endpoint.port === null ? [] : ["-p", String(this.endpoint.port)];
    return ["ssh", ...await this.optionArgs(), ...port].map(rsyncRshQuote).join(" ");
  }

  /**
   * Run a POSIX `sh` script on the remote host and return its standard output.
   * The script travels on stdin to `sh -s`, so the login shell (whatever it
   * is) only ever sees the fixed words `sh -s`.
   *
   * @throws {CommandError} when ssh fails or the script exits non-zero
   */
  async runScript(
    script: string,
    options: { timeoutMs?: number; signal?: AbortSignal; onlyIfFree?: boolean } = {},
  ): Promise<string> {
    const result = await this.run(await this.sshArgv(["sh", "-s"]), {
      stdin: script,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      onlyIfFree: options.onlyIfFree,
    });
    return new TextDecoder().decode(result.stdout);
  }

  /**
   * Run a remote script (see `remote_script.ts`) whose standard input, after the script, is
   * `payload`: one call carries small files and what is done with them. A `payload` in a
   * `SharedArrayBuffer` reaches a launcher thread without a copy. The login shell sees fixed words
   * only ({@linkcode STREAMED_SCRIPT_COMMAND}); the script comes first on standard input, after a
   * line with its length in bytes, read to the byte so the rest is left for the script.
   *
   * Each result line is also given to `onResult` as soon as it comes.
   *
   * @returns the script's result lines
   */
  async runStreamed(
    script: RemoteScript,
    payload: Uint8Array,
    options: {
      timeoutMs?: number;
      signal?: AbortSignal;
      onResult?: (result: ResultLine) => void;
    } = {},
  ): Promise<ResultLine[]> {
    const text = new TextEncoder().encode(script.text);
    const head = new TextEncoder().encode(`${text.length}\n`);
    const lines = new LineSplitter();
    const results: ResultLine[] = [];
    const take = (whole: string) => {
      for (const result of parseResults(whole, script.marker)) {
        results.push(result);
        options.onResult?.(result);
      }
    };
    const onStdout = (chunk: Uint8Array) => take(lines.push(chunk));
    const input = [head, text, payload];
    const standby = this.#takeStandby(options.timeoutMs);
    const carried = standby === null ? false : await this.#outcome(
      standby.use(input, { onStdout, signal: options.signal }),
    ).then(() => true, (error) => {
      // One that ended before its script ran (it died, or its connection did; nothing came
      // back) is as if there had been none; one that ran out of time is this call's end.
      const timedOut = error instanceof CommandError && error.run.timedOut;
      if (options.signal?.aborted || timedOut || results.length > 0) throw error;
      lines.end();
      return false;
    });
    if (!carried) {
      const { timeoutMs, signal } = options;
      const argv = await this.sshArgv(STREAMED_SCRIPT_COMMAND);
      await this.run(argv, { stdin: input, timeoutMs, signal, onStdout });
    }
    take(lines.end());
    return results;
  }

  /** The call started ahead of need, if there is one ready for a call with `timeoutMs`. */
  #takeStandby(timeoutMs: number | undefined): StandbyCall | null {
    const standby = this.#standby;
    this.#standby = null;
    clearTimeout(this.#standbyTimer);
    if (standby === null) return null;
    if (standby.ready && standby.timeoutMs === timeoutMs && this.#master.trusted()) return standby;
    void standby.retire();
    return null;
  }

  /**
   * Start the next {@linkcode SshSession.runStreamed} call ahead of need (see
   * `ssh/standby_call.ts`), with `timeoutMs`, over a master that carried a
   * call well just now, while a session is free to spare; ended when not used
   * within {@linkcode STANDBY_IDLE_MS}.
   */
  async startAhead(timeoutMs: number | undefined): Promise<void> {
    const controlPath = await this.controlPath();
    if (controlPath === null || !await this.#master.servedRecently(controlPath)) return;
    // Over the shared connection only (for ssh the first value of an option wins): never a
    // master of its own, which would race the next batch's opening for the socket, nor a
    // connection of its own (its proxy command fails at once); a master that is gone
    // leaves the standby ended, and the next batch opens a new connection.
    const [ssh, ...rest] = await this.sshArgv(STREAMED_SCRIPT_COMMAND);
    const argv = [ssh, "-o", "ControlMaster=no", "-o", "ProxyCommand=false", ...rest];
    // Checked after the waits: another batch may have started one, or the session closed.
    if (this.#standby !== null || this.#closed) return;
    const giveBack = this.#slots.takeIfFree(STANDBY_KEEPS_FREE);
    if (giveBack === null) return;
    const standby = new StandbyCall(argv, { timeoutMs, env: SSH_ENV, done: giveBack });
    this.#standby = standby;
    this.#standbyTimer = setTimeout(() => {
      if (this.#standby === standby) this.#standby = null;
      void standby.retire();
    }, STANDBY_IDLE_MS);
  }

  /** `call`'s outcome, told to the master's care (as {@linkcode SshSession.run} does). */
  async #outcome<T>(call: Promise<T>): Promise<T> {
    try {
      const result = await call;
      this.#master.served();
      return result;
    } catch (error) {
      if (error instanceof CommandError) this.#master.failed();
      throw error;
    }
  }

  /**
   * Run an ssh, scp or rsync call to this destination (`argv` from this
   * session) with {@linkcode SSH_ENV}, once the shared connection has a free
   * session: calls beyond {@linkcode MAX_SHARED_SESSIONS} wait their turn.
   * With `onlyIfFree`, a call that would have to wait, or would take the last
   * free session, throws instead: for optional work that waits on other calls.
   *
   * @throws {CommandError} if the command fails, `signal.reason` if aborted, an `Error` once closed
   */
  async run(
    argv: string[],
    options: RunOptions & { onlyIfFree?: boolean } = {},
  ): Promise<RunResult> {
    const { onlyIfFree, ...runOptions } = options;
    const giveBack = onlyIfFree
      ? this.#slots.takeIfFree(1)
      : await this.#slots.take(options.signal);
    if (giveBack === null) throw new Error(`every shared session to ${this.destination} is in use`);
    try {
      // A failed call leaves the connection in doubt: the next connect() makes sure it works.
      return await this.#outcome(this.#master.carry(options.signal, (signal) =>
        runProcess(argv, {
          ...runOptions,
          signal,
          env: { ...SSH_ENV, ...runOptions.env },
          // ssh, scp and rsync end their own helpers: no copy of the daemon per call.
          ownSession: false,
        })));
    } finally {
      giveBack();
    }
  }

  /**
   * Make sure the shared connection works before a batch's calls start (see
   * {@linkcode SharedMaster.connect}: opened when there is none, replaced
   * when it died, hangs or no longer gets through).
   *
   * @returns `null`, or why no connection could be opened (a
   *   {@linkcode CommandError}, an `Error` when that timed out, or the abort
   *   reason): calls now would fail alike
   */
  async connect(options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<unknown> {
    const controlPath = await this.controlPath();
    if (controlPath === null) return null;
    return await this.#master.connect(controlPath, options);
  }

  /** argv of `ssh -O operation` for this destination's shared connection. */
  #controlArgv = async (operation: "check" | "exit"): Promise<string[]> => {
    const argv = await this.sshArgv([]);
    argv.splice(argv.indexOf("--"), 0, "-O", operation);
    return argv;
  };

  /** End its calls under way and its shared connection for good; remove a private socket folder. */
  async close(): Promise<void> {
    this.#closed = true;
    const standby = this.#standby;
    this.#standby = null;
    clearTimeout(this.#standbyTimer);
    await standby?.retire();
    await this.#master.close(this.#controlPath ?? null);
    if (this.#ownControlDir) {
      await Deno.remove(this.#ownControlDir, { recursive: true }).catch(() => {});
      const link = `${CONTROL_DIR_LINK_PREFIX}${basename(this.#ownControlDir)}`;
      await Deno.remove(join(this.#runtimeDir, link)).catch(() => {});
      this.#ownControlDir = null;
    }
  }
}

/** Standard output as it comes, given back a whole line at a time. */
class LineSplitter {
  #decoder = new TextDecoder();
  #rest = "";

  /** The lines `chunk` completes (each ending in a line break), or "". */
  push(chunk: Uint8Array): string {
    const text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    const end = text.lastIndexOf("\n") + 1;
    this.#rest = text.slice(end);
    return text.slice(0, end);
  }

  /** What is left at the end of the output: a last line without its line break. */
  end(): string {
    const rest = this.#rest + this.#decoder.decode();
    this.#rest = "";
    return rest;
  }
}

/** Gives out a fixed number of slots; callers wait in order for a free one. */
export class SessionSlots {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Slots not taken right now. */
  get free(): number {
    return this.#free;
  }

  /**
   * Wait for a free slot and take it; returns the function that gives it back (safe to call
   * twice). Throws `signal.reason` when aborted while waiting.
   */
  async take(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return this.#giver();
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      const abort = () => {
        this.#waiting.splice(this.#waiting.indexOf(wake), 1);
        reject(signal!.reason);
      };
      this.#waiting.push(wake);
      signal?.addEventListener("abort", abort, { once: true });
    });
    // The slot was handed over directly by the one who gave it back.
    return this.#giver();
  }

  /**
   * Take a slot only if one is free now and `keep` more stay free after it (for optional work
   * that waits on other calls: it can never hold every slot); `null` otherwise.
   */
  takeIfFree(keep = 0): (() => void) | null {
    if (this.#free <= keep) return null;
    this.#free--;
    return this.#giver();
  }

  #giver(): () => void {
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
