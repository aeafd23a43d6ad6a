/**
 * The ledger file: its schema version, kept in SQLite's `PRAGMA user_version`. A
 * ledger written by an older image-transfer is migrated step by step when
 * the daemon opens it; one written by a newer image-transfer is refused, so
 * an older binary never misreads (or rewrites) a schema it does not know.
 *
 * Ledgers from before versioning have `user_version` 0 and the version 1
 * tables already, so step 1 (`CREATE TABLE IF NOT EXISTS`) only stamps them.
 * Step 2 makes the destination part of a file's identity; step 3 keeps the
 * count of files per state in a table of its own; step 4 gives scp and rsync
 * one destination identity (`destination_identity.ts`); step 5 keeps the
 * `on_transfer` hooks still owed (`due_hooks.ts`); step 6 keeps the copies
 * put in place but not confirmed on the server's disk (`unconfirmed_copies.ts`); step 7 the
 * source's birth time; step 8 the version whose copy arrived (`ledger_row.ts`).
 *
 * Opening it for the daemon, SQLite's words for what goes wrong (a file that
 * is not a (sound) database, a full disk, a read-only connection), and the
 * room its disk must have; the state folder's files kept private. What is found at its place before it is opened,
 * and reading it as it is: `ledger_check.ts`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { localDiskSpaceSync } from "../config/free_space.ts";
import { formatBytes } from "../config/sizes.ts";
import { logger } from "../log/logging.ts";
import { EARLIER_NAMES_KEY, ID_DUE, LAST_SCHEMA_WITHOUT_ID, whyUnwritable } from "./state_files.ts";
import { mergeSshIdentities } from "./destination_identity.ts";
import { SCHEMA_V8 } from "./ledger_row.ts";

/** The schema version this build writes and understands. */
export const LEDGER_SCHEMA_VERSION = 8;

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
        "aside to start a new one: files found at their destination are then recorded as " +
        "sent, not sent again; only files still in the watch folder whose copy is no longer " +
        "at the destination would be sent again.",
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
 * @param steps SQL (or a function run in the transaction) for each version: `steps[0]` creates
 *   version 1, `steps[1]` turns 1 into 2, ...
 * @throws {Error} for a ledger from a newer image-transfer (nothing is changed)
 */
export function migrateLedger(
  db: DatabaseSync,
  path: string,
  steps: readonly MigrationStep[],
): void {
  if (steps.length !== LEDGER_SCHEMA_VERSION) {
    throw new Error(
      `Cannot migrate the ledger: ${steps.length} migration steps for schema version ` +
        `${LEDGER_SCHEMA_VERSION}`,
    );
  }
  let version = assertLedgerReadable(db, path);
  const from = version;
  if (version >= 1 && version < LEDGER_SCHEMA_VERSION) {
    logger("ledger").info(
      "Upgrading the ledger {path} from schema version {from} to {to}, once (a long history takes a while; stopped meanwhile, it is done again at the next start)",
      { path, from: version, to: LEDGER_SCHEMA_VERSION },
    );
  }
  while (version < LEDGER_SCHEMA_VERSION) {
    db.exec("BEGIN IMMEDIATE");
    try {
      // Re-read inside the transaction: another process may have migrated meanwhile.
      version = assertLedgerReadable(db, path);
      if (version < LEDGER_SCHEMA_VERSION) {
        const step = steps[version];
        if (typeof step === "string") db.exec(step);
        else step(db);
        version += 1;
        if (from >= 1 && version === LAST_SCHEMA_WITHOUT_ID + 1) noIdYet(db);
        db.exec(`PRAGMA user_version = ${version}`);
      }
      db.exec("COMMIT");
    } catch (error) {
      // SQLite may have rolled back already (a full disk does): the first error is the news.
      try {
        db.exec("ROLLBACK");
      } catch { /* no transaction left */ }
      throw error;
    }
  }
}

/** Record, upgrading, that the install ran a version without an id (see `EARLIER_NAMES_KEY`). */
function noIdYet(db: DatabaseSync): void {
  db.prepare("INSERT OR REPLACE INTO ledger_meta (key, value) VALUES (?, ?)")
    .run(EARLIER_NAMES_KEY, ID_DUE);
}

/** One migration step: SQL, or a function run inside the step's transaction. */
export type MigrationStep = string | ((db: DatabaseSync) => void);

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

/** One count of files per job, destination and state, kept by triggers (see `SCHEMA_V3`). */
const COUNTED = `
  INSERT INTO file_counts (job, target, state, n) VALUES (NEW.job, NEW.target, NEW.state, 1)
    ON CONFLICT (job, target, state) DO UPDATE SET n = n + 1;`;
const UNCOUNTED = `
  UPDATE file_counts SET n = n - 1
    WHERE job = OLD.job AND target = OLD.target AND state = OLD.state;`;

/**
 * Version 3: `file_counts` holds how many files each job and destination has
 * in each state, kept up to date by triggers in the same transaction as the
 * change, so the status page, `status` and `/metrics` read a few rows instead
 * of counting a year of history.
 */
const SCHEMA_V3 = `
CREATE TABLE file_counts (
  job TEXT NOT NULL,
  target TEXT NOT NULL,
  state TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (job, target, state)
) WITHOUT ROWID;
INSERT INTO file_counts (job, target, state, n)
  SELECT job, target, state, COUNT(*) FROM files GROUP BY job, target, state;
CREATE TRIGGER files_counted_in AFTER INSERT ON files BEGIN ${COUNTED}
END;
CREATE TRIGGER files_counted_out AFTER DELETE ON files BEGIN ${UNCOUNTED}
END;
CREATE TRIGGER files_counted_again AFTER UPDATE OF job, target, state ON files
  WHEN OLD.job IS NOT NEW.job OR OLD.target IS NOT NEW.target OR OLD.state IS NOT NEW.state
BEGIN ${UNCOUNTED} ${COUNTED}
END;
`;

/**
 * Version 5: `hooks_due` holds each `on_transfer` hook a file's arrival owes until it has run,
 * written in the transaction that records the arrival (`due_hooks.ts`).
 */
const SCHEMA_V5 = `
CREATE TABLE hooks_due (
  job TEXT NOT NULL,
  target TEXT NOT NULL,
  rel_path TEXT NOT NULL,
  destination TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL,
  sha256 TEXT,
  PRIMARY KEY (job, target, rel_path)
) WITHOUT ROWID;
`;

/**
 * Version 6: `copies_unconfirmed` holds the files whose copy was renamed into place at the
 * destination but not confirmed on its disk, and where (`unconfirmed_copies.ts`); a file's entry
 * goes with its arrival, or with its row.
 */
const SCHEMA_V6 = `
CREATE TABLE copies_unconfirmed (
  job TEXT NOT NULL,
  target TEXT NOT NULL,
  rel_path TEXT NOT NULL,
  destination TEXT NOT NULL,
  PRIMARY KEY (job, target, rel_path)
) WITHOUT ROWID;
CREATE TRIGGER copies_confirmed AFTER UPDATE OF state ON files WHEN NEW.state = 'done' BEGIN
  DELETE FROM copies_unconfirmed
    WHERE job = NEW.job AND target = NEW.target AND rel_path = NEW.rel_path;
END;
CREATE TRIGGER copies_forgotten AFTER DELETE ON files BEGIN
  DELETE FROM copies_unconfirmed
    WHERE job = OLD.job AND target = OLD.target AND rel_path = OLD.rel_path;
END;
`;

/**
 * Version 7: `born_ms` holds the source's birth time at the version recorded (`null`: not known),
 * which tells a new file under a name sent before from the one sent, whatever the clocks did.
 */
const SCHEMA_V7 = "ALTER TABLE files ADD COLUMN born_ms INTEGER;";

/** The steps to {@linkcode LEDGER_SCHEMA_VERSION}: `[0]` creates version 1, `[1]` turns 1 into 2, ... */
export const LEDGER_SCHEMA: readonly MigrationStep[] = [
  SCHEMA_V1,
  SCHEMA_V2,
  SCHEMA_V3,
  mergeSshIdentities, // Version 4: scp and rsync send to one destination (`ssh://`).
  SCHEMA_V5,
  SCHEMA_V6,
  SCHEMA_V7,
  SCHEMA_V8, // The version whose copy arrived (`ledger_row.ts`).
];

/** SQLite's primary result codes this module acts on. */
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;
const SQLITE_FULL = 13;
const SQLITE_READONLY = 8;

/** Whether a SQLite error says the disk is full. */
export function isFull(error: unknown): boolean {
  const code = (error as { errcode?: number } | null)?.errcode;
  return typeof code === "number" ? (code & 0xff) === SQLITE_FULL : /is full/i.test(String(error));
}

/**
 * Whether a SQLite error says the database is read-only: SQLite opens a file it cannot open for
 * writing (`chattr +i`, a read-only mount) read-only without a word, and the connection stays so.
 */
export function isReadOnly(error: unknown): boolean {
  const code = (error as { errcode?: number } | null)?.errcode;
  return typeof code === "number"
    ? (code & 0xff) === SQLITE_READONLY
    : /readonly database/i.test(sqliteText(error));
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

/** A SQLite error's own words. */
export function sqliteText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * SQLite's page cache for each of the daemon's connections to the ledger: 256 KiB instead of its
 * default 2 MiB. A file is looked up by its key (a few pages, which the system's file cache holds
 * anyway), so a year of history read once (the start's check, the status page's counts) would
 * otherwise stay in the daemon's memory: 2-3 MB less resident for a ledger of 1,000,000 rows, at
 * the same speed.
 */
export const LEDGER_CACHE = "PRAGMA cache_size = -256;";

/** Open (creating, migrating) the ledger at `path` for the daemon. */
export function openForWriting(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  try {
    db.exec(`PRAGMA busy_timeout = 5000; ${LEDGER_CACHE}`);
    assertLedgerReadable(db, path);
    db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
    fitJournal(db, path);
    migrateLedger(db, path, LEDGER_SCHEMA);
  } catch (error) {
    db.close();
    throw error;
  }
  keepPrivate(path);
  return db;
}

/**
 * The ledger and its journal readable and writable by the daemon's account
 * only (0600; it names every file and destination), also when one is made
 * new while the daemon runs. POSIX only.
 */
function keepPrivate(path: string): void {
  for (const suffix of ["", "-wal", "-shm"]) ownerOnly(path + suffix);
}

/** `path` readable and writable by its owner only; one missing or another account's as it is. */
function ownerOnly(path: string): void {
  if (Deno.build.os === "windows") return;
  try {
    const { mode } = Deno.statSync(path);
    if (mode !== null && (mode & 0o077) !== 0) Deno.chmodSync(path, mode & 0o700);
  } catch { /* not made yet, or gone, or another account's: left as it is */ }
}

/**
 * Make the files of the state folder (the ledger and its journal, the lock,
 * the PID file) readable and writable by the daemon's account only (0600):
 * the ledger names every file and destination. POSIX only.
 */
export async function keepStateDirPrivate(stateDir: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  for await (const entry of Deno.readDir(stateDir)) {
    if (entry.isFile) ownerOnly(join(stateDir, entry.name));
  }
}

/** The most the journal (WAL) holds before it is copied into the database: 4 MiB (pages). */
const JOURNAL_PAGES = 1024;

/**
 * Size the journal (WAL) to the room on the ledger's disk: it is emptied at each checkpoint, every
 * {@linkcode JOURNAL_PAGES} pages, or an eighth of the room left where that is less, and kept at
 * most that big. A journal that took the last of a disk could not be copied into the database
 * (which must grow for it) once room was freed: the ledger would stay unwritable.
 */
export function fitJournal(db: DatabaseSync, path: string): void {
  const free = localDiskSpaceSync(dirname(path))?.availableBytes ?? Infinity;
  const pageBytes = Number(
    (db.prepare("PRAGMA page_size").get() as { page_size: number }).page_size,
  );
  const pages = Math.max(16, Math.min(JOURNAL_PAGES, Math.floor(free / 8 / pageBytes)));
  db.exec(
    `PRAGMA wal_autocheckpoint = ${pages}; PRAGMA journal_size_limit = ${pages * pageBytes};`,
  );
}

/**
 * Free space a full disk must have again before the ledger counts as
 * writable (an eighth of a smaller disk): a write of a few rows succeeding is
 * not enough, as a burst of new rows would fill a smaller gap at once (and
 * pause and resume every write).
 */
const ROOM_TO_RESUME_BYTES = 1024 * 1024;

/** Whether the ledger's disk has room again ({@linkcode ROOM_TO_RESUME_BYTES}; unknown: yes). */
export function roomToResume(path: string): boolean {
  const space = localDiskSpaceSync(dirname(path));
  return space === null ||
    space.availableBytes >= Math.min(ROOM_TO_RESUME_BYTES, space.totalBytes / 8);
}

/** Free space on the ledger's disk, in words. */
export function freeSpaceText(path: string): string {
  const free = localDiskSpaceSync(dirname(path))?.availableBytes;
  return free === undefined ? "free space unknown" : `${formatBytes(free)} free on its disk`;
}

/**
 * The journal (WAL) of the ledger at `path` and its index (`-shm`), as files (`dev:ino` each), or
 * `null` when there is none: one removed and made again is another file.
 */
export function journalOf(path: string): string | null {
  try {
    return ["-wal", "-shm"].map((suffix) => {
      const { dev, ino } = Deno.statSync(path + suffix);
      return `${dev}:${ino}`;
    }).join(" ");
  } catch {
    return null;
  }
}

/**
 * Why the ledger at `path` could not be opened (`error`: SQLite's), said after SQLite's words: its
 * folder cannot be written (a read-only mount, no permission), else the free space on its disk
 * (SQLite says only "unable to open database file" or "disk I/O error"), with what to do when it
 * is full (said so by SQLite, or too little room left: a write that fails on a full disk may end
 * in another error on the way).
 */
export function whyNotOpened(path: string, error: unknown): string {
  const probe = join(dirname(path), `.image-transfer-write-test-${Deno.pid}`);
  try {
    Deno.openSync(probe, { write: true, createNew: true }).close();
    Deno.removeSync(probe);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) {
      return ` (its folder cannot be written: ${whyUnwritable(error)}; make ${
        dirname(path)
      } writable for this user)`;
    }
  }
  const free = freeSpaceText(path);
  if (!isFull(error) && roomToResume(path)) return ` (${free})`;
  const full = isFull(error) ? "" : ": its disk is full";
  return ` (${free}${full}): free space there, or give another state_dir`;
}
