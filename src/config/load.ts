/**
 * Read, validate and resolve the YAML config file. Every problem is reported
 * at once, one per line, as `file:line: key.path: what is wrong` (what is wrong
 * with the YAML itself: `config/yaml_problems.ts`).
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { isMap, LineCounter, parseDocument } from "yaml";
import { COMMAND_LINE_CONFIG, type Config } from "./types.ts";
import { configCommand, defaultsWithoutHome, isDefaultConfigPath } from "./paths.ts";
import { type DaemonInput, daemonSchema } from "./schema.ts";
import { ConfigError, guardedPathReason } from "../errors.ts";
import { describeValue, Issues, type Json } from "./messages.ts";
import { checkConfigFileMode, checkIdentityFileModes } from "./file_mode.ts";
import { DAEMON_KEYS, readJobs } from "./jobs.ts";
import { resolveDaemon, resolveJob } from "./resolve.ts";
import {
  keepLastOfDuplicateKeys,
  otherYamlVersion,
  plainValue,
  syntaxErrorLine,
  syntaxReason,
} from "./yaml_problems.ts";
import { looksLikeToml, tomlMessage } from "./toml_hint.ts";
import { FITS_NOT_CONFIG, isFitsImage } from "./data_file.ts";

/**
 * Load, validate and resolve a config file. The file and the jobs' SSH
 * identity files must not be writable by group or others, and the file must
 * belong to root or to the account the daemon runs as (POSIX).
 *
 * @param file path of the YAML file
 * @param runsAs user id the daemon runs as, when it is not the current user (install-service)
 * @returns the configuration with defaults applied and local paths made absolute
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export async function loadConfig(file: string, runsAs?: number | null): Promise<Config> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.stat(file);
    if (!info.isFile && !info.isDirectory) {
      throw new ConfigError(
        `Cannot read config file ${file}: it is not a regular file (a device, a pipe?); ` +
          "pass the YAML file itself with -c",
        { file },
      );
    }
    bytes = await Deno.readFile(file);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(readFailure(file, error), { file, cause: error });
  }
  if (isFitsImage(bytes)) {
    throw new ConfigError(
      `Cannot read config file ${file}: ${FITS_NOT_CONFIG}; give the YAML config file with -c, ` +
        "or write a template into a new one with `image-transfer -c FILE.yaml init` (the " +
        "folder of the images goes in its watch_path)",
      { file },
    );
  }
  const text = configText(file, bytes);
  await checkConfigFileMode(file, runsAs);
  if (looksLikeToml(text, file)) throw new ConfigError(tomlMessage(text, file), { file });
  const config = parseConfig(text, file);
  await checkIdentityFileModes(config);
  return config;
}

/**
 * Validate and resolve config `text` as if read from `file` (used for messages
 * and as the base of relative paths).
 *
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    // `<<: *defaults` merges a mapping into another (YAML 1.1's merge key), as users expect.
    merge: true,
    // Problems are reported as ConfigError lines, not as process warnings.
    logLevel: "error",
  });
  const issues = new Issues(file, doc, lineCounter);
  // Before its syntax errors: `%YAML 1.1` without `---` after it is one, of no use to say.
  const version = otherYamlVersion(text);
  if (version !== null) {
    issues.addAtLine(version.line, version.reason);
    issues.throwIfAny();
  }
  const syntaxLines = new Set<number>();
  for (const error of doc.errors) {
    const line = syntaxErrorLine(doc, lineCounter, error.pos[0], error.code, text);
    // One parser error per line: later ones on the same line are consequences.
    if (!syntaxLines.has(line)) {
      issues.addAtLine(line, syntaxReason(error, doc, lineCounter, text.split("\n")[line - 1]));
    }
    syntaxLines.add(line);
  }
  // A key written twice leaves a document that can still be checked (the later value counts):
  // its other problems are said with it, so that one run shows them all.
  if (doc.errors.some((error) => error.code !== "DUPLICATE_KEY")) issues.throwIfAny();
  keepLastOfDuplicateKeys(doc);
  if (doc.contents === null) {
    throw new ConfigError(
      `${file}: the config file is empty; write at least watch_path and remote_base_path ` +
        "(and remote_host, unless transfer_method: local), or get a commented template with " +
        `\`${initCommandFor(file)} --force\``,
      { file },
    );
  }
  const plain = plainValue(doc, lineCounter);
  if (!plain.ok) {
    issues.addAtLine(plain.line, plain.reason);
    issues.throwIfAny();
  }
  const value = plain.ok ? plain.value : undefined;
  if (!isMap(doc.contents)) {
    // Another file given with -c (a private key, /etc/hosts) is one long text: its start is
    // enough to know it by, and no init --force is offered over a file that is no YAML file.
    const got = typeof value === "string" && value.length > 40
      ? `${describeValue(value.slice(0, 40))}\u2026`
      : describeValue(value);
    const remedy = /\.ya?ml$/i.test(file)
      ? `get a commented template with \`${initCommandFor(file)} --force\``
      : "give the YAML config file with -c, or write a template into a new one with " +
        "`image-transfer -c FILE.yaml init`";
    throw new ConfigError(
      `${file}:${issues.lineOf([])}: expected "key: value" lines at the top level, got ${got}; ` +
        remedy,
      { file, line: issues.lineOf([]) },
    );
  }
  const top = value as Json;
  const baseDir = dirname(resolve(file));
  const daemonKeys = Object.fromEntries(Object.entries(top).filter(([k]) => DAEMON_KEYS.has(k)));
  const daemon = parseDaemonKeys(daemonKeys, file);
  if (!daemon.success) { for (const issue of daemon.error.issues) issues.addZod(issue, [], top); }
  const jobs = readJobs(top, issues);
  issues.throwIfAny();
  // No problem was found, so the daemon keys are valid.
  const settings = daemon.data as DaemonInput;
  try {
    return {
      file: file === COMMAND_LINE_CONFIG ? file : resolve(file),
      ...resolveDaemon(settings, baseDir),
      jobs: jobs.map(({ data, name }) => resolveJob(data, name, baseDir)),
    };
  } catch (error) {
    // A path that cannot be made absolute (no home folder): said of its key, in this file.
    if (!(error instanceof ConfigError)) throw error;
    throw new ConfigError(`${file}: ${error.message}`, { file, cause: error.cause });
  }
}

/**
 * The daemon-wide keys checked against the schema, which fills in the defaults.
 *
 * @throws {ConfigError} when a default is in a home folder that cannot be found
 */
function parseDaemonKeys(keys: Json, file: string): ReturnType<typeof daemonSchema.safeParse> {
  // Only the defaults in the home folder can throw: a service started without HOME.
  const missing = defaultsWithoutHome(keys);
  if (missing.length === 0) return daemonSchema.safeParse(keys);
  throw new ConfigError(
    `${file}: ${missing.join(" and ")} ${missing.length > 1 ? "default" : "defaults"} to the ` +
      "home folder, which cannot be found (neither HOME nor USERPROFILE is set): set HOME, or " +
      `write ${missing.join(" and ")} as absolute paths` +
      (missing.includes("log_file") ? ' (or log_file: "" for no log file)' : ""),
    { file },
  );
}

/**
 * The text of a config file: UTF-8, or a clear refusal with the line of the first byte that is
 * not (a file saved in Latin-1 or Windows-1252, or not text at all).
 */
function configText(file: string, bytes: Uint8Array): string {
  if (isUtf16(bytes)) {
    throw new ConfigError(
      `${file}: the file is UTF-16 text (Notepad's "Unicode"), not UTF-8; save it as UTF-8 (in ` +
        "Notepad: Save as, Encoding: UTF-8)",
      { file },
    );
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    const decoded = new TextDecoder().decode(bytes);
    const at = decoded.indexOf("\uFFFD");
    const line = decoded.slice(0, at).split("\n").length;
    const binary = bytes.subarray(0, 8192).includes(0);
    throw new ConfigError(
      binary
        ? `${file}: not a text file (it holds NUL bytes); give the YAML config file with -c`
        : `${file}:${line}: the file is not UTF-8 text; save it as UTF-8 (in Notepad: Save as, ` +
          "Encoding: UTF-8)",
      { file },
    );
  }
}

/**
 * Whether `bytes` are UTF-16 text: its byte order mark, or (without one) a NUL beside nearly every
 * character, as text in Latin letters has.
 */
function isUtf16(bytes: Uint8Array): boolean {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return true;
  }
  const head = bytes.subarray(0, 512);
  if (head.length < 8) return false;
  const nuls = [0, 1].map((odd) => head.filter((byte, i) => i % 2 === odd && byte === 0).length);
  return Math.max(...nuls) >= 0.9 * Math.floor(head.length / 2);
}

/** The `init` command line that writes `file` (`-c` left out for the default file). */
export function initCommandFor(file: string): string {
  return configCommand(file, "init");
}

/** A readable reason why `file` could not be read. */
function readFailure(file: string, error: unknown): string {
  if (error instanceof Deno.errors.NotFound && file.includes("\uFFFD")) {
    // The runtime put U+FFFD for the bytes of the name that are not UTF-8: no file has this name.
    return `Cannot read config file ${file}: its path is not valid UTF-8 (\uFFFD stands for ` +
      "the bytes that are not), so the file cannot be opened by it; rename the file or folder " +
      "to a UTF-8 name (`ls -b` shows the exact name)";
  }
  if (error instanceof Deno.errors.NotFound) {
    const hint = isDefaultConfigPath(file)
      ? "create it with `image-transfer init`, or pass another file with -c <file>"
      : `create it with \`${initCommandFor(file)}\`, or check the path`;
    return `Cannot read config file ${file}: it does not exist; ${hint}`;
  }
  if (error instanceof Deno.errors.IsADirectory) {
    return `Cannot read config file ${file}: it is a folder; pass the YAML file itself with -c`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `Cannot read config file ${file}: permission denied; check the file's owner and mode`;
  }
  const guarded = guardedPathReason(error);
  if (guarded !== null) {
    return `Cannot read config file ${file}: ${
      guarded.replace("choose a folder", "keep the file")
    }`;
  }
  const reason = error instanceof Error ? error.message : String(error);
  return `Cannot read config file ${file}: ${reason}`;
}
