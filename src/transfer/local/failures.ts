/**
 * What a failed local copy means, in the user's words: the system's error
 * (Deno's `No space left on device (os error 28): open '...'` or Node's
 * `EPERM: operation not permitted, open '...'`, about the hidden temporary
 * file) turned into what is wrong with which destination folder and what to
 * do, with how the file is retried: a full or read-only destination holds the
 * job until it takes files again, as does the base path that cannot be written (every file's
 * folder is made there), a folder below it that cannot be written waits for a
 * fix (the file is tried again slowly), a file in the way of a folder is
 * retried, a name or path too long for the file system fails the file
 * (`too_long.ts`).
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import {
  DESCRIPTOR_SHORTAGE_ADVICE,
  guardedPathReason,
  isDescriptorShortage,
  TransferError,
} from "../../errors.ts";
import type { TransferItem } from "../transport.ts";
import { otherBase } from "../base_folder.ts";
import { tooLongReason } from "../too_long.ts";
import { isNameTooLong } from "../../config/path_limits.ts";

/** The call and the path a system error quotes: Deno's words, or Node's. */
const QUOTED = /(?:\(os error \d+\):|^E[A-Z]+: [^,]*,) (\w+) '(.*?)'(?: -> '.*')?$/s;

/**
 * The file that stands where a folder must be, for an error like
 * `Not a directory (os error 20): open '/d/20240315/x.fits'` (or Node's
 * `ENOTDIR: not a directory, open '...'`): the nearest
 * ancestor of the quoted path (or the path itself, for a `mkdir`) that exists
 * and is not a folder. `undefined` when the message names no path or nothing
 * is in the way (any more).
 */
export function fileInTheWay(message: string): string | undefined {
  const match = QUOTED.exec(message);
  if (match === null) return undefined;
  const [, op, quoted] = match;
  // "File exists" is about a folder only when making one (a file created exclusively may exist).
  if (/File exists|EEXIST/.test(message) && op !== "mkdir") return undefined;
  const candidates: string[] = [];
  for (let path = quoted; dirname(path) !== path; path = dirname(path)) candidates.push(path);
  // The topmost non-folder is the one in the way (the ones below it cannot exist).
  for (const path of candidates.reverse()) {
    try {
      if (!Deno.lstatSync(path).isDirectory) return path;
    } catch {
      return undefined; // Missing: nothing below it is in the way.
    }
  }
  return undefined;
}

/**
 * The system's reason without its code and the path it quotes (`No space left on device`,
 * `operation not permitted`), and where it happened: the folder being made (`mkdir`), else
 * `folder` (the file's destination folder) or the folder of the quoted path.
 */
function plainly(reason: string, folder?: string): { words: string; made?: string; in?: string } {
  const words = reason.replace(/ \(os error \d+\)(?::.*)?$/s, "").replace(
    /^E[A-Z]+: ([^,]*)(?:,.*)?$/s,
    "$1",
  );
  const match = QUOTED.exec(reason);
  if (match?.[1] === "mkdir") return { words, made: match[2] };
  return { words, in: folder ?? (match ? dirname(match[2]) : undefined) };
}

/**
 * Classify a local copy error; `folder` is the file's destination folder, named in what is said
 * of a destination that cannot be written. Where that is the base path `given` itself (a night
 * folder made there, a file copied into it) it is every file's (see `ownFolderRefused` in
 * `errors.ts`): the job waits for it, in the words `failureScope` takes for the whole destination
 * (another base folder given with `--to` where `fromTo`: a run without a config file).
 */
export function toTransferError(
  item: TransferItem,
  error: unknown,
  folder?: string,
  given?: { path: string; fromTo?: boolean },
): TransferError {
  const base = given?.path;
  if (error instanceof TransferError) {
    if (error.message.startsWith("Cannot send ") || error.message.startsWith("Verification")) {
      return error;
    }
    return new TransferError(`Cannot send ${item.source}: ${error.message}`, error.kind, {
      cause: error,
    });
  }
  const guarded = guardedPathReason(error);
  if (guarded !== null) return new TransferError(`Cannot send ${item.source}: ${guarded}`, "fatal");
  const reason = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  const fail = (text: string, kind: TransferError["kind"]) =>
    new TransferError(`Cannot send ${item.source}: ${text}`, kind, { cause: error });
  const said = plainly(reason, folder);
  const where = said.made ? ` (making the folder ${said.made})` : said.in ? ` in ${said.in}` : "";
  if (error instanceof Deno.errors.NotFound || code === "ENOENT") return fail(reason, "retry");
  if (isDescriptorShortage(error)) {
    return fail(`${said.words}${where}: ${DESCRIPTOR_SHORTAGE_ADVICE}`, "retry");
  }
  if (isNameTooLong(error)) {
    const path = base === undefined ? undefined : join(base, ...item.destination.split("/"));
    return fail(tooLongReason(path, given?.fromTo), "fatal");
  }
  if (code === "ENOSPC" || code === "EDQUOT" || /No space left|quota/i.test(reason)) {
    return fail(
      `destination is full: ${said.words}${where}; files wait until there is room again ` +
        "(free some space there)",
      "retry-later",
    );
  }
  if (code === "EROFS" || /read-only file system/i.test(reason)) {
    return fail(
      `the destination is on a read-only file system${where}: nothing can be written there; ` +
        "files wait until it can (mount it read-write)",
      "retry-later",
    );
  }
  if (
    error instanceof Deno.errors.NotADirectory || error instanceof Deno.errors.AlreadyExists ||
    code === "ENOTDIR" || code === "EEXIST"
  ) {
    const blocker = fileInTheWay(reason);
    if (blocker !== undefined) {
      return fail(
        `a file named ${basename(blocker)} is in the way at ${blocker}, where a folder must ` +
          "be; move or rename that file",
        "retry",
      );
    }
  }
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    const inBase = base !== undefined &&
      resolve(said.made ? dirname(said.made) : said.in ?? "/") ===
        resolve(base);
    if (inBase) {
      return fail(
        `the user the daemon runs as may not write into the destination folder ${base} ` +
          `(${said.words}), where every file's folder is made: give that user write permission ` +
          "there (or lift an immutable attribute: chattr -i), or " + otherBase(given?.fromTo),
        "retry-later",
      );
    }
    const what = said.made
      ? `the folder ${said.made} cannot be made in ${dirname(said.made)}`
      : `nothing can be written${where}`;
    return fail(
      `${what} (${said.words}); give the user the daemon runs as write permission there (or ` +
        "lift an immutable attribute: chattr -i); the file is tried again until then",
      "fatal",
    );
  }
  return fail(reason, "retry");
}
