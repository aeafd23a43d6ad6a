/**
 * What a job's watch folder holds that is not sent, for `status`: a count,
 * and the entries that need somebody (names that are not valid UTF-8). Found
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
}

/** Scan each job's watch folder and summarise what it skips. */
export async function summarizeSkipped(jobs: JobConfig[]): Promise<SkippedSummary[]> {
  const out: SkippedSummary[] = [];
  for (const job of jobs) {
    const info = await Deno.stat(job.watch_path).catch(() => null);
    if (!info?.isDirectory) {
      out.push({ job: job.name, skipped: null, attention: [] });
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
    });
  }
  return out;
}

/** Text lines for `status` (none when nothing is skipped). */
export function formatSkipped(summaries: SkippedSummary[]): string[] {
  const lines: string[] = [];
  for (const s of summaries) {
    if (s.skipped === null || s.skipped === 0) continue;
    lines.push(`Job ${s.job}: skipped ${s.skipped} (run with --dry-run to see why)`);
    for (const a of s.attention) lines.push(`  NEEDS ATTENTION: ${a.path}: ${a.reason}`);
  }
  return lines;
}
