/**
 * What a hook is told about one file: the facts of its arrival (or of its
 * giving up), and the environment variables that carry them to the program
 * (`IMAGE_TRANSFER_*`, listed in docs/reference.md).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { Transport } from "../transfer/transport.ts";
import { absolutePath } from "../watch/file_version.ts";

/** Which hook an event runs. */
export type HookEvent = "transfer" | "failure";

/** What a hook is told about one file. */
export interface HookFacts {
  /** Absolute path of the source file. */
  source: string;
  /** Source path relative to the watch folder. */
  relPath: string;
  /** User-facing destination, e.g. `obs@host:/data/20240315/a.fits`. */
  destination: string;
  /** Destination relative to `remote_base_path`. */
  destinationPath: string;
  size: number;
  mtimeMs: number;
  /** SHA-256 of the content, when known. */
  sha256?: string;
  /** Why the file gave up (`on_failure`). */
  error?: string;
  /** Attempts made (`on_failure`). */
  attempts?: number;
}

/** The facts of a file of `job` whose destination (relative to the base path) is `destination`. */
export function hookFacts(
  job: JobConfig,
  transport: Pick<Transport, "describeTarget">,
  relPath: string,
  version: { size: number; mtimeMs: number },
  destination: string,
): HookFacts {
  return {
    source: absolutePath(job.watch_path, relPath),
    relPath,
    destination: transport.describeTarget(destination),
    destinationPath: destination,
    size: version.size,
    mtimeMs: version.mtimeMs,
  };
}

/** The environment variables a hook receives for `facts`. */
export function hookEnvironment(
  job: JobConfig,
  event: HookEvent,
  facts: HookFacts,
): Record<string, string> {
  const env: Record<string, string> = {
    IMAGE_TRANSFER_EVENT: event,
    IMAGE_TRANSFER_JOB: job.name,
    IMAGE_TRANSFER_METHOD: job.transfer_method,
    IMAGE_TRANSFER_SOURCE: facts.source,
    IMAGE_TRANSFER_RELATIVE_PATH: facts.relPath,
    IMAGE_TRANSFER_DESTINATION: facts.destination,
    IMAGE_TRANSFER_DESTINATION_PATH: facts.destinationPath,
    IMAGE_TRANSFER_NIGHT: facts.destinationPath.split("/")[0] ?? "",
    IMAGE_TRANSFER_SIZE: String(facts.size),
    IMAGE_TRANSFER_MTIME: new Date(facts.mtimeMs).toISOString(),
  };
  if (facts.sha256) env.IMAGE_TRANSFER_SHA256 = facts.sha256;
  if (facts.error !== undefined) env.IMAGE_TRANSFER_ERROR = facts.error;
  if (facts.attempts !== undefined) env.IMAGE_TRANSFER_ATTEMPTS = String(facts.attempts);
  return env;
}
