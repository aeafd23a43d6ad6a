/**
 * A `local` job for in-process pipeline tests: short timings, no periodic
 * rescans, checksum verification, watch folder `<root>/watch`, destination
 * `<root>/dest`.
 *
 * @module
 */
import { join } from "node:path";
import { jobSchema } from "../../src/config/schema.ts";
import type { JobConfig } from "../../src/config/types.ts";

/** The job, with schema defaults for everything not set here; `overrides` win. */
export function localTestJob(root: string, overrides: Partial<JobConfig> = {}): JobConfig {
  const input = jobSchema.parse({
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
  });
  return { ...input, name: "test", verify_transfer: "checksum", ...overrides };
}
