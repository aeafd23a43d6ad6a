/**
 * One daemon per state folder: two daemons sharing a ledger would send the
 * same files twice. The lock is an exclusive SQLite transaction held for the
 * daemon's lifetime; the operating system releases it if the process dies.
 *
 * The lock holder also writes a PID file (`daemon.pid`, the process id alone,
 * for `kill -HUP "$(cat daemon.pid)"`) and `daemon.json` (pid, start time,
 * version, config file, and the jobs paused because their destination is
 * full) for `status`; both are removed at release. Files left
 * by a daemon that was killed are recognised as stale because the lock is free, and the daemon
 * they name does not run: a file system that does not pass locks on (a FUSE mount, a network
 * share) grants the lock while its holder runs, so that daemon is then looked for by its pid,
 * program, host and start time (a {@linkcode StillRuns} the caller gives).
 * Where the state folder was emptied while the daemon ran, the lock holder also
 * writes back this install's id (`state_files.ts`), at the ledger's rebuild
 * ({@linkcode DaemonLock.renew}) and at release, so the next start keeps it.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { DaemonRunningError } from "../errors.ts";
import { localDiskSpaceSync } from "../config/free_space.ts";
import { formatBytes } from "../config/sizes.ts";
import { type LogFileLoss, onLogFileLoss } from "../log/file_sink.ts";
import {
  assertNoStateLinks,
  keepSenderId,
  makeStateDir,
  stateDirError,
  whyUnwritable,
  writeAtomically,
} from "./state_files.ts";

/** Name of the lock file inside `state_dir`. */
export const LOCK_FILE = "daemon.lock";
/** Name of the PID file inside `state_dir`: the daemon's process id and a newline. */
export const PID_FILE = "daemon.pid";
/** Name of the file describing the running daemon inside `state_dir`. */
export const INFO_FILE = "daemon.json";
/** Name of the file a daemon leaves in a state_dir its reload refused to move to: its own. */
export const MOVED_FILE = "daemon.moved";

/**
 * How long a start waits for the lock before it reports another daemon. It
 * covers `status` probing the lock at the same moment (a few microseconds).
 */
const LOCK_WAIT_MS = 500;

/** What the running daemon says about itself in {@linkcode INFO_FILE}. */
export interface DaemonInfo {
  pid: number;
  /** Start time, ISO 8601. */
  startedAt: string;
  /** The host name of the computer it runs on (none: written by an earlier version). */
  host?: string;
  version: string;
  /** Config file it was started with. */
  config: string;
  /** Started without a config file: the `run` that starts it again (its options, paths absolute). */
  runCommand?: string;
  /** Jobs paused now, by name. */
  paused?: Record<string, JobPause>;
  /** The daemon's private runtime folder (SSH control sockets), removed when it stops. */
  runtimeDir?: string;
  /** `HOST:PORT` its status page listens on (kept over reloads: a reload does not move it). */
  statusListen?: string;
  /** The jobs it runs, by name (those of the config it last loaded). */
  jobs?: string[];
  /** The last reload, when it was refused (the running config kept): when, and why. */
  reloadRefused?: { at: string; reason: string };
  /** The latest stretch of lines its log file could not take (a full disk), told as lost. */
  logFileLoss?: LogFileLoss;
  /**
   * The service that started it (`systemd-system`, `systemd-user`,
   * `launchd-system`, `launchd-user`), as its service file says; absent when
   * started by hand.
   */
  service?: string;
}

/** Why and since when a job sends nothing. */
export interface JobPause {
  /** What `status` shows, e.g. `destination full`. */
  state: string;
  /** Since when, ISO 8601. */
  since: string;
  /** The words of the error that holds it (the latest: see `DestinationPause.stillDown`). */
  reason: string;
}

/**
 * The lock file's `user_version` (bytes 60-63 of its header, read without
 * SQLite by {@linkcode lockSaysLedgerMade}): {@linkcode LOCK_NO_LEDGER} from
 * the lock's first page until this state_dir's ledger is made, then
 * {@linkcode LOCK_LEDGER_MADE}. Locks of earlier versions say 1 (a ledger
 * was made beside every one of them).
 */
export const LOCK_NO_LEDGER = 3;
/** See {@linkcode LOCK_NO_LEDGER}. */
export const LOCK_LEDGER_MADE = 2;

/**
 * Whether the lock file at `lockPath` says a ledger was made beside it (see
 * {@linkcode LOCK_NO_LEDGER}); `false` for an empty file (a start that could
 * not write its first page: no daemon ran).
 *
 * @throws {Deno.errors.NotFound} when there is no lock file
 */
export function lockSaysLedgerMade(lockPath: string): boolean {
  using file = Deno.openSync(lockPath, { read: true });
  const header = new Uint8Array(64);
  let read = 0;
  while (read < header.length) {
    const n = file.readSync(header.subarray(read));
    if (n === null || n === 0) break;
    read += n;
  }
  if (read === 0) return false;
  return read < 64 || new DataView(header.buffer).getUint32(60) !== LOCK_NO_LEDGER;
}

/**
 * Whether the daemon that wrote `info` (and the PID file) runs now, its process alive and the same
 * (`process/live_daemon.ts`); `false` counts its files stale.
 */
export type StillRuns = (info: DaemonInfo) => boolean;

/** A held lock; release it with {@linkcode DaemonLock.release}. */
export interface DaemonLock {
  /** Process id found in a PID file left by a daemon that did not stop cleanly, if any. */
  readonly stalePid: number | undefined;
  /** Why the PID file could not be written (e.g. the disk is full), if it could not. */
  readonly pidFileError: string | undefined;
  /** What that daemon said about itself (its runtime folder, to clear), if anything. */
  readonly stale: DaemonInfo | undefined;
  /** Say in `daemon.json` where this daemon's runtime folder is, its status page, its jobs... */
  tell(facts: Omit<Partial<DaemonInfo>, "pid" | "startedAt" | "host">): void;
  /** Say in `daemon.json` which jobs are paused now (no-op without a PID file). */
  setPaused(paused: Record<string, JobPause>): void;
  /**
   * Leave in `stateDir` (a reload's new state_dir, which it refused) where this daemon runs, so
   * `status`, `stop` and `run` with the new config find it (removed at release).
   */
  pointFrom(stateDir: string): void;
  /**
   * Take the lock again in a new file where its file was removed (the whole state_dir removed
   * while the daemon ran), with the PID file, so `status`, `stop` and `run` find this daemon, and
   * this install's id (`state_files.ts`), so the next start keeps it.
   */
  renew(): void;
  /** Say in the lock file that this state_dir's ledger is made (see {@linkcode LOCK_NO_LEDGER}). */
  ledgerMade(): void;
  /** Write this install's id back if its file is gone, remove the PID file, release the lock. */
  release(): void;
}

/**
 * Take the daemon lock of `stateDir` and, with `info`, write the PID file.
 *
 * A full disk does not stop the daemon: the lock needs no room once its file
 * has a page (written the first time), and a PID file that cannot be written
 * is reported in {@linkcode DaemonLock.pidFileError}.
 *
 * @param stillRuns tells whether the daemon a PID file names runs, the lock granted all the same
 * @throws {DaemonRunningError} when another daemon holds it, or runs by `stillRuns`
 * @throws {Error} naming `state_dir` when the folder cannot be made or is not a
 *   folder, or the lock file cannot be used
 */
export function acquireDaemonLock(
  stateDir: string,
  info?: Omit<DaemonInfo, "pid" | "startedAt" | "host">,
  stillRuns?: StillRuns,
): DaemonLock {
  makeStateDir(stateDir);
  assertNoStateLinks(stateDir);
  // Before the lock file is made: a start refused here leaves no sign of a run.
  const moved = readMoved(stateDir);
  if (moved !== undefined && moved !== stateDir && probeMoved(moved)) {
    throw new DaemonRunningError(
      `Cannot start: the daemon of this config is already running with its earlier state_dir ` +
        `${moved} (pid ${readPid(moved) ?? "?"}; its reload to ${stateDir} was refused): stop it ` +
        "first (image-transfer stop), then start it again",
    );
  }
  const lockPath = join(stateDir, LOCK_FILE);
  let db = openLockFile(stateDir, lockPath);
  try {
    db.exec(`PRAGMA busy_timeout = ${LOCK_WAIT_MS};`);
    // An empty database needs room to be locked; one page makes later locks need none.
    if (Deno.statSync(lockPath).size === 0) db.exec(`PRAGMA user_version = ${LOCK_NO_LEDGER};`);
    db.exec("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;");
  } catch (error) {
    db.close();
    if (!/locked|busy/i.test(String(error))) {
      const free = localDiskSpaceSync(stateDir)?.availableBytes;
      const full = /full/i.test(String(error)) && free !== undefined
        ? ` (${formatBytes(free)} free on its disk): free space there, or give another state_dir`
        : "";
      throw new Error(
        `Cannot start: the lock file ${lockPath} cannot be used: ${
          error instanceof Error ? error.message : error
        }${full}`,
        { cause: error },
      );
    }
    const pid = readPid(stateDir);
    throw new DaemonRunningError(
      `Cannot start: another image-transfer daemon is already running` +
        `${pid === undefined ? "" : ` (pid ${pid})`} with state_dir ${stateDir} ` +
        `(stop it first, or give this config its own state_dir)`,
      { cause: error },
    );
  }
  const stalePid = readPid(stateDir);
  const stale = stalePid === undefined ? undefined : readInfo(stateDir);
  if (stale && stale.pid === stalePid && stillRuns?.(stale)) {
    db.close(); // Nothing written: its PID file, its runtime folder are the running daemon's.
    throw new DaemonRunningError(
      `Cannot start: another image-transfer daemon is already running (pid ${stale.pid}, config ` +
        `${stale.config}) with state_dir ${stateDir}, although its lock was granted: the file ` +
        "system there does not pass locks on (a FUSE mount such as bindfs, a network share), so " +
        "the lock cannot keep a second daemon out (stop it first, or give this config its own " +
        "state_dir, on a local disk)",
    );
  }
  const record: DaemonInfo | undefined = info &&
    { pid: Deno.pid, startedAt: new Date().toISOString(), ...hostName(), ...info };
  const writeInfo = (shown: DaemonInfo) =>
    writeAtomically(join(stateDir, INFO_FILE), JSON.stringify(shown, null, 2) + "\n");
  let pidFileError: string | undefined;
  if (record) {
    try {
      writeInfo(record);
      writeAtomically(join(stateDir, PID_FILE), `${Deno.pid}\n`);
    } catch (error) {
      pidFileError = error instanceof Error ? error.message : String(error);
      // A PID file left by an earlier daemon must not name another process to `stop`.
      for (const name of [PID_FILE, INFO_FILE]) {
        try {
          Deno.removeSync(join(stateDir, name));
        } catch { /* not there */ }
      }
    }
  }
  const pointers = new Set<string>();
  const lock: DaemonLock = {
    stalePid,
    pidFileError,
    stale,
    pointFrom(other) {
      try {
        makeStateDir(other);
        writeAtomically(join(other, MOVED_FILE), `${stateDir}\n`);
        pointers.add(other);
      } catch { /* status with the new config then finds no daemon, as before */ }
    },
    tell(facts) {
      if (!record) return;
      Object.assign(record, facts);
      try {
        writeInfo(record);
      } catch { /* a killed daemon's folder would stay behind; `status` asks the config */ }
    },
    setPaused(paused) {
      // None paused: `undefined`, which its JSON leaves out.
      lock.tell({ paused: Object.keys(paused).length > 0 ? paused : undefined });
    },
    renew() {
      try {
        Deno.lstatSync(lockPath);
        return;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) return;
      }
      let fresh: DatabaseSync | undefined;
      try {
        makeStateDir(stateDir);
        fresh = new DatabaseSync(lockPath);
        // Renewed as the ledger made anew tells its change: a ledger is made beside it.
        fresh.exec(
          `PRAGMA user_version = ${LOCK_LEDGER_MADE}; PRAGMA locking_mode = EXCLUSIVE; ` +
            "BEGIN EXCLUSIVE;",
        );
      } catch {
        fresh?.close();
        return; // Tried again at the ledger's next change.
      }
      db.close();
      db = fresh;
      keepSenderId(stateDir);
      if (!record) return;
      try {
        writeInfo(record);
        writeAtomically(join(stateDir, PID_FILE), `${Deno.pid}\n`);
      } catch { /* status then shows less */ }
    },
    ledgerMade() {
      try {
        const version = db.prepare("PRAGMA user_version").get() as { user_version: number };
        if (Number(version.user_version) === LOCK_LEDGER_MADE) return;
        // Committed for others to read; the exclusive locking mode keeps the lock meanwhile.
        db.exec(`PRAGMA user_version = ${LOCK_LEDGER_MADE}; COMMIT; BEGIN EXCLUSIVE;`);
      } catch { /* a full disk: the next start takes a missing ledger for none made */ }
    },
    release() {
      stopTellingLoss();
      keepSenderId(stateDir); // Its file removed meanwhile: the next start keeps the id.
      for (const other of pointers) {
        try {
          if (readMoved(other) === stateDir) Deno.removeSync(join(other, MOVED_FILE));
        } catch { /* gone */ }
      }
      if (info) {
        for (const name of [PID_FILE, INFO_FILE]) {
          try {
            Deno.removeSync(join(stateDir, name));
          } catch { /* already gone */ }
        }
      }
      try {
        db.exec("ROLLBACK");
      } catch { /* not in a transaction */ }
      db.close();
    },
  };
  const stopTellingLoss = onLogFileLoss((logFileLoss) => lock.tell({ logFileLoss }));
  return lock;
}

/** This computer's host name, for {@linkcode DaemonInfo.host}; none where it cannot be read. */
function hostName(): { host?: string } {
  try {
    return { host: Deno.hostname() };
  } catch {
    return {};
  }
}

/** Whether a daemon runs on a state folder, and what it says about itself. */
export type DaemonState =
  /** `stateDir`: the daemon runs with another state_dir, whose change its reload refused. */
  | { running: true; info: DaemonInfo | undefined; stateDir?: string }
  | { running: false; stalePid: number | undefined };

/**
 * Find out, without taking it, whether the lock of `stateDir` is held (or, where it is free, the
 * daemon its PID file names runs by `stillRuns`: a file system that does not pass locks on).
 * Nothing is written.
 *
 * @throws {Error} when the lock file exists but cannot be checked (e.g. no permission)
 */
export function probeDaemon(stateDir: string, stillRuns?: StillRuns): DaemonState {
  const here = probeLock(stateDir, stillRuns);
  const moved = here.running ? undefined : readMoved(stateDir);
  if (moved === undefined || moved === stateDir) return here;
  return probeMoved(moved) ? { ...probeLock(moved), stateDir: moved } as DaemonState : here;
}

/** Whether a daemon runs with `stateDir` (a {@linkcode MOVED_FILE}'s; a killed one's is stale). */
function probeMoved(stateDir: string): boolean {
  try {
    return probeLock(stateDir).running;
  } catch {
    return false;
  }
}

/** The state_dir a {@linkcode MOVED_FILE} in `stateDir` names, if there is one. */
function readMoved(stateDir: string): string | undefined {
  try {
    return Deno.readTextFileSync(join(stateDir, MOVED_FILE)).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** {@linkcode probeDaemon} of the lock in `stateDir` itself. */
function probeLock(stateDir: string, stillRuns?: StillRuns): DaemonState {
  const path = join(stateDir, LOCK_FILE);
  try {
    Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { running: false, stalePid: readPid(stateDir) }; // No daemon ever ran here.
    }
    throw new Error(`Cannot tell whether a daemon is running: ${errorText(error)}`, {
      cause: error,
    });
  }
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    // A shared lock for a moment: refused while a daemon holds its exclusive one.
    db.exec("PRAGMA busy_timeout = 0; BEGIN; SELECT count(*) FROM sqlite_master; ROLLBACK;");
  } catch (error) {
    if (/locked|busy/i.test(errorText(error))) return { running: true, info: readInfo(stateDir) };
    throw new Error(`Cannot tell whether a daemon is running: ${path}: ${errorText(error)}`, {
      cause: error,
    });
  } finally {
    db?.close();
  }
  const stalePid = readPid(stateDir);
  const info = stalePid === undefined ? undefined : readInfo(stateDir);
  if (info && info.pid === stalePid && stillRuns?.(info)) return { running: true, info };
  return { running: false, stalePid };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The process id in the PID file of `stateDir`, if there is a readable one. */
function readPid(stateDir: string): number | undefined {
  try {
    const pid = Number.parseInt(Deno.readTextFileSync(join(stateDir, PID_FILE)).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function readInfo(stateDir: string): DaemonInfo | undefined {
  try {
    const info = JSON.parse(Deno.readTextFileSync(join(stateDir, INFO_FILE)));
    return typeof info?.pid === "number" ? info as DaemonInfo : undefined;
  } catch {
    return undefined;
  }
}

/** The lock file's database, made if missing; a clear error naming `state_dir` when it cannot be. */
function openLockFile(stateDir: string, lockPath: string): DatabaseSync {
  try {
    return new DatabaseSync(lockPath);
  } catch (error) {
    // SQLite says only "unable to open database file": ask the file system why, with a file of
    // its own (closing one of the lock file's would end the locks this process holds on it).
    const probe = join(stateDir, `.image-transfer-write-test-${Deno.pid}`);
    let why: unknown = error;
    try {
      Deno.openSync(probe, { write: true, createNew: true }).close();
      Deno.removeSync(probe);
    } catch (probeError) {
      why = probeError;
    }
    throw stateDirError(stateDir, whyUnwritable(why), error);
  }
}
