/**
 * The state folder's small files beside the ledger (`daemon.json`, `daemon.pid`, `daemon.moved`,
 * `sender_id`): each written whole ({@linkcode writeAtomically}); and the one of them that
 * outlives every run, this install's own id.
 *
 * The id (the "sender id") is random, made at the install's first start and kept in the file
 * {@linkcode SENDER_ID_FILE} of its `state_dir`, beside the ledger and not in it, so a damaged
 * ledger set aside or a lost one leaves it. The names of the install's upload folders, temporary
 * copies and unfinished archive copies hold it (through `jobOwner` in `transfer/temp_name.ts`):
 * the install sweeps and resumes only its own.
 *
 * @module
 */
import { join } from "node:path";
import type { FactStore } from "../config/file_systems.ts";

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

/**
 * This install's id, kept in `stateDir`'s {@linkcode SENDER_ID_FILE}; `null` where it cannot be
 * kept (then `jobOwner` falls back to the host name's id, the same at each start).
 *
 * The file's id, when it holds one. Otherwise, with `writable`: the one an older version kept in
 * `ledger`, else a new one, written into the file. Without `writable` (a command that changes
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
  const kept = readSenderId(path);
  if (kept !== null) return kept;
  let known: string | null = null;
  try {
    known = options.ledger?.meta(LEDGER_KEY) ?? null;
  } catch { /* unreadable: made anew */ }
  if (known !== null && !SENDER_ID.test(known)) known = null;
  if (!options.writable) return known;
  try {
    writeAtomically(path, `${known ?? randomId()}\n`);
  } catch {
    return known; // An unwritable state_dir: the ledger's id, else the host name's.
  }
  return readSenderId(path);
}

/** The id in the file at `path`, or `null` (none, unreadable, or not an id). */
function readSenderId(path: string): string | null {
  try {
    const text = Deno.readTextFileSync(path).trim();
    return SENDER_ID.test(text) ? text : null;
  } catch {
    return null;
  }
}

/** A new id (see {@linkcode SENDER_ID}). */
function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
