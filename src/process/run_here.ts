/**
 * Running one child process in this thread: argument arrays only (never a
 * shell), output captured, and a timeout and an abort signal that kill the
 * child's whole process group (or only the child, for programs that end their
 * own helpers). Every failure is a {@linkcode CommandError}
 * carrying the run (argv, exit code, signal, timeout, stderr, duration) and,
 * when the program could not start, the system's error as its `cause`.
 *
 * Killing processes this program did not start itself (a process group, a
 * shared SSH connection's master): `Deno.kill` needs the power to run
 * anything, which the permission set gives; under a narrower one (a list of
 * programs, as the launcher has) the `kill` program is used.
 *
 * Everyone else calls `run.ts`, which starts programs here or through the
 * launcher. This module imports no package and no `node:` module: the
 * launcher's worker loads it, and stays small.
 *
 * @module
 */
import { CommandError, type CommandRun } from "../errors.ts";

/** Most text of stderr (and stdout, on failure) kept on a {@linkcode CommandRun} (the tail). */
const OUTPUT_MAX_CHARS = 16_000;

/**
 * How long a killed program's output pipes may stay open after it exited
 * (held by a helper it started that survived the kill) before they are
 * closed from this side: a timed-out or aborted call always ends.
 */
const PIPES_AFTER_KILL_MS = 2_000;

/** Options of {@linkcode runProcess}. */
export interface RunOptions {
  /** Kill the process group after this many milliseconds. @default no limit */
  timeoutMs?: number;
  /** Kill the process group when aborted; the call then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * Bytes or text fed to standard input (parts are written one after the
   * other, never joined), which is then closed. @default no input
   */
  stdin?: Uint8Array | string | Uint8Array[];
  /**
   * Standard input given later (instead of `stdin`): the program starts now
   * and waits for it; the parts are written once this settles, then stdin is
   * closed (at once for `null`: the program was not needed). `timeoutMs`
   * counts from then. A program started ahead of need.
   */
  stdinLater?: Promise<Uint8Array[] | null>;
  /** Working directory. @default the current one */
  cwd?: string;
  /**
   * Once the program has exited, wait at most this long for its output pipes
   * (a program it started in the background may hold them open), then return
   * what came. @default wait until they close (a kill bounds it)
   */
  pipesAfterExitMs?: number;
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of the current one (then only `env`). */
  clearEnv?: boolean;
  /** Called with each piece of standard output as it comes (it is returned whole as well). */
  onStdout?: (chunk: Uint8Array) => void;
  /**
   * Keep at most about this many bytes of the start and as many of the end of
   * stdout and of stderr each, dropping the middle, so a program that prints
   * without end cannot fill the memory. @default keep all
   */
  keepBytes?: number;
  /**
   * Start the program in a session and process group of its own, so that a
   * timeout or abort kills everything it started, and a Ctrl-C in the
   * daemon's terminal does not reach it. The runtime can only do that by
   * copying this whole process first (a fork, not a vfork): for a daemon of
   * 250 MB on a virtual machine, about 25 ms of CPU more per program, and a
   * page fault for each page the daemon writes next. Programs that end their
   * own helpers when they are killed (`ssh`, and the `ssh` under `scp` and
   * `rsync`, which ends with its pipes) run in the daemon's group instead:
   * on a timeout or abort the program alone is killed. @default true
   */
  ownSession?: boolean;
}

/** What a successful {@linkcode runProcess} returns. */
export interface RunResult {
  stdout: Uint8Array;
  stderr: string;
  /** Always 0: any other exit code throws. */
  code: number;
  durationMs: number;
}

/**
 * Run `argv[0]` with the arguments `argv.slice(1)` in a new process group
 * (its own session; see {@linkcode RunOptions.ownSession}) and wait for it.
 * On timeout or abort the whole group is killed with SIGKILL, so helpers the
 * program started die with it; the call then ends at most
 * {@linkcode PIPES_AFTER_KILL_MS} after the program itself, even if a helper
 * survived and still holds its output open.
 *
 * @returns stdout, stderr and the duration when the exit code is 0
 * @throws {CommandError} when the program cannot be started (`run.code` and
 *   `run.signal` are `null`, the system's error is the `cause`), exits
 *   non-zero, is killed or times out (`run.timedOut`)
 * @throws `signal.reason` when `signal` is aborted
 */
export async function runHere(argv: string[], options: RunOptions = {}): Promise<RunResult> {
  options.signal?.throwIfAborted();
  const ownSession = options.ownSession ?? true;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.clearEnv,
      stdin: options.stdin === undefined && options.stdinLater === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      // A new session and process group (setsid), so a timeout can kill the
      // program together with everything it started.
      detached: Deno.build.os !== "windows" && ownSession,
    }).spawn();
  } catch (error) {
    throw cannotStart(argv, error, elapsed());
  }

  const input = new AbortController();
  const later = options.stdinLater?.then((parts) => parts ?? [], () => []);
  const feeding = later !== undefined
    // A program that ends before its input comes is not waited for.
    ? Promise.race([later.then((parts) => feed(child, parts, input.signal)), child.status])
    : options.stdin === undefined
    ? Promise.resolve()
    : feed(child, options.stdin, input.signal);
  const stdout = readAll(child.stdout, options.keepBytes, options.onStdout);
  const stderrBytes = readAll(child.stderr, options.keepBytes);

  let timedOut = false;
  let aborted = false;
  let killed = false;
  let ended = false;
  let abandonTimer: ReturnType<typeof setTimeout> | undefined;
  const abandonPipesAfterExit = (ms: number) => {
    void child.status.then(() => {
      if (ended) return;
      clearTimeout(abandonTimer);
      abandonTimer = setTimeout(() => {
        input.abort();
        stdout.stop();
        stderrBytes.stop();
      }, ms);
    });
  };
  if (options.pipesAfterExitMs !== undefined) abandonPipesAfterExit(options.pipesAfterExitMs);
  const killGroup = () => {
    if (killed) return;
    killed = true;
    // The group first (the program included), then the program by its own
    // handle, which needs no permission and works where groups do not.
    if (Deno.build.os !== "windows" && ownSession) void killHere(-child.pid);
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    // A helper outside the group may keep the pipes open: stop waiting for
    // them soon after the program itself ends.
    abandonPipesAfterExit(PIPES_AFTER_KILL_MS);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const startTimer = () => {
    if (options.timeoutMs === undefined || ended) return;
    timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
  };
  if (later !== undefined) void later.then(startTimer);
  else startTimer();
  const onAbort = () => {
    aborted = true;
    killGroup();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });

  let output: { code: number; signal: Deno.Signal | null; stdout: Uint8Array; stderr: Uint8Array };
  try {
    const [status, out, err] = await Promise.all([
      child.status,
      stdout.bytes,
      stderrBytes.bytes,
      feeding,
    ]);
    output = { code: status.code, signal: status.signal, stdout: out, stderr: err };
  } finally {
    ended = true;
    clearTimeout(timer);
    clearTimeout(abandonTimer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  if (aborted && options.signal) throw options.signal.reason;
  const decoder = new TextDecoder();
  const stderr = tail(decoder.decode(output.stderr).trim());
  const durationMs = elapsed();
  if (output.code === 0 && output.signal === null && !timedOut) {
    return { stdout: output.stdout, stderr, code: 0, durationMs };
  }
  const run: CommandRun = {
    argv,
    code: output.signal === null ? output.code : null,
    signal: output.signal,
    timedOut,
    stderr,
    stdout: tail(decoder.decode(output.stdout).trim()),
    durationMs,
  };
  throw new CommandError(describeFailure(run, options.timeoutMs), run);
}

/** Whether `error` is a {@linkcode CommandError} of a program that could not be started. */
export function neverStarted(error: unknown): boolean {
  return error instanceof CommandError && error.run.code === null &&
    error.run.signal === null && !error.run.timedOut;
}

/** The error of a program that could not be started. */
function cannotStart(argv: string[], error: unknown, durationMs: number): CommandError {
  const what = error instanceof Deno.errors.NotFound
    ? `${argv[0]} is not installed or not on PATH`
    : error instanceof Error
    ? error.message
    : String(error);
  const run = { argv, code: null, signal: null, timedOut: false, stderr: "", durationMs };
  return new CommandError(`Cannot run ${argv[0]}: ${what}`, run, { cause: error });
}

/**
 * Write `input` to the child's stdin and close it; a child that exits early is
 * not an error. `stop` gives up a write that cannot finish.
 */
async function feed(
  child: Deno.ChildProcess,
  input: Uint8Array | string | Uint8Array[],
  stop: AbortSignal,
): Promise<void> {
  const parts = typeof input === "string"
    ? [new TextEncoder().encode(input)]
    : Array.isArray(input)
    ? input
    : [input];
  const writer = child.stdin.getWriter();
  stop.addEventListener("abort", () => void writer.abort().catch(() => {}), { once: true });
  try {
    for (const part of parts) await writer.write(part);
    await writer.close();
  } catch {
    // The child closed its stdin (exited or failed); its exit status tells why.
  }
}

/** Everything read from `stream` until it ends or `stop` is called; each piece shown to `onChunk`. */
function readAll(
  stream: ReadableStream<Uint8Array>,
  keepBytes = Infinity,
  onChunk?: (chunk: Uint8Array) => void,
): { bytes: Promise<Uint8Array>; stop(): void } {
  const reader = stream.getReader();
  // The start (up to `keepBytes`), then the latest chunks (the end), of which
  // the oldest go while the others still hold `keepBytes`.
  const head: Uint8Array[] = [];
  const end: Uint8Array[] = [];
  let headBytes = 0;
  let endBytes = 0;
  let stopped = false;
  const bytes = (async () => {
    try {
      for (let r = await reader.read(); !r.done && !stopped; r = await reader.read()) {
        onChunk?.(r.value);
        if (headBytes < keepBytes) {
          head.push(r.value);
          headBytes += r.value.length;
          continue;
        }
        end.push(r.value);
        endBytes += r.value.length;
        while (endBytes - end[0].length >= keepBytes) endBytes -= end.shift()!.length;
      }
    } catch {
      // Cancelled, or the pipe broke: keep what came.
    }
    const chunks = [...head, ...end] as Uint8Array<ArrayBuffer>[];
    return new Uint8Array(await new Blob(chunks).arrayBuffer());
  })();
  return {
    bytes,
    stop: () => {
      stopped = true;
      reader.cancel().catch(() => {});
    },
  };
}

/** Keep the last {@linkcode OUTPUT_MAX_CHARS} characters. */
function tail(text: string): string {
  return text.length <= OUTPUT_MAX_CHARS ? text : `\u2026${text.slice(-OUTPUT_MAX_CHARS)}`;
}

/** One line saying how the run ended, with the last line of stderr. */
function describeFailure(run: CommandRun, timeoutMs: number | undefined): string {
  const program = run.argv[0];
  const lastLine = run.stderr.split("\n").filter((line) => line.trim() !== "").at(-1);
  const detail = lastLine ? `: ${lastLine.trim()}` : "";
  if (run.timedOut) {
    return `Cannot finish ${program}: timed out after ${(timeoutMs ?? 0) / 1000} s`;
  }
  if (run.signal) return `Cannot finish ${program}: killed by ${run.signal}${detail}`;
  return `Cannot finish ${program}: exit code ${run.code}${detail}`;
}

/** Whether `Deno.kill` is allowed (it needs unrestricted run permission). */
function mayKillDirectly(): boolean {
  try {
    return Deno.permissions.querySync({ name: "run" }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Send SIGKILL to process `pid`, or to the whole process group `-pid` when
 * `pid` is negative, with this thread's permissions. Never throws: a process
 * already gone, or a system without a `kill` program, is not an error here
 * (the caller does not wait for the kill, it only bounds its own wait).
 *
 * @returns whether the signal was sent
 */
export async function killHere(pid: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid === 0 || pid === -1) return false;
  if (Deno.build.os === "windows") return false; // Only a child's own handle can kill there.
  if (mayKillDirectly()) {
    try {
      Deno.kill(pid, "SIGKILL");
      return true;
    } catch {
      return false;
    }
  }
  try {
    const { success } = await new Deno.Command("kill", {
      args: ["-s", "KILL", "--", String(pid)],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false; // No kill program, or not allowed to run it.
  }
}
