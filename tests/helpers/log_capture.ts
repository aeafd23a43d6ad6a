/**
 * Capture the product's log records in a test (LogTape, in memory).
 *
 * @module
 */
import { configure, type LogRecord, reset } from "@logtape/logtape";

/** Captured records; `stop()` restores an unconfigured LogTape. */
export interface LogCapture {
  records: LogRecord[];
  /** Records at `level` whose message template contains `text`. */
  count(level: LogRecord["level"], text: string): number;
  stop(): Promise<void>;
}

/** Start capturing every record of the `image-transfer` categories (debug and up). */
export async function captureLogs(): Promise<LogCapture> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["image-transfer"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return {
    records,
    count: (level, text) =>
      records.filter((r) => r.level === level && String(r.rawMessage).includes(text)).length,
    stop: () => reset(),
  };
}
