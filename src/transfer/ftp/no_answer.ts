/**
 * How long an FTP connection waits for its server, and what it says when the
 * server stops answering.
 *
 * A command on the control connection (login, `CWD`, `MKD`, `SIZE`,
 * `RNFR`/`RNTO`, `DELE`, `FEAT`, ...) is answered in moments by any server
 * that works: one with no reply within {@linkcode REPLY_WAIT_MS} (or
 * `transfer_timeout_seconds` where that is shorter) is given up; so is a TLS
 * handshake. `HASH` and `XSHA256`, for which the server reads the whole file,
 * get that plus a second per {@linkcode HASH_BYTES_PER_S} bytes (of a size
 * not known, the transfer timeout). Only a data transfer (from the server's
 * `150` to `STOR`, `RETR` or `LIST` until the reply that ends it) waits
 * `transfer_timeout_seconds` for progress. Either way the connection is closed
 * with a {@linkcode NoAnswer} that names the server and what it was not
 * answering, and the batch ends with it (the whole destination fails, as one
 * that cannot be reached). An upload the server has taken nothing of for the
 * reply wait is said at once ({@linkcode sayStalledUpload}), while it is
 * still waited for; the job is told of it while no other upload moves
 * ({@linkcode UploadStalls}).
 *
 * @module
 */
import type { Client, FTPContext, FTPResponse } from "basic-ftp";
import type { JobConfig } from "../../config/types.ts";
import { TransferError } from "../../errors.ts";
import { logger } from "../../log/logging.ts";

const log = logger("transfer");

/** Longest wait for the reply to a command on the control connection. */
export const REPLY_WAIT_MS = 60_000;

/** Longest wait for a connection kept idle to answer `NOOP` before a new one is opened. */
export const IDLE_CHECK_MS = 10_000;

/**
 * How long a connection may stay idle and be reused without a `NOOP` first: one idle longer may
 * have been forgotten by a firewall on the way (it would answer nothing). A server that closed it
 * meanwhile (its idle timeout, a restart) is seen without asking.
 */
export const NOOP_AFTER_IDLE_MS = 15_000;

/** Bytes a server is expected to hash per second at least (`HASH`, `XSHA256`). */
export const HASH_BYTES_PER_S = 10 * 1024 * 1024;

/** How long an FTP connection waits: for a reply, and for a data transfer to make progress. */
export interface FtpWaits {
  replyMs: number;
  transferMs: number;
}

/** A job's waits: `replyMs` (default {@linkcode REPLY_WAIT_MS}), never beyond its transfer timeout. */
export function ftpWaits(job: JobConfig, replyMs = REPLY_WAIT_MS): FtpWaits {
  const transferMs = job.transfer_timeout_seconds * 1000;
  return { replyMs: Math.min(replyMs, transferMs), transferMs };
}

/** The server stopped answering (a reply or a data transfer): the connection was closed. */
export class NoAnswer extends TransferError {
  override name = "NoAnswer";

  constructor(server: string, what: string, cause?: unknown) {
    super(
      `FTP server ${server} does not answer: ${what}; the connection was dropped, the batch is ` +
        "tried again",
      "retry",
      { cause },
    );
  }
}

/** What the library's own timeouts say (`Timeout (control socket)`, `Timeout (data socket)`). */
const LIBRARY_TIMEOUT = /^Timeout \((control|data) socket\)/;

/** What is known of one connection's waits. */
interface Watch {
  waits: FtpWaits;
  server: string;
  /** The last command sent (`PASS` without the password). */
  command: string;
  /** The wait for the next reply, where a command needs another than `waits.replyMs`. */
  replyMs: number | null;
  /** Whether the server began the data transfer of the last command (`150`, `125`). */
  transferring: boolean;
  /** The wait the library last took (the one a timeout it reports has run). */
  armedMs: number;
  /** Why the connection was closed, once the server did not answer. */
  silence: NoAnswer | null;
  /** Replies received so far. */
  replies: number;
}

const watches = new WeakMap<FTPContext, Watch>();

/**
 * Hold `client` (just made, not connected) to `waits`: replies within
 * `waits.replyMs`, data transfers to progress within `waits.transferMs`.
 * `server` names it in messages.
 */
export function boundWaits(client: Client, server: string, waits: FtpWaits): void {
  const ftp = client.ftp;
  const watch: Watch = {
    waits,
    server,
    command: "",
    replyMs: null,
    transferring: false,
    armedMs: waits.replyMs,
    silence: null,
    replies: 0,
  };
  watches.set(ftp, watch);
  const proto = Object.getPrototypeOf(ftp) as FTPContext;
  // The library reads one timeout for everything: a reply's, and a transfer's once the server
  // began it (its watchdog of progress, and the reply that ends the transfer).
  Object.defineProperty(ftp, "timeout", {
    get: () =>
      watch.armedMs = watch.transferring ? waits.transferMs : watch.replyMs ?? waits.replyMs,
    set: () => {},
    configurable: true,
  });
  // A new task (its wait is armed before its command goes) waits for a reply again.
  ftp.handle = (command, responseHandler) => {
    watch.transferring = false;
    return proto.handle.call(ftp, command, responseHandler);
  };
  ftp.send = (command: string) => {
    watch.command = command.startsWith("PASS ") ? "PASS" : command;
    proto.send.call(ftp, command);
  };
  const handler = ftp as unknown as { _passToHandler(response: Error | FTPResponse): void };
  const passOn = handler._passToHandler;
  handler._passToHandler = (response) => {
    // A reply, or a server's error reply (a socket's error has no number for a code).
    if (typeof (response as { code?: unknown }).code === "number") watch.replies++;
    if (!(response instanceof Error) && (response.code === 150 || response.code === 125)) {
      watch.transferring = true;
    }
    passOn.call(ftp, response);
  };
  ftp.closeWithError = (error: Error) => {
    const match = LIBRARY_TIMEOUT.exec(error.message);
    if (match !== null && watch.silence === null && !ftp.closed) {
      const what = match[1] === "data"
        ? `${watch.command} made no progress for ${seconds(waits.transferMs)} ` +
          "(transfer_timeout_seconds)"
        : `no reply to ${watch.command || "the connection"} within ${seconds(watch.armedMs)}`;
      watch.silence = new NoAnswer(server, what, error);
      error = watch.silence;
    }
    proto.closeWithError.call(ftp, error);
  };
}

/** Why `client` was closed, when its server stopped answering; else `null`. */
export function silenceOf(client: Client | undefined): NoAnswer | null {
  return client === undefined ? null : watches.get(client.ftp)?.silence ?? null;
}

/** How many replies `client` received so far (a count that does not move: none since). */
export function repliesOf(client: Client): number {
  return watches.get(client.ftp)?.replies ?? 0;
}

/**
 * Run `run` (one command on `client`) waiting `replyMs` for its reply instead of the usual (never
 * longer), or with `{ hashing: bytes }` the usual plus the time to hash that many bytes (`HASH`,
 * `XSHA256`; `null`: a size not known, the transfer timeout).
 */
export async function withReplyWait<T>(
  client: Client,
  replyMs: number | { hashing: number | null },
  run: () => Promise<T>,
): Promise<T> {
  const watch = watches.get(client.ftp);
  if (watch === undefined) return await run();
  const { waits } = watch;
  watch.replyMs = typeof replyMs === "number"
    ? Math.min(replyMs, waits.replyMs)
    : replyMs.hashing === null
    ? Math.max(waits.replyMs, waits.transferMs)
    : waits.replyMs + Math.ceil(replyMs.hashing / HASH_BYTES_PER_S) * 1000;
  try {
    return await run();
  } finally {
    watch.replyMs = null;
  }
}

/**
 * `promise` (a TLS handshake on `client`), given up after the reply wait: `client` is then
 * closed with a {@linkcode NoAnswer}.
 */
export async function boundHandshake<T>(client: Client, promise: Promise<T>): Promise<T> {
  const watch = watches.get(client.ftp);
  if (watch === undefined) return await promise;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const given = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      watch.silence = new NoAnswer(
        watch.server,
        `no TLS handshake within ${seconds(watch.waits.replyMs)} after AUTH TLS`,
      );
      reject(watch.silence);
      client.close();
    }, watch.waits.replyMs);
  });
  try {
    return await Promise.race([promise, given]);
  } finally {
    clearTimeout(timer);
  }
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * While `client` uploads `path`, say once (WARNING) when the server has taken none of its data for
 * the reply wait, and how long it is still waited for; time the source keeps it waiting does not
 * count. `onStall` is told the words of the stall as it begins and `null` as it ends (the server
 * takes data again, or the upload ended). Returns the function that stops watching.
 */
export function sayStalledUpload(
  client: Client,
  path: string,
  onStall: (words: string | null) => void = () => {},
): () => void {
  const watch = watches.get(client.ftp);
  if (watch === undefined) return () => {};
  const { replyMs, transferMs } = watch.waits;
  if (replyMs >= transferMs) return () => {};
  const tickMs = Math.max(1, Math.min(Math.floor(replyMs / 4), 500));
  let written = -1;
  let idleMs = 0;
  let stalled = false;
  let said = false;
  const timer = setInterval(() => {
    const socket = client.ftp.dataSocket;
    const now = socket?.bytesWritten ?? -1;
    // Data queued that the server does not take: it is the one holding the upload up.
    idleMs = socket !== undefined && now === written && socket.writableLength > 0
      ? idleMs + tickMs
      : 0;
    written = now;
    if (idleMs === 0 && stalled) onStall(null);
    stalled &&= idleMs > 0;
    if (idleMs < replyMs || stalled) return;
    stalled = true;
    const fields = {
      server: watch.server,
      path,
      seconds: replyMs / 1000,
      timeout: transferMs / 1000,
    };
    onStall(
      `FTP server ${fields.server} takes no data of ${path} (none for ${fields.seconds} s): the ` +
        `upload waits for it up to ${fields.timeout} s (transfer_timeout_seconds), then the batch ` +
        "is tried again",
    );
    if (said) return;
    said = true;
    log.warn(
      "FTP server {server} has taken no data of {path} for {seconds} s: the upload waits for it " +
        "up to {timeout} s (transfer_timeout_seconds), then the batch is tried again",
      fields,
    );
  }, tickMs);
  return () => {
    clearInterval(timer);
    if (stalled) onStall(null);
  };
}

/**
 * The stalls of one transport's uploads (see {@linkcode sayStalledUpload}), and what its job is
 * told of them: the words of a stalled upload while no batch's uploads move, `null` while one
 * does (the server takes its data: files still arrive) or none is stalled. A batch counts from
 * its first upload to its end, moving unless the upload it is at is stalled, so that one moving
 * from file to file (a copy checked, renamed) moves throughout.
 */
export class UploadStalls {
  /** The batches uploading, each with the words of its upload's stall, or `null`: it moves. */
  #batches = new Map<object, string | null>();
  #told: string | null = null;
  #onChange: (why: string | null) => void = () => {};

  /** Tell `onChange` why the job waits on a stalled upload, and `null` once it does not. */
  watch(onChange: (why: string | null) => void): void {
    this.#onChange = onChange;
  }

  /** `batch` begins an upload: returns what its stall is told to (`onStall` of `sayStalledUpload`). */
  uploading(batch: object): (words: string | null) => void {
    if (!this.#batches.has(batch)) this.#set(batch, null);
    return (words) => this.#set(batch, words);
  }

  /** `batch` ended: its uploads count no more. */
  ended(batch: object): void {
    if (this.#batches.delete(batch)) this.#tell();
  }

  #set(batch: object, words: string | null): void {
    this.#batches.set(batch, words);
    this.#tell();
  }

  #tell(): void {
    const words = [...this.#batches.values()];
    const why = words.includes(null) ? null : words[0] ?? null;
    if (why === this.#told) return;
    this.#told = why;
    this.#onChange(why);
  }
}
