/**
 * A rate limit for copies made by this process (the `local` and `ftp`
 * methods' share of `bandwidth_limit`): after each chunk, the copy waits
 * until the bytes so far fit the rate.
 *
 * @module
 */
import { Transform } from "node:stream";

/** Paces one copy at a fixed number of bytes per second. */
export class Throttle {
  #bytesPerSecond: number;
  #startedAt = performance.now();
  #bytes = 0;

  constructor(bytesPerSecond: number) {
    this.#bytesPerSecond = bytesPerSecond;
  }

  /** Count `bytes` as sent, and wait until they fit the rate (rejects when `signal` aborts). */
  async sent(bytes: number, signal: AbortSignal): Promise<void> {
    this.#bytes += bytes;
    const dueMs = this.#startedAt + (this.#bytes / this.#bytesPerSecond) * 1000;
    const waitMs = dueMs - performance.now();
    if (waitMs <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        signal.removeEventListener("abort", abort);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      const abort = () => {
        clearTimeout(timer);
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
