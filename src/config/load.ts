/**
 * Read, validate and resolve the YAML config file. Every problem is reported
 * at once, one per line, as `file:line: key.path: what is wrong`.
 *
 * YAML-level problems of a config file: syntax errors with the line to report
 * them on and the parser's reason with a hint; aliases that cannot be
 * expanded (no anchor, or an "alias bomb" that would expand without bound).
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import {
  type Alias,
  type Document,
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
} from "yaml";
import type { Config } from "./types.ts";
import { defaultConfigPath, expandPath } from "./paths.ts";
import { type DaemonInput, daemonSchema } from "./schema.ts";
import { ConfigError } from "../errors.ts";
import { describeValue, Issues, type Json, lineOf, type Path } from "./messages.ts";
import { checkConfigFileMode, checkIdentityFileModes } from "./file_mode.ts";
import { DAEMON_KEYS, readJobs } from "./jobs.ts";
import { resolveDaemon, resolveJob } from "./resolve.ts";

/**
 * The config file to use: `-c` if given (with `~` expanded, made absolute),
 * else the default location.
 */
export function resolveConfigPath(option?: string): string {
  return option ? expandPath(option) : defaultConfigPath();
}

/**
 * Load, validate and resolve a config file. The file and the jobs' SSH
 * identity files must not be writable by group or others, and the file must
 * belong to root or to the account the daemon runs as (POSIX).
 *
 * @param file path of the YAML file
 * @param runsAs user id the daemon runs as, when it is not the current user (install-service)
 * @returns the configuration with defaults applied and paths expanded
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export async function loadConfig(file: string, runsAs?: number | null): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError(readFailure(file, error), { file, cause: error });
  }
  await checkConfigFileMode(file, runsAs);
  if (looksLikeToml(text, file)) throw new ConfigError(tomlMessage(text, file), { file });
  const config = parseConfig(text, file);
  await checkIdentityFileModes(config);
  return config;
}

/**
 * The line of `keyPath` (such as `["on_transfer"]`) of the job at `jobIndex`
 * of the config `file` (for a message about a value that was valid YAML, such
 * as a hook's program): in the job's entry of `jobs:` where it is written
 * there, else at the top level; `null` when the file cannot be read or the key
 * is not written.
 */
export function jobKeyLine(file: string, jobIndex: number, keyPath: Path): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return null;
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, logLevel: "silent", merge: true });
  const [key] = keyPath;
  const jobs = doc.get("jobs");
  const entry = isSeq(jobs) ? jobs.items[jobIndex] : undefined;
  if (isMap(entry) && entry.has(key)) {
    return lineOf(doc, lineCounter, ["jobs", jobIndex, ...keyPath]);
  }
  return doc.has(key) ? lineOf(doc, lineCounter, keyPath) : null;
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

/**
 * Validate and resolve config `text` as if read from `file` (used for messages
 * and as the base of relative paths).
 *
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    // `<<: *defaults` merges a mapping into another (YAML 1.1's merge key), as users expect.
    merge: true,
    // Problems are reported as ConfigError lines, not as process warnings.
    logLevel: "error",
  });
  const issues = new Issues(file, doc, lineCounter);
  const syntaxLines = new Set<number>();
  for (const error of doc.errors) {
    const line = syntaxErrorLine(doc, lineCounter, error.pos[0], error.code);
    // One parser error per line: later ones on the same line are consequences.
    if (!syntaxLines.has(line)) issues.addAtLine(line, syntaxReason(error, doc, lineCounter));
    syntaxLines.add(line);
  }
  issues.throwIfAny();
  if (doc.contents === null) {
    throw new ConfigError(
      `${file}: the config file is empty; write at least watch_path, remote_host and ` +
        `remote_base_path, or get a commented template with \`${initCommandFor(file)} --force\``,
      { file },
    );
  }
  const plain = plainValue(doc, lineCounter);
  if (!plain.ok) {
    issues.addAtLine(plain.line, plain.reason);
    issues.throwIfAny();
  }
  const value = plain.ok ? plain.value : undefined;
  if (!isMap(doc.contents)) {
    const got = describeValue(value);
    throw new ConfigError(
      `${file}:${issues.lineOf([])}: expected "key: value" lines at the top level, got ${got}; ` +
        `get a commented template with \`${initCommandFor(file)} --force\``,
      { file, line: issues.lineOf([]) },
    );
  }
  const top = value as Json;
  const baseDir = dirname(resolve(file));
  const daemonKeys = Object.fromEntries(Object.entries(top).filter(([k]) => DAEMON_KEYS.has(k)));
  const daemon = daemonSchema.safeParse(daemonKeys);
  if (!daemon.success) { for (const issue of daemon.error.issues) issues.addZod(issue, [], top); }
  const jobs = readJobs(top, issues);
  issues.throwIfAny();
  // No problem was found, so the daemon keys are valid.
  const settings = daemon.data as DaemonInput;
  return {
    file: resolve(file),
    ...resolveDaemon(settings, baseDir),
    jobs: jobs.map(({ data, name }) => resolveJob(data, name, baseDir)),
  };
}

/** The `init` command line that writes `file`. */
function initCommandFor(file: string): string {
  if (file === defaultConfigPath()) return "image-transfer init";
  return `image-transfer -c ${/[\s'"$`]/.test(file) ? JSON.stringify(file) : file} init`;
}

/** A readable reason why `file` could not be read. */
function readFailure(file: string, error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    const hint = file === defaultConfigPath()
      ? "create it with `image-transfer init`, or pass another file with -c <file>"
      : `create it with \`${initCommandFor(file)}\`, or check the path`;
    return `Cannot read config file ${file}: it does not exist; ${hint}`;
  }
  if (error instanceof Deno.errors.IsADirectory) {
    return `Cannot read config file ${file}: it is a folder; pass the YAML file itself with -c`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `Cannot read config file ${file}: permission denied; check the file's owner and mode`;
  }
  const reason = error instanceof Error ? error.message : String(error);
  return `Cannot read config file ${file}: ${reason}`;
}

/** `key = value`, TOML's assignment. */
const ASSIGNMENT = /^\s*([A-Za-z_][\w.-]*)\s*=\s*(.*?)\s*$/;
/** `[table]` or `[[array of tables]]`. */
const TABLE = /^\s*(\[\[?)\s*([A-Za-z_][\w.-]*)\s*\]\]?\s*$/;
/** YAML's `key:`. */
const YAML_KEY = /^\s*-?\s*[A-Za-z_][\w-]*\s*:(\s|$)/;

/** Whether `text` (from `file`) is TOML rather than YAML. */
export function looksLikeToml(text: string, file: string): boolean {
  if (/\.toml$/i.test(file)) return true;
  const lines = text.split("\n").filter((line) => !/^\s*(#.*)?$/.test(line));
  if (lines.length === 0 || lines.some((line) => YAML_KEY.test(line))) return false;
  return lines.some((line) => ASSIGNMENT.test(line) || TABLE.test(line));
}

/** The YAML that says what the TOML `text` says (simple files: keys, tables, arrays of tables). */
export function tomlAsYaml(text: string): string {
  const out: string[] = [];
  let indent = "";
  let firstInItem = false;
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\s+$/, "");
    if (/^\s*#/.test(line)) {
      out.push(indent + line.trim());
      continue;
    }
    if (line.trim() === "") continue;
    const table = TABLE.exec(line);
    if (table) {
      const [, brackets, name] = table;
      if (brackets === "[[") {
        if (out.at(-1) !== `${name}:` && !out.includes(`${name}:`)) out.push(`${name}:`);
        indent = "    ";
        firstInItem = true;
      } else {
        out.push(`${name}:`);
        indent = "  ";
        firstInItem = false;
      }
      continue;
    }
    const assignment = ASSIGNMENT.exec(line);
    if (!assignment) {
      out.push(indent + line.trim());
      continue;
    }
    const [, key, value] = assignment;
    const prefix = firstInItem ? "  - " : indent;
    firstInItem = false;
    out.push(`${prefix}${key}: ${value}`);
  }
  return out.join("\n");
}

/** The message for a TOML config file: YAML only, and the same keys as YAML. */
export function tomlMessage(text: string, file: string): string {
  const yaml = tomlAsYaml(text).split("\n");
  const shown = yaml.slice(0, 40).map((line) => `    ${line}`).join("\n");
  const more = yaml.length > 40 ? `\n    # … ${yaml.length - 40} more line(s)` : "";
  return `${file}: this looks like TOML; the config file is YAML only (\`key: value\`, lists as ` +
    `[a, b] or "- item" lines). The same keys in YAML:\n${shown}${more}\n` +
    "Save that as a .yaml file and check it with `image-transfer config validate -c FILE`";
}

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
  // A [ or { list not closed is noticed at the next key; point at where it opened.
  const flow = code === "BAD_INDENT" ? openFlowCollection(doc, offset) : undefined;
  if (flow !== undefined) return counter.linePos(flow).line;
  return counter.linePos(offset).line;
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
    MISSING_CHAR: /quote/i.test(error.message)
      ? "close the quote on the same line"
      : /sequence item/i.test(error.message)
      ? "check the indentation: the keys of one list item line up under its first key"
      : "check the brackets, commas and colons of this line",
    TAB_AS_INDENT: "indent with spaces",
    DUPLICATE_KEY: "each key may appear only once in the same mapping",
    BAD_INDENT: "align keys of the same level with the same number of spaces",
    BLOCK_AS_IMPLICIT_KEY: "check the indentation: keys of the same level start in the same column",
    MULTILINE_IMPLICIT_KEY: "check the indentation and that every key ends with a colon",
  };
  const reason = `YAML syntax error: ${error.message}`;
  const closing = error.message.match(/end with a ([\]}])/)?.[1];
  if (error.code === "BAD_INDENT" && closing !== undefined) {
    return `${reason} (a ${closing === "]" ? "[" : "{"} list opened here is not closed: end it ` +
      `with ${closing}, on this line or on a later one indented more than its key)`;
  }
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
    }; give it an anchored mapping (x-defaults: &defaults …, then <<: *defaults) or write the keys out`,
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
