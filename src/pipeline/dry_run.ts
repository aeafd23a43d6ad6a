/**
 * `run --dry-run`: list what would be transferred where, and what is skipped
 * and why, changing nothing (the ledger is only read, and only if it exists).
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { destinationIdentity, FileRows } from "../ledger/file_rows.ts";
import { Ledger } from "../ledger/ledger.ts";
import { planDestination } from "../layout/destination.ts";
import { createTransport } from "../transfer/factory.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { scanFolder, type SkippedEntry } from "../watch/scan.ts";
import { escapeControlChars } from "../log/logging.ts";
import { readablePath } from "../watch/skip_log.ts";
import { sameVersion, versionOf } from "../watch/file_version.ts";
import { dueSteps } from "./source_cleanup.ts";

/**
 * Print one line per file that would be sent (`would transfer <source> -> <target>`),
 * one per entry that is skipped (`skipped <path>: <reason>`; a folder that is
 * not entered ends in `/`) and a summary per job to `write`. Control
 * characters in names are escaped, so each file stays on one line.
 *
 * @returns the number of files that would be sent
 */
export async function dryRun(config: Config, write: (line: string) => void): Promise<number> {
  const ledger = Ledger.open(config.state_dir, { readOnly: true });
  let total = 0;
  try {
    for (const job of config.jobs) {
      const transport = createTransport(job, Deno.cwd());
      const table = ledger && new FileRows(ledger, job.name, destinationIdentity(job));
      let count = 0;
      const skipped: SkippedEntry[] = [];
      try {
        const info = await Deno.stat(job.watch_path).catch(() => null);
        if (!info?.isDirectory) {
          write(`job ${job.name}: watch folder ${job.watch_path} does not exist`);
          continue;
        }
        const filter = createFileFilter(job, { skipLog: null });
        const onSkipped = (entry: SkippedEntry) => skipped.push(entry);
        for await (const file of scanFolder(job.watch_path, filter, { onSkipped })) {
          const stat = await Deno.stat(file.path).catch(() => null);
          if (!stat) continue;
          const version = versionOf(stat);
          const prior = table?.doneVersion(file.relPath);
          if (prior && sameVersion(prior, version)) continue;
          const destination = await planDestination(job, {
            path: file.path,
            relPath: file.relPath,
            mtimeMs: version.mtimeMs,
          }, new Date());
          const target = transport.describeTarget(destination);
          write(`would transfer ${escapeControlChars(file.path)} -> ${escapeControlChars(target)}`);
          count++;
        }
      } finally {
        await transport.close();
      }
      skipped.sort((a, b) => a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);
      for (const entry of skipped) {
        const shown = readablePath(entry.path) + (entry.folder ? "/" : "");
        write(`skipped ${shown}: ${entry.skip.reason}`);
      }
      const removals = table ? await dueSteps(job, table, Date.now()) : [];
      for (const step of removals) {
        write(
          step.moveTo === null
            ? `would delete ${escapeControlChars(step.source)} (arrived verified)`
            : `would move ${escapeControlChars(step.source)} -> ${
              escapeControlChars(step.moveTo)
            } (arrived verified)`,
        );
      }
      const removed = job.after_transfer === "keep"
        ? ""
        : `, ${removals.length} source(s) would be ${job.after_transfer}d now`;
      write(
        `job ${job.name}: ${count} file(s) would be transferred (${job.transfer_method}), ` +
          `${skipped.length} skipped${removed}`,
      );
      total += count;
    }
  } finally {
    ledger?.close();
  }
  return total;
}
