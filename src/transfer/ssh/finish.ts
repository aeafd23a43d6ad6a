/**
 * The last step of an SSH batch, with one call of `remote/finish.sh`: verify
 * each uploaded copy, rename the good ones into place, remove the others and
 * the batch's upload folders; then turn what it reported into each file's
 * outcome (with `remote_sync`, an arrival once the flush after the renames
 * confirmed it).
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../../config/types.ts";
import { isDestinationFull, TransferError } from "../../errors.ts";
import { classifyFailure, classifyText, type FailureContext } from "../classify.ts";
import { copyMismatch } from "../deliver.ts";
import {
  buildScript,
  call,
  parseResults,
  type ResultLine,
  resultsByIndex,
} from "./remote_script.ts";
import { hashSource } from "../source.ts";
import { occupiedError } from "../keep_others.ts";
import { notWrittenOut } from "./remote_sync.ts";
import type { SshDelivery } from "./method.ts";
import type { SshSession } from "./connection.ts";

/** What the finishing step needs of its transport. */
export interface FinishContext {
  session: SshSession;
  job: JobConfig;
  context: FailureContext;
  timeoutMs: number;
  /** The user-facing location of a destination. */
  describeTarget(destination: string): string;
  /**
   * Keep the copies of uploads that failed (interrupted: continued by a later
   * attempt) and the upload folders that hold them.
   */
  keepInterrupted?: boolean;
  /**
   * With `remote_sync`: the final paths of copies renamed into place whose flush after the
   * renames failed (not counted as arrived), or of a copy of its own the file was to replace
   * where the flush before the renames failed: the next copy of the file replaces its own there.
   */
  unflushed?: Set<string>;
}

/** One copy to check and rename. */
export interface FinishEntry {
  index: number;
  tempPath: string;
  finalPath: string;
  /** Size the copy must have, or `null` to skip the size check. */
  expectedSize: number | null;
  /** SHA-256 (hex) the copy must have, or `null` to skip the checksum. */
  expectedSha256: string | null;
  /** The copy must lose group and other write permission before the rename. */
  dropWrite: boolean;
  /**
   * A file under the final name is never replaced (`TransferItem.noReplace`): the source's size,
   * which that file must have to be compared with the copy (see `keep_others.ts`); `null`
   * (or left out): it is replaced.
   */
  keepOther?: number | null;
}

/** What the finish script is asked to do. */
export interface FinishPlan {
  entries: FinishEntry[];
  /** Copies to remove (of files that failed before). */
  remove: string[];
  /** Upload folders to remove at the end, with whatever is left in them. */
  uploadFolders: string[];
  /** Copies of uploads that failed, kept to be continued if anything of them was written. */
  keptCopies: { index: number; tempPath: string }[];
  /** The upload folders of the kept copies: each removed if nothing is in it at the end. */
  keptFolders: string[];
  /** Folders whose room left to report first (by index in this list). */
  spaceFolders: string[];
  /** Flush the destination file systems before and after the renames. */
  sync: boolean;
}

/**
 * A failed upload is taken for a full disk when the destination folder has
 * less room left than the file plus this much, or its file system no inode
 * left (SFTP servers report a full disk as a bare "Failure").
 */
const FULL_MARGIN_BYTES = 1024 * 1024;

/**
 * Copies of at most this many bytes in all are hashed on the server by
 * `sha256sum` where there is one: it starts in about 7 ms here against
 * OpenSSL's 16 ms, and hashes at about a third of OpenSSL's speed, so it is
 * the quicker of the two below about 5 MB.
 */
const SMALL_HASH_BYTES = 4 * 1024 * 1024;

/** Names a hash tool prints escaped; such copies are hashed on their own. */
const ESCAPED_BY_HASH_TOOLS = /[\n\r\\]/;

/** The lines of the finish script for `plan`. */
export function finishLines(plan: FinishPlan): string[] {
  const hashed = plan.entries.filter((entry) => entry.expectedSha256 !== null);
  const hashedBytes = hashed.reduce((sum, entry) => sum + (entry.expectedSize ?? Infinity), 0);
  const hashing = hashed.length === 0
    ? "no-hash"
    : hashedBytes <= SMALL_HASH_BYTES
    ? "hash-small"
    : "hash";
  // The work files go into an upload folder the script removes, where there is one.
  const lines = [
    call("start_finish", hashing, ...plan.uploadFolders.slice(0, 1)),
  ];
  plan.spaceFolders.forEach((folder, index) =>
    lines.push(call("report_space_left", index, folder))
  );
  const groups = new Map<string, FinishEntry[]>();
  for (const entry of plan.entries) {
    const folder = posix.dirname(entry.tempPath);
    groups.set(folder, [...groups.get(folder) ?? [], entry]);
  }
  const ordered = [...groups.values()].flat();
  const finalFolders = [...groups.keys()].map((folder) => posix.dirname(folder));
  // The copies' data first (a rename must never reach the disk before the data it names),
  // written while the copies are checked.
  const sync = plan.sync && ordered.length > 0;
  if (sync) lines.push(call("start_flush", ...finalFolders));
  // A copy checked by its SHA-256 has its size read only if that differs (see check_copy).
  const sized = ordered.filter((entry) =>
    entry.expectedSize !== null && entry.expectedSha256 === null
  );
  if (sized.length > 0) lines.push(call("read_sizes", ...sized.map((entry) => entry.tempPath)));
  [...groups].forEach(([folder, entries], group) => {
    const listed = entries.filter((entry) =>
      entry.expectedSha256 !== null && !ESCAPED_BY_HASH_TOOLS.test(posix.basename(entry.tempPath))
    ).map((entry) => `./${posix.basename(entry.tempPath)}`);
    lines.push(call("begin_folder", group, folder, ...listed));
    for (const entry of entries) {
      lines.push(call(
        "check_copy",
        entry.index,
        entry.tempPath,
        entry.finalPath,
        entry.expectedSize ?? "-",
        entry.expectedSha256 ?? "-",
        ...(entry.keepOther == null ? [] : ["keep", entry.keepOther]),
      ));
    }
  });
  if (plan.remove.length > 0) lines.push(call("remove_copies", ...plan.remove));
  const dropWrite = ordered.filter((entry) => entry.dropWrite).map((entry) => entry.tempPath);
  if (dropWrite.length > 0) lines.push(call("drop_group_and_other_write", ...dropWrite));
  if (sync) lines.push(call("end_flush"));
  finalFolders.forEach((folder, group) => lines.push(call("rename_checked_copies", group, folder)));
  // A copy whose final name is kept is renamed without replacing what came there since its check.
  for (const { index, tempPath, finalPath, keepOther } of ordered) {
    const folder = posix.dirname(posix.dirname(tempPath));
    const keep = keepOther == null ? [] : ["keep", keepOther, folder];
    lines.push(call("report_renamed", index, tempPath, finalPath, ...keep));
  }
  // Then the renames themselves, before the results count.
  if (sync) lines.push(call("flush_renames", ...finalFolders));
  for (const copy of plan.keptCopies) lines.push(call("report_kept", copy.index, copy.tempPath));
  if (plan.keptFolders.length > 0) lines.push(call("remove_if_empty", ...plan.keptFolders));
  if (plan.uploadFolders.length > 0) {
    lines.push(call("remove_upload_folders", ...plan.uploadFolders));
  }
  return lines;
}

/** What a batch's finishing step kept (see {@linkcode FinishContext.keepInterrupted}). */
export interface KeptCopies {
  /** The upload folders left in place because they hold interrupted copies. */
  folders: string[];
  /** The deliveries (by index) whose interrupted copy is kept: something of it was written. */
  copies: Set<number>;
}

/** Result words that say nothing of one copy's outcome. */
const NOT_OUTCOMES = new Set([
  "space-left",
  "kept",
  "folder-left",
  "flush-failed",
  "renames-flushed",
  "renames-not-flushed",
]);

/**
 * Verify and rename the good copies of `deliveries` (those that took part in
 * the upload), remove the others' copies and the `uploadFolders`; record each
 * outcome on its delivery.
 *
 * @returns what was kept of uploads that failed (an upload folder left empty
 *   by one, nothing written at its handshake, is removed), or `null` when the
 *   remote call did not run (the upload folders may be left)
 * @throws `signal.reason` when aborted
 */
export async function finishBatch(
  ctx: FinishContext,
  deliveries: SshDelivery[],
  uploadFolders: string[],
  signal: AbortSignal,
): Promise<KeptCopies | null> {
  if (deliveries.length === 0) return { folders: [], copies: new Set() };
  const plan = await planFinish(ctx, deliveries, uploadFolders);
  const script = buildScript("finish", finishLines(plan));
  let results: ResultLine[];
  try {
    const stdout = await ctx.session.runScript(script.text, { timeoutMs: ctx.timeoutMs, signal });
    results = parseResults(stdout, script.marker);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    cutOff(
      deliveries,
      (delivery) => classifyFailure(error, `finish ${delivery.item.source}`, ctx.context),
    );
    return null;
  }
  settleFinish(ctx, deliveries, results, plan.spaceFolders);
  const said = (word: string) => resultsByIndex(results.filter((result) => result.word === word));
  const left = said("folder-left");
  const removed = new Set(plan.keptFolders.filter((_, index) => !left.has(index)));
  const keptIn = plan.keptCopies.map((copy) => posix.dirname(copy.tempPath));
  return {
    folders: [...new Set(keptIn)].filter((folder) => !removed.has(folder)),
    copies: new Set(said("kept").keys()),
  };
}

/**
 * Fail the `deliveries` not failed yet of a call cut off before it said what it did (`failure`
 * says why): it may have renamed their copies into place, so each is marked `mayBeInPlace`
 * (looked for at the destination before it is sent again).
 */
export function cutOff(
  deliveries: SshDelivery[],
  failure: (delivery: SshDelivery) => TransferError,
): void {
  for (const delivery of deliveries) {
    if (delivery.error !== null) continue;
    delivery.error = failure(delivery);
    delivery.mayBeInPlace = true;
  }
}

/**
 * What the finish script is to do for `deliveries` (see
 * {@linkcode finishBatch}).
 */
export async function planFinish(
  ctx: FinishContext,
  deliveries: SshDelivery[],
  uploadFolders: string[],
): Promise<FinishPlan> {
  const entries: FinishEntry[] = [];
  const remove: string[] = [];
  const keptCopies: FinishPlan["keptCopies"] = [];
  const kept = new Set<string>();
  for (const delivery of deliveries) {
    const entry = await entryFor(ctx, delivery);
    if (entry !== null) entries.push(entry);
    else if (
      ctx.keepInterrupted && delivery.uploadFailed && !filledUp(delivery) &&
      !delivery.notWrittenOut
    ) {
      keptCopies.push({ index: delivery.index, tempPath: delivery.tempPath });
      kept.add(posix.dirname(delivery.tempPath));
    } else remove.push(delivery.tempPath);
  }
  // Only this batch's own upload folders: no other batch writes into them.
  const keptFolders = uploadFolders.filter((folder) => kept.has(folder));
  // Where an upload failed for a reason the server did not name, ask how much room is left.
  const spaceFolders = [
    ...new Set(
      deliveries.filter((delivery) =>
        (delivery.uploadFailed && delivery.error?.kind === "retry") ||
        delivery.callFailure !== null
      ).map((delivery) => posix.dirname(delivery.finalPath)),
    ),
  ];
  return {
    entries,
    remove,
    uploadFolders: uploadFolders.filter((folder) => !kept.has(folder)),
    keptCopies,
    keptFolders,
    spaceFolders,
    sync: ctx.job.remote_sync,
  };
}

/** Record on each delivery what the finish script's `results` say of it. */
export function settleFinish(
  ctx: FinishContext,
  deliveries: SshDelivery[],
  results: ResultLine[],
  spaceFolders: string[],
): void {
  const space = resultsByIndex(results.filter((result) => result.word === "space-left"));
  const byIndex = resultsByIndex(results.filter((result) => !NOT_OUTCOMES.has(result.word)));
  // What sync said where the copies could not be written out (none was renamed then).
  const flush = results.find((result) => result.word === "flush-failed")?.detail ?? "";
  // With remote_sync a copy counts once the flush after the renames said they are on disk.
  const unconfirmed = !ctx.job.remote_sync || results.some((r) => r.word === "renames-flushed")
    ? null
    : results.find((r) => r.word === "renames-not-flushed")?.detail ||
      "no word of the flush after the renames";
  for (const delivery of deliveries) {
    const result = byIndex.get(delivery.index);
    delivery.error ??= resultError(ctx, delivery, result, flush);
    if (delivery.error === null && unconfirmed === null) ctx.unflushed?.delete(delivery.finalPath);
    // Not renamed, the flush before failing: what it was to replace stays there, and stays its
    // own to replace (a copy of its own not confirmed on disk, which the look gave it).
    else if (result?.word === "not-flushed" && !delivery.item.noReplace) {
      ctx.unflushed?.add(delivery.finalPath);
    } else if (delivery.error === null && unconfirmed !== null) {
      if (result?.word === "renamed") {
        ctx.unflushed?.add(delivery.finalPath);
        delivery.unconfirmedCopy = true;
      }
      delivery.occupied = undefined;
      delivery.error = notWrittenOut(ctx, delivery, unconfirmed, "renamed");
    }
    const fromUpload = delivery.uploadFailed ||
      (delivery.error !== null && delivery.error === delivery.callFailure);
    const left = space.get(spaceFolders.indexOf(posix.dirname(delivery.finalPath)))?.detail;
    // "KIB FILES": the room left, and how many more files fit ("-": not said).
    const [, kiB, files] = (left ?? "").match(/^(\d+)(?: (\S+))?$/) ?? [];
    if (delivery.error?.kind !== "retry" || !fromUpload || kiB === undefined) continue;
    if (files === "0") delivery.error = diskFull(ctx, delivery, "every inode is used");
    else if (Number(kiB) * 1024 < delivery.item.size + FULL_MARGIN_BYTES) {
      delivery.error = diskFull(ctx, delivery, `${kiB} KiB left there`);
    }
  }
}

/**
 * Whether the upload of `delivery` failed because the destination is full:
 * such a copy is not kept to be continued, its room is better used by whole files.
 */
function filledUp(delivery: SshDelivery): boolean {
  return delivery.error !== null && isDestinationFull(delivery.error);
}

/**
 * The finish entry of one delivery, or `null` when its copy is only to be
 * removed. A copy of a failed upload call is compared by its bytes, whatever
 * `verify_transfer` says (the source is hashed now if it was not yet).
 */
async function entryFor(ctx: FinishContext, delivery: SshDelivery): Promise<FinishEntry | null> {
  const verify = ctx.job.verify_transfer;
  const byBytes = delivery.callFailure !== null ||
    (verify === "checksum" && !delivery.verifiedByUpload);
  if (byBytes && !delivery.error) delivery.sourceSha256 ??= hashSource(delivery.item);
  let sha256: string | null = null;
  if (byBytes && delivery.sourceSha256 && !delivery.error) {
    try {
      sha256 = await delivery.sourceSha256;
    } catch (error) {
      delivery.error = error instanceof TransferError
        ? error
        : classifyFailure(error, `send ${delivery.item.source}`, ctx.context);
    }
  }
  if (delivery.error) return null;
  delivery.sha256 = sha256;
  return {
    index: delivery.index,
    tempPath: delivery.tempPath,
    finalPath: delivery.finalPath,
    expectedSize: verify !== "none" || delivery.callFailure !== null ? delivery.item.size : null,
    expectedSha256: sha256,
    dropWrite: ((delivery.source?.permissions ?? 0) & 0o022) !== 0,
    // A copy of its own there, not confirmed on disk, is replaced (see FinishContext.unflushed).
    keepOther: delivery.item.noReplace && !ctx.unflushed?.has(delivery.finalPath)
      ? delivery.item.size
      : null,
  };
}

/** `delivery` failed for want of room: `seen` says what shows it (the room left, no inode). */
function diskFull(ctx: FinishContext, delivery: SshDelivery, seen: string): TransferError {
  const { kind, reason } = classifyText("No space left on device", ctx.context);
  return new TransferError(
    `Cannot send ${delivery.item.source} to ${ctx.describeTarget(delivery.item.destination)}: ` +
      `${reason} (${seen}, ${delivery.item.size} bytes to write)`,
    kind,
    { cause: delivery.error },
  );
}

/**
 * The error the finish script's result for `delivery` means, or `null` when it was renamed;
 * `flush`: what sync said where the copies could not be written out.
 */
function resultError(
  ctx: FinishContext,
  delivery: SshDelivery,
  result: ResultLine | undefined,
  flush: string,
): TransferError | null {
  const target = ctx.describeTarget(delivery.item.destination);
  const fail = (reason: string, kind: TransferError["kind"] = "retry") =>
    new TransferError(`Cannot send ${delivery.item.source} to ${target}: ${reason}`, kind);
  switch (result?.word) {
    case "renamed":
      return null;
    case "already":
      delivery.occupied = "same";
      return null;
    case "occupied":
      delivery.occupied = "other";
      return occupiedError(delivery.item, target);
    case undefined:
      return fail("no result from the remote host");
    case "missing":
      return delivery.callFailure ?? fail("the uploaded copy is missing");
    case "size-differs":
      return delivery.callFailure ??
        fail(copyMismatch.sizeDiffers(result.detail, delivery.item.size));
    case "size-unknown":
      return fail("cannot read the size of the uploaded copy (stat failed)");
    case "checksum-differs":
      return delivery.callFailure ?? fail(copyMismatch.checksumDiffers);
    case "no-hash-tool":
      return delivery.callFailure ?? fail(
        "no SHA-256 tool on the remote host (openssl, sha256sum or shasum): install one of " +
          "them there (e.g. coreutils), or set verify_transfer: size",
        "fatal",
      );
    case "final-is-folder":
      return fail("a folder exists under the final name: remove or rename it", "fatal");
    case "rename-failed": {
      const { kind, reason } = classifyText(result.detail, ctx.context);
      return fail(`cannot rename the copy into place: ${reason} (${result.detail})`, kind);
    }
    case "not-flushed":
      return notWrittenOut(ctx, delivery, flush, "before");
    default:
      return fail(`unexpected result from the remote host: ${result!.word}`);
  }
}
