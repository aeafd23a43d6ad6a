/**
 * Creating the transport a job's `transfer_method` names.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { FtpTransport } from "./ftp/ftp.ts";
import { LocalTransport } from "./local/local.ts";
import { RsyncTransport } from "./ssh/rsync.ts";
import { ScpTransport } from "./ssh/scp.ts";
import type { Transport } from "./transport.ts";

/**
 * The transport for `job`.
 *
 * @param runtimeDir private local folder (created with mode 700 if missing) for
 *   SSH control sockets; keep its path short (sockets are limited
 *   to ~100 bytes; a private folder under the temp folder is used otherwise)
 * @throws {ConfigError} when the job's remote host or user cannot be used
 */
export function createTransport(job: JobConfig, runtimeDir: string): Transport {
  switch (job.transfer_method) {
    case "local":
      return new LocalTransport(job);
    case "scp":
      return new ScpTransport(job, runtimeDir);
    case "rsync":
      return new RsyncTransport(job, runtimeDir);
    case "ftp":
      return new FtpTransport(job);
  }
}
