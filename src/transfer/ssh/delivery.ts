/**
 * One file of an SSH batch on its way: what the SSH steps record beyond the
 * shared {@linkcode Delivery}.
 *
 * @module
 */
import { posix } from "node:path";
import type { TransferError } from "../../errors.ts";
import { type Delivery, live } from "../deliver.ts";

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

/** The deliveries that have not failed, by the upload folder their copies go to. */
export function byUploadFolder(deliveries: SshDelivery[]): SshDelivery[][] {
  const groups = new Map<string, SshDelivery[]>();
  for (const delivery of live(deliveries)) {
    const folder = posix.dirname(delivery.tempPath);
    const group = groups.get(folder);
    if (group) group.push(delivery);
    else groups.set(folder, [delivery]);
  }
  return [...groups.values()];
}
