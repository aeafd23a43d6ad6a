/**
 * What is wrong with a config file's text before its keys are read, each
 * with its line: YAML syntax, duplicate keys, aliases with no anchor,
 * aliases that expand too far, and merge keys (`<<`) given something that is
 * not a mapping. `config/load.ts` reads a file through these (a TOML file:
 * `config/toml_hint.ts`).
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

/**
 * The line and reason of a `%YAML` directive that names another version than 1.2, or `null`.
 * YAML 1.1 (`%YAML 1.1`) reads `yes`/`no`/`on`/`off` as booleans, `010` as octal and `1:30` as
 * 90: values the reference refuses would be taken silently (`verify_transfer: off`: no check).
 */
export function otherYamlVersion(text: string): { line: number; reason: string } | null {
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    // Directives come before the document's `---`; past it, a `%` line is the document's.
    if (/^---(\s|$)/.test(line)) return null;
    const directive = /^%YAML(?:[ \t]+(\S*))?/.exec(line);
    if (directive === null) continue;
    const version = directive[1] ?? "";
    if (version === "1.2") continue;
    const older = version === "1.1" || version === "1.0"
      ? `, not as YAML ${version}, which would read yes/no/on/off as true or false ` +
        "(verify_transfer: off as no verification), 010 as 8 and 1:30 as 90"
      : "";
    return {
      line: index + 1,
      reason: `${version === "" ? "%YAML" : `%YAML ${version}`} directive: the config file is ` +
        `read as YAML 1.2${older}; remove this line`,
    };
  }
  return null;
}

/** The line to report a YAML syntax error on (`text`: the file's text). */
export function syntaxErrorLine(
  doc: Document,
  counter: LineCounter,
  offset: number,
  code: string,
  text = "",
): number {
  // A key indented by mistake under a value ("a: 1\n  b: 2") is read as the value going on:
  // point at the indented key, not at the value it seems to continue.
  if (code === "BLOCK_AS_IMPLICIT_KEY" || code === "MULTILINE_IMPLICIT_KEY") {
    const lines = text.split("\n");
    const first = counter.linePos(offset).line;
    const indent = (line: string) => line.length - line.trimStart().length;
    for (let i = first; i < lines.length && lines[first - 1] !== undefined; i++) {
      if (lines[i].trim() === "" || lines[i].trimStart().startsWith("#")) continue;
      if (indent(lines[i]) <= indent(lines[first - 1])) break;
      if (/^\s*[^\s#][^:#]*:(\s|$)/.test(lines[i])) return i + 1;
    }
  }
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
  // A [ or { list not closed is noticed at the next key; point at where it opened.
  const flow = code === "BAD_INDENT" ? openFlowCollection(doc, offset) : undefined;
  if (flow !== undefined) return counter.linePos(flow).line;
  const line = counter.linePos(offset).line;
  if (code !== "BAD_INDENT") return line;
  // Noticed at a comment or blank line: the key it is about comes after it.
  const lines = text.split("\n");
  let next = line;
  while (next < lines.length && /^\s*(#.*)?$/.test(lines[next - 1])) next++;
  return next;
}

/** Where the innermost `[` or `{` list that starts before `offset` and runs past it opens. */
function openFlowCollection(doc: Document, offset: number): number | undefined {
  let start: number | undefined;
  const visit = (node: unknown): void => {
    if (!isMap(node) && !isSeq(node)) return;
    const range = node.range;
    if (node.flow && range && range[0] < offset && range[2] >= offset) start = range[0];
    if (isMap(node)) node.items.forEach((p) => (visit(p.key), visit(p.value)));
    else node.items.forEach(visit);
  };
  visit(doc.contents);
  return start;
}

/**
 * The YAML parser's reason, with a hint for the common cases; a duplicate key
 * is named, with the line where it first appears.
 */
export function syntaxReason(
  error: { code: string; message: string; pos: [number, number] },
  doc: Document,
  counter: LineCounter,
  lineText = "",
): string {
  if (error.code === "DUPLICATE_KEY") {
    const duplicate = findDuplicateKey(doc, error.pos[0]);
    if (duplicate) {
      return `duplicate key ${JSON.stringify(duplicate.key)} (first on line ` +
        `${counter.linePos(duplicate.firstOffset).line}); each key may appear only once in the ` +
        "same mapping: remove one of them";
    }
  }
  if (error.code === "MULTIPLE_DOCS") {
    return 'the file holds more than one YAML document (a "---" line starts another): keep one ' +
      "config in the file, and give several jobs as a jobs: list";
  }
  const lineKey = /^\s*(?:- )?([A-Za-z_]\w*):/.exec(lineText)?.[1];
  const hints: Record<string, string> = {
    MISSING_CHAR: /quote/i.test(error.message)
      ? "close the quote on the same line"
      : /sequence item/i.test(error.message)
      ? "check the indentation: the keys of one list item line up under its first key"
      : "check the brackets, commas and colons of this line",
    TAB_AS_INDENT: lineKey ? `indent ${lineKey} with spaces, not a tab` : "indent with spaces",
    DUPLICATE_KEY: "each key may appear only once in the same mapping",
    BAD_INDENT: "align keys of the same level with the same number of spaces",
    BLOCK_AS_IMPLICIT_KEY: "check the indentation: keys of the same level start in the same column",
    MULTILINE_IMPLICIT_KEY: "check the indentation and that every key ends with a colon",
    BAD_SCALAR_START: "put the value in quotes, e.g. '%USERPROFILE%\\data' or \"@night\"",
    BAD_DQ_ESCAPE: "in double quotes a backslash starts an escape: write a Windows path in " +
      "single quotes ('C:\\Users\\obs\\data') or with forward slashes (C:/Users/obs/data)",
  };
  if (error.code === "UNEXPECTED_TOKEN" && /at node end/.test(error.message)) {
    hints.UNEXPECTED_TOKEN =
      "a value ends with its closing quote or bracket, and only a # comment " +
      'may follow it on its line; several values are a list: file_patterns: ["*.fits", "*.fit"]';
  }
  const reason = `YAML syntax error: ${error.message}`;
  const mistake = lineMistake(lineText);
  if (mistake !== undefined) return `${reason} (${mistake})`;
  const closing = error.message.match(/end with a ([\]}])/)?.[1];
  if (error.code === "BAD_INDENT" && closing !== undefined) {
    return `${reason} (a ${closing === "]" ? "[" : "{"} list opened here is not closed: end it ` +
      `with ${closing}, on this line or on a later one indented more than its key)`;
  }
  return hints[error.code] ? `${reason} (${hints[error.code]})` : reason;
}

/**
 * What the line a syntax error is reported on most likely got wrong, from its text alone (text
 * pasted from elsewhere: a non-breaking space, TOML's `key = value`; a colon with no space after
 * it); `undefined` when nothing stands out.
 */
function lineMistake(line: string): string | undefined {
  if (line.includes("\u00a0")) {
    return "the line holds a non-breaking space (U+00A0), as text copied from a web page or a " +
      "document does: type a plain space there instead";
  }
  const key = /^\s*(?:- )?([A-Za-z_]\w*)\s*(=|:(?![\s:]))/.exec(line);
  if (key === null) return undefined;
  return key[2] === "="
    ? `write key: value, as YAML does, not ${key[1]} = ...`
    : `put a space after the colon: ${key[1]}: ...`;
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

/**
 * Drop the earlier of each key written twice in one mapping, keeping the one
 * YAML gives the value of (the last), so that the document's other problems
 * can be checked and point at the lines whose values they are about.
 */
export function keepLastOfDuplicateKeys(doc: Document): void {
  visit(doc, {
    Map(_, map) {
      const keyOf = (pair: { key: unknown }) => isScalar(pair.key) ? pair.key.value : pair.key;
      const last = new Map<unknown, number>();
      map.items.forEach((pair, index) => last.set(keyOf(pair), index));
      // Merge keys (`<<`) may be given more than once.
      map.items = map.items.filter((pair, index) =>
        keyOf(pair) === "<<" || last.get(keyOf(pair)) === index
      );
    },
  });
}

/** The document as plain values, or the line and reason why its aliases cannot be expanded. */
export function plainValue(
  doc: Document,
  counter: LineCounter,
): { ok: true; value: unknown } | { ok: false; line: number; reason: string } {
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (error) {
    const badMerge = error instanceof Error && error.message.startsWith("Merge sources");
    if (!(error instanceof ReferenceError) && !badMerge) throw error;
    const aliases: Alias[] = [];
    visit(doc, { Alias: (_, alias) => void aliases.push(alias) });
    const lineOf = (node: Node) => counter.linePos(node.range?.[0] ?? 0).line;
    const unresolved = aliases.find((alias) => !alias.resolve(doc));
    if (unresolved) {
      return {
        ok: false,
        line: lineOf(unresolved),
        reason: `YAML alias *${unresolved.source} refers to no anchor: ` +
          (/[.*?[]/.test(unresolved.source)
            ? `a pattern that starts with * must be quoted: "*${unresolved.source}"`
            : `define &${unresolved.source} on a value before it, or write the value out`),
      };
    }
    if (badMerge) return mergeProblem(doc, lineOf);
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

/** Where a merge key (`<<`) takes something that is not a mapping, and what it takes. */
function mergeProblem(
  doc: Document,
  lineOf: (node: Node) => number,
): { ok: false; line: number; reason: string } {
  const isMapping = (node: unknown): boolean => isMap(isAlias(node) ? node.resolve(doc) : node);
  let found: { line: number; what: string } | undefined;
  visit(doc, {
    Pair: (_, pair) => {
      if (found || !isScalar(pair.key) || pair.key.source !== "<<") return;
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      const bad = sources.find((source) => !isMapping(source));
      if (bad === undefined) return;
      const shown = isAlias(bad) ? `*${bad.source}, which stands for ` : "";
      const target = isAlias(bad) ? bad.resolve(doc) : bad;
      const kind = isSeq(target)
        ? "a list"
        : isScalar(target)
        ? `the value ${String(target)}`
        : "nothing";
      found = { line: lineOf((bad ?? pair.key) as Node), what: `${shown}${kind}` };
    },
  });
  return {
    ok: false,
    line: found?.line ?? 1,
    reason: `"<<" merges the keys of a mapping into this one, but here it is given ${
      found?.what ?? "something else"
    }; give it an anchored mapping (x-defaults: &defaults \u2026, then <<: *defaults) or write the keys out`,
  };
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
