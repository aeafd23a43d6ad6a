/**
 * YAML-level problems of a config file: syntax errors with the line to report
 * them on and the parser's reason with a hint; aliases that cannot be
 * expanded (no anchor, or an "alias bomb" that would expand without bound).
 *
 * @module
 */
import {
  type Alias,
  type Document,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  type LineCounter,
  type Node,
  visit,
} from "yaml";

/** Most alias expansions a config file may need (yaml's own resource-exhaustion guard). */
export const MAX_ALIAS_COUNT = 100;

/** The line to report a YAML syntax error on. */
export function syntaxErrorLine(
  doc: Document,
  counter: LineCounter,
  offset: number,
  code: string,
): number {
  // An unclosed quote is detected at the end of the file; point at where the quote opened.
  if (code === "MISSING_CHAR") {
    let start: number | undefined;
    const visit = (node: unknown): void => {
      if (isMap(node)) node.items.forEach((p) => (visit(p.key), visit(p.value)));
      else if (isSeq(node)) node.items.forEach(visit);
      else if (isScalar(node) && node.range && node.range[0] < offset && node.range[1] >= offset) {
        if (node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE") start = node.range[0];
      }
    };
    visit(doc.contents);
    if (start !== undefined) return counter.linePos(start).line;
  }
  return counter.linePos(offset).line;
}

/**
 * The YAML parser's reason, with a hint for the common cases; a duplicate key
 * is named, with the line where it first appears.
 */
export function syntaxReason(
  error: { code: string; message: string; pos: [number, number] },
  doc: Document,
  counter: LineCounter,
): string {
  if (error.code === "DUPLICATE_KEY") {
    const duplicate = findDuplicateKey(doc, error.pos[0]);
    if (duplicate) {
      return `duplicate key ${JSON.stringify(duplicate.key)} (first on line ` +
        `${counter.linePos(duplicate.firstOffset).line}); each key may appear only once in the ` +
        "same mapping: remove one of them";
    }
  }
  const hints: Record<string, string> = {
    MISSING_CHAR: "close the quote on the same line",
    TAB_AS_INDENT: "indent with spaces",
    DUPLICATE_KEY: "each key may appear only once in the same mapping",
    BAD_INDENT: "align keys of the same level with the same number of spaces",
    BLOCK_AS_IMPLICIT_KEY: "check the indentation: keys of the same level start in the same column",
    MULTILINE_IMPLICIT_KEY: "check the indentation and that every key ends with a colon",
  };
  const reason = `YAML syntax error: ${error.message}`;
  return hints[error.code] ? `${reason} (${hints[error.code]})` : reason;
}

/** The key that starts at `offset`, and where the same key first appears in its mapping. */
function findDuplicateKey(
  doc: Document,
  offset: number,
): { key: string; firstOffset: number } | undefined {
  let found: { key: string; firstOffset: number } | undefined;
  visit(doc, {
    Map(_, map) {
      const index = map.items.findIndex((p) => isScalar(p.key) && p.key.range?.[0] === offset);
      if (index < 0) return;
      const key = (map.items[index].key as { value: unknown }).value;
      const first = map.items.find((p) => isScalar(p.key) && p.key.value === key);
      const firstOffset = (first?.key as Node | undefined)?.range?.[0] ?? offset;
      found = { key: String(key), firstOffset };
      return visit.BREAK;
    },
  });
  return found;
}

/** The document as plain values, or the line and reason why its aliases cannot be expanded. */
export function plainValue(
  doc: Document,
  counter: LineCounter,
): { ok: true; value: unknown } | { ok: false; line: number; reason: string } {
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (error) {
    if (!(error instanceof ReferenceError)) throw error;
    const aliases: Alias[] = [];
    visit(doc, { Alias: (_, alias) => void aliases.push(alias) });
    const lineOf = (node: Node) => counter.linePos(node.range?.[0] ?? 0).line;
    const unresolved = aliases.find((alias) => !alias.resolve(doc));
    if (unresolved) {
      return {
        ok: false,
        line: lineOf(unresolved),
        reason: `YAML alias *${unresolved.source} refers to no anchor: define ` +
          `&${unresolved.source} on a value before it, or write the value out`,
      };
    }
    // An alias bomb: point at the alias that expands the most.
    const sizes = new Map<Node, number>();
    let worst: { alias: Alias; size: number } | undefined;
    for (const alias of aliases) {
      const size = expandedSize(doc, alias, sizes, new Set());
      if (!worst || size > worst.size) worst = { alias, size };
    }
    return {
      ok: false,
      line: worst ? lineOf(worst.alias) : 1,
      reason: `YAML aliases expand too far` +
        (worst
          ? `: *${worst.alias.source} here stands for ${formatCount(worst.size)} values`
          : "") +
        ` (more than ${MAX_ALIAS_COUNT} expansions: an "alias bomb"); write the values out ` +
        "instead of nesting aliases",
    };
  }
}

/** How many nodes `node` stands for once every alias in it is expanded (capped, cycles cut). */
function expandedSize(
  doc: Document,
  node: unknown,
  sizes: Map<Node, number>,
  open: Set<unknown>,
): number {
  if (open.has(node)) return 1;
  const known = sizes.get(node as Node);
  if (known !== undefined) return known;
  open.add(node);
  let size = 1;
  if (isAlias(node)) {
    const target = node.resolve(doc);
    size = target ? expandedSize(doc, target, sizes, open) : 1;
  } else if (isCollection(node)) {
    for (const item of node.items) size += expandedSize(doc, item, sizes, open);
  } else if (isPair(node)) {
    size = expandedSize(doc, node.key, sizes, open) + expandedSize(doc, node.value, sizes, open);
  }
  open.delete(node);
  size = Math.min(size, Number.MAX_SAFE_INTEGER);
  sizes.set(node as Node, size);
  return size;
}

/** `59,049` */
function formatCount(n: number): string {
  return n.toLocaleString("en-US");
}
