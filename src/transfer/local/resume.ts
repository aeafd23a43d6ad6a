/**
 * Resuming a local copy: an earlier temporary copy of the same file, left by
 * an interrupted attempt of this daemon (see `resume_partial_hours`), is
 * continued instead of written again from its first byte, once its bytes
 * are found to be the source's first bytes.
 *
 * Only a copy this daemon made is taken: a name {@linkcode tempNameFor}
 * gave for this file and this daemon's owner id, opened without following a
 * link, a regular file of this account with one link and no write permission
 * for group or others (as this daemon creates them), younger than the time
 * it is kept. The final name is still only made by the rename after
 * verification.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { Buffer } from "node:buffer";
import type { Hash } from "node:crypto";
import { join } from "node:path";
import { setImmediate } from "node:timers";
import { isOwnTempNameFor } from "../temp_name.ts";

/** Flags of an earlier copy opened to be continued: never through a link, never blocking. */
const OPEN_EARLIER = constants.O_RDWR | (constants.O_NOFOLLOW ?? 0) |
  (constants.O_NONBLOCK ?? 0);

/** Bytes compared at a time. */
const CHUNK_BYTES = 1024 * 1024;

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
export function takeEarlierCopy(
  folder: string,
  finalName: string,
  owner: string,
  keepMs: number,
  inUse: ReadonlySet<string>,
  candidates: Set<string>,
): EarlierCopy | null {
  const found: EarlierCopy[] = [];
  for (const name of candidates) {
    if (!isOwnTempNameFor(name, finalName, owner)) continue;
    const path = join(folder, name);
    if (inUse.has(path)) continue;
    candidates.delete(name);
    const copy = openIfOurs(path, keepMs);
    if (copy) found.push(copy);
  }
  found.sort((a, b) => b.size - a.size);
  for (const other of found.slice(1)) discard(other);
  return found[0] ?? null;
}

/**
 * `path` open, when it is a copy as this daemon leaves them (see the module
 * doc) and younger than `keepMs`; an expired one is removed.
 */
function openIfOurs(path: string, keepMs: number): EarlierCopy | null {
  let fd: number;
  try {
    fd = openSync(path, OPEN_EARLIER);
  } catch {
    return null; // A link (ELOOP), gone, or not ours to open.
  }
  const info = fstatSync(fd);
  const ours = info.isFile() && info.nlink === 1 && (info.mode & 0o022) === 0 &&
    (Deno.build.os === "windows" || info.uid === Deno.uid());
  if (!ours) {
    closeSync(fd);
    return null;
  }
  const copy = { path, fd, size: info.size };
  if (Date.now() - info.mtimeMs > keepMs) {
    discard(copy);
    return null;
  }
  return copy;
}

/** Remove an earlier copy that is not continued (it is ours: see {@linkcode takeEarlierCopy}). */
export function discard(copy: EarlierCopy): void {
  try {
    Deno.removeSync(copy.path);
  } catch {
    // Gone already.
  }
  closeSync(copy.fd);
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
): Promise<boolean> {
  const ours = new Uint8Array(CHUNK_BYTES);
  const theirs = new Uint8Array(CHUNK_BYTES);
  for (let position = 0; position < bytes;) {
    signal.throwIfAborted();
    const want = Math.min(CHUNK_BYTES, bytes - position);
    const n = readSync(sourceFd, ours, 0, want, position);
    const m = readSync(copyFd, theirs, 0, want, position);
    if (n !== want || m !== want) return false;
    const a = ours.subarray(0, n);
    if (!Buffer.from(a).equals(theirs.subarray(0, n))) return false;
    hash?.update(a);
    position += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}
