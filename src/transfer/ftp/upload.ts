/**
 * Uploading one file over an FTP connection so that a failed upload says
 * why: the server's own reply, not only what the data connection saw.
 *
 * A server that cannot store what it receives (vsftpd on a full disk) closes
 * the data connection and then says why on the control connection (`451
 * Failure writing to local file`, `452`, `552`). The client sees the data
 * connection fail first (`ECONNRESET`, `EPIPE`, a premature close), and
 * `basic-ftp` would close the whole connection at that error, dropping the
 * reply that tells a full disk from a lost connection. Here an error of the
 * data connection fails only the data connection; the control connection's
 * final reply is then waited for (briefly), and the upload fails with that
 * reply where one comes.
 *
 * @module
 */
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import type { Client, FTPContext, FTPResponse } from "basic-ftp";
import { isFtpError } from "./connect.ts";

/** Longest wait for the server's reply after the data connection of an upload failed. */
export const FINAL_REPLY_WAIT_MS = 10_000;

/** How `basic-ftp` marks an error of the data connection (the control connection is fine). */
const DATA_SOCKET_ERROR = /\(data socket\)$/;

/**
 * Upload `source` to `path` (`STOR`), as `client.uploadFrom` does, except
 * when the data connection fails: then the server's final reply on the
 * control connection is waited for, up to `waitMs`, and a refusal (`4xx`,
 * `5xx`) is thrown instead of the data connection's error. Without a reply
 * in time the connection is closed (its state is unknown) and the data
 * connection's error is thrown.
 */
export async function uploadAwaitingReply(
  client: Client,
  source: Readable,
  path: string,
  waitMs: number,
): Promise<void> {
  const ftp = client.ftp;
  // Past `waitMs` after the data connection failed, the connection is closed (state unknown).
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const giveUpIn = (error: unknown) =>
    deadline ??= setTimeout(
      () => closeContext(ftp, error instanceof Error ? error : new Error(String(error))),
      waitMs,
    );
  // The library closes the control connection at any error of the data connection: here it
  // ends the data connection only (the upload fails with it), and the server can still answer.
  let dataFailed = false;
  ftp.closeWithError = (error: Error) => {
    const socket = ftp.dataSocket;
    if (!dataConnectionFailed(error, socket)) return closeContext(ftp, error);
    dataFailed = true;
    giveUpIn(error);
    if (socket !== undefined && !socket.destroyed) socket.destroy(error);
  };
  try {
    await client.uploadFrom(source, path);
  } catch (error) {
    // Only a failed data connection leaves a reply to come (not a refusal, nor a `STOR` unsent).
    const awaited = dataFailed ||
      (error instanceof Error && dataConnectionFailed(error, ftp.dataSocket));
    if (isFtpError(error) || client.closed || !awaited) throw error;
    giveUpIn(error);
    // Waited for at once: a reply that came while nothing listens would be lost.
    const reply = await finalReply(ftp);
    if (isFtpError(reply)) throw reply;
    throw error;
  } finally {
    clearTimeout(deadline);
    delete (ftp as { closeWithError?: unknown }).closeWithError;
    // A data connection left over (the library clears it once an upload has ended) is closed.
    if (ftp.dataSocket !== undefined) ftp.dataSocket = undefined;
  }
}

/**
 * Whether `error`, with which the library would close the connection, is a
 * failure of the data connection `socket`: an error of the socket, or the
 * source of the upload ended early because the socket closed under it.
 */
function dataConnectionFailed(error: Error, socket: Socket | undefined): boolean {
  if (DATA_SOCKET_ERROR.test(error.message)) return true;
  return (error as { code?: unknown }).code === "ERR_STREAM_PREMATURE_CLOSE" &&
    (socket === undefined || socket.destroyed);
}

/** Close `ftp` as the library does (its own method, not the upload's stand-in). */
function closeContext(ftp: FTPContext, error: Error): void {
  Object.getPrototypeOf(ftp).closeWithError.call(ftp, error);
}

/** The next final reply on `ftp`'s control connection, or the error it brings (a refusal, or the close). */
function finalReply(ftp: FTPContext): Promise<FTPResponse | Error> {
  const reply = ftp.handle(undefined, (response, task) => {
    if (response instanceof Error) task.reject(response);
    else if (response.code >= 200) task.resolve(response);
  }) as Promise<FTPResponse>;
  return reply.catch((error: Error) => error);
}
