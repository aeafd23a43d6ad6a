/**
 * "Did you mean …?" for a mistyped word: the closest known word by edit
 * distance, if it is close enough to be a likely typo.
 *
 * @module
 */

/**
 * The word in `known` closest to `word` (case, `-` and `_` ignored), if it is
 * close enough to be a likely typo.
 */
export function closestWord(word: string, known: readonly string[]): string | undefined {
  const normal = (s: string) => s.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(normal(word), normal(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  const limit = Math.max(2, Math.floor(word.length / 4));
  return bestDistance <= limit && bestDistance < word.length ? best : undefined;
}

/** Levenshtein distance between `a` and `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
    }
    previous = current;
  }
  return previous[b.length];
}
