/**
 * Preparing a batch's folders before an SSH upload, with one call of
 * `remote/make_folders.sh`: each destination folder is created below the base
 * path without going through a symbolic link, this daemon's leftover upload
 * folders are swept out of it where asked, and the batch's own upload folder
 * is created inside it exclusively (mode 700).
 *
 * @module
 */
import { posix } from "node:path";
import { buildScript, call, parseResults, resultsByIndex } from "./remote_script.ts";
import type { SshSession } from "./ssh.ts";
import { TEMP_SUFFIX } from "./temp_name.ts";

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
}

/** What went wrong with one folder. */
export type FolderFailure =
  | { kind: "link" }
  | { kind: "failed"; message: string };

/**
 * The script lines that prepare `specs` below `base`.
 *
 * @throws {Error} when a folder is not inside `base`
 */
export function makeFoldersLines(base: string, specs: FolderSpec[]): string[] {
  return specs.map((spec, index) => {
    const sweep = spec.sweepPrefix === null ? [] : [spec.sweepPrefix, TEMP_SUFFIX];
    return `${call("make_folders", index, base, ...foldersBelow(base, spec.folder))} && ` +
      call("make_upload_folder", index, spec.folder, spec.uploadName, ...sweep);
  });
}

/**
 * Prepare `specs` below `base` with one remote call.
 *
 * @returns the failures, by index in `specs`
 * @throws {CommandError} when the call fails; `signal.reason` when aborted
 */
export async function makeFolders(
  session: SshSession,
  base: string,
  specs: FolderSpec[],
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<Map<number, FolderFailure>> {
  const script = buildScript("make_folders", makeFoldersLines(base, specs));
  const stdout = await session.runScript(script.text, options);
  const failures = new Map<number, FolderFailure>();
  for (const [index, { word, detail }] of resultsByIndex(parseResults(stdout, script.marker))) {
    if (word === "folder-is-link") failures.set(index, { kind: "link" });
    if (word === "folder-failed") failures.set(index, { kind: "failed", message: detail });
  }
  return failures;
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
