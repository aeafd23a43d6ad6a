/**
 * The one-call delivery of small files over SSH (see `batch.ts`): the
 * sources read whole and checked, the script that makes the folder, receives
 * the copies on standard input (`remote/receive.sh`: one file's bytes, or a
 * tar archive of several), verifies them and renames them, and what its
 * results say went wrong.
 *
 * @module
 */
import { readSync } from "node:fs";
import { posix } from "node:path";
import { TransferError } from "../../errors.ts";
import { copyMismatch } from "../deliver.ts";
import { TEMP_SUFFIX } from "../../layout/destination.ts";
import { closeSource, deliveredPermissions, inspectOpenSource, openSource } from "../source.ts";
import type { SshDelivery } from "./method.ts";
import { finishLines, type FinishPlan } from "./finish.ts";
import {
  type BaseRule,
  type FolderFailure,
  folderFailuresOf,
  type FolderSpec,
  makeFoldersLines,
  type RemoteBase,
} from "./remote_folders.ts";
import { buildScript, call, type RemoteScript, type ResultLine } from "./remote_script.ts";

const encoder = new TextEncoder();

/** One file of a one-call payload: its delivery and its bytes (a view into the payload). */
export interface PayloadFile {
  delivery: SshDelivery;
  data: Uint8Array;
}

/** What one call sends (see {@linkcode readPayload}). */
export interface Payload {
  files: PayloadFile[];
  payload: Uint8Array;
  /**
   * Give the payload's memory back for the next call to reuse. Only once the
   * call that sent it has ended: its writer may still read it until then.
   */
  release(): void;
}

/**
 * Memory for payloads, reused from call to call: fresh memory costs a page
 * fault per 4 KiB at its first write (on a virtual machine, several times the
 * cost of the copy itself), and a burst sends hundreds of megabytes.
 * `SharedArrayBuffer`s, so that a launcher thread writes them to the program
 * without a copy. What is not reused for a while is let go.
 */
class PayloadMemory {
  /** Buffers no call is using. */
  #free: SharedArrayBuffer[] = [];
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  /** A buffer of at least `bytes` (the free one that fits best, else a new one). */
  take(bytes: number): SharedArrayBuffer {
    let best = -1;
    for (const [i, buffer] of this.#free.entries()) {
      const fits = buffer.byteLength >= bytes;
      if (fits && (best < 0 || buffer.byteLength < this.#free[best].byteLength)) best = i;
    }
    if (best >= 0) return this.#free.splice(best, 1)[0];
    // Whole mebibytes, so that a buffer fits the next batch of about the same size.
    return new SharedArrayBuffer(Math.ceil(bytes / MIB) * MIB);
  }

  /** `buffer` may be reused; the free ones are let go {@linkcode PAYLOAD_MEMORY_KEPT_MS} after the last. */
  give(buffer: SharedArrayBuffer): void {
    this.#free.push(buffer);
    if (this.#free.length > PAYLOAD_BUFFERS_KEPT) this.#free.shift();
    clearTimeout(this.#idleTimer);
    const timer = setTimeout(() => this.#free = [], PAYLOAD_MEMORY_KEPT_MS);
    // A daemon that has nothing else to do does not wait for it.
    Deno.unrefTimer(timer);
    this.#idleTimer = timer;
  }
}

const MIB = 1024 * 1024;

/** Free payload buffers kept: as many as calls a burst runs at once, with room to spare. */
const PAYLOAD_BUFFERS_KEPT = 8;

/** How long payload memory no call uses is kept for the next one. */
const PAYLOAD_MEMORY_KEPT_MS = 5_000;

const payloadMemory = new PayloadMemory();

/**
 * What one call sends, in one buffer: the sources of `deliveries` read
 * straight into it, each checked after to be still the version that was
 * queued (size and mtime: the bytes sent are that version's; a delivery that
 * is not gets its error and is left out). A tar archive of them (see
 * {@linkcode tarEntryBytes}), which the server's `tar` unpacks with their
 * permission bits and times; without `archive` (for a host without tar), the
 * bytes of the one delivery. `null` when none could be read. The caller
 * releases it once the call has ended.
 */
export function readPayload(deliveries: SshDelivery[], archive = true): Payload | null {
  if (!archive && deliveries.length !== 1) {
    throw new Error("Only one file goes without a tar archive");
  }
  const names = archive
    ? deliveries.map((d) => paxRecord("path", encoder.encode(posix.basename(d.tempPath))))
    : [];
  const total = !archive ? deliveries[0].item.size : deliveries.reduce(
    (sum, delivery, i) => sum + tarEntryBytes(names[i].length, delivery.item.size),
    TAR_END_BYTES,
  );
  const memory = payloadMemory.take(total);
  const release = () => payloadMemory.give(memory);
  const buffer = new Uint8Array(memory, 0, total);
  if (!archive) {
    const [delivery] = deliveries;
    if (readInto(delivery, buffer)) {
      return { files: [{ delivery, data: buffer }], payload: buffer, release };
    }
    release();
    return null;
  }
  const files: PayloadFile[] = [];
  let at = 0;
  for (const [i, delivery] of deliveries.entries()) {
    const pax = names[i];
    const dataAt = at + 512 + padded(pax.length) + 512;
    const data = buffer.subarray(dataAt, dataAt + delivery.item.size);
    // A source that cannot be read leaves no entry: the next one is written over its place.
    if (!readInto(delivery, data)) continue;
    const index = files.length;
    const mtime = Math.floor(delivery.item.mtimeMs / 1000);
    buffer.set(tarHeader(`PaxHeaders/f${index}`, 0o644, pax.length, mtime, "x"), at);
    buffer.set(pax, at + 512);
    buffer.fill(0, at + 512 + pax.length, at + 512 + padded(pax.length));
    buffer.set(tarHeader(`f${index}`, modeOf(delivery), data.length, mtime, "0"), dataAt - 512);
    at = dataAt + padded(data.length);
    buffer.fill(0, dataAt + data.length, at);
    files.push({ delivery, data });
  }
  if (files.length === 0) {
    release();
    return null;
  }
  buffer.fill(0, at, at + TAR_END_BYTES);
  return { files, payload: buffer.subarray(0, at + TAR_END_BYTES), release };
}

/**
 * Read the source of `delivery` into `target` (exactly its queued size), then
 * check that it is still the version that was queued. `false`, with the
 * delivery's error saying why, when it is not or cannot be read.
 */
function readInto(delivery: SshDelivery, target: Uint8Array): boolean {
  const { item } = delivery;
  try {
    const source = openSource(item);
    try {
      let read = 0;
      while (read < item.size) {
        const n = readSync(source.fd, target, read, item.size - read, read);
        if (n === 0) break;
        read += n;
      }
      if (read !== item.size) {
        throw new TransferError(
          `Cannot send ${item.source}: ${copyMismatch.sourceChanged(read, item.size)}`,
          "retry",
        );
      }
      // The file the bytes came from, looked at again now that they are read.
      delivery.source = inspectOpenSource(item, source);
    } finally {
      closeSource(source);
    }
  } catch (error) {
    delivery.error = error instanceof TransferError
      ? error
      : new TransferError(`Cannot send ${item.source}: ${String(error)}`, "retry", {
        cause: error,
      });
    return false;
  }
  return true;
}

/**
 * The script of one call: make the folder of `specs` (one) and the upload
 * folder; only then receive the copies (a tar archive, or without `archive`
 * one file's bytes: see {@linkcode readPayload}), and only once they are
 * received whole run the finishing lines of `plan` (verify, rename, flush). A
 * copy not received whole is never renamed, whatever `verify_transfer` says.
 * `base`: see {@linkcode makeFoldersLines}.
 */
export function oneCallScript(
  base: string,
  specs: FolderSpec[],
  deliveries: SshDelivery[],
  plan: FinishPlan,
  { archive, base: rule, dropKept }: {
    archive: boolean;
    base: BaseRule;
    /**
     * Where interrupted copies are kept to be continued: this daemon's upload folder prefix and
     * the upload folders its other batches use in the folder. The copies its earlier attempts
     * kept of these files go once they arrived (sent whole, they are never continued).
     */
    dropKept?: { prefix: string; active: string[] };
  },
): RemoteScript {
  const uploadFolder = posix.dirname(deliveries[0].tempPath);
  const [one] = deliveries;
  const receive = archive
    ? call("receive_copies", 0, uploadFolder)
    : call("receive_copy", 0, one.tempPath, modeOf(one).toString(8), touchStamp(one.item.mtimeMs));
  return buildScript(["make_folders", "finish", "receive"], [
    `${call("receive_tools", archive ? "archive" : "bytes")} || exit 0`,
    "made=",
    `${makeFoldersLines(base, specs, [], rule)[0]} && made=1`,
    // Swept, and the upload folder made: the daemon's other batches may use the folder now.
    '[ -n "$made" ] && report folders-made',
    `if [ -n "$made" ] && ${receive}`,
    "then",
    ...finishLines(plan),
    ...(dropKept === undefined ? [] : deliveries.map((delivery) =>
      call(
        "drop_kept_copies",
        posix.dirname(delivery.finalPath),
        posix.basename(delivery.finalPath),
        dropKept.prefix,
        TEMP_SUFFIX,
        posix.basename(uploadFolder),
        ...dropKept.active,
      )
    )),
    'elif [ -n "$made" ]; then',
    // Nothing is renamed: the room left tells a full disk, and the upload folder goes.
    call("report_space_left", 0, posix.dirname(uploadFolder)),
    call("remove_upload_folders", uploadFolder),
    "fi",
  ]);
}

/** The permission bits a copy gets: the source's, without group and other write. */
function modeOf(delivery: SshDelivery): number {
  return deliveredPermissions(delivery.source!);
}

/** `touch -t` time in UTC (`CCYYMMDDhhmm.SS`) of `ms` since the epoch. */
function touchStamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(/[-:T]/g, "")
    .replace(/^(\d{12})(\d\d).*$/, "$1.$2");
}

/**
 * The tar layout of a payload of several files (POSIX pax): per file a pax
 * header whose `path` record is the base name of its temporary path (any
 * length, any bytes), then a plain file entry with its data, permission bits
 * and mtime (whole seconds), each padded to 512-byte blocks; two zero blocks
 * end it. These are the bytes of one entry.
 */
function tarEntryBytes(paxLength: number, size: number): number {
  return 512 + padded(paxLength) + 512 + padded(size);
}

/** The zero blocks that end a tar archive. */
const TAR_END_BYTES = 1024;

/** `length` rounded up to a whole number of 512-byte blocks. */
function padded(length: number): number {
  return Math.ceil(length / 512) * 512;
}

/** One pax record, `LENGTH KEY=VALUE\n`, LENGTH counting itself. */
function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const rest = encoder.encode(` ${key}=`).length + value.length + 1;
  let length = rest + 1;
  while (String(length).length + rest !== length) length = String(length).length + rest;
  const head = encoder.encode(`${length} ${key}=`);
  const record = new Uint8Array(length);
  record.set(head);
  record.set(value, head.length);
  record[length - 1] = 0x0a;
  return record;
}

/** A ustar header block. */
function tarHeader(name: string, mode: number, size: number, mtime: number, type: string) {
  const header = new Uint8Array(512);
  const put = (at: number, text: string) => header.set(encoder.encode(text), at);
  const octal = (at: number, width: number, value: number) =>
    put(at, value.toString(8).padStart(width - 1, "0"));
  put(0, name);
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, mtime);
  put(148, "        ");
  put(156, type);
  put(257, "ustar\u000000");
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(148, `${sum.toString(8).padStart(6, "0")}\u0000 `);
  return header;
}

/**
 * What the results of a one-call script say failed before the finishing
 * lines (what they say of the base path goes to `remoteBase`). `unable`: the
 * host lacks these tools (an empty list: not even the script ran, `dd` is
 * missing), and nothing was done.
 */
export function oneCallFailures(
  results: ResultLine[],
  remoteBase: RemoteBase,
): { folder: FolderFailure | null; receive: string | null; unable: string[] | null } {
  remoteBase.learn(results);
  const folder = folderFailuresOf(results).get(0);
  const unable = results.find((r) => r.word === "receive-unable");
  const ready = results.some((r) => r.word === "receive-ready");
  return {
    folder: folder ?? null,
    receive: results.find((r) => r.word === "receive-failed")?.detail.replace(/^\d+ ?/, "") ??
      null,
    unable: unable ? unable.detail.split(" ").filter((tool) => tool !== "") : ready ? null : [],
  };
}
