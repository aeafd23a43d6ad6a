/**
 * The jobs a config file describes: one job from the top-level keys, or a
 * `jobs:` list whose entries inherit the top-level job keys. Every key is
 * checked (an unknown one gets a suggestion), old key names are read under
 * their current names, and job names must be unique.
 *
 * @module
 */
import type { z } from "zod";
import { daemonShape, JOB_KEYS, type JobInput, jobSchema, TOP_LEVEL_KEYS } from "./schema.ts";
import { OLD_KEY_NAMES, OTHER_TOOLS_KEYS, SINGLE_STRING_LISTS } from "./key_meta.ts";
import { describeValue, formatPath, isPlainObject, type Issues, type Json } from "./messages.ts";
import { closestWord, type Path } from "./key_lines.ts";
import { parseDocument } from "yaml";

/** Keys allowed only at the top level. */
export const DAEMON_KEYS: ReadonlySet<string> = new Set(Object.keys(daemonShape));
const JOB_KEYS_AS_WRITTEN = new Set([...JOB_KEYS, ...OLD_KEY_NAMES.keys()]);

/** One valid job, before its paths are resolved. */
export interface JobEntry {
  data: JobInput;
  name: string;
}

/** A mapping's job keys under their current names, and how each renamed one was written. */
interface JobKeys {
  values: Json;
  /** Current name: the old name it was written under. */
  written: Map<string, string>;
}

/**
 * The valid jobs of the file's top-level mapping `top`; every problem is
 * added to `issues`.
 */
export function readJobs(top: Json, issues: Issues): JobEntry[] {
  checkKeys(issues, top, []);
  const topKeys = jobKeys(top, [], issues);
  const defaults = topKeys.values;
  const jobs: { data: JobInput; path: Path; explicitName: boolean }[] = [];
  if (!("jobs" in top)) {
    const parsed = jobSchema.safeParse(defaults);
    if (parsed.success) jobs.push({ data: parsed.data, path: [], explicitName: "name" in top });
    else addJobIssues(issues, parsed.error.issues, [], top, topKeys);
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
      checkKeys(issues, entry, path);
      const own = jobKeys(entry, path, issues);
      const parsed = jobSchema.safeParse({ ...defaults, ...own.values });
      if (parsed.success) {
        jobs.push({ data: parsed.data, path, explicitName: "name" in own.values });
        return;
      }
      // An inherited key is reported where it is written: at the top level.
      for (const issue of parsed.error.issues) {
        const key = String(issue.path[0] ?? "");
        if (key in defaults && !(key in own.values)) {
          addJobIssues(issues, [issue], [], top, topKeys);
        } else addJobIssues(issues, [issue], path, entry, own);
      }
    });
  }
  return uniqueNames(jobs, "jobs" in top, issues);
}

/** Report zod issues of the job keys of the mapping `written` at `path`, under the names used there. */
function addJobIssues(
  issues: Issues,
  zodIssues: readonly z.core.$ZodIssue[],
  path: Path,
  written: Json,
  keys: JobKeys,
): void {
  for (const issue of zodIssues) {
    const key = issue.path[0];
    issues.addZod(
      issue,
      path,
      written,
      typeof key === "string" ? keys.written.get(key) ?? key : key,
    );
  }
}

/** Name every job (`default`, or `job<N>` in a list) and report names used twice. */
function uniqueNames(
  jobs: { data: JobInput; path: Path; explicitName: boolean }[],
  inList: boolean,
  issues: Issues,
): JobEntry[] {
  const names = new Map<string, Path>();
  return jobs.map(({ data, path, explicitName }, index) => {
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
    return { data, name };
  });
}

/**
 * The job keys of `mapping` (at `path`) under their current names, a single
 * pattern made a one-element list. A key given under both its old and its
 * current name is reported, with both lines.
 */
function jobKeys(mapping: Json, path: Path, issues: Issues): JobKeys {
  const values: Json = {};
  const written = new Map<string, string>();
  for (const [key, value] of Object.entries(mapping)) {
    if (!JOB_KEYS_AS_WRITTEN.has(key)) continue;
    const current = OLD_KEY_NAMES.get(key);
    if (current === undefined) {
      values[key] = SINGLE_STRING_LISTS.has(key) && typeof value === "string" ? [value] : value;
    } else if (current in mapping) {
      const where = path.length > 0 ? ` in ${formatPath(path)}` : "";
      issues.addKey(
        [...path, key],
        `${key} (line ${issues.lineOf([...path, key])}) and ${current} (line ` +
          `${issues.lineOf([...path, current])})${where} are the same setting: ${key} is the ` +
          `old name of ${current}; keep only the ${current} line`,
      );
    } else {
      values[current] = value;
      written.set(current, key);
    }
  }
  return { values, written };
}

/** Report every key of `object` (at `path`) that does not belong there, with a hint. */
function checkKeys(issues: Issues, object: Json, path: Path): void {
  for (const key of Object.keys(object)) {
    const problem = keyProblem(key, object[key], path);
    if (problem !== null) issues.addKey([...path, key], problem);
  }
}

/**
 * What is wrong with `key` (holding `value`) in the mapping at `path` (`[]`: the top level, where
 * `run --set` puts its keys; else a jobs entry), with a hint: an unknown key with the one meant,
 * or a daemon key in a jobs entry.
 *
 * @returns the problem, or `null` for a key that belongs there (an old name, an `x-` key at the top)
 */
export function keyProblem(key: string, value: unknown, path: Path = []): string | null {
  const nested = path.length > 0;
  const allowed = nested ? JOB_KEYS : TOP_LEVEL_KEYS;
  if (allowed.includes(key) || OLD_KEY_NAMES.has(key)) return null;
  // `x-...` at the top: a place for YAML anchors (`x-defaults: &defaults ...`), not read.
  if (!nested && key.startsWith("x-")) return null;
  if (nested && DAEMON_KEYS.has(key)) {
    return `"${key}" in ${
      formatPath(path)
    } applies to the whole daemon and is only allowed at the top level of the file; move it out of the jobs entry`;
  }
  if (nested && key === "jobs") return "a jobs entry cannot contain another jobs list";
  // Another tool's key says what to write here; an old name is suggested as the current one.
  const instead = OTHER_TOOLS_KEYS.get(key);
  const guess = closestWord(key, [...allowed, ...OLD_KEY_NAMES.keys()]);
  const meant = guess === undefined ? undefined : OLD_KEY_NAMES.get(guess) ?? guess;
  // In a jobs entry, a daemon-wide key mistyped: that key, said with where it goes.
  const daemonKey = nested && meant === undefined ? closestWord(key, [...DAEMON_KEYS]) : undefined;
  const shared = !nested && typeof value === "object" && value !== null && !Array.isArray(value);
  return `unknown key "${key}"${nested ? ` in ${formatPath(path)}` : ""}` +
    (instead
      ? `; ${instead}`
      : meant
      ? `; did you mean "${meant}"?`
      : daemonKey
      ? `; did you mean "${daemonKey}"? It applies to the whole daemon: write it at the ` +
        "top level of the file, not in a jobs entry"
      : /^\s*(\/\/|\/\*)/.test(key)
      ? "; a comment starts with # in YAML: the // or /* comment and what follows it " +
        "were read as one key"
      : shared
      ? `; settings shared with a YAML anchor go under a key starting with x- ` +
        `("x-${key}: &${key}"), which is not read itself`
      : "; see the key list in the README");
}

/**
 * The job keys written at the top level of the config `file` next to a `jobs:` list that no job
 * inherits, since every entry of the list sets its own (a merged `<<: *shared` counts as set):
 * they do nothing. Top-level job keys are defaults for the entries, not a job of their own, so a
 * single-job config turned into a list by adding an entry stops sending from its own folder.
 * Empty when the file cannot be read or has no such list.
 */
export function keysNoJobInherits(file: string): string[] {
  let top: unknown;
  try {
    top = parseDocument(Deno.readTextFileSync(file), { merge: true, logLevel: "silent" }).toJS();
  } catch {
    return [];
  }
  if (!isPlainObject(top) || !Array.isArray(top.jobs) || top.jobs.length === 0) return [];
  const current = (key: string) => OLD_KEY_NAMES.get(key) ?? key;
  const own = top.jobs.map((entry) =>
    new Set(isPlainObject(entry) ? Object.keys(entry).map(current) : [])
  );
  return Object.keys(top).filter((key) =>
    key !== "name" && JOB_KEYS_AS_WRITTEN.has(key) && own.every((keys) => keys.has(current(key)))
  );
}

/**
 * The job keys written in the config `file`, under their current names: at the top level, and in
 * each entry of its `jobs:` list (empty for a file without one; a merged `<<: *shared` counts as
 * written). `null` when the file cannot be read.
 */
export function writtenJobKeys(file: string): { top: Set<string>; entries: Set<string>[] } | null {
  let top: unknown;
  try {
    top = parseDocument(Deno.readTextFileSync(file), { merge: true, logLevel: "silent" }).toJS();
  } catch {
    return null;
  }
  if (!isPlainObject(top)) return null;
  const keysOf = (map: unknown) =>
    new Set(
      isPlainObject(map)
        ? Object.keys(map).filter((key) => JOB_KEYS_AS_WRITTEN.has(key))
          .map((key) => OLD_KEY_NAMES.get(key) ?? key)
        : [],
    );
  return { top: keysOf(top), entries: Array.isArray(top.jobs) ? top.jobs.map(keysOf) : [] };
}
