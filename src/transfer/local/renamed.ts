/**
 * The last check of a rename into place: the final name must hold the copy
 * just renamed. Someone who may write the destination folder can replace a
 * temporary file between the check made before its rename (the file open
 * still named by it) and the rename itself; their file is then put back
 * under the temporary name (removed with this daemon's leftovers), never
 * left under the final one.
 *
 * @module
 */
import { lstatSync, renameSync, type Stats } from "node:fs";
import { rename } from "node:fs/promises";
import { TransferError } from "../../errors.ts";

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

function isCopy(named: Stats, copy: FileIdentity): boolean {
  return !named.isSymbolicLink() && named.ino === copy.ino && named.dev === copy.dev;
}
