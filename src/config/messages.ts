/**
 * What is wrong with a config value, in words a user can act on, read from
 * zod's own issue fields: `code`, `expected`, `values`, `origin`, `minimum`,
 * and the alternatives of a union. Only a number's accepted range is read
 * from the key's schema (its checks): zod stops at the type when a value is
 * not a number, and then its issue names no range.
 *
 * The problems found in a config file, collected so that all of them are
 * reported at once, each as `file:line: key.path: what is wrong`, in line order.
 *
 * @module
 */
import { z } from "zod";
import { keyMeta, OLD_KEY_NAMES, SINGLE_STRING_LISTS } from "./key_meta.ts";
import { daemonShape, jobShape, scheduleEntry } from "./schema.ts";
import type { Document, LineCounter } from "yaml";
import { ConfigError } from "../errors.ts";
import { closestWord, lineOf, type Path } from "./key_lines.ts";
import { LOCAL_PATH_KEYS } from "./resolve.ts";
import { quotedAsWritten } from "./paths.ts";

const SHAPES: Readonly<Record<string, z.ZodType>> = { ...jobShape, ...daemonShape };

/** The keys of the entries of a list-of-mappings key, by that key. */
const NESTED_SHAPES: Readonly<Record<string, Record<string, unknown>>> = {
  schedules: scheduleEntry.shape,
};

/** A type zod expected, in words. */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  string: "text",
  boolean: "true or false",
  array: 'a list (one "- item" per line)',
  object: 'a mapping ("key: value" lines)',
  null: "an empty value",
};

/** What a pattern-list key accepts (see {@linkcode SINGLE_STRING_LISTS}). */
const PATTERN_LIST = 'a list of patterns (one "- pattern" per line), or a single pattern';

/**
 * Say what is wrong with the value at `path` (a key as written, an old name
 * included, then list indexes), which is `value`.
 */
export function describeIssue(issue: z.core.$ZodIssue, path: Path, value: unknown): string {
  const key = String(path[0]);
  const atKey = path.length === 1;
  const current = OLD_KEY_NAMES.get(key) ?? key;
  const schema = Object.hasOwn(SHAPES, current) ? SHAPES[current] : undefined;
  if (value === undefined && atKey && issue.code === "invalid_type") {
    const example = schema ? keyMeta(schema).example : undefined;
    return "required key missing" +
      (example === undefined ? "" : `; add a line like "${key}: ${example}"`);
  }
  if (issue.code === "custom") return issue.message;
  // What is written there may be the password itself: not repeated in a message or a log.
  if (String(path.at(-1)) === "ftp_password_env" && value !== "" && value != null) {
    return "expected an environment variable name (letters, digits and _), got something else " +
      "(not shown: it may be the password itself); write the name of the variable that holds " +
      `it, ${/^\$\{?\w+\}?$/.test(String(value)) ? "without $ or braces, " : ""}e.g. FTP_PASSWORD`;
  }
  if (issue.code === "invalid_format") {
    // The schema's own words ("expected letters, digits, ..."), else the pattern.
    const what = issue.message.startsWith("Invalid")
      ? `expected text matching ${issue.pattern ?? issue.format}`
      : issue.message;
    return `${what}, got ${describeValue(value)}`;
  }
  // A key of a list's entries (`schedules[0].every_seconds`): its own schema, for its range.
  const nested = path.length === 3 ? NESTED_SHAPES[current]?.[String(path[2])] : undefined;
  const own = nested instanceof z.ZodType ? nested : schema;
  let expected = expectedWords(issue, own, atKey && SINGLE_STRING_LISTS.has(key));
  if (atKey && schema && acceptsEmpty(schema)) {
    // Its empty value is YAML's (nothing after the colon); "" is text, and said so, not "or an
    // empty value, got """.
    if (value === "") {
      return `expected ${expected}, got "": for its default leave the key out, or write nothing ` +
        "after its colon";
    }
    expected += ", or an empty value";
  }
  const off = OFF_WITH_EMPTY[key];
  if (atKey && value === false && off !== undefined) {
    return `expected ${expected}, got false; to turn ${off} off write ${key}: "" (an empty text)`;
  }
  const quoteHint = !expected.startsWith("text")
    ? ""
    : typeof value === "number" || typeof value === "boolean"
    ? ' (put it in quotes: "...")'
    : value === null
    ? PATH_KEYS.has(key)
      ? ' (a bare ~ is YAML\'s empty value: for the home folder write "~")'
      : ' (write "" for an empty text, or leave the key out for its default)'
    : "";
  return `expected ${expected}, got ${describeValue(value)}${quoteHint}${
    numberHint(expected, path, value)
  }${booleanHint(expected, path, value)}${commandHint(issue, path, value)}`;
}

/** The keys whose empty text (`""`) turns something off, and what. */
const OFF_WITH_EMPTY: Readonly<Record<string, string>> = {
  status_listen: "the status page",
  log_file: "file logging",
};

/** The words YAML 1.1 read as true or false, which YAML 1.2 (and so this config) reads as text. */
const YAML11_BOOLEANS: Readonly<Record<string, boolean>> = {
  y: true,
  yes: true,
  on: true,
  n: false,
  no: false,
  off: false,
};

/**
 * `yes`, `no`, `on` or `off` where true or false is expected (YAML 1.1's booleans, as older tools
 * and examples write them): the one to write; else "".
 */
function booleanHint(expected: string, path: Path, value: unknown): string {
  if (typeof value !== "string" || !expected.startsWith("true or false")) return "";
  const word = value.trim().toLowerCase();
  const key = String(path.at(-1));
  // "true" in quotes is text too.
  if (word === "true" || word === "false") return ` (write it without quotes: ${key}: ${word})`;
  if (!Object.hasOwn(YAML11_BOOLEANS, word)) return "";
  return ` (YAML 1.2 reads ${value.trim()} as text: write ${key}: ${YAML11_BOOLEANS[word]})`;
}

/** The units a key's name ends with, and how a value may spell them. */
const KEY_UNITS: Record<string, RegExp> = {
  seconds: /^(s|secs?|seconds?)$/,
  hours: /^(h|hrs?|hours?)$/,
  days: /^(d|days?)$/,
};

/**
 * A number written as text where a number is expected: in quotes (`"5"`), or with a unit
 * (`3s`) that the key's name already says (`stability_window_seconds`): how to write it; else "".
 */
function numberHint(expected: string, path: Path, value: unknown): string {
  if (typeof value !== "string" || !/^a (whole )?number/.test(expected)) return "";
  const key = String(path.at(-1));
  const text = value.trim();
  if (text !== "" && Number.isFinite(Number(text))) {
    return ` (write it without quotes: ${key}: ${text})`;
  }
  const unit = Object.keys(KEY_UNITS).find((name) => key.endsWith(`_${name}`));
  const written = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text);
  if (unit === undefined || written === null) return "";
  return KEY_UNITS[unit].test(written[2].toLowerCase())
    ? ` (the key's name says the unit: ${key}: ${written[1]})`
    : ` (a number alone, in ${unit})`;
}

/** The keys that hold a path, where a bare `~` (YAML's empty value) may have meant the home. */
const PATH_KEYS: ReadonlySet<string> = new Set([...LOCAL_PATH_KEYS, "remote_base_path"]);

/** The keys that hold a program and its arguments. */
const COMMAND_KEYS = new Set(["on_transfer", "on_failure", "command"]);

/**
 * A program and its arguments written as one line of text (`on_transfer: /bin/reduce --quick`):
 * the list to write, its words split at blanks; else "".
 */
function commandHint(issue: z.core.$ZodIssue, path: Path, value: unknown): string {
  if (issue.code !== "invalid_type" || issue.expected !== "array") return "";
  if (typeof value !== "string" || !COMMAND_KEYS.has(String(path.at(-1)))) return "";
  const words = value.trim().split(/\s+/).filter((word) => word !== "");
  if (words.length === 0) return "";
  // Plain where YAML reads the word as itself inside [ ], else quoted.
  const item = (word: string) =>
    /^[\w./~+=-][\w./~+=:@-]*$/.test(word) ? word : JSON.stringify(word);
  return "; a program and its arguments are a list, run without a shell: write " +
    `[${words.map(item).join(", ")}]`;
}

/** What the issue says was expected, in words (`patternList`: a key that takes patterns). */
function expectedWords(
  issue: z.core.$ZodIssue,
  schema: z.ZodType | undefined,
  patternList: boolean,
): string {
  switch (issue.code) {
    case "invalid_type":
      if (issue.expected === "number" || issue.expected === "int") {
        return numberWords(schema, issue.expected === "int");
      }
      if (issue.expected === "array" && patternList) return PATTERN_LIST;
      return TYPE_WORDS[issue.expected] ?? issue.expected;
    case "too_small":
    case "too_big": {
      const limit = "minimum" in issue ? issue.minimum : issue.maximum;
      if (issue.origin === "number") {
        const words = numberWords(schema, false);
        if (!/^a (whole )?number$/.test(words)) return words;
        // A key whose schema is not found by its path: the issue's bound.
        return `${words} ${boundWords(issue.code === "too_small", issue.inclusive, limit)}`;
      }
      const bound = issue.code === "too_small" ? "at least" : "at most";
      if (issue.origin === "string") {
        return issue.code === "too_small" && limit === 1
          ? "non-empty text"
          : `text of ${bound} ${limit} characters`;
      }
      if (issue.origin === "array") {
        const items = patternList ? "pattern" : "item";
        return limit === 1 && issue.code === "too_small"
          ? `at least one ${items} (one "- ${items}" per line)`
          : `${bound} ${limit} ${items}s`;
      }
      return issue.message;
    }
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_union": {
      const alternatives = issue.errors.flatMap((alternative) =>
        alternative.length > 0 ? [expectedWords(alternative[0], schema, patternList)] : []
      );
      return [...new Set(alternatives)].join(", or ");
    }
    default:
      return "a valid value";
  }
}

/** `a whole number from 0 to 1000`: the number `schema` accepts. */
function numberWords(schema: z.ZodType | undefined, int: boolean): string {
  const number = innermost(schema);
  if (!(number instanceof z.ZodNumber)) return int ? "a whole number" : "a number";
  let low: { value: number; inclusive: boolean } | undefined;
  let high: typeof low;
  for (const check of number.def.checks ?? []) {
    const def = check._zod.def as { check: string; value?: unknown; inclusive?: boolean };
    if (typeof def.value !== "number") continue;
    const bound = { value: def.value, inclusive: def.inclusive ?? true };
    if (def.check === "greater_than") low = bound;
    if (def.check === "less_than") high = bound;
  }
  const kind = number.isInt || int ? "a whole number" : "a number";
  const lowText = low && boundWords(true, low.inclusive, low.value);
  const highText = high && boundWords(false, high.inclusive, high.value);
  if (low?.inclusive && high?.inclusive) return `${kind} from ${low.value} to ${high.value}`;
  return [kind, [lowText, highText].filter(Boolean).join(" and ")].filter(Boolean).join(" ");
}

/** `at least 1`, `above 0`, `at most 8760`, `below 100`: a number's bound in words. */
function boundWords(low: boolean, inclusive: boolean | undefined, limit: unknown): string {
  if (inclusive === false) return `${low ? "above" : "below"} ${limit}`;
  return `${low ? "at least" : "at most"} ${limit}`;
}

/** `schema` without its default, optional and nullable wrappers. */
function innermost(schema: z.ZodType | undefined): z.ZodType | undefined {
  let inner = schema;
  while (
    inner instanceof z.ZodDefault || inner instanceof z.ZodOptional ||
    inner instanceof z.ZodNullable
  ) {
    inner = inner.unwrap() as z.ZodType;
  }
  return inner;
}

/** Whether an empty value (`key:` with nothing after it) is accepted. */
function acceptsEmpty(schema: z.ZodType): boolean {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) {
    inner = inner.unwrap() as z.ZodType;
  }
  return inner instanceof z.ZodNullable;
}

/** A value as it appears in a message. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") return quotedAsWritten(value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return 'a mapping ("key: value" lines)';
  return String(value);
}

/** `jobs[1].retry_attempts` style key path. */
export function formatPath(path: Path): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("") ||
    "(top level)";
}

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

  /** Add a problem at the line of the key path (or its nearest written parent). */
  add(path: Path, message: string): void {
    this.addAtLine(this.lineOf(path), `${formatPath(path)}: ${message}`);
  }

  /** Add a problem about the key itself: the message names it. */
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

  /**
   * Add one zod issue about the mapping at `prefix`, as written in the file
   * (`written`); `key` is the first path segment as written there.
   */
  addZod(issue: z.core.$ZodIssue, prefix: Path, written: Json, key = issue.path[0]): void {
    const path = [key, ...issue.path.slice(1)].filter((p): p is string | number =>
      typeof p === "string" || typeof p === "number"
    );
    if (issue.code === "unrecognized_keys") {
      // Inside an entry of a list (a `schedules` entry): each key at its own line.
      const known = Object.keys(NESTED_SHAPES[String(key)] ?? {});
      for (const unknown of issue.keys) {
        const meant = closestWord(unknown, known);
        this.add(
          [...prefix, ...path, unknown],
          `unknown key${meant ? `; did you mean "${meant}"?` : ""}` +
            (known.length > 0 ? ` (the keys here: ${known.join(", ")})` : ""),
        );
      }
      return;
    }
    this.add([...prefix, ...path], describeIssue(issue, path, valueAt(written, path)));
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

  /** 1-based line of the key at `path`, or of its nearest written parent. */
  lineOf(path: Path): number {
    return lineOf(this.doc, this.lineCounter, path);
  }
}

/** The value at `path` inside `root`, or `undefined`. */
function valueAt(root: unknown, path: Path): unknown {
  let current = root;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

/** Whether `value` is a mapping (not a list, not empty). */
export function isPlainObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
