/**
 * The pieces of the `ftp` transport that work on one connection: folders,
 * renames, the server's checksum, names FTP cannot carry (leftovers swept: `leftovers.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { FileInfo } from "basic-ftp";
import { Writable } from "node:stream";
import { TransferError } from "../../errors.ts";
import { baseGoneReason } from "../base_folder.ts";
import type { JobConfig } from "../../config/types.ts";
import {
  classifyFtpError,
  type FtpConnection,
  type FtpJob,
  ftpServerName,
  isFtpError,
  SESSION_REUSE_FIX,
} from "./connect.ts";
import { readBackRefusal } from "./read_back.ts";
import type { TransferItem } from "../transport.ts";
import { type Delivery, verifyCopy } from "../deliver.ts";
import { deliveredPermissions } from "../source.ts";
import { folderRefused } from "./space_probe.ts";
import { withReplyWait } from "./no_answer.ts";
import type { HashingCounter } from "./upload.ts";

/** A server's words for a download the login may not make. */
const REFUSED = /permission|denied|not allowed|forbidden|refused/i;

/** Connections (their clients) on which `HASH` was set to SHA-256. */
const sha256Chosen = new WeakSet<object>();

/** One logged-in connection and what it already did. */
export interface FtpPeer {
  connection: FtpConnection;
  /** Folders known to exist on the server, with the path its `PWD` shows (`null`: unknown). */
  folders: Map<string, string | null>;
  /** Folders already swept of leftovers. */
  swept: Set<string>;
  /** Whether a data connection (listing or upload) has worked on this connection. */
  dataWorked: boolean;
  /** When it was last given back to the pool (`performance.now()`). */
  idleSince: number;
  /**
   * Taken from the pool without a `NOOP`: the count of replies it had then, until it answers or
   * its batch ends; `null`: known to answer (see `FtpPool.use`).
   */
  untried: number | null;
  /** Folders listed (`LIST -a`) by this batch to look for new files, for the sweep to reuse. */
  listings: Map<string, FileInfo[]>;
  /**
   * The folder this batch's look for new files entered (`CWD`), while no other `CWD` was sent
   * since: {@linkcode recheckFolder} asks `PWD` there without entering it again (`null`: unknown).
   */
  entered: string | null;
}

/**
 * SHA-256 of `path` on the server: by `HASH` or `XSHA256` where it offers
 * one, else by reading the file back over a data connection and hashing what
 * arrives (a second transfer of the file, but a real comparison of the bytes
 * stored). `null` when `counter` does not hash. `size`: the file's, for the time the server may
 * take to hash it (`null`: not known).
 */
export async function remoteSha256(
  connection: FtpConnection,
  path: string,
  counter: HashingCounter,
  size: number | null = counter.bytes,
): Promise<string | null> {
  if (!counter.hashing) return null;
  const { client, features } = connection;
  if (features.hash || features.xsha256) {
    // Chosen once a connection: the server keeps it for the session.
    if (features.hash && !sha256Chosen.has(client)) {
      await client.send("OPTS HASH SHA-256");
      sha256Chosen.add(client);
    }
    // The server reads the whole file first: its reply may take longer than another's.
    const command = features.hash ? `HASH ${path}` : `XSHA256 ${path}`;
    const reply = await withReplyWait(client, { hashing: size }, () => client.send(command));
    return /\b([0-9a-fA-F]{64})\b/.exec(reply.message)?.[1].toLowerCase() ?? null;
  }
  const hash = createHash("sha256");
  const sink = new Writable({
    write(chunk: Uint8Array, _encoding, done) {
      hash.update(chunk);
      done();
    },
  });
  await client.downloadTo(sink, path).catch((error) => {
    // Refused (an upload-only login), not a copy gone meanwhile (`550 Failed to open file`).
    if (!isFtpError(error) || error.code < 500 || !REFUSED.test(error.message)) throw error;
    throw new TransferError(readBackRefusal(error.message), "fatal");
  });
  return hash.digest("hex");
}

/**
 * Create `folder` and its parents below (and including) `base`, once per
 * connection; `base` only when `makeBase` (otherwise files arrived there
 * before, and a base that is gone stays gone: a share that is not mounted).
 * A folder below `base` that was there already is entered and must be where
 * the server says its parent is (`PWD`): one that leads elsewhere is a
 * symbolic link, and nothing is written through it. A folder made in `base` itself (or `base`)
 * that the login may not make there fails the whole destination (see `folderRefused`), in the
 * words of `job`'s server.
 */
export async function ensureFolders(
  peer: FtpPeer,
  base: string,
  folder: string,
  { makeBase, job }: { makeBase: boolean; job: FtpJob },
): Promise<void> {
  if (peer.folders.has(folder)) return;
  peer.entered = null;
  const { client } = peer.connection;
  const parts = folder.slice(base.length).split("/").filter((part) => part !== "");
  let path = base;
  let shown: string | null = null;
  for (let i = 0; i <= parts.length; i++) {
    const parentShown: string | null = shown;
    if (i > 0) path = joinRemote(path, parts[i - 1]);
    if (peer.folders.has(path)) {
      shown = peer.folders.get(path)!;
      continue;
    }
    let made = i > 0 || makeBase
      ? await client.sendIgnoringError(`MKD ${path}`)
      : { code: 550, message: "not made" };
    // Entered just now to see whether it exists: not entered again below.
    let entered = false;
    if (i === 0 && makeBase && made.code >= 400 && !(entered = await canEnter(peer, base))) {
      // Its parents may be missing too: each is made from the top (one there already fails).
      for (const parent of parentsOf(base)) await client.sendIgnoringError(`MKD ${parent}`);
      made = await client.sendIgnoringError(`MKD ${path}`);
    }
    if (made.code < 400 && i > 0) {
      // A new folder is a real one where its parent is, and holds no leftovers: not listed,
      // unless no data connection worked yet (one that fails then may need a setting changed).
      shown = parentShown === null ? null : joinRemote(parentShown, parts[i - 1]);
      if (peer.dataWorked) peer.swept.add(path);
    } else {
      // Exists already (or cannot be made: a folder we can enter is fine); the base is
      // entered whatever MKD said, to learn where the server shows it.
      try {
        if (!entered) await client.send(`CWD ${path}`);
      } catch (error) {
        // The base itself may be gone since this connection entered it.
        const baseGone = !makeBase &&
          (i === 0 || await client.send(`CWD ${base}`).then(() => false, () => true));
        // A connection that broke says nothing of the folders: it is lost, as at any step.
        if (client.closed) throw error;
        if (baseGone) throw new TransferError(baseGoneReason(base), "retry-later");
        const parent = path.replace(/\/+[^/]*\/*$/, "") || "/";
        // A file under the folder's name (the server gives its size): its files' own problem.
        if (await client.size(path).then(() => true, () => false)) {
          const name = path.replace(/\/+$/, "").split("/").pop();
          throw new TransferError(
            `a file named ${name} is in the way at ${path}, where a folder must be: rename or ` +
              "remove it there",
            "retry",
          );
        }
        const inBase = i <= 1
          ? { path: base, server: ftpServerName(job), fromTo: job.fromTo }
          : undefined;
        throw await folderRefused(
          client,
          parent,
          `cannot create folder ${path} (${made.message})`,
          `check that no file has that name and that the login may write in ${parent}`,
          "retry-later",
          inBase,
        );
      }
      shown = quotedPath((await client.send("PWD")).message);
      const expected = parentShown === null ? null : joinRemote(parentShown, parts[i - 1]);
      if (i > 0 && shown !== null && expected !== null && !samePath(shown, expected)) {
        throw new TransferError(
          `the destination folder ${path} is a symbolic link (the server shows it as ${shown}): ` +
            "nothing is written through it; replace it by a real folder",
          "fatal",
        );
      }
    }
    peer.folders.set(path, shown);
  }
}

/**
 * Check again that `folder`, which this connection made or entered before, is still there as it
 * was: since then it may have been moved away, replaced by a file or by a symbolic link (or its
 * base unmounted). Where it cannot be entered, or the server shows it elsewhere now, what the
 * connection knew of it and of the folders above it is forgotten, and {@linkcode ensureFolders}
 * makes or checks them again (nothing is written through a link).
 */
export async function recheckFolder(peer: FtpPeer, base: string, folder: string): Promise<void> {
  if (!peer.folders.has(folder)) return;
  const known = peer.folders.get(folder) ?? null;
  const { client } = peer.connection;
  // Entered a moment ago by the look for new files (see `absent.ts`): not entered again.
  const there = peer.entered === folder;
  peer.entered = null;
  const entered = there ? { code: 250 } : await client.sendIgnoringError(`CWD ${folder}`);
  if (entered.code < 400) {
    const shown = quotedPath((await client.send("PWD")).message);
    if (known === null || shown === null || samePath(shown, known)) return;
  }
  for (const path of [...peer.folders.keys()]) {
    if (path === base || folder === path || folder.startsWith(`${path}/`)) {
      peer.folders.delete(path);
    }
  }
}

/** Whether the connection can enter `folder` (and does). */
function canEnter(peer: FtpPeer, folder: string): Promise<boolean> {
  return peer.connection.client.send(`CWD ${folder}`).then(() => true, () => false);
}

/** The folders above `path`, from the top: `/a/b/c` -> `/a`, `/a/b`; `a/b` -> `a`. */
function parentsOf(path: string): string[] {
  const parts = path.replace(/\/+$/, "").split("/");
  const parents: string[] = [];
  for (let i = 1; i < parts.length - 1; i++) {
    const parent = parts.slice(0, i + 1).join("/");
    if (parts[i] !== "") parents.push(parent);
  }
  if (parts[0] !== "" && parts.length > 1) parents.unshift(parts[0]);
  return parents;
}

/** The path in a `257 "..."` reply (`""` inside stands for one `"`), or `null`. */
function quotedPath(message: string): string | null {
  const match = /"((?:[^"]|"")*)"/.exec(message);
  return match === null ? null : match[1].replaceAll('""', '"');
}

/** Two paths as a server shows them, alike but for case and a trailing slash (Windows servers). */
function samePath(a: string, b: string): boolean {
  const plain = (path: string) => path.replace(/\/+$/, "").toLowerCase();
  return plain(a) === plain(b);
}

/**
 * Rename `from` to `to`. Servers whose RNTO refuses to replace an existing
 * file get it removed first, but only when the copy under `from` is still
 * there and `to` really is a file (never a delivered file for nothing).
 */
export async function renameReplacing(
  connection: FtpConnection,
  from: string,
  to: string,
): Promise<void> {
  const { client } = connection;
  try {
    await client.rename(from, to);
  } catch (error) {
    if (client.closed) throw error;
    const stillThere = await client.size(from).then(() => true, () => false);
    const occupied = await client.size(to).then(() => true, () => false);
    if (!stillThere || !occupied) throw error;
    await client.send(`DELE ${to}`);
    await client.rename(from, to);
  }
}

/** `a/b` with exactly one `/` between. */
export function joinRemote(folder: string, name: string): string {
  return folder.endsWith("/") ? `${folder}${name}` : `${folder}/${name}`;
}

/** `MFMT` time: UTC `YYYYMMDDHHMMSS`. */
export function mfmtTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

/** A name FTP cannot carry (a line break or NUL ends a command), as a fatal error. */
export function badName(item: TransferItem, base: string): TransferError | null {
  if (!/[\r\n\0]/.test(item.destination) && !/[\r\n\0]/.test(base)) return null;
  return new TransferError(
    `Cannot send ${
      JSON.stringify(item.source)
    } by FTP: its name holds a line break, which FTP cannot carry in a file name; rename the file`,
    "fatal",
  );
}

/** One file of an FTP batch on its way. */
export interface FtpDelivery extends Delivery {
  /** Whether a copy may be under the temporary name (removed unless it is renamed). */
  uploaded: boolean;
  /** What was read from the source: byte count and, for checksum, SHA-256. */
  read: HashingCounter | null;
}

/** The connection a batch uses; replaced when it breaks. */
export interface FtpLink {
  peer: FtpPeer | null;
  /** Set once the server did not answer: the batch's other files fail with it, unsent. */
  silence: TransferError | null;
}

/** The folder part of a path on the server. */
export function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** `error` as said of `item`'s source (once: an error that names it already stays as it is). */
export function withSource(item: TransferItem, error: TransferError): TransferError {
  if (error.message.startsWith(`Cannot send ${item.source}`)) return error;
  return new TransferError(`Cannot send ${item.source}: ${error.message}`, error.kind, {
    cause: error,
  });
}

/**
 * Classify an upload error: closed by the server (or a killed session's plain-text last words on
 * TLS, vsftpd's `500 OOPS`), lost; on TLS data that never worked, a hint (not where the control
 * connection itself broke: that is no data connection's setting).
 */
export function uploadError(job: FtpJob, peer: FtpPeer, error: unknown): TransferError {
  const fin = /FIN packet|wrong version number|InvalidContentType/.test(String(error));
  const control = /\(control socket\)/.test(String(error));
  const hint = fin && !control && !peer.dataWorked && job.ftp_tls !== "off";
  const failure = classifyFtpError(error, job, "upload", fin && !hint);
  if (!hint) return failure;
  return new TransferError(
    `${
      failure.message.replace(/\.$/, "")
    }; if every data connection fails like this: ${SESSION_REUSE_FIX}`,
    failure.kind,
    { cause: error },
  );
}

/** Verify the uploaded copy, give it the source's mode and mtime, and rename it into place. */
export async function finishDelivery(
  peer: FtpPeer,
  delivery: FtpDelivery,
  job: JobConfig,
): Promise<void> {
  const { client, features } = peer.connection;
  const { item, tempPath, finalPath } = delivery;
  const counter = delivery.read!;
  const verify = job.verify_transfer;
  const checksum = verify === "checksum" && counter.bytes === item.size;
  const copySha256 = checksum ? await remoteSha256(peer.connection, tempPath, counter) : null;
  // A copy with the source's SHA-256 has its size: `SIZE` is asked where no hash says so.
  const measured = verify !== "none" && counter.bytes === item.size;
  const sameHash = copySha256 !== null && copySha256 === counter.digest();
  const error = verifyCopy(item, verify, {
    bytesRead: counter.bytes,
    size: !measured ? undefined : sameHash ? item.size : await client.size(tempPath),
    sourceSha256: checksum ? counter.digest() : null,
    copySha256,
  });
  if (error) throw error;
  // Where the server allows it (vsftpd does): group and others may not write.
  await client.sendIgnoringError(
    `SITE CHMOD ${deliveredPermissions(delivery.source!).toString(8)} ${tempPath}`,
  );
  // The source's mtime: MFMT, or the two-argument MDTM some servers (vsftpd) take instead.
  const time = mfmtTime(item.mtimeMs);
  if (features.mfmt) await client.sendIgnoringError(`MFMT ${time} ${tempPath}`);
  else if (features.mdtm) await client.sendIgnoringError(`MDTM ${time} ${tempPath}`);
  await renameReplacing(peer.connection, tempPath, finalPath).catch(async (error) => {
    // The connection lost (or given up) before the reply: the server may have renamed the copy.
    if (client.closed) delivery.mayBeInPlace = true;
    // The server's refusal of the rename itself, not of an upload that worked.
    if (!isFtpError(error) || error.code < 500 || client.closed) throw error;
    // A folder under a new file's name is another's, as a file there would be: it goes beside.
    if (item.noReplace && await isFolder(peer.connection, finalPath)) {
      delivery.occupied = "other";
      throw new TransferError(
        `Cannot send ${item.source}: ${finalPath} on FTP server ${
          ftpServerName(job)
        } is a folder, not a copy sent by this job; it is not replaced`,
        "retry",
        { cause: error },
      );
    }
    throw new TransferError(
      `FTP server ${
        ftpServerName(job)
      }: the copy could not be renamed to ${finalPath} (${error.message.trim()}): check that the login may rename files in ${
        parentOf(finalPath)
      } (RNFR, RNTO)`,
      "retry-later",
      { cause: error },
    );
  });
  delivery.uploaded = false;
  if (verify === "checksum") delivery.sha256 = counter.digest();
}

/** Whether `path` is a folder (the server changes into it); the connection is back in its home. */
async function isFolder({ client, home }: FtpConnection, path: string): Promise<boolean> {
  const folder = await client.cd(path).then(() => true, () => false);
  if (folder) await client.cd(home);
  return folder;
}
