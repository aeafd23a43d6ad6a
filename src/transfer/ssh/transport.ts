/**
 * What the `scp` and `rsync` transports share: the destination, its shared
 * SSH connection, and delivering each batch with {@linkcode SshBatch}'s steps.
 * Subclasses only upload. What `doctor` checks of it is in `probe.ts`.
 *
 * @module
 */
import { posix } from "node:path";
import { bandwidthLimit } from "../../config/sizes.ts";
import type { JobConfig } from "../../config/types.ts";
import { CommandError, lastLine, TransferError } from "../../errors.ts";
import type { RunResult } from "../../process/run.ts";
import { classifyFailure, type FailureContext, noisyShellReason } from "../classify.ts";
import { deliver } from "../deliver.ts";
import {
  parseFoundFlush,
  parseRemoteSha256,
  parseRemoteSizes,
  parseRemoteVersions,
  remoteSha256Script,
  remoteSizesScript,
  remoteVersionsScript,
  SHA256_PER_SCRIPT,
  SIZES_PER_SCRIPT,
} from "../destination_sizes.ts";
import type { DestinationVersion } from "../destination_sizes.ts";
import type { DiskSpace } from "../../config/free_space.ts";
import { SshBatch } from "./batch.ts";
import { byUploadFolder, type SshDelivery, type SshMethod } from "./method.ts";
import { SshSession } from "./connection.ts";
import { endpointFromJob, remoteJoin } from "./endpoint.ts";
import { remoteBasePath } from "../../config/destination_folder.ts";
import { jobOwners, uploadFolderPrefix } from "../temp_name.ts";
import { TEMP_SUFFIX } from "../../layout/destination.ts";
import { LimitedCalls } from "../throttle.ts";
import type {
  PartSent,
  ProbeCheck,
  TransferItem,
  TransferOutcome,
  Transport,
} from "../transport.ts";
import { UploadFolders } from "./upload_folders.ts";
import { type EarlierNaming, earlierSweep, RemoteBase } from "./remote_folders.ts";
import type { Ledger } from "../../ledger/ledger.ts";
import { buildScript, call } from "./remote_script.ts";
import { parseRemoteDiskSpace, probeSshDestination, remoteDiskSpaceScript } from "./probe.ts";

/** The longest an upload call is given after its timeouts (see `SshTransport.runUpload`). */
const LONGEST_UPLOAD_MS = 86_400_000;

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
  readonly earlier: EarlierNaming | null;
  readonly uploadFolders = new UploadFolders();
  /** `bandwidth_limit`: the rsync/scp calls under it go one at a time. */
  readonly limitedCalls: LimitedCalls;
  readonly uploadVerifiesCopies: boolean = false;
  readonly resumesCopies: boolean = false;
  readonly partsSent = new Set<string>();
  oneCallFiles = Infinity;
  readonly remoteBase: RemoteBase;
  readonly uploadsLeft = new Set<string>();
  readonly unflushed = new Set<string>();
  /** Files whose kept copies are to be removed (see {@linkcode dropKeptCopies}), and when. */
  #toDrop = new Set<string>();
  #dropTimer: ReturnType<typeof setTimeout> | undefined;
  /** Parts of growing files being sent, by destination: a send of the same file waits for them. */
  #parts = new Map<string, Promise<unknown>>();
  /** How long the next upload of a file whose upload timed out may take, by destination. */
  #longer = new Map<string, number>();
  /** rsync: a command's output was seen free of the login shell's text (see `#shellPrints`). */
  #quietShell = false;
  /** The question of `#shellPrints` under way, which every send waits for. */
  #shellAsked: Promise<string | null> | null = null;

  /**
   * Under a bandwidth limit the uploads go one call at a time: two batches,
   * one uploading while the next prepares its folders or the last finishes.
   * (More would only wait for their turn, and on their batch's deadline.)
   */
  get maxBatchesAtOnce(): number | undefined {
    return this.limitedCalls.bytesPerSecond === null ? undefined : 2;
  }

  /**
   * `ledger`: where whether the base path was a mount point is kept (see `RemoteBase`), beside
   * this install's id (see `jobOwners`). `tempDir`: see {@linkcode SshSession}.
   */
  constructor(
    job: JobConfig,
    runtimeDir: string,
    ledger: Ledger | null,
    fromTo: boolean,
    tempDir?: string,
  ) {
    this.job = job;
    this.session = new SshSession(endpointFromJob(job), runtimeDir, tempDir);
    this.base = remoteBasePath(job.remote_base_path);
    this.remoteBase = new RemoteBase(ledger, this.session.remoteSpec(this.base));
    this.context = {
      host: this.session.endpoint.host,
      destination: this.session.destination,
      port: this.session.endpoint.port,
      identityFile: this.session.endpoint.identityFile,
      options: this.session.endpoint.options,
      fromTo,
    };
    this.timeoutMs = job.transfer_timeout_seconds * 1000;
    const { owner, earlier } = jobOwners(job, ledger);
    this.owner = owner;
    this.earlier = earlier && {
      ...earlier,
      prefix: uploadFolderPrefix(earlier.owner),
      alsoPrefixes: earlier.also.map(uploadFolderPrefix),
    };
    this.limitedCalls = new LimitedCalls(bandwidthLimit(job));
  }

  abstract upload(group: SshDelivery[], folder: string, signal: AbortSignal): Promise<void>;

  /** How long a batch of `items` may take its upload call (see `Transport.longestCallMs`). */
  longestCallMs(items: TransferItem[]): number {
    return Math.max(
      this.timeoutMs,
      ...items.map((item) => this.#longer.get(item.destination) ?? 0),
    );
  }

  /**
   * Runs `argv`, the upload call of `group`, given the time its files need: where a copy starts
   * over (scp; rsync without `resume_partial_hours`), a file whose upload timed out is given twice
   * that time at its next attempt, up to {@linkcode LONGEST_UPLOAD_MS}, so a large file on a slow
   * link arrives, as an upload that hangs is still given up.
   */
  protected async runUpload(
    argv: string[],
    group: SshDelivery[],
    options: { stdin?: string; signal: AbortSignal },
  ): Promise<RunResult> {
    const timeoutMs = this.longestCallMs(group.map((delivery) => delivery.item));
    try {
      const run = await this.session.run(argv, { ...options, timeoutMs });
      for (const delivery of group) this.#longer.delete(delivery.item.destination);
      return run;
    } catch (error) {
      if (!this.resumesCopies && error instanceof CommandError && error.run.timedOut) {
        const next = Math.min(2 * timeoutMs, LONGEST_UPLOAD_MS);
        for (const delivery of group) this.#longer.set(delivery.item.destination, next);
      }
      throw error;
    }
  }

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

  /**
   * See `Transport.destinationSizesOnDisk`: with `remote_sync`, each script flushes the folders of
   * the files it found; the first flush that fails is said.
   */
  async destinationSizesOnDisk(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<{ sizes: Map<string, number | null>; notFlushed: string | null }> {
    let notFlushed: string | null = null;
    const sizes = await this.#askInParts(destinations, signal, SIZES_PER_SCRIPT, (part) => {
      const script = remoteSizesScript(this.base, part, this.job.remote_sync);
      return {
        script,
        parse: (stdout) => {
          const sizes = parseRemoteSizes(part, script, stdout);
          if (this.job.remote_sync) notFlushed ??= parseFoundFlush(script, stdout, sizes);
          return sizes;
        },
      };
    });
    return { sizes, notFlushed };
  }

  /** See `Transport.destinationVersions` (one remote script per {@linkcode SIZES_PER_SCRIPT} paths). */
  destinationVersions(
    destinations: string[],
    signal: AbortSignal,
  ): Promise<Map<string, DestinationVersion | null>> {
    return this.#askInParts(destinations, signal, SIZES_PER_SCRIPT, (part) => {
      const script = remoteVersionsScript(this.base, part);
      return { script, parse: (stdout) => parseRemoteVersions(part, script, stdout) };
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
      const asking = this.session.runScript(script.text, { timeoutMs: this.timeoutMs, signal });
      // Said as a send that fails so (the connection, the login): a job pauses for it alike.
      const stdout = await asking.catch((error) => {
        throw signal.aborted ? error : classifyFailure(error, "ask the destination", this.context);
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
    const noisy = await this.#shellPrints(signal);
    if (noisy !== null) {
      return items.map((item) => ({
        item,
        error: new TransferError(
          `Cannot send ${item.source} to ${this.describeTarget(item.destination)}: ${noisy}`,
          "fatal",
        ),
      }));
    }
    return await deliver(items, new SshBatch(this), signal);
  }

  /**
   * rsync cannot get through a login shell that prints text for commands, while the calls that
   * carry small files skip such text: small files would arrive and larger ones fail. So, as doctor
   * says, none is sent while `true` prints text there: why (`null`: it prints nothing, or could not
   * be asked, which the send then says). Asked once at a time (the start asks it, see `warmUp`),
   * before each send until it printed nothing once, for at most 10 s; a stop waits for no answer.
   */
  async #shellPrints(signal: AbortSignal): Promise<string | null> {
    if (this.method !== "rsync" || this.#quietShell) return null;
    const asked = this.#shellAsked ??= this.#askShell().catch(() => null)
      .finally(() => this.#shellAsked = null);
    return await new Promise((resolve) => {
      asked.then(resolve);
      signal.addEventListener("abort", () => resolve(null), { once: true });
    });
  }

  async #askShell(): Promise<string | null> {
    const timeoutMs = Math.min(this.timeoutMs, 10_000);
    // Over the shared connection, which the send uses next; none: the send says why.
    if (await this.session.connect({ timeoutMs }).catch((error) => error) !== null) return null;
    const argv = await this.session.sshArgv(["true"]);
    const run = await this.session.run(argv, { timeoutMs }).catch(() => null);
    if (run === null) return null;
    const said = lastLine(new TextDecoder().decode(run.stdout));
    this.#quietShell = said === "";
    return said === ""
      ? null
      : `${noisyShellReason(this.context, "rsync")} (it printed: ${
        JSON.stringify(said.slice(0, 80))
      })`;
  }

  deliveredBefore(): void {
    this.remoteBase.filesArrived = true;
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
      this.partsSent.add(item.destination);
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
    return probeSshDestination(this, this.base);
  }

  /** Open the shared SSH connection now (see {@linkcode Transport.warmUp}). */
  async warmUp(): Promise<void> {
    await this.session.connect({ timeoutMs: this.timeoutMs }).catch(() => {});
    await this.#shellPrints(new AbortController().signal); // rsync: before the first send.
  }

  /**
   * Remove the copies of these files (relative destinations) kept to be continued (rsync,
   * `resume_partial_hours`) or left by an upload cut off (a killed daemon, a lost connection; scp
   * too): they will not be continued, having arrived or lost their source, and no later batch may
   * come into their folder to sweep them. Gathered for a second, then one call; never throws.
   */
  dropKeptCopies(destinations: string[]): void {
    if (destinations.length === 0) return;
    for (const destination of destinations) this.#toDrop.add(destination);
    this.#dropTimer ??= setTimeout(() => void this.#dropNow(), 1000);
  }

  async #dropNow(): Promise<void> {
    clearTimeout(this.#dropTimer);
    this.#dropTimer = undefined;
    const places = [...this.#toDrop].slice(0, SIZES_PER_SCRIPT).map((destination) => {
      this.#toDrop.delete(destination);
      const finalPath = remoteJoin(this.base, destination);
      return { folder: posix.dirname(finalPath), name: posix.basename(finalPath) };
    });
    if (this.#toDrop.size > 0) this.#dropTimer = setTimeout(() => void this.#dropNow(), 1000);
    // Held like a batch's folders: no sweep runs there meanwhile, and the copies of batches
    // under way are not touched.
    const claim = await this.uploadFolders.claim([...new Set(places.map((p) => p.folder))]);
    let swept = false;
    try {
      const prefix = uploadFolderPrefix(this.owner);
      const lines = places.map(({ folder, name }) =>
        call("drop_kept_copies", folder, name, prefix, TEMP_SUFFIX, ...claim.othersActive(folder))
      );
      // A folder no batch swept since the start is swept now, as its first batch would: a killed
      // daemon's upload folder there that holds no copy of these files (rsync removed its own
      // temporary file) waits for no batch.
      const keep = this.resumesCopies ? Math.floor(this.job.resume_partial_hours * 3600) : 0;
      for (const folder of claim.toSweep) {
        const earlier = this.earlier ? earlierSweep(this.earlier) : [];
        lines.push(call("sweep_upload_folders", folder, prefix, TEMP_SUFFIX, keep, ...earlier));
      }
      await this.session.runScript(buildScript("make_folders", lines).text, {
        timeoutMs: this.timeoutMs,
      });
      swept = true;
    } catch {
      // Left to the next batch into the folder, which sweeps them once expired.
    } finally {
      claim.prepared(swept);
      claim.release();
    }
  }

  async close(): Promise<void> {
    if (this.#toDrop.size > 0) await this.#dropNow();
    clearTimeout(this.#dropTimer);
    // What a stop interrupted is sent again whole: its upload folders go now (one call, briefly).
    const left = [...this.uploadsLeft];
    this.uploadsLeft.clear();
    if (left.length > 0) {
      const script = buildScript("finish", [call("remove_upload_folders", ...left)]);
      await this.session.runScript(script.text, { timeoutMs: Math.min(this.timeoutMs, 5000) })
        .catch(() => {});
    }
    await this.session.close();
  }
}
