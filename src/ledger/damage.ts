/**
 * What can be wrong with the ledger file itself, and setting a damaged one
 * aside: SQLite's word for a file that is not a (sound) database or whose
 * disk is full, the look at a ledger before it is opened, and the move to
 * `<name>.damaged-<time>` (said at ERROR) that lets a new one start.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { logger } from "../log/logging.ts";

/** SQLite's primary result codes this module acts on. */
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
const SQLITE_FULL = 13;

/** When and why the ledger was started anew (kept in the new ledger). */
export interface LedgerRebuild {
  /** When (ms since epoch): files older than this may be at the destination already. */
  at: number;
  /** What was wrong with the old one. */
  reason: string;
  /** Where the damaged file was moved. */
  damagedCopy: string;
}

/** What is wrong with the ledger file at `path` before it is opened, or `null`. */
export function damageAtStart(path: string): string | null {
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch {
    return null; // None yet.
  }
  // SQLite would take an empty file for a new database, forgetting every file sent.
  if (size === 0) return "it is 0 bytes long";
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path);
    db.exec("PRAGMA busy_timeout = 5000;");
    db.prepare("PRAGMA user_version").get();
    // Reads the schema; damage deeper in the file shows at the query that meets it.
    db.prepare("SELECT COUNT(*) FROM sqlite_master").get();
    return null;
  } catch (error) {
    if (isDamage(error)) return sqliteText(error);
    throw error;
  } finally {
    try {
      db?.close();
    } catch { /* damaged */ }
  }
}

/** Move the damaged ledger (and its WAL files) aside; say so at ERROR. */
export function setAside(path: string, reason: string): LedgerRebuild {
  const at = Date.now();
  const stamp = new Date(at).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const damagedCopy = `${path}.damaged-${stamp}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      Deno.renameSync(path + suffix, damagedCopy + suffix);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  logger("ledger").error(
    "The ledger {path} is damaged ({reason}); it was moved to {damagedCopy} and a new one " +
      "started. Files already at the destination are recognised there and not sent again",
    { path, reason, damagedCopy },
  );
  return { at, reason, damagedCopy };
}

/** Whether a SQLite error says the disk is full. */
export function isFull(error: unknown): boolean {
  const code = (error as { errcode?: number } | null)?.errcode;
  return typeof code === "number" ? (code & 0xff) === SQLITE_FULL : /is full/i.test(String(error));
}

/** Whether a SQLite error says the file is not a (sound) database. */
export function isDamage(error: unknown): boolean {
  const code = (error as { errcode?: number } | null)?.errcode;
  if (typeof code === "number") {
    const primary = code & 0xff;
    return primary === SQLITE_CORRUPT || primary === SQLITE_NOTADB;
  }
  return /malformed|not a database/i.test(sqliteText(error));
}

export function sqliteText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function damagedForReading(path: string, reason: string): Error {
  return new Error(
    `The ledger ${path} is damaged (${reason}). The daemon moves it aside and starts a new ` +
      "one when it next starts (files already at the destination are not sent again)",
  );
}
