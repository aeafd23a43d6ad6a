/**
 * This process's open file descriptors, on Linux, for `process_open_fds`.
 * Deno lets only a program with every permission read `/proc/<pid>/fd`, and
 * the daemon runs with fewer and may give up starting programs after start,
 * so a small helper started once beforehand counts them: `sh` running a
 * fixed script that answers each line it reads with the number of entries
 * of that folder. It ends when the daemon closes it or dies (its input ends).
 *
 * @module
 */

/** The helper's script; `$1` is the pid whose descriptors it counts. */
const COUNT_SCRIPT = 'while read -r _; do n=0; for f in /proc/"$1"/fd/*; do n=$((n + 1)); done; ' +
  'echo "$n"; done';

/** Longest wait for one answer before the count is given up as unknown. */
const ANSWER_TIMEOUT_MS = 5_000;

/** Counts this process's open descriptors through a helper started once. */
export class OpenFdCounter {
  #child: Deno.ChildProcess;
  #input: WritableStreamDefaultWriter<Uint8Array>;
  #output: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #queue: Promise<unknown> = Promise.resolve();
  #broken = false;
  #closed = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#input = child.stdin.getWriter();
    this.#output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    child.status.then(() => this.#broken = true, () => this.#broken = true);
  }

  /** Start the helper; `null` off Linux, or when it cannot be started. */
  static start(): OpenFdCounter | null {
    if (Deno.build.os !== "linux") return null;
    try {
      const child = new Deno.Command("sh", {
        args: ["-c", COUNT_SCRIPT, "sh", String(Deno.pid)],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
        env: { LC_ALL: "C" },
      }).spawn();
      child.unref();
      return new OpenFdCounter(child);
    } catch {
      return null;
    }
  }

  /** The number of open descriptors now, or `null` when it cannot be told. */
  count(): Promise<number | null> {
    const asked = this.#queue.then(() => this.#ask());
    this.#queue = asked.catch(() => {});
    return asked;
  }

  async #ask(): Promise<number | null> {
    if (this.#broken) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await this.#input.write(new TextEncoder().encode("\n"));
      const line = await Promise.race([
        this.#line(),
        new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ANSWER_TIMEOUT_MS)),
      ]);
      if (line === null) {
        this.close(); // A late answer would be taken for the next question's.
        return null;
      }
      return /^\d+$/.test(line) ? Number(line) : null;
    } catch {
      this.#broken = true;
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  async #line(): Promise<string | null> {
    for (;;) {
      const end = this.#buffered.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffered.slice(0, end);
        this.#buffered = this.#buffered.slice(end + 1);
        return line.trim();
      }
      const { value, done } = await this.#output.read();
      if (done) return null;
      this.#buffered += value;
    }
  }

  /** End the helper. Safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = this.#broken = true;
    this.#input.close().catch(() => {});
    this.#output.cancel().catch(() => {});
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
  }
}
