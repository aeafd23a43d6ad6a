/**
 * Which entries of a watch folder belong to the job: names matching
 * `file_patterns` (case-insensitively unless `case_sensitive_patterns`), not
 * matching `exclude_patterns`, not hidden, not our own temporary files, not
 * names the job's method cannot carry (a line break over FTP); and,
 * when the filter knows the watch folder, entries that are regular files (or
 * links the `symlinks` policy allows). Every skip can be explained, and is
 * reported once per path (`skip_log.ts`).
 *
 * @module
 */
import { join } from "node:path";
import { sharedSkipLog, type Skip, type SkipLog } from "./skip_log.ts";

// @ts-types="@types/picomatch"
import picomatch from "picomatch";
import { isTempName } from "../layout/destination.ts";
import { filePatternsSaid, jobKeyPlace } from "../config/key_lines.ts";
import type { Config } from "../config/types.ts";
import {
  classifyEntry,
  type EntryHint,
  type EntryVerdict,
  isFileThere,
  lineBreakSkip,
  type SymlinkPolicy,
} from "./entry_check.ts";

/** What {@linkcode createFileFilter} needs of a job. */
export interface FilterJob {
  file_patterns: string[];
  exclude_patterns: string[];
  /** @default false */
  case_sensitive_patterns?: boolean;
  /** @default "skip" */
  symlinks?: SymlinkPolicy;
  /** When given, {@linkcode FileFilter.includesFile} also checks what the entry is (lstat). */
  watch_path?: string;
  /** Job name, for log lines. */
  name?: string;
  /** With `ftp`, a name holding a line break is never sent ({@linkcode lineBreakSkip}). */
  transfer_method?: string;
}

/** Options of {@linkcode createFileFilter}. */
export interface FilterOptions {
  /** Where skips are reported once per path; `null` reports nothing. @default sharedSkipLog */
  skipLog?: Pick<SkipLog, "skipped" | "followed"> | null;
  fromOptions?: boolean; // A run's without a config file: a skip names its options, not keys.
}

/** Decides, from a path relative to the watch folder (`/` separators), what to do with it. */
export interface FileFilter {
  /** The job's `symlinks` policy. */
  readonly symlinks: SymlinkPolicy;
  /**
   * Whether the entry at `relPath` should be sent: its name, then (when the
   * filter knows the watch folder) what it is. A skip is reported once. An
   * entry whose name is sent and that cannot be examined now (its lstat fails
   * otherwise than "not found": a share's I/O error, a folder's permissions)
   * may be a file: included, for the stability checker to look at until it can.
   *
   * @param parentIncluded the caller already knows the file's folder is
   *   included (a scan that only enters included folders)
   */
  includesFile(relPath: string, parentIncluded?: boolean): boolean;
  /** Whether the folder at `relPath` may hold files to send (not hidden, not excluded). */
  includesDir(relPath: string): boolean;
  /** Why the entry at `relPath` is not sent, or `null` if it is. Reports nothing. */
  explain(relPath: string): string | null;
  /** Why a file named `relPath` is not sent by the name rules alone, or `null`. */
  nameSkip(relPath: string, parentIncluded?: boolean): Skip | null;
  /** Why the folder at `relPath` (whose parents are included) is not entered, or `null`. */
  dirSkip(relPath: string): Skip | null;
  /**
   * What the entry at `relPath` is ({@linkcode classifyEntry}); needs the
   * watch folder. A followed link is reported once.
   */
  classify(relPath: string, hint?: EntryHint): EntryVerdict;
  /** Report a skip once per path (no-op without a skip log). */
  report(relPath: string, skip: Skip): void;
  /** Report once that the link to a folder at `relPath` (pointing to `target`) is entered. */
  reportFollowed(relPath: string, target: string): void;
}

/**
 * Build the filter of a job. A pattern without `/` matches the base name at
 * any depth (`*.fits`); one with `/` matches the whole relative path
 * (`raw/**\/*.fits`). Exclude patterns also apply to every parent folder, so
 * `calib`, `calib/` or `calib/**` skip a whole subtree.
 */
export function createFileFilter(job: FilterJob, options: FilterOptions = {}): FileFilter {
  const nocase = !(job.case_sensitive_patterns ?? false);
  const include = matcher(job.file_patterns, nocase);
  const patternsSaid = filePatternsSaid(job.file_patterns, options.fromOptions ?? false, nocase);
  // A pattern ending in "/" names folders only (`calib/`: every folder calib, as in .gitignore).
  const excludes = job.exclude_patterns.map((p) => ({
    pattern: p,
    folders: p.endsWith("/"),
    match: matcher([p.replace(/\/+$/, "")], nocase),
  }));
  const symlinks = job.symlinks ?? "skip";
  const skipLog = options.skipLog === undefined ? sharedSkipLog : options.skipLog;
  const fields = job.name === undefined ? {} : { job: job.name };
  const root = job.watch_path;
  const absolute = (relPath: string) => root === undefined ? relPath : join(root, relPath);

  // Logged once per path at INFO, so a file that is not sent is never silent; hidden names and
  // this program's own temporary files only with -v: most writers copy through a hidden name
  // first, and a line per image would bury the rest.
  const skip = (code: string, reason: string): Skip => ({
    code,
    reason,
    level: code === "hidden" || code === "temp" ? "debug" : "info",
  });
  const ftp = job.transfer_method === "ftp";
  const excludedBy = (relPath: string, folder: boolean) => {
    for (const e of excludes) if ((folder || !e.folders) && e.match(relPath)) return e.pattern;
  };

  const dirSkip = (relPath: string): Skip | null => {
    const name = relPath.slice(relPath.lastIndexOf("/") + 1);
    if (name.startsWith(".")) return skip("hidden", "hidden folder (its name starts with a dot)");
    const pattern = excludedBy(relPath, true);
    if (pattern !== undefined) return skip("excluded", `folder matches exclude pattern ${pattern}`);
    return ftp ? lineBreakSkip(name, "folder") : null;
  };

  /** The first folder on the way to `relPath` (a file) that is not entered, with why. */
  const parentSkip = (relPath: string): Skip | null => {
    const parts = relPath.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const why = dirSkip(dir);
      if (why) return { ...why, reason: `in folder ${dir}: ${why.reason}` };
    }
    return null;
  };

  const nameSkip = (relPath: string, parentIncluded = false): Skip | null => {
    const slash = relPath.lastIndexOf("/");
    const name = relPath.slice(slash + 1);
    if (name === "") return skip("empty", "empty name");
    if (isTempName(name)) return skip("temp", "an image-transfer temporary file");
    if (name.startsWith(".")) return skip("hidden", "hidden (its name starts with a dot)");
    if (!parentIncluded && slash > 0) {
      const why = parentSkip(relPath);
      if (why) return why;
    }
    if (!include(relPath)) {
      // A blank after the extension does not show in a listing: say it, or the name looks sent.
      const blankEnd = /\s+$/.exec(name)?.[0];
      return skip(
        "unmatched",
        blankEnd !== undefined && include(relPath.slice(0, -blankEnd.length))
          ? `matches none of ${patternsSaid}: its name ends in ${JSON.stringify(blankEnd)} ` +
            "after the extension; rename it without that to send it"
          : `matches none of ${patternsSaid}`,
      );
    }
    const pattern = excludedBy(relPath, false);
    if (pattern !== undefined) return skip("excluded", `matches exclude pattern ${pattern}`);
    return ftp ? lineBreakSkip(name, "file") : null;
  };

  const verdictOf = (relPath: string, hint?: EntryHint, quiet = false): EntryVerdict => {
    if (root === undefined) return { ok: true, source: relPath };
    const verdict = classifyEntry(absolute(relPath), { watch_path: root, symlinks }, hint);
    if (!quiet && verdict.ok && verdict.linkTarget !== undefined) {
      skipLog?.followed(absolute(relPath), verdict.linkTarget, symlinks, fields);
    }
    return verdict;
  };
  const classify = (relPath: string, hint?: EntryHint) => verdictOf(relPath, hint);

  const report = (relPath: string, why: Skip) =>
    void skipLog?.skipped(absolute(relPath), why, fields);

  /** The whole decision; a followed link is reported unless `quiet`, a skip never. */
  const decide = (relPath: string, parentIncluded: boolean, quiet = false): Skip | null => {
    const byName = nameSkip(relPath, parentIncluded);
    if (byName) return byName;
    if (root === undefined) return null;
    const verdict = verdictOf(relPath, undefined, quiet);
    return verdict.ok ? null : verdict;
  };

  return {
    symlinks,
    includesDir(relPath) {
      if (relPath === "" || relPath === ".") return true;
      const parts = relPath.split("/");
      for (let i = 1; i <= parts.length; i++) {
        if (dirSkip(parts.slice(0, i).join("/"))) return false;
      }
      return true;
    },
    includesFile(relPath, parentIncluded = false) {
      const why = decide(relPath, parentIncluded);
      if (why === null || why.code === "unreadable") return true;
      // A watcher reports folders too, and names that are gone (renamed or moved away): the
      // name rules for files say nothing about either. Without a log, nothing is looked at.
      if (skipLog === null) return false;
      if (!NAME_RULES.has(why.code) || isFileThere(absolute(relPath))) report(relPath, why);
      return false;
    },
    explain(relPath) {
      return decide(relPath, false, true)?.reason ?? null;
    },
    nameSkip,
    dirSkip,
    classify,
    report,
    reportFollowed: (relPath, target) =>
      skipLog?.followed(absolute(relPath), target, symlinks, fields),
  };
}

/** Skip codes of the name rules. */
const NAME_RULES = new Set(["empty", "temp", "hidden", "unmatched", "excluded", "ftp-name"]);

/**
 * Match a relative path against `patterns`: those without `/` against its base
 * name, the others against the whole path. picomatch's `basename` option
 * would apply to every pattern, so the two kinds are compiled apart. The `s`
 * flag lets `*` and `**` match names that start with or contain a newline; `i`
 * makes upper and lower case match alike. Patterns and names are compared in
 * one Unicode form (NFC): a name written with a combining accent, as macOS
 * writes names, matches the accented letter typed in the config. `resend --name` matches
 * by the same rules.
 */
export function matcher(patterns: string[], nocase: boolean): (relPath: string) => boolean {
  // `flags` replaces the flags picomatch derives from `nocase`, so both go here.
  const options = { dot: true, flags: nocase ? "si" : "s", nocase };
  const composed = patterns.map(nfc);
  const tests = composed.map((p) =>
    p.includes("/")
      ? globTest(p, options, false)
      : globTest(p, { ...options, basename: true }, true)
  );
  return (relPath) => {
    const path = nfc(relPath);
    for (const test of tests) if (test(path)) return true;
    return false;
  };
}

/** A pattern of literal characters, `*` and `/` only: matched as a name, it stands for its names. */
const PLAIN_PATTERN = /^[^?[\]{}()!@+\\,]+$/;

/**
 * What to say of each job of `config` whose `exclude_patterns` leave out every name its
 * `file_patterns` take (`exclude_patterns: ["*"]`), so it sends nothing: the exclusions that do.
 * Told where an exclusion matches each file pattern read as a name, both plain (see
 * {@linkcode PLAIN_PATTERN}): then it matches every name that file pattern takes.
 */
export function excludedEverything(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    const nocase = !job.case_sensitive_patterns;
    const files = (pattern: string) => !pattern.endsWith("/") && PLAIN_PATTERN.test(pattern);
    const excludes = job.exclude_patterns.filter(files);
    if (excludes.length === 0 || !job.file_patterns.every(files)) return [];
    const covering = job.file_patterns.map((name) =>
      excludes.find((pattern) => matcher([pattern], nocase)(name))
    );
    if (covering.some((pattern) => pattern === undefined)) return [];
    const said = [...new Set(covering)].map((pattern) => JSON.stringify(pattern)).join(", ");
    return [
      `${jobKeyPlace(config, index, "exclude_patterns")}: ${said} leave${
        said.includes(",") ? "" : "s"
      } out every name file_patterns takes (${job.file_patterns.join(", ")}), so this job ` +
      'sends nothing; narrow the exclusion (e.g. "*.tmp") or remove it',
    ];
  });
}

/**
 * picomatch's own test of one pattern (its `test`, and `matchBase` for a pattern matched against
 * the base name), with the regular expression and slashes it compiled, but none of the objects it
 * makes per call: a scan asks once per file, and those objects outlived the young generation.
 */
function globTest(glob: string, options: picomatch.PicomatchOptions, base: boolean) {
  const compiled = picomatch(glob, options)("", true);
  // A copy: picomatch deletes a property of its own, which takes V8's fast path from `test`.
  const regex = new RegExp(compiled.regex.source, compiled.regex.flags);
  const posix = compiled.posix;
  return (input: string): boolean => {
    if (input === "") return false;
    if (input === glob) return true;
    const output = posix ? input.replace(/\\/g, "/") : input;
    if (output === glob) return true;
    return regex.test(base ? baseName(input, posix) : output);
  };
}

/** picomatch's `basename`: the last part of `path` (the one before, when it ends in a slash). */
function baseName(path: string, windows: boolean): string {
  const cut = lastSlash(path, path.length - 1, windows);
  if (cut >= 0 && cut === path.length - 1) {
    return path.slice(lastSlash(path, cut - 1, windows) + 1, cut);
  }
  return cut < 0 ? path : path.slice(cut + 1);
}

/** The index of the last separator of `path` at or before `before`, or -1. */
function lastSlash(path: string, before: number, windows: boolean): number {
  if (before < 0) return -1;
  const slash = path.lastIndexOf("/", before);
  return windows ? Math.max(slash, path.lastIndexOf("\\", before)) : slash;
}

/** `text` in Unicode's composed form (NFC); ASCII, most names, as it is. */
function nfc(text: string): string {
  return NOT_ASCII.test(text) ? text.normalize("NFC") : text;
}

/** Any character beyond ASCII (one object: a literal in `nfc` would make one per call). */
const NOT_ASCII = /[\u0080-\uffff]/;
