/**
 * What can be wrong with the ledger file itself, before it is opened or
 * while it is read as it is: the look at a ledger before the daemon opens it
 * (0 bytes, not a database, a schema SQLite cannot read), the move of a
 * damaged one to `<name>.damaged-<time>` (said at ERROR) that lets a new one
 * start, and a ledger that was lost (removed), said at ERROR too, the new one
 * counting as rebuilt. And opening the ledger to read it as it is, changing
 * nothing (`status`, `resend --dry-run`, `doctor`), also where its folder
 * cannot be written.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { logger } from "../log/logging.ts";
import { LOCK_FILE, lockSaysLedgerMade } from "./daemon_lock.ts";
import { whyUnwritable } from "./state_files.ts";
import { assertLedgerReadable, isDamage, sqliteText } from "./ledger_file.ts";
import { mergeSshIdentities } from "./destination_identity.ts";

/**
 * A version 1 ledger read as version 2: its files copied into a temporary table (with the indexes
 * the reports use), nothing written to it.
 */
const VERSION_1_AS_2 = `
CREATE TEMP TABLE files AS
  SELECT job, '' AS target, rel_path, size, mtime_ms, destination, state, attempts,
         next_attempt_at, last_error, created_at, updated_at, transferred_at FROM main.files;
CREATE INDEX temp.files_by_state ON files (job, target, state);
CREATE INDEX temp.files_by_update ON files (updated_at);
`;

/** The counts of an older ledger read as it is (read-only): counted when asked. */
const COUNTS_OF_OLDER_LEDGER = `
CREATE TEMP VIEW IF NOT EXISTS file_counts AS
  SELECT job, target, state, COUNT(*) AS n FROM files GROUP BY job, target, state;
`;

/**
 * The tables a ledger older than version 5 (`hooks_due`) or 6 (`copies_unconfirmed`) does not have,
 * empty: no hook was owed nor copy left unconfirmed in its time.
 */
const LATER_TABLES = [
  `CREATE TEMP TABLE hooks_due (job TEXT NOT NULL, target TEXT NOT NULL, rel_path TEXT NOT NULL,
     destination TEXT NOT NULL, size INTEGER NOT NULL, mtime_ms INTEGER NOT NULL, sha256 TEXT,
     PRIMARY KEY (job, target, rel_path)) WITHOUT ROWID;`,
  `CREATE TEMP TABLE copies_unconfirmed (job TEXT NOT NULL, target TEXT NOT NULL,
     rel_path TEXT NOT NULL, destination TEXT NOT NULL, PRIMARY KEY (job, target, rel_path))
     WITHOUT ROWID;`,
];

/**
 * A version 2 or 3 ledger read as version 4: its files and job names copied into temporary tables
 * (which its own are hidden behind) and merged there as the step to version 4 merges them, with
 * their counts. Costs a pass over the ledger, until the daemon next starts and migrates it.
 */
const VERSION_3_AS_4 = `
CREATE TEMP TABLE files AS SELECT * FROM main.files;
CREATE UNIQUE INDEX temp.files_key ON files (job, target, rel_path);
CREATE INDEX temp.files_by_state ON files (job, target, state);
CREATE INDEX temp.files_by_update ON files (updated_at);
CREATE TEMP TABLE ledger_meta AS SELECT * FROM main.ledger_meta;
CREATE UNIQUE INDEX temp.ledger_meta_key ON ledger_meta (key);
`;
const COUNTS_OF_VERSION_3_AS_4 = `
CREATE TEMP TABLE file_counts AS
  SELECT job, target, state, COUNT(*) AS n FROM files GROUP BY job, target, state;
`;

/** An older ledger read as version 4 ({@linkcode VERSION_3_AS_4}), in temporary tables only. */
function readAsVersion4(db: DatabaseSync): void {
  inTemporaryTables(db, () => {
    db.exec(VERSION_3_AS_4);
    mergeSshIdentities(db);
    db.exec(COUNTS_OF_VERSION_3_AS_4);
  });
}

/**
 * Run `writes`, which write temporary tables and views only, on a connection made query-only (a
 * copy in memory, or one that may write: see {@linkcode openToRead}), which refuses those too.
 */
function inTemporaryTables(db: DatabaseSync, writes: (db: DatabaseSync) => void): void {
  const only = Number(Object.values(db.prepare("PRAGMA query_only").get() ?? {})[0] ?? 0);
  if (only) db.exec("PRAGMA query_only = 0");
  try {
    writes(db);
  } finally {
    if (only) db.exec("PRAGMA query_only = 1");
  }
}

/** When and why the ledger was started anew (kept in the new ledger). */
export interface LedgerRebuild {
  /** When (ms since epoch): files older than this may be at the destination already. */
  at: number;
  /** What was wrong with the old one. */
  reason: string;
  /** Where the damaged file was moved. */
  damagedCopy: string;
}

/** The rebuild a ledger records in its meta (`meta`: a key's value, or `null`), or `null`. */
export function recordedRebuild(meta: (key: string) => string | null): LedgerRebuild | null {
  const at = Number(meta("rebuilt_at"));
  if (!Number.isFinite(at) || at <= 0) return null;
  return { at, reason: meta("rebuilt_reason") ?? "", damagedCopy: meta("damaged_copy") ?? "" };
}

/**
 * What is found at the ledger's place when the daemon starts, and so what it does with it:
 * `none` (a first start: a new ledger), `sound` (opened as it is), `lost` (missing beside the
 * `daemon.lock` of an earlier run: a new one, counted as rebuilt) or `damaged` (set aside, and a
 * new one counted as rebuilt).
 */
export type LedgerFound =
  | { kind: "none" | "sound" }
  | { kind: "lost" | "damaged"; reason: string };

/** File name of the ledger database inside `state_dir`. */
export const LEDGER_FILE = "ledger.sqlite";

/**
 * {@linkcode judgeLedger} for the ledger in `stateDir`, as the next `run` with it would judge it
 * (for `status` and `run --dry-run`).
 */
export function judgeStateDir(stateDir: string): { path: string; found: LedgerFound } {
  const path = join(stateDir, LEDGER_FILE);
  return { path, found: judgeLedger(path, daemonRanIn(stateDir), true) };
}

/** Why a ledger missing at start counts as lost. */
const LOST_AT_START = "it was missing, although the daemon ran with this state_dir before";

/**
 * Whether a daemon ran with `stateDir` before and made its ledger there: every run leaves its
 * `daemon.lock` (look before taking the lock), which says once the ledger is made
 * (`lockSaysLedgerMade`). A ledger missing beside it was lost. A lock that is empty (a start that
 * could not write its first page: a full disk), or says no ledger was made (a first start killed
 * before), tells of no run.
 */
export function daemonRanIn(stateDir: string): boolean {
  try {
    return lockSaysLedgerMade(join(stateDir, LOCK_FILE));
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

/**
 * Judge the ledger at `path` as the daemon does when it starts: the one place that decides it,
 * for `run` (which acts on it: `Ledger.open`) and for `status` and `run --dry-run` (which say
 * what `run` would do: {@linkcode whatRunDoes}). Reads only, through a read-only connection.
 * `thorough` (`status`, `run --dry-run`) also checks every page (SQLite's `quick_check`), so that
 * damage the start does not see, and that `run` meets only when a query reads it, is said too; the
 * start does not (about 1 s for a year of 1,000,000 files: a start must not grow with the history).
 *
 * @param ranBefore a daemon ran with this state_dir before ({@linkcode daemonRanIn})
 * @throws when the ledger cannot be read at all (said with the file, why and what to do)
 */
export function judgeLedger(path: string, ranBefore: boolean, thorough = false): LedgerFound {
  if (!existsSync(path)) {
    return ranBefore ? { kind: "lost", reason: LOST_AT_START } : { kind: "none" };
  }
  const info = Deno.statSync(path);
  assertLedgerIsFile(path, info);
  // A first start killed while it made the ledger (SQLite's first page not written yet).
  if (!ranBefore && info.size === 0) return { kind: "none" };
  const reason = damageAtStart(path, thorough);
  return reason === null ? { kind: "sound" } : { kind: "damaged", reason };
}

/**
 * What `run` does with the ledger at `path` that was found so (see {@linkcode judgeLedger}), in a
 * sentence for `status` and `run --dry-run`; `null` when it opens it as it is or makes a first one.
 */
export function whatRunDoes(path: string, found: LedgerFound): string | null {
  if (!("reason" in found)) return null;
  const what = found.kind === "lost"
    ? `is lost (${found.reason}): image-transfer run starts a new one`
    : `is damaged (${found.reason}): image-transfer run moves it to ${path}.damaged-<time> ` +
      "(at its start, or when a query meets the damage) and starts a new one";
  return `The ledger ${path} ${what}; a file already at its destination with its size is ` +
    "recorded as sent there, not sent again";
}

/** What is wrong with the ledger file at `path` (see {@linkcode judgeLedger}), or `null`. */
function damageAtStart(path: string, thorough: boolean): string | null {
  // SQLite would take an empty file for a new database, forgetting every file sent.
  if (Deno.statSync(path).size === 0) return "it is 0 bytes long";
  let db: DatabaseSync | undefined;
  try {
    db = openToRead(path);
    db.prepare("SELECT COUNT(*) FROM sqlite_master").get();
    if (!thorough) return null;
    const check = db.prepare("PRAGMA quick_check(1)").get() as Record<string, unknown>;
    const said = String(Object.values(check)[0] ?? "");
    if (said === "ok") return null;
    const first = said.split("\n").find((line) => !/^\*\*\* in database/.test(line));
    return `SQLite's quick_check: ${first ?? said}`;
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

/** The error that says the ledger at `path` is damaged and what `run` does about it. */
/**
 * @throws when what stands at the ledger's `path` is not a file (a folder made there by hand, which
 * SQLite would only call a "disk I/O error"), saying what to do
 */
function assertLedgerIsFile(path: string, info: Deno.FileInfo): void {
  if (info.isFile) return;
  throw new Error(
    `Cannot open the ledger ${path}: it is ${info.isDirectory ? "a folder" : "not a file"}, ` +
      `not the ledger; move it out of ${dirname(path)} (image-transfer run then starts a new ` +
      "ledger there), or give another state_dir",
  );
}

function damagedForReading(path: string, reason: string): Error {
  return new Error(whatRunDoes(path, { kind: "damaged", reason })!);
}

/**
 * Open the ledger at `path` to read it as it is, changing nothing (an older one is read as it is;
 * the daemon migrates it when it next starts).
 *
 * @returns the database, or `null` when there is no ledger yet
 * @throws when it is damaged, or was written by a newer image-transfer
 */
export function openForReading(path: string): DatabaseSync | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return null;
  }
  assertLedgerIsFile(path, info);
  if (info.size === 0) throw damagedForReading(path, "it is 0 bytes long");
  let db: DatabaseSync | undefined;
  try {
    db = openToRead(path);
    const version = assertLedgerReadable(db, path);
    if (version < 2) {
      inTemporaryTables(db, (db) => db.exec(VERSION_1_AS_2 + COUNTS_OF_OLDER_LEDGER));
    } else if (version < 4) readAsVersion4(db);
    if (version < 6) {
      inTemporaryTables(db, (db) => db.exec(LATER_TABLES.slice(version < 5 ? 0 : 1).join("")));
    }
    db.prepare("SELECT COUNT(*) FROM sqlite_master").get();
  } catch (error) {
    db?.close();
    if (isDamage(error)) throw damagedForReading(path, sqliteText(error));
    throw error;
  }
  return db;
}

/**
 * SQLite's connection to the ledger at `path` that changes nothing in it. A ledger in WAL mode is
 * read through the journal (`-wal`) and its index (`-shm`), which SQLite makes in its folder. A
 * read leaves the folder as it found it: where neither is there (no daemon has the ledger open, and
 * the last stopped cleanly), the connection may write (told to write nothing: `query_only`), so
 * that at its close, the last one open, SQLite removes the two it made (a read-only connection
 * may not, and left them behind); a daemon that opened the ledger meanwhile keeps them, as SQLite
 * removes them only when no other connection has the ledger open. Where they are there (a daemon's
 * that runs, or one killed: a journal not copied into the ledger yet), a read-only connection
 * reads through them and leaves them as they are. Where the folder cannot be written (a read-only
 * mount) and there is no journal, the ledger alone is all there is, and a copy of it in memory is
 * read. (SQLite's `immutable=1` would read the file itself, but the runtime takes a `file:` URI
 * for a file name unless every permission is given.)
 *
 * @throws saying which file, why and what to do, when neither way can read it
 */
function openToRead(path: string): DatabaseSync {
  const alone = !existsSync(`${path}-wal`) && !existsSync(`${path}-shm`);
  let db = new DatabaseSync(path, { readOnly: !alone, timeout: 5000 });
  try {
    if (alone) db.exec("PRAGMA query_only = 1");
    db.prepare("PRAGMA user_version").get(); // SQLite opens the file at the first query.
    return db;
  } catch (error) {
    db.close();
    if (!/unable to open/i.test(sqliteText(error))) throw error;
    let journal = 0;
    try {
      journal = Deno.statSync(`${path}-wal`).size;
    } catch { /* none */ }
    if (journal === 0) {
      db = new DatabaseSync(":memory:");
      try {
        const bytes = Deno.readFileSync(path);
        // Bytes 18 and 19 of the header say WAL mode (2): a copy in memory has no journal (1).
        if (bytes.length > 19 && bytes[18] === 2 && bytes[19] === 2) bytes.fill(1, 18, 20);
        db.deserialize(bytes);
        db.exec("PRAGMA query_only = 1"); // Read-only like the file: a write is refused.
        db.prepare("PRAGMA user_version").get();
        return db;
      } catch {
        db.close(); // Said below, as the first failure.
      }
    }
    throw new Error(
      `Cannot read the ledger ${path}: ${sqliteText(error)} (${whyUnreadable(path, journal)})`,
      { cause: error },
    );
  }
}

/** Why SQLite could not open the ledger at `path` to read it, and what to do, in words. */
function whyUnreadable(path: string, journal: number): string {
  try {
    Deno.openSync(path, { read: true }).close();
  } catch (error) {
    return `${whyUnwritable(error)}; run this as the user the daemon runs as`;
  }
  let folder = "its folder cannot be written";
  try {
    Deno.openSync(path, { read: true, write: true }).close();
  } catch (error) {
    folder = `its folder cannot be written: ${whyUnwritable(error)}`;
  }
  if (journal === 0) return `${folder}; make ${dirname(path)} writable and try again`;
  return `${folder}, and its journal ${path}-wal holds writes not yet copied into it, which ` +
    `SQLite reads only with the journal's index ${path}-shm, made there; make ${
      dirname(path)
    } writable (mount it read-write) and try again`;
}

/** Whether `path` exists (a broken link or an unreadable folder counts as there). */
export function existsSync(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    return !(error instanceof Deno.errors.NotFound);
  }
}

/** The ledger at `path` is gone (`reason`): said at ERROR; the new one counts as rebuilt. */
export function lost(path: string, reason: string): LedgerRebuild {
  logger("ledger").error(
    "The ledger {path} is lost ({reason}); a new one is started. Files already at the " +
      "destination are recognised there and not sent again",
    { path, reason },
  );
  return { at: Date.now(), reason, damagedCopy: "" };
}
