/**
 * The FTP connections of one job (see `ftp/ftp.ts`): logged in, kept open and
 * reused from one batch to the next (one per concurrent batch), checked with
 * `NOOP` before reuse, dropped when they fail.
 *
 * @module
 */
import type { JobConfig } from "../../config/types.ts";
import { logger } from "../../log/logging.ts";
import { connectFtp, ftpServerName } from "./connect.ts";
import type { FtpPeer } from "./remote.ts";

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
