/**
 * What a reload (SIGHUP) changes, in words for the log: the jobs added,
 * removed and renamed (the job each goes on from: {@linkcode formerJob}), and
 * each key that changed, of a job that keeps its name or of the daemon, with
 * its value before and after; and the files a job's patterns leave out at its
 * start (the daemon's, or a reload's), said once with their count ({@linkcode PatternSkips}).
 *
 * @module
 */
import type { Config, JobConfig } from "../config/types.ts";
import { destinationIdentity } from "../ledger/destination_identity.ts";
import { logger, quoteIfUnsafe } from "../log/logging.ts";
import { filePatternsSaid, optionOfKey } from "../config/key_lines.ts";
import { ignoredByMethod, METHOD_KEYS } from "../config/method_keys.ts";
import type { FilterOptions } from "../watch/file_filter.ts";
import { sharedSkipLog, type Skip, type SkipLog } from "../watch/skip_log.ts";

/** Daemon-wide keys not said as changed: `state_dir` refuses the reload. */
const NOT_COMPARED = new Set(["file", "jobs", "state_dir"]);

/** The status page's keys: a reload does not apply them (their warning says so). */
const STATUS_KEYS = new Set([
  "status_listen",
  "status_token_file",
  "status_tls_cert",
  "status_tls_key",
]);

/** A value as the log shows it: JSON, so `""`, `null` and lists read as such. */
function shown(value: unknown): string {
  return value === undefined ? "(not set)" : JSON.stringify(value);
}

/** An entry added or removed, its keys left empty (`""`, `[]`: not given) left out. */
function shownEntry(value: unknown): string {
  if (!isEntry(value)) return shown(value);
  const given = (v: unknown) => v !== "" && !(Array.isArray(v) && v.length === 0);
  return shown(Object.fromEntries(Object.entries(value).filter(([, v]) => given(v))));
}

/** Whether `value` is a plain object (a `schedules` entry, say), not a list or a scalar. */
function isEntry(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Where `from` and `to` differ, below the key path `at`: `at old -> new`; a list of entries
 * (objects) or an entry, per entry and key (see {@linkcode changedEntries}), so a change to one
 * entry is not shown as the whole list.
 */
function changedValues(at: string, from: unknown, to: unknown, changes: string[]): void {
  if (JSON.stringify(from) === JSON.stringify(to)) return;
  if (Array.isArray(from) && Array.isArray(to) && [...from, ...to].some(isEntry)) {
    changedEntries(at, from, to, changes);
  } else if (isEntry(from) && isEntry(to)) {
    for (const key of [...new Set([...Object.keys(from), ...Object.keys(to)])].sort()) {
      changedValues(`${at}.${key}`, from[key], to[key], changes);
    }
  } else changes.push(`${at} ${shown(from)} -> ${shown(to)}`);
}

/**
 * Where the lists of entries `from` and `to` differ, entries matched wherever they are: one the
 * same in both is no change where it is now (its place moved by others added or removed); of the
 * others, one of `to` is taken for the one of `from` with the most keys alike (`action`, `cron`,
 * ...), said per key (`schedules[1].cron "0 18 * * *" -> "30 18 * * *"`, with where it was if it
 * moved), the rest `schedules[2] removed {...}` (where it was) and `schedules[2] added {...}`
 * (where it is); entries the same in both but in another order, `schedules reordered`.
 */
function changedEntries(at: string, from: unknown[], to: unknown[], changes: string[]): void {
  const text = (value: unknown) => JSON.stringify(value);
  const left = new Set(from.keys()), added = new Set(to.keys());
  const same: number[] = []; // The place in `from` of each entry the same in `to`, in `to`'s order.
  for (const index of to.keys()) {
    const kept = left.has(index) && text(from[index]) === text(to[index])
      ? index
      : [...left].find((old) => text(from[old]) === text(to[index]));
    if (kept === undefined) continue;
    left.delete(kept);
    added.delete(index);
    same.push(kept);
  }
  const edited = new Map<number, number>(); // A place in `to` -> the one in `from`.
  for (const index of added) {
    const scored = [...left].map((old) => ({ old, score: alike(from[old], to[index]) }))
      .filter(({ score }) => score > 0).sort((a, b) => b.score - a.score);
    if (scored.length === 0) continue;
    edited.set(index, scored[0].old);
    left.delete(scored[0].old);
  }
  for (const old of left) changes.push(`${at}[${old}] removed ${shownEntry(from[old])}`);
  for (const index of to.keys()) {
    const old = edited.get(index);
    if (old !== undefined) {
      const was = old === index ? "" : ` (the entry was ${at}[${old}])`;
      const said: string[] = [];
      changedValues(`${at}[${index}]`, from[old], to[index], said);
      changes.push(...said.map((change) => change + was));
    } else if (added.has(index)) changes.push(`${at}[${index}] added ${shownEntry(to[index])}`);
  }
  if (same.some((old, i) => i > 0 && old < same[i - 1])) {
    changes.push(`${at} reordered (no entry changed; they are numbered as listed now)`);
  }
}

/** How many keys given (not empty) `a` and `b` (entries) hold alike; 0 if either is not one. */
function alike(a: unknown, b: unknown): number {
  if (!isEntry(a) || !isEntry(b)) return 0;
  const given = (v: unknown) =>
    v !== "" && v !== undefined && !(Array.isArray(v) && v.length === 0);
  return Object.keys(a).filter((key) =>
    given(a[key]) && JSON.stringify(a[key]) === JSON.stringify(b[key])
  ).length;
}

/** The keys whose values differ between `before` and `after`, as `key: old -> new`. */
function changedKeys(before: object, after: object, skip?: Set<string>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changes: string[] = [];
  for (const key of [...keys].sort()) {
    if (skip?.has(key)) continue;
    const from = (before as Record<string, unknown>)[key];
    const to = (after as Record<string, unknown>)[key];
    changedValues(key, from, to, changes);
  }
  return changes;
}

/**
 * The keys of transfer methods neither `before`'s nor `after`'s sends by (`ssh_port` of a `local`
 * job), with the words of which methods use each: the job ignores them (`config/method_keys.ts`).
 */
function unusedKeys(before: JobConfig, after: JobConfig): Map<string, string> {
  const unused = new Map<string, string>();
  for (const key of METHOD_KEYS.keys()) {
    const [from, to] = [before, after].map((job) =>
      ignoredByMethod(key, true, job.transfer_method)
    );
    if (from !== null && to !== null) unused.set(key, to);
  }
  return unused;
}

/**
 * Whether a job's settings are all the same in `before` and `after` (it goes on untouched), but
 * for keys its transfer method ignores (neither of them uses them).
 */
export function sameJobSettings(before: JobConfig, after: JobConfig): boolean {
  return changedKeys(before, after, new Set(unusedKeys(before, after).keys())).length === 0;
}

/**
 * The changes of a job from `before` to `after` (see {@linkcode changedKeys}), a key its method
 * ignores said so (`ssh_port null -> 22 (ignored: only scp and rsync use it)`).
 */
function jobChanges(before: JobConfig, after: JobConfig, skip?: Set<string>): string[] {
  const unused = unusedKeys(before, after);
  return changedKeys(before, after, skip).map((change) => {
    const why = unused.get(/^[^ .[]+/.exec(change)![0]);
    return why === undefined ? change : `${change} (ignored: ${why})`;
  });
}

/** Where a job sends, in a few words. */
function route(job: JobConfig): string {
  const host = job.remote_host
    ? `${job.remote_user ? `${job.remote_user}@` : ""}${job.remote_host}:`
    : "";
  return `${job.watch_path} -> ${host}${job.remote_base_path} (${job.transfer_method})`;
}

/** Whether `a` and `b` send from one watch folder to one destination (a job renamed). */
function samePlaces(a: JobConfig, b: JobConfig): boolean {
  return a.watch_path === b.watch_path && destinationIdentity(a) === destinationIdentity(b);
}

/**
 * The job of `current` that `job` (one of `next`) goes on from, as the ledger's rows do
 * (`ledger/job_names.ts`): the one that sends from its watch folder to its destination, under
 * whatever name (renamed, or two jobs that swapped names), else the one of its name, unless a job
 * of `next` sends from that one's folder to its destination; `undefined`: a job added.
 */
export function formerJob(
  current: readonly JobConfig[],
  next: readonly JobConfig[],
  job: JobConfig,
): JobConfig | undefined {
  const there = current.find((old) => samePlaces(old, job));
  if (there) return there;
  const named = current.find((old) => old.name === job.name);
  return named && !next.some((other) => samePlaces(other, named)) ? named : undefined;
}

/**
 * One line per change from `current` to `next`: `job cam3 added (...)`,
 * `job cam1 removed (...)`, `job cam1 renamed to north (...)` (the same watch
 * folder and destination under a new name; two jobs that swapped names are two such lines),
 * `job cam2: remote_base_path "/a" -> "/b"`, `log_format "text" -> "json"`, `status_listen "a"
 * -> "b" (taken at the next restart)`; `[]` when nothing
 * changed.
 */
export function reloadChanges(current: Config, next: Config): string[] {
  const changes: string[] = [];
  const former = new Map(next.jobs.map((job) => [job, formerJob(current.jobs, next.jobs, job)]));
  for (const job of next.jobs) {
    const old = former.get(job);
    if (!old) changes.push(`job ${job.name} added (${route(job)})`);
    else if (old.name !== job.name) {
      const keys = jobChanges(old, job, new Set(["name"]));
      changes.push(
        `job ${old.name} renamed to ${job.name} (${route(job)}): what it sent stays its own` +
          (keys.length > 0 ? `; ${keys.join(", ")}` : ""),
      );
    }
  }
  const goneOn = new Set(former.values());
  for (const job of current.jobs) {
    if (goneOn.has(job)) continue;
    changes.push(
      `job ${job.name} removed (${route(job)}): its files are no longer sent, ` +
        "nothing in its ledger is forgotten",
    );
  }
  for (const job of next.jobs) {
    const old = former.get(job);
    if (!old || old.name !== job.name) continue;
    const keys = jobChanges(old, job);
    if (
      old.remote_base_path !== job.remote_base_path &&
      destinationIdentity(old) === destinationIdentity(job)
    ) {
      // Another spelling of the same folder: what was sent there is not sent again.
      const at = keys.findIndex((key) => key.startsWith("remote_base_path "));
      if (at >= 0) keys[at] += " (the same folder)";
    }
    if (keys.length > 0) changes.push(`job ${job.name}: ${keys.join(", ")}`);
  }
  for (const change of changedKeys(current, next, NOT_COMPARED)) {
    const key = change.slice(0, change.indexOf(" "));
    changes.push(
      STATUS_KEYS.has(key) ? `${change} (taken at the next restart)` : change,
    );
  }
  return changes;
}

/** How many of the names a job's patterns leave out {@linkcode PatternSkips} names as examples. */
export const PATTERN_SKIP_EXAMPLES = 3;

/**
 * The skip log of a job until its first scan is over (at the daemon's start, or after a reload
 * that changed it): a name its `file_patterns` or `exclude_patterns` leave out is remembered by
 * `log` (said at debug level only) and counted, so a folder of thousands of other files (or of
 * files sent before, after a reload) is said in one line with the count and a few of them by
 * {@linkcode release}, not in one line each; every other skip, and every one after, as `log`
 * says it.
 */
export class PatternSkips implements Pick<SkipLog, "skipped" | "followed"> {
  #job: JobConfig;
  #reload: boolean;
  #said: SkipsSaid;
  #log: SkipLog;
  #held = true;
  #count = 0;
  #examples: string[] = [];

  /**
   * @param reload the job starts after a reload that changed it (its patterns leave out "now")
   * @param said how the job's run is named: its options or its config file's keys, and `status`
   *   (@default its config file's keys, `image-transfer status`)
   */
  constructor(job: JobConfig, reload: boolean, said?: SkipsSaid, log: SkipLog = sharedSkipLog) {
    this.#job = job;
    this.#reload = reload;
    this.#said = said ?? { fromOptions: false, status: "image-transfer status" };
    this.#log = log;
  }

  /** The options of the job's file filter: its skips reported here, in the words of its run. */
  get filterOptions(): FilterOptions {
    return { skipLog: this, fromOptions: this.#said.fromOptions };
  }

  /** See `SkipLog.skipped`. */
  skipped(path: string, skip: Skip, fields: Record<string, unknown> = {}): boolean {
    const byPattern = skip.code === "unmatched" || skip.code === "excluded";
    if (!this.#held || !byPattern || skip.level !== "info") {
      return this.#log.skipped(path, skip, fields);
    }
    const first = this.#log.skipped(path, { ...skip, level: "debug" }, fields);
    if (first) {
      this.#count++;
      if (this.#examples.length < PATTERN_SKIP_EXAMPLES) this.#examples.push(quoteIfUnsafe(path));
    }
    return first;
  }

  /** Entries of job `job` said at ERROR so far: see `SkipLog.errorsOf`. */
  cannotSend(job: string): number {
    return this.#log.errorsOf(job);
  }

  /** See `SkipLog.followed`. */
  followed(path: string, target: string, policy: string, fields: Record<string, unknown> = {}) {
    this.#log.followed(path, target, policy, fields);
  }

  /** Say the names held back, in one line with their count; from now on each skip is said. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    if (this.#count === 0) return;
    const job = this.#job;
    // A run without a config file: the --set that gave them, or the default patterns.
    const patterns = this.#said.fromOptions
      ? filePatternsSaid(job.file_patterns, true, !job.case_sensitive_patterns) +
        (job.exclude_patterns.length === 0 ? "" : ` or ${optionOfKey("exclude_patterns")}`)
      : "its file_patterns or exclude_patterns";
    logger("watch").info(
      `Skipped {count} name(s) of job {job} that {patterns} leave out${
        this.#reload ? " now" : ""
      }, {examples} among them (\`{status}\` lists them, -v logs each)`,
      {
        job: job.name,
        count: this.#count,
        examples: this.#examples.join(", "),
        patterns,
        status: this.#said.status,
      },
    );
  }
}

/**
 * How what a job's patterns leave out is said: in the words of a run's options (`fromOptions`:
 * a run without a config file) or of its config file's keys, and the `status` command that lists
 * them (with the config file's `-c`, or the run's options).
 */
export interface SkipsSaid {
  fromOptions: boolean;
  status: string;
}
