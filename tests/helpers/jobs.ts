/**
 * Jobs for in-process tests, resolved as a config file's are (schema
 * defaults, then the defaults that depend on the method): any job from its
 * keys, and a `local` job for pipeline tests with short timings, no periodic
 * rescans, checksum verification, watch folder `<root>/watch`, destination
 * `<root>/dest`.
 *
 * @module
 */
import { join } from "node:path";
import { jobSchema } from "../../src/config/schema.ts";
import { resolveJob } from "../../src/config/resolve.ts";
import type { JobConfig } from "../../src/config/types.ts";

/**
 * Config keys for a daemon test in which a file failing on its own must not come back while the
 * test waits: retried once soon, then given up (tried again after an hour).
 */
export const ONE_RETRY_THEN_AN_HOUR = {
  retry_attempts: 1,
  retry_delay_seconds: 0.5,
  retry_max_delay_seconds: 3600,
} as const;

/** The job named `name` that the config keys `keys` make; `overrides` win. */
export function testJob(
  name: string,
  keys: Record<string, unknown>,
  overrides: Partial<JobConfig> = {},
): JobConfig {
  return { ...resolveJob(jobSchema.parse(keys), name, "/"), ...overrides };
}

/**
 * A transport test's job named `name`: the schema's defaults, but for what a transport test needs
 * (no watch folder, every file, no stability window, the night from the mtime, no retries, one
 * transfer at a time, no rescans), then the transport's `keys`; `overrides` win.
 */
export function transportTestJob(
  name: string,
  keys: Record<string, unknown>,
  overrides: Partial<JobConfig> = {},
): JobConfig {
  return testJob(name, {
    watch_path: "/nonexistent-watch",
    file_patterns: ["*"],
    stability_window_seconds: 0,
    night_date_source: "mtime",
    retry_attempts: 0,
    retry_delay_seconds: 0,
    retry_max_delay_seconds: 0,
    max_concurrent_transfers: 1,
    rescan_interval_seconds: 0,
    ...keys,
  }, overrides);
}

/** The pipeline tests' local job (see the module doc); `overrides` win. */
export function localTestJob(root: string, overrides: Partial<JobConfig> = {}): JobConfig {
  return testJob("test", {
    watch_path: join(root, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    stability_window_seconds: 0.2,
    night_timezone: "UTC",
    retry_attempts: 2,
    retry_delay_seconds: 0.05,
    retry_max_delay_seconds: 0.2,
    rescan_interval_seconds: 0,
    watch_mode: "auto",
    poll_interval_seconds: 2,
    verify_transfer: "checksum",
  }, overrides);
}
