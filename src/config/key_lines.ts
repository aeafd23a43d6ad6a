/**
 * Where a key is written in a config file: the line a message about it points
 * to (the YAML document's own positions; a key merged in with `<<: *shared`
 * is found where the anchored mapping holds it). And "did you mean ...?" for
 * a mistyped word (a config key, a command): the closest known word by edit
 * distance, if it is close enough to be a likely typo.
 *
 * @module
 */
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type YAMLMap,
} from "yaml";
import { COMMAND_LINE_CONFIG, type Config } from "./types.ts";
import { DEFAULT_FILE_PATTERNS } from "./schema.ts";
import { pastedWord } from "../shell_words.ts";
import { defaultsWithoutHome } from "./paths.ts";

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
  const findPair = (map: YAMLMap, key: string) => pairOf(doc, map, key);
  let node: unknown = doc.contents;
  let line = lineOfNode(node) ?? 1;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = findPair(node, String(segment));
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

/**
 * The pair of `key` in `map`, or in a mapping merged into it (`<<: *shared`),
 * found where the anchored mapping holds it.
 */
export function pairOf(
  doc: Document,
  map: YAMLMap,
  key: string,
  depth = 0,
): YAMLMap["items"][number] | undefined {
  const own = map.items.find((p) => keyText(p.key) === key);
  if (own || depth > 10) return own;
  const isMerge = (key: unknown) => isScalar(key) && String(key.value).includes("<<");
  for (const merge of map.items.filter((p) => isMerge(p.key))) {
    for (const source of isSeq(merge.value) ? merge.value.items : [merge.value]) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      const found = isMap(target) ? pairOf(doc, target, key, depth + 1) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

/** A mapping key as it appears in the parsed object (`~` becomes ""). */
function keyText(key: unknown): string {
  return isScalar(key) ? (key.value === null ? "" : String(key.value)) : String(key);
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
  const { doc, lineCounter } = parsedText(text);
  const [key] = keyPath;
  const jobs = doc.get("jobs");
  const entry = isSeq(jobs) ? jobs.items[jobIndex] : undefined;
  // A key merged in (`<<: *shared`) counts as written: its line is in the anchored mapping.
  const has = (map: unknown) => isMap(map) && pairOf(doc, map, String(key)) !== undefined;
  if (has(entry)) return lineOf(doc, lineCounter, ["jobs", jobIndex, ...keyPath]);
  return has(doc.contents) ? lineOf(doc, lineCounter, keyPath) : null;
}

/** The last text parsed for its lines: a message per job does not parse the file again. */
let lastParsed: { text: string; doc: Document; lineCounter: LineCounter } | null = null;

function parsedText(text: string): { doc: Document; lineCounter: LineCounter } {
  if (lastParsed?.text !== text) {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter, logLevel: "silent", merge: true });
    lastParsed = { text, doc, lineCounter };
  }
  return lastParsed;
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
 * `FILE:LINE: KEY` for a top-level `key` of `config`; a key its file does not set is its default
 * (a path the user never wrote): `FILE: KEY (not set in the config: its default path; set KEY
 * to choose another)`.
 */
export function topKeyPlace(config: Config, key: string): string {
  const line = jobKeyLine(config.file, -1, [key]);
  if (line !== null) return `${config.file}:${line}: ${key}`;
  if (config.file === COMMAND_LINE_CONFIG) return `${config.file}: ${key}`;
  return `${config.file}: ${key} (not set in the config: its default path; set ${key} to choose ` +
    "another)";
}

/**
 * `FILE:LINE: KEY of job NAME`, for the job at `index` of `config`; for a run without a config file
 * the option that gives the key, `in the options (--watch, --to, --set): --set KEY=...` (see
 * {@linkcode optionOfKey}).
 */
export function jobKeyPlace(config: Config, index: number, key: string): string {
  if (config.file === COMMAND_LINE_CONFIG) return `${IN_THE_OPTIONS}: ${optionOfKey(key)}`;
  return `${keyPlace(config.file, index, [key])}: ${key} of job ${config.jobs[index].name}`;
}

/** Where a message on a run without a config file points: its options, not a file never written. */
export const IN_THE_OPTIONS = "in the options (--watch, --to, --set)";

/**
 * What a run without a config file is told where `keys` (its config, from the options) leave
 * `state_dir` or `log_file` to a default in a home folder that cannot be found (no `HOME`: a
 * service, `env -i`): the `--set` options that give them, as typed; `null` where none is.
 */
export function homelessOptionsProblem(keys: object): string | null {
  const missing = defaultsWithoutHome(keys);
  if (missing.length === 0) return null;
  const given = missing.map((key) => `--set ${key}=${key === "state_dir" ? "DIR" : "FILE"}`);
  return `${IN_THE_OPTIONS}: ${missing.join(" and ")} ` +
    `${missing.length > 1 ? "default" : "defaults"} to the home folder, which cannot be found ` +
    `(neither HOME nor USERPROFILE is set): set HOME, or give ${given.join(" and ")}` +
    (missing.includes("log_file") ? ` (--set ${pastedWord('log_file=""')} for no log file)` : "");
}

/** The option of a run without a config file that gives `key`: `--to`, else `--set KEY=...`. */
export function optionOfKey(key: string): string {
  return Object.hasOwn(OPTION_OF_KEY, key) ? OPTION_OF_KEY[key] : `--set ${key}=\u2026`;
}

/** The keys `--watch`, `--to` (its user, host, port, path; FTP or FTPS) and `--ftp-password-*` give. */
const OPTION_OF_KEY: Readonly<Record<string, string>> = {
  watch_path: "--watch",
  remote_host: "--to",
  remote_user: "--to",
  remote_base_path: "--to",
  ftp_port: "--to",
  ftp_tls: "--to",
  ftp_password_file: "--ftp-password-file",
  ftp_password_env: "--ftp-password-env",
};

/**
 * The patterns that choose a job's files, as a message on a name they leave out names them:
 * `file_patterns`; in a run without a config file (`fromOptions`), its `--set file_patterns=...`
 * with them, or the default ones with how others are sent.
 */
export function filePatternsSaid(patterns: string[], fromOptions: boolean, nocase = true): string {
  if (!fromOptions) return "file_patterns";
  const given = patterns.join("\n") !== DEFAULT_FILE_PATTERNS.join("\n");
  // Upper and lower case match alike unless case_sensitive_patterns: each said once.
  const same = (a: string, b: string) => nocase ? a.toLowerCase() === b.toLowerCase() : a === b;
  const shown = patterns.filter((p, i) => patterns.findIndex((q) => same(q, p)) === i);
  return given
    ? `${optionOfKey("file_patterns")} (${shown.join(", ")})`
    : `the default patterns (${shown.join(", ")}; others are sent with ${
      optionOfKey("file_patterns")
    })`;
}

/** Case, `-` and `_` do not count as differences: `Watch-Path` is `watch_path`. */
function normal(word: string): string {
  return word.toLowerCase().replaceAll("-", "_");
}

/**
 * The edits that turn `a` into `b`: a letter added, removed or changed, or two
 * neighbouring letters swapped (`jbos` is one edit from `jobs`, as a hand that
 * types too fast makes it; the optimal string alignment distance).
 */
export function editDistance(a: string, b: string): number {
  // rows[i][j]: the edits between the first i letters of a and the first j of b.
  const rows = Array.from(
    { length: a.length + 1 },
    (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const change = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + change);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
      }
    }
  }
  return rows[a.length][b.length];
}

/**
 * The word in `known` closest to `word`, if at most a quarter of `word`'s
 * letters (at least 1) are changed: one slip in a short word (`job`, `jbos`,
 * `int`), a few in a long one, never a different short word (`oops` is two
 * edits from `jobs`, not a typo of it); the first of equally close words wins.
 */
export function closestWord(word: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const edits = editDistance(normal(word), normal(candidate));
    if (edits < bestDistance) [best, bestDistance] = [candidate, edits];
  }
  const limit = Math.max(1, Math.floor(word.length / 4));
  return bestDistance <= limit && bestDistance < word.length ? best : undefined;
}
