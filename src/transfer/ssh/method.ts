/**
 * What an SSH method (scp, rsync) supplies to the batches of `ssh/batch.ts`:
 * the session, remote base, limits, upload folders, and its upload call.
 *
 * @module
 */
import type { JobConfig } from "../../config/types.ts";
import type { CommandError } from "../../errors.ts";
import type { FailureContext } from "../classify.ts";
import type { SshDelivery } from "./delivery.ts";
import type { SshSession } from "./connection.ts";
import type { UploadFolders } from "./upload_folders.ts";

/** What an SSH method (scp, rsync) supplies to a batch. */
export interface SshMethod {
  readonly job: JobConfig;
  readonly session: SshSession;
  /** The remote form of `remote_base_path`. */
  readonly base: string;
  readonly context: FailureContext;
  readonly timeoutMs: number;
  /** Tells this daemon's upload folders apart. */
  readonly owner: string;
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
   * Most files a batch may have to go in one call (see `batch.ts`): any
   * number, 1 where the remote host has no `tar`, 0 where it lacks what
   * receiving a file needs. Learnt by the first try.
   */
  oneCallFiles: number;
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
