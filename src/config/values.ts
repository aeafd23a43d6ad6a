/**
 * The config's single values (a path, a glob pattern, an address, a cron
 * expression, a time zone), each with the message shown when a value does
 * not fit; `schema.ts` builds the keys from them.
 *
 * @module
 */
import { isAbsolute } from "node:path";
import { z } from "zod";
import { Cron } from "croner";
import { quotedAsWritten } from "./paths.ts";

/**
 * A path as text: no control characters. They come from a YAML double-quoted
 * string that read a Windows path's backslashes as escapes (`"D:\archive"`
 * holds a bell where `\a` was), so the message says how to write one.
 */
export const pathText = z.string().superRefine((text, context) => {
  const unexpanded = unexpandedLocalPath(text);
  if (unexpanded !== null) context.addIssue({ code: "custom", message: unexpanded });
  refuseControlCharacters(text, context);
});

/** The words people write to turn a thing off, which as a file name would name a file. */
const OFF_WORDS = new Set(["off", "no", "none", "false", "disabled", "null", "nil"]);

/**
 * `log_file: off` (or `none`, `no`...) means no log file to its writer, but is a relative file
 * name: refused, with the two ways to say either.
 */
export function refuseOffWord(text: string, context: z.RefinementCtx): void {
  const word = text.trim().toLowerCase();
  if (!OFF_WORDS.has(word)) return;
  context.addIssue({
    code: "custom",
    message: `"${text}" would be a log file named ${text} beside the config; to turn file ` +
      `logging off write log_file: "" (an empty text), for a file of that name ./${text}`,
  });
}

/**
 * `remote_base_path` as text: no control characters (see `pathText`). A variable in it is said
 * by `job_rules.ts`, which knows the method: a local path expands some, a server none.
 */
export const basePathText = z.string().superRefine(refuseControlCharacters);

/** Why the local path `text` would hold a variable as written (see `pathText`), or `null`. */
export function unexpandedLocalPath(text: string): string | null {
  const unexpanded = unexpandedReference(text);
  return unexpanded !== null && !existsAsWritten(text) ? unexpanded : null;
}

/** Add an issue to `context` for the first control character of the path `text`, if any. */
function refuseControlCharacters(text: string, context: z.RefinementCtx): void {
  // The first control character (a tab, a bell from `"D:\archive"`...), if any.
  const found = firstControlCharacter(text);
  if (found === null) return;
  context.addIssue({
    code: "custom",
    message:
      `the path holds a control character (${found.code} after ${
        quotedAsWritten(found.before)
      }): in double quotes YAML reads a backslash as an escape ("D:\\archive" holds \\a, a bell); ` +
      "write Windows paths in single quotes ('D:\\archive') or with forward slashes (D:/archive)",
  });
}

/** The first control character of `text` (`U+0000`) and the text before it; `null` if none. */
function firstControlCharacter(text: string): { code: string; before: string } | null {
  // deno-lint-ignore no-control-regex
  const found = /[\u0000-\u001f\u007f-\u009f]/.exec(text);
  if (found === null) return null;
  const code = `U+${found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  return { code, before: text.slice(0, found.index) };
}

/** Whether `text` is an absolute path that exists as written here (a folder named `a $x`). */
function existsAsWritten(text: string): boolean {
  if (!isAbsolute(text)) return false;
  try {
    Deno.statSync(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why `text` would be taken literally where a user meant a variable or another user's home:
 * `$NAME`, `${NAME}` or any `${...}` (only a leading `$HOME` is expanded) or a leading `~name`; `null` if not.
 */
function unexpandedReference(text: string): string | null {
  // A leading $HOME or ${HOME} is expanded where a separator or the end follows it.
  const expanded = /^\$(HOME|\{HOME\})(?=$|[\\/])/.exec(text)?.[0].length ?? 0;
  // Any `${...}` too: a shell's default (`${DATA:-/data}`) is not expanded either.
  const variable = /\$(\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)/.exec(text.slice(expanded));
  if (variable) {
    const name = /^\{?([A-Za-z_][A-Za-z0-9_]*)/.exec(variable[1])?.[1];
    return `${variable[0]} is not expanded here (only ~ and a leading $HOME are, and %NAME% in ` +
      "local paths), so the path would hold it as written; write the folder itself (a folder " +
      "whose name holds it is taken as written once it exists)" +
      (name === undefined || name === "HOME"
        ? ""
        : `, or %${name}% to take it from the environment (local paths)`);
  }
  const shellFolder = /^~[+-](?=$|[\\/])/.exec(text)?.[0];
  if (shellFolder) {
    return `${shellFolder} (the shell's ${
      shellFolder === "~+" ? "current" : "previous"
    } folder) is not expanded, so the path would start with a folder named "${shellFolder}"; ` +
      "write the full path";
  }
  const home = /^~([^/\\]+)/.exec(text);
  if (home) {
    const example = home[1] === "root"
      ? "/root/\u2026"
      : Deno.build.os === "darwin"
      ? `/Users/${home[1]}/\u2026`
      : `/home/${home[1]}/\u2026`;
    return `~${home[1]} (another user's home) is not expanded, so the path would start with a ` +
      `folder named "~${home[1]}"; write the full path, e.g. ${example}`;
  }
  return null;
}

/**
 * A host or login name: no space before or after it, which would be taken as part of the name
 * (`"host "`: a host that cannot be found, a login that is refused), and no control character.
 */
export const nameText = z.string().superRefine((text, context) => {
  const control = firstControlCharacter(text);
  if (control !== null) {
    context.addIssue({
      code: "custom",
      message: `the name holds a control character (${control.code} after ` +
        `${quotedAsWritten(control.before)}); write the name alone`,
    });
  } else if (text.trim() !== "" && text !== text.trim()) {
    const [before, after] = [/^\s/.test(text), /\s$/.test(text)];
    const where = before && after ? "starts and ends" : before ? "starts" : "ends";
    context.addIssue({
      code: "custom",
      message: `${quotedAsWritten(text)} ${where} with a space, which would be taken as part of ` +
        `the name; write ${quotedAsWritten(text.trim())}`,
    });
  }
});

/** One argument of a program (hooks, a scheduled command, rsync's options): no NUL character. */
export const argumentText = z.string().refine((text) => !text.includes("\0"), {
  error: ({ input }) =>
    `a NUL character (U+0000 after ${
      quotedAsWritten(String(input).slice(0, String(input).indexOf("\0")))
    }) cannot be passed to a program; remove it (in double quotes YAML reads \\0 as one)`,
});

/** One of `ssh_options`: `Key=Value`, an argument of ssh. */
export const sshOption = argumentText.regex(
  /^[A-Za-z][A-Za-z0-9]*=\S.*$/,
  'expected "Key=Value", e.g. "Ciphers=aes128-gcm@openssh.com"',
);

/** `HOST:PORT` of the status page, or `""` for off. */
export const listenAddress = z.string().regex(
  /^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/,
  'expected "HOST:PORT", e.g. "127.0.0.1:8765", or "" for off',
).refine((text) => {
  const port = /:([0-9]{1,5})$/.exec(text)?.[1];
  return port === undefined || (Number(port) >= 1 && Number(port) <= 65535);
}, 'its port is out of range: give a port from 1 to 65535, e.g. "127.0.0.1:8765"');

/** Whether `zone` is a time zone the runtime knows. */
export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Whether `expression` is a cron expression of five or six fields (or `@daily`...) that comes. */
export function isValidCron(expression: string): boolean {
  const fields = expression.trim().split(/\s+/).length;
  if (!expression.trim().startsWith("@") && fields !== 5 && fields !== 6) return false;
  try {
    return new Cron(expression, { paused: true }).nextRun() !== null;
  } catch {
    return false;
  }
}

/**
 * The `[` or `{` a glob pattern opens and never closes (it then matches only names holding that
 * character), or `null`. After `\\` a character is literal; `]` first in a class belongs to it.
 */
function unclosedInPattern(pattern: string): "[" | "{" | null {
  let braces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === "\\") i++;
    else if (char === "{" || (char === "}" && braces > 0)) braces += char === "{" ? 1 : -1;
    else if (char === "[") {
      let end = i + (/^\[[!^]?\]/.exec(pattern.slice(i))?.[0].length ?? 1);
      while (end < pattern.length && pattern[end] !== "]") end += pattern[end] === "\\" ? 2 : 1;
      if (end >= pattern.length) return "[";
      i = end;
    }
  }
  return braces > 0 ? "{" : null;
}

/**
 * A glob pattern, relative to the watch folder (a pattern is matched against the
 * path below it, so an absolute one matches nothing) and with its brackets and braces closed. One
 * ending in `/` names folders (as in `.gitignore`): `exclude_patterns` only.
 */
export const globPattern = z.string().min(1).refine((pattern) => !pattern.includes("\0"), {
  error: ({ input }) =>
    `pattern ${JSON.stringify(input)} holds a NUL character, which no file name holds, so it ` +
    "matches nothing; remove it (in double quotes YAML reads \\0 as one)",
}).refine(
  (pattern) => !/^(\/|[A-Za-z]:[\\/])/.test(pattern),
  {
    error: ({ input }) =>
      `pattern ${quotedAsWritten(String(input))} is an absolute path, but patterns are ` +
      `matched against the path below the watch folder, so it matches nothing; write ` +
      (/^\/[^/*?]+\/$/.test(String(input))
        ? `${JSON.stringify(String(input).slice(1))} (every folder of that name)`
        : `"*.fits" (any subfolder) or "raw/*.fits" (one subfolder)`),
  },
).refine((pattern) => severalInOne(pattern) === null, {
  error: ({ input }) =>
    `pattern ${quotedAsWritten(String(input))} is several patterns written as one (it matches ` +
    "only names " +
    `with that ${String(input).includes(",") ? '","' : "space"} in them); write each as an item ` +
    `of the list: [${severalInOne(String(input))!.map((part) => JSON.stringify(part)).join(", ")}]`,
}).refine((pattern) => unclosedInPattern(pattern) === null, {
  error: ({ input }) => {
    const open = unclosedInPattern(String(input));
    const example = open === "[" ? '"*.[Ff]its"' : '"*.{fits,fz}"';
    return `pattern ${quotedAsWritten(String(input))} opens "${open}" and never closes it, so it ` +
      `matches only names holding that character; close it (e.g. ${example}), or write ` +
      `'\\${open}' (in single quotes) for the character itself`;
  },
});

/**
 * The patterns `pattern` holds where it is several written as one: endings of their own
 * (`"*.fits,*.fit"`, `"*.log *.txt"`) split at commas and spaces; else `null` (a name with a
 * space or comma in it, `"*dark *.fits"`, and a pattern with a class or braces, `"*[ ,]*"`,
 * `"*.{fits,fz}"`, are patterns of their own).
 */
function severalInOne(pattern: string): string[] | null {
  if (/[[{]/.test(pattern)) return null;
  const parts = pattern.split(/[,\s]+/).filter((part) => part !== "");
  return parts.length > 1 && parts.every((part) => /^\*\.[^*?/\\]+$/.test(part)) ? parts : null;
}

/** A list of glob patterns (see `globPattern`). */
export const globPatterns = z.array(globPattern);

/**
 * Patterns of files to send: one ending in `/` names folders, so it would match no file; a bare
 * ending (`.fits`) names a hidden file, which is never sent.
 */
export const filePatterns = z.array(
  globPattern.refine((pattern) => !pattern.endsWith("/"), {
    error: ({ input }) =>
      `pattern ${quotedAsWritten(String(input))} ends with "/", so it names folders and ` +
      "matches no file; " +
      `write ${JSON.stringify(`${input}*.fits`)} for the files in such a folder, or put it in ` +
      `exclude_patterns to skip them`,
  }).refine((pattern) => !/^\.[^/*?[{\\]+$/.test(pattern), {
    error: ({ input }) => {
      const said = quotedAsWritten(String(input));
      return `pattern ${said} matches only a file named ${said}, which is hidden and never sent; ` +
        `for the files ending in ${input} write ${JSON.stringify(`*${input}`)}`;
    },
  }),
);
