/**
 * A config written as TOML (the sync daemon some users know, or a guess from
 * another tool) gets "YAML only" with the same keys written as YAML, instead
 * of a bare syntax error.
 *
 * @module
 */

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
