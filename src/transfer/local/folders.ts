/**
 * Destination folders of the `local` transport: created below the base path
 * without ever going through a symbolic link, swept of this daemon's leftover
 * temporary files, and probed for `doctor`.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { TransferError } from "../../errors.ts";
import { answerWithin, type FolderFileSystem } from "../../config/file_systems.ts";
import type { JobConfig } from "../../config/types.ts";
import { baseGoneReason, danglingBaseReason } from "../base_folder.ts";
import { freeSpaceCheck, localDiskSpace } from "../../config/free_space.ts";
import {
  adoptedTempName,
  isOwnTempName,
  isOwnTempNameFor,
  type JobOwners,
  randomPart,
} from "../temp_name.ts";
import type { ProbeCheck, TransferOutcome } from "../transport.ts";
import { CopyVanished } from "./renamed.ts";
import { TEMP_SUFFIX } from "../../layout/destination.ts";

/**
 * `outcomes` of a batch, where a copy vanished (see {@linkcode CopyVanished}) or its temporary
 * file could not be made or renamed as "not found", said in the user's words, never by the
 * hidden temporary file's name. Where the destination `base` is gone (no folder there, or another
 * file system stands where files arrived before: `arrivedOn`), as the destination gone: the job
 * waits until it is back, and no file uses up an attempt on it. Where a destination folder
 * `made` for the batch (by folder, as {@linkcode makeLocalFolders} returned it) was removed
 * meanwhile (an archive's clean-up of a night folder, say), or made again since, as that folder
 * removed: the next attempt makes it again. Where that folder stayed, a copy gone before its
 * rename as the copy being written to its final name removed by something else: the next attempt
 * copies the file again. With `part`, the one outcome is a part of a growing file (no batch: the
 * next part, or the complete file, is copied again from its start).
 */
export async function vanishedAsBaseGone(
  outcomes: TransferOutcome[],
  base: string,
  arrivedOn: FolderFileSystem,
  made: MadeFolders = new Map(),
  part = false,
): Promise<TransferOutcome[]> {
  const folderOf = (outcome: TransferOutcome) =>
    dirname(join(base, ...outcome.item.destination.split("/")));
  const vanished = (outcome: TransferOutcome) =>
    copyLost(outcome) || (made.has(folderOf(outcome)) && isNotFound(outcome.error?.cause));
  if (!outcomes.some(vanished)) return outcomes;
  const unmounted = await kindAt(base) === "folder" ? await arrivedOn.unmountedShare() : "";
  if (unmounted !== null) {
    const gone = new TransferError(baseGoneReason(base, unmounted || undefined), "retry-later");
    return outcomes.map((outcome) => vanished(outcome) ? { ...outcome, error: gone } : outcome);
  }
  const removed = new Map<string, string | null>();
  for (const outcome of outcomes.filter(vanished)) {
    const folder = folderOf(outcome);
    if (!removed.has(folder)) removed.set(folder, await removedSince(base, folder, made, part));
  }
  return outcomes.map((outcome) => {
    let reason = vanished(outcome) ? removed.get(folderOf(outcome)) : null;
    // The folder is still there: the copy itself was removed (a clean-up of hidden files, say).
    if (!reason && copyLost(outcome)) reason = copyRemoved(base, outcome.item.destination, part);
    if (!reason) return outcome;
    const what = part ? `a part of ${outcome.item.source}` : outcome.item.source;
    const error = new TransferError(`Cannot send ${what}: ${reason}`, "retry", {
      cause: outcome.error,
    });
    return { ...outcome, error };
  });
}

/**
 * How `folder` (below `base`) was removed since it was `made` for a batch (with `part`, for a part
 * of a growing file), in words for the log, or `null` when it is still that folder: the topmost
 * folder missing on the way to it, or the folder itself, made again since.
 */
async function removedSince(
  base: string,
  folder: string,
  made: MadeFolders,
  part: boolean,
): Promise<string | null> {
  const before = made.get(folder);
  const now = await Deno.lstat(folder).catch(() => null);
  // A folder made again may get the inode number of the one removed: its birth time tells it.
  const same = (was: Deno.FileInfo, is: Deno.FileInfo) =>
    is.ino === was.ino && is.dev === was.dev &&
    is.birthtime?.getTime() === was.birthtime?.getTime();
  if (now !== null && (before === undefined || same(before, now))) return null;
  const during = part
    ? "was removed while this part of the growing file was copied into it"
    : "was removed while the batch was copied into it";
  if (now !== null) {
    return `the destination folder ${folder} ${during} (and made again since); ${
      part ? PART_AGAIN : "the next attempt copies the file again"
    }`;
  }
  let missing = folder;
  for (let above = dirname(folder); above.length > base.length; above = dirname(above)) {
    if (await kindAt(above) === null) missing = above;
  }
  return `the destination folder ${missing} ${during}; ${
    part ? `${PART_AGAIN}, in the folder made again` : "the next attempt makes it again"
  }`;
}

/** What follows a part of a growing file whose copy was lost: its copy starts over. */
const PART_AGAIN = "the next part, or the complete file, is copied from its start";

/**
 * Whether `outcome` failed as its temporary copy was gone before its rename (the hidden file
 * not found by its name), not as its source or a folder was.
 */
function copyLost(outcome: TransferOutcome): boolean {
  const error = outcome.error;
  if (error instanceof CopyVanished || error?.cause instanceof CopyVanished) return true;
  return isNotFound(error?.cause) && messageOf(error?.cause).includes(`${TEMP_SUFFIX}'`);
}

/**
 * What is said of the copy of `destination` (below `base`) removed before it was finished (with
 * `part`, the copy a part of a growing file was written into).
 */
function copyRemoved(base: string, destination: string, part: boolean): string {
  const finalPath = join(base, ...destination.split("/"));
  const copy = part ? "the copy of the growing file's parts" : "the copy";
  return `${copy} being written to ${finalPath} was removed by something else (not this ` +
    `daemon) before it was finished; ${
      part ? PART_AGAIN : "the next attempt copies the file again"
    }`;
}

/** Whether `error` says a file or folder is not there. */
function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound || (error as { code?: string })?.code === "ENOENT";
}

/** The destination folders made for a batch, as {@linkcode makeLocalFolders} returned them. */
export type MadeFolders = Map<string, Deno.FileInfo>;

/**
 * Create the folders of `destination` (a `/`-separated path relative to
 * `base`; its last part is the file name) one by one below `base`, which may
 * itself be or contain a link. A folder below `base` that is a symbolic link
 * fails the item: someone who can write the destination could otherwise send
 * our files anywhere. `base` itself is made too, unless `makeBase` is false
 * (files arrived there before: a base that is gone is an unmounted share, and
 * so is an empty folder on another file system than `arrivedOn` says).
 *
 * @returns the folder the file goes into, as it is now (a folder made again in its place is
 *   another)
 * @throws {TransferError} `fatal` for a link, `retry-later` for a base that
 *   is gone or a symbolic link to nothing (`fromTo`: see `otherBase`); the system's error
 *   otherwise
 */
export async function makeLocalFolders(
  base: string,
  destination: string,
  makeBase = true,
  arrivedOn?: FolderFileSystem,
  fromTo?: boolean,
): Promise<Deno.FileInfo> {
  // A symbolic link to nothing is looked for only where the base path failed: no cost otherwise.
  const dangling = async () => {
    const target = await danglingTarget(base);
    if (target === null) return;
    throw new TransferError(danglingBaseReason(base, target, !makeBase, fromTo), "retry-later");
  };
  if (makeBase) {
    await Deno.mkdir(base, { recursive: true }).catch(async (error) => {
      if (error instanceof Deno.errors.AlreadyExists) await dangling();
      throw error;
    });
  } else if (await kindAt(base) !== "folder") {
    await dangling();
    throw new TransferError(baseGoneReason(base), "retry-later");
  } else {
    const unmounted = await arrivedOn?.unmountedShare();
    if (unmounted) throw new TransferError(baseGoneReason(base, unmounted), "retry-later");
  }
  let folder = base;
  let info: Deno.FileInfo | null = null;
  for (const part of destination.split("/").slice(0, -1)) {
    folder = join(folder, part);
    // Looked at first: the folders of a night exist for all but its first batch, and a refused
    // mkdir costs an error object besides the call.
    const found = await Deno.lstat(folder).catch((error) => {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    });
    if (found === null) {
      await Deno.mkdir(folder).catch((error) => {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
      });
    }
    info = found ?? await Deno.lstat(folder); // made now (by us, or meanwhile by someone else)
    // Anything but a folder or a link fails at the next step with the system's own reason.
    if (info.isSymlink) {
      throw new TransferError(
        `the destination folder ${folder} is a symbolic link: nothing is written through it; ` +
          "replace it by a real folder",
        "fatal",
      );
    }
  }
  return info ?? await Deno.stat(base);
}

/**
 * Why the base folder `base`, not there, takes no file (`null`: the first transfer makes it):
 * files arrived there before (`deliveredBefore`: a share not mounted), or it is a symbolic link
 * to nothing, through which no folder is made, as `run` says it ({@linkcode makeLocalFolders}).
 */
async function goneBase(
  base: string,
  deliveredBefore: boolean,
  fromTo?: boolean,
): Promise<string | null> {
  const target = await danglingTarget(base);
  if (target !== null) {
    return `${base}: ${danglingBaseReason(base, target, deliveredBefore, fromTo)}`;
  }
  return deliveredBefore ? `${base}: ${baseGoneReason(base)}` : null;
}

/** Where `path` points, where it is a symbolic link to nothing; `null` otherwise. */
async function danglingTarget(path: string): Promise<string | null> {
  const target = await Deno.readLink(path).catch(() => null);
  if (target === null) return null;
  return await Deno.stat(path).then(
    () => null,
    (error) => error instanceof Deno.errors.NotFound ? target : null,
  );
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What is at `path` now (following links): a folder, something else, or nothing. */
async function kindAt(path: string): Promise<"folder" | "other" | null> {
  try {
    return (await Deno.stat(path)).isDirectory ? "folder" : "other";
  } catch {
    return null;
  }
}

/**
 * When something was last written into a temporary copy, in ms since the epoch, from its
 * `mtimeMs` and `ctimeMs`: the later of the two. A copy is dated as its source (an image taken
 * days ago, say) before it is verified and renamed, so its mtime alone says nothing of its age;
 * its status change time is set by every write and by that dating, and cannot be set back. Where
 * the system gives no ctime (it may be null on Windows), the mtime alone: there a complete copy of
 * an old file left by a daemon stopped before its rename is taken for expired.
 */
export function lastWrittenMs(mtimeMs: number | null | undefined, ctimeMs?: number | null): number {
  const times = [mtimeMs, ctimeMs].filter((ms): ms is number => Number.isFinite(ms));
  return times.length === 0 ? 0 : Math.max(...times);
}

/**
 * Remove the temporary files `owner` left in `folder` (an interrupted run) nothing was written
 * into for longer than `keepMs` (see {@linkcode lastWrittenMs}; all of them when it is 0: such
 * copies are not resumed), except those in `inUse`; with `ofFile`, only the copies of that file (a
 * final name), whatever their age; without, also those of the `earlier` naming
 * (`JobOwners.earlier`) nothing was written in for its `idleSeconds`, by the same time (one written
 * since may be another daemon's under the same host name, one it is verifying dated as its source
 * already). Links are removed, never followed; errors are ignored (a later sweep or the user will
 * see to them).
 *
 * @returns the names of the copies kept to be continued (younger than `keepMs`)
 */
export async function sweepLocalLeftovers(
  folder: string,
  owner: string,
  inUse: ReadonlySet<string>,
  keepMs = 0,
  ofFile?: string,
  earlier: JobOwners["earlier"] = null,
): Promise<string[]> {
  const kept: string[] = [];
  const ours = (name: string) =>
    ofFile === undefined ? isOwnTempName(name, owner) : isOwnTempNameFor(name, ofFile, owner);
  const earlierIdle = async (name: string, path: string) => {
    if (ofFile !== undefined || earlier === null || !isOwnTempName(name, earlier.owner)) {
      return false;
    }
    const info = await Deno.lstat(path).catch(() => null);
    if (info === null) return false;
    // Not by its mtime alone: a copy another daemon is verifying is dated as its source already.
    const writtenAt = lastWrittenMs(info.mtime?.getTime(), info.ctime?.getTime()) || Date.now();
    return Date.now() - writtenAt > earlier.idleSeconds * 1000;
  };
  try {
    for await (const listed of Deno.readDir(folder)) {
      if (listed.isDirectory) continue;
      const entry = { name: await adopted(folder, listed.name, owner, ofFile ? null : earlier) };
      const path = join(folder, entry.name);
      if (inUse.has(path)) continue;
      if (!ours(entry.name)) {
        if (await earlierIdle(entry.name, path)) await Deno.remove(path).catch(() => {});
        continue;
      }
      if (keepMs > 0 && ofFile === undefined) {
        const info = await Deno.lstat(path).catch(() => null);
        const writtenAt = lastWrittenMs(info?.mtime?.getTime(), info?.ctime?.getTime());
        if (info?.isFile && Date.now() - writtenAt <= keepMs) {
          kept.push(entry.name);
          continue;
        }
      }
      await Deno.remove(path).catch(() => {});
    }
  } catch {
    // Unreadable folder: the copy itself will report what is wrong.
  }
  return kept;
}

/**
 * The name of the temporary file `name` in `folder`: renamed under `owner` first where it is of
 * the `earlier` naming and that is this install's own (`JobOwners`), so it is swept, or continued,
 * as its own; as it was otherwise (or where that name is taken, or the rename fails).
 */
async function adopted(
  folder: string,
  name: string,
  owner: string,
  earlier: JobOwners["earlier"],
): Promise<string> {
  const from = [earlier?.owner ?? "", ...earlier?.also ?? []].find((id) => isOwnTempName(name, id));
  if (!earlier?.own || from === undefined) return name;
  const renamed = adoptedTempName(name, from, owner);
  if (await Deno.lstat(join(folder, renamed)).then(() => true, () => false)) return name;
  return await Deno.rename(join(folder, name), join(folder, renamed)).then(
    () => renamed,
    () => name,
  );
}

/**
 * The probe of `job`'s local destination (see {@linkcode probeFolder}), given up as a
 * destination that does not answer after `transfer_timeout_seconds` (a share whose server
 * stopped answering).
 */
export async function probeLocalDestination(
  job: JobConfig,
  arrivedOn?: FolderFileSystem,
  deliveredBefore = false,
  fromTo?: boolean,
): Promise<ProbeCheck[]> {
  const base = job.remote_base_path;
  const seconds = job.transfer_timeout_seconds;
  const checks = await answerWithin(
    probeFolder(base, job.min_free_space, arrivedOn, deliveredBefore, fromTo),
    seconds * 1000,
  );
  return checks ?? [{
    check: "destination folder",
    verdict: "fail",
    detail: `${base} did not answer in ${seconds} s (transfer_timeout_seconds; a share whose ` +
      "server stopped answering?): transfers wait until it answers again",
  }];
}

/**
 * The probe of a local destination: it can be written (a new folder of a
 * random name is made and removed there, so nothing is written through a
 * link), and its free space against `min_free_space` (a file system the
 * system cannot measure is a warning). A destination folder that does not
 * exist is not made (a share that is not mounted would get it on the disk
 * below): it is said, and the folder it would be made in is probed instead;
 * where files arrived there before (`deliveredBefore`), it fails, as the
 * transfers do (see {@linkcode makeLocalFolders}). A symbolic link to
 * nothing fails too: no folder is made through it.
 */
async function probeFolder(
  base: string,
  minFreeSpace: string | number = 0,
  arrivedOn?: FolderFileSystem,
  deliveredBefore = false,
  fromTo?: boolean,
): Promise<ProbeCheck[]> {
  const unreadable = await Deno.stat(base).then(() => null, (error) => error);
  if (unreadable !== null && !(unreadable instanceof Deno.errors.NotFound)) {
    return [{
      check: "destination folder",
      verdict: "fail",
      detail: `${base} cannot be read: ${messageOf(unreadable)} (a share whose server or ` +
        "program is gone reads like this; mount it again)",
    }];
  }
  const unmounted = unreadable === null ? await arrivedOn?.unmountedShare() : null;
  if (unmounted) {
    return [{
      check: "destination folder",
      verdict: "fail",
      detail: `${base}: ${unmounted} (a share that is not mounted): transfers wait for it; ` +
        "mount it",
    }];
  }
  if (unreadable !== null) {
    const gone = await goneBase(base, deliveredBefore, fromTo);
    if (gone !== null) return [{ check: "destination folder", verdict: "fail", detail: gone }];
  }
  let folder = base;
  const missing: ProbeCheck[] = [];
  while (await kindAt(folder) === null && dirname(folder) !== folder) folder = dirname(folder);
  if (folder !== base) {
    missing.push({
      check: "destination folder",
      verdict: "warn",
      detail: `${base} does not exist: the first transfer makes it, in ${folder} (if files ` +
        "arrived there before, it is a share that is not mounted: transfers wait for it)",
    });
  }
  const probe = join(folder, `.image-transfer-probe-${randomPart()}`);
  try {
    await Deno.mkdir(probe, { mode: 0o700 });
    await Deno.remove(probe);
    return [
      ...missing,
      { check: "destination writable", verdict: "ok", detail: folder },
      freeSpaceCheck(
        folder,
        await localDiskSpace(folder),
        minFreeSpace,
        `the system cannot tell the free space at ${folder}`,
      ),
    ];
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return [{
      check: "destination writable",
      verdict: "fail",
      detail: `${base}: ${message}; create the folder or fix its permissions`,
    }];
  }
}
