/**
 * Moving a source into `archive_path` (`after_transfer: move`) without ever
 * losing what it holds: a rename where the archive is on the watch folder's
 * file system; across file systems a copy read through one open file, then
 * the source's removal only if it is still the file that was sent and copied
 * (a removal that fails, as on a read-only share, takes the copy back).
 *
 * A source written while it is copied (in place, as `dd conv=notrunc` does,
 * even with its mtime set back) keeps its device and inode but moves its
 * ctime: the copy is removed and the source stays, to be sent again by the
 * normal path when its size or mtime changed.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { besideEarlier, TEMP_SUFFIX } from "../layout/destination.ts";
import { type JobOwners, randomPart } from "../transfer/temp_name.ts";
import { lastWrittenMs } from "../transfer/local/folders.ts";
import type { FileVersion } from "../watch/file_version.ts";

/**
 * Deno tells a ctime in whole seconds, and the kernel stamps changes from a
 * clock up to a tick behind the wall clock: a ctime witnesses every later
 * change only once its second is over by this much.
 */
const CTIME_SETTLED_MS = 1_000 + 50;

/** How often a source whose ctime keeps moving is looked at before it is left alone. */
const SETTLE_TRIES = 3;

/** Bytes read and written at a time while copying. */
const CHUNK_BYTES = 1 << 20;

/** What of a source must stay the same from before its copy to its removal. */
interface Identity {
  dev: number;
  ino: number | null;
  size: number;
  mtimeMs: number;
  ctimeMs: number | null;
  /** Permission bits (not compared). */
  mode: number | null;
}

/** Where a move went: `archive`, or `null` when the source changed meanwhile and stays. */
export type MoveResult = { archive: string } | { archive: null; changed: string };

/**
 * What the name of every unfinished archive copy of `owner` (a
 * `jobOwners` id) starts with: `.archiving-<owner>-`, then a random part and
 * `.image-transfer-partial`.
 */
export function archiveCopyPrefix(owner: string): string {
  return `.archiving-${owner}-`;
}

/** The unfinished archive copies this process is writing now: never swept. */
const writing = new Set<string>();

/**
 * Moves one job's sources into its archive. Unfinished copies are named for
 * the job ({@linkcode archiveCopyPrefix}); those a crash left in a folder are
 * removed when the first move into that folder since the start begins (those of the earlier
 * naming, by host name, only once nothing was written in them for long, by the later of their
 * mtime and status change time: one written since may be another daemon's under the same host
 * name, dated as its source already), and no other file there is ever touched.
 */
export class ArchiveMover {
  #prefix: string;
  #earlier: { prefix: string; idleMs: number } | null;
  #removed: (path: string) => void;
  /** Folders looked through for leftovers since the start. */
  #swept = new Set<string>();

  /** `owners`: the job's ids (`jobOwners`); `removed` is told each leftover removed. */
  constructor({ owner, earlier }: JobOwners, removed: (path: string) => void) {
    this.#prefix = archiveCopyPrefix(owner);
    this.#earlier = earlier &&
      { prefix: archiveCopyPrefix(earlier.owner), idleMs: earlier.idleSeconds * 1000 };
    this.#removed = removed;
  }

  /**
   * Move `source` to `planned` (never over an existing file: a file of that
   * name there, as from a camera whose counter started again, gets the next
   * numbered name beside it, `flat_001~2.fits`, as at the destination): a
   * rename, or across file systems a copy (see the module doc) of the file
   * sent as `sent`, then its removal.
   */
  async move(source: string, planned: string, sent: FileVersion): Promise<MoveResult> {
    const folder = dirname(planned);
    await Deno.mkdir(folder, { recursive: true });
    await this.#sweep(folder);
    let target = planned;
    while (await Deno.lstat(target).then(() => true, () => false)) {
      target = besideEarlier(planned, target);
    }
    try {
      await Deno.rename(source, target);
      return { archive: target };
    } catch (error) {
      if (!(error instanceof Error && "code" in error && error.code === "EXDEV")) throw error;
    }
    const partial = join(folder, `${this.#prefix}${randomPart()}${TEMP_SUFFIX}`);
    writing.add(partial);
    try {
      return await copyThenRemove(source, target, partial, sent);
    } finally {
      writing.delete(partial);
    }
  }

  /** Remove this job's unfinished copies in `folder` (once per folder since the start). */
  async #sweep(folder: string): Promise<void> {
    if (this.#swept.has(folder)) return;
    this.#swept.add(folder);
    const entries = await Array.fromAsync(Deno.readDir(folder)).catch(() => []);
    for (const entry of entries) {
      // Only regular files of exactly the names this job makes (a link is not one).
      if (!entry.isFile) continue;
      const path = join(folder, entry.name);
      if (writing.has(path)) continue;
      if (!isCopyOf(entry.name, this.#prefix)) {
        const earlier = this.#earlier;
        if (earlier === null || !isCopyOf(entry.name, earlier.prefix)) continue;
        const info = await Deno.lstat(path).catch(() => null);
        // Not by its mtime alone: a copy is dated as its source (days ago, say) before its rename.
        const writtenAt = lastWrittenMs(info?.mtime?.getTime(), info?.ctime?.getTime()) ||
          Date.now();
        if (!info?.isFile || Date.now() - writtenAt <= earlier.idleMs) continue;
      }
      await Deno.remove(path).then(() => this.#removed(path), () => {});
    }
  }
}

/** Whether `name` is an unfinished archive copy's whose name starts with `prefix`. */
function isCopyOf(name: string, prefix: string): boolean {
  if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) return false;
  // The random part, as randomPart() makes it.
  return /^[0-9a-f]{24}$/.test(name.slice(prefix.length, -TEMP_SUFFIX.length));
}

async function copyThenRemove(
  source: string,
  target: string,
  partial: string,
  sent: FileVersion,
): Promise<MoveResult> {
  using file = await Deno.open(source, { read: true });
  const before = await settledIdentity(file, source, sent);
  if (typeof before === "string") return { archive: null, changed: before };
  let placed: string | null = null;
  try {
    const copied = await copyInto(file, partial, before.mode);
    let changed = await differsNow(file, source, before) ??
      (copied === sent.size ? null : `${copied} bytes were read, ${sent.size} were sent`);
    if (changed === null) {
      await Deno.utime(partial, new Date(), new Date(sent.mtimeMs));
      await Deno.rename(partial, target);
      placed = target;
      // Once more right before the removal: a write since would be lost with it.
      changed = await differsNow(file, source, before);
    }
    if (changed !== null) {
      await Deno.remove(placed ?? partial);
      return { archive: null, changed };
    }
  } catch (error) {
    await Deno.remove(placed ?? partial).catch(() => {});
    throw error;
  }
  try {
    await Deno.remove(source);
  } catch (error) {
    // The source stays (a read-only share): so must nothing else, or the next try would
    // archive it a second time beside this copy.
    if (await differsNow(file, source, before) === null) await Deno.remove(target).catch(() => {});
    throw error;
  }
  return { archive: target };
}

/**
 * The open source's identity once its ctime witnesses every later change (see
 * {@linkcode CTIME_SETTLED_MS}), or why it is not the file sent as `sent`.
 */
async function settledIdentity(
  file: Deno.FsFile,
  source: string,
  sent: FileVersion,
): Promise<Identity | string> {
  for (let tries = 0; tries < SETTLE_TRIES; tries++) {
    const now = Date.now();
    const info = await file.stat();
    const id = identityOf(info);
    if (id.size !== sent.size || id.mtimeMs !== sent.mtimeMs) {
      return "its size or mtime is not what was sent";
    }
    const there = await differsNow(file, source, id);
    if (there !== null) return there;
    const settled = id.ctimeMs === null
      ? now
      : Math.floor(id.ctimeMs / 1000) * 1000 + CTIME_SETTLED_MS;
    if (now >= settled) return id;
    // A write later in its ctime's second would leave that unchanged: look again after it.
    await new Promise((resolve) => setTimeout(resolve, settled - now));
  }
  return "it is still being changed";
}

/** Copy all of `file` into the new file `partial` (flushed to disk); returns the bytes copied. */
async function copyInto(
  file: Deno.FsFile,
  partial: string,
  mode: number | null,
): Promise<number> {
  using out = await Deno.open(partial, { write: true, createNew: true, mode: 0o600 });
  const buffer = new Uint8Array(CHUNK_BYTES);
  let copied = 0;
  for (;;) {
    const read = await file.read(buffer);
    if (read === null) break;
    for (let written = 0; written < read;) {
      written += await out.write(buffer.subarray(written, read));
    }
    copied += read;
  }
  // The source's permission bits, where the archive keeps them.
  if (mode !== null && Deno.build.os !== "windows") {
    await Deno.chmod(partial, mode & 0o777).catch(() => {});
  }
  await out.syncData();
  return copied;
}

/**
 * Why the open `file` (at `source`) is no longer the file `before` describes,
 * or `null` when it still is: the same size, mtime and ctime through the open
 * file, and the same file (device and inode) still at `source`.
 */
async function differsNow(
  file: Deno.FsFile,
  source: string,
  before: Identity,
): Promise<string | null> {
  const now = identityOf(await file.stat());
  if (now.size !== before.size || now.mtimeMs !== before.mtimeMs) {
    return "its size or mtime changed";
  }
  if (now.ctimeMs !== before.ctimeMs) return "it was written to (its ctime changed)";
  const there = await Deno.lstat(source).catch(() => null);
  if (!there?.isFile || there.dev !== now.dev || there.ino !== now.ino) {
    return "another file took its name";
  }
  return null;
}

function identityOf(info: Deno.FileInfo): Identity {
  return {
    dev: info.dev,
    ino: info.ino,
    size: info.size,
    mtimeMs: info.mtime?.getTime() ?? 0,
    ctimeMs: info.ctime?.getTime() ?? null,
    mode: info.mode,
  };
}
