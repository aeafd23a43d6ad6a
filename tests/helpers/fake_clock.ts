/**
 * Clocks for tests: one for unit tests of timed logic (time only moves when
 * the test moves it, and timers fire in order as it passes them), and the
 * wall clock of a real daemon, stepped by the test.
 *
 * @module
 */
import { join } from "node:path";
import type { Clock } from "../../src/pipeline/retry_timer.ts";

/** A manual clock; see the module doc. */
export class FakeClock implements Clock {
  #now: number;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #nextId = 1;

  constructor(start = 1_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return () => this.#timers.delete(id);
  }

  /** Timers not fired or cancelled yet. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** When the next timer fires, or `Infinity`. */
  get nextTimerAt(): number {
    let at = Infinity;
    for (const timer of this.#timers.values()) at = Math.min(at, timer.at);
    return at;
  }

  /** Move time forward by `ms` without firing any timer (an event loop that stalled). */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Move time forward by `ms`, firing every timer that comes due, earliest first. */
  advance(ms: number): void {
    const until = this.#now + ms;
    while (true) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= until && (!next || entry[1].at < next[1].at)) next = entry;
      }
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = until;
  }
}

/** libfaketime of Debian's `faketime` package. */
const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/** The wall clock of a real process, stepped by the test (see {@linkcode steppedWallClock}). */
export interface SteppedWallClock {
  /** `base` with what makes the process read the clock (give it to the process). */
  env: Record<string, string>;
  /** Set the clock `offset` from the true time, e.g. `+1d`, `-50s` (libfaketime's words). */
  step(offset: string): Promise<void>;
}

/**
 * A wall clock a test steps under a real daemon (libfaketime through
 * `LD_PRELOAD`, its offset in a file in `folder`, read at each call); the
 * monotonic clock stays true, as on a machine whose clock NTP steps.
 */
export async function steppedWallClock(
  folder: string,
  base: Record<string, string>,
): Promise<SteppedWallClock> {
  const file = join(folder, "faketime");
  const step = (offset: string) => Deno.writeTextFile(file, `${offset}\n`);
  await step("+0");
  return {
    env: {
      ...base,
      LD_PRELOAD: LIBFAKETIME,
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_NO_CACHE: "1",
      DONT_FAKE_MONOTONIC: "1",
    },
    step,
  };
}

/**
 * Step this process's wall clock (`Date.now()`) by `offsetMs` until disposed, as NTP steps a
 * machine's clock; `performance.now()` (the monotonic clock) stays true.
 * `using _step = stepDateNow(-3_600_000);`
 */
export function stepDateNow(offsetMs: number): Disposable {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
  return { [Symbol.dispose]: () => void (Date.now = realNow) };
}
