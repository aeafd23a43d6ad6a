/**
 * The open FTP connections of a job, kept and reused from one batch to the
 * next, and the logins this daemon holds on each FTP server.
 *
 * Servers often allow only a few logins from one client at a time (vsftpd's
 * `max_per_ip`) and refuse one more with `421` at connect. A `421` while
 * this daemon already holds a login on that server (for any job) is no
 * failure: the server's limit is then the logins held, said once, and
 * transfers wait for a connection in use (an idle one of another job there is
 * closed to make room). A `421` with no login held (the server takes no one
 * from here now) fails as the destination that cannot be reached.
 *
 * @module
 */
import { TransferError } from "../../errors.ts";
import { logger } from "../../log/logging.ts";
import { connectFtp, FTP_DEFAULT_PORT, type FtpJob, ftpServerName, isFtpError } from "./connect.ts";
import type { FtpLink, FtpPeer } from "./remote.ts";
import {
  type FtpWaits,
  ftpWaits,
  IDLE_CHECK_MS,
  NOOP_AFTER_IDLE_MS,
  repliesOf,
  silenceOf,
  withReplyWait,
} from "./no_answer.ts";

const log = logger("transfer");

/** The logins this daemon holds on one FTP server (host and port), for every job there. */
class ServerLogins {
  /** Logins open or being opened. */
  open = 0;
  /** How many the server allows at once from here, once it refused one more; `null`: not known. */
  limit: number | null = null;
  /** Whether the limit was said (once per server while the daemon runs). */
  said = false;
  /** When a login here was last closed (the server may count it a moment longer). */
  closedAt = -Infinity;
  /** The pools of the jobs sending there. */
  readonly pools = new Set<FtpPool>();
  #waiting = new Set<() => void>();

  /** Whether one more login may be opened now. */
  get mayOpen(): boolean {
    return this.limit === null || this.open < this.limit;
  }

  /** Wake whoever waits for a login: one was given back or closed. */
  changed(): void {
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }

  /** Resolves at the next change; rejects when `signal` aborts. */
  turn(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        signal?.removeEventListener("abort", aborted);
        this.#waiting.delete(done);
        resolve();
      };
      const aborted = () => {
        this.#waiting.delete(done);
        reject(signal!.reason);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", aborted, { once: true });
      this.#waiting.add(done);
    });
  }
}

/** How long a server may still count a login this daemon closed (its session ending). */
const LOGIN_LINGER_MS = 2_000;

/** Every FTP server this daemon sends to, by `host:port`. */
const servers = new Map<string, ServerLogins>();

/** Whether `error` is a server's `421` at connect (it takes no more connections from here now). */
export function isTooManyLogins(error: unknown): boolean {
  const cause = error instanceof TransferError ? error.cause : error;
  return isFtpError(cause) && cause.code === 421;
}

/** Open FTP connections of one job; see the module doc. */
export class FtpPool {
  #job: FtpJob;
  #waits: FtpWaits;
  #logins: ServerLogins;
  /** Logged-in connections not in use by a batch. */
  #idle: FtpPeer[] = [];
  /** Every open connection. */
  #open = new Set<FtpPeer>();
  #saidReadBack = false;
  #closed = false;
  #noopAfterIdleMs: number;

  /**
   * `replyWaitMs`: how long a command waits for its reply (see `no_answer.ts`);
   * `noopAfterIdleMs`: how long a connection may be idle and be reused without a `NOOP`.
   */
  constructor(job: FtpJob, replyWaitMs?: number, noopAfterIdleMs = NOOP_AFTER_IDLE_MS) {
    this.#job = job;
    this.#waits = ftpWaits(job, replyWaitMs);
    this.#noopAfterIdleMs = noopAfterIdleMs;
    const key = `${job.remote_host}:${job.ftp_port ?? FTP_DEFAULT_PORT}`;
    let logins = servers.get(key);
    if (logins === undefined) servers.set(key, logins = new ServerLogins());
    this.#logins = logins;
    logins.pools.add(this);
  }

  /** How many connections the server allows at once from here, once it refused one; else `null`. */
  get loginLimit(): number | null {
    return this.#logins.limit;
  }

  /** Open one connection ahead when none is idle and the server takes one; throws when it cannot. */
  async warmUp(): Promise<void> {
    if (this.#idle.length > 0 || !this.#logins.mayOpen) return;
    const peer = await this.#login();
    if (peer !== null) this.release(peer);
  }

  /** Close every connection; those in use are closed when they are given back. */
  close(): Promise<void> {
    this.#closed = true;
    for (const peer of [...this.#open]) this.drop(peer);
    this.#idle = [];
    this.#logins.pools.delete(this);
    return Promise.resolve();
  }

  /**
   * An idle connection, or a new one; while the server allows no more logins from here, waits for
   * one in use (or until `signal` aborts). One the server closed meanwhile is left; one idle long
   * enough to have been forgotten on the way must answer `NOOP` first; one idle a short while is
   * taken untried (see {@linkcode use}).
   *
   * @throws {TransferError} when no connection can be opened
   */
  async acquire(signal?: AbortSignal): Promise<FtpPeer> {
    for (;;) {
      signal?.throwIfAborted();
      while (this.#idle.length > 0) {
        const peer = this.#idle.pop()!;
        const { client } = peer.connection;
        if (client.closed) {
          this.drop(peer);
          continue;
        }
        if (performance.now() - peer.idleSince < this.#noopAfterIdleMs) {
          peer.untried = repliesOf(client);
          return peer;
        }
        try {
          // One a firewall forgot answers nothing: a new login is made instead, soon.
          await withReplyWait(client, IDLE_CHECK_MS, () => client.send("NOOP"));
          return peer;
        } catch {
          this.drop(peer);
        }
      }
      if (this.#logins.mayOpen) {
        const peer = await this.#login();
        if (peer !== null) return peer;
      } else if (!this.#closeIdleElsewhere()) {
        await this.#logins.turn(signal);
      }
    }
  }

  /**
   * Run `run` over `link`'s connection (taken from the pool where it has none). A connection
   * taken untried that turns out closed before it answered anything was dead before `run` used
   * it: nothing was done over it, so it is dropped and `run` goes again over another, as if it
   * had been found so by a `NOOP`.
   */
  async use<T>(link: FtpLink, signal: AbortSignal, run: (peer: FtpPeer) => Promise<T>): Promise<T> {
    for (;;) {
      const peer = link.peer ??= await this.acquire(signal);
      try {
        const result = await run(peer);
        peer.untried = null;
        return result;
      } catch (error) {
        const { client } = peer.connection;
        const dead = peer.untried !== null && peer.untried === repliesOf(client) &&
          client.closed && silenceOf(client) === null;
        peer.untried = null;
        if (!dead || signal.aborted) throw error;
        this.drop(peer);
        link.peer = null;
      }
    }
  }

  /** Give a connection back for reuse (closed instead after {@linkcode close}). */
  release(peer: FtpPeer): void {
    if (this.#closed) {
      this.drop(peer);
      return;
    }
    peer.untried = null;
    peer.idleSince = performance.now();
    // What a listing showed this batch is not kept for the next (see `absent.ts`).
    peer.listings.clear();
    peer.entered = null;
    this.#idle.push(peer);
    this.#logins.changed();
  }

  /** Close a connection that failed or was aborted. */
  drop(peer: FtpPeer): void {
    peer.connection.client.close();
    if (!this.#open.delete(peer)) return;
    this.#idle = this.#idle.filter((idle) => idle !== peer);
    this.#forget();
  }

  /** Close one idle connection (another job on the server needs its login); whether there was one. */
  closeIdle(): boolean {
    const peer = this.#idle.pop();
    if (peer === undefined) return false;
    this.drop(peer);
    return true;
  }

  /** Make room for a login by closing an idle connection of another job on the server. */
  #closeIdleElsewhere(): boolean {
    for (const pool of this.#logins.pools) {
      if (pool !== this && pool.closeIdle()) return true;
    }
    return false;
  }

  /** One login fewer on the server: a waiting transfer may open one. */
  #forget(): void {
    const logins = this.#logins;
    logins.open--;
    logins.closedAt = performance.now();
    // With no login left, the limit is learnt again at the next refusal.
    if (logins.open === 0) logins.limit = null;
    logins.changed();
  }

  /**
   * Log in once more; `null` when the server refused it for the logins this
   * daemon already holds there (its limit is then known).
   */
  async #login(): Promise<FtpPeer | null> {
    const logins = this.#logins;
    logins.open++;
    let connection;
    try {
      connection = await connectFtp(this.#job, undefined, this.#waits);
    } catch (error) {
      logins.open--;
      const lingering = LOGIN_LINGER_MS - (performance.now() - logins.closedAt);
      if (isTooManyLogins(error) && logins.open === 0 && lingering > 0) {
        // A login closed a moment ago may still count there: tried again once it is gone.
        await new Promise((resolve) => setTimeout(resolve, lingering));
        logins.closedAt = -Infinity;
        return null;
      }
      if (!isTooManyLogins(error) || logins.open === 0) {
        logins.changed();
        throw error;
      }
      // Refused for the logins held here: they are all the server allows.
      logins.limit = logins.open;
      if (!logins.said) {
        logins.said = true;
        log.warn(
          "FTP server {server} takes {limit} login(s) from this machine at once ({reply}): transfers there wait for a connection in use; max_concurrent_transfers above {limit} (of all jobs sending there together) gains nothing",
          {
            server: ftpServerName(this.#job),
            limit: logins.limit,
            reply: error instanceof Error && error.cause instanceof Error
              ? error.cause.message.trim()
              : String(error),
          },
        );
      }
      return null;
    }
    const peer: FtpPeer = {
      connection,
      folders: new Map<string, string | null>(),
      swept: new Set<string>(),
      dataWorked: false,
      idleSince: performance.now(),
      untried: null,
      listings: new Map(),
      entered: null,
    };
    this.#open.add(peer);
    if (this.#closed) {
      this.drop(peer);
      throw new TransferError("the FTP transport is closed", "retry");
    }
    this.#sayReadBack(connection.features);
    return peer;
  }

  /** Say once that arrivals are read back, where the server offers no checksum command. */
  #sayReadBack(features: { hash: boolean; xsha256: boolean }): void {
    if (this.#job.verify_transfer !== "checksum" || this.#saidReadBack) return;
    if (features.hash || features.xsha256) return;
    this.#saidReadBack = true;
    log.info(
      "FTP server {server} offers no checksum command (HASH or XSHA256): each arrival is read back to compare its SHA-256 (verify_transfer: size skips that second transfer)",
      { server: ftpServerName(this.#job) },
    );
  }
}
