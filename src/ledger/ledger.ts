/**
 * The ledger: durable state of every source file, in SQLite (WAL) under
 * `state_dir`. It is the single source of truth the other stages read and
 * write: what is done is never sent again, what was pending or interrupted is
 * resumed after a restart. The queries are in `ledger_reader.ts`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { LedgerReader, type Row } from "./ledger_reader.ts";
import { assertLedgerReadable, migrateLedger } from "./schema_version.ts";

export type { DoneEntry, FileState, LedgerRow, NightTotals } from "./ledger_reader.ts";

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

/** Durable per-file state. Open with {@linkcode Ledger.open}; close when done. */
export class Ledger extends LedgerReader {
  private constructor(path: string, db: DatabaseSync) {
    super(path, db);
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

  /** Run `fn` in one transaction (much faster for many writes). */
  transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
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
    const row = this.stmt(`
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
    const stmt = this.stmt(
      "UPDATE files SET state = 'transferring', updated_at = ? WHERE job = ? AND rel_path = ?",
    );
    this.transaction(() => {
      for (const p of relPaths) stmt.run(now, job, p);
    });
  }

  /** Mark a file as arrived and verified. */
  markDone(job: string, relPath: string, now = Date.now()): void {
    this.stmt(`
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
    this.stmt(`
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
    const stmt = this.stmt(
      "UPDATE files SET next_attempt_at = 0 WHERE job = ? AND rel_path = ? AND state = 'pending'",
    );
    this.transaction(() => {
      for (const p of relPaths) stmt.run(job, p);
    });
  }

  /** Forget a file (its source is gone before it was sent). */
  remove(job: string, relPath: string): void {
    this.stmt("DELETE FROM files WHERE job = ? AND rel_path = ?").run(job, relPath);
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
    const result = this.stmt(`
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
    const result = this.stmt(`
      UPDATE files SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?
      WHERE job = ? AND rel_path = ? AND state = 'failed'
    `).run(now, job, relPath);
    return Number(result.changes);
  }
}
