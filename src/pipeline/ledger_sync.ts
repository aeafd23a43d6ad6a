/**
 * Keeping the ledger and what is in motion in step: unfinished rows back
 * into motion at start-up, retries recorded when they are due, and a sweep
 * for pending rows that nothing in memory holds.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { type FileTable, writeIfWritable } from "../ledger/file_table.ts";
import { logger } from "../log/logging.ts";
import type { FileFilter } from "../watch/file_filter.ts";
import { absolutePath, sameVersion, versionOf } from "../watch/file_version.ts";
import { systemClock } from "./clock.ts";
import type { WorkQueue } from "./work_queue.ts";

/** What the functions here work with. */
export interface LedgerSyncContext {
  job: JobConfig;
  table: FileTable;
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
 * or no longer matching the patterns). A retry time further ahead than the
 * longest retry delay (the clock was stepped back since it was written) is due now.
 */
export async function resumeUnfinished(context: LedgerSyncContext): Promise<void> {
  const { job, table, filter, queue } = context;
  const latest = systemClock.now() + job.retry_max_delay_seconds * 1000;
  for (const row of table.unfinished()) {
    const path = absolutePath(job.watch_path, row.relPath);
    const info = await Deno.stat(path).catch(() => null);
    if (!info?.isFile || !filter.includesFile(row.relPath)) {
      writeIfWritable(() => table.remove(row.relPath));
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
        nextAttemptAt: row.nextAttemptAt > latest ? 0 : row.nextAttemptAt,
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
  const { job, table, queue } = context;
  const stray: string[] = [];
  for (const row of table.pending()) {
    if (queue.get(row.relPath)) continue;
    const path = absolutePath(job.watch_path, row.relPath);
    if (context.observed(path)) continue;
    stray.push(row.relPath);
    context.observe(path);
  }
  return stray;
}

/** Retries whose time has come: the ledger records them due now (not overdue). */
export function recordDue(context: LedgerSyncContext, relPaths: string[]): void {
  try {
    context.table.markDue(relPaths);
  } catch (error) {
    logger("pipeline").error("Cannot record the retries that are due: {error}", {
      job: context.job.name,
      error: String(error),
    });
  }
}

/**
 * Every retry that is due is queued, and every pending row of the ledger is
 * held by the queue or the stability checker: files `resend` marked to be
 * sent again are taken up here (anything else found here is a missed wake-up,
 * put right all the same).
 *
 * @returns the records that were due and are queued now
 */
export function sweepLedger(context: LedgerSyncContext): string[] {
  const log = logger("pipeline");
  try {
    const promoted = context.queue.promoteDue();
    const stray = observeStrayPending(context);
    if (promoted.length + stray.length > 0) {
      log.info(
        "{count} file(s) in the ledger wait to be sent (sent again on request, or due); sending them now",
        {
          job: context.job.name,
          count: promoted.length + stray.length,
          files: [...promoted, ...stray].slice(0, 10),
        },
      );
    }
    return promoted;
  } catch (error) {
    log.error("Checking the ledger for pending files failed: {error}", {
      job: context.job.name,
      error: String(error),
    });
    return [];
  }
}
