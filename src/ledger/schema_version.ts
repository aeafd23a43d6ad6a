/**
 * The ledger's schema version, kept in SQLite's `PRAGMA user_version`. A
 * ledger written by an older image-transfer is migrated step by step when
 * the daemon opens it; one written by a newer image-transfer is refused, so
 * an older binary never misreads (or rewrites) a schema it does not know.
 *
 * Ledgers from before versioning have `user_version` 0 and the version 1
 * tables already, so step 1 (`CREATE TABLE IF NOT EXISTS`) only stamps them.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** The schema version this build writes and understands. */
export const LEDGER_SCHEMA_VERSION = 1;

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
