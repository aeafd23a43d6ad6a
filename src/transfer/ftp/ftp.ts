/**
 * The `ftp` transport: FTPS (explicit TLS) or plain FTP, passive mode.
 *
 * A batch goes through the one delivery sequence (`deliver.ts`) over one
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
import { classifyFtpError, ftpServerName, probeFtpDestination } from "./connect.ts";
import { deliver, type DeliverySteps } from "../deliver.ts";
import {
  badName,
  ensureFolders,
  finishDelivery,
  type FtpDelivery,
  type FtpLink,
  type FtpPeer,
  joinRemote,
  parentOf,
  recheckFolder,
  remoteSha256,
  sweepLeftovers,
  uploadError,
  withSource,
} from "./remote.ts";
import { jobOwner, uploadFolderName } from "../temp_name.ts";
import { Throttle } from "../throttle.ts";
import { sendKeepingOthers } from "../keep_others.ts";
import { HashingCounter, uploadDelivery } from "./upload.ts";
import { folderRefused } from "./space_probe.ts";
import { FtpPool } from "./pool.ts";
import { absentByListing, askEach } from "./absent.ts";
import { NoAnswer, silenceOf, UploadStalls } from "./no_answer.ts";
import type { ProbeCheck, TransferItem, TransferOutcome, Transport } from "../transport.ts";

/** How long closing may spend removing the upload folders stopped batches left. */
const LEFTOVER_SWEEP_MS = 5_000;

/** Folders remembered for that (a later batch into one of the others sweeps it). */
const MAX_FOLDERS_LEFT = 1000;

/** Uploads to `remote_base_path` on an FTP server: temp name, verify, rename. */
export class FtpTransport implements Transport {
  readonly method = "ftp" as const;
  readonly maxBatchFiles = 16;
  /** As many batches at once as the server allows logins from here, once it refused one more. */
  get maxBatchesAtOnce(): number | undefined {
    return this.#pool.loginLimit ?? undefined;
  }
  #job: JobConfig;
  #owner: string;
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
   * `options`: how long a command waits for its reply (`no_answer.ts`), and how long a connection
   * may stay idle and be reused without a `NOOP` (`pool.ts`).
   */
  constructor(job: JobConfig, options: { replyWaitMs?: number; noopAfterIdleMs?: number } = {}) {
    this.#job = job;
    const limit = bandwidthLimit(job);
    this.throttle = limit === null ? null : new Throttle(limit);
    this.#owner = jobOwner(job);
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
    return probeFtpDestination(this.#job);
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
    return await deliver(items, this.#steps(link, this.#base(link.peer)), signal);
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
        await sweepLeftovers(peer, folder, this.#owner, this.#inUse);
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
      await sweepLeftovers(peer, folder, this.#owner, this.#inUse)
        .then(() => this.#leftIn.delete(folder), () => {});
    }
  }

  /** `remote_base_path` as an absolute path on the server (a relative one is under the login's home). */
  #base(peer: FtpPeer): string {
    return this.#job.remote_base_path.startsWith("/")
      ? this.#job.remote_base_path
      : joinRemote(peer.connection.home, this.#job.remote_base_path);
  }

  /**
   * The delivery steps over one connection (`link`; a connection that
   * breaks is replaced for the files after it, one whose server stopped
   * answering fails them all), a file at a time.
   */
  #steps(link: FtpLink, base: string): DeliverySteps<FtpDelivery> {
    /** Run `step` for `delivery`; a failure fails it (and a broken connection is dropped). */
    const attempt = async (
      delivery: FtpDelivery,
      signal: AbortSignal,
      step: (peer: FtpPeer) => Promise<void>,
    ): Promise<void> => {
      if (link.silence !== null) {
        // Waited for once: the batch ends, no file waits for that server again.
        delivery.error = withSource(delivery.item, link.silence);
        return;
      }
      let peer = null as FtpPeer | null;
      try {
        await this.#pool.use(link, signal, (used) => step(peer = used));
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const failure = silenceOf(peer?.connection.client) ??
          (peer === null
            ? classifyFtpError(error, this.#job, "connect")
            : uploadError(this.#job, peer, error));
        if (failure instanceof NoAnswer) link.silence = failure;
        delivery.error = withSource(delivery.item, failure);
        if (peer !== null && delivery.uploaded && !peer.connection.client.closed) {
          await peer.connection.client.sendIgnoringError(`DELE ${delivery.tempPath}`);
          delivery.uploaded = false;
        }
        if (link.peer?.connection.client.closed) {
          this.#pool.drop(link.peer);
          link.peer = null;
        }
      }
    };
    /** The batch's upload folder in each destination folder, and whether it was made. */
    const uploadFolders = new Map<string, { path: string; made: boolean }>();
    return {
      place: (item) => {
        const bad = badName(item, base);
        if (bad !== null) throw bad;
        const finalPath = joinRemote(base, item.destination);
        const folder = parentOf(finalPath);
        let upload = uploadFolders.get(folder);
        if (upload === undefined) {
          upload = { path: joinRemote(folder, uploadFolderName(this.#owner)), made: false };
          uploadFolders.set(folder, upload);
          this.#inUse.add(upload.path);
        }
        const name = finalPath.slice(finalPath.lastIndexOf("/") + 1);
        return { finalPath, tempPath: joinRemote(upload.path, name) };
      },
      track: (delivery) => ({ ...delivery, uploaded: false, read: null }),
      makeFolders: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          const folder = parentOf(delivery.finalPath);
          const upload = uploadFolders.get(folder)!;
          await attempt(delivery, signal, async (peer) => {
            // Once a batch: the folder may have changed since this connection knew it.
            if (!upload.made) await recheckFolder(peer, base, folder);
            await ensureFolders(peer, base, folder, !this.#filesArrivedBefore);
            await sweepLeftovers(peer, folder, this.#owner, this.#inUse);
            if (upload.made) return;
            // MKD fails on any name that exists: nothing planted there is written through.
            const made = await peer.connection.client.sendIgnoringError(`MKD ${upload.path}`);
            if (made.code >= 400) {
              const what = `cannot make the upload folder ${upload.path} (${made.message.trim()})`;
              const advice = `check that the login may write in ${folder}; anything that exists ` +
                "under that name is left alone, and the next attempt takes another name";
              throw await folderRefused(peer.connection.client, folder, what, advice, "retry");
            }
            upload.made = true;
          });
        }
      },
      put: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          await attempt(delivery, signal, async (peer) => {
            await uploadDelivery(
              peer.connection.client,
              delivery,
              this.#job,
              this.throttle,
              signal,
              this.#stalls.uploading(link),
            );
            peer.dataWorked = true;
          });
        }
      },
      finish: async (deliveries, signal) => {
        for (const delivery of deliveries) {
          if (delivery.error !== null) {
            // A copy whose source changed meanwhile (checked after the uploads) is removed.
            if (delivery.uploaded && link.peer && !link.peer.connection.client.closed) {
              await link.peer.connection.client.sendIgnoringError(`DELE ${delivery.tempPath}`);
            }
            continue;
          }
          await attempt(delivery, signal, (peer) => finishDelivery(peer, delivery, this.#job));
        }
      },
      end: async (deliveries) => {
        for (const delivery of deliveries) delivery.read?.destroy();
        // Every copy was renamed out or removed: the upload folders go (a leftover is swept).
        const peer = link.peer;
        for (const upload of uploadFolders.values()) {
          // Not removed (a copy the cut connection could not delete is in it): swept later.
          const removed = upload.made && peer !== null && !peer.connection.client.closed
            ? await peer.connection.client.sendIgnoringError(`RMD ${upload.path}`).catch(() => null)
            : null;
          if (
            upload.made && (removed?.code ?? 550) >= 400 && this.#leftIn.size < MAX_FOLDERS_LEFT
          ) {
            this.#leftIn.add(parentOf(upload.path));
          }
          this.#inUse.delete(upload.path);
        }
      },
    };
  }
}
