/**
 * Read-only queries of the ledger (see `ledger.ts`): single rows, the done
 * index, what is unfinished or overdue, and the totals and lists the status
 * page, `status` and night reports show. {@linkcode Ledger} adds the writes.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** Where a file stands. */
export type FileState = "pending" | "transferring" | "done" | "failed";

/** One source file as the ledger knows it. */
export interface LedgerRow {
  job: string;
  /** Path relative to the job's watch folder, `/` separators. */
  relPath: string;
  size: number;
  mtimeMs: number;
  /** Destination relative to the job's base path. */
  destination: string;
  state: FileState;
  /** Failed attempts since the file last changed or was re-queued. */
  attempts: number;
  /** When the next attempt may start (ms since epoch); 0 = now. */
  nextAttemptAt: number;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
  /** When the file last arrived verified, or `null`. */
  transferredAt: number | null;
}

/** Size and mtime of a file the ledger holds as done. */
export interface DoneEntry {
  size: number;
  mtimeMs: number;
}

/** Files of one job in one night folder and state (see {@linkcode Ledger.nightTotals}). */
export interface NightTotals {
  night: string;
  state: FileState;
  files: number;
  bytes: number;
  firstArrivalAt: number | null;
  lastArrivalAt: number | null;
}

/** A raw database row. */
export type Row = Record<string, string | number | null>;

/** A database row as a {@linkcode LedgerRow}. */
export function toRow(r: Row): LedgerRow {
  return {
    job: r.job as string,
    relPath: r.rel_path as string,
    size: Number(r.size),
    mtimeMs: Number(r.mtime_ms),
    destination: r.destination as string,
    state: r.state as FileState,
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    lastError: r.last_error as string | null,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    transferredAt: r.transferred_at === null ? null : Number(r.transferred_at),
  };
}

/** The ledger's queries; {@linkcode Ledger} (`ledger.ts`) opens it and adds the writes. */
export class LedgerReader {
  readonly path: string;
  protected readonly db: DatabaseSync;
  #statements = new Map<string, StatementSync>();

  protected constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.db = db;
  }

  /** A prepared statement, cached by its SQL. */
  protected stmt(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** The row of one file, if any. */
  get(job: string, relPath: string): LedgerRow | undefined {
    const r = this.stmt("SELECT * FROM files WHERE job = ? AND rel_path = ?").get(job, relPath);
    return r ? toRow(r as Row) : undefined;
  }

  /** Size and mtime of every done file of `job`, for a fast start-up scan. */
  doneIndex(job: string): Map<string, DoneEntry> {
    const out = new Map<string, DoneEntry>();
    // Streamed row by row: at 100,000 files an array of every row first would
    // add tens of MB to the start-up peak.
    const rows = this.stmt(
      "SELECT rel_path, size, mtime_ms FROM files WHERE job = ? AND state = 'done'",
    ).iterate(job) as Iterable<Row>;
    for (const r of rows) {
      out.set(r.rel_path as string, { size: Number(r.size), mtimeMs: Number(r.mtime_ms) });
    }
    return out;
  }

  /**
   * Pending files whose next attempt was due before `dueBefore` (ms since
   * epoch) and has not started: a retry that did not fire, or a daemon that is
   * not running. Oldest first; all jobs unless `job` is given.
   */
  overdue(dueBefore: number, limit: number, job?: string): LedgerRow[] {
    const rows = this.stmt(`
      SELECT * FROM files WHERE state = 'pending' AND next_attempt_at > 0 AND next_attempt_at < ?
        AND (? IS NULL OR job = ?)
      ORDER BY next_attempt_at LIMIT ?
    `).all(dueBefore, job ?? null, job ?? null, limit);
    return (rows as Row[]).map(toRow);
  }

  /** Every row of `job` that is not done (pending, transferring or failed). */
  unfinished(job: string): LedgerRow[] {
    const rows = this.stmt("SELECT * FROM files WHERE job = ? AND state != 'done'").all(job);
    return (rows as Row[]).map(toRow);
  }

  /**
   * Done files of `job` that arrived at or before `arrivedBy` (ms since the
   * epoch): path and the size and mtime they were sent with.
   */
  doneArrivedBy(job: string, arrivedBy: number): Array<{ relPath: string } & DoneEntry> {
    const rows = this.stmt(
      "SELECT rel_path, size, mtime_ms FROM files " +
        "WHERE job = ? AND state = 'done' AND transferred_at <= ? ORDER BY transferred_at",
    ).all(job, arrivedBy) as Row[];
    return rows.map((r) => ({
      relPath: r.rel_path as string,
      size: Number(r.size),
      mtimeMs: Number(r.mtime_ms),
    }));
  }

  /**
   * Per night folder (the first part of the destination) of `job`: files and
   * bytes per state, first and last arrival (ms since the epoch).
   */
  nightTotals(job: string): NightTotals[] {
    const rows = this.stmt(`
      SELECT CASE WHEN instr(destination, '/') > 0
                  THEN substr(destination, 1, instr(destination, '/') - 1) ELSE '' END AS night,
             state, COUNT(*) AS n, SUM(size) AS bytes,
             MIN(transferred_at) AS first_at, MAX(transferred_at) AS last_at
      FROM files WHERE job = ? AND destination != '' GROUP BY night, state
    `).all(job) as Row[];
    return rows.map((r) => ({
      night: r.night as string,
      state: r.state as FileState,
      files: Number(r.n),
      bytes: Number(r.bytes ?? 0),
      firstArrivalAt: r.first_at === null ? null : Number(r.first_at),
      lastArrivalAt: r.last_at === null ? null : Number(r.last_at),
    }));
  }

  /** Done files of `job` whose destination lies in the night folder `night`. */
  doneInNight(job: string, night: string): LedgerRow[] {
    const rows = this.stmt(
      "SELECT * FROM files WHERE job = ? AND state = 'done' AND substr(destination, 1, ?) = ?",
    ).all(job, night.length + 1, `${night}/`);
    return (rows as Row[]).map(toRow);
  }

  /** Every pending row of `job` (uses the state index: cheap with many done files). */
  pending(job: string): LedgerRow[] {
    const rows = this.stmt("SELECT * FROM files WHERE job = ? AND state = 'pending'").all(job);
    return (rows as Row[]).map(toRow);
  }

  /** Number of files per job and state. */
  counts(): Array<{ job: string; state: FileState; count: number }> {
    const rows = this.stmt(
      "SELECT job, state, COUNT(*) AS n FROM files GROUP BY job, state ORDER BY job, state",
    ).all() as Row[];
    return rows.map((r) => ({
      job: r.job as string,
      state: r.state as FileState,
      count: Number(r.n),
    }));
  }

  /** The most recently arrived files, newest first. */
  recentDone(limit: number): LedgerRow[] {
    const rows = this.stmt(
      "SELECT * FROM files WHERE state = 'done' ORDER BY transferred_at DESC LIMIT ?",
    ).all(limit);
    return (rows as Row[]).map(toRow);
  }

  /** Files with an error: failed ones, and pending ones waiting for a retry. */
  problems(limit: number): LedgerRow[] {
    const rows = this.stmt(`
      SELECT * FROM files WHERE state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)
      ORDER BY updated_at DESC LIMIT ?
    `).all(limit);
    return (rows as Row[]).map(toRow);
  }

  /** Close the database. */
  close(): void {
    this.#statements.clear();
    this.db.close();
  }
}
