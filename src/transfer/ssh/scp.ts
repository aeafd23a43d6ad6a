/**
 * The `scp` transport: batches delivered as `ssh/batch.ts` describes, each
 * upload one `scp -p` call per destination folder (up to three side by side
 * for a folder of many files) into the batch's upload folder there, under the
 * files' own names: nothing ever appears under a final name, and no local
 * staging is needed. `-p` gives each copy the source's mtime (to the second)
 * and permission bits. With `verify_transfer: checksum` the sources are hashed
 * here while scp sends them, the copies on the server by the finishing step.
 *
 * scp runs in its default SFTP mode (OpenSSH 9+; `-O` is never passed), so the
 * remote side opens the paths as given and no remote shell sees file names.
 * The SFTP server needs nothing but itself, but it must be there: on a server
 * without one (no `Subsystem sftp` line) every scp call fails, and is said to
 * fail for that (see `sftp_subsystem.ts`). OpenSSH's client already writes in
 * the largest blocks the server allows (it asks with `limits@openssh.com`).
 * Batching does not depend on connection sharing: where OpenSSH cannot share
 * connections (Windows), a batch still costs one connection per folder.
 *
 * @module
 */
import { posix } from "node:path";
import type { CommandError } from "../../errors.ts";
import { scpLimit } from "../../config/sizes.ts";
import { byUploadFolder, renamedOnUpload, type SshDelivery } from "./method.ts";
import { ONE_CALL_BATCH_BYTES, ONE_CALL_FILE_BYTES } from "./batch.ts";
import { SshTransport } from "./transport.ts";
import { scpClosedBySftp } from "./sftp_subsystem.ts";

/** Keep each scp command line well under Windows' 32,767-character limit. */
const MAX_SOURCE_CHARS = 16_000;

/**
 * A folder's files go in up to this many scp calls that run side by side: SFTP
 * waits for a round trip or two per file, so one call leaves the link idle
 * between small files (measured on loopback: 1,000 × 200 KiB took 5.5 s in one
 * call after another, 2.7 s in three side by side).
 */
const PARALLEL_CALLS_PER_FOLDER = 3;

/** Fewest files worth a call of their own (each call costs a process and a session). */
const MIN_FILES_PER_CALL = 10;

/** Delivers files with `scp` over a shared OpenSSH connection. */
export class ScpTransport extends SshTransport {
  readonly method = "scp" as const;
  /**
   * A burst of small files fills a batch that goes in one call (see
   * `batch.ts`); larger files go a few at a time, so a batch stays well
   * within its deadline.
   */
  readonly maxBatchFiles = 160;
  /**
   * Whether the last scp call found the server without SFTP (see `sftp_subsystem.ts`): then no
   * batch holds a file too large for one call with others, so the small files still go in one call.
   */
  #noSftp = false;

  get maxBatchBytes(): number {
    return this.#noSftp ? ONE_CALL_FILE_BYTES : ONE_CALL_BATCH_BYTES;
  }

  /**
   * A folder's files in up to {@linkcode PARALLEL_CALLS_PER_FOLDER} calls, each under the length
   * limit; with a bandwidth limit one call per folder, which keeps to the job's limit.
   */
  override uploadCalls(deliveries: SshDelivery[]): SshDelivery[][] {
    const split = this.limitedCalls.bytesPerSecond === null
      ? splitForParallelCalls
      : (part: SshDelivery[]) => [part];
    return byUploadFolder(deliveries).flatMap(split).flatMap(chunksBySourceLength);
  }

  /** One `scp -p` call of the sources of `group` into `folder`. */
  upload(group: SshDelivery[], folder: string, signal: AbortSignal): Promise<void> {
    return this.limitedCalls.during((limit) => this.#upload(group, folder, limit, signal), signal);
  }

  async #upload(
    group: SshDelivery[],
    folder: string,
    limit: number | null,
    signal: AbortSignal,
  ): Promise<void> {
    const sources = group.map((delivery) => delivery.item.source);
    // A copy named otherwise than its source goes alone, to its own path.
    const renamed = group.length === 1 && renamedOnUpload(group[0]);
    const argv = await this.session.scpArgv(sources, renamed ? group[0].tempPath : `${folder}/`);
    // Times and permission bits as the source's: the finishing step takes them away from
    // group and others' write.
    argv.splice(argv.indexOf("-q") + 1, 0, "-p");
    if (limit !== null) argv.splice(1, 0, "-l", scpLimit(limit));
    try {
      await this.runUpload(argv, group, { signal });
      this.#noSftp = false;
    } catch (error) {
      // "Connection closed" with logins working: a server without SFTP, said as such. A file that
      // can go in one call (in a batch without larger files, from now on) is tried again.
      const inOneCall = this.oneCallFiles > 1 && this.limitedCalls.bytesPerSecond === null &&
        group.some((delivery) => delivery.item.size <= ONE_CALL_FILE_BYTES);
      const noSftp = await scpClosedBySftp(error, this.session, this.context, {
        timeoutMs: this.timeoutMs,
        signal,
        kind: inOneCall ? "retry" : "fatal",
      });
      if (noSftp !== null) this.#noSftp = true;
      throw noSftp ?? error;
    }
  }

  /**
   * scp reports each file it could not send and goes on with the others:
   * `failed to upload file SOURCE to FOLDER/`, after lines such as
   * `write remote "COPY": Failure`. Every line must name exactly one file of
   * `group` (names with characters scp escapes name none), or the whole call
   * counts as failed.
   */
  failedInCall(error: CommandError, group: SshDelivery[]): Set<SshDelivery> | null {
    if (error.run.code !== 1) return null;
    const named = new Set<SshDelivery>();
    for (const raw of error.run.stderr.split(/\r?\n/)) {
      if (raw.trim() === "") continue;
      const delivery = deliveryNamedByScp(raw.replace(/^\S*scp: /, ""), group);
      if (delivery === null) return null;
      named.add(delivery);
    }
    return named.size > 0 ? named : null;
  }
}

/** The one delivery of `group` an scp error line names, or `null`. */
function deliveryNamedByScp(line: string, group: SshDelivery[]): SshDelivery | null {
  const upload = "failed to upload file ";
  const folder = ` to ${posix.dirname(group[0].tempPath)}/`;
  let found: SshDelivery[];
  if (line.startsWith(upload) && line.endsWith(folder)) {
    const source = line.slice(upload.length, line.length - folder.length);
    found = group.filter((delivery) => delivery.item.source === source);
  } else {
    const match = line.match(/^[a-z][a-z ]* (remote|local) "/);
    if (match === null) return null;
    const rest = line.slice(match[0].length);
    found = group.filter((delivery) => {
      const path = match[1] === "remote" ? delivery.tempPath : delivery.item.source;
      const after = rest.slice(path.length + 1);
      return rest.startsWith(`${path}"`) && (after === "" || after.startsWith(": "));
    });
  }
  return found.length === 1 ? found[0] : null;
}

/** Split `deliveries` so that each part's source paths stay under {@linkcode MAX_SOURCE_CHARS}. */
function chunksBySourceLength(deliveries: SshDelivery[]): SshDelivery[][] {
  const chunks: SshDelivery[][] = [];
  let current: SshDelivery[] = [];
  let chars = 0;
  for (const delivery of deliveries) {
    const length = delivery.item.source.length + 3;
    if (current.length > 0 && chars + length > MAX_SOURCE_CHARS) {
      chunks.push(current);
      current = [];
      chars = 0;
    }
    current.push(delivery);
    chars += length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Split one folder's deliveries into up to {@linkcode PARALLEL_CALLS_PER_FOLDER} parts of about equal count. */
function splitForParallelCalls(deliveries: SshDelivery[]): SshDelivery[][] {
  const parts = Math.max(
    1,
    Math.min(PARALLEL_CALLS_PER_FOLDER, Math.floor(deliveries.length / MIN_FILES_PER_CALL)),
  );
  return Array.from(
    { length: parts },
    (_, i) =>
      deliveries.slice(
        Math.floor(i * deliveries.length / parts),
        Math.floor((i + 1) * deliveries.length / parts),
      ),
  );
}
