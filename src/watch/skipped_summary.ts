/**
 * What a job's watch folder holds that is not sent, for `status`: a count,
 * each entry with why (the first {@linkcode SKIPPED_SHOWN}, or all), and the
 * entries that need somebody (names that are not valid UTF-8). Found
 * with a scan through the job's filter: names and `lstat` only, nothing opened.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { createFileFilter } from "./file_filter.ts";
import { scanFolder, type SkippedEntry } from "./scan.ts";
import { readablePath } from "./skip_log.ts";

/** One job's skipped entries. */
export interface SkippedSummary {
  job: string;
  /** Entries not sent (a folder not entered counts once); `null` if the watch folder is missing. */
  skipped: number | null;
  /** Entries that cannot be sent until somebody acts (readable paths, with why). */
  attention: Array<{ path: string; reason: string }>;
  /** Every entry not sent (readable paths, with why), in scan order. */
  entries: Array<{ path: string; reason: string }>;
}

/** How many skipped entries `status` lists per job without `--all`. */
export const SKIPPED_SHOWN = 20;

/** Scan each job's watch folder and summarise what it skips. */
export async function summarizeSkipped(jobs: JobConfig[]): Promise<SkippedSummary[]> {
  const out: SkippedSummary[] = [];
  for (const job of jobs) {
    const info = await Deno.stat(job.watch_path).catch(() => null);
    if (!info?.isDirectory) {
      out.push({ job: job.name, skipped: null, attention: [], entries: [] });
      continue;
    }
    const skipped: SkippedEntry[] = [];
    const filter = createFileFilter(job, { skipLog: null });
    for await (
      const _ of scanFolder(job.watch_path, filter, { onSkipped: (e) => skipped.push(e) })
    ) { /* only the skipped entries count here */ }
    out.push({
      job: job.name,
      skipped: skipped.length,
      attention: skipped.filter((e) => e.skip.level === "error").map((e) => ({
        path: readablePath(e.path),
        reason: e.skip.reason,
      })),
      entries: skipped.map((e) => ({
        path: readablePath(e.path) + (e.folder ? "/" : ""),
        reason: e.skip.reason,
      })),
    });
  }
  return out;
}

/**
 * Text lines for `status` (none when nothing is skipped): each job's count,
 * then its skipped entries with why, the first {@linkcode SKIPPED_SHOWN}
 * unless `all`.
 */
export function formatSkipped(summaries: SkippedSummary[], all = false): string[] {
  const lines: string[] = [];
  for (const s of summaries) {
    if (s.skipped === null || s.skipped === 0) continue;
    lines.push(`Job ${s.job}: skipped ${s.skipped}:`);
    const shown = all ? s.entries : s.entries.slice(0, SKIPPED_SHOWN);
    const attention = new Set(s.attention.map((a) => a.path));
    for (const e of shown) {
      lines.push(`  ${attention.has(e.path) ? "NEEDS ATTENTION: " : ""}${e.path}: ${e.reason}`);
    }
    if (shown.length < s.entries.length) {
      lines.push(`  … and ${s.entries.length - shown.length} more (status --all lists every one)`);
    }
  }
  return lines;
}
