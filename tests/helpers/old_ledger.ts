/**
 * Ledgers as an older image-transfer left them, built with SQLite directly.
 *
 * @module
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LEDGER_FILE } from "../../src/ledger/ledger_check.ts";
import { ledgerSchemaVersion } from "../../src/ledger/ledger_file.ts";

/**
 * A new state folder (in a temporary `root`) and a connection to its ledger file, in WAL mode as
 * the daemon keeps it, holding nothing yet: the caller writes an older schema and rows.
 */
export async function rawLedger(prefix: string) {
  const root = await Deno.makeTempDir({ prefix });
  const stateDir = join(root, "state");
  await Deno.mkdir(stateDir);
  const path = join(stateDir, LEDGER_FILE);
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode = WAL;");
  return { root, stateDir, path, db };
}

/** The schema version of the ledger file at `path` (read without changing it). */
export function userVersion(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return ledgerSchemaVersion(db);
  } finally {
    db.close();
  }
}
