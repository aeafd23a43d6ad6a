/**
 * The state folder's small files beside the ledger (`daemon.json`, `daemon.pid`, `daemon.moved`,
 * `sender_id`): each written whole ({@linkcode writeAtomically}); and the one of them that
 * outlives every run, this install's own id.
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
import { join, resolve } from "node:path";
import type { FactStore } from "../config/file_systems.ts";
import { logger } from "../log/logging.ts";

/**
 * Write `text` to a file of the state folder at `path` (0600), flushed, through a temporary name:
 * readers never see half a file, nor a crash an empty one.
 */
export function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${Deno.pid}.tmp`;
  try {
    {
      using file = Deno.openSync(temp, { write: true, create: true, truncate: true, mode: 0o600 });
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
 * file that holds no id or cannot be read is said in one WARN line (what the install left at its
 * destinations under the old id is no longer its own). Without `writable` (a command that changes
 * nothing) nothing is written: the file's id, else the ledger's.
 *
 * @param options.writable files may be made and written in `stateDir` (the running daemon)
 * @param options.ledger the ledger in `stateDir`, which may hold the id an older version kept
 */
export function senderId(
  stateDir: string,
  options: { writable: boolean; ledger?: FactStore | null },
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
  try {
    writeAtomically(path, `${id}\n`);
  } catch {
    return known; // An unwritable state_dir: the ledger's id, else the host name's.
  }
  const written = readSenderId(path);
  if (!("id" in written)) return known;
  held.set(resolve(stateDir), written.id);
  if ("unusable" in found && known === null) madeAnew(path, found.unusable);
  return written.id;
}

/**
 * Write the id this process holds for `stateDir` (see {@linkcode senderId}) back into its file
 * where that no longer says it (removed while the daemon ran); nothing when none is held.
 */
export function keepSenderId(stateDir: string): void {
  if (held.has(resolve(stateDir))) senderId(stateDir, { writable: true });
}

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

/** What the file at `path` says: an id, nothing (no file), or why it gives none. */
function readSenderId(path: string): Read {
  let text: string;
  try {
    text = Deno.readTextFileSync(path).trim();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { missing: true };
    if (error instanceof Deno.errors.IsADirectory) return { unusable: "is a folder" };
    const why = error instanceof Deno.errors.PermissionDenied ? "permission denied" : error;
    return { unusable: `cannot be read (${why instanceof Error ? why.message : why})` };
  }
  return SENDER_ID.test(text) ? { id: text } : { unusable: "holds no id" };
}

/** A new id (see {@linkcode SENDER_ID}). */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
