/**
 * The README's configuration key reference, generated from the schema
 * (`describeKeys()`) so the documentation cannot drift from the code.
 *
 * @module
 */
import { describeKeys, type KeyDoc } from "./key_docs.ts";

/** Defaults that read better in words than as the schema's value. */
const DEFAULT_IN_WORDS: Readonly<Record<string, string>> = {
  name: "`default` / `job<N>`",
  remote_host: "required for scp, rsync",
  remote_user: "SSH default",
  night_timezone: "system time zone",
  ssh_port: "SSH default",
  ssh_identity_file: "SSH default",
};

/**
 * Render the key reference as markdown: one table (key | default | meaning)
 * for job keys and one for daemon-wide keys, formatted the way `deno fmt` formats tables.
 *
 * @returns markdown text without a trailing newline
 */
export function renderConfigReference(): string {
  const keys = describeKeys();
  return [
    "Job keys (at the top level for a single job, or in each `jobs:` entry):",
    "",
    renderTable(keys.filter((k) => k.scope === "job")),
    "",
    "Daemon-wide keys (top level only):",
    "",
    renderTable(keys.filter((k) => k.scope === "daemon")),
  ].join("\n");
}

/** One aligned markdown table. */
function renderTable(keys: KeyDoc[]): string {
  const rows = [
    ["key", "default", "meaning"],
    ...keys.map((k) => [`\`${k.key}\``, defaultText(k), escapeCell(k.description)]),
  ];
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column])).join(" | ")} |`;
  return [
    line(rows[0]),
    `| ${widths.map((width) => "-".repeat(width)).join(" | ")} |`,
    ...rows.slice(1).map(line),
  ].join("\n");
}

/** The default column of one key. */
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

/** Make text safe inside a table cell. */
function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}
