/**
 * The ledger: durable state of every source file, in SQLite (WAL) under
 * `state_dir`. It is the single source of truth the other stages read and
 * write: what is done is never sent again, what was pending or interrupted is
 * resumed after a restart.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { assertLedgerReadable, migrateLedger } from "./schema_version.ts";

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

/** File name of the ledger database inside `state_dir`. */
export const LEDGER_FILE = "ledger.sqlite";

/** Schema version 1 (see `schema_version.ts`; a later version adds a migration step there). */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  job TEXT NOT NULL,
  rel_path TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  destination TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'transferring', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  transferred_at INTEGER,
  PRIMARY KEY (job, rel_path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_state ON files (job, state);
CREATE INDEX IF NOT EXISTS files_by_update ON files (updated_at);
`;

type Row = Record<string, string | number | null>;

function toRow(r: Row): LedgerRow {
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

/** Durable per-file state. Open with {@linkcode Ledger.open}; close when done. */
export class Ledger {
  readonly path: string;
  #db: DatabaseSync;
  #statements = new Map<string, StatementSync>();

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
  }

  /**
   * Open (creating if needed) the ledger in `stateDir`.
   *
   * @param options.readOnly open an existing ledger without changing anything;
   *   returns `null` when there is none yet
   * @throws when the folder or database cannot be created or opened, or the
   *   ledger was written by a newer image-transfer (an older one is migrated)
   */
  static open(stateDir: string, options: { readOnly: true }): Ledger | null;
  static open(stateDir: string, options?: { readOnly?: false }): Ledger;
  static open(stateDir: string, options: { readOnly?: boolean } = {}): Ledger | null {
    const path = join(stateDir, LEDGER_FILE);
    if (options.readOnly) {
      try {
        Deno.statSync(path);
      } catch {
        return null;
      }
      const db = new DatabaseSync(path, { readOnly: true });
      try {
        // An older ledger is read as it is; the daemon migrates it when it next starts.
        assertLedgerReadable(db, path);
      } catch (error) {
        db.close();
        throw error;
      }
      return new Ledger(path, db);
    }
    Deno.mkdirSync(stateDir, { recursive: true });
    const db = new DatabaseSync(path);
    try {
      db.exec("PRAGMA busy_timeout = 5000;");
      assertLedgerReadable(db, path);
      db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
      migrateLedger(db, path, [SCHEMA]);
    } catch (error) {
      db.close();
      throw error;
    }
    return new Ledger(path, db);
  }

  #stmt(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** Run `fn` in one transaction (much faster for many writes). */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /** The row of one file, if any. */
  get(job: string, relPath: string): LedgerRow | undefined {
    const r = this.#stmt("SELECT * FROM files WHERE job = ? AND rel_path = ?").get(job, relPath);
    return r ? toRow(r as Row) : undefined;
  }

  /** Size and mtime of every done file of `job`, for a fast start-up scan. */
  doneIndex(job: string): Map<string, DoneEntry> {
    const out = new Map<string, DoneEntry>();
    // Streamed row by row: at 100,000 files an array of every row first would
    // add tens of MB to the start-up peak.
    const rows = this.#stmt(
      "SELECT rel_path, size, mtime_ms FROM files WHERE job = ? AND state = 'done'",
    ).iterate(job) as Iterable<Row>;
    for (const r of rows) {
      out.set(r.rel_path as string, { size: Number(r.size), mtimeMs: Number(r.mtime_ms) });
    }
    return out;
  }

  /**
   * Record a complete file as pending. A file seen with a new size or mtime
   * starts over (attempts 0, no error); an unchanged pending or failed one keeps
   * its attempt count and last error.
   *
   * @returns the file's failed attempts so far (0 for a new or changed file)
   */
  enqueue(
    job: string,
    relPath: string,
    file: { size: number; mtimeMs: number; destination: string },
    now = Date.now(),
  ): number {
    const row = this.#stmt(`
      INSERT INTO files (job, rel_path, size, mtime_ms, destination, state, attempts,
                         next_attempt_at, last_error, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, 'pending', 0, 0, NULL, ?, ?)
      ON CONFLICT (job, rel_path) DO UPDATE SET
        attempts = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms
                        AND state != 'done' THEN attempts ELSE 0 END,
        last_error = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms
                          AND state != 'done' THEN last_error ELSE NULL END,
        size = excluded.size, mtime_ms = excluded.mtime_ms, destination = excluded.destination,
        state = 'pending', next_attempt_at = 0, updated_at = excluded.updated_at
      RETURNING attempts
    `).get(job, relPath, file.size, file.mtimeMs, file.destination, now, now) as Row;
    return Number(row.attempts);
  }

  /** Mark files as being sent right now. */
  markTransferring(job: string, relPaths: string[], now = Date.now()): void {
    const stmt = this.#stmt(
      "UPDATE files SET state = 'transferring', updated_at = ? WHERE job = ? AND rel_path = ?",
    );
    this.transaction(() => {
      for (const p of relPaths) stmt.run(now, job, p);
    });
  }

  /** Mark a file as arrived and verified. */
  markDone(job: string, relPath: string, now = Date.now()): void {
    this.#stmt(`
      UPDATE files SET state = 'done', attempts = 0, next_attempt_at = 0, last_error = NULL,
        updated_at = ?, transferred_at = ? WHERE job = ? AND rel_path = ?
    `).run(now, now, job, relPath);
  }

  /**
   * Record a failed attempt: back to pending with a next attempt time, or
   * `failed` when `final` (no more retries until the next start-up or rescan).
   */
  recordFailure(
    job: string,
    relPath: string,
    failure: { error: string; attempts: number; nextAttemptAt: number; final: boolean },
    now = Date.now(),
  ): void {
    this.#stmt(`
      UPDATE files SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ?
      WHERE job = ? AND rel_path = ?
    `).run(
      failure.final ? "failed" : "pending",
      failure.attempts,
      failure.nextAttemptAt,
      failure.error,
      now,
      job,
      relPath,
    );
  }

  /**
   * Record that the retry time of pending files has come (they wait for a
   * free transfer slot now): their next attempt is due at once.
   */
  markDue(job: string, relPaths: string[]): void {
    const stmt = this.#stmt(
      "UPDATE files SET next_attempt_at = 0 WHERE job = ? AND rel_path = ? AND state = 'pending'",
    );
    this.transaction(() => {
      for (const p of relPaths) stmt.run(job, p);
    });
  }

  /**
   * Pending files whose next attempt was due before `dueBefore` (ms since
   * epoch) and has not started: a retry that did not fire, or a daemon that is
   * not running. Oldest first; all jobs unless `job` is given.
   */
  overdue(dueBefore: number, limit: number, job?: string): LedgerRow[] {
    const rows = this.#stmt(`
      SELECT * FROM files WHERE state = 'pending' AND next_attempt_at > 0 AND next_attempt_at < ?
        AND (? IS NULL OR job = ?)
      ORDER BY next_attempt_at LIMIT ?
    `).all(dueBefore, job ?? null, job ?? null, limit);
    return (rows as Row[]).map(toRow);
  }

  /** Forget a file (its source is gone before it was sent). */
  remove(job: string, relPath: string): void {
    this.#stmt("DELETE FROM files WHERE job = ? AND rel_path = ?").run(job, relPath);
  }

  /**
   * Put files of `job` in the given states back to pending with a fresh
   * attempt count: interrupted (`transferring`) and `failed` ones at start-up,
   * `failed` ones at a rescan.
   *
   * @returns how many rows changed
   */
  requeue(job: string, states: Array<"transferring" | "failed">, now = Date.now()): number {
    if (states.length === 0) return 0;
    const placeholders = states.map(() => "?").join(", ");
    const result = this.#stmt(`
      UPDATE files SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?
      WHERE job = ? AND state IN (${placeholders})
    `).run(now, job, ...states);
    return Number(result.changes);
  }

  /**
   * Put one failed file of `job` back to pending with a fresh attempt count.
   *
   * @returns 1 when it was failed, else 0
   */
  requeueFile(job: string, relPath: string, now = Date.now()): number {
    const result = this.#stmt(`
      UPDATE files SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?
      WHERE job = ? AND rel_path = ? AND state = 'failed'
    `).run(now, job, relPath);
    return Number(result.changes);
  }

  /** Every row of `job` that is not done (pending, transferring or failed). */
  unfinished(job: string): LedgerRow[] {
    const rows = this.#stmt("SELECT * FROM files WHERE job = ? AND state != 'done'").all(job);
    return (rows as Row[]).map(toRow);
  }

  /**
   * Done files of `job` that arrived at or before `arrivedBy` (ms since the
   * epoch): path and the size and mtime they were sent with.
   */
  doneArrivedBy(job: string, arrivedBy: number): Array<{ relPath: string } & DoneEntry> {
    const rows = this.#stmt(
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
    const rows = this.#stmt(`
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
    const rows = this.#stmt(
      "SELECT * FROM files WHERE job = ? AND state = 'done' AND substr(destination, 1, ?) = ?",
    ).all(job, night.length + 1, `${night}/`);
    return (rows as Row[]).map(toRow);
  }

  /** Every pending row of `job` (uses the state index: cheap with many done files). */
  pending(job: string): LedgerRow[] {
    const rows = this.#stmt("SELECT * FROM files WHERE job = ? AND state = 'pending'").all(job);
    return (rows as Row[]).map(toRow);
  }

  /** Number of files per job and state. */
  counts(): Array<{ job: string; state: FileState; count: number }> {
    const rows = this.#stmt(
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
    const rows = this.#stmt(
      "SELECT * FROM files WHERE state = 'done' ORDER BY transferred_at DESC LIMIT ?",
    ).all(limit);
    return (rows as Row[]).map(toRow);
  }

  /** Files with an error: failed ones, and pending ones waiting for a retry. */
  problems(limit: number): LedgerRow[] {
    const rows = this.#stmt(`
      SELECT * FROM files WHERE state = 'failed' OR (state = 'pending' AND last_error IS NOT NULL)
      ORDER BY updated_at DESC LIMIT ?
    `).all(limit);
    return (rows as Row[]).map(toRow);
  }

  /** Close the database. */
  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}
