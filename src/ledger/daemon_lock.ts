/**
 * One daemon per state folder: two daemons sharing a ledger would send the
 * same files twice. The lock is an exclusive SQLite transaction held for the
 * daemon's lifetime; the operating system releases it if the process dies.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";

/** Name of the lock file inside `state_dir`. */
export const LOCK_FILE = "daemon.lock";

/** A held lock; release it with {@linkcode DaemonLock.release}. */
export interface DaemonLock {
  release(): void;
}

/**
 * Take the daemon lock of `stateDir`.
 *
 * @throws {Error} when another daemon holds it
 */
export function acquireDaemonLock(stateDir: string): DaemonLock {
  Deno.mkdirSync(stateDir, { recursive: true });
  const db = new DatabaseSync(join(stateDir, LOCK_FILE));
  try {
    db.exec("PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;");
  } catch (error) {
    db.close();
    throw new Error(
      `Cannot start: another image-transfer daemon is already running with state_dir ${stateDir} ` +
        `(stop it first, or give this config its own state_dir)`,
      { cause: error },
    );
  }
  return {
    release() {
      try {
        db.exec("ROLLBACK");
      } catch { /* not in a transaction */ }
      db.close();
    },
  };
}
