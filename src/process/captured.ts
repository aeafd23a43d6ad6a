/**
 * Running a user's program (hooks, scheduled commands) through
 * {@linkcode runProcess}: argument list, no shell, stdin closed, stdout and
 * stderr captured (up to 16 KiB each, a cut said) for the log, its process group killed
 * after a timeout or when the caller stops.
 *
 * @module
 */
import { CommandError } from "../errors.ts";
import { neverStarted, runProcess } from "./run.ts";

/** Most bytes of a program's stdout or stderr kept for the log. */
export const MAX_OUTPUT_BYTES = 16 * 1024;

/** How long output pipes a program left to a background child are read after it exits. */
const PIPES_AFTER_EXIT_MS = 500;

/** How a run ended. */
export type CapturedRun =
  | { kind: "not-started"; error: string }
  | {
    kind: "ok" | "failed" | "timed-out";
    /** `exit code N`, `ended by signal S` or `stopped` (kind `failed`). */
    reason: string;
    signal: string | null;
    stdout: string;
    stderr: string;
    /** `stdout: ...; stderr: ...` (the non-empty ones), for a log line. */
    output: string;
  };

/**
 * The variables of this process a user's program receives: nothing that could
 * hold a secret (an FTP password variable, tokens), only what programs need
 * to find their tools and speak the user's language and time zone. Windows
 * programs need their system folders besides.
 */
export const PASSED_VARIABLES: readonly string[] = [
  "PATH",
  "HOME",
  "LANG",
  "TZ",
  ...(Deno.build.os === "windows"
    ? ["SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "TEMP", "TMP", "USERPROFILE"]
    : []),
];

/** The environment a user's program starts with: {@linkcode PASSED_VARIABLES} and `env`. */
export function programEnvironment(env: Record<string, string>): Record<string, string> {
  const passed: Record<string, string> = {};
  for (const name of PASSED_VARIABLES) {
    const value = Deno.env.get(name);
    if (value !== undefined) passed[name] = value;
  }
  return { ...passed, ...env };
}

/**
 * Run `argv` with `env` and {@linkcode PASSED_VARIABLES} of this process's
 * environment (nothing else of it); kill it after
 * `timeoutMs`, or when `signal` is aborted (the run then ends as `failed`,
 * reason `stopped`). Never throws.
 */
export async function runCaptured(
  argv: string[],
  env: Record<string, string>,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<CapturedRun> {
  const decoder = new TextDecoder();
  const ended = (
    kind: "ok" | "failed" | "timed-out",
    reason: string,
    signal: string | null,
    stdoutText: string,
    stderrText: string,
  ): CapturedRun => {
    const stdout = capOutput(stdoutText);
    const stderr = capOutput(stderrText);
    const output = [
      stdout === "" ? "" : `stdout: ${stdout}`,
      stderr === "" ? "" : `stderr: ${stderr}`,
    ]
      .filter((part) => part !== "").join("; ");
    return { kind, reason, signal, stdout, stderr, output };
  };
  try {
    const result = await runProcess(argv, {
      env: programEnvironment(env),
      clearEnv: true,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      pipesAfterExitMs: PIPES_AFTER_EXIT_MS,
      // Enough of both ends for the log line (start or end), not a whole flood in memory.
      keepBytes: 4 * MAX_OUTPUT_BYTES,
    });
    return ended("ok", "exit code 0", null, decoder.decode(result.stdout), result.stderr);
  } catch (error) {
    if (neverStarted(error)) {
      const cause = (error as CommandError).cause;
      return { kind: "not-started", error: cause instanceof Error ? cause.message : String(error) };
    }
    if (error instanceof CommandError) {
      const { run } = error;
      const kind = run.timedOut ? "timed-out" : "failed";
      const reason = run.signal ? `ended by signal ${run.signal}` : `exit code ${run.code}`;
      return ended(kind, reason, run.signal, run.stdout ?? "", run.stderr);
    }
    // Aborted: the caller is stopping.
    return ended("failed", "stopped", "SIGKILL", "", "");
  }
}

/**
 * At most {@linkcode MAX_OUTPUT_BYTES} of `text` (its start, without a
 * character cut in two), without trailing blanks; a cut is said at the end.
 */
export function capOutput(text: string): string {
  const trimmed = text.trimEnd();
  const bytes = new TextEncoder().encode(trimmed);
  if (bytes.length <= MAX_OUTPUT_BYTES) return trimmed;
  // `stream` holds back the bytes of a character the cut leaves incomplete.
  const start = new TextDecoder().decode(bytes.subarray(0, MAX_OUTPUT_BYTES), { stream: true });
  return `${start.trimEnd()} \u2026 (output cut at ${MAX_OUTPUT_BYTES / 1024} KiB)`;
}
