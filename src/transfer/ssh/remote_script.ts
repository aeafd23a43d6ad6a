/**
 * The remote halves of the SSH transports: POSIX `sh` scripts kept as real
 * files in `ssh/remote/` (embedded in the program as text, like the service
 * templates), each run with one ssh call as `sh -s` reading the script on
 * stdin, so the login shell only ever sees those fixed words.
 *
 * A script is: a line setting a fresh random marker, `remote/prologue.sh`
 * (shared helpers), the script's file (functions only), then generated lines
 * that call those functions with the batch's data, every file name a
 * word quoted for a POSIX shell ({@linkcode posixWord}). Results come back as lines
 * `MARKER WORD DETAIL...`; lines without the marker are ignored, so neither a
 * file name nor the login shell's output can pass for a result.
 *
 * @module
 */
import diskSpaceScript from "./remote/disk_space.sh" with { type: "text" };
import finishScript from "./remote/finish.sh" with { type: "text" };
import makeFoldersScript from "./remote/make_folders.sh" with { type: "text" };
import prologue from "./remote/prologue.sh" with { type: "text" };
import probeScript from "./remote/probe.sh" with { type: "text" };
import receiveScript from "./remote/receive.sh" with { type: "text" };
import sizesScript from "./remote/sizes.sh" with { type: "text" };
import { posixWord } from "../../shell_words.ts";

/** The script files after the prologue, by name. */
const SCRIPTS = {
  "make_folders": makeFoldersScript,
  "finish": finishScript,
  "receive": receiveScript,
  "probe": probeScript,
  "sizes": sizesScript,
  "disk_space": diskSpaceScript,
} as const;

/** The name of a script in `ssh/remote/`. */
export type ScriptName = keyof typeof SCRIPTS;

/** One word of a generated call: text is quoted, numbers are written as they are. */
export type Word = string | number;

/** One result line: its word and the rest of the line. */
export interface ResultLine {
  word: string;
  detail: string;
}

/** A script ready to send, with the marker its results carry. */
export interface RemoteScript {
  text: string;
  marker: string;
}

/** A fresh random marker (letters and digits only). */
export function newMarker(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return `ITX${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** One generated line calling `name` with `words`. */
export function call(name: string, ...words: Word[]): string {
  return [name, ...words.map(quoteWord)].join(" ");
}

/**
 * The script `name` (`null`: the prologue's helpers only; a list: those
 * scripts in order) followed by the generated `lines` (see
 * {@linkcode call}); it ends with `exit 0`.
 */
export function buildScript(name: ScriptName | ScriptName[] | null, lines: string[]): RemoteScript {
  const marker = newMarker();
  const body = name === null ? [] : [name].flat().map((one) => SCRIPTS[one]);
  const text = [`marker=${marker}`, prologue, ...body, ...lines, "exit 0", ""].join("\n");
  return { text, marker };
}

/** The result lines of `stdout` that carry `marker`, in order. */
export function parseResults(stdout: string, marker: string): ResultLine[] {
  const results: ResultLine[] = [];
  for (const line of stdout.split("\n")) {
    const match = line.match(/^(\S+) ([a-z][a-z-]*)(?: (.*))?$/);
    if (match && match[1] === marker) results.push({ word: match[2], detail: match[3] ?? "" });
  }
  return results;
}

/** Result lines of the form `WORD INDEX [DETAIL]`, by index: the last one per index wins. */
export function resultsByIndex(results: ResultLine[]): Map<number, ResultLine> {
  const byIndex = new Map<number, ResultLine>();
  for (const { word, detail } of results) {
    const match = detail.match(/^(\d+)(?: (.*))?$/);
    if (match) byIndex.set(Number(match[1]), { word, detail: (match[2] ?? "").trim() });
  }
  return byIndex;
}

/** The text of every script file, by file name (for checks such as shellcheck). */
export function scriptFiles(): Record<string, string> {
  const files: Record<string, string> = { "prologue.sh": prologue };
  for (const [name, text] of Object.entries(SCRIPTS)) files[`${name}.sh`] = text;
  return files;
}

function quoteWord(word: Word): string {
  if (typeof word === "number") {
    if (!Number.isSafeInteger(word) || word < 0) throw new Error(`Cannot pass ${word} to a script`);
    return String(word);
  }
  return posixWord(word);
}
