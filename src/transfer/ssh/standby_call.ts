/**
 * A call started ahead of need (see `SshSession.runStreamed`): `ssh` running
 * the streamed-script command over the shared connection, its remote shell
 * already waiting for a script on its standard input. The next batch gives it
 * its script and copies and skips what every new call costs before its first
 * byte can go: the session opened over the connection and the server's window
 * for it (two round trips: OpenSSH's server opens a session's window only
 * once its command runs), and the local `ssh`, the login shell and `sh`
 * started. One not needed is ended by closing its input (its shell then exits
 * without doing anything).
 *
 * @module
 */
import { runProcess, type RunResult } from "../../process/run.ts";

/** One call started ahead of need; see the module doc. */
export class StandbyCall {
  /** The time-out it was started with (counted from its use). */
  readonly timeoutMs: number | undefined;
  #give!: (parts: Uint8Array[] | null) => void;
  #given = false;
  #ended = false;
  #onStdout: ((chunk: Uint8Array) => void) | undefined;
  #abort = new AbortController();
  #result: Promise<RunResult>;

  /**
   * Start `argv` (with `env`), its standard input given by
   * {@linkcode StandbyCall.use}; `done` is called once it has ended, however.
   */
  constructor(
    argv: string[],
    options: { timeoutMs?: number; env: Record<string, string>; done: () => void },
  ) {
    this.timeoutMs = options.timeoutMs;
    const input = new Promise<Uint8Array[] | null>((resolve) => this.#give = resolve);
    this.#result = runProcess(argv, {
      stdinLater: input,
      timeoutMs: options.timeoutMs,
      signal: this.#abort.signal,
      env: options.env,
      // ssh ends its own helpers: no copy of the daemon per call.
      ownSession: false,
      onStdout: (chunk) => this.#onStdout?.(chunk),
    });
    this.#result.then(() => {}, () => {}).finally(() => {
      this.#ended = true;
      options.done();
    });
  }

  /** Whether it may still be used: not used, not ended (an ended one failed, or was not needed). */
  get ready(): boolean {
    return !this.#given && !this.#ended;
  }

  /**
   * Give it its standard input (`parts`, then closed), its output to
   * `onStdout` as it comes; aborting `signal` kills it.
   *
   * @returns its result, as `runProcess` gives it
   */
  use(
    parts: Uint8Array[],
    options: { onStdout?: (chunk: Uint8Array) => void; signal?: AbortSignal },
  ): Promise<RunResult> {
    this.#given = true;
    this.#onStdout = options.onStdout;
    const { signal } = options;
    if (signal?.aborted) this.#abort.abort(signal.reason);
    signal?.addEventListener("abort", () => this.#abort.abort(signal.reason), { once: true });
    this.#give(parts);
    return this.#result;
  }

  /** Not needed: its input is closed and its remote shell ends. Waits until it has. */
  async retire(): Promise<void> {
    if (!this.#given) {
      this.#given = true;
      this.#give(null);
    }
    await this.#result.catch(() => {});
  }
}
