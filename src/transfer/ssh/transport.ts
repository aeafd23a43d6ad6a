/**
 * What the `scp` and `rsync` transports share: the destination, its shared
 * SSH connection, and delivering each batch with {@linkcode SshBatch}'s steps.
 * Subclasses only upload.
 *
 * @module
 */
import { posix } from "node:path";
import { bandwidthLimit } from "../../config/bandwidth.ts";
import type { JobConfig } from "../../config/types.ts";
import type { CommandError } from "../../errors.ts";
import type { FailureContext } from "../classify.ts";
import { deliver } from "../deliver.ts";
import {
  parseRemoteSha256,
  parseRemoteSizes,
  remoteSha256Script,
  remoteSizesScript,
  SHA256_PER_SCRIPT,
  SIZES_PER_SCRIPT,
} from "../destination_sizes.ts";
import { type DiskSpace, parseRemoteDiskSpace, remoteDiskSpaceScript } from "../disk_space.ts";
import { SshBatch } from "./batch.ts";
import type { SshMethod } from "./method.ts";
import { byUploadFolder, type SshDelivery } from "./delivery.ts";
import { probeSshDestination } from "./probe.ts";
import { SshSession } from "./connection.ts";
import { endpointFromJob, remoteBasePath } from "./endpoint.ts";
import { jobOwner } from "../temp_name.ts";
import { LimitShares } from "../throttle.ts";
import type {
  PartSent,
  ProbeCheck,
  TransferItem,
  TransferOutcome,
  Transport,
} from "../transport.ts";
import { UploadFolders } from "./upload_folders.ts";

/** Base class of the SSH transports: subclasses implement {@linkcode SshTransport.upload}. */
export abstract class SshTransport implements Transport, SshMethod {
  abstract readonly method: "scp" | "rsync";
  abstract readonly maxBatchFiles: number;
  readonly job: JobConfig;
  readonly session: SshSession;
  readonly base: string;
  readonly context: FailureContext;
  readonly timeoutMs: number;
  readonly owner: string;
  readonly uploadFolders = new UploadFolders();
  /** `bandwidth_limit`, shared by the rsync/scp calls in flight. */
  readonly limitShares: LimitShares;
  readonly uploadVerifiesCopies: boolean = false;
  readonly resumesCopies: boolean = false;
  oneCallFiles = Infinity;
  /** Parts of growing files being sent, by destination: a send of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();

  constructor(job: JobConfig, runtimeDir: string) {
    this.job = job;
    this.session = new SshSession(endpointFromJob(job), runtimeDir);
    this.base = remoteBasePath(job.remote_base_path);
    this.context = {
      host: this.session.endpoint.host,
      destination: this.session.destination,
      port: this.session.endpoint.port,
      identityFile: this.session.endpoint.identityFile,
      options: this.session.endpoint.options,
    };
    this.timeoutMs = job.transfer_timeout_seconds * 1000;
    this.owner = jobOwner(job);
    this.limitShares = new LimitShares(bandwidthLimit(job));
  }

  abstract upload(group: SshDelivery[], folder: string, signal: AbortSignal): Promise<void>;

  abstract failedInCall(error: CommandError, group: SshDelivery[]): Set<SshDelivery> | null;

  /** By default one upload call per upload folder. */
  uploadCalls(deliveries: SshDelivery[]): SshDelivery[][] {
    return byUploadFolder(deliveries);
  }

  /** Sizes of delivered files (one remote script per {@linkcode SIZES_PER_SCRIPT} paths), for the catch-up. */
  destinationSizes(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, number | null>> {
    return this.#askInParts(destinations, signal, SIZES_PER_SCRIPT, (part) => {
      const script = remoteSizesScript(this.base, part);
      return { script, parse: (stdout) => parseRemoteSizes(part, script, stdout) };
    });
  }

  /** SHA-256 of delivered files, hashed on the server (one remote script per {@linkcode SHA256_PER_SCRIPT} paths). */
  destinationSha256(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, string | null>> {
    return this.#askInParts(destinations, signal, SHA256_PER_SCRIPT, (part) => {
      const script = remoteSha256Script(this.base, part);
      return { script, parse: (stdout) => parseRemoteSha256(part, script, stdout) };
    });
  }

  /** Ask about `destinations` with one remote script per `perScript` of them. */
  async #askInParts<T>(
    destinations: string[],
    signal: AbortSignal,
    perScript: number,
    build: (part: string[]) => {
      script: { text: string };
      parse: (stdout: string) => Map<string, T>;
    },
  ): Promise<Map<string, T>> {
    const answers = new Map<string, T>();
    for (let i = 0; i < destinations.length; i += perScript) {
      const { script, parse } = build(destinations.slice(i, i + perScript));
      const stdout = await this.session.runScript(script.text, {
        timeoutMs: this.timeoutMs,
        signal,
      });
      for (const [key, value] of parse(stdout)) answers.set(key, value);
    }
    return answers;
  }

  /** `df -Pk` of the base folder over the shared connection. */
  async diskSpace(
    signal: AbortSignal,
    options: { onlyIfFree?: boolean } = {},
  ): Promise<DiskSpace | null> {
    const script = remoteDiskSpaceScript(this.base);
    const stdout = await this.session.runScript(script.text, {
      timeoutMs: this.timeoutMs,
      signal,
      onlyIfFree: options.onlyIfFree,
    });
    return parseRemoteDiskSpace(script, stdout);
  }

  describeTarget(destination: string): string {
    return this.session.remoteSpec(posix.join(this.job.remote_base_path, destination));
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    // A part of one of these files being sent ends first: this send continues it.
    await Promise.all(items.map((item) => this.#parts.get(item.destination)));
    return await deliver(items, new SshBatch(this), signal);
  }

  /**
   * Send the first `item.size` bytes of a growing file into a kept copy (see
   * `Transport.sendPart`; for methods that resume copies).
   */
  protected sendPartOf(item: TransferItem, signal: AbortSignal): Promise<PartSent> {
    const before = this.#parts.get(item.destination);
    const sending = (async () => {
      await before;
      const batch = new SshBatch(this, true);
      const [outcome] = await deliver([item], batch, signal, true);
      if (outcome.error) throw outcome.error;
      return { bytes: item.size, appended: item.size - batch.resumedFrom(0) };
    })();
    const settled = sending.catch(() => {});
    this.#parts.set(item.destination, settled);
    settled.then(() => {
      if (this.#parts.get(item.destination) === settled) this.#parts.delete(item.destination);
    });
    return sending;
  }

  probe(): Promise<ProbeCheck[]> {
    return probeSshDestination(this.job, this.session, this.base, this.context);
  }

  /** Open the shared SSH connection now (see {@linkcode Transport.warmUp}). */
  async warmUp(): Promise<void> {
    await this.session.connect({ timeoutMs: this.timeoutMs }).catch(() => {});
  }

  async close(): Promise<void> {
    await this.session.close();
  }
}
