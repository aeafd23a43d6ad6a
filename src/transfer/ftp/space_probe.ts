/**
 * Telling a full disk, or a folder the login may not write in, behind a refused `MKD`. FTP servers
 * answer a folder that cannot be made with a bare `550` (vsftpd: `Create directory operation
 * failed.`), whatever the reason; on a full ext4 disk `mkdir` fails (a new folder needs a block)
 * while an empty file can still be created, so a small file written where the folder was to go
 * gets the answer that says full (`451 Failure writing to local file`, `452`, `552`), and in a
 * folder the login may not write in, the answer that refuses it (vsftpd: `553 Could not create
 * file.`).
 *
 * @module
 */
import { Readable } from "node:stream";
import type { Client } from "basic-ftp";
import { TransferError, type TransferErrorKind } from "../../errors.ts";
import { tempNameFor } from "../temp_name.ts";
import { baseRefusedReason } from "../base_folder.ts";
import { isFtpError } from "./connect.ts";
import { FINAL_REPLY_WAIT_MS, uploadAwaitingReply } from "./upload.ts";

/** What the test write holds: a block, so a disk with no block free refuses it. */
const PROBE_BYTES = 4096;

/**
 * What a small file written in `folder` under a temporary name (removed again) says of it: `full`
 * where the server's answer says the disk is full, `refused` where the server refuses the login a
 * file there (`550`, `553`: it may not write in that folder), with the server's words; `null`
 * where the write worked, or failed otherwise.
 */
async function testWrite(
  client: Client,
  folder: string,
): Promise<{ verdict: "full" | "refused"; said: string } | null> {
  const path = `${folder.replace(/\/$/, "")}/${tempNameFor("space-probe")}`;
  try {
    const bytes = Readable.from([new Uint8Array(PROBE_BYTES)]);
    await uploadAwaitingReply(client, bytes, path, FINAL_REPLY_WAIT_MS);
    return null;
  } catch (error) {
    if (!isFtpError(error)) return null;
    const said = error.message.trim();
    const full = error.code === 452 || error.code === 552 ||
      (error.code === 451 && /writ/i.test(error.message));
    if (full) return { verdict: "full", said };
    return error.code === 550 || error.code === 553 ? { verdict: "refused", said } : null;
  } finally {
    if (!client.closed) await client.sendIgnoringError(`DELE ${path}`);
  }
}

/** The destination folder (`remote_base_path`) a refused folder is made in, as the user reads it. */
export interface BaseFolder {
  path: string;
  /** The FTP server and login, as `ftpServerName` says them. */
  server: string;
  /** A run without a config file: the fix names `--to`. */
  fromTo?: boolean;
}

/**
 * The error of a folder `MKD` could not make in `parent` (`what` happened,
 * `advice` says what to check, of `kind`): the destination is full where a
 * test write there says so (`retry-later`: the job pauses as full); where `parent` is the
 * destination folder `base` (or that folder itself could not be made in `parent`) and the server
 * refuses the test write too, the login may not write into it, in the words every method says it
 * (`baseRefusedReason`: the whole destination fails, the job pauses); else `what: advice`.
 */
export async function folderRefused(
  client: Client,
  parent: string,
  what: string,
  advice: string,
  kind: TransferErrorKind,
  base?: BaseFolder,
): Promise<TransferError> {
  const answer = client.closed ? null : await testWrite(client, parent);
  if (answer === null) return new TransferError(`${what}: ${advice}`, kind);
  if (answer.verdict === "refused") {
    if (base === undefined) return new TransferError(`${what}: ${advice}`, kind);
    // Its words go in parentheses: none of their own, which would end them early.
    const said = `the server refused a test write there too: ${answer.said}`.replace(/[()]/g, "");
    return new TransferError(
      baseRefusedReason(`FTP server ${base.server}`, base.path, base.fromTo, said),
      "retry-later",
    );
  }
  return new TransferError(
    `the destination is full: ${what}, and a test write in ${parent} was refused (${answer.said})`,
    "retry-later",
  );
}
