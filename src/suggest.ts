/**
 * "Did you mean …?" for a mistyped word (a config key, a command): the closest
 * known word by edit distance (`fastest-levenshtein`), if it is close enough
 * to be a likely typo.
 *
 * @module
 */
import { distance } from "fastest-levenshtein";

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
