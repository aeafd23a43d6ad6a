/**
 * The problems found in a config file, each rendered as
 * `file:line: key.path: what is wrong`, and the words they are described in.
 *
 * @module
 */
import { type Document, isMap, isScalar, isSeq, type LineCounter } from "yaml";
import { z } from "zod";
import { daemonShape, jobShape } from "./schema.ts";
import { EXAMPLE_VALUES } from "./default_config.ts";
import { ConfigError } from "../errors.ts";

/** List keys where a single text value is accepted as a one-element list. */
export const SINGLE_STRING_LISTS: ReadonlySet<string> = new Set([
  "file_patterns",
  "exclude_patterns",
  "close_shortcut_patterns",
]);
const SHAPES: Record<string, z.ZodType> = { ...jobShape, ...daemonShape };

/** A key path such as `["jobs", 1, "retry_attempts"]`. */
export type Path = (string | number)[];
/** A parsed YAML mapping. */
export type Json = Record<string, unknown>;

/** The collected problems of one file, each with its line. */
export class Issues {
  readonly #lines: { line: number; text: string }[] = [];
  readonly #seen = new Set<string>();

  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lineCounter: LineCounter,
  ) {}

  /** Add a problem at the line of the key path's value (or the nearest existing parent). */
  add(path: Path, message: string): void {
    this.addAtLine(this.lineOf(path), `${formatPath(path)}: ${message}`);
  }

  /** Add a problem about the key itself (the line of the key). */
  addKey(path: Path, message: string): void {
    this.addAtLine(this.lineOf(path), message);
  }

  /** Add a problem at a known line. */
  addAtLine(line: number, text: string): void {
    const rendered = `${this.file}:${line}: ${text}`;
    if (this.#seen.has(rendered)) return;
    this.#seen.add(rendered);
    this.#lines.push({ line, text: rendered });
  }

  /** Add zod issues of an object found at `prefix`, whose input was `input`. */
  addZod(zodIssues: readonly z.core.$ZodIssue[], prefix: Path, input: Json): void {
    for (const issue of zodIssues) {
      const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      this.add([...prefix, ...path], describeIssue(issue, path, valueAt(input, path)));
    }
  }

  /** Throw one {@linkcode ConfigError} listing every problem, in line order, if there are any. */
  throwIfAny(): void {
    if (this.#lines.length === 0) return;
    const sorted = [...this.#lines].sort((a, b) => a.line - b.line);
    throw new ConfigError(sorted.map((l) => l.text).join("\n"), {
      file: this.file,
      line: sorted[0].line,
    });
  }

  /** 1-based line of the key at `path`, or of its nearest existing parent. */
  lineOf(path: Path): number {
    let node: unknown = this.doc.contents;
    let line = this.#line(node) ?? 1;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(segment));
        if (!pair) return line;
        line = this.#line(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === "number" && node.items[segment]) {
        node = node.items[segment];
        line = this.#line(node) ?? line;
      } else {
        return line;
      }
    }
    return line;
  }

  #line(node: unknown): number | undefined {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return range ? this.lineCounter.linePos(range[0]).line : undefined;
  }
}

/** A mapping key as it appears in the parsed object (`~` becomes ""). */
function keyText(key: unknown): string {
  return isScalar(key) ? (key.value === null ? "" : String(key.value)) : String(key);
}

/** Say what is wrong with one value, in words a user can act on. */
function describeIssue(issue: z.core.$ZodIssue, path: Path, value: unknown): string {
  if (value === undefined && path.length === 1 && issue.code === "invalid_type") {
    const example = EXAMPLE_VALUES[String(path[0])];
    return "required key missing" +
      (example === undefined ? "" : `; add a line like "${path[0]}: ${example}"`);
  }
  if (issue.code === "custom") return issue.message;
  if (issue.code === "invalid_format" && !issue.message.startsWith("Invalid")) {
    return `${issue.message}, got ${describeValue(value)}`;
  }
  const expected = expectedAt(path);
  const quoteHint =
    expected.endsWith("text") && (typeof value === "number" || typeof value === "boolean")
      ? ' (put it in quotes: "...")'
      : "";
  return `expected ${expected}, got ${describeValue(value)}${quoteHint}`;
}

/** What the schema accepts at `path` (a key, or an element of a list key), in words. */
function expectedAt(path: Path): string {
  const schema = SHAPES[String(path[0])];
  if (!schema) return "a valid value";
  if (path.length === 1 && SINGLE_STRING_LISTS.has(String(path[0]))) {
    return 'a list of patterns (one "- pattern" per line), or a single pattern';
  }
  let json = z.toJSONSchema(schema, { unrepresentable: "any" }) as Json;
  for (const segment of path.slice(1)) {
    if (typeof segment === "number" && isPlainObject(json.items)) json = json.items;
  }
  return expectedText(json);
}

/** Describe a JSON schema (as produced by `z.toJSONSchema`) in words. */
function expectedText(json: Json): string {
  if (Array.isArray(json.anyOf)) {
    return json.anyOf.map((s) => expectedText(s as Json)).join(", or ");
  }
  if (Array.isArray(json.enum)) {
    return `one of ${json.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  switch (json.type) {
    case "integer":
    case "number":
      return `${json.type === "integer" ? "a whole number" : "a number"}${rangeText(json)}`;
    case "string":
      return json.minLength ? "non-empty text" : "text";
    case "boolean":
      return "true or false";
    case "null":
      return "an empty value";
    case "array": {
      const items = isPlainObject(json.items) ? expectedText(json.items) : "values";
      const atLeast = json.minItems ? ", at least one" : "";
      return `a list (one "- item" per line${atLeast}) of ${items}`;
    }
    default:
      return "a valid value";
  }
}

/** ` from 0 to 10`, ` >= 0`, ` > 0` or nothing. */
function rangeText(json: Json): string {
  const { minimum, maximum, exclusiveMinimum } = json;
  if (minimum !== undefined && maximum !== undefined) return ` from ${minimum} to ${maximum}`;
  if (exclusiveMinimum !== undefined && maximum !== undefined) {
    return ` > ${exclusiveMinimum} and <= ${maximum}`;
  }
  if (minimum !== undefined) return ` >= ${minimum}`;
  if (exclusiveMinimum !== undefined) return ` > ${exclusiveMinimum}`;
  return "";
}

/** A value as it appears in a message. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return 'a mapping ("key: value" lines)';
  return String(value);
}

/** `jobs[1].retry_attempts` style key path. */
export function formatPath(path: Path): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("") ||
    "(top level)";
}

/** The value at `path` inside `root`, or `undefined`. */
export function valueAt(root: unknown, path: Path): unknown {
  let current = root;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

export function isPlainObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
