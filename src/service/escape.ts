/**
 * Escaping of paths and arguments for each service file format: systemd
 * unit lines, XML (launchd plists, Task Scheduler tasks) and Windows command
 * lines. A value a format cannot carry is refused with a clear error rather
 * than written in a form the service manager would read differently.
 *
 * @module
 */
import { pastedWord } from "../shell_words.ts";

/** Characters that never need quoting in a systemd command line or a POSIX shell. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Refuse a value that holds a newline or another control character, or is not
 * valid Unicode: no service file format can carry those unchanged.
 *
 * @param format the file being written, e.g. "systemd unit"
 * @param what what the value is, e.g. "config path"
 * @param value the value to check
 * @throws {Error} naming the value and what to do
 */
export function assertWritable(format: string, what: string, value: string): void {
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value) || !value.isWellFormed()) {
    throw new Error(
      `Cannot write the ${format}: the ${what} ${
        JSON.stringify(value)
      } contains a newline or another control character, which a ${format} cannot carry; ` +
        "rename or move it",
    );
  }
}

/**
 * Quote one word of a systemd `ExecStart=` line.
 *
 * `%` becomes `%%` (specifiers); in arguments `$` becomes `$$` (environment
 * variable expansion, which systemd does not apply to the executable itself);
 * a word with spaces, quotes, backslashes or non-ASCII characters is put in
 * double quotes with `\` and `"` escaped.
 *
 * @param word the executable path or one argument
 * @param options `executable: true` for the first word
 * @returns the word as it must appear in the unit file
 * @throws {Error} for control characters, or quotes and backslashes in the executable path,
 *   which systemd refuses
 */
export function systemdQuote(word: string, options: { executable?: boolean } = {}): string {
  const what = options.executable ? "program path" : "argument";
  assertWritable("systemd unit", what, word);
  if (options.executable && /["'\\]/.test(word)) {
    throw new Error(
      `Cannot write the systemd unit: the program path ${
        JSON.stringify(word)
      } contains a quote or backslash, which systemd refuses in an executable name; ` +
        "move the program to a folder without them",
    );
  }
  let out = word.replaceAll("%", "%%");
  if (!options.executable) out = out.replaceAll("$", "$$$$");
  if (PLAIN_WORD.test(word)) return out;
  return `"${out.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Write one absolute path for a systemd path-list setting such as
 * `ReadWritePaths=`: `%` becomes `%%` (specifiers; `$` is not expanded there),
 * and a path with spaces, quotes, backslashes or non-ASCII characters is put
 * in double quotes with `\\` and `"` escaped. A prefix such as `-` (ignore a
 * missing path) goes inside the quotes, as systemd reads it.
 *
 * @param path an absolute POSIX path
 * @param prefix `-` to let the service start while the path is missing
 * @returns the word as it must appear in the unit file
 * @throws {Error} for a relative path or control characters
 */
export function systemdPathWord(path: string, prefix: "" | "-" = ""): string {
  assertWritable("systemd unit", "folder", path);
  if (!path.startsWith("/")) {
    throw new Error(
      `Cannot write the systemd unit: the folder ${
        JSON.stringify(path)
      } is not an absolute path; give state_dir, log_file and remote_base_path as absolute paths`,
    );
  }
  const word = prefix + path.replaceAll("%", "%%");
  if (PLAIN_WORD.test(path)) return word;
  return `"${word.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

/**
 * Build a whole systemd command line (`ExecStart=` value) from an argv.
 *
 * @param argv absolute program path, then its arguments
 * @returns the words quoted with {@linkcode systemdQuote}, joined by spaces
 * @throws {Error} as {@linkcode systemdQuote}
 */
export function systemdCommandLine(argv: readonly string[]): string {
  return argv.map((word, i) => systemdQuote(word, { executable: i === 0 })).join(" ");
}

/**
 * Escape text for XML element content or attribute values (`&`, `<`, `>`, `"`, `'`).
 *
 * @param format the file being written, for the error message
 * @param what what the value is, for the error message
 * @param value the text
 * @returns the escaped text
 * @throws {Error} for control characters (see {@linkcode assertWritable})
 */
export function xmlEscape(format: string, what: string, value: string): string {
  assertWritable(format, what, value);
  return value.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

/**
 * Quote one argument for a Windows command line, the way the C runtime and
 * `CommandLineToArgvW` split it again: double quotes around words with
 * spaces, tabs or quotes; `\"` for a quote; backslashes doubled only where
 * they precede a quote.
 *
 * @param arg one argument
 * @returns the argument as it must appear on the command line
 */
export function windowsQuoteArg(arg: string): string {
  if (arg !== "" && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === "\\") {
      backslashes++;
      continue;
    }
    out += ch === '"' ? "\\".repeat(backslashes * 2 + 1) + '"' : "\\".repeat(backslashes) + ch;
    backslashes = 0;
  }
  return out + "\\".repeat(backslashes * 2) + '"';
}

/**
 * Quote an argv for display, as the shell of this machine reads it (a POSIX
 * shell; PowerShell on Windows), so a printed command can be read back, and
 * pasted, unambiguously. Only for messages: commands are always spawned with
 * argument arrays.
 *
 * @param argv program and arguments
 * @returns one line
 */
export function displayArgv(argv: readonly string[]): string {
  return argv.map((arg) => pastedWord(arg)).join(" ");
}
