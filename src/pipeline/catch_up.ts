/**
 * The catch-up of a scheduled `rescan`: every file the ledger calls done in
 * the last N night folders is looked for at the destination (its size); one
 * that is missing or of another size is forgotten as done, so the rescan that
 * follows sends it again (if its source is still there).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { FileTable } from "../ledger/file_table.ts";
import { logger } from "../log/logging.ts";
import { sameVersion } from "../watch/file_version.ts";
import type { Transport } from "../transfer/transport.ts";

/** What {@linkcode catchUp} works with. */
export interface CatchUpContext {
  job: JobConfig;
  table: FileTable;
  transport: Transport;
  signal: AbortSignal;
}

/**
 * Check the last `nights` night folders of the job at the destination.
 *
 * @returns the files forgotten as done (to be sent again by the next scan)
 */
export async function catchUp(context: CatchUpContext, nights: number): Promise<string[]> {
  const { job, table, transport, signal } = context;
  const log = logger("schedule");
  if (!transport.destinationSizes) return [];
  const recent = [...new Set(table.nightTotals().map((t) => t.night))]
    .filter((night) => night !== "").sort().reverse().slice(0, nights);
  const forgotten: string[] = [];
  for (const night of recent) {
    const rows = table.doneInNight(night);
    if (rows.length === 0) continue;
    const sizes = await transport.destinationSizes(rows.map((row) => row.destination), signal);
    for (const row of rows) {
      const size = sizes.get(row.destination);
      if (size === row.size) continue;
      // Still done and unchanged in the ledger (not re-sent meanwhile): forget it.
      const now = table.get(row.relPath);
      if (now?.state !== "done" || !sameVersion(now, row)) continue;
      table.remove(row.relPath);
      forgotten.push(row.relPath);
      log.warn("{destination} is {problem} at the destination; sending {relPath} again", {
        job: job.name,
        destination: transport.describeTarget(row.destination),
        problem: size === null || size === undefined ? "missing" : `${size} bytes, not ${row.size}`,
        relPath: row.relPath,
      });
    }
  }
  log.info(
    "Catch-up of job {job}: {nights} night folder(s) checked, {count} file(s) to send again",
    {
      job: job.name,
      nights: recent.length,
      count: forgotten.length,
    },
  );
  return forgotten;
}
