/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * Each file is copied from the source (opened without following links, see
 * `source_open.ts`) into a new temporary file in its destination folder,
 * created exclusively under an unpredictable name (see `temp_name.ts`), with
 * the source's permission bits (without group/other write) and mtime, flushed
 * to disk, verified through the same open file, and renamed into place once
 * the name still points at that file.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsyncSync,
  futimesSync,
  lstatSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { setImmediate } from "node:timers";
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import { localFreeBytes } from "./free_space.ts";
import { makeLocalFolders, sweepLocalLeftovers } from "./local_folders.ts";
import { assertSourceUnchanged } from "./source_check.ts";
import { closeSource, deliveredPermissions, type OpenSource, openSource } from "./source_open.ts";
import { jobOwner, tempNameFor } from "./temp_name.ts";
import type { TransferItem, TransferOutcome, Transport } from "./transport.ts";

/** Bytes copied between two turns of the event loop. */
const CHUNK_BYTES = 1024 * 1024;

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** Copies into `remote_base_path` on this machine: temp name, verify, rename. */
export class LocalTransport implements Transport {
  readonly method = "local" as const;
  readonly maxBatchFiles = 1;
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  #owner: string;
  /** Destination folders already swept of this daemon's leftovers, and their sweeps. */
  #swept = new Map<string, Promise<void>>();
  /** Temporary files being written now (never swept). */
  #inUse = new Set<string>();

  constructor(job: JobConfig) {
    this.#job = job;
    this.#owner = jobOwner(job);
  }

  describeTarget(destination: string): string {
    return join(this.#job.remote_base_path, ...destination.split("/"));
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const outcomes: TransferOutcome[] = [];
    for (const item of items) {
      signal.throwIfAborted();
      try {
        await this.#copy(item, signal);
        outcomes.push({ item, error: null });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        outcomes.push({ item, error: toTransferError(item, error) });
      }
    }
    return outcomes;
  }

  /** Free space on the file system of `remote_base_path` (or its nearest existing parent). */
  async freeBytes(): Promise<number | null> {
    return await localFreeBytes(this.#job.remote_base_path).catch(() => null);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  async #copy(item: TransferItem, signal: AbortSignal): Promise<void> {
    const finalPath = this.describeTarget(item.destination);
    const folder = dirname(finalPath);
    await makeLocalFolders(this.#job.remote_base_path, item.destination);
    await this.#sweep(folder);
    const source = openSource(item);
    const tempPath = join(folder, tempNameFor(basename(finalPath), this.#owner));
    let target: number | null = null;
    this.#inUse.add(tempPath);
    try {
      target = openSync(tempPath, CREATE_NEW, 0o600);
      const written = await copyData(source, target, signal, this.#wantsChecksum());
      const fd = target;
      // Windows keeps no permission bits beyond read-only.
      if (Deno.build.os !== "windows") {
        whereSupported(() => fchmodSync(fd, deliveredPermissions(source.info)));
      }
      whereSupported(() => futimesSync(fd, source.info.atimeMs / 1000, item.mtimeMs / 1000));
      fsyncSync(target);
      await this.#verify(item, target, written);
      await assertSourceUnchanged(item);
      assertSameFile(tempPath, target);
      await Deno.rename(tempPath, finalPath);
      await syncFolder(folder);
    } catch (error) {
      if (target !== null) removeIfOurs(tempPath, target);
      throw error;
    } finally {
      this.#inUse.delete(tempPath);
      if (target !== null) closeSync(target);
      closeSource(source);
    }
  }

  #wantsChecksum(): boolean {
    return this.#job.verify_transfer === "checksum";
  }

  /** Remove this daemon's leftover temporary files from `folder`, once per folder. */
  #sweep(folder: string): Promise<void> {
    let sweep = this.#swept.get(folder);
    if (sweep === undefined) {
      sweep = sweepLocalLeftovers(folder, this.#owner, this.#inUse);
      this.#swept.set(folder, sweep);
    }
    return sweep;
  }

  async #verify(item: TransferItem, target: number, written: Written): Promise<void> {
    if (written.bytes !== item.size) {
      throw new TransferError(
        `Cannot send ${item.source}: read ${written.bytes} bytes, expected ${item.size} (source changed)`,
        "retry",
      );
    }
    if (this.#job.verify_transfer === "none") return;
    const size = fstatSync(target).size;
    if (size !== item.size) {
      throw new TransferError(
        `Verification failed for ${item.source}: destination has ${size} bytes, expected ${item.size}`,
        "retry",
      );
    }
    if (written.sha256 !== null && await sha256OfOpenFile(target) !== written.sha256) {
      throw new TransferError(
        `Verification failed for ${item.source}: SHA-256 differs at the destination`,
        "retry",
      );
    }
  }
}

/** What {@linkcode copyData} copied. */
interface Written {
  bytes: number;
  /** SHA-256 of the bytes read from the source, when asked for. */
  sha256: string | null;
}

/**
 * Copy the source into `target`, a chunk at a time with a turn of the event
 * loop between chunks (synchronous reads and writes: less CPU than awaiting
 * each one, and other work waits at most one chunk).
 */
async function copyData(
  source: OpenSource,
  target: number,
  signal: AbortSignal,
  hashIt: boolean,
): Promise<Written> {
  const hash: Hash | null = hashIt ? createHash("sha256") : null;
  const buffer = new Uint8Array(CHUNK_BYTES);
  let bytes = 0;
  while (true) {
    signal.throwIfAborted();
    const n = readSync(source.fd, buffer, 0, buffer.length, null);
    if (n === 0) break;
    const chunk = buffer.subarray(0, n);
    hash?.update(chunk);
    let offset = 0;
    while (offset < n) offset += writeSync(target, chunk, offset, n - offset);
    bytes += n;
    // Not setTimeout(0): nested timeouts are clamped to 4 ms.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { bytes, sha256: hash?.digest("hex") ?? null };
}

/** SHA-256 of what an open file holds, read from its start through the descriptor. */
async function sha256OfOpenFile(fd: number): Promise<string> {
  const hash = createHash("sha256");
  const buffer = new Uint8Array(CHUNK_BYTES);
  for (let position = 0;;) {
    const n = readSync(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    position += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return hash.digest("hex");
}

/**
 * Throw unless `path` still names the file open as `fd`: someone who may
 * write the destination folder could have replaced it (by a link, say), and
 * the rename would then deliver their file.
 */
function assertSameFile(path: string, fd: number): void {
  const opened = fstatSync(fd);
  let named;
  try {
    named = lstatSync(path);
  } catch (error) {
    throw new TransferError(`the temporary file ${path} disappeared before the rename`, "retry", {
      cause: error,
    });
  }
  if (named.isSymbolicLink() || named.ino !== opened.ino || named.dev !== opened.dev) {
    throw new TransferError(
      `the temporary file ${path} was replaced by someone else before the rename; not delivered`,
      "retry",
    );
  }
}

/**
 * Run `change` (a permission or time change), ignoring the refusals of file
 * systems that cannot store it (some network shares, FAT): the data matters
 * more than its metadata.
 */
function whereSupported(change: () => void): void {
  try {
    change();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL", "ENOSYS"].includes(code ?? "")) throw error;
  }
}

/** Remove the temporary file at `path` if it is still the one open as `fd`. */
function removeIfOurs(path: string, fd: number): void {
  try {
    assertSameFile(path, fd);
    Deno.removeSync(path);
  } catch {
    // Gone or not ours: leave it.
  }
}

/**
 * Flush a folder's entries to disk, so a rename that the ledger records as
 * done survives a power cut. Not possible on Windows (folders cannot be
 * opened), where NTFS journals the rename itself.
 */
async function syncFolder(folder: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using dir = await Deno.open(folder, { read: true });
  await dir.sync();
}

/** Classify a local copy error. */
function toTransferError(item: TransferItem, error: unknown): TransferError {
  if (error instanceof TransferError) {
    if (error.message.startsWith("Cannot send ") || error.message.startsWith("Verification")) {
      return error;
    }
    return new TransferError(`Cannot send ${item.source}: ${error.message}`, error.kind, {
      cause: error,
    });
  }
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
  if (error instanceof Deno.errors.PermissionDenied || code === "EACCES" || code === "EPERM") {
    return new TransferError(`Cannot send ${item.source}: permission denied (${reason})`, "fatal", {
      cause: error,
    });
  }
  return new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", { cause: error });
}
