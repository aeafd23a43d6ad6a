/**
 * Where the daemon logs when its config cannot be loaded: it still writes why
 * it exits to a log file, because a service's console is often seen by no
 * one. Only the top-level `log_file` and `log_format` are read, without
 * validating the rest (aliases are not expanded). A file others can write is
 * not trusted with choosing where to write: the default log file is used.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { isMap, parseDocument } from "yaml";
import { daemonShape } from "./schema.ts";
import { resolveLogFile } from "./resolve.ts";
import { configFileProblem } from "./file_mode.ts";

/** The log settings of a config file that did not load. */
export interface EarlyLogSettings {
  /** Log file, or `""` for none. */
  logFile: string;
  format: "text" | "json";
}

/**
 * The log file and format `file` asks for, or the schema's defaults where it
 * cannot say; no log file when the default cannot be found (no home folder).
 */
export async function earlyLogSettings(file: string): Promise<EarlyLogSettings> {
  const written = await writtenLogSettings(file);
  const format = daemonShape.log_format.safeParse(written.log_format);
  let logFile: string;
  try {
    const given = daemonShape.log_file.safeParse(written.log_file);
    logFile = resolveLogFile(
      given.success ? given.data : daemonShape.log_file.parse(undefined),
      dirname(resolve(file)),
    );
  } catch {
    logFile = ""; // No home folder: no default log file either.
  }
  return { logFile, format: format.success ? format.data : "text" };
}

/** The top-level `log_file` and `log_format` values of `file`, where it can be trusted with them. */
async function writtenLogSettings(
  file: string,
): Promise<{ log_file?: unknown; log_format?: unknown }> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return {};
  }
  if (await configFileProblem(file) !== undefined) return {};
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) return {};
  // Without keepScalar, get() gives a scalar's value, or the node of anything else.
  return { log_file: doc.contents.get("log_file"), log_format: doc.contents.get("log_format") };
}
