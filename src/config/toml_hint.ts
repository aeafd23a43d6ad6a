/**
 * A TOML file given as the config (the sync tool's format): recognized, and
 * answered with the same keys written as YAML, nested tables (`[[jobs]]`,
 * `[[jobs.schedules]]`, `[a.b]`), dotted keys, lists over several lines (their
 * comments on their lines) and inline tables included (a password or token in it
 * is not shown: the text goes to the log file too). `config/load.ts` refuses such
 * a file with this text.
 *
 * @module
 */
import { configCommand } from "./paths.ts";

/** `key = value`, TOML's assignment (a dotted key names nested tables). */
const ASSIGNMENT = /^\s*([A-Za-z0-9_-]+(?:\s*\.\s*[A-Za-z0-9_-]+)*)\s*=\s*(.*?)\s*$/;
/** `[table]` or `[[array of tables]]`. */
const TABLE = /^\s*(\[\[?)\s*([A-Za-z_][\w-]*(?:\s*\.\s*[A-Za-z_][\w-]*)*)\s*\]\]?\s*$/;
/** YAML's `key:`. */
const YAML_KEY = /^\s*-?\s*[A-Za-z_][\w-]*\s*:(\s|$)/;

/** Whether `text` (from `file`) is TOML rather than YAML. */
export function looksLikeToml(text: string, file: string): boolean {
  if (/\.toml$/i.test(file)) return true;
  const lines = text.split("\n").filter((line) => !/^\s*(#.*)?$/.test(line));
  if (lines.length === 0 || lines.some((line) => YAML_KEY.test(line))) return false;
  return lines.some((line) => ASSIGNMENT.test(line) || TABLE.test(line));
}

/** A table: its keys in order, each a value (YAML text), a table or an array of tables. */
interface Table {
  keys: string[];
  values: Map<string, string | Table | Table[]>;
  /** Comment (and unread) lines written before each key. */
  notes: Map<string, string[]>;
}

function table(): Table {
  return { keys: [], values: new Map(), notes: new Map() };
}

/** The table `name` of `parent` (the last one of an array of tables), made if missing. */
function child(parent: Table, name: string, notes: string[]): Table {
  const found = parent.values.get(name);
  if (Array.isArray(found)) return found.at(-1) ?? table();
  if (found !== undefined && typeof found !== "string") return found;
  const made = table();
  set(parent, name, made, notes);
  return made;
}

function set(parent: Table, name: string, value: string | Table | Table[], notes: string[]): void {
  if (!parent.values.has(name)) parent.keys.push(name);
  parent.values.set(name, value);
  if (notes.length > 0) parent.notes.set(name, [...(parent.notes.get(name) ?? []), ...notes]);
  notes.length = 0;
}

/** `text` up to a `#` outside quotes, the comment from there, and how many `[`/`{` it leaves open. */
function scan(text: string): { code: string; comment: string; open: number } {
  let quote = "";
  let open = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#") return { code: text.slice(0, i).trimEnd(), comment: text.slice(i), open };
    else if (c === "[" || c === "{") open++;
    else if (c === "]" || c === "}") open--;
  }
  return { code: text.trimEnd(), comment: "", open };
}

/** A TOML value as YAML flow text: `key = v` in inline tables as `key: v`, no trailing commas. */
function flowValue(text: string): string {
  let out = "";
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\" && quote === '"') out += c + (text[++i] ?? "");
      else out += c;
      if (c === quote) quote = "";
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    if (c === "," && /^\s*[\]}]/.test(text.slice(i + 1))) {
      while (text[i + 1] === " ") i++;
    } else if (c === "=") out = `${out.trimEnd()}:${text[i + 1] === " " ? "" : " "}`;
    else out += c;
  }
  return out;
}

/**
 * A value written over `parts` (lines) as YAML flow text: on one line, or, where a
 * line holds a comment, over the same lines with each comment where it was.
 */
function valueText(parts: { code: string; comment: string }[]): string {
  if (parts.length === 1 || parts.every((part) => part.comment === "")) {
    let code = parts[0].code;
    for (const more of parts.slice(1)) {
      code += (code.endsWith("[") || code.endsWith("{") ? "" : " ") + more.code;
    }
    return flowValue(code);
  }
  return parts.filter(({ code, comment }) => code !== "" || comment !== "").map((
    { code, comment },
  ) => [flowValue(code), comment].filter((piece) => piece !== "").join("  ")).join("\n");
}

function parse(text: string): { root: Table; trailing: string[] } {
  const root = table();
  let current = root;
  const notes: string[] = [];
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (line === "") continue;
    if (line.startsWith("#")) {
      notes.push(line);
      continue;
    }
    const header = TABLE.exec(line);
    if (header) {
      const path = header[2].split(".").map((part) => part.trim());
      const last = path.pop() as string;
      let parent = root;
      for (const part of path) parent = child(parent, part, []);
      if (header[1] === "[[") {
        const found = parent.values.get(last);
        const items = Array.isArray(found) ? found : [];
        if (!Array.isArray(found)) set(parent, last, items, notes);
        current = table();
        items.push(current);
      } else current = child(parent, last, notes);
      continue;
    }
    const assignment = ASSIGNMENT.exec(line);
    if (!assignment) {
      notes.push(line);
      continue;
    }
    const first = scan(assignment[2]);
    const parts = [first];
    let open = first.open;
    while (open > 0 && n + 1 < lines.length) {
      const more = scan(lines[++n].trim());
      parts.push(more);
      open += more.open;
    }
    const path = assignment[1].split(".").map((part) => part.trim());
    const key = path.pop() as string;
    let target = current;
    for (const part of path) target = child(target, part, []);
    set(target, key, valueText(parts), notes);
  }
  return { root, trailing: notes };
}

/** A key whose value may be a secret (a password, a token), not a file or variable naming one. */
const SECRET = /password|passphrase|passwd|secret|token|credential|api_?key/i;
/** Shown instead of a secret: the message goes to the terminal and the log file. */
const HIDDEN = '"(not shown)"';

/** `value` of `key` as shown: a secret hidden, also as a key of an inline table. */
function shown(key: string, value: string): string {
  if (SECRET.test(key) && !/_(file|env)$/i.test(key)) return HIDDEN;
  const inline = /([\w-]+)(\s*:\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[^,}\]]+)/g;
  return value.replace(
    inline,
    (whole, name: string, colon: string) =>
      SECRET.test(name) && !/_(file|env)$/i.test(name) ? `${name}${colon}${HIDDEN}` : whole,
  );
}

/** A line not read as TOML, or a comment, as shown: one that may hold a secret is left out. */
function note(line: string): string {
  return !line.startsWith("#") && SECRET.test(line)
    ? "# (a line that may hold a secret is not shown)"
    : line;
}

function emit(from: Table, indent: string, out: string[]): void {
  for (const key of from.keys) {
    for (const line of from.notes.get(key) ?? []) out.push(indent + note(line));
    const value = from.values.get(key);
    if (typeof value === "string") {
      out.push(`${indent}${key}: ${shown(key, value).replaceAll("\n", `\n${indent}  `)}`);
    } else if (Array.isArray(value)) {
      out.push(`${indent}${key}:`);
      for (const item of value) {
        const lines: string[] = [];
        emit(item, `${indent}    `, lines);
        const first = lines.findIndex((line) => !line.trimStart().startsWith("#"));
        if (first < 0) lines.push(`${indent}  - {}`);
        else lines[first] = `${indent}  - ${lines[first].slice(indent.length + 4)}`;
        out.push(...lines);
      }
    } else if (value !== undefined) {
      out.push(`${indent}${key}:`);
      emit(value, `${indent}  `, out);
    }
  }
}

/** The YAML that says what the TOML `text` says (keys, tables, arrays of tables, their nesting). */
export function tomlAsYaml(text: string): string {
  const { root, trailing } = parse(text);
  const out: string[] = [];
  emit(root, "", out);
  return [...out, ...trailing.map(note)].join("\n");
}

/** The message for a TOML config file: YAML only, and the same keys as YAML. */
export function tomlMessage(text: string, file: string): string {
  const yaml = tomlAsYaml(text).split("\n");
  const shown = yaml.slice(0, 40).map((line) => `    ${line}`).join("\n");
  const more = yaml.length > 40 ? `\n    # \u2026 ${yaml.length - 40} more line(s)` : "";
  // A .toml name is read as TOML whatever it holds: the YAML goes beside it, under a .yaml name.
  const yamlFile = file.replace(/\.toml$/i, ".yaml");
  const save = yamlFile === file ? `Write that over ${file}` : `Save that as ${yamlFile}`;
  return `${file}: this looks like TOML; the config file is YAML only (\`key: value\`, lists as ` +
    `[a, b] or "- item" lines). The same keys in YAML:\n${shown}${more}\n` +
    `${save} and check it with \`${configCommand(yamlFile, "config validate")}\``;
}
