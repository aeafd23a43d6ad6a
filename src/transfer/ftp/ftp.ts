/**
 * The `ftp` transport: FTPS (explicit TLS) or plain FTP, passive mode.
 *
 * Each file is uploaded (from the source opened as `source.ts` does)
 * under a hidden temporary name with a random part (see `temp_name.ts`) in
 * its destination folder, verified (`SIZE`; SHA-256 through `HASH` or
 * `XSHA256` where the server offers one), and renamed into place. FTP has no
 * exclusive create: the 96 random bits of the name are what keep anyone from
 * planting something under it ahead. Connections are kept open and reused
 * from one batch to the next (one per concurrent batch). FTP has no rate
 * limit of its own: a `bandwidth_limit` paces the reading of the source.
 *
 * @module
 */
import { FTPError } from "basic-ftp";
import { createReadStream } from "node:fs";
import { bandwidthLimit } from "../../config/bandwidth.ts";
import type { JobConfig } from "../../config/types.ts";
import { TransferError } from "../../errors.ts";
import { classifyFtpError, connectFtp, ftpServerName, SESSION_REUSE_FIX } from "./connect.ts";
import { probeFtpDestination } from "./probe.ts";
import { deliveredPermissions, inspectSource, openSource } from "../source.ts";
import {
  badName,
  ensureFolders,
  type FtpPeer,
  HashingCounter,
  joinRemote,
  mfmtTime,
  remoteSha256,
  renameReplacing,
} from "./remote.ts";
import { isOwnTempName, jobOwner, tempNameFor } from "../temp_name.ts";
import { pacedStream, Throttle } from "../throttle.ts";
import type { ProbeCheck, TransferItem, TransferOutcome, Transport } from "../transport.ts";
import { logger } from "../../log/logging.ts";

/** Uploads to `remote_base_path` on an FTP server: temp name, verify, rename. */
export class FtpTransport implements Transport {
  readonly method = "ftp" as const;
  readonly maxBatchFiles = 16;
  #job: JobConfig;
  #owner: string;
  /** Connections kept open and reused from one batch to the next. */
  #pool: FtpPool;
  /** Temporary paths being written now (never swept). */
  #inUse = new Set<string>();
  /** Paces all uploads together at `bandwidth_limit` (none without one). */
  readonly throttle: Throttle | null;

  constructor(job: JobConfig) {
    this.#job = job;
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#owner = jobOwner(job);
    this.#pool = new FtpPool(job);
  }

  describeTarget(destination: string): string {
    return `ftp${this.#job.ftp_tls === "off" ? "" : "s"}://${ftpServerName(this.#job)}${
      joinRemote(this.#job.remote_base_path, destination)
    }`;
  }

  probe(): Promise<ProbeCheck[]> {
    return probeFtpDestination(this.#job);
  }

  async warmUp(): Promise<void> {
    try {
      await this.#pool.warmUp();
    } catch {
      // Reported at the first send.
    }
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const outcomes: TransferOutcome[] = [];
    let peer: FtpPeer | null = null;
    const onAbort = () => peer?.connection.client.close();
    signal.addEventListener("abort", onAbort);
    try {
      for (const item of items) {
        signal.throwIfAborted();
        const bad = badName(item, this.#job.remote_base_path);
        if (bad !== null) {
          outcomes.push({ item, error: bad });
          continue;
        }
        try {
          peer ??= await this.#pool.acquire();
        } catch (error) {
          signal.throwIfAborted();
          // No connection: every remaining item fails the same way.
          const failure = classifyFtpError(error, this.#job, "connect");
          for (const rest of items.slice(outcomes.length)) {
            outcomes.push({ item: rest, error: withSource(rest, failure) });
          }
          break;
        }
        // An abort while connecting: the connection is dropped below.
        signal.throwIfAborted();
        try {
          const sha256 = await this.#upload(peer, item, signal);
          outcomes.push(sha256 === null ? { item, error: null } : { item, error: null, sha256 });
        } catch (error) {
          if (signal.aborted) throw signal.reason;
          outcomes.push({ item, error: withSource(item, this.#uploadError(peer, error)) });
          if (peer.connection.client.closed) {
            this.#pool.drop(peer);
            peer = null;
          }
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      if (peer !== null) {
        if (signal.aborted || peer.connection.client.closed) this.#pool.drop(peer);
        else this.#pool.release(peer);
      }
    }
    return outcomes;
  }

  /** Sizes of delivered files by `SIZE` (`null`: no file there), for the catch-up. */
  destinationSizes(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, number | null>> {
    return this.#askEach(destinations, signal, (peer, path) => peer.connection.client.size(path));
  }

  /**
   * SHA-256 of delivered files by `HASH` or `XSHA256` (`null` for all when
   * the server offers neither: the rebuilt ledger then trusts the size, as
   * arrivals are verified).
   */
  destinationSha256(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, string | null>> {
    return this.#askEach(
      destinations,
      signal,
      (peer, path) => remoteSha256(peer.connection, path, new HashingCounter(true)),
    );
  }

  /**
   * Ask the server about each delivered file over one connection; a file
   * that is not there (550), or whose name was never delivered, is `null`.
   */
  async #askEach<T>(
    destinations: string[],
    signal: AbortSignal,
    ask: (peer: FtpPeer, path: string) => Promise<T | null>,
  ): Promise<Map<string, T | null>> {
    const answers = new Map<string, T | null>();
    const peer = await this.#pool.acquire();
    let healthy = false;
    try {
      const base = this.#base(peer);
      for (const destination of destinations) {
        signal.throwIfAborted();
        if (/[\r\n\0]/.test(destination)) {
          answers.set(destination, null); // Never delivered (see badName).
          continue;
        }
        try {
          answers.set(destination, await ask(peer, joinRemote(base, destination)));
        } catch (error) {
          // 550: no such file (or not a plain file); anything else is a real failure.
          if (!(error instanceof FTPError) || error.code !== 550) throw error;
          answers.set(destination, null);
        }
      }
      healthy = true;
    } finally {
      if (healthy) this.#pool.release(peer);
      else this.#pool.drop(peer);
    }
    return answers;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  /** `remote_base_path` as an absolute path on the server (a relative one is under the login's home). */
  #base(peer: FtpPeer): string {
    return this.#job.remote_base_path.startsWith("/")
      ? this.#job.remote_base_path
      : joinRemote(peer.connection.home, this.#job.remote_base_path);
  }

  /** Upload, verify and rename one file; its SHA-256 when it was hashed on the way (checksum). */
  async #upload(peer: FtpPeer, item: TransferItem, signal: AbortSignal): Promise<string | null> {
    const { client, features } = peer.connection;
    const base = this.#base(peer);
    const finalPath = joinRemote(base, item.destination);
    const folder = finalPath.slice(0, finalPath.lastIndexOf("/")) || "/";
    await ensureFolders(peer, base, folder);
    await this.#sweep(peer, folder);
    const tempPath = joinRemote(
      folder,
      tempNameFor(finalPath.slice(finalPath.lastIndexOf("/") + 1), this.#owner),
    );
    const source = openSource(item);
    this.#inUse.add(tempPath);
    let uploaded = false;
    const counter = new HashingCounter(this.#job.verify_transfer === "checksum");
    // The stream owns the descriptor from here on and closes it exactly once.
    const stream = createReadStream("", { fd: source.fd, autoClose: true, start: 0 });
    stream.on("error", (error) => counter.destroy(error));
    // With a bandwidth limit, the job's throttle paces what is read (FTP has no limit of its own).
    const paced = this.throttle === null ? null : pacedStream(this.throttle, signal);
    paced?.on("error", (error) => counter.destroy(error));
    try {
      uploaded = true;
      await client.uploadFrom(
        paced === null ? stream.pipe(counter) : stream.pipe(paced).pipe(counter),
        tempPath,
      );
      peer.dataWorked = true;
      if (counter.bytes !== item.size) {
        throw new TransferError(
          `read ${counter.bytes} bytes, expected ${item.size} (source changed)`,
          "retry",
        );
      }
      if (this.#job.verify_transfer !== "none") {
        const size = await client.size(tempPath);
        if (size !== item.size) {
          throw new TransferError(
            `verification failed: the server has ${size} bytes, expected ${item.size}`,
            "retry",
          );
        }
        const remote = await remoteSha256(peer.connection, tempPath, counter);
        if (remote !== null && remote !== counter.digest()) {
          throw new TransferError("verification failed: SHA-256 differs on the server", "retry");
        }
      }
      // Where the server allows it (vsftpd does): group and others may not write.
      await client.sendIgnoringError(
        `SITE CHMOD ${deliveredPermissions(source.info).toString(8)} ${tempPath}`,
      );
      // The source's mtime: MFMT, or the two-argument MDTM some servers (vsftpd) take instead.
      const time = mfmtTime(item.mtimeMs);
      if (features.mfmt) await client.sendIgnoringError(`MFMT ${time} ${tempPath}`);
      else if (features.mdtm) await client.sendIgnoringError(`MDTM ${time} ${tempPath}`);
      // The source must still be the file that was judged complete.
      inspectSource(item);
      await renameReplacing(peer.connection, tempPath, finalPath);
      return this.#job.verify_transfer === "checksum" ? counter.digest() : null;
    } catch (error) {
      if (uploaded && !client.closed) await client.sendIgnoringError(`DELE ${tempPath}`);
      throw error;
    } finally {
      this.#inUse.delete(tempPath);
      // Closes the descriptor once no read of the stream can still use it.
      if (!stream.closed) {
        const closed = new Promise<void>((resolve) => stream.once("close", () => resolve()));
        stream.destroy();
        await closed;
      }
      paced?.destroy();
      counter.destroy();
    }
  }

  /** Classify an upload error; a data connection that never worked over TLS gets a hint. */
  #uploadError(peer: FtpPeer, error: unknown): TransferError {
    const failure = classifyFtpError(error, this.#job, "upload");
    if (peer.dataWorked || this.#job.ftp_tls === "off" || !/FIN packet/.test(String(error))) {
      return failure;
    }
    return new TransferError(
      `${
        failure.message.replace(/\.$/, "")
      }; if every data connection fails like this: ${SESSION_REUSE_FIX}`,
      failure.kind,
      { cause: error },
    );
  }

  /** Remove this daemon's leftover temporary files from `folder`, once per folder and connection. */
  async #sweep(peer: FtpPeer, folder: string): Promise<void> {
    if (peer.swept.has(folder)) return;
    peer.swept.add(folder);
    const { client } = peer.connection;
    try {
      await client.cd(folder);
      const entries = await client.list();
      peer.dataWorked = true;
      for (const entry of entries) {
        const path = joinRemote(folder, entry.name);
        if (isOwnTempName(entry.name, this.#owner) && !this.#inUse.has(path)) {
          await client.sendIgnoringError(`DELE ${path}`);
        }
      }
    } catch (error) {
      if (client.closed) throw error;
      // A listing is a courtesy: the upload still goes ahead.
    }
  }
}

function withSource(item: TransferItem, error: TransferError): TransferError {
  return new TransferError(`Cannot send ${item.source}: ${error.message}`, error.kind, {
    cause: error,
  });
}

const log = logger("transfer");

/** Open FTP connections of one job; see the module doc. */
export class FtpPool {
  #job: JobConfig;
  /** Logged-in connections not in use by a batch. */
  #idle: FtpPeer[] = [];
  /** Every open connection. */
  #open = new Set<FtpPeer>();
  #saidSizeOnly = false;
  #closed = false;

  constructor(job: JobConfig) {
    this.#job = job;
  }

  /** Open one connection ahead when none is idle; throws when it cannot be opened. */
  async warmUp(): Promise<void> {
    if (this.#idle.length === 0) this.release(await this.#connect());
  }

  /** Close every connection; those in use are closed when they are given back. */
  close(): Promise<void> {
    this.#closed = true;
    for (const peer of this.#open) peer.connection.client.close();
    this.#open.clear();
    this.#idle = [];
    return Promise.resolve();
  }

  async #connect(): Promise<FtpPeer> {
    const connection = await connectFtp(this.#job);
    const peer = {
      connection,
      folders: new Set<string>(),
      swept: new Set<string>(),
      dataWorked: false,
    };
    this.#open.add(peer);
    if (this.#job.verify_transfer === "checksum" && !this.#saidSizeOnly) {
      const { hash, xsha256 } = connection.features;
      if (!hash && !xsha256) {
        this.#saidSizeOnly = true;
        log.warn(
          "FTP server {server} offers no checksum command (HASH or XSHA256): arrivals are verified by size only",
          { server: ftpServerName(this.#job) },
        );
      }
    }
    return peer;
  }

  /** An idle connection that still answers, or a new one. */
  async acquire(): Promise<FtpPeer> {
    while (this.#idle.length > 0) {
      const peer = this.#idle.pop()!;
      try {
        await peer.connection.client.send("NOOP");
        return peer;
      } catch {
        this.drop(peer);
      }
    }
    return await this.#connect();
  }

  /** Give a connection back for reuse (closed instead after {@linkcode close}). */
  release(peer: FtpPeer): void {
    if (this.#closed) peer.connection.client.close();
    else this.#idle.push(peer);
  }

  /** Close a connection that failed or was aborted. */
  drop(peer: FtpPeer): void {
    peer.connection.client.close();
    this.#open.delete(peer);
  }
}
