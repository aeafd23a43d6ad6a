/**
 * Copies recorded as arrived, looked at again at the destination: by the catch-up of a scheduled
 * rescan (the last nights' folders), and by the clean-up of sources kept `keep_days`, which
 * removes a source only where its copy is still there. A copy missing, or of another size, is
 * forgotten as done while its source is there, so the next scan sends it again; one whose source
 * is gone too is said, as it cannot be sent again. Where not one of the copies asked for is there,
 * the destination folder is taken as gone or not mounted (not every file lost): nothing is sent
 * again, and no source is removed.
 *
 * @module
 */
import { join } from "node:path";
import type { JobConfig } from "../config/types.ts";
import type { Transport } from "../transfer/transport.ts";
import type { FileTable } from "./file_table.ts";
import { lastNights } from "./night_report.ts";
import { type Logger, logger } from "../log/logging.ts";

/** What a look at the destination works with. */
export interface CopiesContext {
  job: JobConfig;
  table: FileTable;
  transport: Transport;
  /** Aborted when the job stops. */
  signal: AbortSignal;
}

/** A file recorded as arrived: its path, its copy's path at the destination, what was sent. */
export interface ArrivedFile {
  relPath: string;
  destination: string;
  size: number;
  mtimeMs: number;
}

/** What a look at the copies of some arrived files found. */
interface Look {
  /** The files whose copy is there with the size sent. */
  there: Set<string>;
  /** The files forgotten as done, to be sent again by the next scan. */
  forgotten: string[];
  /** Copies missing or damaged whose sources are gone too. */
  lost: number;
  /** Whether not one copy asked for was there (the destination folder gone or not mounted). */
  noneThere: boolean;
}

/**
 * Look at the copies of `files` (see the module doc), said under `log`.
 * @throws where the destination cannot be asked
 */
async function lookAt(context: CopiesContext, files: ArrivedFile[], log: Logger): Promise<Look> {
  const { job, transport, signal } = context;
  const look: Look = { there: new Set(), forgotten: [], lost: 0, noneThere: false };
  if (files.length === 0) return look;
  // Files sent before: most are there, each is asked (no listing that would save nothing).
  const sizes = await transport.destinationSizes!(files.map((f) => f.destination), signal, {
    mostlyThere: true,
  });
  look.noneThere = files.every((file) => (sizes.get(file.destination) ?? null) === null);
  if (look.noneThere) return look;
  for (const file of files) {
    const size = sizes.get(file.destination);
    if (size === file.size) {
      look.there.add(file.relPath);
      continue;
    }
    const fields = {
      job: job.name,
      destination: transport.describeTarget(file.destination),
      problem: size === null || size === undefined ? "missing" : `${size} bytes, not ${file.size}`,
      relPath: file.relPath,
    };
    // Without its source it cannot be sent again: it stays recorded as arrived, and is said.
    const source = join(job.watch_path, ...file.relPath.split("/"));
    if (!(await Deno.lstat(source).then(() => true, () => false))) {
      look.lost++;
      log.error(
        "{destination} is {problem} at the destination, and its source {relPath} is gone: " +
          "it cannot be sent again",
        fields,
      );
      continue;
    }
    if (!context.table.forgetDone(file.relPath, file)) continue;
    look.forgotten.push(file.relPath);
    log.warn("{destination} is {problem} at the destination; sending {relPath} again", fields);
  }
  return look;
}

/**
 * {@linkcode catchUp}, or where the destination cannot be asked (a server down), say so: the
 * watch folder is scanned and failed files retried all the same.
 */
export async function catchUpOrSay(context: CopiesContext, nights: number): Promise<void> {
  try {
    await catchUp(context, nights);
  } catch (error) {
    if (context.signal.aborted) throw error;
    logger("schedule").error(
      "Catch-up of job {job} failed: {error}; the destination is checked again at the next " +
        "rescan, and the watch folder is scanned now all the same",
      { job: context.job.name, error: error instanceof Error ? error.message : String(error) },
    );
  }
}

/**
 * Check the last `nights` night folders of the job at the destination (up to tonight's, see
 * {@linkcode lastNights}).
 *
 * @returns the files forgotten as done (to be sent again by the next scan)
 */
async function catchUp(context: CopiesContext, nights: number): Promise<string[]> {
  const { job, transport } = context;
  const table = context.table.rows;
  if (!transport.destinationSizes) return [];
  // Counted back from tonight: a night folder dated ahead (a wrong clock) is not among them.
  const { recent } = lastNights(job, table.nightTotals().map((t) => t.night), nights, new Date());
  const files = recent.flatMap((night) => table.doneInNight(night));
  const log = logger("schedule");
  const look = await lookAt(context, files, log);
  if (look.noneThere) {
    log.warn(
      "Catch-up of job {job}: none of the {count} file(s) of the last {nights} night folder(s) is " +
        "at {base}: the destination folder looks gone or not mounted, so nothing is sent again; " +
        "if they were removed on purpose, send them with `image-transfer resend --night YYYYMMDD`",
      {
        job: job.name,
        count: files.length,
        nights: new Set(files.map((file) => file.destination.split("/")[0])).size,
        base: transport.describeTarget(""),
      },
    );
    return [];
  }
  const { forgotten, lost } = look;
  log.info(
    "Catch-up of job {job}: {nights} night folder(s) checked, {count} file(s) to send again" +
      (lost > 0 ? ", {lost} missing or damaged that cannot be (their sources are gone)" : ""),
    { job: job.name, nights: recent.length, count: forgotten.length, lost },
  );
  return forgotten;
}

/**
 * Of `files`, due for clean-up after `keep_days`, those whose copy is still at the destination
 * with the size sent; the others stay in the watch folder, a copy missing or damaged sent again
 * (the caller rescans when any was). Without a way to ask the destination, all of them.
 *
 * @returns the files whose sources may go, and whether any is to be sent again
 * @throws where the destination cannot be asked (then no source goes)
 */
export async function copiesStillThere(
  context: CopiesContext,
  files: ArrivedFile[],
): Promise<{ there: Set<string>; sendAgain: boolean }> {
  if (!context.transport.destinationSizes) {
    return { there: new Set(files.map((f) => f.relPath)), sendAgain: false };
  }
  const log = logger("cleanup");
  const look = await lookAt(context, files, log);
  if (look.noneThere) {
    log.warn(
      "None of the {count} file(s) of job {job} due for clean-up is at {base}: the destination " +
        "folder looks gone or not mounted, so their sources stay in the watch folder (looked at " +
        "again within the hour)",
      { job: context.job.name, count: files.length, base: context.transport.describeTarget("") },
    );
  }
  return { there: look.there, sendAgain: look.forgotten.length > 0 };
}
