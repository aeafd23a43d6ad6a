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
import { defaultLogFile, expandPath } from "./paths.ts";
import { isWritableByOthers } from "./file_mode.ts";

/** The log settings of a config file that did not load. */
export interface EarlyLogSettings {
  /** Log file, or `""` for none. */
  logFile: string;
  format: "text" | "json";
}

/** The log file and format `file` asks for, or the defaults where it cannot say. */
export async function earlyLogSettings(file: string): Promise<EarlyLogSettings> {
  let fallback: EarlyLogSettings;
  try {
    fallback = { logFile: defaultLogFile(), format: "text" };
  } catch {
    return { logFile: "", format: "text" }; // No home folder: no default log file either.
  }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return fallback;
  }
  if (await isWritableByOthers(file)) return fallback;
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) return fallback;
  // Without keepScalar, get() gives a scalar's value (a string), or the node of anything else.
  const logFile: unknown = doc.contents.get("log_file");
  const format: unknown = doc.contents.get("log_format");
  return {
    logFile: typeof logFile !== "string"
      ? fallback.logFile
      : logFile === ""
      ? ""
      : expandPath(logFile, dirname(resolve(file))),
    format: format === "json" ? "json" : "text",
  };
}
