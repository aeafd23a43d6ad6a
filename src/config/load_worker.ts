/**
 * The worker that loads the config file for the daemon (see
 * `load_in_worker.ts`): the YAML reader, the schema and its validator live and
 * end with it. Answers one `{ file, text? }` with `{ config }`, or with
 * `{ failure }` describing what `loadConfig` (or, given `text`, `parseConfig`)
 * threw.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { loadConfig, parseConfig } from "./load.ts";
import type { ConfigLoadAnswer, ThrownError } from "./load_in_worker.ts";

/** `error` and its causes as plain data (what a message between threads can carry). */
function describe(error: unknown, depth = 0): ThrownError {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  const { file, line, code } = error as { file?: string; line?: number; code?: string };
  return {
    name: error.name,
    message: error.message,
    file,
    line,
    code,
    cause: error.cause !== undefined && depth < 10 ? describe(error.cause, depth + 1) : undefined,
  };
}

self.onmessage = async ({ data }: MessageEvent<{ file: string; text?: string }>) => {
  let answer: ConfigLoadAnswer;
  try {
    const { file, text } = data;
    answer = { config: text === undefined ? await loadConfig(file) : parseConfig(text, file) };
  } catch (error) {
    answer = { failure: describe(error) };
  }
  self.postMessage(answer);
};
