/**
 * Telling a full disk behind a refused `MKD`. FTP servers answer a folder
 * that cannot be made with a bare `550` (vsftpd: `Create directory operation
 * failed.`), whatever the reason; on a full ext4 disk `mkdir` fails (a new
 * folder needs a block) while an empty file can still be created, so a small
 * file written where the folder was to go gets the answer that says full
 * (`451 Failure writing to local file`, `452`, `552`).
 *
 * @module
 */
import { Readable } from "node:stream";
import type { Client } from "basic-ftp";
import { TransferError, type TransferErrorKind } from "../../errors.ts";
import { tempNameFor } from "../temp_name.ts";
import { isFtpError } from "./connect.ts";
import { FINAL_REPLY_WAIT_MS, uploadAwaitingReply } from "./upload.ts";

/** What the test write holds: a block, so a disk with no block free refuses it. */
const PROBE_BYTES = 4096;

/**
 * The server's answer that the disk of `folder` is full, found by writing a
 * small file there under a temporary name (removed again), or `null` when
 * the write says otherwise (it worked, or was refused for another reason).
 */
export async function fullAnswer(client: Client, folder: string): Promise<string | null> {
  const path = `${folder.replace(/\/$/, "")}/${tempNameFor("space-probe")}`;
  try {
    const bytes = Readable.from([new Uint8Array(PROBE_BYTES)]);
    await uploadAwaitingReply(client, bytes, path, FINAL_REPLY_WAIT_MS);
    return null;
  } catch (error) {
    if (!isFtpError(error)) return null;
    const full = error.code === 452 || error.code === 552 ||
      (error.code === 451 && /writ/i.test(error.message));
    return full ? error.message.trim() : null;
  } finally {
    if (!client.closed) await client.sendIgnoringError(`DELE ${path}`);
  }
}

/**
 * The error of a folder `MKD` could not make in `parent` (`what` happened,
 * `advice` says what to check, of `kind`): the destination is full where a
 * test write there says so (`retry-later`: the job pauses as full), else
 * `what: advice`.
 */
export async function folderRefused(
  client: Client,
  parent: string,
  what: string,
  advice: string,
  kind: TransferErrorKind,
): Promise<TransferError> {
  const full = client.closed ? null : await fullAnswer(client, parent);
  if (full === null) return new TransferError(`${what}: ${advice}`, kind);
  return new TransferError(
    `the destination is full: ${what}, and a test write in ${parent} was refused (${full})`,
    "retry-later",
  );
}
