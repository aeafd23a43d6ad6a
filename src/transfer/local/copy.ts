/**
 * The file operations of the `local` transport: copying a source into an open
 * temporary file (hashing it on the way), re-reading a copy, checking that a
 * temporary name still holds the file opened, flushing a folder, and timing
 * the calls on the destination (a share may stop answering). What their
 * errors mean: `failures.ts`.
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
import { dirname } from "node:path";
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
