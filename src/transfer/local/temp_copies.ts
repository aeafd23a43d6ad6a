/**
 * The temporary copies of the `local` transport (see `local.ts`): a new one
 * created exclusively, or an earlier copy of the same file continued; which
 * ones are being written now; closing and removing them; and sweeping this
 * daemon's leftovers from a destination folder once.
 *
 * Resuming a local copy: an earlier temporary copy of the same file, left by
 * an interrupted attempt of this daemon (see `resume_partial_hours`), is
 * continued instead of written again from its first byte, once its bytes
 * are found to be the source's first bytes.
 *
 * Only a copy this daemon made is taken: a name {@linkcode tempNameFor}
 * gave for this file and this daemon's owner id, opened without following a
 * link, a regular file of this account with one link and no write permission
 * for group or others (as this daemon creates them), written into (its
 * mtime or its status change time, see `lastWrittenMs`) within the time it
 * is kept. The final name is still only made by the rename after
 * verification.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { constants, open, readSync } from "node:fs";
import { promisify } from "node:util";
import { basename, dirname, join } from "node:path";
import type { JobConfig } from "../../config/types.ts";
import { logger } from "../../log/logging.ts";
import type { Delivery } from "../deliver.ts";
import { CALLS_ON_POOL, type DestinationCalls, removeIfOurs, type Written } from "./copy.ts";
import { TransferError } from "../../errors.ts";
import { lastWrittenMs, sweepLocalLeftovers } from "./folders.ts";
import { CopyVanished } from "./renamed.ts";
import { giveChunk, type OpenSource, takeChunk } from "../source.ts";
import { Buffer } from "node:buffer";
import { isOwnTempNameFor, type JobOwners, tempNameFor } from "../temp_name.ts";
import type { TransferItem } from "../transport.ts";
import { setImmediate } from "node:timers";

/** `open` on a thread of its own. */
const openOff: (path: string, flags: number, mode: number) => Promise<number> = promisify(open);

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** One file of a local batch: the open temporary copy while it is on its way. */
export interface LocalDelivery extends Delivery {
  /** The temporary file: a new name, or an earlier copy's that is continued. */
  tempPath: string;
  /** The temporary file, open for reading and writing, or `null` (not created, or closed). */
  target: number | null;
  /**
   * On a share, the same file open again for the copy's writes (see
   * {@linkcode openWriter}), or `null`.
   */
  writer?: Deno.FsFile | null;
  /** What the copy step wrote. */
  written: Written | null;
  /** Keep the temporary file when it is not renamed (an interrupted copy, to be resumed). */
  keep: boolean;
  /** The copier's key of the copy while the copier holds it (see `copier.ts`). */
  copierKey?: number | null;
}

/**
 * A delivery of `item` to `finalPath` on its own, a part of a growing file: a new temporary
 * name of `owner`'s, and its copy kept when not renamed (the next part continues it).
 */
export function partDelivery(item: TransferItem, finalPath: string, owner: string): LocalDelivery {
  return {
    index: 0,
    item,
    finalPath,
    tempPath: join(dirname(finalPath), tempNameFor(basename(finalPath), owner)),
    error: null,
    source: null,
    sha256: null,
    done: false,
    checkedAfterRead: false,
    target: null,
    written: null,
    keep: true,
  };
}

/** The temporary copies of one local job; see the module doc. */
export class LocalTempCopies {
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  readonly owner: string;
  /** The earlier naming's leftovers, swept once idle (see `JobOwners.earlier`). */
  #earlier: JobOwners["earlier"];
  /** Destination folders already swept of this daemon's leftovers, and their sweeps. */
  #swept = new Map<string, Promise<void>>();
  /** By folder: names of this daemon's copies there that may be continued. */
  #resumable = new Map<string, Set<string>>();
  /** Temporary files being written now (never swept nor resumed by another copy). */
  #inUse = new Set<string>();
  /** Final paths of growing files whose parts went into kept copies, until the file goes whole. */
  #grown = new Set<string>();
  #log = logger("transfer");

  constructor(job: JobConfig, { owner, earlier }: JobOwners) {
    this.#job = job;
    this.owner = owner;
    this.#earlier = earlier;
  }

  /** A part of a growing file going to `finalPath` (see {@linkcode partDelivery}). */
  partDelivery(item: TransferItem, finalPath: string): LocalDelivery {
    this.#grown.add(finalPath);
    return partDelivery(item, finalPath, this.owner);
  }

  /**
   * Open the temporary file of `delivery`: an earlier copy of this file whose
   * bytes are the source's first bytes (the copy continues from its end), or
   * a new file. Returns where the copy starts and the hash of the source so far
   * (for a new file, whether to hash it: see `copyData`). Earlier copies are
   * opened, read and removed with `calls`.
   */
  async open(
    delivery: LocalDelivery,
    source: OpenSource,
    signal: AbortSignal,
    calls: DestinationCalls,
  ): Promise<{ from: number; hash: Hash | null; hashIt?: boolean }> {
    const hashIt = this.#wantsChecksum();
    const keepMs = this.keepMs;
    const folder = dirname(delivery.finalPath);
    if (keepMs > 0) await this.sweep(folder);
    const candidates = this.#resumable.get(folder);
    const earlier = keepMs === 0 || candidates === undefined ? null : await takeEarlierCopy(
      folder,
      basename(delivery.finalPath),
      this.owner,
      keepMs,
      this.#inUse,
      candidates,
      calls,
    );
    if (earlier !== null) {
      const hash = hashIt ? createHash("sha256") : null;
      this.#inUse.add(earlier.path);
      const fits = earlier.size <= delivery.item.size &&
        await samePrefix(source.fd, earlier.fd, earlier.size, hash, signal, calls).catch(
          async (error) => {
            this.#inUse.delete(earlier.path);
            await calls.close(earlier.fd);
            throw error;
          },
        );
      if (fits) {
        delivery.tempPath = earlier.path;
        delivery.target = earlier.fd;
        delivery.writer = await openWriter(earlier.path, earlier.fd, calls);
        return { from: earlier.size, hash };
      }
      this.#log.info(
        "The earlier copy of {source} at the destination does not match the source; sending it whole",
        { job: this.#job.name, source: delivery.item.source, bytes: earlier.size },
      );
      this.#inUse.delete(earlier.path);
      await discard(earlier, calls);
    }
    this.#inUse.add(delivery.tempPath);
    // On a thread of its own: a file system busy flushing other copies can hold a create up.
    delivery.target = await openOff(delivery.tempPath, CREATE_NEW, 0o600);
    delivery.writer = await openWriter(delivery.tempPath, delivery.target, calls);
    return { from: 0, hash: null, hashIt };
  }

  /**
   * Claim `delivery`'s temporary name for a new copy made elsewhere (the
   * copier): `false`, claiming nothing, when an earlier copy of this file may
   * be continued (it then goes through {@linkcode open}).
   */
  claimNew(delivery: LocalDelivery): boolean {
    const name = basename(delivery.finalPath);
    for (
      const copy of this.keepMs > 0 ? this.#resumable.get(dirname(delivery.finalPath)) ?? [] : []
    ) {
      if (isOwnTempNameFor(copy, name, this.owner)) return false;
    }
    this.#inUse.add(delivery.tempPath);
    return true;
  }

  /**
   * Close the temporary file, removing it if it is still there and still ours
   * (unless it is kept to be resumed).
   */
  async release(delivery: LocalDelivery, calls: DestinationCalls): Promise<void> {
    closeWriter(delivery);
    const target = delivery.target;
    if (target !== null) {
      delivery.target = null;
      if (!delivery.keep) await removeIfOurs(delivery.tempPath, target, calls);
      else this.#remember(delivery.tempPath);
      await calls.close(target);
    }
    this.#inUse.delete(delivery.tempPath);
    // A failed copy may be left (its folder was read-only, say): the next batch there sweeps it.
    if (delivery.error !== null) this.#swept.delete(dirname(delivery.finalPath));
  }

  /**
   * Say that `delivery`'s copy continued an earlier one from byte `from` (when it did): a growing
   * file's with what it gained since its last part, any other as a copy cut short resumed.
   */
  logResumed(delivery: LocalDelivery, from: number): void {
    const grown = this.#grown.delete(delivery.finalPath);
    if (from === 0) return;
    const said = grown
      ? "Sent what the growing file {source} gained since its last part: {appended} bytes from " +
        "byte {from}"
      : "Resumed {source} at byte {from}: {appended} bytes appended";
    this.#log.info(said, {
      job: this.#job.name,
      source: delivery.item.source,
      from,
      appended: delivery.written?.appended ?? 0,
    });
  }

  /** How long an interrupted copy is kept to be resumed (0: not). */
  get keepMs(): number {
    return this.#job.resume_partial_hours * 3_600_000;
  }

  #wantsChecksum(): boolean {
    return this.#job.verify_transfer === "checksum";
  }

  /**
   * Remove this daemon's leftover temporary files from `folder`, once per
   * folder (again after a copy there failed), and note those kept to be
   * continued.
   */
  sweep(folder: string): Promise<void> {
    let sweep = this.#swept.get(folder);
    if (sweep === undefined) {
      sweep = sweepLocalLeftovers(
        folder,
        this.owner,
        this.#inUse,
        this.keepMs,
        undefined,
        this.#earlier,
      )
        .then((kept) => {
          const known = this.#resumable.get(folder) ?? new Set();
          for (const name of kept) known.add(name);
          this.#resumable.set(folder, known);
        });
      this.#swept.set(folder, sweep);
    }
    return sweep;
  }

  /** Remove the copies kept to continue the file at `finalPath`: it never will be. */
  async drop(finalPath: string): Promise<void> {
    const folder = dirname(finalPath);
    const name = basename(finalPath);
    await sweepLocalLeftovers(folder, this.owner, this.#inUse, 0, name);
    const known = this.#resumable.get(folder);
    for (const copy of known ?? []) {
      if (isOwnTempNameFor(copy, name, this.owner)) known!.delete(copy);
    }
  }

  /** Note a copy left at `path` to be continued by a later attempt. */
  #remember(path: string): void {
    const folder = dirname(path);
    const known = this.#resumable.get(folder) ?? new Set();
    known.add(basename(path));
    this.#resumable.set(folder, known);
  }
}

/**
 * On a share (calls on the pool: see `DestinationCalls`), the temporary file
 * at `path`, open as `fd`, opened again for writing with the runtime's own
 * file API, whose writes run on its thread pool (`node:fs`'s `write` is made
 * on the daemon's thread: a share that stops answering would hold the whole
 * daemon). Refused unless it is the same file as `fd` (someone could have
 * put another in its place). Elsewhere (a local disk; macOS and Windows, where
 * this is not tried yet) `null`: the copy is written through `fd`.
 */
async function openWriter(
  path: string,
  fd: number,
  calls: DestinationCalls,
): Promise<Deno.FsFile | null> {
  if (calls !== CALLS_ON_POOL || Deno.build.os !== "linux") return null;
  const writer = await Deno.open(path, { write: true }).catch((error) => {
    // Gone since it was made (a share unmounted meanwhile): said as when gone before the rename.
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new CopyVanished(path, error);
  });
  const [ours, opened] = await Promise.all([calls.fstat(fd), writer.stat()]);
  if (ours.ino !== opened.ino || ours.dev !== opened.dev) {
    writer.close();
    throw new TransferError(
      `the temporary file ${path} was replaced by someone else while it was opened; not delivered`,
      "retry",
    );
  }
  return writer;
}

/**
 * Close the copy's writer, if any: after its last write was flushed (the
 * share answered a moment ago), since the runtime closes files on the
 * daemon's thread.
 */
export function closeWriter(delivery: LocalDelivery): void {
  try {
    delivery.writer?.close();
  } catch {
    // Closed already.
  }
  delivery.writer = null;
}

/** Flags of an earlier copy opened to be continued: never through a link, never blocking. */
const OPEN_EARLIER = constants.O_RDWR | (constants.O_NOFOLLOW ?? 0) |
  (constants.O_NONBLOCK ?? 0);

/** An earlier copy, open for reading and writing. */
export interface EarlierCopy {
  path: string;
  fd: number;
  /** Bytes it holds. */
  size: number;
}

/**
 * The earlier copy of `finalName` in `folder` that this daemon (`owner`) may
 * continue, open, or `null`, looked for among `candidates` (the names of this
 * daemon's temporary files known in `folder`: no folder is read per file).
 * Copies of that file older than `keepMs`, and all but the longest one, are
 * removed; names in `inUse` are left alone. Every name looked at is taken
 * out of `candidates`.
 */
export async function takeEarlierCopy(
  folder: string,
  finalName: string,
  owner: string,
  keepMs: number,
  inUse: ReadonlySet<string>,
  candidates: Set<string>,
  calls: DestinationCalls,
): Promise<EarlierCopy | null> {
  const found: EarlierCopy[] = [];
  for (const name of candidates) {
    if (!isOwnTempNameFor(name, finalName, owner)) continue;
    const path = join(folder, name);
    if (inUse.has(path)) continue;
    candidates.delete(name);
    const copy = await openIfOurs(path, keepMs, calls);
    if (copy) found.push(copy);
  }
  found.sort((a, b) => b.size - a.size);
  for (const other of found.slice(1)) await discard(other, calls);
  return found[0] ?? null;
}

/**
 * `path` open, when it is a copy as this daemon leaves them (see the module
 * doc) written into within `keepMs`; an expired one is removed.
 */
async function openIfOurs(
  path: string,
  keepMs: number,
  calls: DestinationCalls,
): Promise<EarlierCopy | null> {
  let fd: number;
  try {
    fd = await calls.open(path, OPEN_EARLIER);
  } catch {
    return null; // A link (ELOOP), gone, or not ours to open.
  }
  const info = await calls.fstat(fd);
  const ours = info.isFile() && info.nlink === 1 && (info.mode & 0o022) === 0 &&
    (Deno.build.os === "windows" || info.uid === Deno.uid());
  if (!ours) {
    await calls.close(fd);
    return null;
  }
  const copy = { path, fd, size: info.size };
  if (Date.now() - lastWrittenMs(info.mtimeMs, info.ctimeMs) > keepMs) {
    await discard(copy, calls);
    return null;
  }
  return copy;
}

/** Remove an earlier copy that is not continued (it is ours: see {@linkcode takeEarlierCopy}). */
export async function discard(copy: EarlierCopy, calls: DestinationCalls): Promise<void> {
  try {
    await calls.remove(copy.path);
  } catch {
    // Gone already.
  }
  await calls.close(copy.fd);
}

/**
 * Whether the first `bytes` of `copy` are the first `bytes` of the source
 * open as `sourceFd`, compared a chunk at a time; the source's bytes are fed
 * to `hash` on the way (the SHA-256 of the whole source then continues from
 * there).
 */
export async function samePrefix(
  sourceFd: number,
  copyFd: number,
  bytes: number,
  hash: Hash | null,
  signal: AbortSignal,
  calls: DestinationCalls,
): Promise<boolean> {
  const ours = takeChunk();
  const theirs = takeChunk();
  try {
    for (let position = 0; position < bytes;) {
      signal.throwIfAborted();
      const want = Math.min(ours.length, bytes - position);
      const n = readSync(sourceFd, ours, 0, want, position);
      const m = await calls.read(copyFd, theirs, 0, want, position);
      if (n !== want || m !== want) return false;
      const a = ours.subarray(0, n);
      if (!Buffer.from(a).equals(theirs.subarray(0, n))) return false;
      hash?.update(a);
      position += n;
      // Other work goes on between chunks (reads on a local disk are made right away).
      await new Promise((resolve) => setImmediate(resolve));
    }
    return true;
  } finally {
    giveChunk(ours);
    giveChunk(theirs);
  }
}
