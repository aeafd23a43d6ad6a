/**
 * Logging set-up: human-readable or JSON lines to stderr, plus a rotating log
 * file. One LogTape category per stage under `image-transfer`.
 *
 * @module
 */
import {
  configure,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { dirname } from "node:path";
import { ConfigError, describeErrorChain, ExitCode } from "../errors.ts";
import { LOG_MAX_BYTES, LOG_MAX_FILES, logFileSink } from "./file_sink.ts";

export { LOG_MAX_BYTES, LOG_MAX_FILES, logFileSink } from "./file_sink.ts";

export type { Logger };

/** The levels `--log-level` takes, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The logger of one pipeline stage, e.g. `logger("watch")`. */
export function logger(stage: string): Logger {
  return getLogger(["image-transfer", stage]);
}

/**
 * The logger of one stage of one job: every record carries the job's name
 * as the `job` property (also usable as `{job}` in a message).
 */
export function jobLogger(stage: string, job: string): Logger {
  return logger(stage).with({ job });
}

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** Debug level (spawned argv etc.) instead of info. */
  verbose: boolean;
  /** The lowest level logged (`--log-level`); `verbose` means `debug`. @default "info" */
  level?: LogLevel;
  /** Rotating log file; `""` or undefined for none. */
  logFile?: string;
  format: "text" | "json";
}

/**
 * Characters that could break a text line or disguise it, as the body of a
 * character class: C0 and C1 controls (newline, carriage return, escape, ...),
 * DEL, the Unicode line and paragraph separators, the bidirectional overrides,
 * isolates and marks, and the characters that show nothing (zero-width space,
 * word joiner, byte order mark...: a name holding one looks like another).
 * Zero-width joiners, part of how some scripts and emoji are written, are not.
 */
export const UNSAFE_CHARACTERS =
  "\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u180e\\u200b\\u200e\\u200f" +
  "\\u2028\\u2029\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff";

/** Every one of the {@linkcode UNSAFE_CHARACTERS} in a text. */
export const UNSAFE_IN_LINE = new RegExp(`[${UNSAFE_CHARACTERS}]`, "g");

const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `text` with every control character written as an escape (`\n`, `\r`, `\t`,
 * `\x1b`, `\u2028`), so one log record is always one line.
 */
export function escapeControlChars(text: string): string {
  return text.replace(UNSAFE_IN_LINE, (c) => {
    const short = SHORT_ESCAPES[c];
    if (short) return short;
    const code = c.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * A name or path for a line of text: as it is when it holds no control
 * character; else in double quotes, with `\` and `"` escaped too and every
 * control character written as an escape, so a name with a real line break
 * (`"a\nb"`) is told from one holding a backslash and an `n` (`a\nb`).
 */
export function quoteIfUnsafe(text: string): string {
  if (!UNSAFE_CHAR.test(text)) return text;
  return `"${escapeControlChars(text.replace(/["\\]/g, (c) => `\\${c}`))}"`;
}

const UNSAFE_CHAR = new RegExp(UNSAFE_IN_LINE.source);

/** A value in a message: text as it is, anything else as JSON. */
function valueText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
}

/**
 * One text line: `2024-03-15 03:12:45.123 INFO    [transfer] Successfully transferred a -> b`
 * (local time, the level padded to 7, the stage). LogTape's text formatter,
 * with every value passed through {@linkcode quoteIfUnsafe} (stricter
 * than LogTape's own sanitizing, which keeps tabs, line separators and
 * bidirectional overrides), so a record is always exactly one line.
 */
export const formatText: TextFormatter = getTextFormatter({
  timestamp: "date-time",
  timeZone: null, // local time, as `date +%Y-%m-%d` prints it
  level: (level) => level.toUpperCase().padEnd(7),
  category: (category) => category.slice(1).join(".") || "main",
  value: (value) => quoteIfUnsafe(valueText(value)),
  sanitize: { sgr: "escape", newlines: "escape" },
  format: ({ timestamp, level, category, message }) =>
    `${timestamp} ${level} [${category}] ${message}`,
});

/**
 * One JSON object per line: `time`, `level`, `category`, `message` (values
 * filled in as they are), and the properties as fields; values are exact (JSON
 * escapes control characters itself). Not LogTape's JSON Lines formatter: its
 * fields are `@timestamp` and `logger`, its levels upper case, and it quotes
 * text values inside the message, which would change every JSON line.
 */
export const formatJson: TextFormatter = (record: LogRecord): string => {
  const message = record.message.map((part, i) => i % 2 === 0 ? part : valueText(part)).join("");
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message,
    ...record.properties,
  }) + "\n";
};

/** How a line of this program's log starts, in either format (`formatText`, `formatJson`). */
const OUR_LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z]+ +\[|\{"time":"\d{4}-)/;

/**
 * How a line of the old Python image-transfer-daemon's log starts (Python logging's
 * `%(asctime)s - %(name)s - %(levelname)s - `, its logger `image_transfer`):
 * `2026-11-30 22:01:13,512 - image_transfer - INFO - Successfully transferred ...`. That log is at
 * this program's default path, rotated as it is rotated (`.1` to `.5`), so it is appended to.
 */
const OLD_TOOL_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - image[_-]transfer[\w.-]* - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - /;

/**
 * Why `file` must not be written as the log file, or `null` when it may (missing, empty, or a log
 * this program or the old Python tool it replaces wrote): a symbolic link (the log would go wherever it leads, the file it reaches
 * appended to and made private), a file with other names (hard links), or one whose first line is
 * not one of this program's log lines (another file given by mistake: `/etc/passwd`). Said as the
 * reason after "refusing `file`: " ("it is a symbolic link ..."), in words that end with what to do.
 */
export function notOurLog(file: string): string | null {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(file);
  } catch {
    return null; // Missing (made new), or told where it is opened.
  }
  const todo = "give the path of a new file, or of a log image-transfer wrote";
  if (info.isSymlink) {
    const target = (() => {
      try {
        return ` (to ${Deno.readLinkSync(file)})`;
      } catch {
        return "";
      }
    })();
    return `it is a symbolic link${target}: the log would be appended to whatever it ` +
      `leads to, and that made private; ${todo}`;
  }
  if (!info.isFile || info.size === 0) return null; // Not a file: said where it is opened.
  if (info.nlink !== null && info.nlink > 1) {
    return `it has ${info.nlink - 1} other name(s) (hard links): the log would be ` +
      `appended to a file that is also elsewhere; ${todo}`;
  }
  let head: string;
  try {
    using opened = Deno.openSync(file);
    const buffer = new Uint8Array(256);
    head = new TextDecoder().decode(buffer.subarray(0, opened.readSync(buffer) ?? 0));
  } catch {
    return null; // Cannot be read: told where it is opened.
  }
  if (OUR_LINE.test(head) || OLD_TOOL_LINE.test(head)) return null;
  return `it is not a log of image-transfer (its first line is not one of its log lines): ` +
    `it would be appended to, and made private; ${todo} (move this one away if it is an old log)`;
}

/**
 * Create `file` readable by its owner only (0600), or make an existing one so
 * (POSIX): a log names every file and destination, and a hook's output. A file
 * that is not this program's log is refused ({@linkcode notOurLog}).
 */
async function createPrivate(file: string): Promise<void> {
  const foreign = notOurLog(file);
  if (foreign !== null) throw new Error(`refusing ${file}: ${foreign}`);
  // Opened to append, a pipe would wait for a reader for ever.
  const found = await Deno.stat(file).catch(() => null);
  if (found !== null && !found.isFile) {
    throw new Error(`${file} is not a regular file (a device, a pipe?)`);
  }
  if (Deno.build.os === "windows") return;
  (await Deno.open(file, { create: true, append: true, mode: 0o600 })).close();
  const { isFile, mode, uid } = await Deno.stat(file);
  if (isFile && mode !== null && (mode & 0o077) !== 0 && uid === Deno.uid()) {
    await Deno.chmod(file, mode & 0o700);
  }
}

/**
 * The log file's sink in force, closed here (not by LogTape) once another set-up is in place or
 * logging is shut down: LogTape closes the sinks it is given before it puts the next set-up in
 * place, and a line logged in that moment (other awaiting code runs in it) reached stderr and
 * never the file, neither the former nor the next.
 */
let fileInForce: Disposable | null = null;

/**
 * Configure logging for the whole process.
 *
 * @throws when the log file's folder cannot be created or the file cannot be opened
 */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const formatter = options.format === "json" ? formatJson : formatText;
  const encoder = new TextEncoder();
  const stderrSink: Sink = (record) => {
    Deno.stderr.writeSync(encoder.encode(formatter(record)));
  };
  const sinks: Record<string, Sink> = { stderr: stderrSink };
  let file: (Sink & Disposable) | null = null;
  if (options.logFile) {
    try {
      await Deno.mkdir(dirname(options.logFile), { recursive: true, mode: 0o700 });
      await createPrivate(options.logFile);
      // A line the file cannot take is said to stderr, the journal under a service manager.
      const opened = logFileSink(
        options.logFile,
        formatter,
        LOG_MAX_BYTES,
        LOG_MAX_FILES,
        stderrSink,
      );
      file = opened;
      // Given to LogTape without its dispose: LogTape would close it as a reload begins, while
      // lines still went to stderr until the new set-up was in place (see fileInForce).
      sinks.file = (record) => opened(record);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(
        `Cannot open log file ${options.logFile}: ${reason}; set log_file to a writable path, or "" to log to stderr only`,
        { cause: error },
      );
    }
  }
  try {
    await configureSinks(sinks, options);
  } catch (error) {
    file?.[Symbol.dispose]();
    throw error;
  }
  // No logger writes to the former file any more: closed only now.
  fileInForce?.[Symbol.dispose]();
  fileInForce = file;
}

/** Put `sinks` in place for every logger (the file first). */
async function configureSinks(
  sinks: Record<string, Sink>,
  options: LoggingOptions,
): Promise<void> {
  await configure({
    reset: true,
    sinks,
    loggers: [
      {
        category: ["image-transfer"],
        lowestLevel: options.verbose ? "debug" : options.level ?? "info",
        // The file first: a line seen on the console is already in the file, even
        // when the process is killed the moment after.
        sinks: sinks.file ? ["file", "stderr"] : ["stderr"],
      },
      // The reason the program exits goes to the log file only: stderr gets
      // the same reason as the `error: ` line every command prints.
      { category: EXIT_CATEGORY, sinks: sinks.file ? ["file"] : [], parentSinks: "override" },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

const EXIT_CATEGORY = ["image-transfer", "exit"];

/**
 * Write why the program exits to the log file (if logging is set up with
 * one), so a service whose console nobody sees still leaves its reason.
 */
export function logExit(error: unknown, exitCode: number): void {
  // The causes of a named error (a config line, a held lock) are internal detail.
  const reason = exitCode === ExitCode.failure
    ? describeErrorChain(error).replaceAll("\n", "; ")
    : (error instanceof Error ? error.message : String(error)).replaceAll("\n", "; ");
  getLogger(EXIT_CATEGORY).fatal("Exiting with code {exitCode}: {reason}", { exitCode, reason });
}

/** Flush and close log sinks (call before exit). */
export async function shutdownLogging(): Promise<void> {
  await reset();
  fileInForce?.[Symbol.dispose]();
  fileInForce = null;
}
