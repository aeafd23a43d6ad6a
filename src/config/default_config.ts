/**
 * The commented default config written by `init`, generated from the schema
 * (`describeKeys()`), so every key appears with its description and default.
 *
 * @module
 */
import { stringify } from "yaml";
import { describeKeys, type KeyDoc } from "./key_docs.ts";

const LINE_WIDTH = 100;

/**
 * Render the commented default config: required keys active with an example
 * value, every other key commented out with its default, and a commented
 * `jobs:` example. The result loads with `loadConfig`.
 *
 * @returns YAML text ending in a newline
 */
export function renderDefaultConfig(): string {
  const keys = describeKeys();
  const out: string[] = [
    "# image-transfer configuration",
    "#",
    "# Lines starting with '#' are comments; remove the '#' in front of a key to change it.",
    "# Check this file with:   image-transfer config validate",
    "# See effective values:   image-transfer config show",
    "#",
    "# The keys below describe one transfer job. To run several jobs, see `jobs:` at the end.",
    "",
  ];
  for (const key of keys.filter((k) => k.scope === "job")) out.push(...renderKey(key), "");
  out.push(
    "# ---------------------------------------------------------------------------",
    "# Daemon-wide settings (top level only, never inside a `jobs:` entry)",
    "# ---------------------------------------------------------------------------",
    "",
  );
  for (const key of keys.filter((k) => k.scope === "daemon")) out.push(...renderKey(key), "");
  out.push(...JOBS_EXAMPLE);
  return out.join("\n") + "\n";
}

/** The comment and the (possibly commented-out) `key: value` lines of one key. */
function renderKey(key: KeyDoc): string[] {
  const lines = wrapComment(key.description);
  if (key.example !== undefined) {
    lines.push(...yamlLines(key.key, key.example));
  } else {
    lines.push(...yamlLines(key.key, key.defaultValue).map((line) => `# ${line}`));
  }
  return lines;
}

/** `key: value` as YAML lines (lists in block style). */
function yamlLines(key: string, value: unknown): string[] {
  if (value === null || value === undefined) return [`${key}:`];
  return stringify({ [key]: value }, { lineWidth: 0 }).trimEnd().split("\n");
}

/** Wrap `text` into `# ` comment lines no wider than the line width. */
function wrapComment(text: string): string[] {
  const lines: string[] = [];
  let current = "#";
  for (const word of text.split(/\s+/)) {
    if (current.length + 1 + word.length > LINE_WIDTH && current !== "#") {
      lines.push(current);
      current = "#";
    }
    current += ` ${word}`;
  }
  lines.push(current);
  return lines;
}

const JOBS_EXAMPLE = [
  "# ---------------------------------------------------------------------------",
  "# Several jobs",
  "# ---------------------------------------------------------------------------",
  "# With a `jobs:` list, every entry is one job. The job keys at the top level of this file",
  "# become defaults that every job inherits; a key inside an entry overrides them. Job names",
  "# must be unique (default: job1, job2, ...). Daemon-wide settings stay at the top level.",
  "#",
  "# jobs:",
  "#   - name: camera-north",
  "#     watch_path: ~/data/north",
  "#     remote_base_path: /data/incoming/north",
  "#   - name: camera-south",
  "#     watch_path: ~/data/south",
  "#     remote_base_path: /data/incoming/south",
  "#     transfer_method: rsync",
  "#     rsync_options:",
  "#       - --bwlimit=50000",
];
