/**
 * Preparing a batch's folders before an SSH upload, with one call of
 * `remote/make_folders.sh`: each destination folder is created below the base
 * path without going through a symbolic link, this daemon's leftover upload
 * folders are swept out of it where asked (keeping the copies that may still
 * be resumed), the batch's own upload folder is created inside it
 * exclusively (mode 700), and, where copies are resumed, each file's earlier
 * copy is moved into it (see `take_earlier_copy` in the script).
 *
 * @module
 */
import { posix } from "node:path";
import {
  buildScript,
  call,
  parseResults,
  type ResultLine,
  resultsByIndex,
} from "./remote_script.ts";
import type { SshSession } from "./connection.ts";
import {
  aboveRefusedReason,
  baseGoneReason,
  baseRefusedReason,
  danglingBaseReason,
} from "../base_folder.ts";
import { type Classification, classifyText, type FailureContext } from "../classify.ts";
import { TEMP_SUFFIX } from "../../layout/destination.ts";
import type { FactStore } from "../../config/file_systems.ts";

/** One destination folder of a batch. */
export interface FolderSpec {
  /** The destination folder (inside the base path, or the base path itself). */
  folder: string;
  /** Name of the batch's upload folder, created inside `folder`. */
  uploadName: string;
  /**
   * Remove the entries of `folder` whose names start with this prefix and end
   * with the temporary suffix (leftover upload folders) first; `null` to leave them.
   */
  sweepPrefix: string | null;
  /**
   * With a sweep: keep the files in leftover upload folders written at most this long ago, by
   * their own time or their folder's, whichever is later (rsync dates a copy as its source).
   */
  keepSeconds?: number;
  /**
   * With a sweep: the upload folders of the earlier naming swept too (`SshMethod.earlier`), those
   * nothing was written in for `idleSeconds` (`own`: all of them, renamed as its own first).
   */
  earlier?: EarlierNaming | null;
}

/**
 * The upload folders of the earlier naming (`hostJobOwner`): what they start with, swept once
 * nothing was written in them for `idleSeconds`; `own`: this install's (see `JobOwners`), renamed
 * as its own, then swept or continued so.
 */
export interface EarlierNaming {
  prefix: string;
  idleSeconds: number;
  own: boolean;
  /** With `own`: what the upload folders of the namings before that start with. */
  alsoPrefixes: string[];
}

/** The words of `sweep_upload_folders` for the earlier naming's upload folders. */
export function earlierSweep(earlier: EarlierNaming): (string | number)[] {
  if (earlier.own) return [earlier.prefix, "adopt", ...earlier.alsoPrefixes];
  return [earlier.prefix, Math.floor(earlier.idleSeconds)];
}

/** A file of the batch whose earlier copy, if this daemon left one, is continued. */
export interface EarlierCopySpec {
  /** The delivery's index, reported back with the copy's size. */
  item: number;
  /** Its destination folder. */
  folder: string;
  /** The batch's upload folder there (a name). */
  uploadName: string;
  /** The file's name. */
  name: string;
  /** The source's size: a longer copy is removed. */
  size: number;
  /** Names of upload folders other batches of this daemon are using there now. */
  active: string[];
  /** What this daemon's upload folder names start with. */
  prefix: string;
  /** Copies written longer ago than this (they and their upload folder) are removed. */
  keepSeconds: number;
}

/**
 * What went wrong with one folder (`base-gone`: the base path is gone and may not be made, or
 * is an empty folder where a disk or share was mounted when files arrived: `seen` says so;
 * `base-dangling`: the base path is a symbolic link to `target`, which is not there;
 * `inBase`: the folder that failed is made in the base path itself, the base path, a night
 * folder or an upload folder there: what every file of the job needs; `above`: the base path is
 * not there, and this folder above it, the nearest there, refused it).
 */
export type FolderFailure =
  | { kind: "link" }
  | { kind: "base-gone"; seen?: string }
  | { kind: "base-dangling"; target: string }
  | { kind: "failed"; message: string; inBase?: boolean; above?: string };

/**
 * What `make_folders` may do with the base path (`make` it; `keep`: files arrived there, so it
 * is not made again; `mounted`: and it was a mount point then), and whether it reports if the
 * base path is a mount point (`ask`). See {@linkcode RemoteBase}.
 */
export interface BaseRule {
  rule: "make" | "keep" | "mounted";
  ask: boolean;
}

/** What shows that a disk or share is not mounted on the base path (see `baseGoneReason`). */
export const UNMOUNTED_BASE =
  "an empty folder stands where files arrived on the disk mounted there";

/** The base path may be made; nothing is asked of it. */
export const MAKE_BASE: BaseRule = { rule: "make", ask: false };

/**
 * What batches may do with an SSH destination's base path, and what is known of it. Once files
 * arrived there it is not made again: a share that is not mounted leaves no folder. And when it
 * was a mount point (asked once a run, kept in the ledger as for a local destination), an empty
 * folder that is none now is a disk or share not mounted, where copies would fill the disk below:
 * nothing is written there until it is back. A folder that holds files is never taken for it (it
 * moved there for good: the next run's first batch learns that it is no mount point). Only the
 * first batch of a run, and a batch into an empty base path, run `df` for it.
 */
export class RemoteBase {
  readonly #facts: FactStore | null;
  readonly #key: string;
  /** Whether the base path was a mount point (`null`: not known). */
  #mounted: boolean | null;
  /** Whether a script of this run looked at it. */
  #asked = false;
  /** Files arrived in the base path before (see `Transport.deliveredBefore`). */
  filesArrived = false;

  /** `where`: the base path as the user reads it (host and path), the ledger's key for it. */
  constructor(facts: FactStore | null, where: string) {
    this.#facts = facts;
    this.#key = `arrived_mount_point ${where}`;
    const kept = facts?.meta(this.#key) ?? null;
    this.#mounted = kept === null ? null : kept === "1";
  }

  /** Whether the base path was a mount point when files arrived (as far as is known). */
  get wasMountPoint(): boolean {
    return this.#mounted === true;
  }

  /** The rule of the next script's `make_folders`. */
  get rule(): BaseRule {
    const rule = !this.filesArrived ? "make" : this.#mounted ? "mounted" : "keep";
    return { rule, ask: !this.#asked };
  }

  /** Learn from a script's results whether the base path is a mount point. */
  learn(results: ResultLine[]): void {
    const said = results.findLast((result) => result.word === "base-mount");
    if (results.length > 0) this.#asked = true;
    if (said === undefined) return;
    const mounted = said.detail === "1";
    if (mounted === this.#mounted) return;
    this.#mounted = mounted;
    try {
      this.#facts?.setMeta(this.#key, mounted ? "1" : "0");
    } catch {
      // The ledger says why it cannot be written; this run remembers it meanwhile.
    }
  }
}

/**
 * How to treat a folder `make_folders` could not make, and why, in the user's words where
 * something else than a folder has its name (`make_folders` says `FOLDER: Not a directory`), and
 * where the login may not write into the base path `base` (`inBase`): the words
 * `failureScope` (`errors.ts`) takes for the whole destination failing, not one file (where the
 * base path is not there, naming the folder `above` it that refused it). `what`: the folder that
 * could not be made, where it is not the file's (the upload folder inside it).
 */
export function folderFailedReason(
  { message, inBase, above }: { message: string; inBase?: boolean; above?: string },
  context: FailureContext,
  base: string,
): Classification & { what?: string } {
  // The file's folder is there; the hidden folder its upload goes into cannot be made in it.
  const holder = /cannot create directory '(.+)\/\.incoming-[^/']*'/.exec(message)?.[1];
  if (holder !== undefined) {
    return { ...classifyText(message, context), what: `its upload folder in ${holder}` };
  }
  if (inBase && /Permission denied|Operation not permitted/.test(message)) {
    const { host, fromTo } = context;
    return {
      kind: "retry-later",
      reason: above === undefined
        ? baseRefusedReason(host, base, fromTo)
        : aboveRefusedReason(host, base, above, fromTo),
    };
  }
  const blocker = /^(.+): Not a directory$/.exec(message)?.[1];
  if (blocker === undefined) return classifyText(message, context);
  return {
    kind: "retry",
    reason: `a file named ${posix.basename(blocker)} is in the way at ${blocker}, where a ` +
      "folder must be: rename or remove it there",
  };
}

/**
 * Why no file can go into the base path `base` where `make_folders` found it gone, or a symbolic
 * link to nothing (that of a job whose files arrived there, `remoteBase.filesArrived`, as a base
 * folder gone; `context.fromTo`: see `otherBase`).
 */
export function baseFailureReason(
  failure: Extract<FolderFailure, { kind: "base-gone" | "base-dangling" }>,
  { base, remoteBase, context }: {
    base: string;
    remoteBase: { filesArrived: boolean };
    context: { fromTo?: boolean };
  },
): string {
  return failure.kind === "base-gone"
    ? baseGoneReason(base, failure.seen)
    : danglingBaseReason(base, failure.target, remoteBase.filesArrived, context.fromTo, " there");
}

/**
 * The script lines that prepare `specs` below `base` (made too when it is not
 * there and `rule` allows: see {@linkcode BaseRule}).
 *
 * @throws {Error} when a folder is not inside `base`
 */
export function makeFoldersLines(
  base: string,
  specs: FolderSpec[],
  earlier: EarlierCopySpec[] = [],
  { rule, ask }: BaseRule = MAKE_BASE,
): string[] {
  const lines = specs.map((spec, index) => {
    const sweep = spec.sweepPrefix === null ? [] : [
      spec.sweepPrefix,
      TEMP_SUFFIX,
      Math.floor(spec.keepSeconds ?? 0),
      ...(spec.earlier ? earlierSweep(spec.earlier) : []),
    ];
    const below = foldersBelow(base, spec.folder);
    return `${call("make_folders", index, base, rule, ask ? 1 : 0, ...below)} && ` +
      call("make_upload_folder", index, spec.folder, spec.uploadName, ...sweep);
  });
  for (const copy of earlier) {
    lines.push(call(
      "take_earlier_copy",
      copy.item,
      copy.folder,
      copy.uploadName,
      copy.name,
      copy.size,
      copy.prefix,
      TEMP_SUFFIX,
      Math.floor(copy.keepSeconds),
      ...copy.active,
    ));
  }
  return lines;
}

/**
 * Prepare `specs` below `base` with one remote call (see
 * {@linkcode makeFoldersLines}; what it says of the base path goes to
 * `remoteBase`), and move the `earlier` copies into the upload folders.
 *
 * @returns the failures, by index in `specs`; the bytes of each earlier copy
 *   taken, by item
 * @throws {CommandError} when the call fails; `signal.reason` when aborted
 */
export async function makeFolders(
  session: SshSession,
  base: string,
  specs: FolderSpec[],
  options: { timeoutMs: number; signal: AbortSignal; remoteBase: RemoteBase },
  earlier: EarlierCopySpec[] = [],
): Promise<{ failures: Map<number, FolderFailure>; earlierCopies: Map<number, number> }> {
  const lines = makeFoldersLines(base, specs, earlier, options.remoteBase.rule);
  const script = buildScript("make_folders", lines);
  const stdout = await session.runScript(script.text, options);
  const results = parseResults(stdout, script.marker);
  options.remoteBase.learn(results);
  const failures = folderFailuresOf(results);
  const earlierCopies = new Map<number, number>();
  const taken = resultsByIndex(results.filter((result) => result.word === "earlier-copy"));
  for (const [item, { detail }] of taken) {
    if (/^\d+$/.test(detail)) earlierCopies.set(item, Number(detail));
  }
  return { failures, earlierCopies };
}

/** The failures the results of `make_folders` report, by index (with the folder that refused). */
export function folderFailuresOf(results: ResultLine[]): Map<number, FolderFailure> {
  const failures = new Map<number, FolderFailure>();
  const ofFolders = results.filter((result) => folderFailureOf(result) !== null);
  const above = resultsByIndex(results.filter((result) => result.word === "base-above"));
  for (const [index, result] of resultsByIndex(ofFolders)) {
    const failure = folderFailureOf(result);
    const refused = above.get(index)?.detail;
    if (failure?.kind === "failed" && refused) failures.set(index, { ...failure, above: refused });
    else if (failure) failures.set(index, failure);
  }
  return failures;
}

/** The failure a result line of `make_folders` reports (`null`: none). */
export function folderFailureOf({ word, detail }: ResultLine): FolderFailure | null {
  if (word === "folder-is-link") return { kind: "link" };
  if (word === "base-gone") {
    return detail === "unmounted"
      ? { kind: "base-gone", seen: UNMOUNTED_BASE }
      : { kind: "base-gone" };
  }
  if (word === "base-dangling") return { kind: "base-dangling", target: detail };
  if (word === "folder-failed") return { kind: "failed", message: detail };
  if (word === "base-refused") return { kind: "failed", message: detail, inBase: true };
  return null;
}

/** The folders from just below `base` down to `folder`, top first. */
function foldersBelow(base: string, folder: string): string[] {
  const rel = posix.relative(base, folder);
  if (rel === "") return [];
  if (rel === ".." || rel.startsWith("../") || posix.isAbsolute(rel)) {
    throw new Error(`Cannot place ${JSON.stringify(folder)}: not inside ${JSON.stringify(base)}`);
  }
  const out: string[] = [];
  let current = base;
  for (const part of rel.split("/")) {
    current = posix.join(current, part);
    out.push(current);
  }
  return out;
}
