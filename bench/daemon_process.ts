/**
 * The daemon under test, started exactly as users and the CLI tests start it
 * (`deno run -q -P=image-transfer … main.ts run -c FILE`), with every stderr
 * line stamped with the moment the benchmark read it.
 *
 * @module
 */
import { cliArgv } from "../tests/helpers/cli.ts";

/** One line the daemon wrote to stderr, with the arrival time (`performance.now()`). */
export interface LogLine {
  atMs: number;
  text: string;
}

/** CPU time and memory of a process, read from `/proc/<pid>/`. */
export interface ProcessSample {
  /** utime + stime, in milliseconds. */
  cpuMs: number;
  /** Resident set size now, in bytes. */
  rssBytes: number;
  /** Peak resident set size, in bytes. */
  peakRssBytes: number;
}

interface Waiter {
  test: (text: string) => boolean;
  remaining: number;
  resolve: (line: LogLine) => void;
  reject: (error: Error) => void;
}

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux). */
const CLOCK_TICKS_PER_S = 100;

/** A running daemon; see the module doc. */
export class DaemonProcess {
  /** Process id of the daemon (the `deno` process itself). */
  readonly pid: number;
  /** Moment the process was spawned (`performance.now()`). */
  readonly spawnedAtMs: number;
  /** Every stderr line so far. */
  readonly lines: LogLine[] = [];
  #child: Deno.ChildProcess;
  #waiters = new Set<Waiter>();
  #exited = false;
  #status: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>;

  private constructor(child: Deno.ChildProcess, spawnedAtMs: number) {
    this.#child = child;
    this.pid = child.pid;
    this.spawnedAtMs = spawnedAtMs;
    this.#status = child.status.then((status) => {
      this.#exited = true;
      for (const waiter of this.#waiters) {
        waiter.reject(new Error(`The daemon exited (code ${status.code}):\n${this.tail()}`));
      }
      this.#waiters.clear();
      return status;
    });
    this.#pumps = Promise.all([
      this.#readLines(child.stderr),
      child.stdout.pipeTo(new WritableStream()).catch(() => {}),
    ]).then(() => {});
  }

  /**
   * Start `image-transfer run -c configFile` (with `-v` when `verbose`).
   */
  static start(configFile: string, options: { verbose?: boolean } = {}): DaemonProcess {
    const args = [...(options.verbose ? ["-v"] : []), "run", "-c", configFile];
    const spawnedAtMs = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: cliArgv(args),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new DaemonProcess(child, spawnedAtMs);
  }

  async #readLines(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        const atMs = performance.now();
        pending += chunk;
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          this.#onLine({ atMs, text: pending.slice(0, newline) });
          pending = pending.slice(newline + 1);
        }
      }
    } catch { /* the process went away */ }
    if (pending !== "") this.#onLine({ atMs: performance.now(), text: pending });
  }

  #onLine(line: LogLine): void {
    this.lines.push(line);
    for (const waiter of this.#waiters) {
      if (!waiter.test(line.text)) continue;
      if (--waiter.remaining === 0) {
        this.#waiters.delete(waiter);
        waiter.resolve(line);
      }
    }
  }

  /** Lines containing `text` so far. */
  count(text: string): number {
    return this.lines.filter((line) => line.text.includes(text)).length;
  }

  /** The last `n` stderr lines, for error messages. */
  tail(n = 15): string {
    return this.lines.slice(-n).map((line) => line.text).join("\n");
  }

  /**
   * Resolve with the `nth` line (counting lines already received) that
   * contains `text`, or for which `text` returns true.
   *
   * @throws {Error} after `timeoutMs`, or when the daemon exits first
   */
  waitForLine(
    text: string | ((line: string) => boolean),
    options: { nth?: number; timeoutMs: number },
  ): Promise<LogLine> {
    const test = typeof text === "string" ? (line: string) => line.includes(text) : text;
    let remaining = options.nth ?? 1;
    for (const line of this.lines) {
      if (test(line.text) && --remaining === 0) return Promise.resolve(line);
    }
    if (this.#exited) {
      return Promise.reject(new Error(`The daemon exited before ${String(text)}:\n${this.tail()}`));
    }
    const { promise, resolve, reject } = Promise.withResolvers<LogLine>();
    const timer = setTimeout(() => {
      this.#waiters.delete(waiter);
      reject(
        new Error(
          `Timed out after ${options.timeoutMs} ms waiting for ${
            options.nth ?? 1
          } line(s) matching ${String(text)} (${remaining} missing):\n${this.tail()}`,
        ),
      );
    }, options.timeoutMs);
    const waiter: Waiter = {
      test,
      remaining,
      resolve: (line) => {
        clearTimeout(timer);
        resolve(line);
      },
      reject: (error) => {
        clearTimeout(timer);
        reject(error);
      },
    };
    this.#waiters.add(waiter);
    return promise;
  }

  /**
   * CPU time and memory of the daemon process.
   *
   * @throws when the process is gone or `/proc` is not available
   */
  async sample(): Promise<ProcessSample> {
    const stat = await Deno.readTextFile(`/proc/${this.pid}/stat`);
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime (14), stime (15)
    const status = await Deno.readTextFile(`/proc/${this.pid}/status`);
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return {
      cpuMs: (ticks / CLOCK_TICKS_PER_S) * 1000,
      rssBytes: kib("VmRSS") * 1024,
      peakRssBytes: kib("VmHWM") * 1024,
    };
  }

  /** Stop with SIGTERM (SIGKILL after `graceMs`) and wait for the exit. */
  async stop(graceMs = 20_000): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, graceMs);
    try {
      const status = await this.#status;
      await this.#pumps;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }
}
