/**
 * Putting a verified copy under its final name, and the last check of it: the
 * final name must hold the copy just put there. Someone who may write the
 * destination folder can replace a temporary file between the check made
 * before it is put in place (the file open still named by it) and that call;
 * their file is then put back under the temporary name (removed with this
 * daemon's leftovers), never left under the final one.
 *
 * A copy that may replace a file there (the source's own earlier copy) is
 * renamed over it. One that may replace nothing (`TransferItem.noReplace`) is
 * linked under the final name, which fails when a file took that name since
 * it was looked at (another daemon sending there too): {@linkcode NameTaken},
 * the copy removed; once linked, its temporary name is removed. Where the
 * file system makes no hard links (FAT, some shares), it is renamed, the name
 * seen free just before. Either way the folder is flushed by the caller.
 *
 * @module
 */
import { linkSync, lstatSync, renameSync, type Stats, unlinkSync } from "node:fs";
import { rename } from "node:fs/promises";
import { TransferError } from "../../errors.ts";
import { NameTaken } from "../keep_others.ts";

/** What tells one file from another. */
export interface FileIdentity {
  ino: number;
  dev: number;
}

/** The error of a copy whose temporary file someone else replaced before its rename. */
export function replacedError(tempPath: string): TransferError {
  return new TransferError(
    `the temporary file ${tempPath} was replaced by someone else before the rename; not delivered`,
    "retry",
  );
}

/** A copy's temporary file gone before its rename (a share unmounted under it, say). */
export class CopyVanished extends TransferError {
  constructor(path: string, cause?: unknown) {
    super(`the temporary file ${path} disappeared before the rename`, "retry", { cause });
  }
}

/**
 * Whether `finalPath`, just renamed from `tempPath`, names another file than
 * `copy` (then put back under `tempPath`). A final name already gone was
 * this copy, moved on at once by someone else.
 */
export function renamedForeignSync(
  tempPath: string,
  finalPath: string,
  copy: FileIdentity,
): boolean {
  let named: Stats;
  try {
    named = lstatSync(finalPath);
  } catch {
    return false;
  }
  if (isCopy(named, copy)) return false;
  try {
    renameSync(finalPath, tempPath);
  } catch {
    // Moved on meanwhile.
  }
  return true;
}

/** {@linkcode renamedForeignSync}, its calls made with `lstat` and on the thread pool. */
export async function renamedForeign(
  tempPath: string,
  finalPath: string,
  copy: FileIdentity,
  lstat: (path: string) => Promise<Stats>,
): Promise<boolean> {
  const named = await lstat(finalPath).catch(() => null);
  if (named === null || isCopy(named, copy)) return false;
  await rename(finalPath, tempPath).catch(() => {});
  return true;
}

/**
 * Put the copy `copy` under `finalPath` from `tempPath` (see the module doc); whether the final
 * name then held another file (put back under `tempPath`: see {@linkcode renamedForeignSync}).
 *
 * @throws {NameTaken} for a `noReplace` copy whose final name holds something
 */
export function placeSync(
  tempPath: string,
  finalPath: string,
  copy: FileIdentity,
  noReplace = false,
): boolean {
  if (noReplace) {
    let linked = true;
    try {
      linkSync(tempPath, finalPath);
    } catch {
      linked = false;
    }
    const look = (path: string) => {
      try {
        return lstatSync(path);
      } catch {
        return null;
      }
    };
    const next = afterLink(tempPath, finalPath, linked, look(finalPath), look(tempPath), copy);
    if (next !== "rename") {
      try {
        if (next.remove !== null) unlinkSync(next.remove);
      } catch {
        // Gone meanwhile.
      }
      if (next.taken !== null) throw next.taken;
      return next.foreign;
    }
  }
  renameSync(tempPath, finalPath);
  return renamedForeignSync(tempPath, finalPath, copy);
}

/** {@linkcode placeSync}, its calls made with `lstat` and `remove` and on the thread pool. */
export async function place(
  tempPath: string,
  finalPath: string,
  copy: FileIdentity,
  noReplace: boolean | undefined,
  lstat: (path: string) => Promise<Stats>,
  remove: (path: string) => Promise<void>,
): Promise<boolean> {
  if (noReplace) {
    const linked = await Deno.link(tempPath, finalPath).then(() => true, () => false);
    const [final, temp] = await Promise.all(
      [finalPath, tempPath].map((path) => lstat(path).catch(() => null)),
    );
    const next = afterLink(tempPath, finalPath, linked, final, temp, copy);
    if (next !== "rename") {
      if (next.remove !== null) await remove(next.remove).catch(() => {});
      if (next.taken !== null) throw next.taken;
      return next.foreign;
    }
  }
  await Deno.rename(tempPath, finalPath);
  return await renamedForeign(tempPath, finalPath, copy, lstat);
}

/**
 * What is left to do once the copy under `tempPath` was `linked` under `finalPath` (or the link
 * failed), `final` and `temp` what those names hold now: a name to `remove`, the error of a final
 * name `taken`, whether it held another file (`foreign`); or `rename` (no hard links here, the
 * final name free).
 */
function afterLink(
  tempPath: string,
  finalPath: string,
  linked: boolean,
  final: Stats | null,
  temp: Stats | null,
  copy: FileIdentity,
): "rename" | { remove: string | null; taken: NameTaken | null; foreign: boolean } {
  const ours = temp !== null && isCopy(temp, copy);
  if (!linked) {
    if (final === null) return "rename";
    // Another file (or folder, link...) took the name since the look: left as it is.
    const taken = new NameTaken(finalPath, final.isFile());
    return { remove: ours ? tempPath : null, taken, foreign: false };
  }
  // The copy, or moved on at once; or another number for the same file where a file system
  // numbers each name (a FUSE view), told by the temporary name still holding the copy.
  if (final === null || isCopy(final, copy) || ours) {
    return { remove: ours ? tempPath : null, taken: null, foreign: false };
  }
  // The temporary name held another's file when linked: it stays there alone.
  return { remove: finalPath, taken: null, foreign: true };
}

function isCopy(named: Stats, copy: FileIdentity): boolean {
  return !named.isSymbolicLink() && named.ino === copy.ino && named.dev === copy.dev;
}
