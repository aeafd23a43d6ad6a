/**
 * Amounts of bytes in human units, with one table of units.
 *
 * Bandwidth limits (`bandwidth_limit`): "10MB/s", "500KiB/s", "20Mbit/s",
 * and the flags each transfer program takes for them.
 *
 * @module
 */

/** Bytes of each unit (decimal `kB`/`MB`/`GB`/`TB`, binary `KiB`/`MiB`/`GiB`/`TiB`). */
export const BYTE_UNITS: Readonly<Record<string, number>> = {
  "b": 1,
  "kb": 1e3,
  "mb": 1e6,
  "gb": 1e9,
  "tb": 1e12,
  "kib": 1024,
  "mib": 1024 ** 2,
  "gib": 1024 ** 3,
  "tib": 1024 ** 4,
};

/** Bytes per second of each unit of a rate (`.../s`): the byte units, and bits. */
const RATE_UNITS: Readonly<Record<string, number>> = {
  ...BYTE_UNITS,
  "bit": 1 / 8,
  "kbit": 1e3 / 8,
  "mbit": 1e6 / 8,
  "gbit": 1e9 / 8,
};

/** The smallest limit accepted (rsync counts in KiB/s). */
export const MIN_BANDWIDTH_BYTES_PER_SECOND = 1024;

/**
 * Bytes per second of `value`, `null` for no limit (`""`, `0` or `"0"`), or `undefined`
 * when `value` is not a limit (another number: its unit is missing).
 */
export function parseBandwidth(value: string | number): number | null | undefined {
  if (typeof value === "number") return value === 0 ? null : undefined;
  const trimmed = value.trim();
  if (trimmed === "" || trimmed === "0") return null;
  const match = trimmed.match(/^(\d+(?:\.\d+)?)\s*([A-Za-z]+)\/s$/);
  if (!match) return undefined;
  const factor = RATE_UNITS[match[2].toLowerCase()];
  if (factor === undefined) return undefined;
  // "Mb" is ambiguous; bits are written out ("Mbit/s"), so "b" means bytes.
  const bytes = Number(match[1]) * factor;
  return bytes >= MIN_BANDWIDTH_BYTES_PER_SECOND ? bytes : undefined;
}

/**
 * The value of rsync's `--bwlimit` for `bytesPerSecond`: rsync reads a bare number in KiB/s
 * (1024 bytes), so the limit is rounded down to whole KiB/s, never above the job's.
 */
export function rsyncBwlimit(bytesPerSecond: number): string {
  return String(Math.max(1, Math.floor(bytesPerSecond / 1024)));
}

/**
 * The value of scp's `-l` for `bytesPerSecond`: OpenSSH's scp reads it in Kbit/s with K = 1024
 * (1024 bits per second, 128 bytes), so the limit is rounded down to that unit, never above the
 * job's (`1MB/s` is `-l 7812`, 999,936 bytes per second).
 */
export function scpLimit(bytesPerSecond: number): string {
  return String(Math.max(1, Math.floor((bytesPerSecond * 8) / 1024)));
}

/** A job's `bandwidth_limit` in bytes per second, `null` for none. */
export function bandwidthLimit(job: { bandwidth_limit: string | number }): number | null {
  return parseBandwidth(job.bandwidth_limit) ?? null;
}

/** `bytes` for a log line: `3.2 GiB`, `512.0 MiB`, `12 KiB` or `100 B`. */
export function formatBytes(bytes: number): string {
  const units: Array<[string, number]> = [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], [
    "MiB",
    1024 ** 2,
  ]];
  for (const [unit, size] of units) {
    if (bytes >= size) return `${(bytes / size).toFixed(1)} ${unit}`;
  }
  return bytes >= 1024 ? `${Math.round(bytes / 1024)} KiB` : `${Math.max(0, bytes)} B`;
}
