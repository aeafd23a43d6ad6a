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
import { checkSource, copyMismatch } from "../deliver.ts";
import { closeSource, deliveredPermissions, openSource } from "../source.ts";
import type { SshDelivery } from "./method.ts";
import { finishLines, type FinishPlan } from "./finish.ts";
import { type FolderFailure, type FolderSpec, makeFoldersLines } from "./remote_folders.ts";
import {
  buildScript,
  call,
  type RemoteScript,
  type ResultLine,
  resultsByIndex,
} from "./remote_script.ts";

/**
 * The source of `delivery` read whole, checked after to be still the version
 * that was queued (size and mtime): the bytes sent are that version's.
 * `null` when it is not (the delivery's error says why).
 */
export function readWhole(delivery: SshDelivery): Uint8Array | null {
  const { item } = delivery;
  const data = new Uint8Array(item.size);
  try {
    const source = openSource(item);
    let read = 0;
    try {
      while (read < item.size) {
        const n = readSync(source.fd, data, read, item.size - read, read);
        if (n === 0) break;
        read += n;
      }
    } finally {
      closeSource(source);
    }
    if (read !== item.size) {
      throw new TransferError(
        `Cannot send ${item.source}: ${copyMismatch.sourceChanged(read, item.size)}`,
        "retry",
      );
    }
  } catch (error) {
    delivery.error = error instanceof TransferError
      ? error
      : new TransferError(`Cannot send ${item.source}: ${String(error)}`, "retry", {
        cause: error,
      });
    return null;
  }
  checkSource(delivery);
  return delivery.error === null ? data : null;
}

/**
 * The script of one call: make the folder of `specs` (one) and the upload
 * folder; only then receive the copies (one: its bytes; several: a tar
 * archive, see {@linkcode tarArchive}), and only once they are received whole
 * run the finishing lines of `plan` (verify, rename, flush). A copy not
 * received whole is never renamed, whatever `verify_transfer` says.
 */
export function oneCallScript(
  base: string,
  specs: FolderSpec[],
  deliveries: SshDelivery[],
  plan: FinishPlan,
): RemoteScript {
  const uploadFolder = posix.dirname(deliveries[0].tempPath);
  const [one] = deliveries;
  const receive = deliveries.length === 1
    ? call("receive_copy", 0, one.tempPath, modeOf(one).toString(8), touchStamp(one.item.mtimeMs))
    : call("receive_copies", 0, uploadFolder);
  return buildScript(["make_folders", "finish", "receive"], [
    `${call("receive_tools", deliveries.length === 1 ? "one" : "several")} || exit 0`,
    "made=",
    `${makeFoldersLines(base, specs)[0]} && made=1`,
    // Swept, and the upload folder made: the daemon's other batches may use the folder now.
    '[ -n "$made" ] && report folders-made',
    `if [ -n "$made" ] && ${receive}`,
    "then",
    ...finishLines(plan),
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
 * A tar archive (POSIX pax) of `files`, in parts to be written one after the
 * other (the files' data is not copied): each a plain file under the base
 * name of its temporary path (a pax `path` record: any length, any bytes),
 * with its data, permission bits and mtime (whole seconds).
 */
export function tarArchive(
  files: Array<{ delivery: SshDelivery; data: Uint8Array }>,
): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (const [index, { delivery, data }] of files.entries()) {
    const name = new TextEncoder().encode(posix.basename(delivery.tempPath));
    const mtime = Math.floor(delivery.item.mtimeMs / 1000);
    const pax = paxRecord("path", name);
    parts.push(tarHeader(`PaxHeaders/f${index}`, 0o644, pax.length, mtime, "x"), pax);
    parts.push(blockPadding(pax.length));
    parts.push(tarHeader(`f${index}`, modeOf(delivery), data.length, mtime, "0"), data);
    parts.push(blockPadding(data.length));
  }
  parts.push(new Uint8Array(1024));
  return parts;
}

/** One pax record, `LENGTH KEY=VALUE\n`, LENGTH counting itself. */
function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const rest = new TextEncoder().encode(` ${key}=`).length + value.length + 1;
  let length = rest + 1;
  while (String(length).length + rest !== length) length = String(length).length + rest;
  const head = new TextEncoder().encode(`${length} ${key}=`);
  const record = new Uint8Array(length);
  record.set(head);
  record.set(value, head.length);
  record[length - 1] = 0x0a;
  return record;
}

/** A ustar header block. */
function tarHeader(name: string, mode: number, size: number, mtime: number, type: string) {
  const header = new Uint8Array(512);
  const put = (at: number, text: string) => header.set(new TextEncoder().encode(text), at);
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

/** The zeros that fill `length` bytes up to a whole number of 512-byte blocks. */
function blockPadding(length: number): Uint8Array {
  return new Uint8Array((512 - length % 512) % 512);
}

/**
 * What the results of a one-call script say failed before the finishing
 * lines. `unable`: the host lacks these tools (an empty list: not even the
 * script ran, `dd` is missing), and nothing was done.
 */
export function oneCallFailures(
  results: ResultLine[],
): { folder: FolderFailure | null; receive: string | null; unable: string[] | null } {
  const folder = resultsByIndex(
    results.filter((r) => r.word === "folder-is-link" || r.word === "folder-failed"),
  ).get(0);
  const unable = results.find((r) => r.word === "receive-unable");
  const ready = results.some((r) => r.word === "receive-ready");
  return {
    folder: folder === undefined
      ? null
      : folder.word === "folder-is-link"
      ? { kind: "link" }
      : { kind: "failed", message: folder.detail },
    receive: results.find((r) => r.word === "receive-failed")?.detail.replace(/^\d+ ?/, "") ??
      null,
    unable: unable ? unable.detail.split(" ").filter((tool) => tool !== "") : ready ? null : [],
  };
}
