/**
 * The program launcher: a worker thread that alone may start programs, and
 * only the ones named when it started (the transfer programs and the hooks
 * and scheduled commands of the config, as checked paths). The runtime
 * enforces the list: the worker is created with a `run` permission of just
 * those programs and nothing else (no files, network or environment), and
 * the daemon then gives up starting programs itself. So once the daemon
 * runs, nothing in it can start `systemctl`, `launchctl`, `schtasks`, a
 * shell or any program the config did not name; a config reloaded with a new
 * program needs a restart.
 *
 * {@linkcode ProgramLauncher} is the daemon's side; `launcher_worker.ts` runs
 * each program with {@linkcode runHere} and streams back what it wrote.
 *
 * @module
 */
import { CommandError, type CommandRun, systemError } from "../errors.ts";
import type { ProgramStarter, RunOptions, RunResult } from "./run.ts";

/** What the daemon asks of the launcher. */
export type LauncherRequest =
  | {
    kind: "run";
    id: number;
    argv: string[];
    options: Omit<RunOptions, "signal" | "onStdout" | "stdinLater">;
    /** Whether to send standard output as it comes (`onStdout`). */
    streamStdout: boolean;
    /** Whether standard input comes later, in a `stdin` request (`stdinLater`). */
    stdinLater: boolean;
  }
  | { kind: "stdin"; id: number; parts: Uint8Array[] | null }
  | { kind: "abort"; id: number }
  | { kind: "kill"; id: number; pid: number };

/** What the launcher answers (`ready` once, when it has loaded). */
export type LauncherReply =
  | { kind: "ready"; id: 0 }
  | { kind: "stdout"; id: number; chunk: Uint8Array }
  | { kind: "ran"; id: number; result: RunResult }
  | {
    kind: "failed";
    id: number;
    message: string;
    run: CommandRun;
    /** The system's error when the program could not start. */
    cause: { name: string; message: string } | null;
  }
  | { kind: "aborted"; id: number }
  | { kind: "killed"; id: number; sent: boolean };

/** One request waiting for its answer. */
interface Pending {
  argv: string[];
  resolve(value: RunResult | boolean): void;
  reject(error: unknown): void;
  onStdout?: (chunk: Uint8Array) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** The daemon's side of the launcher: see the module doc. */
export class ProgramLauncher implements ProgramStarter {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #broken: string | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<LauncherReply>) => this.#answer(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(event.message ?? "it stopped");
    };
    worker.onmessageerror = () => this.#fail("an answer could not be read");
  }

  /**
   * Start the launcher, allowed to start `programs` (absolute paths, or names
   * looked up on `PATH` now) and nothing else, and wait until it has loaded.
   *
   * @throws when this thread may not start programs, or the launcher's module
   *   does not load. (Without the runtime's `worker-options` feature the
   *   runtime ends the process instead: `deno.json` and the compile commands
   *   turn it on.)
   */
  static async start(programs: readonly string[]): Promise<ProgramLauncher> {
    const worker = new Worker(new URL("./launcher_worker.ts", import.meta.url), {
      type: "module",
      deno: {
        permissions: {
          run: [...programs],
          read: false,
          write: false,
          net: false,
          env: false,
          sys: false,
          ffi: false,
          import: false,
        },
      },
    } as WorkerOptions);
    try {
      await new Promise<void>((resolve, reject) => {
        worker.onmessage = () => resolve();
        worker.onerror = (event) => {
          event.preventDefault();
          reject(new Error(event.message ?? "the program launcher did not load"));
        };
      });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    return new ProgramLauncher(worker);
  }

  /** Run `argv` in the launcher; the same contract as `runProcess`. */
  run(argv: string[], options: RunOptions): Promise<RunResult> {
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    const { signal, onStdout, stdinLater, ...rest } = options;
    return this.#ask<RunResult>(
      argv,
      (id) => {
        void stdinLater?.then((parts) => parts, () => null).then((parts) =>
          this.#worker.postMessage({ kind: "stdin", id, parts } satisfies LauncherRequest)
        );
        return {
          kind: "run",
          id,
          argv,
          options: rest,
          streamStdout: onStdout !== undefined,
          stdinLater: stdinLater !== undefined,
        };
      },
      { onStdout, signal },
    );
  }

  /** Send SIGKILL to process (or group, when negative) `pid`; see `killProcess`. */
  kill(pid: number): Promise<boolean> {
    return this.#ask<boolean>(["kill"], (id) => ({ kind: "kill", id, pid }), {})
      .catch(() => false);
  }

  /** Stop the launcher; requests still waiting fail. */
  close(): void {
    this.#fail("the daemon is stopping");
    this.#worker.terminate();
  }

  #ask<T extends RunResult | boolean>(
    argv: string[],
    request: (id: number) => LauncherRequest,
    extra: Pick<Pending, "onStdout" | "signal">,
  ): Promise<T> {
    if (this.#broken !== null) return Promise.reject(launcherGone(argv, this.#broken));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const pending: Pending = {
        argv,
        resolve: resolve as (value: RunResult | boolean) => void,
        reject,
        ...extra,
      };
      if (extra.signal) {
        pending.onAbort = () => this.#worker.postMessage({ kind: "abort", id });
        extra.signal.addEventListener("abort", pending.onAbort, { once: true });
      }
      this.#pending.set(id, pending);
      this.#worker.postMessage(request(id));
    });
  }

  #answer(reply: LauncherReply): void {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    if (reply.kind === "stdout") {
      pending.onStdout?.(reply.chunk);
      return;
    }
    this.#pending.delete(reply.id);
    if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
    switch (reply.kind) {
      case "ran":
        return pending.resolve(reply.result);
      case "killed":
        return pending.resolve(reply.sent);
      case "aborted":
        return pending.reject(pending.signal?.reason ?? new Error("aborted"));
      case "failed":
        return pending.reject(
          new CommandError(reply.message, reply.run, {
            cause: reply.cause ? systemError(reply.cause) : undefined,
          }),
        );
    }
  }

  #fail(why: string): void {
    this.#broken ??= why;
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      if (pending.onAbort) pending.signal?.removeEventListener("abort", pending.onAbort);
      pending.reject(launcherGone(pending.argv, why));
    }
  }
}

/** The error of a request the launcher can no longer answer. */
function launcherGone(argv: string[], why: string): CommandError {
  const run = { argv, code: null, signal: null, timedOut: false, stderr: "", durationMs: 0 };
  return new CommandError(`Cannot run ${argv[0]}: the program launcher ended (${why})`, run);
}
