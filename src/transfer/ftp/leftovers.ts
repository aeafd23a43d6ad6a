/**
 * The leftovers of FTP batches that were cut off: upload folders (and temporary files of earlier
 * versions) swept from a destination folder, the job's own at once, those of its earlier naming
 * (by host name) only once nothing was written in them for long.
 *
 * A copy is dated as its source (`MFMT`, or the two-argument `MDTM`) right before its rename, so
 * its `MDTM` alone says nothing of when it was written: a copy of an image taken days ago that
 * another daemon is renaming into place looks idle. The folder holding it was written as the copy
 * was made in it, and no client sets its date: its date in the listing must be old too. That date
 * is to the minute in the server's time zone (`LIST`), which nothing tells: it is taken as the
 * latest moment it may stand for, twelve hours and a minute on (the zone furthest behind UTC), or
 * exactly where the server gives `MLSD`'s `modify` (UTC).
 *
 * @module
 */
import type { FileInfo } from "basic-ftp";
import { isOwnTempName, type JobOwners, uploadFolderPrefix } from "../temp_name.ts";
import { TEMP_SUFFIX } from "../../layout/destination.ts";
import { type FtpPeer, joinRemote, parentOf } from "./remote.ts";

/** How much later than it reads, as UTC, a `LIST` date may be: the zone furthest behind, a minute. */
const LISTED_LATEST_MS = 12 * 3_600_000 + 60_000;

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/**
 * Remove the leftovers of the job whose temporary names carry `owner` from `folder` (upload
 * folders of batches that were cut off, except those `inUse`, and temporary files of earlier
 * versions), and the earlier naming's once nothing was written in them for `idleSeconds`: their
 * files by `MDTM`, and the folder holding them by its listed date (see the module doc; not an
 * empty one, nor without `MDTM` or a date: it may be another daemon's under the same host name),
 * once per folder and connection. A listing that fails is let be; a connection that breaks throws.
 */
export async function sweepLeftovers(
  peer: FtpPeer,
  folder: string,
  { owner, earlier }: JobOwners,
  inUse: ReadonlySet<string>,
): Promise<void> {
  if (peer.swept.has(folder)) return;
  peer.swept.add(folder);
  const { client } = peer.connection;
  const ofOwner = (name: string, who: string) =>
    (name.startsWith(uploadFolderPrefix(who)) && name.endsWith(TEMP_SUFFIX)) ||
    isOwnTempName(name, who);
  // Listed a moment ago by this batch to look for its new files (see `absent.ts`): not again.
  const listed = peer.listings.get(folder);
  peer.listings.delete(folder);
  try {
    let entries = listed;
    if (entries === undefined) {
      peer.entered = null;
      await client.cd(folder);
      entries = await client.list();
      peer.dataWorked = true;
    }
    for (const entry of entries) {
      const path = joinRemote(folder, entry.name);
      const mine = ofOwner(entry.name, owner);
      if (inUse.has(path) || !mine && !(earlier && ofOwner(entry.name, earlier.owner))) continue;
      const files = entry.isDirectory
        ? (await client.list(path)).filter((inside) => inside.isFile)
          .map((inside) => joinRemote(path, inside.name))
        : [path];
      if (!mine) {
        // The folder the copies were made in: the upload folder, or for a loose one `folder`.
        const holder = entry.isDirectory ? entry : await listedEntry(peer, folder);
        const seconds = earlier!.idleSeconds;
        if (!idleSince(holder, seconds) || !await writtenBefore(peer, files, seconds)) continue;
      }
      for (const file of files) await client.sendIgnoringError(`DELE ${file}`);
      if (entry.isDirectory) await client.sendIgnoringError(`RMD ${path}`);
    }
  } catch (error) {
    if (client.closed) throw error;
    // A listing is a courtesy: the upload still goes ahead.
  }
}

/** Whether there are `files` and `MDTM` says each was last written over `seconds` ago. */
async function writtenBefore(peer: FtpPeer, files: string[], seconds: number): Promise<boolean> {
  if (files.length === 0 || !peer.connection.features.mdtm) return false;
  for (const file of files) {
    const at = await peer.connection.client.lastMod(file).catch(() => null);
    if (at === null || !(Date.now() - at.getTime() > seconds * 1000)) return false;
  }
  return true;
}

/** `folder`'s own entry in the listing of the folder above it (`null`: none, or not listed). */
async function listedEntry(peer: FtpPeer, folder: string): Promise<FileInfo | null> {
  const name = folder.replace(/\/+$/, "").split("/").at(-1);
  if (!name) return null;
  const above = await peer.connection.client.list(parentOf(folder.replace(/\/+$/, "")))
    .catch((error) => {
      if (peer.connection.client.closed) throw error;
      return [];
    });
  return above.find((entry) => entry.name === name) ?? null;
}

/** Whether the listing says `entry` was written over `seconds` ago (see the module doc). */
export function idleSince(entry: FileInfo | null, seconds: number, nowMs = Date.now()): boolean {
  const latest = entry === null ? null : listedLatestMs(entry, nowMs);
  return latest !== null && nowMs - latest > seconds * 1000;
}

/**
 * The latest moment the listing's date of `entry` may stand for, in ms since the epoch: its
 * `MLSD` `modify` fact, or a Unix `LIST` date (`Nov 30 01:41`, within the last six months, the
 * year the one that puts it no later than tomorrow; `Oct 26  2025`, older, the end of that day)
 * read as UTC, plus {@linkcode LISTED_LATEST_MS}; `null` for any other form.
 */
export function listedLatestMs(entry: FileInfo, nowMs = Date.now()): number | null {
  if (entry.modifiedAt !== undefined) return entry.modifiedAt.getTime();
  const match = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{1,2}):(\d{2})|(\d{4}))$/
    .exec(entry.rawModifiedAt.trim());
  const month = match ? MONTHS.indexOf(match[1].toLowerCase()) : -1;
  if (match === null || month < 0) return null;
  const day = Number(match[2]);
  if (match[5] !== undefined) {
    return Date.UTC(Number(match[5]), month, day + 1) + LISTED_LATEST_MS - 60_000;
  }
  const year = new Date(nowMs).getUTCFullYear();
  const at = (y: number) => Date.UTC(y, month, day, Number(match[3]), Number(match[4]));
  const listed = at(year) > nowMs + 86_400_000 ? at(year - 1) : at(year);
  return listed + LISTED_LATEST_MS;
}
