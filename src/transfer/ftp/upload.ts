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
 * reply where one comes (not after a data connection that made no progress:
 * the server is not answering, see `no_answer.ts`).
 *
 * Also the upload of one file of a batch, and the counter that hashes what is
 * uploaded.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import type { Socket } from "node:net";
import { type Readable, Transform } from "node:stream";
import { createHash } from "node:crypto";
import type { Client, FTPContext, FTPResponse } from "basic-ftp";
import type { JobConfig } from "../../config/types.ts";
import { openSource } from "../source.ts";
import { pacedStream, type Throttle } from "../throttle.ts";
import { isFtpError } from "./connect.ts";
import type { FtpDelivery } from "./remote.ts";
import { sayStalledUpload } from "./no_answer.ts";

/** Longest wait for the server's reply after the data connection of an upload failed. */
export const FINAL_REPLY_WAIT_MS = 10_000;

/** How `basic-ftp` marks an error of the data connection (the control connection is fine). */
const DATA_SOCKET_ERROR = /\(data socket\)$/;

/** What `basic-ftp` says of a data connection that made no progress for its timeout. */
const DATA_TIMEOUT = /^Timeout \(data socket\)/;

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
  // How the connection is closed otherwise (`no_answer.ts` words a server that stopped answering).
  const closeAsBefore = ftp.closeWithError;
  const closeContext = (error: Error) => closeAsBefore.call(ftp, error);
  // Past `waitMs` after the data connection failed, the connection is closed (state unknown).
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const giveUpIn = (error: unknown) =>
    deadline ??= setTimeout(
      () => closeContext(error instanceof Error ? error : new Error(String(error))),
      waitMs,
    );
  // The library closes the control connection at any error of the data connection: here it
  // ends the data connection only (the upload fails with it), and the server can still answer
  // (not one whose data connection made no progress: it is not answering).
  let dataFailed = false;
  ftp.closeWithError = (error: Error) => {
    const socket = ftp.dataSocket;
    if (!dataConnectionFailed(error, socket) || DATA_TIMEOUT.test(error.message)) {
      return closeContext(error);
    }
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
    ftp.closeWithError = closeAsBefore;
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

/** The next final reply on `ftp`'s control connection, or the error it brings (a refusal, or the close). */
function finalReply(ftp: FTPContext): Promise<FTPResponse | Error> {
  const reply = ftp.handle(undefined, (response, task) => {
    if (response instanceof Error) task.reject(response);
    else if (response.code >= 200) task.resolve(response);
  }) as Promise<FTPResponse>;
  return reply.catch((error: Error) => error);
}

/**
 * Upload `delivery`'s source under its temporary name, counting (and, for `verify_transfer:
 * checksum`, hashing) what is read into `delivery.read`, paced by `throttle` where the job has a
 * `bandwidth_limit` (FTP has no limit of its own). `onStall`: see `sayStalledUpload`.
 */
export async function uploadDelivery(
  client: Client,
  delivery: FtpDelivery,
  job: JobConfig,
  throttle: Throttle | null,
  signal: AbortSignal,
  onStall?: (words: string | null) => void,
): Promise<void> {
  const source = openSource(delivery.item);
  const counter = new HashingCounter(job.verify_transfer === "checksum");
  delivery.read = counter;
  // The stream owns the descriptor from here on and closes it exactly once.
  const stream = createReadStream("", { fd: source.fd, autoClose: true, start: 0 });
  stream.on("error", (error) => counter.destroy(error));
  const paced = throttle === null ? null : pacedStream(throttle, signal);
  paced?.on("error", (error) => counter.destroy(error));
  const stopWatching = sayStalledUpload(client, delivery.tempPath, onStall);
  try {
    delivery.uploaded = true;
    // A failed data connection waits for the server's reply: a full disk is told as one.
    await uploadAwaitingReply(
      client,
      paced === null ? stream.pipe(counter) : stream.pipe(paced).pipe(counter),
      delivery.tempPath,
      Math.min(FINAL_REPLY_WAIT_MS, job.transfer_timeout_seconds * 1000),
    );
  } finally {
    stopWatching();
    // Closes the descriptor once no read of the stream can still use it.
    if (!stream.closed) {
      const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
      stream.destroy();
      await closed;
    }
    paced?.destroy();
  }
}

/** Counts the bytes that pass and, when asked, hashes them. */
export class HashingCounter extends Transform {
  bytes = 0;
  #hash: ReturnType<typeof createHash> | null;
  #digest: string | null = null;

  constructor(hashIt: boolean) {
    super();
    this.#hash = hashIt ? createHash("sha256") : null;
  }

  override _transform(chunk: Uint8Array, _encoding: string, done: (e?: Error) => void): void {
    this.bytes += chunk.length;
    this.#hash?.update(chunk);
    this.push(chunk);
    done();
  }

  get hashing(): boolean {
    return this.#hash !== null;
  }

  /** Hex SHA-256 of everything that passed. */
  digest(): string {
    this.#digest ??= this.#hash?.digest("hex") ?? "";
    return this.#digest;
  }
}
