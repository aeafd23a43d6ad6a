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
import { nightFolder } from "../layout/destination.ts";

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

/** The last night folders of a job, and those it leaves out (see {@linkcode lastNights}). */
export interface LastNights {
  /** The newest night folders up to tonight's, newest first. */
  recent: string[];
  /** Tonight's night folder: the night of `now` by the job's night rule. */
  tonight: string;
  /** Night folders after tonight's (files dated ahead: a wrong clock), newest first. */
  ahead: string[];
}

/**
 * The last `count` night folders among `names`: the newest that hold files, counted back from
 * the night of `now` by the job's night rule. A night folder after tonight's (a file dated
 * ahead by an instrument's wrong clock) is never one of them, so it cannot take the place of
 * the nights that are over.
 *
 * @param names Night folder names (`YYYYMMDD`; "" and repeats are ignored).
 * @returns the nights counted and those left out as ahead
 */
export function lastNights(
  job: Pick<JobConfig, "night_rollover_hour" | "night_timezone">,
  names: Iterable<string>,
  count: number,
  now: Date,
): LastNights {
  const tonight = nightFolder(now, job.night_rollover_hour, job.night_timezone);
  const all = [...new Set(names)].filter((night) => night !== "").sort().reverse();
  return {
    recent: all.filter((night) => night <= tonight).slice(0, count),
    tonight,
    ahead: all.filter((night) => night > tonight),
  };
}

/**
 * The report of the last `nights` night folders of `job` (newest first; see
 * {@linkcode lastNights}: never one after the night of `now`), with the nights counted.
 */
function nightReport(
  job: JobConfig,
  table: FileRows,
  nights: number,
  now: Date,
): { report: NightReport; last: LastNights } {
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
  const last = lastNights(job, byNight.keys(), nights, now);
  const report = {
    job: job.name,
    generated_at: now.toISOString(),
    nights: last.recent.map((night) => byNight.get(night)!),
  };
  return { report, last };
}

/** Days a night report is kept: an older one goes when a new one is written. */
export const REPORT_DAYS = 90;

/** A report's name: `<job>-<time>.json` or `<job>-<time>-2.json`... (see `writeNightReport`). */
const REPORT_NAME = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-\d+)?\.json$/;

/**
 * Remove the reports in `folder` (of any job, one the config has no more too) written more than
 * {@linkcode REPORT_DAYS} days before `now`, by the time in their names; nothing else there.
 *
 * @returns how many were removed
 */
async function pruneReports(folder: string, now: Date): Promise<number> {
  const before = now.getTime() - REPORT_DAYS * 86_400_000;
  let removed = 0;
  for await (const entry of Deno.readDir(folder)) {
    const parts = REPORT_NAME.exec(entry.name);
    if (!entry.isFile || parts === null) continue;
    const [year, month, day, hour, minute, second] = parts.slice(1).map(Number);
    if (Date.UTC(year, month - 1, day, hour, minute, second) >= before) continue;
    await Deno.remove(join(folder, entry.name)).then(() => removed++, () => {});
  }
  return removed;
}

/** The last report being given its name (see {@linkcode writeNightReport}). */
let reportNaming: Promise<unknown> = Promise.resolve();

/**
 * Write the report as `<state_dir>/reports/<job>-<time>.json` (complete or
 * not at all; `<job>-<time>-2.json`... beside another report of the job
 * written in the same second, never over it) and log one line per night folder. Reports
 * older than {@linkcode REPORT_DAYS} days there are removed.
 *
 * @returns the report file
 */
export async function writeNightReport(
  job: JobConfig,
  table: FileRows,
  nights: number,
  now = new Date(),
): Promise<string> {
  const { report, last } = nightReport(job, table, nights, now);
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
  const pruned = await pruneReports(folder, now);
  if (pruned > 0) {
    log.debug("Removed {count} night report(s) older than {days} days from {folder}", {
      count: pruned,
      days: REPORT_DAYS,
      folder,
    });
  }
  if (last.ahead.length > 0) {
    log.info(
      "Night report of job {job}: night folder(s) {ahead} left out, being after tonight's " +
        "({tonight}): their files are dated ahead of this machine's clock",
      { job: job.name, ahead: last.ahead.join(", "), tonight: last.tonight, file },
    );
  }
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
