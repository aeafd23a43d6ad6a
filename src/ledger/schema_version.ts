/**
 * The ledger's schema version, kept in SQLite's `PRAGMA user_version`. A
 * ledger written by an older image-transfer is migrated step by step when
 * the daemon opens it; one written by a newer image-transfer is refused, so
 * an older binary never misreads (or rewrites) a schema it does not know.
 *
 * Ledgers from before versioning have `user_version` 0 and the version 1
 * tables already, so step 1 (`CREATE TABLE IF NOT EXISTS`) only stamps them.
 * Step 2 makes the destination part of a file's identity.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** The schema version this build writes and understands. */
export const LEDGER_SCHEMA_VERSION = 2;

/**
 * Read a ledger's schema version.
 *
 * @param db the open database
 * @returns `PRAGMA user_version` (0 for a new file or one from before versioning)
 */
export function ledgerSchemaVersion(db: DatabaseSync): number {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
  return Number(row.user_version);
}

/**
 * Refuse a ledger written by a newer image-transfer.
 *
 * @param db the open database
 * @param path the ledger file, for the message
 * @returns the ledger's schema version
 * @throws {Error} saying which versions are involved and what to do
 */
export function assertLedgerReadable(db: DatabaseSync, path: string): number {
  const version = ledgerSchemaVersion(db);
  if (version > LEDGER_SCHEMA_VERSION) {
    throw new Error(
      `Cannot open the ledger ${path}: it was written by a newer image-transfer ` +
        `(ledger schema version ${version}; this version understands up to ` +
        `${LEDGER_SCHEMA_VERSION}). Run the newer image-transfer again, or move the ledger ` +
        "aside to start a new one (files already sent would then be sent again).",
    );
  }
  return version;
}

/**
 * Bring a ledger to {@linkcode LEDGER_SCHEMA_VERSION}, one step per version,
 * each in its own transaction together with its new `user_version`.
 *
 * @param db the database, opened for writing
 * @param path the ledger file, for messages
 * @param steps SQL for each version: `steps[0]` creates version 1, `steps[1]` turns 1 into 2, …
 * @throws {Error} for a ledger from a newer image-transfer (nothing is changed)
 */
export function migrateLedger(db: DatabaseSync, path: string, steps: readonly string[]): void {
  if (steps.length !== LEDGER_SCHEMA_VERSION) {
    throw new Error(
      `Cannot migrate the ledger: ${steps.length} migration steps for schema version ` +
        `${LEDGER_SCHEMA_VERSION}`,
    );
  }
  let version = assertLedgerReadable(db, path);
  while (version < LEDGER_SCHEMA_VERSION) {
    db.exec("BEGIN IMMEDIATE");
    try {
      // Re-read inside the transaction: another process may have migrated meanwhile.
      version = assertLedgerReadable(db, path);
      if (version < LEDGER_SCHEMA_VERSION) {
        db.exec(steps[version]);
        version += 1;
        db.exec(`PRAGMA user_version = ${version}`);
      }
      db.exec("COMMIT");
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
}

/** Schema version 1: files keyed by job and path. */
const SCHEMA_V1 = `
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

/**
 * Version 2: the destination is part of a file's identity (`target`); rows of
 * version 1 get `''` and are adopted by their job's destination when it starts.
 * `ledger_meta` holds facts about the ledger itself (when it was rebuilt).
 */
const SCHEMA_V2 = `
CREATE TABLE files_v2 (
  job TEXT NOT NULL,
  target TEXT NOT NULL,
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
  PRIMARY KEY (job, target, rel_path)
) WITHOUT ROWID;
INSERT INTO files_v2 (job, target, rel_path, size, mtime_ms, destination, state, attempts,
                      next_attempt_at, last_error, created_at, updated_at, transferred_at)
  SELECT job, '', rel_path, size, mtime_ms, destination, state, attempts, next_attempt_at,
         last_error, created_at, updated_at, transferred_at FROM files;
DROP TABLE files;
ALTER TABLE files_v2 RENAME TO files;
CREATE INDEX files_by_state ON files (job, target, state);
CREATE INDEX files_by_update ON files (updated_at);
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
`;

/** The steps to {@linkcode LEDGER_SCHEMA_VERSION}: `[0]` creates version 1, `[1]` turns 1 into 2. */
export const LEDGER_SCHEMA: readonly string[] = [SCHEMA_V1, SCHEMA_V2];
