/**
 * The `ftp` transport: FTPS (explicit TLS) or plain FTP, passive mode.
 *
 * A batch goes through the one delivery sequence (`deliver.ts`, its steps in `batch.ts`) over one
 * connection, a file at a time: each file is uploaded (from the source
 * opened as `source.ts` does) into the batch's upload folder in its
 * destination folder, verified (`SIZE`; SHA-256 through `HASH` or `XSHA256`,
 * or by reading the copy back, which tells its size too), and renamed into place. FTP cannot create a
 * file exclusively, but `MKD` fails on any name that exists: the upload
 * folder (a hidden name with a random part, see `temp_name.ts`) is made
 * fresh for each batch, so nothing planted ahead is ever written through.
 * Connections are kept open and reused from one batch to the next (one per
 * concurrent batch). FTP has no rate limit of its own: a `bandwidth_limit`
 * paces the reading of the source.
 *
 * @module
 */
import { bandwidthLimit } from "../../config/sizes.ts";
import type { JobConfig } from "../../config/types.ts";
import { classifyFtpError, type FtpJob, ftpServerName } from "./connect.ts";
import { probeFtpDestination } from "./probe.ts";
import { deliver } from "../deliver.ts";
import { batchSteps } from "./batch.ts";
import {
  type FtpLink,
  type FtpPeer,
  joinRemote,
  parentOf,
  remoteSha256,
  uploadError,
  withSource,
} from "./remote.ts";
import { sweepLeftovers } from "./leftovers.ts";
import { type JobOwners, jobOwners } from "../temp_name.ts";
import type { Ledger } from "../../ledger/ledger.ts";
import { Throttle } from "../throttle.ts";
import { sendKeepingOthers } from "../keep_others.ts";
import { HashingCounter } from "./upload.ts";
import { FtpPool } from "./pool.ts";
import { absentByListing, askEach } from "./absent.ts";
import { UploadStalls } from "./no_answer.ts";
import type { ProbeCheck, TransferItem, TransferOutcome, Transport } from "../transport.ts";
import type { DestinationVersion } from "../destination_sizes.ts";

/** How long closing may spend removing the upload folders stopped batches left. */
const LEFTOVER_SWEEP_MS = 5_000;

/** Uploads to `remote_base_path` on an FTP server: temp name, verify, rename. */
export class FtpTransport implements Transport {
  readonly method = "ftp" as const;
  readonly maxBatchFiles = 16;
  /** As many batches at once as the server allows logins from here, once it refused one more. */
  get maxBatchesAtOnce(): number | undefined {
    return this.#pool.loginLimit ?? undefined;
  }
  #job: FtpJob;
  /** Its parts of temporary names (see `temp_name.ts`). */
  #owners: JobOwners;
  /** Connections kept open and reused from one batch to the next. */
  #pool: FtpPool;
  /** Upload folders of batches under way (never swept). */
  #inUse = new Set<string>();
  /**
   * Destination folders that hold an upload folder a stopped batch could not
   * remove (its connection was cut): no later batch may come into them to
   * sweep it (the last file of a night), so they are swept by the next batch
   * (over whichever connection) and as the transport closes.
   */
  #leftIn = new Set<string>();
  /** Files whose folders are to be swept (see `dropKeptCopies`), the timer and the sweep under way. */
  #dropped = new Set<string>();
  #dropTimer: ReturnType<typeof setTimeout> | undefined;
  #dropping: Promise<void> | null = null;
  /** Aborted as the transport closes: a sweep still waiting for a connection gives up. */
  #closing = new AbortController();
  /** Folders too large to list (see `absent.ts`): asked of file by file. */
  #largeFolders = new Set<string>();
  /** Files arrived in the base folder before (see `Transport.deliveredBefore`): not made again. */
  #filesArrivedBefore = false;
  /** Paces all uploads together at `bandwidth_limit` (none without one). */
  readonly throttle: Throttle | null;
  /** The batches uploading, which of them the server takes no data of, and what the job is told. */
  readonly #stalls = new UploadStalls();

  /**
   * `options`: how long a command waits for its reply (`no_answer.ts`), how long a connection
   * may stay idle and be reused without a `NOOP` (`pool.ts`), where this install's id is kept,
   * whether `--to` gave the destination (`fromTo`: messages name the options, see `FtpJob`).
   */
  constructor(
    job: JobConfig,
    options: {
      replyWaitMs?: number;
      noopAfterIdleMs?: number;
      ledger?: Ledger | null;
      fromTo?: boolean;
    } = {},
  ) {
    const ftpJob: FtpJob = options.fromTo ? { ...job, fromTo: true } : job;
    job = this.#job = ftpJob;
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#owners = jobOwners(job, options.ledger ?? null);
    this.#pool = new FtpPool(job, options.replyWaitMs, options.noopAfterIdleMs);
  }

  watchStalls(onChange: (why: string | null) => void): void {
    this.#stalls.watch(onChange);
  }

  describeTarget(destination: string): string {
    const base = this.#job.remote_base_path;
    // A relative base is in the login's folder: `/~/` says so, as lftp reads it.
    const path = joinRemote(base.startsWith("/") ? base : `/~/${base}`, destination);
    return `ftp${this.#job.ftp_tls === "off" ? "" : "s"}://${ftpServerName(this.#job)}${path}`;
  }

  probe(): Promise<ProbeCheck[]> {
    return probeFtpDestination(this.#job, this.#filesArrivedBefore);
  }

  deliveredBefore(): void {
    this.#filesArrivedBefore = true;
  }

  async warmUp(): Promise<void> {
    try {
      await this.#pool.warmUp();
    } catch {
      // Reported at the first send.
    }
  }

  /**
   * One connection for the whole batch: the look for files already there (see `keep_others.ts`)
   * and the delivery; a folder it lists to look is not listed again to be swept.
   */
  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const link: FtpLink = { peer: null, silence: null };
    const onAbort = () => link.peer?.connection.client.close();
    signal.addEventListener("abort", onAbort);
    // A server that cannot be asked fails them as one that cannot be reached does.
    const lookFailed = (item: TransferItem, error: unknown) =>
      withSource(item, classifyFtpError(error, this.#job, "connect"));
    // A connection the look failed on is not trusted with the upload: another is taken.
    const dropOnError = <T>(asking: Promise<T>) =>
      asking.catch((error) => {
        if (link.peer !== null) this.#pool.drop(link.peer);
        link.peer = null;
        throw error;
      });
    const look = {
      describeTarget: (destination: string) => this.describeTarget(destination),
      destinationSizes: (paths: string[]) => dropOnError(this.#sizes(link, paths, signal)),
      destinationSha256: (paths: string[]) => dropOnError(this.#hashes(link, paths, signal)),
    };
    try {
      return await sendKeepingOthers(
        look,
        items,
        signal,
        (rest) => this.#send(link, rest, signal),
        lookFailed,
      );
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#stalls.ended(link);
      const peer = link.peer;
      if (peer !== null) {
        if (signal.aborted || peer.connection.client.closed) this.#pool.drop(peer);
        else this.#pool.release(peer);
      }
    }
  }

  async #send(
    link: FtpLink,
    items: TransferItem[],
    signal: AbortSignal,
  ): Promise<TransferOutcome[]> {
    try {
      link.peer ??= await this.#pool.acquire(signal);
    } catch (error) {
      signal.throwIfAborted();
      // No connection: every item fails the same way.
      const failure = classifyFtpError(error, this.#job, "connect");
      return items.map((item) => ({ item, error: withSource(item, failure) }));
    }
    // An abort while connecting: the connection is dropped as the batch ends.
    signal.throwIfAborted();
    await this.#sweepLeft(link.peer);
    const batch = {
      job: this.#job,
      owners: this.#owners,
      pool: this.#pool,
      throttle: this.throttle,
      stalls: this.#stalls,
      inUse: this.#inUse,
      leftIn: this.#leftIn,
      makesBase: !this.#filesArrivedBefore,
    };
    return await deliver(items, batchSteps(link, this.#base(link.peer), batch), signal);
  }

  /**
   * Sizes of files at the destination by `SIZE` (`null`: no file there), for the catch-up and
   * `noReplace`; those a folder's listing says are not there are not asked (see `absent.ts`),
   * unless most are expected there (`mostlyThere`: the listing would save no `SIZE`).
   */
  destinationSizes(
    destinations: string[],
    signal: AbortSignal,
    options: { mostlyThere?: boolean } = {},
  ): Promise<Map<string, number | null>> {
    return this.#alone((link) => this.#sizes(link, destinations, signal, options.mostlyThere));
  }

  /**
   * See `Transport.destinationVersions`: `SIZE` and `MDTM` of each file (`null` for all where the
   * server gives no `MDTM`: nothing there is then taken for a copy of an earlier version).
   */
  destinationVersions(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, DestinationVersion | null>> {
    const version = async (peer: FtpPeer, path: string) => {
      if (!peer.connection.features.mdtm) return null;
      const size = await peer.connection.client.size(path);
      const mtimeMs = (await peer.connection.client.lastMod(path)).getTime();
      return Number.isNaN(mtimeMs) ? null : { size, mtimeS: Math.floor(mtimeMs / 1000) };
    };
    return this.#alone((link) =>
      this.#pool.use(link, signal, (peer) => {
        return askEach(peer, this.#base(peer), destinations, signal, version);
      })
    );
  }

  /** SHA-256 of delivered files by `HASH` or `XSHA256`, or read back where neither is offered. */
  destinationSha256(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, string | null>> {
    return this.#alone((link) => this.#hashes(link, destinations, signal));
  }

  #sizes(link: FtpLink, destinations: string[], signal: AbortSignal, mostlyThere = false) {
    // A listing's data connection failing on TLS says what to change, as an upload's does.
    const absent = (peer: FtpPeer, paths: string[]) =>
      absentByListing(peer, paths, this.#largeFolders, this.#base(peer)).catch((error) => {
        throw uploadError(this.#job, peer, error);
      });
    const size = (peer: FtpPeer, path: string) => peer.connection.client.size(path);
    const listing = mostlyThere ? undefined : absent;
    return this.#pool.use(link, signal, (peer) => {
      return askEach(peer, this.#base(peer), destinations, signal, size, listing);
    });
  }

  #hashes(link: FtpLink, destinations: string[], signal: AbortSignal) {
    const hash = (peer: FtpPeer, path: string) =>
      remoteSha256(peer.connection, path, new HashingCounter(true), null);
    return this.#pool.use(link, signal, (peer) => {
      return askEach(peer, this.#base(peer), destinations, signal, hash);
    });
  }

  /** Run `ask` over a connection of its own, given back once it answered, else dropped. */
  async #alone<T>(ask: (link: FtpLink) => Promise<T>): Promise<T> {
    const link: FtpLink = { peer: null, silence: null };
    let healthy = false;
    try {
      const answers = await ask(link);
      healthy = true;
      return answers;
    } finally {
      if (link.peer !== null && healthy) this.#pool.release(link.peer);
      else if (link.peer !== null) this.#pool.drop(link.peer);
    }
  }

  /**
   * Files (relative destinations) whose interrupted copies are not sent again
   * (arrived, or source gone): an upload folder a killed daemon left with them
   * would wait for a batch into their folder that never comes, so their
   * folders are swept (in a second, in the background). Never throws.
   */
  dropKeptCopies(destinations: string[]): void {
    for (const destination of destinations) {
      if (!/[\r\n\0]/.test(destination)) this.#dropped.add(destination);
    }
    if (this.#dropped.size === 0 || this.#dropTimer !== undefined) return;
    this.#dropTimer = setTimeout(() => {
      this.#dropTimer = undefined;
      this.#dropping = this.#sweepAway([], this.#closing.signal).finally(() => {
        this.#dropping = null;
      });
    }, 1000);
  }

  async close(): Promise<void> {
    clearTimeout(this.#dropTimer); // What a stop interrupted is sent again whole: swept (briefly).
    const folders = [...this.#leftIn];
    this.#leftIn.clear();
    if (folders.length > 0 || this.#dropped.size > 0 || this.#dropping !== null) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.all([this.#dropping, this.#sweepAway(folders, this.#closing.signal)]),
        new Promise((resolve) => timer = setTimeout(resolve, LEFTOVER_SWEEP_MS)),
      ]);
      clearTimeout(timer);
    }
    this.#closing.abort();
    return this.#pool.close();
  }

  /** Sweep `folders` and those of the files dropped (see `dropKeptCopies`) over one connection. */
  async #sweepAway(folders: string[], signal: AbortSignal): Promise<void> {
    const dropped = [...this.#dropped];
    this.#dropped.clear();
    if (folders.length === 0 && dropped.length === 0) return;
    let peer: FtpPeer | null = null;
    try {
      peer = await this.#pool.acquire(signal);
      const base = this.#base(peer);
      const all = new Set([...folders, ...dropped.map((d) => parentOf(joinRemote(base, d)))]);
      for (const folder of all) {
        peer.swept.delete(folder);
        await sweepLeftovers(peer, folder, this.#owners, this.#inUse);
      }
    } catch {
      // Left to the next batch into the folder.
    } finally {
      if (peer !== null && peer.connection.client.closed) this.#pool.drop(peer);
      else if (peer !== null) this.#pool.release(peer);
    }
  }

  /**
   * Sweep over `peer` the folders stopped batches left upload folders in (`#leftIn`): this
   * connection may have swept them before, and no new one may come. Never throws.
   */
  async #sweepLeft(peer: FtpPeer): Promise<void> {
    for (const folder of [...this.#leftIn]) {
      peer.swept.delete(folder);
      // Kept for later where the connection broke meanwhile.
      await sweepLeftovers(peer, folder, this.#owners, this.#inUse)
        .then(() => this.#leftIn.delete(folder), () => {});
    }
  }

  /** `remote_base_path` as an absolute path on the server (a relative one is under the login's home). */
  #base(peer: FtpPeer): string {
    return this.#job.remote_base_path.startsWith("/")
      ? this.#job.remote_base_path
      : joinRemote(peer.connection.home, this.#job.remote_base_path);
  }
}
