/**
 * Running a user's program (hooks, scheduled commands): argument list, no
 * shell, stdin closed, stdout and stderr captured (up to 16 KiB each) for the
 * log, killed after a timeout.
 *
 * @module
 */

/** Most bytes of a program's stdout or stderr kept for the log. */
export const MAX_OUTPUT_BYTES = 16 * 1024;

/** How a run ended. */
export type CapturedRun =
  | { kind: "not-started"; error: string }
  | {
    kind: "ok" | "failed" | "timed-out";
    /** `exit code N` or `ended by signal S` (kind `failed`). */
    reason: string;
    signal: string | null;
    stdout: string;
    stderr: string;
    /** `stdout: …; stderr: …` (the non-empty ones), for a log line. */
    output: string;
  };

/**
 * Run `argv` with `env` added to this process's environment; kill it after
 * `timeoutMs`. `children` holds the process while it runs (to kill it on stop).
 */
export async function runCaptured(
  argv: string[],
  env: Record<string, string>,
  options: { timeoutMs: number; children?: Set<Deno.ChildProcess> },
): Promise<CapturedRun> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    return { kind: "not-started", error: error instanceof Error ? error.message : String(error) };
  }
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  options.children?.add(child);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killChild(child);
  }, options.timeoutMs);
  const status = await child.status;
  clearTimeout(timer);
  options.children?.delete(child);
  // A grandchild may still hold the pipes open: read what is there, briefly.
  const [out, err] = await Promise.all([stdout.settle(500), stderr.settle(500)]);
  const output = [out === "" ? "" : `stdout: ${out}`, err === "" ? "" : `stderr: ${err}`]
    .filter((part) => part !== "").join("; ");
  const kind = timedOut ? "timed-out" : status.success ? "ok" : "failed";
  const reason = status.signal ? `ended by signal ${status.signal}` : `exit code ${status.code}`;
  return { kind, reason, signal: status.signal, stdout: out, stderr: err, output };
}

/** Kill `child` at once (no-op when it is gone). */
export function killChild(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
}

/** Reads a stream into text (at most {@linkcode MAX_OUTPUT_BYTES}). */
function collect(stream: ReadableStream<Uint8Array>): { settle(graceMs: number): Promise<string> } {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const reader = stream.getReader();
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        if (kept < MAX_OUTPUT_BYTES) {
          chunks.push(value.subarray(0, MAX_OUTPUT_BYTES - kept));
          kept += Math.min(value.length, MAX_OUTPUT_BYTES - kept);
        }
      }
    } catch { /* cancelled */ }
  })();
  return {
    async settle(graceMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<void>((resolve) => timer = setTimeout(resolve, graceMs));
      await Promise.race([done, late]);
      clearTimeout(timer);
      await reader.cancel().catch(() => {});
      const bytes = new Uint8Array(kept);
      let at = 0;
      for (const chunk of chunks) {
        bytes.set(chunk, at);
        at += chunk.length;
      }
      return new TextDecoder().decode(bytes).trimEnd();
    },
  };
}
