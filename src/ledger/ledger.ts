/**
 * The ledger: durable state of every source file, in SQLite (WAL) under
 * `state_dir`, one row per file and destination (see `file_rows.ts`, the
 * per-job view the pipeline uses). What is done is never sent again; what was
 * pending or interrupted is resumed after a restart.
 *
 * Two promises hold whatever happens to the file itself:
 * - **A write that fails is never ignored.** A full disk, an I/O error or a
 *   read-only file system turns {@linkcode Ledger.problem} on (one ERROR,
 *   naming the file, the error and the free space): the jobs start nothing
 *   new until a write succeeds again, which a probe tries every few seconds
 *   (opening the file again where SQLite had opened it read-only).
 * - **Damage is set aside, not fatal.** A ledger that is not a database, is
 *   malformed or is 0 bytes long (at start, or when any query says so) is
 *   moved to `<name>.damaged-<time>` and a new one is started; the jobs then
 *   recognise files already at the destination instead of sending them again
 *   ({@linkcode Ledger.rebuilt}).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { logger } from "../log/logging.ts";
import {
  daemonRanIn,
  existsSync,
  judgeLedger,
  LEDGER_FILE,
  type LedgerRebuild,
  lost,
  openForReading,
  recordedRebuild,
  setAside,
} from "./ledger_check.ts";
import {
  fitJournal,
  freeSpaceText,
  isDamage,
  isFull,
  isReadOnly,
  journalOf,
  openForWriting,
  roomToResume,
  sqliteText,
  whyNotOpened,
} from "./ledger_file.ts";

export { LEDGER_FILE, type LedgerRebuild } from "./ledger_check.ts";

/** Why the ledger cannot be written now. */
export interface LedgerProblem {
  /** The error, e.g. `database or disk is full`. */
  error: string;
  /** Since when (ms since epoch). */
  since: number;
}

/** A write to the ledger failed: the caller must act as if it did not happen. */
export class LedgerWriteError extends Error {
  override name = "LedgerWriteError";
}

/** How often a ledger that cannot be written is tried again. */
const PROBE_EVERY_MS = 2000;

/** Durable per-file state. Open with {@linkcode Ledger.open}; close when done. */
export class Ledger {
  readonly path: string;
  readonly readOnly: boolean;
  #db: DatabaseSync;
  #statements = new Map<string, StatementSync>();
  #problem: LedgerProblem | null = null;
  #rebuilt: LedgerRebuild | null = null;
  #listeners = new Set<() => void>();
  #probeTimer: ReturnType<typeof setTimeout> | undefined;
  #telling = false;
  #probeEveryMs: number;
  #closed = false;
  /** Transactions open (a write inside a write joins the outer one). */
  #depth = 0;
  /** When a write last looked whether the file is still there (`performance.now()`). */
  #lookedAt = -Infinity;
  /** The journal (WAL) file this connection writes (`dev:ino`), once there is one. */
  #journal: string | null = null;

  private constructor(path: string, db: DatabaseSync, readOnly: boolean, probeEveryMs: number) {
    this.path = path;
    this.#db = db;
    this.readOnly = readOnly;
    this.#probeEveryMs = probeEveryMs;
    this.#rebuilt = this.#readRebuild();
  }

  /**
   * Open (creating if needed) the ledger in `stateDir`. A damaged ledger is
   * set aside and a new one started (see the module doc), unless `readOnly`.
   *
   * @param options.readOnly open an existing ledger without changing anything;
   *   returns `null` when there is none yet
   * @param options.probeEveryMs how often a ledger that cannot be written is tried again
   * @param options.expected the daemon ran with this `stateDir` before (by
   *   default `daemonRanIn`, which the daemon asks before it takes the lock): a
   *   ledger that is missing was lost, and the new one counts as rebuilt (files
   *   already at the destination are recognised there, not sent again); what is
   *   found is judged by `judgeLedger`
   * @throws when the folder or database cannot be created or opened, the
   *   ledger was written by a newer image-transfer (an older one is migrated),
   *   or (`readOnly`) it is damaged
   */
  static open(stateDir: string, options: { readOnly: true }): Ledger | null;
  static open(
    stateDir: string,
    options?: { readOnly?: false; probeEveryMs?: number; expected?: boolean },
  ): Ledger;
  static open(
    stateDir: string,
    options: { readOnly?: boolean; probeEveryMs?: number; expected?: boolean } = {},
  ): Ledger | null {
    const path = join(stateDir, LEDGER_FILE);
    const probeEveryMs = options.probeEveryMs ?? PROBE_EVERY_MS;
    if (options.readOnly) {
      const db = openForReading(path);
      return db && new Ledger(path, db, true, probeEveryMs);
    }
    Deno.mkdirSync(stateDir, { recursive: true });
    let rebuild: LedgerRebuild | null = null;
    let db: DatabaseSync;
    try {
      const found = judgeLedger(path, options.expected ?? daemonRanIn(stateDir));
      if (found.kind === "lost") rebuild = lost(path, found.reason);
      if (found.kind === "damaged") rebuild = setAside(path, found.reason);
      try {
        db = openForWriting(path);
      } catch (error) {
        // Damage the first look missed shows while the schema is brought up to date.
        if (!isDamage(error) || rebuild) throw error;
        rebuild = setAside(path, sqliteText(error));
        db = openForWriting(path);
      }
    } catch (error) {
      // SQLite's own words (`disk I/O error` on a full disk) name no file.
      if ((error as { code?: string }).code !== "ERR_SQLITE_ERROR") throw error;
      throw new Error(
        `Cannot open the ledger ${path}: ${sqliteText(error)}${whyNotOpened(path, error)}`,
        { cause: error },
      );
    }
    const ledger = new Ledger(path, db, false, probeEveryMs);
    if (rebuild) ledger.#recordRebuild(rebuild);
    return ledger;
  }

  /** The folder the ledger is in (`state_dir`). */
  get stateDir(): string {
    return dirname(this.path);
  }

  /** Why the ledger cannot be written now, or `null` when it can. */
  get problem(): LedgerProblem | null {
    return this.#problem;
  }

  /** When this ledger was started anew because the old one was damaged, if it was. */
  get rebuilt(): LedgerRebuild | null {
    return this.#rebuilt;
  }

  /** Be told when {@linkcode problem} or {@linkcode rebuilt} changes. @returns what stops it */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A prepared statement, cached by its SQL (dropped when the ledger is rebuilt). */
  statement(sql: string): StatementSync {
    let stmt = this.#statements.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  /** Run a query; a damaged ledger found on the way is set aside, and it runs again on the new. */
  read<T>(query: () => T): T {
    try {
      return query();
    } catch (error) {
      if (this.readOnly || !isDamage(error)) throw error;
      this.#recover(sqliteText(error));
      return query();
    }
  }

  /**
   * {@linkcode read}, with every query of `queries` in one read transaction:
   * one lock and one look at the file for all of them instead of one each
   * (100,000 lookups at start-up: 0.4 s instead of 0.8 s).
   */
  readTogether<T>(queries: () => T): T {
    return this.read(() => {
      if (this.#depth > 0) return queries();
      this.#db.exec("BEGIN");
      this.#depth++;
      try {
        return queries();
      } finally {
        this.#depth--;
        try {
          this.#db.exec("COMMIT");
        } catch { /* a read has nothing to keep */ }
      }
    });
  }

  /**
   * Run writes in one transaction. Any failure is reported (see the module
   * doc) and thrown as a {@linkcode LedgerWriteError}: nothing of it is kept.
   */
  write<T>(writes: () => T): T {
    if (this.#depth > 0) return writes();
    this.#lookForRemoval();
    for (let attempt = 1;; attempt++) {
      try {
        const result = this.#transaction(writes);
        if (this.#problem && roomToResume(this.path)) this.#writable();
        return result;
      } catch (error) {
        if (isDamage(error) && attempt === 1 && !this.readOnly) {
          this.#recover(sqliteText(error));
          continue;
        }
        // The journal (WAL) grows between checkpoints: on a small disk, give its room back first.
        if (isFull(error) && attempt === 1 && this.#reclaim()) continue;
        if (error instanceof LedgerWriteError) throw error;
        this.#unwritable(sqliteText(error));
        throw new LedgerWriteError(`Cannot write the ledger ${this.path}: ${sqliteText(error)}`, {
          cause: error,
        });
      }
    }
  }

  /** Close the database and stop probing. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#probeTimer);
    this.#statements.clear();
    this.#db.close();
  }

  #transaction<T>(writes: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const result = writes();
      this.#depth--;
      this.#db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#depth = 0;
      // SQLite may have rolled back already (a full disk does): the first error is the news.
      try {
        this.#db.exec("ROLLBACK");
      } catch { /* no transaction left */ }
      throw error;
    }
  }

  /** A write failed: say so once, tell the jobs, and probe until one succeeds. */
  #unwritable(error: string): void {
    if (this.#problem) {
      if (this.#probeTimer === undefined) this.#scheduleProbe();
      return;
    }
    this.#problem = { error, since: Date.now() };
    logger("ledger").error(
      "Cannot write the ledger {path}: {error} ({free}); no new transfer starts until it can be " +
        "written, and this is tried every {seconds} s",
      {
        path: this.path,
        error,
        free: freeSpaceText(this.path),
        seconds: this.#probeEveryMs / 1000,
      },
    );
    this.#tell();
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#closed) return;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#closed || !this.#problem) return;
      this.#reclaim();
      const probe = () => this.#transaction(() => this.#setMeta("written_at", String(Date.now())));
      try {
        try {
          probe();
        } catch (error) {
          // SQLite opens a file it cannot write read-only, and that connection stays so.
          if (!isReadOnly(error) || !this.#reopen()) throw error;
          probe();
        }
        if (!roomToResume(this.path)) return this.#scheduleProbe();
        this.#writable();
      } catch (error) {
        if (isDamage(error)) this.#recover(sqliteText(error));
        else this.#scheduleProbe();
      }
    }, this.#probeEveryMs);
  }

  /**
   * A new connection in place of the open one, which SQLite opened read-only: whether there is
   * one (a ledger removed meanwhile is left to {@linkcode #lookForRemoval}, which says so).
   */
  #reopen(): boolean {
    if (!existsSync(this.path)) return false;
    let db: DatabaseSync;
    try {
      db = openForWriting(this.path);
    } catch {
      return false; // Tried again at the next probe.
    }
    this.#statements.clear();
    try {
      this.#db.close();
    } catch { /* closed */ }
    this.#db = db;
    this.#journal = journalOf(this.path);
    return true;
  }

  /** Copy the journal into the database and empty it, giving its room back: whether it did. */
  #reclaim(): boolean {
    try {
      const row = this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get() as
        | Record<string, number>
        | undefined;
      return row?.busy === 0;
    } catch {
      return false;
    }
  }

  #writable(): void {
    if (!this.#problem) return;
    logger("ledger").info("The ledger {path} can be written again; transfers go on", {
      path: this.path,
      unwritableForSeconds: Math.round((Date.now() - this.#problem.since) / 1000),
    });
    this.#problem = null;
    clearTimeout(this.#probeTimer);
    fitJournal(this.#db, this.path); // The room now may be small.
    this.#tell();
  }

  /** Before a write (once a second at most): a ledger removed meanwhile starts anew, rebuilt. */
  #lookForRemoval(): void {
    const now = performance.now(); // Monotonic: a wall clock set back must not skip the looks.
    if (this.readOnly || now - this.#lookedAt < 1000) return;
    this.#lookedAt = now;
    if (!existsSync(this.path)) return this.#recover("it was removed while the daemon ran", true);
    const journal = journalOf(this.path);
    if (this.#journal === null || journal === this.#journal) return void (this.#journal = journal);
    // Its journal (or index) removed: SQLite writes on into the removed file, which readers miss.
    // What it holds is copied into the ledger (through the open file), then a new one started.
    if (!this.#reclaim() || !this.#reopen()) return;
    logger("ledger").warn(
      "The ledger's journal {path}-wal (or its index -shm) was removed while the daemon ran; " +
        "what it held was copied into the ledger and a new journal started",
      { path: this.path },
    );
  }

  /** The open ledger is damaged (or `gone`): set it aside and go on with a new one. */
  #recover(reason: string, gone = false): void {
    this.#statements.clear();
    try {
      this.#db.close();
    } catch { /* closing a damaged database may fail too */ }
    const rebuild = gone ? lost(this.path, reason) : setAside(this.path, reason);
    // Its whole folder removed: made again (as at the start), else nothing could be recorded.
    if (gone) Deno.mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    this.#db = openForWriting(this.path);
    this.#journal = journalOf(this.path);
    this.#problem = null;
    this.#recordRebuild(rebuild);
  }

  #recordRebuild(rebuild: LedgerRebuild): void {
    this.#rebuilt = rebuild;
    try {
      this.#transaction(() => {
        this.#setMeta("rebuilt_at", String(rebuild.at));
        this.#setMeta("rebuilt_reason", rebuild.reason);
        this.#setMeta("damaged_copy", rebuild.damagedCopy);
      });
    } catch (error) {
      this.#unwritable(sqliteText(error));
    }
    this.#tell();
  }

  /** A fact kept with the files (`ledger_meta`), or `null` (none, or it cannot be read). */
  meta(key: string): string | null {
    try {
      const row = this.statement("SELECT value FROM ledger_meta WHERE key = ?").get(key);
      return typeof row?.value === "string" ? row.value : null;
    } catch {
      return null; // No meta table (an old ledger read as it is).
    }
  }

  /**
   * Keep a fact with the files (see {@linkcode meta}).
   *
   * @throws {LedgerWriteError} when the ledger cannot be written (see {@linkcode write})
   */
  setMeta(key: string, value: string): void {
    this.write(() => this.#setMeta(key, value));
  }

  #setMeta(key: string, value: string): void {
    this.statement(
      "INSERT INTO ledger_meta (key, value) VALUES (?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ).run(key, value);
  }

  #readRebuild(): LedgerRebuild | null {
    return recordedRebuild((key) => this.meta(key));
  }

  /** Tell the listeners, once the write that changed the state has returned (they may write). */
  #tell(): void {
    if (this.#telling) return;
    this.#telling = true;
    setTimeout(() => {
      this.#telling = false;
      for (const listener of this.#closed ? [] : [...this.#listeners]) listener();
    }, 0);
  }
}
