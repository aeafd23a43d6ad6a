/**
 * The copier's thread (see `copier.ts`): it opens and checks each source as
 * every transport does (`source.ts`), copies it under its temporary name with
 * the source's mode and times, hashing what it reads, reads the copy back and
 * flushes it; later it puts the copy into place (`renamed.ts`) and flushes its folder.
 * Each temporary file stays open here, by its key, from `put` until `finish`
 * renames or drops it: a file this thread opened is not the daemon's to use.
 *
 * Every call is made right away on this thread (the destination is a local
 * disk), but the flushes of a `put`, which wait for the disk, go to the
 * runtime's thread pool side by side.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  fsync,
  fsyncSync,
  futimesSync,
  lstatSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { createHash, type Hash } from "node:crypto";
import { TransferError } from "../../errors.ts";
import {
  closeSource,
  deliveredPermissions,
  inspectOpenSource,
  type OpenSource,
  openSource,
  unchanged,
} from "../source.ts";
import type {
  CopierReply,
  CopierRequest,
  CopyFault,
  FinishOrder,
  PutOrder,
  PutResult,
} from "./copier.ts";
import { placeSync } from "./renamed.ts";
import { NameTaken } from "../keep_others.ts";

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** The fault of a temporary file replaced by someone else before its rename. */
const REPLACED: CopyFault = { name: "Error", message: "replaced", stage: "replaced" };

/** The open temporary files, by key. */
const open = new Map<number, { fd: number; tempPath: string }>();

/** One buffer for every read, a byte longer than a chunk: a short first read is the whole file. */
const buffer = new Uint8Array(1024 * 1024 + 1);

self.onmessage = async (event: MessageEvent<CopierRequest>) => {
  const request = event.data;
  try {
    if (request.kind === "put") {
      reply({ kind: "put", id: request.id, results: await put(request.copies) });
    } else {
      reply({ kind: "finish", id: request.id, ...finish(request.order) });
    }
  } catch (error) {
    reply({ kind: "failed", id: request.id, fault: faultOf(error) });
  }
};

function reply(message: CopierReply): void {
  self.postMessage(message);
}

/** Copy, hash and read back each source; then flush the copies side by side. */
async function put(copies: PutOrder[]): Promise<PutResult[]> {
  const results: PutResult[] = [];
  const flushing: Array<Promise<void>> = [];
  for (const order of copies) {
    let source: OpenSource | null = null;
    try {
      source = openSource(order.item);
      unchanged(order.item, source.info);
      const fd = openSync(order.tempPath, CREATE_NEW, 0o600);
      open.set(order.key, { fd, tempPath: order.tempPath });
      const hash = order.hashIt ? createHash("sha256") : null;
      const bytes = copy(source.fd, fd, hash);
      const info = inspectOpenSource(order.item, source);
      closeSource(source);
      source = null;
      if (order.setMode) whereSupported(() => fchmodSync(fd, deliveredPermissions(info)));
      whereSupported(() => futimesSync(fd, info.atimeMs / 1000, order.item.mtimeMs / 1000));
      const result: PutResult = {
        key: order.key,
        fault: null,
        info,
        bytes,
        sha256: hash?.digest("hex") ?? null,
        size: order.verifySize ? fstatSync(fd).size : null,
        copySha256: hash === null ? null : hashOf(fd),
      };
      results.push(result);
      flushing.push(
        flushed(fd).then((error) => {
          if (error === null) return;
          drop(order.key);
          results[results.indexOf(result)] = { key: order.key, fault: faultOf(error) };
        }),
      );
    } catch (error) {
      if (source !== null) closeSource(source);
      drop(order.key);
      results.push({ key: order.key, fault: faultOf(error) });
    }
  }
  await Promise.all(flushing);
  return results;
}

/** Copy all of `from` into `to` from their starts, hashing it on the way; returns the bytes. */
function copy(from: number, to: number, hash: Hash | null): number {
  let position = 0;
  for (;;) {
    const n = readSync(from, buffer, 0, buffer.length, position);
    if (n === 0) break;
    const chunk = buffer.subarray(0, n);
    hash?.update(chunk);
    for (let written = 0; written < n;) {
      written += writeSync(to, chunk, written, n - written, position + written);
    }
    position += n;
    if (position === n && n < buffer.length) break;
  }
  return position;
}

/** Flush `fd` on the runtime's thread pool; resolves to the error, or `null`. */
function flushed(fd: number): Promise<unknown> {
  return new Promise((resolve) => fsync(fd, (error) => resolve(error ?? null)));
}

/** The SHA-256 of what `fd` holds, read from its start. */
function hashOf(fd: number): string {
  const hash = createHash("sha256");
  for (let position = 0;;) {
    const n = readSync(fd, buffer, 0, buffer.length, position);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
    position += n;
    if (position === n && n < buffer.length) break;
  }
  return hash.digest("hex");
}

/** Put the copies of `order.renames` in place, drop the others, flush the folders of those put. */
function finish(order: FinishOrder): Pick<CopierReply & { kind: "finish" }, "renamed" | "folders"> {
  const renamed: Array<{ key: number; fault: CopyFault | null }> = [];
  const folders: Array<{ folder: string; fault: CopyFault | null }> = [];
  for (const { key, finalPath, noReplace } of order.renames) {
    const entry = open.get(key);
    if (entry === undefined) {
      renamed.push({ key, fault: { name: "Error", message: "not open", stage: "lost" } });
      continue;
    }
    open.delete(key);
    const fault = sameFile(entry.fd, entry.tempPath);
    const copy = fault === null ? fstatSync(entry.fd) : null;
    closeQuietly(entry.fd);
    if (fault !== null) {
      renamed.push({ key, fault });
      continue;
    }
    try {
      // Replaced between the check and the rename: their file goes back (see `renamed.ts`).
      const foreign = placeSync(entry.tempPath, finalPath, copy!, noReplace);
      renamed.push({ key, fault: foreign ? { ...REPLACED } : null });
    } catch (error) {
      renamed.push({ key, fault: faultOf(error) });
    }
  }
  for (const key of order.drops) drop(key);
  for (const folder of order.folders) {
    try {
      const fd = openSync(folder, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      folders.push({ folder, fault: null });
    } catch (error) {
      folders.push({ folder, fault: faultOf(error) });
    }
  }
  return { renamed, folders };
}

/** `null` when `tempPath` still names the file open as `fd`; else why not. */
function sameFile(fd: number, tempPath: string): CopyFault | null {
  try {
    const opened = fstatSync(fd);
    const named = lstatSync(tempPath);
    if (named.isSymbolicLink() || named.ino !== opened.ino || named.dev !== opened.dev) {
      return { ...REPLACED };
    }
    return null;
  } catch (error) {
    return { ...faultOf(error), stage: "vanished" };
  }
}

/** Close the copy of `key`, removing its temporary file if that is still the file open. */
function drop(key: number): void {
  const entry = open.get(key);
  if (entry === undefined) return;
  open.delete(key);
  if (sameFile(entry.fd, entry.tempPath) === null) {
    try {
      unlinkSync(entry.tempPath);
    } catch {
      // Gone meanwhile: nothing to remove.
    }
  }
  closeQuietly(entry.fd);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Closed anyway.
  }
}

/** Run `change`, ignoring the refusals of file systems that cannot store it. */
function whereSupported(change: () => void): void {
  try {
    change();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL", "ENOSYS"].includes(code ?? "")) throw error;
  }
}

/** What the daemon's thread needs of an error to judge it. */
function faultOf(error: unknown): CopyFault {
  if (error instanceof NameTaken) {
    return {
      name: error.name,
      message: error.message,
      stage: "taken",
      taken: { path: error.path, file: error.file },
    };
  }
  if (error instanceof TransferError) {
    const cause = error.cause instanceof Error ? faultOf(error.cause) : undefined;
    return { name: error.name, message: error.message, kind: error.kind, cause, stage: "transfer" };
  }
  const { name = "Error", message = String(error), code } = error as {
    name?: string;
    message?: string;
    code?: string;
  };
  return { name, message, code, stage: "call" };
}

reply({ kind: "ready", id: 0 });
