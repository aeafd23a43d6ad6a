/**
 * Read, validate and resolve the YAML config file. Every problem is reported
 * at once, one per line, as `file:line: key.path: what is wrong`.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { type Document, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import type { Config, JobConfig, VerifyMode } from "./types.ts";
import { defaultConfigPath, defaultLogFile, defaultStateDir, expandPath } from "./paths.ts";
import {
  daemonSchema,
  daemonShape,
  JOB_KEYS,
  type JobInput,
  jobSchema,
  jobShape,
  TOP_LEVEL_KEYS,
} from "./schema.ts";
import { EXAMPLE_VALUES } from "./default_config.ts";
import { ConfigError } from "../errors.ts";

/** List keys where a single text value is accepted as a one-element list. */
const SINGLE_STRING_LISTS = new Set([
  "file_patterns",
  "exclude_patterns",
  "close_shortcut_patterns",
]);
const DAEMON_KEYS = new Set(Object.keys(daemonShape));
const SHAPES: Record<string, z.ZodType> = { ...jobShape, ...daemonShape };

type Path = (string | number)[];
type Json = Record<string, unknown>;

/**
 * The config file to use: `-c` if given (with `~` expanded, made absolute),
 * else the default location.
 */
export function resolveConfigPath(option?: string): string {
  return option ? expandPath(option) : defaultConfigPath();
}

/**
 * Load, validate and resolve a config file.
 *
 * @param file path of the YAML file
 * @returns the configuration with defaults applied and paths expanded
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError(readFailure(file, error), { file, cause: error });
  }
  return parseConfig(text, file);
}

/**
 * Validate and resolve config `text` as if read from `file` (used for messages
 * and as the base of relative paths).
 *
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const issues = new Issues(file, doc, lineCounter);
  const syntaxLines = new Set<number>();
  for (const error of doc.errors) {
    const line = syntaxErrorLine(doc, lineCounter, error.pos[0], error.code);
    // One parser error per line: later ones on the same line are consequences.
    if (!syntaxLines.has(line)) issues.addAtLine(line, syntaxReason(error));
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
  if (!isMap(doc.contents)) {
    const got = describeValue(doc.toJS());
    throw new ConfigError(
      `${file}:${issues.lineOf([])}: expected "key: value" lines at the top level, got ${got}; ` +
        `get a commented template with \`${initCommandFor(file)} --force\``,
      { file, line: issues.lineOf([]) },
    );
  }
  const top = doc.toJS({ maxAliasCount: 100 }) as Json;
  const baseDir = dirname(resolve(file));

  checkKeys(issues, top, [], TOP_LEVEL_KEYS);
  const daemon = daemonSchema.safeParse(pick(top, DAEMON_KEYS));
  if (!daemon.success) issues.addZod(daemon.error.issues, [], top);

  const defaults = normalizeLists(pick(top, new Set(JOB_KEYS)));
  const jobs: { data: JobInput; path: Path; explicitName: boolean }[] = [];
  if (!("jobs" in top)) {
    const parsed = jobSchema.safeParse(defaults);
    if (parsed.success) jobs.push({ data: parsed.data, path: [], explicitName: "name" in top });
    else issues.addZod(parsed.error.issues, [], top);
  } else if (!Array.isArray(top.jobs)) {
    issues.add(
      ["jobs"],
      `expected a list of jobs (each entry starts with "- "), got ${describeValue(top.jobs)}`,
    );
  } else if (top.jobs.length === 0) {
    issues.add(
      ["jobs"],
      "the list is empty; add at least one job, or remove `jobs:` and keep the job keys at the top level",
    );
  } else {
    if ("name" in defaults) {
      issues.add(
        ["name"],
        "a top-level name would be inherited by every job; set name inside each jobs entry",
      );
      delete defaults.name;
    }
    top.jobs.forEach((entry: unknown, index) => {
      const path: Path = ["jobs", index];
      if (!isPlainObject(entry)) {
        issues.add(
          path,
          `expected the keys of one job ("key: value" lines), got ${describeValue(entry)}`,
        );
        return;
      }
      checkKeys(issues, entry, path, JOB_KEYS);
      const own = normalizeLists(pick(entry, new Set(JOB_KEYS)));
      const parsed = jobSchema.safeParse({ ...defaults, ...own });
      if (parsed.success) jobs.push({ data: parsed.data, path, explicitName: "name" in own });
      else {
        // An inherited key is reported where it is written: at the top level.
        for (const issue of parsed.error.issues) {
          const key = String(issue.path[0] ?? "");
          const inherited = key in defaults && !(key in own);
          issues.addZod([issue], inherited ? [] : path, inherited ? top : entry);
        }
      }
    });
  }

  const inList = "jobs" in top;
  const names = new Map<string, Path>();
  const resolved: JobConfig[] = [];
  jobs.forEach(({ data, path, explicitName }, index) => {
    const name = data.name ?? (inList ? `job${index + 1}` : "default");
    const earlier = names.get(name);
    if (earlier) {
      issues.add(
        explicitName ? [...path, "name"] : path,
        `duplicate job name "${name}" (also used by ${formatPath(earlier)} on line ` +
          `${issues.lineOf(earlier)}); give every job a unique name`,
      );
    }
    names.set(name, path);
    resolved.push(resolveJob(data, name, baseDir));
  });
  issues.throwIfAny();

  const daemonData = daemon.success ? daemon.data : { log_format: "text" as const };
  return {
    file: resolve(file),
    state_dir: daemonData.state_dir === undefined
      ? defaultStateDir()
      : expandPath(daemonData.state_dir, baseDir),
    log_file: daemonData.log_file === undefined
      ? defaultLogFile()
      : daemonData.log_file === ""
      ? ""
      : expandPath(daemonData.log_file, baseDir),
    log_format: daemonData.log_format,
    jobs: resolved,
  };
}

/** Apply the name, map `verify_transfer` and expand the local paths of one job. */
function resolveJob(data: JobInput, name: string, baseDir: string): JobConfig {
  const verify: VerifyMode = data.verify_transfer === true
    ? "size"
    : data.verify_transfer === false
    ? "none"
    : data.verify_transfer;
  const { name: _name, ...rest } = data;
  return {
    name,
    ...rest,
    verify_transfer: verify,
    watch_path: expandPath(data.watch_path, baseDir),
    // For scp/rsync this is a path on the remote host: left as written (a leading ~/ included).
    remote_base_path: data.transfer_method === "local"
      ? expandPath(data.remote_base_path, baseDir)
      : data.remote_base_path,
    ssh_identity_file: data.ssh_identity_file === null
      ? null
      : expandPath(data.ssh_identity_file, baseDir),
  };
}

/** Report every key of `object` not in `allowed`, with a hint where it belongs or what was meant. */
function checkKeys(issues: Issues, object: Json, path: Path, allowed: readonly string[]): void {
  const nested = path.length > 0;
  for (const key of Object.keys(object)) {
    if (allowed.includes(key)) continue;
    const at: Path = [...path, key];
    if (nested && DAEMON_KEYS.has(key)) {
      issues.addKey(
        at,
        `"${key}" in ${
          formatPath(path)
        } applies to the whole daemon and is only allowed at the top level of the file; move it out of the jobs entry`,
      );
    } else if (nested && key === "jobs") {
      issues.addKey(at, "a jobs entry cannot contain another jobs list");
    } else {
      const guess = closestKey(key, allowed);
      issues.addKey(
        at,
        `unknown key "${key}"${nested ? ` in ${formatPath(path)}` : ""}` +
          (guess ? `; did you mean "${guess}"?` : "; see the key list in the README"),
      );
    }
  }
}

/** The known key closest to `key` by edit distance, if it is close enough to be a likely typo. */
function closestKey(key: string, known: readonly string[]): string | undefined {
  const normal = (s: string) => s.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(normal(key), normal(candidate));
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  const limit = Math.max(2, Math.floor(key.length / 4));
  return bestDistance <= limit && bestDistance < key.length ? best : undefined;
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

/** The collected problems of one file, each with its line. */
class Issues {
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
        const pair = node.items.find((p) =>
          String(isScalar(p.key) ? p.key.value : p.key) === String(segment)
        );
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
function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return 'a mapping ("key: value" lines)';
  return String(value);
}

/** `jobs[1].retry_attempts` style key path. */
function formatPath(path: Path): string {
  return path.map((p, i) => typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`).join("") ||
    "(top level)";
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

/** The entries of `object` whose key is in `keys`. */
function pick(object: Json, keys: Set<string>): Json {
  return Object.fromEntries(Object.entries(object).filter(([key]) => keys.has(key)));
}

/** Accept `file_patterns: "*.fits"` as a one-element list. */
function normalizeLists(job: Json): Json {
  for (const key of SINGLE_STRING_LISTS) {
    if (typeof job[key] === "string") job[key] = [job[key]];
  }
  return job;
}

function isPlainObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The line to report a YAML syntax error on. */
function syntaxErrorLine(
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

/** The YAML parser's reason, with a hint for the common cases. */
function syntaxReason(error: { code: string; message: string }): string {
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
