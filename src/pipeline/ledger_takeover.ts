/**
 * The file table's start-up (`file_table.ts`, its only user, through which every other write
 * goes): what the last run left in the ledger's rows of this job and destination is taken over,
 * and every unfinished file goes back into motion as it was, to the stability checker, or out of
 * the ledger.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { type FileRows, writeIfWritable } from "../ledger/file_rows.ts";
import { formerWatchFolder, formerWatchFolderLeft } from "../ledger/job_names.ts";
import { UnconfirmedCopies } from "../ledger/unconfirmed_copies.ts";
import { logger } from "../log/logging.ts";
import type { FileFilter } from "../watch/file_filter.ts";
import { absolutePath, type FileVersion, sameVersion, versionOf } from "../watch/file_version.ts";
import { systemClock } from "./retry_timer.ts";
import type { WorkRecord } from "./work_queue.ts";

/** What the last run left in the ledger, as {@linkcode takeOverLedger} found it. */
export interface LeftByLastRun {
  /** Attempts that were cut short (sent again, after a look at the destination). */
  interrupted: number;
  /** Files that had used up their retries (tried again). */
  failed: number;
  /**
   * Files done for another destination of this job only, counted where the job's last start sent
   * to another destination (or none is recorded), else 0: said once per change.
   */
  doneElsewhere: number;
}

/**
 * Rows from before destinations were told apart become this destination's; rows the last run
 * left `transferring` (`lookFirst`: looked for at the destination first, with the version their
 * attempt sent) and `failed` go back to
 * pending; files whose copy is in place unconfirmed (`ledger/unconfirmed_copies.ts`) are looked
 * for first too.
 */
export function takeOverLedger(
  rows: FileRows,
  lookFirst: InterruptedAttempts,
): LeftByLastRun {
  writeIfWritable(() => rows.adoptUnattributed());
  const doneElsewhere = noteDestination(rows) ? rows.doneElsewhereOnly() : 0;
  for (const [relPath, destination] of new UnconfirmedCopies(rows).all()) {
    lookFirst.add(relPath, destination === "" ? versionSent(rows, relPath) : null);
  }
  const cut = rows.unfinished().filter((row) => row.state === "transferring");
  // Kept over the next stop too, before their rows say no more that they were being sent.
  lookFirst.cutOff(cut.map((row) => [row.relPath, { size: row.size, mtimeMs: row.mtimeMs }]));
  let interrupted = 0;
  let failed = 0;
  writeIfWritable(() => {
    interrupted = rows.requeue(["transferring"]);
    failed = rows.requeue(["failed"]);
  });
  return { interrupted, failed, doneElsewhere };
}

/**
 * Whether the job starts with another destination than at its last start, recorded now (in the
 * ledger's `ledger_meta`): what went to the other one is said once per change, not at each start.
 * A ledger that cannot be written changes nothing (it is said again at the next start).
 */
function noteDestination(rows: FileRows): boolean {
  const key = `destination\n${rows.job}`;
  if (rows.ledger.meta(key) === rows.target) return false;
  writeIfWritable(() => rows.ledger.setMeta(key, rows.target));
  return true;
}

/**
 * The version the last attempt of `relPath`, which may have put its copy in place, sent: its row's
 * as the last run left it (the version it was planned, and sent, with), `null` where not known.
 */
function versionSent(rows: FileRows, relPath: string): FileVersion | null {
  try {
    const row = rows.get(relPath);
    return row ? { size: row.size, mtimeMs: row.mtimeMs } : null;
  } catch {
    return null; // Unreadable: not known, as before.
  }
}

/**
 * The files whose last attempt ended unrecorded (a stop, a crash, a ledger that could not be
 * written, a call cut off after it may have renamed the copy into place), looked for at the
 * destination before they are sent, with the version that attempt sent where known (`null`: a
 * copy in place unconfirmed; one the ledger kept from an earlier run has its row's). The ledger keeps them
 * too until they are looked for (`ledger/unconfirmed_copies.ts`), so a run started after a crash
 * still counts such a copy as the job's own.
 */
export class InterruptedAttempts {
  #sent = new Map<string, FileVersion | null>();

  constructor(readonly copies: UnconfirmedCopies) {}

  /** The last attempt of `relPath`, which sent `sent`, ended unrecorded (the ledger knows). */
  add(relPath: string, sent: FileVersion | null): void {
    if (!this.#sent.get(relPath)) this.#sent.set(relPath, sent);
  }

  /**
   * The last attempts of `attempts` (file, version sent) ended unrecorded, and may have put their
   * copy in place: kept in the ledger too, where it can be written.
   */
  cutOff(attempts: ReadonlyArray<[string, FileVersion]>): void {
    for (const [relPath, sent] of attempts) this.add(relPath, sent);
    writeIfWritable(() => this.copies.mayBeInPlace(attempts.map(([relPath]) => relPath)));
  }

  /**
   * Whether the last attempt of `relPath` ended unrecorded: `changed` where it sent another
   * version than `version` (a copy found at the destination is of the earlier one, whatever its
   * size). Asked until {@linkcode looked}.
   */
  of(relPath: string, version: FileVersion): false | "same" | "changed" {
    if (!this.#sent.has(relPath)) return false;
    const sent = this.#sent.get(relPath);
    return sent && !sameVersion(sent, version) ? "changed" : "same";
  }

  /** The version the last attempt of `relPath` sent, where known (asked before {@linkcode looked}). */
  sent(relPath: string): FileVersion | null {
    return this.#sent.get(relPath) ?? null;
  }

  /** The destination was asked about `relPaths` (not again while the look could not be made). */
  looked(relPaths: string[]): void {
    const known = relPaths.filter((relPath) => this.#sent.delete(relPath));
    writeIfWritable(() => this.copies.looked(known)); // Else looked for once more after a stop.
  }
}

/** What {@linkcode resumeUnfinished} works with. */
export interface ResumeContext {
  job: JobConfig;
  rows: FileRows;
  /** The job's filter: an unfinished row that no longer matches is dropped. */
  filter: FileFilter;
  /** Have the stability checker observe the file at `path`. */
  observe(path: string): void;
  /** Put a file back into motion (the work queue's `resume`), waiting since `since`. */
  resume(record: Omit<WorkRecord, "phase" | "recheck" | "foundAt">, since: number): void;
  /** A row taken out (a failed file no longer failing: a reload's patterns leave it out). */
  dropped?(relPath: string): void;
}

/**
 * After {@linkcode takeOverLedger}: every unfinished row goes back into motion as it was (same
 * size and mtime: destination, attempts and retry time kept), to the checker (it changed), or out
 * of the ledger (gone, or no longer matching; or a file of the folder the job watched before its
 * watch folder changed, which stays there unsent: the first {@linkcode NAMED_AT_MOST} named, the
 * rest counted). A retry time further ahead than the
 * longest retry delay (the clock was stepped back since) is due now.
 * @returns the destinations of the rows taken out (their sources are gone)
 */
export async function resumeUnfinished(context: ResumeContext): Promise<string[]> {
  const { job, rows } = context;
  const latest = systemClock.now() + job.retry_max_delay_seconds * 1000;
  const dropped: string[] = [];
  const left = { gone: [] as string[], unmatched: [] as string[], former: [] as string[] };
  // Rows made before the watch folder changed are of files of the folder it watched before.
  const former = formerWatchFolder(rows);
  let formerLeft = true;
  for (const row of rows.unfinished()) {
    const before = former !== null && row.createdAt < former.since;
    const path = absolutePath(before ? former.folder : job.watch_path, row.relPath);
    const info = await Deno.stat(path).catch(() => null);
    if (before || !info?.isFile || !context.filter.includesFile(row.relPath)) {
      const removed = writeIfWritable(() => rows.remove(row.relPath, true));
      if (before) formerLeft &&= removed;
      dropped.push(row.destination);
      context.dropped?.(row.relPath);
      left[!info?.isFile ? "gone" : before ? "former" : "unmatched"].push(path);
    } else if (sameVersion(versionOf(info), row)) {
      context.resume({
        relPath: row.relPath,
        version: { size: row.size, mtimeMs: row.mtimeMs },
        destination: row.destination,
        attempts: row.attempts,
        nextAttemptAt: row.nextAttemptAt > latest ? 0 : row.nextAttemptAt,
      }, row.createdAt);
    } else {
      context.observe(path);
    }
  }
  if (former && formerLeft) writeIfWritable(() => formerWatchFolderLeft(rows));
  // Named: files the user did not leave out, which stay unsent.
  const moved = { folder: former?.folder, watch: job.watch_path };
  const where = "in {folder}, which job {job} no longer watches (its watch_path is {watch} " +
    "now): left there, not sent";
  sayDropped(job.name, left.former, where, moved, true);
  sayDropped(job.name, left.gone, "not in the watch folder any more (gone)");
  sayDropped(
    job.name,
    left.unmatched,
    "left out by its file_patterns, exclude_patterns or symlinks now",
  );
  return dropped;
}

/** Files named each at info level where `sayDropped` names them: the rest are counted. */
const NAMED_AT_MOST = 10;

/**
 * Say that the unfinished files at `paths` are dropped, because they are `why` (a template of
 * `fields`): one line each for one file, else one line with their count (a reload's new patterns
 * over a folder of thousands), each file at debug level; where `named`, the first
 * {@linkcode NAMED_AT_MOST} on a line of their own, then one with the count of the rest (a folder
 * no longer watched after a long paused night), each of those at debug level.
 */
function sayDropped(
  job: string,
  paths: string[],
  why: string,
  fields: Record<string, unknown> = {},
  named = false,
): void {
  const log = logger("pipeline");
  const one = `Dropped {path}: it is ${why}`;
  if (paths.length === 1) log.info(one, { ...fields, job, path: paths[0] });
  if (paths.length <= 1) return;
  if (named) {
    for (const path of paths.slice(0, NAMED_AT_MOST)) log.info(one, { ...fields, job, path });
    const rest = paths.slice(NAMED_AT_MOST);
    if (rest.length === 0) return;
    log.info(
      `Dropped {count} more unsent file(s) of job {job} ({total} in all): they are ${why}; ` +
        "-v logs each",
      { ...fields, job, count: rest.length, total: paths.length },
    );
    for (const path of rest) log.debug(one, { ...fields, job, path });
    return;
  }
  log.info(`Dropped {count} unsent file(s) of job {job}: they are ${why}, {path} among them`, {
    ...fields,
    job,
    count: paths.length,
    path: paths[0],
  });
  for (const path of paths) log.debug(one, { ...fields, job, path });
}
