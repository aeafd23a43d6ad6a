/**
 * Delay before the next attempt of a failed transfer.
 *
 * @module
 */

/**
 * Exponential backoff with jitter: `baseS * 2^(attempt-1)`, capped at `maxS`,
 * then scaled by a random factor in [0.8, 1.2] so many files failing together
 * do not retry in lockstep. The result never exceeds `maxS` (the longest wait
 * `retry_max_delay_seconds` promises).
 *
 * @param attempt the failed attempt just made (1 = the first failure)
 * @param random source of randomness in [0, 1) (for tests)
 * @returns the delay in milliseconds
 */
export function retryDelayMs(
  attempt: number,
  baseS: number,
  maxS: number,
  random: () => number = Math.random,
): number {
  const exponential = baseS * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(exponential, maxS);
  return Math.min(Math.round(capped * 1000 * (0.8 + 0.4 * random())), Math.round(maxS * 1000));
}
