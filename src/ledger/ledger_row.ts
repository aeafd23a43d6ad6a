/**
 * One row of the ledger's `files` table as the pipeline reads it ({@linkcode LedgerRow}): the
 * version of a source last recorded, where its copy went, where it stands, and the version whose
 * copy arrived there last (`sentSize`, `sentMtimeMs`: what a copy at the destination is told by
 * before it is replaced, see `pipeline/batch_items.ts`).
 *
 * @module
 */

/** Where a file stands. */
export type FileState = "pending" | "transferring" | "done" | "failed";

/** One source file as the ledger knows it, for one destination. */
export interface LedgerRow {
  job: string;
  /** The destination's identity (`destinationIdentity` in `destination_identity.ts`). */
  target: string;
  /** Path relative to the job's watch folder, `/` separators. */
  relPath: string;
  size: number;
  mtimeMs: number;
  /** Destination relative to the job's base path. */
  destination: string;
  state: FileState;
  /**
   * Failed attempts since the file last changed or was re-queued; once `done`, the attempts it
   * took, the one it arrived in included (what `/api/status` shows in `recent[].attempts`).
   */
  attempts: number;
  /** When the next attempt may start (ms since epoch); 0 = now. */
  nextAttemptAt: number;
  lastError: string | null;
  /** When this version was first recorded as complete (ms since epoch): it waits since then. */
  createdAt: number;
  updatedAt: number;
  /** When the file last arrived verified at `destination`; `null`: never, or not at this one. */
  transferredAt: number | null;
  /** The source's birth time at the version recorded (ms since epoch); `null`: not known. */
  bornMs: number | null;
  /**
   * Size and mtime (ms) of the version whose copy last arrived at `destination` (`size` and
   * `mtimeMs` are those of the version recorded last, a changed one waiting to go included);
   * `null`: not recorded (an arrival recorded by a ledger older than schema version 8).
   */
  sentSize: number | null;
  sentMtimeMs: number | null;
}

export type Row = Record<string, string | number | null>; // A raw database row.

/** A database row as a {@linkcode LedgerRow}. */
export function toRow(r: Row): LedgerRow {
  return {
    job: r.job as string,
    target: r.target as string,
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
    bornMs: r.born_ms == null ? null : Number(r.born_ms), // None in a ledger read as older.
    sentSize: r.sent_size == null ? null : Number(r.sent_size),
    sentMtimeMs: r.sent_mtime_ms == null ? null : Number(r.sent_mtime_ms),
  };
}

/**
 * Version 8: `sent_size` and `sent_mtime_ms` hold the version whose copy last arrived (kept when a
 * changed version is recorded pending), which a copy at the destination is compared with before a
 * re-send replaces it. An arrival recorded before: the version a done row records.
 */
export const SCHEMA_V8 = `
ALTER TABLE files ADD COLUMN sent_size INTEGER;
ALTER TABLE files ADD COLUMN sent_mtime_ms INTEGER;
UPDATE files SET sent_size = size, sent_mtime_ms = mtime_ms
  WHERE state = 'done' AND transferred_at IS NOT NULL;
`;
