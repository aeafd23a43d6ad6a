/**
 * A job renamed in the config keeps what it sent. The ledger keys each file by its job's name, so
 * without this a new name would send its whole watch folder again (with `after_transfer: keep`,
 * every image of every night still there). For each watch folder and destination the ledger
 * keeps the names of the jobs that sent from one to the other (`ledger_meta`); a job that starts
 * without a row of its own for its destination takes over that destination's rows of the one name
 * recorded there that no job of the config sends there now (the name may be another job's now:
 * jobs named by their place in the list are renumbered when one is removed, and two jobs may swap
 * names). Two jobs never send into one folder, so the destination tells the job.
 *
 * @module
 */
import { resolve } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { destinationIdentity } from "./destination_identity.ts";
import type { FileRows } from "./file_rows.ts";
import { type Ledger, LedgerWriteError } from "./ledger.ts";
import { logger } from "../log/logging.ts";

/** A job that took over the rows of the name it had before. */
export interface RenamedJob {
  /** The name its rows had. */
  from: string;
  /** Its name now. */
  to: string;
  /** How many rows it took over. */
  rows: number;
}

/** The `ledger_meta` key of the job names that sent from `watch` to `target`. */
function namesKey(target: string, watch: string): string {
  return `job_names\n${target}\n${watch}`;
}

/** The names recorded under `key` (none when unset or unreadable). */
function recordedNames(ledger: Ledger, key: string): string[] {
  try {
    const names: unknown = JSON.parse(ledger.meta(key) ?? "[]");
    return Array.isArray(names) ? names.filter((name) => typeof name === "string") : [];
  } catch {
    return [];
  }
}

/**
 * Before `jobs` start: record each job's name for its watch folder and destination, and give a job
 * that has no row of its own for its destination that destination's rows of its former name (the
 * one name recorded there that no job of `jobs` sends there now; with two such names, neither, as
 * which one it was cannot be told). A ledger that cannot be written changes nothing (the next
 * start does it).
 *
 * @returns the jobs that took over rows
 */
export function carryOverRenamedJobs(ledger: Ledger, jobs: readonly JobConfig[]): RenamedJob[] {
  const renamed: RenamedJob[] = [];
  for (const job of jobs) {
    const target = destinationIdentity(job);
    noteWatchFolder(ledger, job, target);
    const key = namesKey(target, job.watch_path);
    const names = recordedNames(ledger, key);
    if (names.includes(job.name)) continue;
    const former = formerNames(names, target, jobs);
    try {
      const rows = ledger.write(() => {
        let taken = 0;
        let kept = names;
        if (former.length === 1 && !hasRows(ledger, job.name, target)) {
          taken = Number(
            ledger.statement(
              "UPDATE OR IGNORE files SET job = ? WHERE job = ? AND target = ?",
            ).run(job.name, former[0], target).changes,
          );
          // The hooks it still owes go with it (`due_hooks.ts`), and its copies in place
          // unconfirmed (`unconfirmed_copies.ts`).
          for (const table of ["hooks_due", "copies_unconfirmed"]) {
            ledger.statement(`UPDATE OR IGNORE ${table} SET job = ? WHERE job = ? AND target = ?`)
              .run(job.name, former[0], target);
          }
          // The same watch folder: since when its rows are its files, as they were the former's.
          const since = ledger.meta(watchKey(target, former[0]));
          if (since !== null) ledger.setMeta(watchKey(target, job.name), since);
          kept = names.filter((name) => name !== former[0]);
        }
        ledger.setMeta(key, JSON.stringify([...kept, job.name]));
        return taken;
      });
      if (rows > 0) renamed.push({ from: former[0], to: job.name, rows });
    } catch (error) {
      if (!(error instanceof LedgerWriteError)) throw error;
    }
  }
  return renamed;
}

/** The names recorded for `target` that no job of `jobs` sends there now. */
function formerNames(names: string[], target: string, jobs: readonly JobConfig[]): string[] {
  const sendingThere = new Set(jobs.map((job) => `${job.name}\n${destinationIdentity(job)}`));
  return names.filter((name) => !sendingThere.has(`${name}\n${target}`));
}

/**
 * The name whose rows `job` would take over at the next start (see
 * {@linkcode carryOverRenamedJobs}), changing nothing: its own name where it takes none (for
 * `status` and `run --dry-run`, which read the ledger as the run will find it).
 */
export function ledgerName(ledger: Ledger, job: JobConfig, jobs: readonly JobConfig[]): string {
  const target = destinationIdentity(job);
  const names = recordedNames(ledger, namesKey(target, job.watch_path));
  if (names.includes(job.name)) return job.name;
  const former = formerNames(names, target, jobs);
  const takes = former.length === 1 && !ledger.read(() => hasRows(ledger, job.name, target));
  return takes ? former[0] : job.name;
}

/** Whether `job` has any row for `target`. */
function hasRows(ledger: Ledger, job: string, target: string): boolean {
  return ledger.statement("SELECT 1 FROM files WHERE job = ? AND target = ? LIMIT 1")
    .get(job, target) !== undefined;
}

/** The `ledger_meta` key of the watch folder `name` sends to `target` from, and since when. */
function watchKey(target: string, name: string): string {
  return `watch_folder\n${target}\n${name}`;
}

/** What `key` records (see {@linkcode noteWatchFolder}): `null` if nothing, `{}` if unreadable. */
function recordedWatch(
  ledger: Ledger,
  key: string,
): { watch?: unknown; since?: unknown; before?: unknown } | null {
  const text = ledger.meta(key);
  if (text === null) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null ? value : {};
  } catch {
    return {};
  }
}

/**
 * Record the watch folder `job` sends from to `target`: where it is another than the one recorded,
 * since now (the rows recorded before are the other folder's files), else as it was (since 0: its
 * rows are its folder's, as in a ledger from before this was recorded). A ledger that cannot be
 * written changes nothing.
 */
function noteWatchFolder(ledger: Ledger, job: JobConfig, target: string): void {
  const key = watchKey(target, job.name);
  const recorded = recordedWatch(ledger, key);
  if (recorded !== null && sameFolder(recorded.watch, job.watch_path)) return;
  // After every arrival recorded so far, also where the clock is behind them now.
  const since = recorded === null ? 0 : Math.max(Date.now(), lastArrival(ledger, job, target) + 1);
  // The folder it sent from before, until the files left unsent there are dropped (see
  // `formerWatchFolder`).
  const before = typeof recorded?.watch === "string" ? { before: recorded.watch } : {};
  try {
    ledger.setMeta(key, JSON.stringify({ watch: job.watch_path, since, ...before }));
  } catch (error) {
    if (!(error instanceof LedgerWriteError)) throw error;
  }
  if (recorded === null || typeof recorded.watch !== "string") return;
  logger("daemon").info(
    "Job {job} sends from {watch} now, no longer from {before}: the files of {before} not sent " +
      "yet are not sent; a file of {watch} under a name sent from {before} never goes over that " +
      "copy (the same bytes are counted as arrived, others go beside it)",
    { job: job.name, watch: job.watch_path, before: recorded.watch },
  );
}

/** The watch folder a job's files were found in before its watch folder changed, and since when. */
export interface FormerWatchFolder {
  /** The folder it sent from before. */
  folder: string;
  /** Since when it sends from the one now: a row made before is of a file of {@linkcode folder}. */
  since: number;
}

/**
 * The watch folder the job of `rows` sent from before its watch folder last changed, where its
 * unfinished files there may not have been dropped yet (`pipeline/ledger_takeover.ts`), else
 * `null`. Read where not known, `null` too.
 */
export function formerWatchFolder(rows: FileRows): FormerWatchFolder | null {
  try {
    const recorded = recordedWatch(rows.ledger, watchKey(rows.target, rows.job));
    const { before, since } = recorded ?? {};
    return typeof before === "string" && typeof since === "number"
      ? { folder: before, since }
      : null;
  } catch {
    return null; // Unreadable: as before this was recorded.
  }
}

/**
 * The unfinished files of the former watch folder of the job of `rows` are dropped: it is no
 * longer asked for (a file found in its folder now is never taken for one of them). Throws
 * {@linkcode LedgerWriteError} where it cannot be written.
 */
export function formerWatchFolderLeft(rows: FileRows): void {
  const key = watchKey(rows.target, rows.job);
  const { watch, since } = recordedWatch(rows.ledger, key) ?? {};
  rows.ledger.setMeta(key, JSON.stringify({ watch, since }));
}

/** Whether `recorded` names the folder `watch` (spelled alike or not: `/d/`, `/d//`, `/./d`). */
function sameFolder(recorded: unknown, watch: string): boolean {
  return typeof recorded === "string" && resolve(recorded) === resolve(watch);
}

/** When the last arrival of `job` at `target` was recorded (0: none). */
function lastArrival(ledger: Ledger, job: JobConfig, target: string): number {
  const row = ledger.read(() =>
    ledger.statement("SELECT max(transferred_at) AS at FROM files WHERE job = ? AND target = ?")
      .get(job.name, target)
  );
  return Number(row?.at ?? 0);
}

/**
 * `row` of `rows`, marked `otherFolder` where it records a copy that arrived from another watch
 * folder than the job's now (before the job's watch folder last changed): a file of the job's
 * folder under that name is another file, which never goes over that copy. `watch`: the job's
 * watch folder where the ledger may not have recorded it yet (`run --dry-run`; another than the
 * one recorded makes every copy another folder's, as the next start records it).
 */
export function fromWatchFolder<T extends { transferredAt: number | null }>(
  rows: FileRows,
  row: T | undefined,
  watch?: string,
): (T & { otherFolder?: boolean }) | undefined {
  if (row === undefined || row.transferredAt === null) return row;
  const recorded = recordedWatch(rows.ledger, watchKey(rows.target, rows.job));
  const moved = watch !== undefined && recorded !== null && !sameFolder(recorded.watch, watch);
  const since = moved ? Infinity : recorded?.since;
  return typeof since === "number" && row.transferredAt < since
    ? { ...row, otherFolder: true }
    : row;
}
