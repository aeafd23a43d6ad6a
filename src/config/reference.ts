/**
 * The configuration key references, generated from the schema
 * (`describeKeys()`) so the documentation cannot drift from the code: the
 * full one (docs/configuration.md) and the README's summary.
 *
 * Every config key as documented in `init`'s template and the README's
 * reference: description, default or example, scope, read from the schema.
 *
 * @module
 */
import type { z } from "zod";
import { keyMeta, OLD_KEY_NAMES } from "./key_meta.ts";
import { daemonShape, jobShape } from "./schema.ts";

/** Defaults that read better in words than as the schema's value. */
const DEFAULT_IN_WORDS: Readonly<Record<string, string>> = {
  name: "`default` / `job<N>`",
  remote_host: "required for scp, rsync, ftp",
  remote_user: "SSH default",
  night_timezone: "system time zone",
  ssh_port: "SSH default",
  ssh_identity_file: "SSH default",
};

/** Width that `deno fmt` wraps markdown prose at (deno.json `fmt.lineWidth`). */
const LINE_WIDTH = 100;

/**
 * Render the full key reference as markdown: one list (`key` (default): its
 * whole description) for job keys and one for daemon-wide keys, wrapped the
 * way `deno fmt` wraps prose. A list, not a table: a table is padded to its
 * widest cell on every row.
 *
 * @returns markdown text without a trailing newline
 */
export function renderConfigReference(): string {
  return renderLists(oneLine);
}

/**
 * Render the README's short key reference: as {@linkcode renderConfigReference},
 * with only the first sentence of each description.
 *
 * @returns markdown text without a trailing newline
 */
export function renderConfigSummary(): string {
  return renderLists((text) => firstSentence(oneLine(text)));
}

/** The job list and the daemon-wide list, each description passed through `describe`. */
function renderLists(describe: (description: string) => string): string {
  const keys = describeKeys();
  return [
    "Job keys (at the top level for a single job, or in each `jobs:` entry):",
    "",
    renderList(keys.filter((k) => k.scope === "job"), describe),
    "",
    "Daemon-wide keys (top level only):",
    "",
    renderList(keys.filter((k) => k.scope === "daemon"), describe),
  ].join("\n");
}

/** One markdown list, an item per key. */
function renderList(keys: KeyDoc[], describe: (description: string) => string): string {
  return keys.map((k) => {
    const text = `\`${k.key}\` (${defaultText(k)}): ${describe(k.description)}`;
    return wrap(text, "- ", "  ");
  }).join("\n");
}

/** Greedy word wrap at {@linkcode LINE_WIDTH}, as `deno fmt` wraps a list item. */
function wrap(text: string, first: string, rest: string): string {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(" ").filter((w) => w !== "")) {
    if (!empty && line.length + 1 + word.length > LINE_WIDTH) {
      lines.push(line);
      line = rest + word;
    } else {
      line += (empty ? "" : " ") + word;
    }
    empty = false;
  }
  lines.push(line);
  return lines.join("\n");
}

/** The default of one key, in words or as markdown code. */
function defaultText(key: KeyDoc): string {
  if (key.key in DEFAULT_IN_WORDS) return DEFAULT_IN_WORDS[key.key];
  if (key.required) return "**required**";
  const value = key.defaultValue;
  if (Array.isArray(value)) {
    return value.length === 0 ? "`[]`" : value.map((v) => `\`${String(v)}\``).join(", ");
  }
  if (value === "") return '`""`';
  return `\`${String(value)}\``;
}

/** A description as one paragraph of words. */
function oneLine(text: string): string {
  return text.replaceAll("\n", " ");
}

/** A description's first sentence: up to the first full stop before a space ("e.g." is no end). */
export function firstSentence(text: string): string {
  const end = /(?<!\be\.g|\bi\.e)\.\s/.exec(text);
  return end === null ? text : text.slice(0, end.index + 1);
}

/** One documented key, for the generated config and the README reference. */
export interface KeyDoc {
  key: string;
  description: string;
  /** For a key a new config must fill in: a value to show. */
  example?: unknown;
  /** The default as it would be written in YAML, or `undefined` when required. */
  defaultValue: unknown;
  required: boolean;
  scope: "job" | "daemon";
}

/**
 * List every key with its description and default, in schema order. A
 * renamed key's description ends with its old name.
 */
export function describeKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  const add = (shape: Record<string, z.ZodType>, scope: "job" | "daemon") => {
    for (const [key, schema] of Object.entries(shape)) {
      const meta = keyMeta(schema);
      const parsed = meta.writtenDefault === undefined
        ? schema.safeParse(undefined)
        : { success: true, data: meta.writtenDefault };
      const formerly = [...OLD_KEY_NAMES].filter(([, current]) => current === key)
        .map(([old]) => ` The old name \`${old}\` is still accepted.`);
      out.push({
        key,
        description: meta.description + formerly.join(""),
        example: meta.example,
        defaultValue: parsed.success ? parsed.data : undefined,
        required: !parsed.success,
        scope,
      });
    }
  };
  add(jobShape, "job");
  add(daemonShape, "daemon");
  return out;
}
