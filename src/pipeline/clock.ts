/**
 * Time and timers, replaceable in tests (see `tests/helpers/fake_clock.ts`).
 *
 * @module
 */

/** Time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `fn` in `ms`; returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

/**
 * The real clock. `now` is the epoch time when the program started plus the
 * monotonic time since: a wall clock stepped back or ahead (NTP, GPS, a
 * battery-less PC's clock) neither stalls nor hurries a wait.
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer: (fn, ms) => {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
};
