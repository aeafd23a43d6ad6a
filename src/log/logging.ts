/**
 * Logging set-up: human-readable or JSON lines to stderr, plus a rotating log
 * file. One LogTape category per stage under `image-transfer`.
 *
 * @module
 */
import {
  configure,
  getLogger,
  type Logger,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";
import { getRotatingFileSink } from "@logtape/file";
import { dirname } from "node:path";

/** Largest log file before it is rotated (bytes). */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Rotated log files kept besides the current one. */
export const LOG_MAX_FILES = 5;

/** The logger of one pipeline stage, e.g. `logger("watch")`. */
export function logger(stage: string): Logger {
  return getLogger(["image-transfer", stage]);
}

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** Debug level (spawned argv etc.) instead of info. */
  verbose: boolean;
  /** Rotating log file; `""` or undefined for none. */
  logFile?: string;
  format: "text" | "json";
}

function renderMessage(record: LogRecord): string {
  let out = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    if (i % 2 === 0) out += part as string;
    else out += typeof part === "string" ? part : JSON.stringify(part);
  }
  return out;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** Local time as `YYYY-MM-DD HH:MM:SS.mmm` (greppable by `date +%Y-%m-%d`). */
function localTimestamp(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${
      pad(d.getMilliseconds(), 3)
    }`;
}

/** One text line: `2024-03-15 03:12:45.123 INFO  [transfer] Successfully transferred a -> b`. */
export function formatText(record: LogRecord): string {
  const level = record.level.toUpperCase().padEnd(7);
  const stage = record.category.slice(1).join(".") || "main";
  return `${localTimestamp(record.timestamp)} ${level} [${stage}] ${renderMessage(record)}\n`;
}

/** One JSON object per line, with the message rendered and its properties as fields. */
export function formatJson(record: LogRecord): string {
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record),
    ...record.properties,
  }) + "\n";
}

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
  if (options.logFile) {
    try {
      await Deno.mkdir(dirname(options.logFile), { recursive: true });
      sinks.file = getRotatingFileSink(options.logFile, {
        maxSize: LOG_MAX_BYTES,
        maxFiles: LOG_MAX_FILES,
        formatter,
        // Written and flushed to disk in the background at most every second,
        // so a burst of log lines never stalls the watcher.
        nonBlocking: true,
        bufferSize: 64 * 1024,
        flushInterval: 1000,
      }) as Sink;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `Cannot open log file ${options.logFile}: ${reason}; set log_file to a writable path, or "" to log to stderr only`,
        { cause: error },
      );
    }
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      {
        category: ["image-transfer"],
        lowestLevel: options.verbose ? "debug" : "info",
        sinks: Object.keys(sinks),
      },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** Flush and close log sinks (call before exit). */
export async function shutdownLogging(): Promise<void> {
  await reset();
}
