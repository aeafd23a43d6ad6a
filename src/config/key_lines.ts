/**
 * Where a key is written in a loaded config file: the line a message about it
 * points to, remembered from the load (the daemon loads its config in a worker,
 * `config/load_in_worker.ts`, and holds neither the YAML reader nor the schema).
 * And "did you mean ...?" for a mistyped word (a config key, a command): the
 * closest known word by edit distance (`fastest-levenshtein`), if it is close
 * enough to be a likely typo.
 *
 * @module
 */
import { distance } from "fastest-levenshtein";
import type { Config } from "./types.ts";

/** A key path such as `["jobs", 1, "retry_attempts"]`. */
export type Path = (string | number)[];

/**
 * Where the keys of a loaded config file are written, by path (`JSON.stringify`
 * of `["jobs", 0, "schedules", 1, "command"]`): what `loadConfig` found, so a
 * later message can point at a line without reading the file again.
 */
export type KeyLines = Readonly<Record<string, number>>;

/** The key lines of each config file loaded, by its absolute path: the last load wins. */
const loadedKeyLines = new Map<string, KeyLines>();

/** Remember where the keys of config `file` are, as it was loaded (see {@linkcode KeyLines}). */
export function rememberKeyLines(file: string, lines: KeyLines): void {
  loadedKeyLines.set(file, lines);
}

/** The key lines remembered of config `file`, if it was loaded. */
export function keyLinesOf(file: string): KeyLines | undefined {
  return loadedKeyLines.get(file);
}

/**
 * The line of `keyPath` (such as `["on_transfer"]`) of the job at `jobIndex`
 * of the config `file` as it was loaded (for a message about a value that was
 * valid YAML, such as a hook's program): in the job's entry of `jobs:` where it
 * is written there (a key merged in with `<<: *shared` counts, at its line in
 * the anchored mapping), else at the top level; the nearest written parent for
 * a path written only in part; `null` when the file was not loaded or the key
 * is not written.
 */
export function jobKeyLine(file: string, jobIndex: number, keyPath: Path): number | null {
  const lines = loadedKeyLines.get(file);
  if (lines === undefined) return null;
  const at = (path: Path): number | undefined => lines[JSON.stringify(path)];
  const nearest = (path: Path): number | null => {
    for (let n = path.length; n > 0; n--) {
      const line = at(path.slice(0, n));
      if (line !== undefined) return line;
    }
    return null;
  };
  const [key] = keyPath;
  if (at(["jobs", jobIndex, key]) !== undefined) return nearest(["jobs", jobIndex, ...keyPath]);
  return at([key]) !== undefined ? nearest(keyPath) : null;
}

/**
 * Where a message about a key points: `FILE:LINE` of `keyPath` in the job at
 * `jobIndex` (see {@linkcode jobKeyLine}; -1: a top-level key), or `FILE`
 * when the line is not known.
 */
export function keyPlace(file: string, jobIndex: number, keyPath: Path): string {
  const line = jobKeyLine(file, jobIndex, keyPath);
  return line === null ? file : `${file}:${line}`;
}

/** `FILE:LINE: KEY of job NAME`, for the job at `index` of `config`. */
export function jobKeyPlace(config: Config, index: number, key: string): string {
  return `${keyPlace(config.file, index, [key])}: ${key} of job ${config.jobs[index].name}`;
}

/** Case, `-` and `_` do not count as differences: `Watch-Path` is `watch_path`. */
function normal(word: string): string {
  return word.toLowerCase().replaceAll("-", "_");
}

/**
 * The word in `known` closest to `word`, if at most a quarter of `word`'s
 * letters (at least 2) are changed and `word` is not changed altogether;
 * the first of equally close words wins.
 */
export function closestWord(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const edits = distance(normal(word), normal(candidate));
    if (edits < bestDistance) [best, bestDistance] = [candidate, edits];
  }
  const limit = Math.max(2, Math.floor(word.length / 4));
  return bestDistance <= limit && bestDistance < word.length ? best : undefined;
}
