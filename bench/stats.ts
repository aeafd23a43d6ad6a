/**
 * Small statistics and formatting helpers for the benchmark: median, min–max,
 * percentiles, and durations/throughputs written the way the report shows them.
 *
 * @module
 */

/** Median, extremes and the raw values of a series. */
export interface Summary {
  values: number[];
  median: number;
  min: number;
  max: number;
}

/**
 * The `p`-th percentile (0–100) of `values`, linearly interpolated between
 * the closest ranks.
 *
 * @throws {RangeError} when `values` is empty
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) throw new RangeError("Cannot take a percentile: no values");
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

/**
 * Median, min and max of `values`.
 *
 * @throws {RangeError} when `values` is empty
 */
export function summarize(values: number[]): Summary {
  return {
    values: [...values],
    median: percentile(values, 50),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

/** A duration in milliseconds as `312 ms` or `2.96 s`. */
export function formatMs(ms: number): string {
  if (Math.abs(ms) < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** `median (min–max)` of durations. */
export function formatSummaryMs(summary: Summary): string {
  return `${formatMs(summary.median)} (${formatMs(summary.min)}–${formatMs(summary.max)})`;
}

/** Throughput of `bytes` moved in `ms`, in MB/s (10^6 bytes). */
export function megabytesPerSecond(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** `median (min–max) MB/s` of throughputs. */
export function formatSummaryRate(summary: Summary): string {
  const f = (v: number) => v.toFixed(0);
  return `${f(summary.median)} MB/s (${f(summary.min)}–${f(summary.max)})`;
}
