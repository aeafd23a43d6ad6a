/**
 * Bringing the ledger's unfinished rows of a job back into motion: at
 * start-up, and for pending rows that nothing in memory holds.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { logger } from "../log/logging.ts";
import type { FileFilter } from "../watch/file_filter.ts";
import { absolutePath, sameVersion, versionOf } from "../watch/file_version.ts";
import type { WorkQueue } from "./work_queue.ts";

/** What the functions here work with. */
export interface LedgerSyncContext {
  job: JobConfig;
  ledger: Ledger;
  filter: FileFilter;
  queue: WorkQueue;
  /** Whether the stability checker observes `path` now. */
  observed(path: string): boolean;
  /** Have the stability checker observe `path`. */
  observe(path: string): void;
}

/**
 * At start-up: every unfinished row of the job goes back into the queue as
 * it was (same size and mtime: its destination, attempts and retry time are
 * kept), to the stability checker (it changed), or out of the ledger (gone,
 * or no longer matching the patterns).
 */
export async function resumeUnfinished(context: LedgerSyncContext): Promise<void> {
  const { job, ledger, filter, queue } = context;
  for (const row of ledger.unfinished(job.name)) {
    const path = absolutePath(job.watch_path, row.relPath);
    const info = await Deno.stat(path).catch(() => null);
    if (!info?.isFile || !filter.includesFile(row.relPath)) {
      ledger.remove(job.name, row.relPath);
      logger("pipeline").info(
        "Dropped {path}: it is gone from the watch folder, or no longer matches",
        { job: job.name, path },
      );
    } else if (sameVersion(versionOf(info), row)) {
      queue.resume({
        relPath: row.relPath,
        version: { size: row.size, mtimeMs: row.mtimeMs },
        destination: row.destination,
        attempts: row.attempts,
        nextAttemptAt: row.nextAttemptAt,
      });
    } else {
      context.observe(path);
    }
  }
}

/**
 * Pending rows that nothing in memory holds (no queue record, not under
 * observation) go to the stability checker, which finds them complete (and
 * they are queued) or gone (and they are dropped).
 *
 * @returns the relative paths of those rows
 */
export function observeStrayPending(context: LedgerSyncContext): string[] {
  const { job, ledger, queue } = context;
  const stray: string[] = [];
  for (const row of ledger.unfinished(job.name)) {
    if (row.state !== "pending" || queue.get(row.relPath)) continue;
    const path = absolutePath(job.watch_path, row.relPath);
    if (context.observed(path)) continue;
    stray.push(row.relPath);
    context.observe(path);
  }
  return stray;
}
