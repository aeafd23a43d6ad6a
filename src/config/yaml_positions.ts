/**
 * Where a key is written in a YAML document: the line a message points to.
 *
 * @module
 */
import { type Document, isMap, isScalar, isSeq, type LineCounter } from "yaml";

/** A key path such as `["jobs", 1, "retry_attempts"]`. */
export type Path = (string | number)[];

/**
 * 1-based line of the key at `path` (of the item, for a list index), or of
 * its nearest parent that is written in the document.
 */
export function lineOf(doc: Document, counter: LineCounter, path: Path): number {
  const lineOfNode = (node: unknown): number | undefined => {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? counter.linePos(range[0]).line : undefined;
  };
  let node: unknown = doc.contents;
  let line = lineOfNode(node) ?? 1;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(segment));
      if (!pair) return line;
      line = lineOfNode(pair.key) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && node.items[segment]) {
      node = node.items[segment];
      line = lineOfNode(node) ?? line;
    } else {
      return line;
    }
  }
  return line;
}

/** A mapping key as it appears in the parsed object (`~` becomes ""). */
function keyText(key: unknown): string {
  return isScalar(key) ? (key.value === null ? "" : String(key.value)) : String(key);
}
