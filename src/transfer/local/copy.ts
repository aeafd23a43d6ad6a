/**
 * The file operations of the `local` transport: copying a source into an open
 * temporary file (hashing it on the way), re-reading a copy, checking that a
 * temporary name still holds the file opened, flushing a folder, timing the
 * calls on the destination (a share may stop answering), and sorting local
 * errors.
 *
 * @module
 */
import type { Throttle } from "../throttle.ts";
import { createHash, type Hash } from "node:crypto";
import {
  close,
  closeSync,
  fchmod,
  fchmodSync,
  fstat,
  fstatSync,
  futimes,
  futimesSync,
  lstat,
  lstatSync,
  open,
  openSync,
  readSync,
  statfs,
  type Stats,
  type StatsFs,
  write,
} from "node:fs";
import { promisify } from "node:util";
import { basename, dirname } from "node:path";
import { guardedPathReason, TransferError } from "../../errors.ts";
import {
  giveChunk,
  type OpenSource,
  type ReadAt,
  readOff,
  sha256OfDescriptor,
  takeChunk,
} from "../source.ts";
import { verifyCopy } from "../deliver.ts";
import { CopyVanished, replacedError } from "./renamed.ts";
import { fileSystemKind } from "../../config/file_systems.ts";
import type { TransferItem } from "../transport.ts";

/** What {@linkcode copyData} copied. */
export interface Written {
  /** Bytes the copy holds. */
  bytes: number;
  /** Bytes written by this copy (less than `bytes` for a resumed copy). */
  appended: number;
  /** SHA-256 of the bytes read from the source, when asked for. */
  sha256: string | null;
}

/** Options of {@linkcode copyData}. */
export interface CopyOptions {
  /** Hash what is copied (continuing `hash` when given, a state fed with the first `from` bytes). */
  hashIt?: boolean;
  hash?: Hash | null;
  /** Paces the copy (a bandwidth limit). */
  throttle?: Throttle | null;
  /** Bytes `target` already holds (a resumed copy): both files are read and written from there. */
  from?: number;
  /** Copy no further than the source's first `upTo` bytes (a part of a growing file). */
  upTo?: number;
  /** Times each write (see {@linkcode AnswerWatch}). */
  answers?: AnswerWatch["on"];
  /** The same file as `target`, opened with the runtime's API: the writes go through it. */
  writer?: Deno.FsFile | null;
}

/**
 * Copy the source into `target`, a chunk at a time: each chunk read at once
 * (the source was just written: it is in the page cache) and written, through
 * `writer` when given (on the runtime's thread pool: a share may stop
 * answering), else with `node:fs`'s `write` (made on the daemon's thread);
 * paced by a throttle when given (a bandwidth limit). `bytes` counts the whole
 * copy (the part it started from included), `appended` what this call wrote.
 */
export async function copyData(
  source: OpenSource,
  target: number,
  signal: AbortSignal,
  options: CopyOptions = {},
): Promise<Written> {
  const from = options.from ?? 0;
  const upTo = options.upTo ?? Infinity;
  const hash: Hash | null = options.hash ?? (options.hashIt ? createHash("sha256") : null);
  const buffer = takeChunk();
  let bytes = from;
  const writer = options.writer ?? null;
  try {
    if (writer !== null) await writer.seek(from, Deno.SeekMode.Start);
    while (bytes < upTo) {
      signal.throwIfAborted();
      const n = readSync(source.fd, buffer, 0, Math.min(buffer.length, upTo - bytes), bytes);
      if (n === 0) break;
      const chunk = buffer.subarray(0, n);
      hash?.update(chunk);
      let offset = 0;
      while (offset < n) {
        const write = writer !== null
          ? writer.write(chunk.subarray(offset))
          : writeAt(target, chunk, offset, n - offset, bytes + offset).then((w) => w.bytesWritten);
        offset += await (options.answers?.(write) ?? write);
      }
      bytes += n;
      if (options.throttle) await options.throttle.sent(n, signal);
    }
  } finally {
    giveChunk(buffer);
  }
  // An empty file reads no chunk at all; a file that grew meanwhile is hashed as copied.
  return { bytes, appended: bytes - from, sha256: hash?.digest("hex") ?? null };
}

/**
 * Verify a copy through its open file as `verify` asks (see `verifyCopy`):
 * its size, and its SHA-256 read back against the source's.
 *
 * @throws {TransferError} when the copy is not its source
 */
export async function verifyOpenCopy(
  item: TransferItem,
  verify: "none" | "size" | "checksum",
  target: number,
  written: Written,
  calls: DestinationCalls,
): Promise<void> {
  const error = verifyCopy(item, verify, {
    bytesRead: written.bytes,
    size: verify === "none" ? undefined : (await calls.fstat(target)).size,
    sourceSha256: written.sha256,
    copySha256: written.sha256 === null ? null : await sha256OfDescriptor(target, calls.read),
  });
  if (error) throw error;
}

/** The deliveries of a batch by the folder of their final paths. */
export function byFolder<D extends { finalPath: string }>(deliveries: D[]): Map<string, D[]> {
  const folders = new Map<string, D[]>();
  for (const delivery of deliveries) {
    const folder = dirname(delivery.finalPath);
    const inFolder = folders.get(folder);
    if (inFolder === undefined) folders.set(folder, [delivery]);
    else inFolder.push(delivery);
  }
  return folders;
}

/**
 * Throw unless `path` still names the file open as `fd`: someone who may
 * write the destination folder could have replaced it (by a link, say), and
 * the rename would then deliver their file. Returns the open file's stats.
 */
export async function assertSameFile(
  path: string,
  fd: number,
  calls: DestinationCalls,
): Promise<Stats> {
  let opened, named;
  try {
    [opened, named] = await Promise.all([calls.fstat(fd), calls.lstat(path)]);
  } catch (error) {
    throw new CopyVanished(path, error);
  }
  if (named.isSymbolicLink() || named.ino !== opened.ino || named.dev !== opened.dev) {
    throw replacedError(path);
  }
  return opened;
}

/**
 * Run `change` (a permission or time change), ignoring the refusals of file
 * systems that cannot store it (some network shares, FAT): the data matters
 * more than its metadata.
 */
export async function whereSupported(change: () => Promise<void>): Promise<void> {
  try {
    await change();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL", "ENOSYS"].includes(code ?? "")) throw error;
  }
}

/** Remove the temporary file at `path` if it is still the one open as `fd`. */
export async function removeIfOurs(
  path: string,
  fd: number,
  calls: DestinationCalls,
): Promise<void> {
  try {
    await assertSameFile(path, fd, calls);
    await calls.remove(path);
  } catch {
    // Gone or not ours: leave it.
  }
}

/**
 * Flush a folder's entries to disk, so a rename that the ledger records as
 * done survives a power cut. Not possible on Windows (folders cannot be
 * opened), where NTFS journals the rename itself.
 */
export async function syncFolder(folder: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using dir = await Deno.open(folder, { read: true });
  await dir.sync();
}

/**
 * The file that stands where a folder must be, for an error like
 * `Not a directory (os error 20): open '/d/20240315/x.fits'` (or Node's
 * `ENOTDIR: not a directory, open '...'`): the nearest
 * ancestor of the quoted path (or the path itself, for a `mkdir`) that exists
 * and is not a folder. `undefined` when the message names no path or nothing
 * is in the way (any more).
 */
export function fileInTheWay(message: string): string | undefined {
  // Deno's words (`... (os error 20): open '...'`) or Node's (`ENOTDIR: not a directory, open '...'`).
  const match = /(?:\(os error \d+\):|^E[A-Z]+: [^,]*,) (\w+) '(.*)'$/s.exec(message);
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

/** Classify a local copy error. */
export function toTransferError(item: TransferItem, error: unknown): TransferError {
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
  if (error instanceof Deno.errors.NotFound || code === "ENOENT") {
    return new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", { cause: error });
  }
  if (code === "ENOSPC" || code === "EDQUOT" || /No space left|quota/i.test(reason)) {
    return new TransferError(
      `Cannot send ${item.source}: destination is full (${reason})`,
      "retry-later",
      { cause: error },
    );
  }
  if (code === "EROFS" || /read-only file system/i.test(reason)) {
    return new TransferError(
      `Cannot send ${item.source}: destination is read-only (${reason})`,
      "retry-later",
      { cause: error },
    );
  }
  if (
    error instanceof Deno.errors.NotADirectory || error instanceof Deno.errors.AlreadyExists ||
    code === "ENOTDIR" || code === "EEXIST"
  ) {
    const blocker = fileInTheWay(reason);
    if (blocker !== undefined) {
      return new TransferError(
        `Cannot send ${item.source}: a file named ${basename(blocker)} is in the way at ` +
          `${blocker}, where a folder must be; move or rename that file`,
        "retry",
        { cause: error },
      );
    }
  }
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return new TransferError(`Cannot send ${item.source}: permission denied (${reason})`, "fatal", {
      cause: error,
    });
  }
  return new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", { cause: error });
}

/** How long a stop waits for a call on the destination before leaving it to its thread. */
const STOP_GRACE_MS = 5000;

/**
 * Whether a local destination still answers. Calls on a share run on the
 * runtime's thread pool (see {@linkcode DestinationCalls}: one on a share
 * whose server stopped answering, or on a frozen FUSE daemon, then holds a
 * thread of the pool, never the daemon) and are timed through
 * {@linkcode AnswerWatch.on}: one that has not returned after `limitMs` ends
 * the wait (`silent`, and `signal` aborted), and after
 * {@linkcode STOP_GRACE_MS} once `stop` aborted (the daemon stops).
 */
export class AnswerWatch {
  readonly #limitMs: number;
  readonly #stopping: AbortSignal;
  /** When each call still waited on started (`performance.now()`). */
  #waiting = new Set<{ since: number }>();
  #abort = new AbortController();
  #timer: ReturnType<typeof setInterval> | undefined;
  #heard!: () => void;
  /** Resolves once a call has gone unanswered for the limit. */
  readonly silent: Promise<void> = new Promise((resolve) => this.#heard = resolve);

  constructor(limitMs: number, stop: AbortSignal = new AbortController().signal) {
    this.#limitMs = limitMs;
    this.#stopping = stop;
  }

  /** Aborted once a call has gone unanswered for the limit. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Await `call`, a call on the destination, timed. */
  async on<T>(call: Promise<T>): Promise<T> {
    // The monotonic clock: a wall clock stepped ahead (NTP) is no call gone unanswered.
    const entry = { since: performance.now() };
    this.#waiting.add(entry);
    this.#timer ??= setInterval(
      () => this.#check(),
      Math.max(100, Math.min(this.#limitMs, STOP_GRACE_MS) / 4),
    );
    try {
      return await call;
    } finally {
      this.#waiting.delete(entry);
    }
  }

  #check(): void {
    const now = performance.now();
    const limitMs = this.#stopping.aborted ? Math.min(this.#limitMs, STOP_GRACE_MS) : this.#limitMs;
    for (const entry of this.#waiting) {
      if (now - entry.since < limitMs) continue;
      this.stop();
      this.#abort.abort(new Error("the destination does not answer"));
      this.#heard();
      return;
    }
  }

  /** No more calls are timed. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

/**
 * The file calls of local copies on their destination. On a local disk they
 * are made right away ({@linkcode CALLS_HERE}); on a network or FUSE file
 * system, or one this daemon cannot name, on the runtime's thread pool
 * ({@linkcode CALLS_ON_POOL}): a share whose server stops answering (a hard
 * NFS mount, a frozen FUSE daemon) holds every call on it, and one made on
 * the daemon's thread would hold the whole daemon. A call on the pool costs
 * a hand-over to another thread (about 40 µs here), hence not on local disks.
 * (Creating, writing and flushing copies, and making folders, always go on
 * the pool: see `local.ts`.)
 */
export interface DestinationCalls {
  fstat(fd: number): Promise<Stats>;
  lstat(path: string): Promise<Stats>;
  fchmod(fd: number, mode: number): Promise<void>;
  futimes(fd: number, atime: number, mtime: number): Promise<void>;
  open(path: string, flags: number): Promise<number>;
  read: ReadAt;
  close(fd: number): Promise<void>;
  remove(path: string): Promise<void>;
}

/** The calls of a destination on a local disk: made on the daemon's thread. */
export const CALLS_HERE: DestinationCalls = {
  fstat: here((fd: number) => fstatSync(fd)),
  lstat: here((path: string) => lstatSync(path)),
  fchmod: here(fchmodSync),
  futimes: here(futimesSync),
  open: here(openSync),
  read: here((fd: number, buffer: Uint8Array, offset: number, length: number, position: number) =>
    readSync(fd, buffer, offset, length, position)
  ),
  close: here(closeSync),
  remove: here(Deno.removeSync),
};

/** `call`, made right away, its result or error as a promise. */
function here<A extends unknown[], R>(call: (...args: A) => R): (...args: A) => Promise<R> {
  return (...args) => {
    try {
      return Promise.resolve(call(...args));
    } catch (error) {
      return Promise.reject(error);
    }
  };
}

/** The calls of a destination on a share: on the runtime's thread pool. */
export const CALLS_ON_POOL: DestinationCalls = {
  fstat: promisify(fstat),
  lstat: promisify(lstat),
  fchmod: promisify(fchmod),
  futimes: promisify(futimes),
  open: promisify(open) as (path: string, flags: number) => Promise<number>,
  read: readOff,
  close: promisify(close),
  remove: (path) => Deno.remove(path),
};

/**
 * The calls for copies into `base` (see {@linkcode DestinationCalls}): by the
 * file system of `base`, or of its nearest folder that exists. Asked on the
 * pool: the share itself may not answer.
 */
export async function destinationCalls(base: string): Promise<DestinationCalls> {
  if (Deno.build.os !== "linux") return CALLS_ON_POOL;
  for (let folder = base;; folder = dirname(folder)) {
    try {
      const { type, remote } = fileSystemKind(Number((await statfsOff(folder)).type));
      return remote || type.startsWith("0x") ? CALLS_ON_POOL : CALLS_HERE;
    } catch {
      if (dirname(folder) === folder) return CALLS_ON_POOL;
    }
  }
}

/** `statfs` on the runtime's thread pool. */
export const statfsOff: (path: string) => Promise<StatsFs> = promisify(statfs);

/** `write` at a position, awaited. */
const writeAt = promisify(write) as unknown as (
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
) => Promise<{ bytesWritten: number }>;
