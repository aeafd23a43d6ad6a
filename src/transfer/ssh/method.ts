/**
 * What an SSH method (scp, rsync) supplies to the batches of `ssh/batch.ts`:
 * the session, remote base, limits, upload folders, and its upload call.
 *
 * One file of an SSH batch on its way: what the SSH steps record beyond the
 * shared {@linkcode Delivery}.
 *
 * @module
 */
import type { JobConfig } from "../../config/types.ts";
import type { CommandError, TransferError } from "../../errors.ts";
import type { FailureContext } from "../classify.ts";
import type { SshSession } from "./connection.ts";
import type { UploadFolders } from "./upload_folders.ts";
import type { EarlierNaming, RemoteBase } from "./remote_folders.ts";
import { basename, posix } from "node:path";
import { type Delivery, live } from "../deliver.ts";
import { logger } from "../../log/logging.ts";

/** What an SSH method (scp, rsync) supplies to a batch. */
export interface SshMethod {
  readonly job: JobConfig;
  readonly session: SshSession;
  /** The remote form of `remote_base_path`. */
  readonly base: string;
  readonly context: FailureContext;
  readonly timeoutMs: number;
  /** Tells this daemon's upload folders apart (see `jobOwner`). */
  readonly owner: string;
  /**
   * The leftovers of the earlier naming of its upload folders (`hostJobOwner`): swept with its
   * own (see `EarlierNaming`; `null`: none, the same naming).
   */
  readonly earlier: EarlierNaming | null;
  /** The destination folders in use by this transport's batches. */
  readonly uploadFolders: UploadFolders;
  /**
   * The upload program checks every copy it writes against what it read
   * from the source (rsync's whole-file checksum), so a copy of a call that
   * succeeded needs no SHA-256 of its own.
   */
  readonly uploadVerifiesCopies: boolean;
  /**
   * The upload continues an earlier copy in the upload folder (rsync
   * `--append-verify`): interrupted copies are kept for
   * `resume_partial_hours` and continued (see `take_earlier_copy`).
   */
  readonly resumesCopies: boolean;
  /**
   * Destinations whose growing files' parts were sent into kept copies this
   * run (see `Transport.sendPart`): a batch with one of them does not go in
   * one call, which would send the file anew beside its kept copy instead of
   * continuing it (the copy would stay at the destination).
   */
  readonly partsSent: Set<string>;
  /**
   * Most files a batch may have to go in one call (see `batch.ts`): any
   * number, 1 where the remote host has no `tar`, 0 where it lacks what
   * receiving a file needs (learnt by the first try), or where every file
   * must go by the upload program (rsync with `rsync_options`).
   */
  oneCallFiles: number;
  /**
   * What batches may do with the base path: once files arrived there, one that is gone is not
   * made again, nor one where a disk was mounted written to (see `RemoteBase`).
   */
  readonly remoteBase: RemoteBase;
  /**
   * Upload folders that batches left behind with copies not kept to be
   * continued (a stop interrupted them): removed when the transport closes,
   * since no later batch may come into their folder to sweep them.
   */
  readonly uploadsLeft: Set<string>;
  /**
   * With `remote_sync`: final paths of copies renamed into place whose flush after the renames
   * failed; see `FinishContext.unflushed` in `finish.ts`.
   */
  readonly unflushed: Set<string>;
  /** The upload calls of a batch: each group goes into one upload folder. */
  uploadCalls(deliveries: SshDelivery[]): SshDelivery[][];
  /**
   * Copy the sources of `group` into `folder` (their upload folder) with one
   * command, each copy named after its destination, with the source's mtime
   * and permission bits. Throws when the command fails.
   */
  upload(group: SshDelivery[], folder: string, signal: AbortSignal): Promise<void>;
  /**
   * The deliveries of `group` whose failure the failed upload call reported,
   * when every error it reported names a file of `group`; `null` when that
   * cannot be told (the whole group fails).
   */
  failedInCall(error: CommandError, group: SshDelivery[]): Set<SshDelivery> | null;
  describeTarget(destination: string): string;
}

/** One file of an SSH batch. */
export interface SshDelivery extends Delivery {
  /** Whether it took part in the upload (its copy, if any, is in an upload folder). */
  attempted: boolean;
  /** Whether `error` was reported by the upload itself (it may mean a full disk). */
  uploadFailed: boolean;
  /**
   * The upload call that carried this copy failed, but named other files
   * only: the copy is then checked by size and SHA-256 whatever
   * `verify_transfer` says, and this is its error if it does not match.
   */
  callFailure: TransferError | null;
  /** SHA-256 of the source, computed while the upload runs. */
  sourceSha256: Promise<string> | null;
  /**
   * The upload program verified the copy it wrote against what it read from
   * the source and reported success for it (rsync's whole-file checksum).
   */
  verifiedByUpload: boolean;
  /** Bytes of an earlier copy of this file moved into the upload folder to be continued (0: none). */
  resumedFrom: number;
  /** A flush while the batch uploaded failed: its copy may have lost pages, so none is kept. */
  notWrittenOut?: boolean;
}

/** The SSH record of `delivery`. */
export function sshDelivery(delivery: Delivery): SshDelivery {
  return {
    ...delivery,
    attempted: false,
    uploadFailed: false,
    callFailure: null,
    sourceSha256: null,
    verifiedByUpload: false,
    resumedFrom: 0,
  };
}

/**
 * Whether the copy of `delivery` is named otherwise than its source (a new file under a name sent
 * before, placed beside the earlier one: `flat~2.fits`). scp and rsync name what they upload into
 * a folder after the source, so such a copy goes in a call of its own, to its own path.
 */
export function renamedOnUpload(delivery: SshDelivery): boolean {
  return posix.basename(delivery.tempPath) !== basename(delivery.item.source);
}

/**
 * The deliveries that have not failed, by the upload folder their copies go to; one renamed on
 * upload (see {@linkcode renamedOnUpload}) alone.
 */
export function byUploadFolder(deliveries: SshDelivery[]): SshDelivery[][] {
  const groups = new Map<string, SshDelivery[]>();
  const alone: SshDelivery[][] = [];
  for (const delivery of live(deliveries)) {
    if (renamedOnUpload(delivery)) {
      alone.push([delivery]);
      continue;
    }
    const folder = posix.dirname(delivery.tempPath);
    const group = groups.get(folder);
    if (group) group.push(delivery);
    else groups.set(folder, [delivery]);
  }
  return [...groups.values(), ...alone];
}

/**
 * Say the copies `deliveries` continue (`resumedFrom` above 0): a growing file's copy goes on with
 * what it gained since its last part (`part`: this batch sends parts, said at DEBUG, as they go
 * every few seconds), any other as a copy cut short resumed (INFO; several, after a crash: each
 * at DEBUG and one INFO line for them all).
 */
export function sayContinued(method: SshMethod, deliveries: SshDelivery[], part: boolean): void {
  const log = logger("transfer");
  const job = method.job.name;
  const continued = deliveries.filter((delivery) => delivery.resumedFrom > 0);
  const cut = part ? [] : continued.filter((d) => !method.partsSent.has(d.item.destination));
  for (const delivery of continued) {
    const { item, resumedFrom: from } = delivery;
    const said = { job, source: item.source, from, size: item.size };
    if (cut.includes(delivery)) {
      log[cut.length > 1 ? "debug" : "info"]("Resuming {source} at byte {from} of {size}", said);
    } else {
      log[part ? "debug" : "info"](
        "Sending what the growing file {source} gained since its last part: bytes {from} to {size}",
        said,
      );
    }
  }
  if (cut.length > 1) {
    const bytes = cut.reduce((sum, delivery) => sum + delivery.resumedFrom, 0);
    const said = { job, count: cut.length, bytes };
    log.info("Continuing {count} cut-short copies ({bytes} bytes already there)", said);
  }
}
