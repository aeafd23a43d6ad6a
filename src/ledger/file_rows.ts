/**
 * The file table of one job and destination: the ledger's rows of the files this job sends to
 * this destination (`target`), and every read and write the pipeline makes of them. A file sent to
 * one destination is not done for another: the destination's identity
 * ({@linkcode destinationIdentity}) is part of each row's key, so a trial run and a configured job
 * never hide files from each other, and a changed host or base path receives what it has not.
 *
 * Writes go through {@linkcode Ledger.write}: one that fails throws {@linkcode LedgerWriteError}
 * and the caller acts as if it did not happen. Statements are prepared inside the callbacks of
 * `read` and `write`, which run again on the new database when a damaged ledger was set aside.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { destinationIdentity } from "./destination_identity.ts";
import { type Ledger, LedgerWriteError } from "./ledger.ts";

export { type FileState, type LedgerRow, type Row, toRow } from "./ledger_row.ts";
import { type FileState, type LedgerRow, type Row, toRow } from "./ledger_row.ts";

/** Size and mtime of a file the ledger holds as done. */
export type DoneEntry = { size: number; mtimeMs: number };

/** Files of one job in one night folder and state (see {@linkcode FileRows.nightTotals}). */
export interface NightTotals {
  night: string;
  state: FileState;
  files: number;
  bytes: number;
  firstArrivalAt: number | null;
  lastArrivalAt: number | null;
}

/** A complete file to record as pending (`bornMs`: its birth time, where known). */
export type PendingFile = DoneEntry & {
  relPath: string;
  destination: string;
  bornMs?: number | null;
};

/** A failed attempt, as the ledger records it. */
export interface FailureRecord {
  error: string;
  attempts: number;
  nextAttemptAt: number;
  final: boolean;
}

/** Rows of a job in a state (to be named), through the state index, not the whole history. */
const OF_STATE =
  "SELECT * FROM files INDEXED BY files_by_state WHERE job = ? AND target IN (?, '') AND state";

/** The rows of one job and destination; see the module doc. */
export class FileRows {
  constructor(readonly ledger: Ledger, readonly job: string, readonly target: string) {}

  /** The table of `job` for the destination it sends to now. */
  static of(ledger: Ledger, job: JobConfig): FileRows {
    return new FileRows(ledger, job.name, destinationIdentity(job));
  }

  /** The row of one file, if any. */
  get(relPath: string): LedgerRow | undefined {
    const sql = "SELECT * FROM files WHERE job = ? AND target IN (?, '') AND rel_path = ?";
    const r = this.#read(sql, relPath);
    return r[0] ? toRow(r[0]) : undefined;
  }

  /** Where the files whose relative paths start with `prefix` went (a stretch of the key). */
  destinationsFrom(prefix: string): Array<{ relPath: string; destination: string }> {
    const sql = "SELECT rel_path, destination FROM files WHERE job = ? AND target IN (?, '') " +
      "AND rel_path >= ? AND rel_path < ?";
    return this.#read(sql, prefix, `${prefix}\u{10FFFF}`)
      .map((r) => ({ relPath: r.rel_path as string, destination: r.destination as string }));
  }

  /**
   * Size and mtime each of `relPaths` was sent with, where done for this destination (or, without
   * a row of its own, before destinations were recorded). One query, the paths as one JSON array
   * (a query per file cost five times as much with 100,000 files), the answers back in their order
   * as one JSON text (`[size, mtime]` or 0 each: no path, no row object, no map to find them by).
   */
  doneVersions(relPaths: string[]): Array<DoneEntry | undefined> {
    const [{ rows }] = this.#read(DONE_VERSIONS, JSON.stringify(relPaths));
    const done: Array<[number, number] | 0> = JSON.parse(rows as string);
    return done.map((row) => row === 0 ? undefined : { size: row[0], mtimeMs: row[1] });
  }

  /** {@linkcode doneVersions} of one path: one look by key, no JSON either way. */
  doneVersion(relPath: string): DoneEntry | undefined {
    const row = this.ledger.read(() =>
      this.ledger.statement(DONE_VERSION).get(this.job, this.target, relPath) as Row | undefined
    );
    return row === undefined
      ? undefined
      : { size: Number(row.size), mtimeMs: Number(row.mtime_ms) };
  }

  /** Whether each of `relPaths` is done, as {@linkcode doneVersions} finds it (no object a file). */
  doneAmong(relPaths: string[]): boolean[] {
    const [{ rows }] = this.#read(DONE_AMONG, JSON.stringify(relPaths));
    return (JSON.parse(rows as string) as number[]).map((done) => done === 1);
  }

  /**
   * Rows of this job from before destinations were part of a file's identity belong to this
   * destination (the one the job sends to now). @returns how many rows it adopted
   */
  adoptUnattributed(): number {
    const sql = "UPDATE OR IGNORE files SET target = ? WHERE job = ? AND target = ''";
    const result = this.ledger.write(() => this.ledger.statement(sql).run(this.target, this.job));
    return Number(result.changes);
  }

  /** Files done for another destination of this job that this one has not received. */
  doneElsewhereOnly(): number {
    // Two index seeks first: with one destination, a long history is not read at start.
    const other = this.ledger.read(() =>
      this.ledger.statement(
        "SELECT 1 FROM files WHERE job = ? AND target > ? LIMIT 1",
      ).get(this.job, this.target) ??
        this.ledger.statement(
          "SELECT 1 FROM files WHERE job = ? AND target < ? AND target > '' " +
            "ORDER BY target DESC LIMIT 1",
        ).get(this.job, this.target)
    );
    if (!other) return 0;
    const r = this.ledger.read(() =>
      this.ledger.statement(`
        SELECT COUNT(DISTINCT o.rel_path) AS n FROM files o
        WHERE o.job = ? AND o.target != ? AND o.target != '' AND o.state = 'done'
          AND NOT EXISTS (SELECT 1 FROM files t WHERE t.job = o.job AND t.target = ?
                          AND t.rel_path = o.rel_path AND t.state = 'done')
      `).get(this.job, this.target, this.target) as Row
    );
    return Number(r.n);
  }

  /**
   * Record a complete file as pending: a new size or mtime starts over (attempts 0, no error), an
   * unchanged pending or failed file keeps its attempts and last error; a new destination has no
   * arrival yet (the earlier copy's name is not this one's, see `pipeline/batch_items.ts`). @returns its failed
   * attempts so far @throws {LedgerWriteError} when it could not be recorded
   */
  enqueue(relPath: string, file: Omit<PendingFile, "relPath">, now = Date.now()): number {
    return this.enqueueAll([{ relPath, ...file }], now)[0];
  }

  /** {@linkcode enqueue} for several files (a burst's) in one transaction, all or none. */
  enqueueAll(files: PendingFile[], now = Date.now()): number[] {
    const key = [this.job, this.target] as const;
    return this.ledger.write(() => {
      const upsert = this.ledger.statement(`
        INSERT INTO files (job, target, rel_path, size, mtime_ms, destination, state, attempts,
                           next_attempt_at, last_error, created_at, updated_at, born_ms)
        VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, 0, NULL, ?, ?, ?)
        ON CONFLICT (job, target, rel_path) DO UPDATE SET
          attempts = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms
                          AND state != 'done' THEN attempts ELSE 0 END,
          last_error = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms
                            AND state != 'done' THEN last_error ELSE NULL END,
          created_at = CASE WHEN size = excluded.size AND mtime_ms = excluded.mtime_ms
                            AND state != 'done' THEN created_at ELSE excluded.created_at END,
          transferred_at = CASE WHEN destination = excluded.destination THEN transferred_at END,
          size = excluded.size, mtime_ms = excluded.mtime_ms, destination = excluded.destination,
          state = 'pending', next_attempt_at = 0, updated_at = excluded.updated_at,
          born_ms = excluded.born_ms
        RETURNING attempts
      `);
      return files.map((f) => {
        const { relPath, size, mtimeMs, destination, bornMs = null } = f;
        const row = upsert.get(...key, relPath, size, mtimeMs, destination, now, now, bornMs);
        return Number((row as Row).attempts);
      });
    });
  }

  /** Mark files as being sent right now. @throws {LedgerWriteError} */
  markTransferring(relPaths: string[], now = Date.now()): void {
    this.ledger.write(() => {
      const stmt = this.ledger.statement(
        "UPDATE files SET state = 'transferring', updated_at = ? " +
          "WHERE job = ? AND target = ? AND rel_path = ?",
      );
      for (const p of relPaths) stmt.run(now, this.job, this.target, p);
    });
  }

  /**
   * Mark files as arrived and verified, all or none: the row is written whole
   * (whatever was recorded before), so an arrival is never lost to a row that
   * is missing. `attempts`: those it took, the one it arrived in included (0 when not told).
   *
   * @throws {LedgerWriteError} when they could not be recorded (none is)
   */
  markDone(
    files: Array<
      { relPath: string; size: number; mtimeMs: number; destination: string; attempts?: number }
    >,
    now = Date.now(),
  ): void {
    if (files.length === 0) return;
    this.ledger.write(() => {
      const stmt = this.ledger.statement(`
        INSERT INTO files (job, target, rel_path, size, mtime_ms, destination, state, attempts,
                           next_attempt_at, last_error, created_at, updated_at, transferred_at,
                           sent_size, sent_mtime_ms)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'done', ?8, 0, NULL, ?7, ?7, ?7, ?4, ?5)
        ON CONFLICT (job, target, rel_path) DO UPDATE SET
          size = excluded.size, mtime_ms = excluded.mtime_ms, destination = excluded.destination,
          state = 'done', attempts = excluded.attempts, next_attempt_at = 0, last_error = NULL,
          updated_at = excluded.updated_at, transferred_at = excluded.transferred_at,
          sent_size = excluded.size, sent_mtime_ms = excluded.mtime_ms
      `);
      for (const f of files) {
        const { relPath, size, mtimeMs, destination, attempts = 0 } = f;
        stmt.run(this.job, this.target, relPath, size, mtimeMs, destination, now, attempts);
      }
    });
  }

  /**
   * Record a failed attempt: back to pending with a next attempt time, or
   * `failed` when `final`. @throws {LedgerWriteError}
   */
  recordFailure(relPath: string, failure: FailureRecord, now = Date.now()): void {
    const { attempts, nextAttemptAt: next, error } = failure;
    const state = failure.final ? "failed" : "pending";
    this.ledger.write(() =>
      this.ledger.statement(`
        UPDATE files SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ?
        WHERE job = ? AND target = ? AND rel_path = ?
      `).run(state, attempts, next, error, now, this.job, this.target, relPath)
    );
  }

  /** The retry time of pending files has come: their next attempt is due at once. */
  markDue(relPaths: string[]): void {
    this.ledger.write(() => {
      const stmt = this.ledger.statement(
        "UPDATE files SET next_attempt_at = 0 " +
          "WHERE job = ? AND target = ? AND rel_path = ? AND state = 'pending'",
      );
      for (const p of relPaths) stmt.run(this.job, this.target, p);
    });
  }

  /** Forget a file (to be sent again); `gone` (its source went before it was sent again): a row
   * whose copy arrived before stays, done (the copy holds its name), its version not known (the
   * row holds the one to be sent; mtime -1): no file is taken as sent, nor cleaned up, for it. */
  remove(relPath: string, gone = false): void {
    const key = [this.job, this.target, relPath];
    const where = "WHERE job = ? AND target = ? AND rel_path = ?";
    const [kept, unknown] = [" AND transferred_at IS NULL", "state = 'done', mtime_ms = -1"];
    this.ledger.write(() => {
      this.ledger.statement(`DELETE FROM files ${where}${gone ? kept : ""}`).run(...key);
      if (gone) this.ledger.statement(`UPDATE files SET ${unknown} ${where}`).run(...key);
    });
  }

  /** Put files in `states` back to pending with a fresh attempt count; returns how many changed. */
  requeue(states: Array<"transferring" | "failed">, now = Date.now()): number {
    if (states.length === 0) return 0;
    const placeholders = states.map(() => "?").join(", ");
    const result = this.ledger.write(() =>
      this.ledger.statement(`
        UPDATE files INDEXED BY files_by_state SET state = 'pending', attempts = 0,
          next_attempt_at = 0, updated_at = ? WHERE job = ? AND target = ?
          AND state IN (${placeholders})
      `).run(now, this.job, this.target, ...states)
    );
    return Number(result.changes);
  }

  /** Put one failed file back to pending with a fresh attempt count. @returns 1 if it was failed */
  requeueFile(relPath: string, now = Date.now()): number {
    const result = this.ledger.write(() =>
      this.ledger.statement(`
        UPDATE files SET state = 'pending', attempts = 0, next_attempt_at = 0, updated_at = ?
        WHERE job = ? AND target = ? AND rel_path = ? AND state = 'failed'
      `).run(now, this.job, this.target, relPath)
    );
    return Number(result.changes);
  }

  /**
   * Done files chosen to be sent again: those in night folder `night`
   * (`YYYYMMDD`), those that arrived between `arrivedFrom` and `arrivedTo`
   * (ms since the epoch), all when nothing is given; `matches` filters paths.
   */
  doneChosen(
    choice: { night?: string; arrivedFrom?: number; arrivedTo?: number },
    matches: (relPath: string) => boolean = () => true,
  ): LedgerRow[] {
    return this.#read(
      `SELECT * FROM files WHERE job = ?1 AND target IN (?2, '') AND state = 'done'
         AND (?3 IS NULL OR substr(destination, 1, 9) = ?3 || '/')
         AND (?4 IS NULL OR transferred_at >= ?4) AND (?5 IS NULL OR transferred_at < ?5)
       ORDER BY rel_path`,
      choice.night ?? null,
      choice.arrivedFrom ?? null,
      choice.arrivedTo ?? null,
    ).map(toRow).filter((row) => matches(row.relPath));
  }

  /**
   * Send done files again on purpose: they are pending again with no
   * attempts (a running daemon takes them up within a minute, else the next start).
   *
   * @returns how many were done and are pending now
   */
  sendAgain(relPaths: string[], now = Date.now()): number {
    return this.ledger.write(() => {
      const stmt = this.ledger.statement(`
        UPDATE files SET state = 'pending', attempts = 0, next_attempt_at = 0, last_error = NULL,
          updated_at = ? WHERE job = ? AND target = ? AND rel_path = ? AND state = 'done'
      `);
      const changes = relPaths.map((p) => stmt.run(now, this.job, this.target, p).changes);
      return changes.reduce((sum: number, n) => sum + Number(n), 0);
    });
  }

  /** Every row not done (pending, transferring, failed), through the state index, oldest first. */
  unfinished(): LedgerRow[] {
    return this.#read(`${OF_STATE} IN ('pending', 'transferring', 'failed')`).map(toRow)
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * When a file of this job last arrived at this destination (ms since epoch: a done row's
   * `updated_at`, read from the end of that index once the state index found one), or `null`.
   */
  lastArrival(): number | null {
    if (this.#read(`${OF_STATE} = 'done' LIMIT 1`).length === 0) return null;
    const [last] = this.#read(
      "SELECT updated_at FROM files INDEXED BY files_by_update WHERE job = ? AND target IN (?, '') " +
        "AND state = 'done' ORDER BY updated_at DESC LIMIT 1",
    );
    return last ? Number(last.updated_at) : null;
  }

  /** Every row in `state` (uses the state index: cheap with many done files). */
  inState(state: "pending" | "failed"): LedgerRow[] {
    return this.#read(`${OF_STATE} = ?`, state).map(toRow);
  }

  /** Done files arrived at or before `arrivedBy` (ms since the epoch), with the version sent. */
  doneArrivedBy(arrivedBy: number): Array<{ relPath: string; destination: string } & DoneEntry> {
    return this.#read(
      "SELECT rel_path, destination, size, mtime_ms FROM files WHERE job = ? " +
        "AND target IN (?, '') AND state = 'done' AND transferred_at <= ? ORDER BY transferred_at",
      arrivedBy,
    ).map((r) => ({
      relPath: r.rel_path as string,
      destination: r.destination as string,
      size: Number(r.size),
      mtimeMs: Number(r.mtime_ms),
    }));
  }

  /** Per night folder (the destination's first part): files, bytes, first and last arrival. */
  nightTotals(): NightTotals[] {
    return this.#read(`
      SELECT CASE WHEN instr(destination, '/') > 0
                  THEN substr(destination, 1, instr(destination, '/') - 1) ELSE '' END AS night,
             state, COUNT(*) AS n, SUM(size) AS bytes,
             MIN(transferred_at) AS first_at, MAX(transferred_at) AS last_at
      FROM files WHERE job = ? AND target IN (?, '') AND destination != '' GROUP BY night, state
    `).map((r) => ({
      night: r.night as string,
      state: r.state as FileState,
      files: Number(r.n),
      bytes: Number(r.bytes ?? 0),
      firstArrivalAt: r.first_at === null ? null : Number(r.first_at),
      lastArrivalAt: r.last_at === null ? null : Number(r.last_at),
    }));
  }

  /** Done files whose destination lies in the night folder `night`. */
  doneInNight(night: string): LedgerRow[] {
    const sql = "SELECT * FROM files WHERE job = ? AND target IN (?, '') AND state = 'done' " +
      "AND substr(destination, 1, ?) = ?";
    return this.#read(sql, night.length + 1, `${night}/`).map(toRow);
  }

  /** Rows of a query on this job and destination (`target` `''`: an older ledger's rows). */
  #read(sql: string, ...params: Array<string | number | null>): Row[] {
    return this.ledger.read(() =>
      this.ledger.statement(sql).all(this.job, this.target, ...params) as Row[]
    );
  }
}

/** The done row of `asked.value`: this destination's (`?2`), or one from before destinations. */
const DONE_ROW = (target: string) =>
  `FROM files WHERE job = ?1 AND target = ${target} AND rel_path = asked.value AND state = 'done'`;
/** {@linkcode FileRows.doneVersions}: each asked path's `[size, mtime]` in order, or 0. */
const DONE_VERSIONS = "SELECT json_group_array(coalesce(" +
  `(SELECT json_array(size, mtime_ms) ${DONE_ROW("?2")}), ` +
  `(SELECT json_array(size, mtime_ms) ${DONE_ROW("''")}), 0) ORDER BY asked.key) AS rows ` +
  "FROM json_each(?3) AS asked";
/** {@linkcode FileRows.doneVersion}: this destination's done row, else one from before destinations. */
const DONE_VERSION = "SELECT size, mtime_ms FROM files WHERE job = ?1 AND target IN (?2, '') " +
  "AND rel_path = ?3 AND state = 'done' ORDER BY target = '' LIMIT 1";
/** {@linkcode FileRows.doneAmong}: 1 for each asked path with a done row, in order, else 0. */
const DONE_AMONG = "SELECT json_group_array(" +
  `EXISTS (SELECT 1 ${DONE_ROW("?2")}) OR EXISTS (SELECT 1 ${DONE_ROW("''")}) ` +
  "ORDER BY asked.key) AS rows FROM json_each(?3) AS asked";

/** Run a write whose failure the ledger's problem state covers already; whether it was written. */
export function writeIfWritable(write: () => unknown): boolean {
  try {
    write();
    return true;
  } catch (error) {
    if (error instanceof LedgerWriteError) return false;
    throw error;
  }
}
