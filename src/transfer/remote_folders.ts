/**
 * The remote script that prepares a batch's folders before an SSH upload:
 * each destination folder is created below the base path without going
 * through a symbolic link, this daemon's leftover upload folders are swept
 * out of it where asked, and the batch's own upload folder is created inside
 * it exclusively (`mkdir` without `-p`, mode 700: it fails if the name
 * exists, a planted link included, and nobody else can put anything in it).
 *
 * @module
 */
import { posix } from "node:path";
import { prelude } from "./remote_verify.ts";
import { shellQuote } from "./ssh.ts";
import { TEMP_SUFFIX } from "./temp_name.ts";

/** One destination folder of a batch. */
export interface UploadFolderSpec {
  /** The destination folder (inside the base path, or the base path itself). */
  folder: string;
  /** The batch's upload folder inside it, created exclusively. */
  upload: string;
  /**
   * Remove the entries of `folder` whose names start with this prefix and end
   * with the temporary suffix (leftover upload folders) before creating
   * `upload`; `null` to leave them.
   */
  sweepPrefix: string | null;
}

/**
 * A script that creates `base` (with parents; it may be or go through a
 * link), then for each spec the folders from `base` down to `folder` one by
 * one, then the upload folder. A folder below `base` that is a symbolic link
 * is reported as `L <index>` and nothing is created through it; other
 * failures as `F <index> <message>`. `probe` lines (such as `RECEIVER_PROBE`)
 * run at the end.
 *
 * @throws {Error} when a folder is not inside `base`
 */
export function buildMkdirScript(
  base: string,
  specs: UploadFolderSpec[],
  marker: string,
  probe: string[] = [],
): string {
  const lines = [
    ...prelude(marker),
    // b INDEX BASE: the base path, with parents.
    `b() { [ -d "$2" ] && return 0; e=$(mkdir -p -- "$2" 2>&1) && return 0; fail F "$1" "$e"; return 1; }`,
    // k INDEX FOLDER: a real folder below the base (created if missing; a concurrent mkdir is fine).
    "k() {",
    `  [ -L "$2" ] && { say L "$1"; return 1; }`,
    `  [ -d "$2" ] && return 0`,
    `  [ -e "$2" ] && { fail F "$1" "$2: Not a directory"; return 1; }`,
    `  e=$(mkdir -- "$2" 2>&1) && return 0`,
    `  [ -d "$2" ] && ! [ -L "$2" ] && return 0`,
    `  fail F "$1" "$e"; return 1`,
    "}",
    // w PREFIX FOLDER: remove leftover upload folders (the prefix holds no special characters).
    "w() {",
    "  set +f",
    `  for d in "$2"/$1*${TEMP_SUFFIX}; do`,
    `    if [ -e "$d" ] || [ -L "$d" ]; then rm -rf -- "$d"; fi`,
    "  done",
    "  set -f",
    "}",
    // u INDEX UPLOAD: the batch's own upload folder, exclusively.
    `u() { e=$(mkdir -m 700 -- "$2" 2>&1) || fail F "$1" "$e"; }`,
  ];
  specs.forEach((spec, index) => {
    const steps = [`b ${index} ${shellQuote(base)}`];
    for (const folder of foldersBelow(base, spec.folder)) {
      steps.push(`k ${index} ${shellQuote(folder)}`);
    }
    const make = `u ${index} ${shellQuote(spec.upload)}`;
    if (spec.sweepPrefix !== null) {
      if (!/^[A-Za-z0-9._-]+$/.test(spec.sweepPrefix)) {
        throw new Error(`Cannot sweep with prefix ${JSON.stringify(spec.sweepPrefix)}`);
      }
      steps.push(`{ w ${spec.sweepPrefix} ${shellQuote(spec.folder)}; ${make}; }`);
    } else {
      steps.push(make);
    }
    lines.push(steps.join(" && "));
  });
  lines.push(...probe, "exit 0", "");
  return lines.join("\n");
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
