/**
 * Read, validate and resolve the YAML config file. Every problem is reported
 * at once, one per line, as `file:line: key.path: what is wrong`.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { isMap, LineCounter, parseDocument } from "yaml";
import type { Config, JobConfig, VerifyMode } from "./types.ts";
import { defaultConfigPath, defaultLogFile, defaultStateDir, expandPath } from "./paths.ts";
import {
  daemonSchema,
  daemonShape,
  JOB_KEYS,
  type JobInput,
  jobSchema,
  TOP_LEVEL_KEYS,
} from "./schema.ts";
import { ConfigError } from "../errors.ts";
import {
  describeValue,
  formatPath,
  isPlainObject,
  Issues,
  type Json,
  type Path,
  SINGLE_STRING_LISTS,
} from "./issues.ts";
import { plainValue, syntaxErrorLine, syntaxReason } from "./yaml_problems.ts";
import { checkConfigFileMode, checkIdentityFileModes } from "./file_mode.ts";
import { closestWord } from "../suggest.ts";

const DAEMON_KEYS = new Set(Object.keys(daemonShape));

/**
 * The config file to use: `-c` if given (with `~` expanded, made absolute),
 * else the default location.
 */
export function resolveConfigPath(option?: string): string {
  return option ? expandPath(option) : defaultConfigPath();
}

/**
 * Load, validate and resolve a config file. The file and the jobs' SSH
 * identity files must not be writable by group or others (POSIX).
 *
 * @param file path of the YAML file
 * @returns the configuration with defaults applied and paths expanded
 * @throws {ConfigError} listing every problem with file, line, key and what was expected
 */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    throw new ConfigError(readFailure(file, error), { file, cause: error });
  }
  await checkConfigFileMode(file);
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
    // Problems are reported as ConfigError lines, not as process warnings.
    logLevel: "error",
  });
  const issues = new Issues(file, doc, lineCounter);
  const syntaxLines = new Set<number>();
  for (const error of doc.errors) {
    const line = syntaxErrorLine(doc, lineCounter, error.pos[0], error.code);
    // One parser error per line: later ones on the same line are consequences.
    if (!syntaxLines.has(line)) issues.addAtLine(line, syntaxReason(error, doc, lineCounter));
    syntaxLines.add(line);
  }
  issues.throwIfAny();
  if (doc.contents === null) {
    throw new ConfigError(
      `${file}: the config file is empty; write at least watch_path, remote_host and ` +
        `remote_base_path, or get a commented template with \`${initCommandFor(file)} --force\``,
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
    const got = describeValue(value);
    throw new ConfigError(
      `${file}:${issues.lineOf([])}: expected "key: value" lines at the top level, got ${got}; ` +
        `get a commented template with \`${initCommandFor(file)} --force\``,
      { file, line: issues.lineOf([]) },
    );
  }
  const top = value as Json;
  const baseDir = dirname(resolve(file));

  checkKeys(issues, top, [], TOP_LEVEL_KEYS);
  const daemon = daemonSchema.safeParse(pick(top, DAEMON_KEYS));
  if (!daemon.success) issues.addZod(daemon.error.issues, [], top);

  const defaults = normalizeLists(pick(top, new Set(JOB_KEYS)));
  const jobs: { data: JobInput; path: Path; explicitName: boolean }[] = [];
  if (!("jobs" in top)) {
    const parsed = jobSchema.safeParse(defaults);
    if (parsed.success) jobs.push({ data: parsed.data, path: [], explicitName: "name" in top });
    else issues.addZod(parsed.error.issues, [], top);
  } else if (!Array.isArray(top.jobs)) {
    issues.add(
      ["jobs"],
      `expected a list of jobs (each entry starts with "- "), got ${describeValue(top.jobs)}`,
    );
  } else if (top.jobs.length === 0) {
    issues.add(
      ["jobs"],
      "the list is empty; add at least one job, or remove `jobs:` and keep the job keys at the top level",
    );
  } else {
    if ("name" in defaults) {
      issues.add(
        ["name"],
        "a top-level name would be inherited by every job; set name inside each jobs entry",
      );
      delete defaults.name;
    }
    top.jobs.forEach((entry: unknown, index) => {
      const path: Path = ["jobs", index];
      if (!isPlainObject(entry)) {
        issues.add(
          path,
          `expected the keys of one job ("key: value" lines), got ${describeValue(entry)}`,
        );
        return;
      }
      checkKeys(issues, entry, path, JOB_KEYS);
      const own = normalizeLists(pick(entry, new Set(JOB_KEYS)));
      const parsed = jobSchema.safeParse({ ...defaults, ...own });
      if (parsed.success) jobs.push({ data: parsed.data, path, explicitName: "name" in own });
      else {
        // An inherited key is reported where it is written: at the top level.
        for (const issue of parsed.error.issues) {
          const key = String(issue.path[0] ?? "");
          const inherited = key in defaults && !(key in own);
          issues.addZod([issue], inherited ? [] : path, inherited ? top : entry);
        }
      }
    });
  }

  const inList = "jobs" in top;
  const names = new Map<string, Path>();
  const resolved: JobConfig[] = [];
  jobs.forEach(({ data, path, explicitName }, index) => {
    const name = data.name ?? (inList ? `job${index + 1}` : "default");
    const earlier = names.get(name);
    if (earlier) {
      issues.add(
        explicitName ? [...path, "name"] : path,
        `duplicate job name "${name}" (also used by ${formatPath(earlier)} on line ` +
          `${issues.lineOf(earlier)}); give every job a unique name`,
      );
    }
    names.set(name, path);
    resolved.push(resolveJob(data, name, baseDir));
  });
  issues.throwIfAny();

  const daemonData = daemon.success
    ? daemon.data
    : { log_format: "text" as const, status_listen: "127.0.0.1:8765", status_token_file: null };
  return {
    file: resolve(file),
    state_dir: daemonData.state_dir === undefined
      ? defaultStateDir()
      : expandPath(daemonData.state_dir, baseDir),
    log_file: daemonData.log_file === undefined
      ? defaultLogFile()
      : daemonData.log_file === ""
      ? ""
      : expandPath(daemonData.log_file, baseDir),
    log_format: daemonData.log_format,
    status_listen: daemonData.status_listen,
    status_token_file: daemonData.status_token_file
      ? expandPath(daemonData.status_token_file, baseDir)
      : null,
    jobs: resolved,
  };
}

/** Apply the name, map `verify_transfer` and expand the local paths of one job. */
function resolveJob(data: JobInput, name: string, baseDir: string): JobConfig {
  const verify: VerifyMode = data.verify_transfer === true
    ? "size"
    : data.verify_transfer === false
    ? "none"
    : data.verify_transfer;
  const { name: _name, ...rest } = data;
  return {
    name,
    ...rest,
    verify_transfer: verify,
    watch_path: expandPath(data.watch_path, baseDir),
    // For scp/rsync this is a path on the remote host: left as written (a leading ~/ included).
    remote_base_path: data.transfer_method === "local"
      ? expandPath(data.remote_base_path, baseDir)
      : data.remote_base_path,
    ssh_identity_file: data.ssh_identity_file === null
      ? null
      : expandPath(data.ssh_identity_file, baseDir),
  };
}

/** Report every key of `object` not in `allowed`, with a hint where it belongs or what was meant. */
function checkKeys(issues: Issues, object: Json, path: Path, allowed: readonly string[]): void {
  const nested = path.length > 0;
  for (const key of Object.keys(object)) {
    if (allowed.includes(key)) continue;
    const at: Path = [...path, key];
    if (nested && DAEMON_KEYS.has(key)) {
      issues.addKey(
        at,
        `"${key}" in ${
          formatPath(path)
        } applies to the whole daemon and is only allowed at the top level of the file; move it out of the jobs entry`,
      );
    } else if (nested && key === "jobs") {
      issues.addKey(at, "a jobs entry cannot contain another jobs list");
    } else {
      const guess = closestWord(key, allowed);
      issues.addKey(
        at,
        `unknown key "${key}"${nested ? ` in ${formatPath(path)}` : ""}` +
          (guess ? `; did you mean "${guess}"?` : "; see the key list in the README"),
      );
    }
  }
}

/** The entries of `object` whose key is in `keys`. */
function pick(object: Json, keys: Set<string>): Json {
  return Object.fromEntries(Object.entries(object).filter(([key]) => keys.has(key)));
}

/** Accept `file_patterns: "*.fits"` as a one-element list. */
function normalizeLists(job: Json): Json {
  for (const key of SINGLE_STRING_LISTS) {
    if (typeof job[key] === "string") job[key] = [job[key]];
  }
  return job;
}

/** The `init` command line that writes `file`. */
function initCommandFor(file: string): string {
  if (file === defaultConfigPath()) return "image-transfer init";
  return `image-transfer -c ${/[\s'"$`]/.test(file) ? JSON.stringify(file) : file} init`;
}

/** A readable reason why `file` could not be read. */
function readFailure(file: string, error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    const hint = file === defaultConfigPath()
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
  const reason = error instanceof Error ? error.message : String(error);
  return `Cannot read config file ${file}: ${reason}`;
}
