/**
 * Running one child process: argument arrays only, output captured, a timeout
 * and an abort signal that kill the child's whole process group.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CommandError, type CommandRun } from "../errors.ts";

const logger = getLogger(["image-transfer", "transfer"]);

/** Most stderr text kept on a {@linkcode CommandRun} (the tail is kept). */
const STDERR_MAX_CHARS = 16_000;

/** Options of {@linkcode runCommand}. */
export interface RunCommandOptions {
  /** Kill the process group after this many milliseconds. @default no limit */
  timeoutMs?: number;
  /** Kill the process group when aborted; the call then rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Bytes or text fed to standard input, which is then closed. @default no input */
  stdin?: Uint8Array | string;
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
 * program started (the `ssh` under `rsync`) die with it.
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

  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
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
  } catch (error) {
    const what = error instanceof Deno.errors.NotFound
      ? `${argv[0]} is not installed or not on PATH`
      : String(error instanceof Error ? error.message : error);
    throw new CommandError(`Cannot run ${argv[0]}: ${what}`, runOf({}), { cause: error });
  }

  let timedOut = false;
  let aborted = false;
  const killGroup = () => {
    try {
      if (Deno.build.os === "windows") child.kill("SIGKILL");
      else Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
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

  const feed = options.stdin === undefined ? Promise.resolve() : writeAll(child, options.stdin);
  let output: Deno.CommandOutput;
  try {
    [output] = await Promise.all([child.output(), feed]);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  const stderr = tail(new TextDecoder().decode(output.stderr).trim());
  const durationMs = elapsed();
  if (aborted && options.signal) throw options.signal.reason;
  if (output.success && !timedOut) {
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

/** Write `input` to the child's stdin and close it; a child that exits early is not an error. */
async function writeAll(child: Deno.ChildProcess, input: Uint8Array | string): Promise<void> {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  const writer = child.stdin.getWriter();
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
