/**
 * Running one child process: argument arrays only, output captured, a timeout
 * and an abort signal that kill the child's whole process group.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { CommandError, type CommandRun } from "../errors.ts";
import { killProcess } from "./kill_process.ts";

const logger = getLogger(["image-transfer", "transfer"]);

/** Most stderr text kept on a {@linkcode CommandRun} (the tail is kept). */
const STDERR_MAX_CHARS = 16_000;

/**
 * How long a killed program's output pipes may stay open after it exited
 * (held by a helper it started that survived the kill) before they are
 * closed from this side: a timed-out or aborted call always ends.
 */
const PIPES_AFTER_KILL_MS = 2_000;

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Kill the process group after this many milliseconds. @default no limit */
  timeoutMs?: number;
  /** Kill the process group when aborted; the call then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Bytes or text fed to standard input, which is then closed. @default no input */
  stdin?: Uint8Array | string;
  /**
   * A local file the program reads as its standard input, directly from the
   * file (no pipe through this process): a path, opened here, or the
   * descriptor of a file the caller opened (and closes; it is read from its
   * current position). Not with `stdin`. Not on Windows.
   */
  stdinFile?: string | { fd: number };
  /** Working directory. @default the current one */
  cwd?: string;
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string>;
}

/** What a successful {@linkcode runCommand} returns. */
export interface RunCommandResult {
  stdout: Uint8Array;
  stderr: string;
  /** Always 0: any other exit code throws. */
  code: number;
  durationMs: number;
}

/**
 * Run `argv[0]` with the arguments `argv.slice(1)` (never through a shell),
 * in a new process group, and wait for it.
 *
 * On timeout or abort the whole group is killed with SIGKILL, so helpers the
 * program started (the `ssh` under `rsync`) die with it; the call then ends
 * at most {@linkcode PIPES_AFTER_KILL_MS} after the program itself, even if a
 * helper survived and still holds its output open.
 *
 * @returns stdout, stderr and the duration when the exit code is 0
 * @throws {CommandError} when the program cannot be started, exits non-zero,
 *   is killed or times out; `run.timedOut` tells a timeout apart
 * @throws `signal.reason` when `signal` is aborted
 */
export async function runCommand(
  argv: string[],
  options: RunCommandOptions = {},
): Promise<RunCommandResult> {
  options.signal?.throwIfAborted();
  logger.debug("Running {argv}", { argv });
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const runOf = (fields: Partial<CommandRun>): CommandRun => ({
    argv,
    code: null,
    signal: null,
    timedOut: false,
    stderr: "",
    durationMs: elapsed(),
    ...fields,
  });

  const cannotRun = (error: unknown) => {
    const what = error instanceof Deno.errors.NotFound
      ? `${argv[0]} is not installed or not on PATH`
      : String(error instanceof Error ? error.message : error);
    return new CommandError(`Cannot run ${argv[0]}: ${what}`, runOf({}), { cause: error });
  };
  let child: StartedChild;
  try {
    child = options.stdinFile === undefined
      ? startCommand(argv, options)
      : startWithFileInput(argv, options, options.stdinFile);
  } catch (error) {
    throw cannotRun(error);
  }

  let timedOut = false;
  let aborted = false;
  let killed = false;
  let abandonTimer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  const killGroup = () => {
    if (killed) return;
    killed = true;
    // The group first (the program included), then the program by its own
    // handle, which needs no permission and works where groups do not.
    if (child.pid > 0 && Deno.build.os !== "windows") void killProcess(-child.pid);
    child.kill();
    // A helper outside the group (or a group kill that was not possible) may
    // keep the pipes open: stop waiting for them soon after the program ends.
    void child.exited.then(() => {
      if (!ended) abandonTimer = setTimeout(child.abandon, PIPES_AFTER_KILL_MS);
    });
  };
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => {
    timedOut = true;
    killGroup();
  }, options.timeoutMs);
  const onAbort = () => {
    aborted = true;
    killGroup();
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });

  let output: ChildOutput;
  try {
    output = await child.output;
  } catch (error) {
    throw cannotRun(error);
  } finally {
    ended = true;
    clearTimeout(timer);
    clearTimeout(abandonTimer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  const stderr = tail(new TextDecoder().decode(output.stderr).trim());
  const durationMs = elapsed();
  if (aborted && options.signal) throw options.signal.reason;
  if (output.code === 0 && output.signal === null && !timedOut) {
    return { stdout: output.stdout, stderr, code: 0, durationMs };
  }
  const run = runOf({
    code: output.signal === null ? output.code : null,
    signal: output.signal,
    timedOut,
    stderr,
    durationMs,
  });
  throw new CommandError(describeFailure(run, options.timeoutMs), run);
}

/** How a child ended, with everything it wrote. */
interface ChildOutput {
  code: number | null;
  signal: string | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
}

/** A spawned child: its process id (also its process group's) and its end. */
interface StartedChild {
  pid: number;
  /** Settles once the program and everything holding its pipes are done (or abandoned). */
  output: Promise<ChildOutput>;
  /** Settles once the program itself has exited (or never started). */
  exited: Promise<void>;
  /** SIGKILL the program itself through its handle; no-op once it has exited. */
  kill(): void;
  /** Stop reading its pipes and writing its input: `output` settles with what came so far. */
  abandon(): void;
}

/** Spawn with `Deno.Command`, in a new process group, feeding `options.stdin`. */
function startCommand(argv: string[], options: RunCommandOptions): StartedChild {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    // A new session and process group (setsid), so a timeout can kill the
    // program together with everything it started.
    detached: Deno.build.os !== "windows",
  }).spawn();
  const input = new AbortController();
  const feed = options.stdin === undefined
    ? Promise.resolve()
    : writeAll(child, options.stdin, input.signal);
  const stdout = readAll(child.stdout);
  const stderr = readAll(child.stderr);
  const output = Promise.all([child.status, stdout.bytes, stderr.bytes, feed]).then((
    [status, out, err],
  ) => ({
    code: status.signal === null ? status.code : null,
    signal: status.signal,
    stdout: out,
    stderr: err,
  }));
  return {
    pid: child.pid,
    output,
    exited: child.status.then(() => {}),
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    },
    abandon: () => {
      input.abort();
      stdout.stop();
      stderr.stop();
    },
  };
}

/** Everything read from `stream` until it ends or `stop` is called. */
function readAll(stream: ReadableStream<Uint8Array>): { bytes: Promise<Uint8Array>; stop(): void } {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let stopped = false;
  const bytes = (async () => {
    try {
      for (let r = await reader.read(); !r.done && !stopped; r = await reader.read()) {
        chunks.push(r.value);
      }
    } catch {
      // Cancelled, or the pipe broke: keep what came.
    }
    return concat(chunks);
  })();
  return {
    bytes,
    stop: () => {
      stopped = true;
      reader.cancel().catch(() => {});
    },
  };
}

/**
 * Spawn with the file `input` as standard input (`Deno.Command` can only
 * pipe), in a new process group. A path is opened here, so a source that
 * cannot be read fails before anything runs.
 */
function startWithFileInput(
  argv: string[],
  options: RunCommandOptions,
  input: string | { fd: number },
): StartedChild {
  if (Deno.build.os === "windows") throw new Error("stdinFile is not supported on Windows");
  const fd = typeof input === "string" ? openSync(input, "r") : input.fd;
  let open = typeof input === "string";
  let child;
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd: options.cwd,
      env: { ...Deno.env.toObject(), ...options.env },
      stdio: [fd, "pipe", "pipe"],
      detached: true,
    });
  } catch (error) {
    if (open) closeSync(fd);
    throw error;
  }
  const closeInput = () => {
    if (open) closeSync(fd);
    open = false;
  };
  const stdout: Uint8Array[] = [];
  const stderr: Uint8Array[] = [];
  let status: { code: number | null; signal: string | null } | null = null;
  let settle!: () => void;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", (code: number | null, signal: string | null) => {
      status = { code, signal };
      closeInput();
      resolve();
    });
    child.once("error", () => resolve());
  });
  const output = new Promise<ChildOutput>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Uint8Array) => stdout.push(chunk));
    child.stderr!.on("data", (chunk: Uint8Array) => stderr.push(chunk));
    child.once("error", (error: Error & { code?: string }) => {
      closeInput();
      reject(error.code === "ENOENT" ? new Deno.errors.NotFound(error.message) : error);
    });
    const done = (code: number | null, signal: string | null) => {
      closeInput();
      resolve({ code, signal, stdout: concat(stdout), stderr: concat(stderr) });
    };
    child.once("close", done);
    // Abandoned: the program has exited, its pipes are no longer waited for.
    settle = () => done(status?.code ?? null, status?.signal ?? "SIGKILL");
  });
  return {
    // No pid: not started (e.g. not on PATH); the error event says why.
    pid: child.pid ?? 0,
    output,
    exited,
    kill: () => {
      if (status === null) child.kill("SIGKILL");
    },
    abandon: () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      settle();
    },
  };
}

/** The bytes of `chunks`, one after another. */
function concat(chunks: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/**
 * Write `input` to the child's stdin and close it; a child that exits early is
 * not an error. `stop` gives up a write that cannot finish.
 */
async function writeAll(
  child: Deno.ChildProcess,
  input: Uint8Array | string,
  stop: AbortSignal,
): Promise<void> {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const writer = child.stdin.getWriter();
  stop.addEventListener("abort", () => void writer.abort().catch(() => {}), { once: true });
  try {
    await writer.write(bytes);
    await writer.close();
  } catch {
    // The child closed its stdin (exited or failed); its exit status tells why.
  }
}

/** Keep the last {@linkcode STDERR_MAX_CHARS} characters. */
function tail(text: string): string {
  return text.length <= STDERR_MAX_CHARS ? text : `…${text.slice(-STDERR_MAX_CHARS)}`;
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
