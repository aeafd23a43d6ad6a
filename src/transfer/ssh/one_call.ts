/**
 * The one-call delivery of a small file over SSH (see `batch.ts`): the
 * source read whole and checked, the script that makes the folders, receives
 * the copy on standard input (`remote/receive.sh`), verifies it and renames
 * it, and what its results say went wrong.
 *
 * @module
 */
import { readSync } from "node:fs";
import { posix } from "node:path";
import { TransferError } from "../../errors.ts";
import { checkSource, copyMismatch } from "../deliver.ts";
import { closeSource, deliveredPermissions, openSource } from "../source.ts";
import type { SshDelivery } from "./delivery.ts";
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
 * The script of one call: make the folders of `specs` (one) and the upload
 * folder; only then receive the copy, and only once it is received whole run
 * the finishing lines of `plan` (verify, rename, flush). A copy not received
 * whole is never renamed, whatever `verify_transfer` says.
 */
export function oneCallScript(
  base: string,
  specs: FolderSpec[],
  delivery: SshDelivery,
  plan: FinishPlan,
): RemoteScript {
  // touch -t in UTC: CCYYMMDDhhmm.SS
  const stamp = new Date(Math.floor(delivery.item.mtimeMs / 1000) * 1000).toISOString()
    .replace(/[-:T]/g, "").replace(/^(\d{12})(\d\d).*$/, "$1.$2");
  const mode = deliveredPermissions(delivery.source!).toString(8);
  const folder = posix.dirname(delivery.tempPath);
  return buildScript(["make_folders", "finish", "receive"], [
    "made=",
    `${makeFoldersLines(base, specs)[0]} && made=1`,
    'if [ -n "$made" ] && ' + call("receive_copy", delivery.index, delivery.tempPath, mode, stamp),
    "then",
    ...finishLines(plan),
    'elif [ -n "$made" ]; then',
    // Nothing is renamed: the room left tells a full disk, and the upload folder goes.
    call("report_space_left", 0, posix.dirname(folder)),
    call("remove_upload_folders", folder),
    "fi",
  ]);
}

/** What the results of a one-call script say failed before the finishing lines. */
export function oneCallFailures(
  results: ResultLine[],
  delivery: SshDelivery,
): { folder: FolderFailure | null; receive: string | null } {
  const folders = resultsByIndex(
    results.filter((r) => r.word === "folder-is-link" || r.word === "folder-failed"),
  ).get(0);
  const received = resultsByIndex(results.filter((r) => r.word === "receive-failed"));
  return {
    folder: folders === undefined
      ? null
      : folders.word === "folder-is-link"
      ? { kind: "link" }
      : { kind: "failed", message: folders.detail },
    receive: received.get(delivery.index)?.detail ?? null,
  };
}
