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
import { posix } from "node:path";
import type { CommandError } from "../errors.ts";
import { bandwidthShare, scpLimit } from "../config/bandwidth.ts";
import { byTempFolder, type Plan, SshTransport } from "./ssh_transport.ts";

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
  /** Not with a bandwidth limit: only scp (`-l`) keeps to it. */
  protected override readonly streamsLargeFiles: boolean = bandwidthShare(this.job) === null;

  /** A folder's files in up to {@linkcode PARALLEL_CALLS_PER_FOLDER} calls, each under the length limit. */
  protected override uploadCalls(plans: Plan[]): Plan[][] {
    const split = bandwidthShare(this.job) === null ? splitForParallelCalls : (p: Plan[]) => [p];
    return byTempFolder(plans).flatMap(split).flatMap(chunksBySourceLength);
  }

  /** One scp call of the sources of `group` into `folder`. */
  protected async copy(group: Plan[], folder: string, signal: AbortSignal): Promise<void> {
    const argv = await this.session.scpArgv(group.map((plan) => plan.item.source), `${folder}/`);
    const share = bandwidthShare(this.job);
    // One call at a time per folder then (see splitForParallelCalls), each with the share.
    if (share !== null) argv.splice(1, 0, "-l", scpLimit(share));
    await this.session.run(argv, { timeoutMs: this.timeoutMs, signal });
  }

  /**
   * scp reports each file it could not send and goes on with the others:
   * `failed to upload file SOURCE to FOLDER/`, after lines such as
   * `write remote "COPY": Failure`. Every line must name exactly one file of
   * `group` (names with characters scp escapes name none), or the whole call
   * counts as failed.
   */
  protected failedInCall(error: CommandError, group: Plan[]): Set<Plan> | null {
    if (error.run.code !== 1) return null;
    const named = new Set<Plan>();
    for (const raw of error.run.stderr.split(/\r?\n/)) {
      if (raw.trim() === "") continue;
      const plan = planNamedByScp(raw.replace(/^\S*scp: /, ""), group);
      if (plan === null) return null;
      named.add(plan);
    }
    return named.size > 0 ? named : null;
  }
}

/** The one plan of `group` an scp error line names, or `null`. */
function planNamedByScp(line: string, group: Plan[]): Plan | null {
  const upload = "failed to upload file ";
  const folder = ` to ${posix.dirname(group[0].tempPath)}/`;
  let found: Plan[];
  if (line.startsWith(upload) && line.endsWith(folder)) {
    const source = line.slice(upload.length, line.length - folder.length);
    found = group.filter((plan) => plan.item.source === source);
  } else {
    const match = line.match(/^[a-z][a-z ]* (remote|local) "/);
    if (match === null) return null;
    const rest = line.slice(match[0].length);
    found = group.filter((plan) => {
      const path = match[1] === "remote" ? plan.tempPath : plan.item.source;
      const after = rest.slice(path.length + 1);
      return rest.startsWith(`${path}"`) && (after === "" || after.startsWith(": "));
    });
  }
  return found.length === 1 ? found[0] : null;
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
