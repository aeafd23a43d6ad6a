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
 * Streaming SHA-256 of a source file (never holds the file in memory).
 *
 * The error for a source that cannot be read, and whether it may come back.
 *
 * @module
 */
import {
  close,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  open,
  openSync,
  read,
  readSync,
  type Stats,
  statSync,
} from "node:fs";
import { promisify } from "node:util";
import { DESCRIPTOR_SHORTAGE_ADVICE, isDescriptorShortage, TransferError } from "../errors.ts";
import { linkedFolder } from "../layout/watch_folder_paths.ts";
import type { TransferItem } from "./transport.ts";
import { createHash } from "node:crypto";
import { setImmediate } from "node:timers";

/** What the transports carry over from a source to its copy. */
export interface SourceInfo {
  size: number;
  mtimeMs: number;
  atimeMs: number;
  /** Permission bits (`0o777` at most). */
  permissions: number;
  /**
   * When the file's data or metadata last changed (`ctime`), which no program can set: a write in
   * place that keeps the size and sets the mtime back (`touch -r`) still moves it. The runtime
   * gives it to the second, so a write in the second the file was opened goes unseen.
   */
  ctimeMs: number;
  /** Names the file has (0: removed from its folder, its bytes still read through the open file). */
  names: number;
}

/** What opening and checking a source needs of its item. */
export type SourceRef = Pick<
  TransferItem,
  "source" | "followLink" | "size" | "mtimeMs" | "watchFolder"
>;

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
export function openSource(item: SourceRef): OpenSource {
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
    if (item.watchFolder !== undefined) reachedWithoutLinks(item, item.watchFolder, opened);
    return { fd, info: infoOf(opened) };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * The `lstat` and the open above follow links in every folder of the path: a folder swapped for a
 * link to another place once the file was found (by someone who may write in the watch folder)
 * would have them read a file from there. So, once the file is open, no folder between the watch
 * folder and the file may be a link, and the name must still lead to the file opened (a link
 * swapped in for the open and out again before this look leads elsewhere).
 *
 * @throws {TransferError} `fatal` for a folder that is a link; `retry` for a name that now
 *   leads to another file
 */
function reachedWithoutLinks(item: SourceRef, watchFolder: string, opened: Stats): void {
  const linked = linkedFolder(watchFolder, item.source);
  if (linked !== null) {
    throw new TransferError(
      `Cannot send ${item.source}: it is inside ${linked}, a symbolic link to a folder, which ` +
        "is not followed",
      "fatal",
    );
  }
  let now: Stats;
  try {
    now = item.followLink ? statSync(item.source) : lstatSync(item.source);
  } catch {
    throw replaced(item);
  }
  if (now.ino !== opened.ino || now.dev !== opened.dev) throw replaced(item);
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
  return unchanged(item, source.info);
}

/**
 * {@linkcode inspectSource} of a source still open, once its bytes are read:
 * the file they were read from still has the size and mtime recorded in
 * `item` (a name taken by another file since does not change what was read).
 *
 * @throws {TransferError} `retry` when the source changed since it was judged complete
 */
export function inspectOpenSource(item: SourceRef, source: OpenSource): SourceInfo {
  return unchangedSince(item, source.info, infoOf(fstatSync(source.fd)));
}

/**
 * `now`, when it is still the version recorded in `item` and nothing was written to the file
 * since `before` was looked at (its `ctime` did not move, unless the file was removed): a file
 * rewritten in place while it was read, its size kept and its mtime set back, would otherwise pass
 * as the version judged complete.
 *
 * @throws {TransferError} `retry` when the source changed since it was judged complete, or since
 *   `before`
 */
export function unchangedSince(item: SourceRef, before: SourceInfo, now: SourceInfo): SourceInfo {
  unchanged(item, now);
  // Removed while it was read (which moves the change time too): no one can write it by its name
  // any more, and what was read is the version judged complete.
  if (now.ctimeMs !== before.ctimeMs && now.names > 0) {
    throw new TransferError(
      `Cannot send ${item.source}: source changed during transfer (written to or its ` +
        "attributes changed while it was read, its size and mtime kept)",
      "retry",
    );
  }
  return now;
}

/**
 * `info`, when it is still the version recorded in `item`.
 *
 * @throws {TransferError} `retry` when the source changed since it was judged complete
 */
export function unchanged(item: SourceRef, info: SourceInfo): SourceInfo {
  if (info.size !== item.size || Math.trunc(info.mtimeMs) !== Math.trunc(item.mtimeMs)) {
    // Say what changed: a file rewritten in place (or touched) keeps its size.
    const what = info.size !== item.size
      ? `size ${item.size} -> ${info.size}`
      : `same size, modified ${isoTime(item.mtimeMs)} -> ${isoTime(info.mtimeMs)}`;
    throw new TransferError(
      `Cannot send ${item.source}: source changed during transfer (${what})`,
      "retry",
    );
  }
  return info;
}

/** A file's mtime as an ISO 8601 UTC time, to the millisecond. */
function isoTime(mtimeMs: number): string {
  return new Date(Math.trunc(mtimeMs)).toISOString();
}

/** What a copy needs to know of its source, from the open file. */
function infoOf(opened: Stats): SourceInfo {
  return {
    size: opened.size,
    mtimeMs: opened.mtimeMs,
    atimeMs: opened.atimeMs,
    permissions: opened.mode & 0o777,
    ctimeMs: opened.ctimeMs,
    names: opened.nlink,
  };
}

/**
 * The permission bits a delivered copy gets: the source's, without write
 * permission for group and others.
 */
export function deliveredPermissions(info: SourceInfo): number {
  return info.permissions & 0o755;
}

function isLink(item: SourceRef): TransferError {
  return new TransferError(
    `Cannot send ${item.source}: it is a symbolic link, which is not followed`,
    "fatal",
  );
}

function notRegular(item: SourceRef): TransferError {
  return new TransferError(`Cannot send ${item.source}: not a regular file`, "fatal");
}

function replaced(item: SourceRef): TransferError {
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

/** Bytes read (and hashed or copied) between two turns of the event loop. */
const CHUNK_BYTES = 1024 * 1024;
/** Free chunk buffers kept for the next reads (as many as reads at once in a busy burst). */
const CHUNKS_KEPT = 8;
/** How long free chunk buffers are kept after the last read (ms). */
const CHUNKS_KEPT_MS = 5_000;

/** Chunk buffers no read is using (see {@linkcode takeChunk}). */
const freeChunks: Uint8Array[] = [];
let freeChunksTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * A buffer for reading a source or a copy a chunk at a time, to give back
 * with {@linkcode giveChunk} in a `finally` once done: nothing may read or
 * write it after that (hand its bytes to another thread only as a copy).
 * Buffers are reused from read to read: fresh memory costs a page fault per
 * 4 KiB at its first write (on a virtual machine, more than the read itself)
 * and a garbage collection to give back, and a burst reads hundreds of
 * megabytes. One given back before the first `await`, as a small file's read
 * is, is the next read's. Each is one byte longer than a chunk, so that the
 * read that finds a small file's end says so at once.
 */
export function takeChunk(): Uint8Array {
  return freeChunks.pop() ?? new Uint8Array(CHUNK_BYTES + 1);
}

/** Give back a buffer of {@linkcode takeChunk}; none is kept once reads stop for a while. */
export function giveChunk(buffer: Uint8Array): void {
  if (freeChunks.length < CHUNKS_KEPT) freeChunks.push(buffer);
  clearTimeout(freeChunksTimer);
  freeChunksTimer = setTimeout(() => freeChunks.length = 0, CHUNKS_KEPT_MS);
  // A daemon that has nothing else to do does not wait for it.
  Deno.unrefTimer(freeChunksTimer);
}

/**
 * The SHA-256 of `item.source`, as lowercase hex, read through a descriptor
 * opened as every transport opens sources (see {@linkcode openSource}). Reads
 * synchronously, a chunk at a time, and yields to the event loop between
 * chunks: about a third less CPU than awaiting each read, and other work
 * waits at most one chunk (about a millisecond).
 *
 * @throws {TransferError} when the source cannot be opened (see `openSource`)
 */
export async function hashSource(item: TransferItem): Promise<string> {
  const source = openSource(item);
  try {
    return await sha256OfDescriptor(source.fd);
  } finally {
    closeSource(source);
  }
}

/**
 * The SHA-256 of the file at `path` (a delivered copy on this machine), as
 * lowercase hex, every call on the runtime's thread pool (see
 * {@linkcode sha256OfDescriptor}).
 */
export async function hashFile(path: string): Promise<string> {
  const fd = await openOff(path, "r");
  try {
    return await sha256OfDescriptor(fd, readOff);
  } finally {
    await closeOff(fd);
  }
}

/** `open` on the runtime's thread pool. */
const openOff = promisify(open) as (path: string, flags: string | number) => Promise<number>;

/** `close` on the runtime's thread pool. */
const closeOff: (fd: number) => Promise<void> = promisify(close);

/** A read of up to `length` bytes of `fd` at `position` into `buffer` at `offset`; resolves to the bytes read. */
export type ReadAt = (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
) => Promise<number>;

const readWithCallback = promisify(read) as unknown as (
  ...args: Parameters<ReadAt>
) => Promise<{ bytesRead: number }>;

/** `read` at a position on the runtime's thread pool. */
export const readOff: ReadAt = async (...args) => (await readWithCallback(...args)).bytesRead;

/**
 * The SHA-256 of what the open file `fd` holds, read from its start, as
 * lowercase hex, a chunk at a time (other work waits at most one chunk).
 * Hashed on this thread by `node:crypto`: the runtime's `crypto.subtle.digest`
 * copies its input and hashes it during the call as well, at about half
 * the speed. Read with `readAt` when given (a copy on a share, whose reads
 * may hang, is read on the runtime's thread pool: see `DestinationCalls`).
 */
export async function sha256OfDescriptor(fd: number, readAt?: ReadAt): Promise<string> {
  const hash = createHash("sha256");
  const buffer = takeChunk();
  try {
    for (let position = 0;;) {
      const n = readAt
        ? await readAt(fd, buffer, 0, buffer.length, position)
        : readSync(fd, buffer, 0, buffer.length, position);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      position += n;
      // A file read whole at once (its first read came short: the buffer is a byte longer than
      // a chunk) needs no read to find its end.
      if (position === n && n < buffer.length) break;
      // Not setTimeout(0): nested timeouts are clamped to 4 ms, which would triple the time.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    giveChunk(buffer);
  }
  return hash.digest("hex");
}

/**
 * The error for a local source that cannot be read: fatal for that file when
 * access is denied, retryable when it vanished (it may come back) or its file
 * system does not answer (a share unmounted, its server gone: it may come back
 * too, and its permissions are not what is wrong) or this machine ran out of
 * open files (it passes; the limit is what to raise).
 */
export function sourceUnreadable(source: string, error: unknown): TransferError {
  if (error instanceof Deno.errors.NotFound) {
    return new TransferError(`Cannot send ${source}: source vanished before transfer`, "retry", {
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  if (isDescriptorShortage(error)) {
    return new TransferError(
      `Cannot send ${source}: cannot open the source file (${message}): ${DESCRIPTOR_SHORTAGE_ADVICE}`,
      "retry",
      { cause: error },
    );
  }
  if (shareGone(error, message)) {
    return new TransferError(
      `Cannot send ${source}: its file system does not answer (${message}); a share unmounted ` +
        "or its server gone? It is tried again",
      "retry",
      { cause: error },
    );
  }
  return new TransferError(
    `Cannot send ${source}: cannot read the source file (${message}); fix its permissions`,
    "fatal",
    { cause: error },
  );
}

/** Errors of a file system that does not answer: EIO, ENOTCONN, ESTALE, ETIMEDOUT, EHOSTDOWN. */
const SHARE_GONE_CODES = new Set(["EIO", "ENOTCONN", "ESTALE", "ETIMEDOUT", "EHOSTDOWN"]);
const SHARE_GONE_OS_ERRORS = /\(os error (5|107|116|110|112)\)/;

/** Whether `error` (saying `message`) comes from a file system that does not answer. */
function shareGone(error: unknown, message: string): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (typeof code === "string" && SHARE_GONE_CODES.has(code)) ||
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.TimedOut ||
    SHARE_GONE_OS_ERRORS.test(message);
}
