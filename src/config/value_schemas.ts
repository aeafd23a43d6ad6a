/**
 * Schemas of single values the configuration schema (`schema.ts`) uses for
 * its keys, each with the message shown when a value does not fit.
 *
 * @module
 */
import { z } from "zod";

/** One of `ssh_options`: `Key=Value`. */
export const sshOption = z.string().regex(
  /^[A-Za-z][A-Za-z0-9]*=\S.*$/,
  'expected "Key=Value", e.g. "Ciphers=aes128-gcm@openssh.com"',
);

/** The first control character of `text` (a tab, a bell from `"D:\archive"`…), if any. */
function controlCharacter(text: string): { char: string; at: number } | undefined {
  // deno-lint-ignore no-control-regex
  const match = /[\u0000-\u001f\u007f-\u009f]/.exec(text);
  return match ? { char: match[0], at: match.index } : undefined;
}

/**
 * A path as text: no control characters. They come from a YAML double-quoted
 * string that read a Windows path's backslashes as escapes (`"D:\archive"`
 * holds a bell where `\a` was), so the message says how to write one.
 */
export const pathText = z.string().superRefine((text, context) => {
  const found = controlCharacter(text);
  if (found === undefined) return;
  const code = `U+${found.char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  context.addIssue({
    code: "custom",
    message:
      `the path holds a control character (${code} after ${
        JSON.stringify(text.slice(0, found.at))
      }): in double quotes YAML reads a backslash as an escape ("D:\\archive" holds \\a, a bell); ` +
      "write Windows paths in single quotes ('D:\\archive') or with forward slashes (D:/archive)",
  });
});

/** An absolute path, or one starting with `~/`. */
export const absolutePath = pathText.regex(
  /^(\/|~\/|[A-Za-z]:[\\/])/,
  'expected an absolute path or one starting with "~/"',
);

/** `HOST:PORT` of the status page, or `""` for off. */
export const listenAddress = z.string().regex(
  /^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/,
  'expected "HOST:PORT", e.g. "127.0.0.1:8765", or "" for off',
);
