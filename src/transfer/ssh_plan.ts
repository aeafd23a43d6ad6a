/**
 * One file of an SSH batch on its way: where it goes and what happened so
 * far, shared by the SSH transport and its finishing step.
 *
 * @module
 */
import { posix } from "node:path";
import type { TransferError } from "../errors.ts";
import type { SourceInfo } from "./source_open.ts";
import type { TransferItem } from "./transport.ts";

/** One item on its way. */
export interface Plan {
  index: number;
  item: TransferItem;
  /** Remote final path and temporary path (in the batch's upload folder). */
  finalPath: string;
  tempPath: string;
  /** Set once the item has failed; it then takes no further part. */
  error: TransferError | null;
  /** Whether `error` was reported by the upload itself (it may mean a full disk). */
  uploadFailed: boolean;
  /**
   * The upload call that carried this copy failed, but named other files
   * only: the copy is then checked by size and SHA-256 whatever
   * `verify_transfer` says, and this is its error if it does not match.
   */
  callFailure: TransferError | null;
  /** What the source looked like when checked (mode, times), for the copy. */
  source: SourceInfo | null;
  /** SHA-256 of the source, when checksum verification is on. */
  sha256: Promise<string> | null;
  /** SHA-256 of the copy, when it was hashed while being written. */
  remoteSha256: string | null;
}

/** Plans that have not failed. */
export function live(plans: Plan[]): Plan[] {
  return plans.filter((plan) => plan.error === null);
}

/** The plans that have not failed, by the remote folder their copies go to. */
export function byTempFolder(plans: Plan[]): Plan[][] {
  const groups = new Map<string, Plan[]>();
  for (const plan of live(plans)) {
    const folder = posix.dirname(plan.tempPath);
    const group = groups.get(folder);
    if (group) group.push(plan);
    else groups.set(folder, [plan]);
  }
  return [...groups.values()];
}
