/**
 * Create the transport of a job (placeholder until the SSH transports land).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { LocalTransport } from "./local.ts";
import type { Transport } from "./transport.ts";

/** The transport for `job.transfer_method`. */
export function createTransport(job: JobConfig, _runtimeDir: string): Transport {
  if (job.transfer_method === "local") return new LocalTransport(job);
  throw new Error(`transfer_method ${job.transfer_method} is not available yet`);
}
