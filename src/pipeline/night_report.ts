/**
 * A job's night report: for each of its last night folders, the files and
 * bytes arrived, the files failed or waiting, and the first and last arrival,
 * written as JSON into `<state_dir>/reports` and told in the log.
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { JobConfig } from "../config/types.ts";
import type { FileRows } from "../ledger/file_rows.ts";
import { makeStateFolder } from "../ledger/state_files.ts";
import { logger } from "../log/logging.ts";

/** One night folder in a report. */
export interface NightReportEntry {
  night: string;
  files_sent: number;
  bytes_sent: number;
  failed: number;
  waiting: number;
  first_arrival: string | null;
  last_arrival: string | null;
}

/** A whole report. */
export interface NightReport {
  job: string;
  generated_at: string;
  nights: NightReportEntry[];
}

/** The report of the last `nights` night folders of `job` (newest first). */
export function nightReport(
  job: JobConfig,
  table: FileRows,
  nights: number,
  now: Date,
): NightReport {
  const byNight = new Map<string, NightReportEntry>();
  for (const totals of table.nightTotals()) {
    const entry = byNight.get(totals.night) ?? {
      night: totals.night,
      files_sent: 0,
      bytes_sent: 0,
      failed: 0,
      waiting: 0,
      first_arrival: null,
      last_arrival: null,
    };
    if (totals.state === "done") {
      entry.files_sent += totals.files;
      entry.bytes_sent += totals.bytes;
      entry.first_arrival = iso(totals.firstArrivalAt);
      entry.last_arrival = iso(totals.lastArrivalAt);
    } else if (totals.state === "failed") entry.failed += totals.files;
    else entry.waiting += totals.files;
    byNight.set(totals.night, entry);
  }
  const entries = [...byNight.values()].sort((a, b) => a.night < b.night ? 1 : -1);
  return { job: job.name, generated_at: now.toISOString(), nights: entries.slice(0, nights) };
}

/** The last report being given its name (see {@linkcode writeNightReport}). */
let reportNaming: Promise<unknown> = Promise.resolve();

/**
 * Write the report as `<state_dir>/reports/<job>-<time>.json` (complete or
 * not at all; `<job>-<time>-2.json`... beside another report of the job
 * written in the same second, never over it) and log one line per night folder.
 *
 * @returns the report file
 */
export async function writeNightReport(
  job: JobConfig,
  table: FileRows,
  nights: number,
  now = new Date(),
): Promise<string> {
  const report = nightReport(job, table, nights, now);
  const folder = join(dirname(table.ledger.path), "reports");
  // Private as the rest of state_dir (the reports name the files), never through a link.
  await makeStateFolder(folder);
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const partial = join(folder, `${job.name}-${stamp}.json.${crypto.randomUUID()}.tmp`);
  await Deno.writeTextFile(partial, JSON.stringify(report, null, 2) + "\n", {
    createNew: true,
    mode: 0o600,
  });
  // One name at a time in this process: two reports of one second (a daily and a weekly one
  // firing together) both stay.
  const named = reportNaming.then(async () => {
    for (let n = 1;; n++) {
      const file = join(folder, `${job.name}-${stamp}${n === 1 ? "" : `-${n}`}.json`);
      if (await Deno.lstat(file).then(() => true, () => false)) continue;
      await Deno.rename(partial, file);
      return file;
    }
  });
  reportNaming = named.catch(() => {});
  const file = await named.catch(async (error) => {
    await Deno.remove(partial).catch(() => {});
    throw error;
  });
  const log = logger("report");
  if (report.nights.length === 0) {
    log.info("Night report of job {job}: nothing yet", { job: job.name, file });
  }
  for (const night of report.nights) {
    log.info(
      "Night report of job {job}, {night}: {files} file(s), {bytes} bytes, {failed} failed, {waiting} waiting, first {first}, last {last}",
      {
        job: job.name,
        night: night.night,
        files: night.files_sent,
        bytes: night.bytes_sent,
        failed: night.failed,
        waiting: night.waiting,
        first: night.first_arrival ?? "-",
        last: night.last_arrival ?? "-",
        file,
      },
    );
  }
  return file;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
