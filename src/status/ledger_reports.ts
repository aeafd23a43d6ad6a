/**
 * Read-only questions the status page asks the ledger: transfers filtered by
 * state, night and name, and totals per night folder. A connection of its
 * own, opened read only (the ledger is in WAL mode: reading never blocks the
 * pipeline's writes). Only the files of the running jobs, each for the
 * destination it sends to now, are shown: a trial run's files are its own.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import {
  type FileState,
  type LedgerRow,
  type Row as LedgerRowRecord,
  toRow,
} from "../ledger/file_rows.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { LEDGER_CACHE } from "../ledger/ledger_file.ts";
import { type LedgerRebuild, recordedRebuild } from "../ledger/ledger_check.ts";

/** One file as the API shows it. */
export interface TransferRow {
  job: string;
  relPath: string;
  size: number;
  destination: string;
  state: FileState;
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  updatedAt: number;
  transferredAt: number | null;
}

/** Filter of {@linkcode LedgerReports.transfers}. */
export interface TransferFilter {
  state?: FileState;
  /** Night folder, `YYYYMMDD`. */
  night?: string;
  /** Part of the relative path (case-sensitive). */
  name?: string;
  job?: string;
  /** Only files with an error (failed, or pending a retry). */
  problems?: boolean;
  limit: number;
}

/** Totals of one night folder of one job. */
export interface NightTotals {
  job: string;
  night: string;
  files: number;
  done: number;
  bytes: number;
  /** Files failed for good, or waiting for a retry. */
  failures: number;
}

type Row = Record<string, SQLInputValue>;

/**
 * Answers that read many rows (counts, night totals, the chart) are
 * computed again after the ledger changed, but at most this often.
 */
const COUNTS_CACHE_MS = 1000;
const SUMMARY_CACHE_MS = 2000;

const NIGHT_GLOB = "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]/*";

function toTransferRow(r: Row): TransferRow {
  return {
    job: String(r.job),
    relPath: String(r.rel_path),
    size: Number(r.size),
    destination: String(r.destination),
    state: r.state as FileState,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    lastError: r.last_error === null ? null : String(r.last_error),
    updatedAt: Number(r.updated_at),
    transferredAt: r.transferred_at === null ? null : Number(r.transferred_at),
  };
}

/** A job and the identity of its destination (`destinationIdentity`). */
export interface JobScope {
  job: string;
  target: string;
}

/** Rows of the jobs in scope (`:scope`: JSON list of `job NUL target`, see {@linkcode scopeParam}). */
const IN_SCOPE = "(job || char(0) || target) IN (SELECT value FROM json_each(:scope))";

/** Read-only reports over the ledger at `path`. */
export class LedgerReports {
  readonly path: string;
  #db: DatabaseSync;
  #scope: () => JobScope[];
  /** Answers that read many rows, reused for a moment (pushes come twice a second). */
  #cache = new Map<string, { at: number; value: unknown; dirty: boolean }>();

  /** @param scope the running jobs and where they send */
  constructor(path: string, scope: () => JobScope[]) {
    this.path = path;
    this.#scope = scope;
    this.#db = openForReports(path);
  }

  /** When and why the ledger was started anew (a damaged one set aside, or one lost), or `null`. */
  rebuilt(): LedgerRebuild | null {
    return recordedRebuild((key) => {
      try {
        const row = this.#db.prepare("SELECT value FROM ledger_meta WHERE key = ?").get(key);
        return typeof row?.value === "string" ? row.value : null;
      } catch {
        return null; // No meta table (an old ledger).
      }
    });
  }

  /** The ledger file was replaced (a damaged one set aside): read the new one. */
  reopen(): void {
    this.#db.close();
    this.#db = openForReports(this.path);
    this.changed();
  }

  #scopeParam(): string {
    return JSON.stringify(this.#scope().map((s) => `${s.job}\u0000${s.target}`));
  }

  /** Files matching `filter`, most recently changed first. */
  transfers(filter: TransferFilter): TransferRow[] {
    const rows = this.#db.prepare(`
      SELECT job, rel_path, size, destination, state, attempts, next_attempt_at, last_error,
             updated_at, transferred_at
      FROM files
      WHERE (:state IS NULL OR state = :state)
        AND (:night IS NULL OR substr(destination, 1, 9) = :night || '/')
        AND (:name IS NULL OR instr(rel_path, :name) > 0)
        AND (:job IS NULL OR job = :job)
        AND (:problems = 0 OR state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL))
        AND ${IN_SCOPE}
      ORDER BY updated_at DESC LIMIT :limit
    `).all({
      scope: this.#scopeParam(),
      state: filter.state ?? null,
      night: filter.night ?? null,
      name: filter.name ?? null,
      job: filter.job ?? null,
      problems: filter.problems ? 1 : 0,
      limit: filter.limit,
    }) as Row[];
    return rows.map(toTransferRow);
  }

  /**
   * Files of the running jobs with an error (failed, or pending a retry), most
   * recent first. Reads through the (job, target, state) index: cheap however
   * many files are done.
   */
  problems(limit: number): TransferRow[] {
    const statement = this.#db.prepare(`
      SELECT * FROM files INDEXED BY files_by_state
      WHERE job = ? AND target = ? AND state = ? AND last_error IS NOT NULL
      ORDER BY updated_at DESC LIMIT ?
    `);
    const rows = this.#scope().flatMap(({ job, target }) =>
      (["failed", "pending"] as const).flatMap((state) =>
        statement.all(job, target, state, limit) as Row[]
      )
    );
    return rows.map(toTransferRow).sort((a, b) => b.updatedAt - a.updatedAt).slice(0, limit);
  }

  /**
   * Totals of the latest `limit` night folders, newest first; with
   * `changedSinceMs`, over the files changed since then (the page's recent
   * nights, read through the `updated_at` index and reused for a moment).
   */
  nights(limit: number, changedSinceMs?: number): NightTotals[] {
    if (changedSinceMs === undefined) return this.#nights(limit, 0);
    return this.#cached(
      `nights ${limit}`,
      SUMMARY_CACHE_MS,
      () => this.#nights(limit, changedSinceMs),
    );
  }

  #nights(limit: number, changedSinceMs: number): NightTotals[] {
    // Recent changes only: through the updated_at index, so a long history is not read.
    const index = changedSinceMs > 0 ? "INDEXED BY files_by_update" : "";
    const rows = this.#db.prepare(`
      SELECT job, substr(destination, 1, 8) AS night, COUNT(*) AS files,
             SUM(state = 'done') AS done,
             COALESCE(SUM(CASE WHEN state = 'done' THEN size END), 0) AS bytes,
             SUM(state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)) AS failures
      FROM files ${index}
      WHERE destination GLOB :glob AND updated_at >= :since AND ${IN_SCOPE}
      GROUP BY job, night ORDER BY night DESC, job LIMIT :limit
    `).all({ glob: NIGHT_GLOB, since: changedSinceMs, limit, scope: this.#scopeParam() }) as Row[];
    return rows.map((r) => ({
      job: String(r.job),
      night: String(r.night),
      files: Number(r.files),
      done: Number(r.done),
      bytes: Number(r.bytes),
      failures: Number(r.failures),
    }));
  }

  /** Files and bytes that arrived per minute since `sinceMs` (`minute`: its start, ms). */
  perMinute(sinceMs: number): Array<{ minute: number; files: number; bytes: number }> {
    return this.#cached("perMinute", SUMMARY_CACHE_MS, () => this.#perMinute(sinceMs));
  }

  #perMinute(sinceMs: number): Array<{ minute: number; files: number; bytes: number }> {
    const rows = this.#db.prepare(`
      SELECT (transferred_at / 60000) * 60000 AS minute, COUNT(*) AS files, SUM(size) AS bytes
      FROM files WHERE updated_at >= :since AND state = 'done' AND transferred_at >= :since
        AND ${IN_SCOPE}
      GROUP BY minute ORDER BY minute
    `).all({ since: sinceMs, scope: this.#scopeParam() }) as Row[];
    return rows.map((r) => ({
      minute: Number(r.minute),
      files: Number(r.files),
      bytes: Number(r.bytes),
    }));
  }

  /** Number of files per job and state (from the ledger's kept counts; reused for a moment). */
  counts(): Array<{ job: string; state: FileState; count: number }> {
    return this.#cached("counts", COUNTS_CACHE_MS, () => this.#counts());
  }

  #counts(): Array<{ job: string; state: FileState; count: number }> {
    // A few rows: the ledger keeps its counts (schema version 3).
    const inScope = new Set(this.#scope().map((s) => `${s.job}\u0000${s.target}`));
    const rows = this.#db.prepare(
      "SELECT job, target, state, n FROM file_counts WHERE n > 0",
    ).all() as Row[];
    const totals = new Map<string, { job: string; state: FileState; count: number }>();
    for (const r of rows) {
      if (!inScope.has(`${r.job}\u0000${r.target}`)) continue;
      const key = `${r.job}\u0000${r.state}`;
      const entry = totals.get(key) ??
        { job: String(r.job), state: r.state as FileState, count: 0 };
      entry.count += Number(r.n);
      totals.set(key, entry);
    }
    return [...totals.values()].sort((a, b) =>
      a.job < b.job ? -1 : a.job > b.job ? 1 : a.state < b.state ? -1 : a.state > b.state ? 1 : 0
    );
  }

  /** The ledger changed: reused answers are computed again (at their pace). */
  changed(): void {
    for (const entry of this.#cache.values()) entry.dirty = true;
  }

  /** Whether a reused answer is older than the ledger (a later read brings it up to date). */
  get stale(): boolean {
    return [...this.#cache.values()].some((entry) => entry.dirty);
  }

  #cached<T>(key: string, minAgeMs: number, compute: () => T): T {
    const hit = this.#cache.get(key);
    // The monotonic clock: a wall clock set back (NTP) must not keep an answer for as long.
    if (hit && (!hit.dirty || performance.now() - hit.at < minAgeMs)) return hit.value as T;
    const value = compute();
    this.#cache.set(key, { at: performance.now(), value, dirty: false });
    return value;
  }

  /** Close the connection. */
  close(): void {
    this.#db.close();
  }
}

/**
 * Whether the rows of `job` for `target` are of `scope` (the jobs of a config and where they send
 * now: with their rows from before destinations were recorded, `target` ""); every row without
 * a scope.
 */
function inScope(row: LedgerRowRecord, scope?: JobScope[]): boolean {
  return scope === undefined ||
    scope.some((s) => s.job === row.job && (row.target === s.target || row.target === ""));
}

/** Files per job, destination and state (every job in the ledger, or those of `scope`). */
export function ledgerCounts(
  ledger: Ledger,
  scope?: JobScope[],
): Array<{ job: string; target: string; state: FileState; count: number }> {
  const rows = ledger.read(() =>
    ledger.statement(
      "SELECT job, target, state, n FROM file_counts WHERE n > 0 ORDER BY job, target, state",
    ).all() as LedgerRowRecord[]
  ).filter((r) => inScope(r, scope));
  return rows.map((r) => ({
    job: r.job as string,
    target: r.target as string,
    state: r.state as FileState,
    count: Number(r.n),
  }));
}

/**
 * `on_transfer` hooks owed (an arrival recorded, its hook not started yet) per job and
 * destination (of those of `scope` when given).
 */
export function hooksOwed(
  ledger: Ledger,
  scope?: JobScope[],
): Array<{ job: string; target: string; count: number }> {
  const rows = ledger.read(() =>
    ledger.statement(
      "SELECT job, target, count(*) AS n FROM hooks_due GROUP BY job, target ORDER BY job, target",
    ).all() as LedgerRowRecord[]
  ).filter((r) => inScope(r, scope));
  return rows.map((r) => ({
    job: r.job as string,
    target: r.target as string,
    count: Number(r.n),
  }));
}

/**
 * The most recently arrived files, newest first; of the jobs and destinations of `scope` when
 * given (a job a reload removed is not the daemon's any more). A done row's `updated_at` is
 * its arrival (`markDone` sets both), so the newest are read from the end of
 * the `updated_at` index: a year of history is not sorted for them.
 */
export function recentDone(ledger: Ledger, limit: number, scope?: JobScope[]): LedgerRow[] {
  // `job NUL target`, and `job NUL` for its rows from before destinations were recorded.
  const keys = scope === undefined
    ? null
    : JSON.stringify(scope.flatMap((s) => [`${s.job}\u0000${s.target}`, `${s.job}\u0000`]));
  return ledger.read(() =>
    ledger.statement(
      "SELECT * FROM files INDEXED BY files_by_update WHERE state = 'done' " +
        "AND (:scope IS NULL OR (job || char(0) || target) IN (SELECT value FROM json_each(:scope))) " +
        "ORDER BY updated_at DESC LIMIT :limit",
    ).all({ scope: keys, limit }) as LedgerRowRecord[]
  ).map(toRow);
}

/**
 * The rows with files in `state` of every job and destination (of those of
 * `scope` when given: the jobs of a config and where they send now, and
 * their rows from before destinations were recorded), each read through the
 * state index (`where` narrows them further), `order` first and at most
 * `limit` of them.
 */
function rowsInState(
  ledger: Ledger,
  state: FileState,
  where: string,
  params: SQLInputValue[],
  order: (a: LedgerRow, b: LedgerRow) => number,
  limit: number,
  scope?: JobScope[],
): LedgerRow[] {
  return ledger.read(() => {
    const scopes = ledger.statement(
      "SELECT job, target FROM file_counts WHERE state = ? AND n > 0",
    ).all(state) as LedgerRowRecord[];
    const rows = ledger.statement(
      `SELECT * FROM files INDEXED BY files_by_state WHERE job = ? AND target = ? AND state = ?
         AND ${where}`,
    );
    return scopes.filter((s) => inScope(s, scope)).flatMap((s) =>
      (rows.all(s.job, s.target, state, ...params) as LedgerRowRecord[]).map(toRow)
    );
  }).sort(order).slice(0, limit);
}

/**
 * Files with an error: failed ones, and pending ones waiting for a retry;
 * latest first; of the jobs and destinations of `scope` when given.
 */
export function problemFiles(ledger: Ledger, limit: number, scope?: JobScope[]): LedgerRow[] {
  const latest = (a: LedgerRow, b: LedgerRow) => b.updatedAt - a.updatedAt;
  // Every failed row; pending ones only with the error of an attempt.
  const where = { failed: "1", pending: "last_error IS NOT NULL" } as const;
  return (["failed", "pending"] as const)
    .flatMap((state) => rowsInState(ledger, state, where[state], [], latest, limit, scope))
    .sort(latest).slice(0, limit);
}

/**
 * Pending files whose next attempt was due before `dueBefore` (ms since
 * epoch) and has not started: a retry that did not fire, or a daemon that is
 * not running. Oldest first; of the jobs and destinations of `scope` when given.
 */
export function overdueFiles(
  ledger: Ledger,
  dueBefore: number,
  limit: number,
  scope?: JobScope[],
): LedgerRow[] {
  return rowsInState(
    ledger,
    "pending",
    "next_attempt_at > 0 AND next_attempt_at < ?",
    [dueBefore],
    (a, b) => a.nextAttemptAt - b.nextAttemptAt,
    limit,
    scope,
  );
}

/**
 * The read-only connection {@linkcode LedgerReports} reads the ledger at `path` through, with the
 * daemon's small page cache. A ledger that cannot be read yet is reported by the first query, as
 * without the setting.
 */
export function openForReports(path: string): DatabaseSync {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    db.exec(LEDGER_CACHE);
  } catch { /* see above */ }
  return db;
}
