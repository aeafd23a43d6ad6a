/**
 * The state folder's small files beside the ledger (`daemon.json`, `daemon.pid`, `daemon.moved`,
 * `sender_id`): each written whole ({@linkcode writeAtomically}); and the one of them that
 * outlives every run, this install's own id. And the folder itself, made private
 * ({@linkcode makeStateDir}), and why it cannot be used ({@linkcode whyUnwritable}).
 *
 * The id (the "sender id") is random, made at the install's first start and kept in the file
 * {@linkcode SENDER_ID_FILE} of its `state_dir`, beside the ledger and not in it, so a damaged
 * ledger set aside or a lost one leaves it. The names of the install's upload folders, temporary
 * copies and unfinished archive copies hold it (through `jobOwner` in `transfer/temp_name.ts`):
 * the install sweeps and resumes only its own. The process holds the id it first read or made
 * for a state folder: a file removed meanwhile (the state folder emptied while the daemon runs)
 * is written back with it ({@linkcode keepSenderId}), instead of a new id being made.
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import { logger } from "../log/logging.ts";
import type { Ledger } from "./ledger.ts";

/**
 * Write `text` to a file of the state folder at `path` (0600), flushed, through a temporary name:
 * readers never see half a file, nor a crash an empty one.
 */
export function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${Deno.pid}.tmp`;
  try {
    // One left by a process of this pid, or a link put there: made anew, never written through.
    try {
      Deno.removeSync(temp);
    } catch { /* not there */ }
    {
      using file = Deno.openSync(temp, { write: true, createNew: true, mode: 0o600 });
      let left = new TextEncoder().encode(text);
      while (left.length > 0) left = left.subarray(file.writeSync(left));
      file.syncSync();
    } // Closed before the rename (Windows renames no open file).
    Deno.renameSync(temp, path);
  } catch (error) {
    try {
      Deno.removeSync(temp);
    } catch { /* never made */ }
    throw error;
  }
}

/** The file in `state_dir` that keeps {@linkcode senderId}. */
export const SENDER_ID_FILE = "sender_id";

/** The ledger key that kept {@linkcode senderId} before it had its own file (read once). */
const LEDGER_KEY = "sender_id";

/**
 * The ledger key that says the install ran a version from before it had an id (a ledger of
 * schema {@linkcode LAST_SCHEMA_WITHOUT_ID} or older, upgraded): the upload folders and temporary
 * copies of the earlier naming, by the host name (`hostJobOwner`), are its own, resumed and
 * removed as those of its id. {@linkcode ID_DUE} until the id is made, then {@linkcode ID_MADE}.
 */
export const EARLIER_NAMES_KEY = "earlier_names_own";
/** The value of {@linkcode EARLIER_NAMES_KEY} written by the upgrade: no id was made yet. */
export const ID_DUE = "id_due";
/** The value of {@linkcode EARLIER_NAMES_KEY} once the first id was made. */
const ID_MADE = "id_made";
/** The last ledger schema of the versions that had no id (6 came before the id, 7 after it). */
export const LAST_SCHEMA_WITHOUT_ID = 5;

/** An id: 96 random bits, as 24 lowercase hex digits. */
const SENDER_ID = /^[0-9a-f]{24}$/;

/** The id this process read or made, by state folder (absolute). */
const held = new Map<string, string>();

/** What a sender id file says (see {@linkcode readSenderId}). */
type Read = { id: string } | { missing: true } | { unusable: string };

/**
 * This install's id, kept in `stateDir`'s {@linkcode SENDER_ID_FILE}; `null` where it cannot be
 * kept (then `jobOwner` falls back to the host name's id, the same at each start).
 *
 * The file's id, when it holds one. Otherwise, with `writable`: the id this process already holds
 * for `stateDir` (the file removed, or spoilt, while the daemon runs), else the one an older
 * version kept in `ledger`, else a new one, written into the file; a new one made in place of a
 * file that holds no id or cannot be read, or of one removed since an earlier run (the ledger
 * records files: {@linkcode ranBefore}), is said in one WARN line (what the install left at its
 * destinations under the old id is no longer its own). A file that cannot be written (a folder in
 * its place, another account's in a state folder with the sticky bit, a full disk) is said once in
 * a WARN line, and `null` returned.
 * Without `writable` (a command that changes nothing) nothing is written: the file's id, else the
 * ledger's.
 *
 * @param options.writable files may be made and written in `stateDir` (the running daemon)
 * @param options.ledger the ledger in `stateDir`, which may hold the id an older version kept
 */
export function senderId(
  stateDir: string,
  options: { writable: boolean; ledger?: Ledger | null },
): string | null {
  const path = join(stateDir, SENDER_ID_FILE);
  const found = readSenderId(path);
  if ("id" in found) {
    if (options.writable) held.set(resolve(stateDir), found.id);
    return found.id;
  }
  const kept = options.writable ? held.get(resolve(stateDir)) : undefined;
  let known = kept ?? null;
  if (known === null) {
    try {
      known = options.ledger?.meta(LEDGER_KEY) ?? null;
    } catch { /* unreadable: made anew */ }
    if (known !== null && !SENDER_ID.test(known)) known = null;
  }
  if (!options.writable) return known;
  const id = known ?? randomId();
  let written: Read;
  try {
    writeAtomically(path, `${id}\n`);
    written = readSenderId(path);
  } catch (error) {
    const theirs = error instanceof Deno.errors.PermissionDenied && othersInSticky(path);
    written = { unusable: theirs ? NOT_OURS : `cannot be written (${errorText(error)})` };
  }
  if (!("id" in written)) {
    // The ledger's id, else the host name's (said once: it holds till the file can be written).
    const folder = "unusable" in found && found.unusable === IS_A_FOLDER;
    if (known === null) notKept(stateDir, folder ? IS_A_FOLDER : whyNot(written));
    return known;
  }
  held.set(resolve(stateDir), written.id);
  // The install's first id after an upgrade from a version without one: nothing was lost.
  if (known !== null || firstId(options.ledger)) return written.id;
  if ("unusable" in found) madeAnew(path, found.unusable);
  if ("missing" in found && ranBefore(options.ledger)) {
    madeAnew(path, "was missing, although the ledger beside it records files of earlier runs");
  }
  return written.id;
}

/**
 * Whether the id is the install's first, made after an upgrade from a version without one (see
 * {@linkcode EARLIER_NAMES_KEY}: nothing was lost, nothing is said); recorded as made.
 */
function firstId(ledger: Ledger | null | undefined): boolean {
  try {
    if (ledger?.meta(EARLIER_NAMES_KEY) !== ID_DUE) return false;
    ledger.setMeta(EARLIER_NAMES_KEY, ID_MADE);
    return true;
  } catch {
    return false; // Unreadable or unwritable: said as a missing id (the ledger says its trouble).
  }
}

/**
 * Whether `ledger` records any file (one row is enough, read at once): an install that ran before
 * and may have left copies under the id its file held.
 */
function ranBefore(ledger: Ledger | null | undefined): boolean {
  if (!ledger) return false;
  try {
    return ledger.read(() => ledger.statement("SELECT 1 FROM files LIMIT 1").get()) !== undefined;
  } catch {
    return false; // Unreadable: nothing to say of it here (the ledger says its own trouble).
  }
}

/**
 * Write the id this process holds for `stateDir` (see {@linkcode senderId}) back into its file
 * where that no longer says it (removed while the daemon ran); nothing when none is held.
 */
export function keepSenderId(stateDir: string): void {
  if (held.has(resolve(stateDir))) senderId(stateDir, { writable: true });
}

/**
 * What is wrong with this install's id file in `stateDir`, in one line for `doctor` and `status`
 * (what, what `run` does with it, what to do), reading only: spoilt, or missing beside a ledger
 * that records files (removed since an earlier run: {@linkcode ranBefore}). `null` when it holds
 * an id, is not there yet (a fresh install), or `run` writes back the id kept for it (by the
 * running daemon, or by `ledger`, as an older version did).
 *
 * @param options.daemonRuns a daemon runs with `stateDir` (it holds the id and writes it back)
 * @param options.ledger the ledger in `stateDir`, read as it is, if there is one
 */
export function senderIdTrouble(
  stateDir: string,
  options: { daemonRuns: boolean; ledger?: Ledger | null },
): string | null {
  const path = join(stateDir, SENDER_ID_FILE);
  const found = readSenderId(path);
  if ("id" in found) return null;
  if ("missing" in found) {
    if (options.daemonRuns || !ranBefore(options.ledger)) return null;
    if (options.ledger?.meta(EARLIER_NAMES_KEY) === ID_DUE) return null; // Upgraded: a first id.
    if (SENDER_ID.test(options.ledger?.meta(LEDGER_KEY) ?? "")) return null;
    return `${path} is missing, although the ledger beside it records files of earlier runs: ` +
      `run makes a new id there ${LOST}; restore the file from a backup if there is one, else ` +
      "remove those by hand once no transfer is under way";
  }
  const { unusable } = found;
  if (unusable === IS_A_FOLDER) {
    return `${path} is a folder: run cannot keep this install's id there and names its ` +
      "temporary copies and upload folders by this computer's host name instead (as another PC " +
      "of that name may); remove the folder";
  }
  if (options.daemonRuns) {
    return `${path} ${unusable}: the running daemon writes its id back there when it stops (a ` +
      "restart keeps the id)";
  }
  if (SENDER_ID.test(options.ledger?.meta(LEDGER_KEY) ?? "")) return null;
  return unusable === "holds no id"
    ? `${path} holds no id: run makes a new id there ${LOST}; remove those by hand once no ` +
      "transfer is under way"
    : `${path} ${unusable}: run makes a new id there ${LOST}; to keep the id, let the daemon's ` +
      "account read the file";
}

/** What `run` no longer does once it made a new id ({@linkcode senderIdTrouble}'s words). */
const LOST = "and no longer resumes or removes the copies this install left at its " +
  "destinations under the old id (hidden names ending in .image-transfer-partial)";

/** Say that the sender id file at `path`, unusable (`why`), was replaced with a new id. */
function madeAnew(path: string, why: string): void {
  logger("ledger").warn(
    "This install's id file {path} {why}: a new id was made and written there. Upload folders " +
      "and temporary copies this install left under its old id (hidden names ending in " +
      ".image-transfer-partial in its destination folders, and in its archive folders with " +
      "after_transfer: move) are no longer resumed or removed by it: once no transfer is under " +
      "way, remove by hand those older than this start",
    { path, why },
  );
}

/** The state folders whose id cannot be kept, said once each (see {@linkcode notKept}). */
const toldNotKept = new Set<string>();

/**
 * Say, once for `stateDir`, that its id file cannot be kept (`why`): the names fall back to the
 * host name's id.
 */
function notKept(stateDir: string, why: string): void {
  if (toldNotKept.has(resolve(stateDir))) return;
  toldNotKept.add(resolve(stateDir));
  const path = join(stateDir, SENDER_ID_FILE);
  const todo = why === IS_A_FOLDER
    ? `remove the folder ${path}`
    : why === NOT_OURS
    ? `give ${path} to the daemon's account, or remove it`
    : `let the daemon's account write in ${stateDir} (free space there if its disk is full)`;
  logger("ledger").warn(
    "This install's id file {path} {why}: the id cannot be kept there, so the names of its " +
      "temporary copies and upload folders are by this computer's host name, as before each " +
      "install had its own id (another PC under the same host name, sending from the same watch " +
      "folder path to the same folder, may then remove this one's copies idle for an hour); " +
      "{todo}, then restart the daemon",
    { path, why, todo },
  );
}

/** Why a folder in the id file's place gives no id (see {@linkcode readSenderId}). */
const IS_A_FOLDER = "is a folder";

/** Why a file another account owns cannot be replaced (see {@linkcode othersInSticky}). */
const NOT_OURS =
  "is another account's, which run cannot replace in a state_dir with the sticky bit";

/**
 * Whether the file at `path` is another account's in a folder with the sticky bit (a shared one,
 * as /tmp): there only its owner (or the folder's) may replace it, whatever the folder's mode.
 */
function othersInSticky(path: string): boolean {
  try {
    const folder = Deno.statSync(dirname(path));
    return (folder.mode ?? 0) & 0o1000 ? Deno.lstatSync(path).uid !== Deno.uid() : false;
  } catch {
    return false;
  }
}

/** What the file at `path` says: an id, nothing (no file), or why it gives none. */
function readSenderId(path: string): Read {
  let text: string;
  try {
    text = Deno.readTextFileSync(path).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { missing: true };
    if (error instanceof Deno.errors.IsADirectory) return { unusable: IS_A_FOLDER };
    return { unusable: `cannot be read (${errorText(error)})` };
  }
  return SENDER_ID.test(text) ? { id: text } : { unusable: "holds no id" };
}

/** Why a file read back gives no id (`missing`: it was gone at once). */
function whyNot(read: Read): string {
  return "unusable" in read ? read.unusable : "is gone as soon as written";
}

/** An error of the file system in a few words. */
function errorText(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  return error instanceof Error ? error.message : String(error);
}

/** A new id (see {@linkcode SENDER_ID}). */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Create `stateDir` (and its parents) if needed, readable by the daemon's
 * account only (0700); a clear error naming `state_dir` otherwise.
 */
export function makeStateDir(stateDir: string): void {
  try {
    Deno.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    return;
  } catch (error) {
    const exists = error instanceof Deno.errors.AlreadyExists ||
      error instanceof Deno.errors.NotADirectory;
    throw stateDirError(
      stateDir,
      exists ? "it (or a folder on its path) is a file, not a folder" : whyUnwritable(error),
      error,
    );
  }
}

/**
 * Make the folder `path` of the state folder (`reports`), readable by the daemon's account only
 * (0700), never through a link: a link (or a file) in its place is moved aside to
 * `<name>.set-aside-<time>`, said at WARN, and the folder made anew; a folder an older version
 * made open to others is made private.
 */
export async function makeStateFolder(path: string): Promise<void> {
  const found = await Deno.lstat(path).catch(() => null);
  if (found !== null && !found.isDirectory) {
    const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
    const aside = `${path}.set-aside-${stamp}`;
    await Deno.rename(path, aside);
    logger("ledger").warn(
      "{path} was {what}, not a folder: it was moved to {aside} and the folder made, so " +
        "that nothing is written where it led; check who put it there",
      { path, what: found.isSymlink ? "a symbolic link" : "a file", aside },
    );
  }
  try {
    await Deno.mkdir(path, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const made = await Deno.lstat(path);
  if (!made.isDirectory) throw new Error(`${path} is not a folder (put there meanwhile)`);
  if (made.mode !== null && (made.mode & 0o077) !== 0) await Deno.chmod(path, made.mode & 0o700);
}

/**
 * The names of the daemon's files in its state folder (`daemon_lock.ts`'s, `ledger_check.ts`'s
 * ledger, {@linkcode SENDER_ID_FILE}, `reports`), with their journals and temporary names.
 */
const OWN_NAME = /^(daemon\.|ledger\.sqlite|sender_id(\.|$)|reports$)/;

/**
 * Refuse a state folder holding a symbolic link under the name of one of the daemon's files: the
 * ledger, the lock and its journal would be written through it, wherever it leads (the daemon
 * makes no link there).
 *
 * @throws {Error} naming each link, where it leads, and what to do
 */
export function assertNoStateLinks(stateDir: string): void {
  let links: string[];
  try {
    links = [...Deno.readDirSync(stateDir)]
      .filter((entry) => entry.isSymlink && OWN_NAME.test(entry.name))
      .map((entry) => join(stateDir, entry.name));
  } catch {
    return; // Cannot be listed: said where its files are opened.
  }
  if (links.length === 0) return;
  const named = links.map((link) => {
    try {
      return `${link} (to ${Deno.readLinkSync(link)})`;
    } catch {
      return link;
    }
  });
  throw new Error(
    `Cannot use state_dir ${stateDir}: ${named.join(", ")} ${
      links.length === 1 ? "is a symbolic link" : "are symbolic links"
    } under the name of the daemon's own files, which it would write through, wherever they ` +
      "lead; remove them (the daemon makes its files there itself), and find out who put them there",
  );
}

/** Why a folder or file cannot be written, in a user's words. */
export function whyUnwritable(error: unknown): string {
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if ((error as { code?: string }).code === "EROFS") return "it is on a read-only file system";
  return error instanceof Error ? error.message : String(error);
}

/** The error that says `state_dir` cannot be used (`why`), and what to set. */
export function stateDirError(stateDir: string, why: string, cause: unknown): Error {
  return new Error(
    `Cannot use state_dir ${stateDir}: ${why}; set state_dir to a folder this user can write`,
    { cause },
  );
}
