/**
 * The log file's sink, and what it could not write: a line the disk refused (full, gone
 * read-only) is lost, and said once to stderr (the journal under a service manager), then
 * counted until a line is written again, when the file says how many it lost. `status`,
 * `/api/status` and `/metrics` read the count here ({@linkcode logFileLoss}).
 *
 * @module
 */
import type { LogLevel as LogTapeLevel, LogRecord, Sink, TextFormatter } from "@logtape/logtape";
import { statfsSync } from "node:fs";
import { dirname } from "node:path";

/** Lines a log file of this process could not take: the latest stretch of them. */
export interface LogFileLoss {
  file: string;
  /** When the first line of this stretch was lost, ISO 8601. */
  since: string;
  /** When a line was written again, ISO 8601; `null` while lines are still lost. */
  until: string | null;
  /** Lines lost in this stretch. */
  lines: number;
  /** Why the first of them could not be written (e.g. `No space left on device (os error 28)`). */
  reason: string;
  /** Free bytes on the log file's file system when that happened, `null` when unknown. */
  freeBytes: number | null;
}

/** Largest log file before it is rotated (bytes). */
export const LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Rotated log files kept besides the current one. */
export const LOG_MAX_FILES = 5;

const NEWLINE = 0x0a;

let latest: LogFileLoss | null = null;
let linesLostTotal = 0;
const listeners = new Set<(loss: LogFileLoss) => void>();

/** The latest stretch of lost log lines in this process, `null` when none was lost. */
export function logFileLoss(): LogFileLoss | null {
  return latest === null ? null : { ...latest };
}

/** Log lines lost in this process, every stretch counted. */
export function logLinesLostTotal(): number {
  return linesLostTotal;
}

/**
 * Call `listener` now if lines were lost, when lines start being lost, when the file is written
 * again, and at most once a second meanwhile (the count grown); returns the function that stops it.
 */
export function onLogFileLoss(listener: (loss: LogFileLoss) => void): () => void {
  if (latest !== null) listener({ ...latest });
  listeners.add(listener);
  return () => listeners.delete(listener);
}

let toldAt = 0;
function tellListeners(force: boolean): void {
  if (latest === null || (!force && Date.now() - toldAt < 1000)) return;
  toldAt = Date.now();
  for (const listener of listeners) {
    try {
      listener({ ...latest });
    } catch { /* a listener's failure is not the log's */ }
  }
}

/** Free bytes on the file system holding `file`, `null` when the system cannot tell. */
function freeBytesAt(file: string): number | null {
  try {
    const fs = statfsSync(dirname(file));
    return Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return null;
  }
}

/** A record of this module's own (category `image-transfer.log`), for the formatter. */
function ownRecord(
  level: LogTapeLevel,
  template: string[],
  properties: Record<string, unknown>,
): LogRecord {
  const message: unknown[] = [];
  template.forEach((text, i) => {
    message.push(text);
    if (i < template.length - 1) message.push(properties[Object.keys(properties)[i]]);
  });
  return {
    category: ["image-transfer", "log"],
    level,
    message,
    rawMessage: template.join("{}"),
    timestamp: Date.now(),
    properties,
  };
}

/**
 * The log file's sink: each line is written as it is logged, so a daemon killed (SIGKILL, out of
 * memory) leaves every line it logged before, the ledger's and the log's account alike (written,
 * not synced: the system puts it on disk, and a burst of lines costs no disk flush each). Past
 * `maxBytes` the file becomes `<file>.1`, and the older ones `.2` to `.<maxFiles>`. A line that
 * cannot be written (a full disk) is lost, never the daemon stopped: the first is said to `tell`
 * (stderr), with the reason and the free space; the next line written starts on a line of its own
 * (never joined to a line cut short), after one saying how many were lost, said to `tell` too.
 */
export function logFileSink(
  file: string,
  formatter: TextFormatter,
  maxBytes = LOG_MAX_BYTES,
  maxFiles = LOG_MAX_FILES,
  tell: (record: LogRecord) => void = () => {},
): Sink & Disposable {
  const say = (record: LogRecord) => {
    try {
      tell(record);
    } catch { /* stderr closed: the count in `status` and `/metrics` still says it */ }
  };
  const encoder = new TextEncoder();
  const open = () => Deno.openSync(file, { create: true, append: true, mode: 0o600 });
  let out: Deno.FsFile | null = open();
  let size = out.statSync().size;
  // Where the next rotation is due: a rotation that failed is tried again `maxBytes` later.
  let rotateAt = maxBytes;
  /** The last write stopped inside a line: the next starts with a line break. */
  let cutLine = false;
  /** Lines lost since the last one written (this sink's stretch). */
  let losing: LogFileLoss | null = null;
  const rotate = () => {
    // No file open: the open after a rotation failed; the files are not shifted again.
    if (out !== null) {
      out.close();
      out = null;
      cutLine = false;
      try {
        for (let n = maxFiles - 1; n > 0; n--) {
          try {
            Deno.renameSync(`${file}.${n}`, `${file}.${n + 1}`);
          } catch { /* not there yet */ }
        }
        Deno.renameSync(file, `${file}.1`);
      } catch { /* kept as it is */ }
    }
    out = open();
    size = out.statSync().size;
    rotateAt = size + maxBytes;
  };
  const lost = (error: unknown) => {
    linesLostTotal++;
    if (losing !== null) {
      losing.lines++;
      tellListeners(false);
      return;
    }
    const reason = error instanceof Error ? error.message : String(error);
    losing = latest = {
      file,
      since: new Date().toISOString(),
      until: null,
      lines: 1,
      reason,
      freeBytes: freeBytesAt(file),
    };
    say(ownRecord(
      "error",
      [
        "Cannot write the log file ",
        ": ",
        " (",
        " bytes free on its disk); its lines are lost until it can " +
        "be written again (they still go to stderr)",
      ],
      { file, reason, freeBytes: losing.freeBytes ?? "?" },
    ));
    tellListeners(true);
  };
  /** The file takes lines again: `again` (written in it) is said to stderr too. */
  const endLoss = (again: LogRecord) => {
    if (losing === null) return;
    losing.until = new Date().toISOString();
    losing = null;
    say(again);
    tellListeners(true);
  };
  let closed = false;
  const sink = (record: LogRecord) => {
    if (closed) return;
    const again = losing === null ? null : ownRecord(
      "warning",
      ["The log file ", " is written again: ", " line(s) lost since ", " (", ")"],
      { file, lines: losing.lines, since: losing.since, reason: losing.reason },
    );
    const notice = encoder.encode(again ? formatter(again) : "");
    const line = encoder.encode(formatter(record));
    let written = 0;
    /** Where the notice ends in what is written (after a line break closing a cut line). */
    let noticeEnd = Infinity;
    try {
      if (out === null || (size > 0 && size + notice.length + line.length > rotateAt)) rotate();
      const lead = cutLine ? 1 : 0;
      const whole = new Uint8Array(lead + notice.length + line.length);
      if (cutLine) whole[0] = NEWLINE;
      whole.set(notice, lead);
      whole.set(line, lead + notice.length);
      noticeEnd = lead + notice.length;
      let rest = whole;
      try {
        while (rest.length > 0) {
          const n = out!.writeSync(rest);
          rest = rest.subarray(n);
          written += n;
          size += n;
        }
      } finally {
        // Part of a line written: the next write starts on a line of its own.
        if (written > 0) cutLine = whole[written - 1] !== NEWLINE;
      }
    } catch (error) {
      // The notice in the file, the line after it not: that stretch ended, and a new one begins.
      if (again !== null && written >= noticeEnd) endLoss(again);
      lost(error);
      return;
    }
    if (again !== null) endLoss(again);
  };
  return Object.assign(sink, {
    [Symbol.dispose]: () => {
      closed = true;
      out?.close();
      out = null;
    },
  });
}
