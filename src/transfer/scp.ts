/**
 * The `scp` transport. Per batch, over one shared SSH connection:
 * 1. one ssh call creates, in every destination folder of the batch, this
 *    daemon's hidden upload folder (see `uploadFolderName`);
 * 2. one `scp` call per destination folder (up to three side by side for a
 *    folder of many files) uploads the sources, under their own names, into
 *    that upload folder: nothing ever appears under a final name, and no local
 *    staging is needed;
 * 3. one ssh call verifies each copy, renames it into the destination folder
 *    (see `remote_verify.ts`) and removes upload folders no other batch uses.
 *
 * scp runs in its default SFTP mode (OpenSSH 9+; `-O` is never passed), so the
 * remote side opens the paths as given and no remote shell sees file names.
 * Batching does not depend on connection sharing: where OpenSSH cannot share
 * connections (Windows), a batch still costs one connection per folder.
 *
 * @module
 */
import type { CommandError } from "../errors.ts";
import { byTempFolder, type Plan, SshTransport } from "./ssh_transport.ts";

/** Errors scp reports per file (it carries on with the other files). */
const PER_FILE_ERROR = /failed to upload|dest open|dest write|dest close|local open|local read/;

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
  readonly maxBatchFiles = 100;

  protected override readonly copiesGrowInPlace = true;
  protected override readonly streamsLargeFiles = true;

  /** A folder's files in up to {@linkcode PARALLEL_CALLS_PER_FOLDER} calls, each under the length limit. */
  protected override uploadCalls(plans: Plan[]): Plan[][] {
    return byTempFolder(plans).flatMap(splitForParallelCalls).flatMap(chunksBySourceLength);
  }

  /** One scp call of the sources of `group` into `folder`. */
  protected async copy(group: Plan[], folder: string, signal: AbortSignal): Promise<void> {
    const argv = await this.session.scpArgv(group.map((plan) => plan.item.source), `${folder}/`);
    await this.session.run(argv, { timeoutMs: this.timeoutMs, signal });
  }

  /** scp reports a file it could not send and goes on with the others. */
  protected someMayHaveArrived(error: CommandError, group: Plan[]): boolean {
    return group.length > 1 && PER_FILE_ERROR.test(error.run.stderr);
  }
}

/** Split `plans` so that each part's source paths stay under {@linkcode MAX_SOURCE_CHARS}. */
function chunksBySourceLength(plans: Plan[]): Plan[][] {
  const chunks: Plan[][] = [];
  let current: Plan[] = [];
  let chars = 0;
  for (const plan of plans) {
    const length = plan.item.source.length + 3;
    if (current.length > 0 && chars + length > MAX_SOURCE_CHARS) {
      chunks.push(current);
      current = [];
      chars = 0;
    }
    current.push(plan);
    chars += length;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Split one folder's plans into up to {@linkcode PARALLEL_CALLS_PER_FOLDER} parts of about equal count. */
function splitForParallelCalls(plans: Plan[]): Plan[][] {
  const parts = Math.max(
    1,
    Math.min(PARALLEL_CALLS_PER_FOLDER, Math.floor(plans.length / MIN_FILES_PER_CALL)),
  );
  return Array.from(
    { length: parts },
    (_, i) =>
      plans.slice(Math.floor(i * plans.length / parts), Math.floor((i + 1) * plans.length / parts)),
  );
}
