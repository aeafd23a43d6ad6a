/**
 * Opening a source file the way every transport must: never through a
 * symbolic link (unless the item says the link may be followed), never
 * anything but a regular file, never blocking (a FIFO put in the file's place
 * is refused, not waited on).
 *
 * Deno's own `open` cannot refuse links, so this uses `node:fs` with
 * `O_NOFOLLOW` where the OS has it, and compares the opened file with the
 * path's `lstat` (device and inode) where it does not.
 *
 * @module
 */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  type Stats,
  statSync,
} from "node:fs";
import { TransferError } from "../errors.ts";
import { sourceUnreadable } from "./classify.ts";
import type { TransferItem } from "./transport.ts";

/** What the transports carry over from a source to its copy. */
export interface SourceInfo {
  size: number;
  mtimeMs: number;
  atimeMs: number;
  /** Permission bits (`0o777` at most). */
  permissions: number;
}

/** An open source file; close it with {@linkcode closeSource}. */
export interface OpenSource {
  fd: number;
  info: SourceInfo;
}

const NO_FOLLOW = constants.O_NOFOLLOW ?? 0;
const NON_BLOCK = constants.O_NONBLOCK ?? 0;

/**
 * Open `item.source` for reading (see the module doc).
 *
 * @throws {TransferError} `fatal` for a link the item does not allow following
 *   or a source that is not a regular file or cannot be read; `retry` for a
 *   source that vanished or was replaced while being opened
 */
export function openSource(item: TransferItem): OpenSource {
  let path: Stats;
  try {
    path = item.followLink ? statSync(item.source) : lstatSync(item.source);
  } catch (error) {
    throw sourceUnreadable(item.source, nodeError(error));
  }
  if (path.isSymbolicLink()) throw isLink(item);
  if (!path.isFile()) throw notRegular(item);
  let fd: number;
  try {
    fd = openSync(item.source, constants.O_RDONLY | NON_BLOCK | (item.followLink ? 0 : NO_FOLLOW));
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ELOOP" || code === "EMLINK") throw replaced(item);
    throw sourceUnreadable(item.source, nodeError(error));
  }
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) throw notRegular(item);
    // Another file (or a link) took the name between the lstat and the open.
    if (opened.ino !== path.ino || opened.dev !== path.dev) throw replaced(item);
    return {
      fd,
      info: {
        size: opened.size,
        mtimeMs: opened.mtimeMs,
        atimeMs: opened.atimeMs,
        permissions: opened.mode & 0o777,
      },
    };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** Close a source opened with {@linkcode openSource}. */
export function closeSource(source: OpenSource): void {
  closeSync(source.fd);
}

/**
 * Check that `item.source` can be opened as {@linkcode openSource} does and
 * still has the size and mtime recorded in `item`; for transports that hand
 * the path to another program. Returns what the copy should carry over.
 *
 * @throws {TransferError} as {@linkcode openSource}, and `retry` when the
 *   source changed since it was judged complete
 */
export function inspectSource(item: TransferItem): SourceInfo {
  const source = openSource(item);
  closeSource(source);
  const { size, mtimeMs } = source.info;
  if (size !== item.size || Math.trunc(mtimeMs) !== Math.trunc(item.mtimeMs)) {
    throw new TransferError(
      `Cannot send ${item.source}: source changed during transfer (size ${item.size} -> ${size})`,
      "retry",
    );
  }
  return source.info;
}

/**
 * The permission bits a delivered copy gets: the source's, without write
 * permission for group and others.
 */
export function deliveredPermissions(info: SourceInfo): number {
  return info.permissions & 0o755;
}

function isLink(item: TransferItem): TransferError {
  return new TransferError(
    `Cannot send ${item.source}: it is a symbolic link, which is not followed`,
    "fatal",
  );
}

function notRegular(item: TransferItem): TransferError {
  return new TransferError(`Cannot send ${item.source}: not a regular file`, "fatal");
}

function replaced(item: TransferItem): TransferError {
  return new TransferError(
    `Cannot send ${item.source}: source changed during transfer (replaced while being opened)`,
    "retry",
  );
}

/** The Deno error class for a `node:fs` error, so callers can tell NotFound apart. */
function nodeError(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ENOENT") return new Deno.errors.NotFound(message, { cause: error });
  if (code === "EACCES" || code === "EPERM") {
    return new Deno.errors.PermissionDenied(message, { cause: error });
  }
  return error;
}
