/**
 * What `resend` says when it chooses no file to send again: the chosen files that have not
 * arrived yet and where they stand (failed, waiting, in the watch folder and not sent yet), which
 * `resend` does not take (they go by themselves); only when nothing at all matches, how a
 * pattern is matched. `resend` exits 1 with it, on stderr.
 *
 * @module
 */
import { join, relative, resolve } from "node:path";
import type { FileRows } from "../ledger/file_rows.ts";
import type { LedgerRow } from "../ledger/ledger_row.ts";
import { quoteIfUnsafe } from "../log/logging.ts";
import { slowRetryMs } from "../pipeline/attempt_outcome.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { absolutePath } from "../watch/file_version.ts";
import { pastedWord } from "../shell_words.ts";
import type { JobConfig } from "../config/types.ts";

/** Files named in the answer, at most (the rest are counted). */
const LISTED = 10;
/** Entries of a watch folder looked at for files not sent yet, at most. */
const LOOKED_AT = 100_000;

/** What `resend` chose nothing from, per job. */
export interface NoneChosen {
  job: JobConfig;
  /** The job's rows (none before its first file). */
  table: FileRows | null;
  /** Whether a path below the watch folder is chosen by the `--name`s (all: none given). */
  matches: (relPath: string) => boolean;
  /** Files chosen that arrived but are gone from the watch folder. */
  gone: number;
  /** Of those, the ones in the job's archive (`after_transfer: move`), as paths there. */
  archived: string[];
}

/** The choice as given, and what is known of the daemon. */
export interface NoneContext {
  night?: string;
  /** `--date` as given: files chosen by when they arrived (none that did not). */
  date?: string;
  /** The `--name`s given. */
  names: string[];
  /** The `--name`s that are patterns (not absolute paths). */
  globs: string[];
  /** A daemon runs on this state_dir. */
  running: boolean;
  /** It has a status page (with a Retry button per failed file). */
  page: boolean;
  /** The `run` that starts it (`-c` as given). */
  run: string;
}

/** The message: why nothing is sent again, and what became of the files chosen. */
export async function nothingChosen(jobs: NoneChosen[], context: NoneContext): Promise<string> {
  const lines: string[] = [];
  for (const { job, table, matches } of jobs) {
    if (context.date !== undefined) break;
    const rows = (table?.unfinished() ?? []).filter((row) =>
      matches(row.relPath) &&
      (context.night === undefined || row.destination.startsWith(`${context.night}/`))
    );
    for (const row of rows) lines.push(`  job ${job.name}: ${rowSaid(row, job, context)}`);
    if (context.names.length === 0 || context.night !== undefined) continue;
    for (const relPath of await unsent(job, table, matches)) {
      const skip = createFileFilter(job, { skipLog: null }).explain(relPath);
      lines.push(
        `  job ${job.name}: ${quoteIfUnsafe(relPath)} is in the watch folder, ` +
          (skip ? `and not sent: ${skip}` : `not sent yet: ${goesBy(context)}`),
      );
    }
  }
  const gone = jobs.reduce((sum, { gone }) => sum + gone, 0);
  // Every choice given, as they combine (--night 20240315 --name 'flat*').
  const also = [
    ...context.names.length > 0
      ? [`matches --name ${context.names.map(quoteIfUnsafe).join(", ")}`]
      : [],
    ...context.night ? [`went to night folder ${context.night}`] : [],
  ].join(" and ");
  const chose = context.date
    ? `no file arrived on ${context.date}${also && ` that ${also}`}`
    : also
    ? `no file that arrived ${also}`
    : "no file has arrived yet";
  if (lines.length > 0) {
    const more = lines.length > LISTED ? [`  and ${lines.length - LISTED} more`] : [];
    return `Nothing to send again: ${chose}; these have not arrived yet (resend sends again ` +
      "only files that arrived; these go by themselves):\n" +
      [...lines.slice(0, LISTED), ...more].join("\n");
  }
  if (gone > 0) {
    return `Nothing to send again: the ${gone} chosen file(s) are no longer in the watch ` +
      "folder (only a file still there can be sent again)" +
      jobs.map(({ job, archived }) => archivedSaid(job, archived)).join("");
  }
  if (context.globs.length > 0 && context.night === undefined && context.date === undefined) {
    return `Nothing to send again: ${noneMatched(context.globs, jobs[0].job)}`;
  }
  return `Nothing to send again: ${chose}`;
}

/**
 * The archive paths of the files `relPaths` (gone from `job`'s watch folder) that are in its
 * archive (`after_transfer: move` keeps their path below the watch folder), in that order.
 */
export async function inArchive(job: JobConfig, relPaths: string[]): Promise<string[]> {
  if (job.after_transfer !== "move" || job.archive_path === "") return [];
  const found: string[] = [];
  for (const relPath of relPaths) {
    const path = absolutePath(resolve(job.archive_path), relPath);
    if ((await Deno.lstat(path).catch(() => null))?.isFile) found.push(path);
  }
  return found;
}

/** Where the chosen files of `job` moved into its archive are, and how to send them again. */
function archivedSaid(job: JobConfig, archived: string[]): string {
  if (archived.length === 0) return "";
  const [first] = archived;
  const back = absolutePath(job.watch_path, relative(resolve(job.archive_path), first));
  const where = archived.length === 1
    ? quoteIfUnsafe(first)
    : `${quoteIfUnsafe(first)} and ${archived.length - 1} more, each at its path below the ` +
      "watch folder";
  return `.\nJob ${job.name} moved ${archived.length} of them into its archive ` +
    `(after_transfer: move): ${where}. To send them again, move them back into the watch ` +
    "folder at the same path, keeping their mtime (mv does; one of another mtime is taken " +
    "for a new file, sent beside its copy), e.g. " +
    `mv ${pastedWord(first)} ${pastedWord(back)}, then run this resend again (once sent, ` +
    "they go back into the archive)";
}

/** Where a file not arrived yet stands, and when it goes. */
function rowSaid(
  row: LedgerRow,
  job: JobConfig,
  context: NoneContext,
): string {
  const name = quoteIfUnsafe(row.relPath);
  const error = row.lastError ? ` (last error: ${quoteIfUnsafe(row.lastError)})` : "";
  if (row.state === "failed") {
    const retry = !context.running
      ? `the next start tries it again (${context.run})`
      : `the running daemon tries it again every ${Math.round(slowRetryMs(job) / 1000)} s` +
        (context.page ? ", or at once with Retry on its status page" : "");
    return `${name} failed after ${row.attempts} attempt(s)${error}: ${retry}`;
  }
  if (row.state === "transferring") {
    return context.running
      ? `${name} is being sent`
      : `${name} was being sent when the daemon stopped: the next start resumes it (${context.run})`;
  }
  return `${name} waits to be sent${error}: ${goesBy(context)}`;
}

/** When a file waiting goes. */
function goesBy(context: NoneContext): string {
  return context.running
    ? "the running daemon sends it by itself"
    : `it goes by itself at the next start (${context.run})`;
}

/**
 * Files below `job`'s watch folder chosen by `matches` that the ledger has no row of (not sent,
 * nor waiting), the first ones found.
 */
async function unsent(
  job: JobConfig,
  table: FileRows | null,
  matches: (relPath: string) => boolean,
): Promise<string[]> {
  const found: string[] = [];
  let looked = 0;
  const walk = async (relDir: string): Promise<void> => {
    const entries = await Array.fromAsync(Deno.readDir(join(job.watch_path, relDir)))
      .catch(() => []);
    for (const entry of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
      if (found.length > LISTED || ++looked > LOOKED_AT) return;
      const relPath = relDir === "" ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory) await walk(relPath);
      else if (matches(relPath) && !table?.get(relPath)) found.push(relPath);
    }
  };
  await walk("");
  return found;
}

/**
 * What to write instead of `globs`, none of which chose a file: a pattern is matched below the
 * watch folder, not from the folder the command was typed in.
 */
function noneMatched(globs: string[], job: JobConfig): string {
  const example = quoteIfUnsafe(join(job.watch_path, "raw", "x.fits"));
  return `no file matches --name ${globs.map((glob) => quoteIfUnsafe(glob)).join(", ")}. ` +
    "A pattern is matched against the path below the watch folder, not the current folder: " +
    `'raw/*.fits' takes ${example}, a name without / is looked for in every folder, and a ` +
    "folder's files are 'raw/**' (or its absolute path)";
}
