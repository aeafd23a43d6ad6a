/**
 * A job's `bandwidth_limit`, shared by the transfers in flight, so that a
 * transfer alone gets all of it:
 *
 * - copies made by this process (`local`, `ftp`) share one {@linkcode Throttle}:
 *   after each chunk, a copy waits until the bytes of all copies so far fit
 *   the rate;
 * - rsync and scp calls go one at a time ({@linkcode LimitedCalls}), each at
 *   the whole limit, as the program's own option.
 *
 * @module
 */
import { Transform } from "node:stream";
import { MIN_BANDWIDTH_BYTES_PER_SECOND } from "../config/sizes.ts";

/** Time and timers for the pacing (the real ones unless a test gives its own). */
export interface ThrottleClock {
  /** Milliseconds, any origin. */
  now(): number;
  /** Call `fn` in `ms`; returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

const realClock: ThrottleClock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
};

/** Most a copy may send without waiting after the link was idle: this long at the rate. */
const BURST_MS = 250;

/** Paces the copies that share it at a number of bytes per second, all together. */
export class Throttle {
  readonly bytesPerSecond: number;
  #clock: ThrottleClock;
  /** When the bytes counted so far fit the rate. */
  #dueMs = -Infinity;
  /** Bytes counted so far, all copies together. */
  bytes = 0;
  /** Times a copy had to wait for the rate. */
  waits = 0;

  constructor(bytesPerSecond: number, clock: ThrottleClock = realClock) {
    this.bytesPerSecond = bytesPerSecond;
    this.#clock = clock;
  }

  /** Count `bytes` as sent, and wait until they fit the rate (rejects when `signal` aborts). */
  async sent(bytes: number, signal: AbortSignal): Promise<void> {
    this.bytes += bytes;
    const now = this.#clock.now();
    // Time the link stood idle is not saved up beyond a short burst.
    this.#dueMs = Math.max(this.#dueMs, now - BURST_MS) + (bytes / this.bytesPerSecond) * 1000;
    const waitMs = this.#dueMs - now;
    if (waitMs <= 0) return;
    this.waits++;
    signal.throwIfAborted();
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        signal.removeEventListener("abort", abort);
        resolve();
      };
      const cancel = this.#clock.setTimer(done, waitMs);
      const abort = () => {
        cancel();
        reject(signal.reason);
      };
      signal.addEventListener("abort", abort, { once: true });
    });
  }
}

/** A stream stage that passes each chunk on once `throttle` lets it (an abort of `signal` ends it). */
export function pacedStream(throttle: Throttle, signal: AbortSignal): Transform {
  return new Transform({
    transform(chunk: Uint8Array, _encoding, done) {
      throttle.sent(chunk.length, signal).then(() => done(null, chunk), (error) => done(error));
    },
  });
}

/**
 * A limit for program calls (rsync, scp), whose rate is set once, as they
 * start: one call at a time runs, at the whole limit; the others wait their
 * turn, in order. (Calls side by side would each keep the rate they started
 * with, and together send more than the limit.)
 */
export class LimitedCalls {
  readonly bytesPerSecond: number | null;
  #running = false;
  /** Calls waiting for their turn, first come first. */
  #waiting: Array<() => void> = [];

  /** `bytesPerSecond`: the job's limit, `null` for none. */
  constructor(bytesPerSecond: number | null) {
    this.bytesPerSecond = bytesPerSecond;
  }

  /** Calls running or waiting for their turn now. */
  get inFlight(): number {
    return (this.#running ? 1 : 0) + this.#waiting.length;
  }

  /**
   * Run `call` in its turn, given its rate (`null`: no limit; then at once).
   * An abort of `signal` while it waits ends the wait with the signal's reason.
   */
  async during<T>(call: (limit: number | null) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const limit = this.bytesPerSecond;
    if (limit === null) return await call(null);
    signal?.throwIfAborted();
    // The turn passes straight from one call to the next: no call can slip in between.
    if (this.#running) await this.#turn(signal);
    else this.#running = true;
    try {
      return await call(Math.max(MIN_BANDWIDTH_BYTES_PER_SECOND, limit));
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#running = false;
      else next();
    }
  }

  /** Resolves when the call running hands over to this one. */
  #turn(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      const abort = () => {
        this.#waiting = this.#waiting.filter((waiter) => waiter !== go);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", abort, { once: true });
      this.#waiting.push(go);
    });
  }
}
