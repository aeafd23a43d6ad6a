/**
 * `status`: whether a daemon is running, and what the ledger knows: counts
 * per state, recent transfers, and failures with their reasons.
 *
 * @module
 */
import { Command, Option } from "commander";
import { UsageError } from "../errors.ts";
import { COMMAND_LINE_CONFIG, type Config, type JobConfig } from "../config/types.ts";
import type { FileState } from "../ledger/file_rows.ts";
import { ledgerTarget } from "../ledger/destination_spellings.ts";
import {
  hooksOwed,
  ledgerCounts,
  overdueFiles,
  problemFiles,
  recentDone,
  type TransferRow,
} from "../status/ledger_reports.ts";
import { Ledger } from "../ledger/ledger.ts";
import { ledgerName } from "../ledger/job_names.ts";
import { judgeStateDir, whatRunDoes } from "../ledger/ledger_check.ts";
import { senderIdTrouble } from "../ledger/state_files.ts";
import { watchHow } from "../watch/fs_type.ts";
import { answerWithin, SHARE_ANSWER_MS } from "../config/file_systems.ts";
import { globalOptions } from "./options.ts";
import {
  addFindOptions,
  daemonConfig,
  daemonStatus,
  describeDaemon,
  describePause,
  type FindOptions,
  otherStateDirHint,
} from "./daemon_state.ts";
import { quoteIfUnsafe } from "../log/logging.ts";
import { askDaemon, formatLive } from "./live_status.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { readablePath, readableText } from "../watch/readable_names.ts";
import { pausedAt, windowEnd } from "../pipeline/pause_windows.ts";
import { nextTry } from "../status/next_try.ts";
import { scanFolder, type SkippedEntry } from "../watch/scan.ts";

const STATES: FileState[] = ["pending", "transferring", "done", "failed"];

/** Why no page is asked, where the daemon is asked where its page listens and has not said. */
const PAGE_NOT_SAID = "the daemon has not said that its status page listens, so none is asked: " +
  "it started none (its log says why: status_listen off, or its address in use), or not yet";

/** A retry due longer ago than this, and not started, is shown as a problem. */
const OVERDUE_AFTER_MS = 60_000;

function when(ms: number | null): string {
  if (ms === null) return "-";
  return new Date(ms).toLocaleString("sv-SE");
}

/**
 * How a job's watch folder is watched, when the live status does not say it
 * already: as the daemon would decide now ("would be", with no daemon running),
 * or why it cannot be read or does not answer (`look`: see {@linkcode lookAt}; `null` for a
 * job the config does not name, or whose folder does not exist).
 */
function watchLine(
  config: Config,
  name: string,
  live: Awaited<ReturnType<typeof askDaemon>> | undefined,
  running: boolean,
  look: FolderLook | undefined,
): string | null {
  if (live && "jobs" in live && live.jobs.some((job) => job.job === name && job.watch)) {
    return null;
  }
  const job = config.jobs.find((job) => job.name === name);
  if (!job || look === undefined) return null;
  if (look === "none") return `  Watch folder ${job.watch_path} does not exist (not mounted yet?)`;
  if (look === "file") {
    return `  Watch folder ${job.watch_path} is a file, not a folder: give watch_path a folder`;
  }
  if (look === null) return `  Watch folder ${NO_ANSWER}`;
  if (look instanceof Error) return `  Watch folder cannot be read: ${look.message}`;
  const how = watchHow(job.watch_path, job.watch_mode, job.poll_interval_seconds);
  return `  ${running ? "Watched" : "Would be watched"} with ${how.summary}`;
}

/** The `status` command. */
export function statusCommand(): Command {
  return addFindOptions(new Command("status"))
    .description(
      "show whether a daemon is running, counts per state, recent transfers and failures, and what the watch folders skip",
    )
    .addOption(
      new Option("-n, --limit <count>", "how many recent transfers and failures to list")
        .default("10", "10"),
    )
    .option("--json", "print JSON instead of text")
    .option("--all", `list every skipped entry (else the first ${SKIPPED_SHOWN} per job)`)
    .action(async (
      options: { limit: string; json?: boolean; all?: boolean } & FindOptions,
      command: Command,
    ) => {
      if (!/^\d+$/.test(options.limit.trim())) {
        throw new UsageError(
          `-n/--limit ${JSON.stringify(options.limit)}: give how many transfers and failures to ` +
            "list, a whole number (0 or more), e.g. -n 20",
        );
      }
      // A count beyond any ledger's rows lists them all (SQLite takes no larger whole number).
      const limit = Math.min(Number(options.limit), Number.MAX_SAFE_INTEGER - 1);
      const found = await daemonConfig(globalOptions(command).config, options);
      const { config, problem, pageOfDaemon } = found;
      // No config file, nor the options of a run without one: the default state folder's.
      const hint = !problem && config.file !== COMMAND_LINE_CONFIG && config.jobs.length === 0
        ? otherStateDirHint("status")
        : undefined;
      // Said first, and again as the error that ends it (exit 2).
      if (problem && !options.json) {
        console.log(
          `Config ${config.file} cannot be read (below): a running daemon keeps the config it ` +
            `had; shown from its state_dir ${config.state_dir}, with the jobs its ledger knows.`,
        );
      }
      await showStatus(config, { ...options, hint, pageOfDaemon }, limit);
      if (problem) throw problem;
    });
}

/**
 * Print the status of the daemon and ledger of `config` (see the `status` command);
 * `pageOfDaemon`: its `status_listen` is only what the daemon says (see `daemonConfig`).
 */
async function showStatus(
  config: Config,
  options: { json?: boolean; all?: boolean; hint?: string; pageOfDaemon?: boolean },
  limit: number,
): Promise<void> {
  const daemon = daemonStatus(config.state_dir);
  // A daemon that says no page: none is asked (the config's address may be another program's).
  const unsaid = options.pageOfDaemon === true && config.status_listen === "";
  const live = !daemon.running
    ? undefined
    : unsaid
    ? { unavailable: PAGE_NOT_SAID }
    : await askDaemon(config, daemon.pid, daemon.statusListen);
  const liveLines = live === undefined || (config.status_listen === "" && !unsaid)
    ? []
    : "jobs" in live
    ? formatLive(live)
    : [`Live status unavailable (${live.unavailable}); showing what the ledger knows`];
  // Every watch folder looked at once, side by side, for a while (a share may not answer).
  const looks = new Map(
    await Promise.all(
      config.jobs.map(async (job) => [job.name, await lookAt(job.watch_path)] as const),
    ),
  );
  const skipped = await summarizeSkipped(config.jobs, looks, config.file === COMMAND_LINE_CONFIG);
  // As `run` would find it: a lost or damaged ledger is not read as if it were the whole story.
  const { path, found } = judgeStateDir(config.state_dir);
  const ledger = found.kind === "sound" ? Ledger.open(config.state_dir, { readOnly: true }) : null;
  // A spoilt sender_id: what run does with it, in one line (nothing is changed here).
  const daemonRuns = daemon.running && daemon.stateDir === undefined;
  const senderIdProblem = senderIdTrouble(config.state_dir, { daemonRuns, ledger });
  const idLines = senderIdProblem === null ? [] : [`Install id: ${senderIdProblem}`];
  if (!ledger) {
    // A lost or damaged ledger is not read: nothing of it is shown (exit 1, what run does on
    // stderr); with none yet (a first start), there is nothing to show.
    const lostOrDamaged = whatRunDoes(path, found);
    const said = lostOrDamaged ??
      `No ledger yet in ${config.state_dir}: nothing has been transferred.`;
    if (options.json) {
      const report = { daemon, live, ledger: null, found, senderIdProblem, skipped };
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.log(describeDaemon(daemon, config.state_dir, options.hint));
      for (const line of [...liveLines, ...idLines]) console.log(line);
      if (!lostOrDamaged) console.log(said);
      for (const line of formatSkipped(skipped, options.all ?? false)) console.log(line);
    }
    if (lostOrDamaged) throw new Error(`${said}. Until then status shows no files`);
    return;
  }
  try {
    // A job renamed since the last start: the rows that start gives it (its former name's).
    const rowsOf = (job: JobConfig) => ledgerName(ledger, job, config.jobs);
    // Its destination spelled as an older version recorded it: the rows that start takes over.
    const targetOf = (job: JobConfig) => ledgerTarget(ledger, job, rowsOf(job));
    // Files where a job sends now, as the status page shows them: one that sent elsewhere before
    // is not tried again there, a job a reload removed is not the daemon's (a config without
    // jobs: every job the ledger knows).
    const scope = config.jobs.length === 0
      ? undefined
      : config.jobs.map((job) => ({ job: rowsOf(job), target: targetOf(job) }));
    const counts = ledgerCounts(ledger, scope);
    const owed = hooksOwed(ledger, scope);
    const recent = recentDone(ledger, limit, scope);
    // One more than listed: whether there are more than `limit` to say so.
    const problemsAndMore = problemFiles(ledger, limit + 1, scope);
    const problems = problemsAndMore.slice(0, limit);
    const now = Date.now();
    const overdue = overdueFiles(ledger, now - OVERDUE_AFTER_MS, limit, scope);
    const rebuilt = ledger.rebuilt;
    if (options.json) {
      const report = {
        daemon,
        live,
        ledger: ledger.path,
        found,
        senderIdProblem,
        rebuilt,
        counts,
        hooksOwed: owed,
        recent,
        problems,
        overdue,
        skipped,
      };
      console.log(JSON.stringify(report, null, 2));
      return;
    }
    console.log(describeDaemon(daemon, config.state_dir, options.hint));
    for (const line of [...liveLines, ...idLines]) console.log(line);
    console.log(`Ledger: ${ledger.path}`);
    if (rebuilt) {
      console.log(
        rebuilt.damagedCopy === ""
          ? `  started anew ${when(rebuilt.at)}: the old one was lost (${
            quoteIfUnsafe(rebuilt.reason)
          })`
          : `  rebuilt ${when(rebuilt.at)}: the old one was damaged (${
            quoteIfUnsafe(rebuilt.reason)
          }); it is kept as ${rebuilt.damagedCopy}`,
      );
    }
    // Each job's files for the destination it sends to now (a trial run's are its own).
    const jobs = config.jobs.length > 0
      ? config.jobs.map((job) => ({
        name: job.name,
        rows: rowsOf(job),
        target: targetOf(job),
      }))
      : [...new Set(counts.map((c) => c.job))].map((name) => ({ name, rows: name, target: null }));
    // Without the page (off, or not answering): a window as the config says it, in its words.
    const windowPause = (name: string) => {
      const job = config.jobs.find((job) => job.name === name);
      const told = live !== undefined && "jobs" in live;
      return daemon.running && !told && job && daemon.jobs?.includes(name) !== false &&
          pausedAt(job, new Date())
        ? `; paused: outside a transfer window (${windowEnd(job)})`
        : "";
    };
    for (const { name: job, rows, target } of jobs) {
      const ofJob = (c: { job: string; target: string }) =>
        c.job === rows && (target === null || c.target === target || c.target === "");
      const notRun = daemon.running && daemon.jobs !== undefined && !daemon.jobs.includes(job);
      const line = STATES.map((state) => {
        const n = counts.filter((c) => ofJob(c) && c.state === state)
          .reduce((sum, c) => sum + c.count, 0);
        // With no daemon running it (none, or a reload removed it), a file `transferring` was cut
        // off: the next start of the job resumes it.
        const cut = state === "transferring" && (!daemon.running || notRun);
        // Rows taken into the batches under way: files, sent a few transfers at a time.
        const batched = state === "transferring" && !cut && n > 0;
        return `${cut ? "interrupted" : state} ${n}${
          batched ? " (files in the batches being sent)" : ""
        }`;
      }).join(", ");
      // Hooks owed: waiting for a free slot, or (no daemon running) run at the next start.
      const hooks = owed.filter(ofJob).reduce((sum, c) => sum + c.count, 0);
      const hooksLine = hooks > 0 ? `; on_transfer hooks owed ${hooks}` : "";
      console.log(
        `Job ${job}: ${line}${hooksLine}${
          describePause(daemon, job, config.file) || windowPause(job)
        }`,
      );
      const watched = notRun ? null : watchLine(config, job, live, daemon.running, looks.get(job));
      if (watched) console.log(watched);
    }
    for (const line of formatSkipped(skipped, options.all ?? false)) console.log(line);
    // -n 0 lists none: no heading over a list never asked for.
    if (limit > 0) console.log(`\nRecent transfers (${recent.length}):`);
    for (const row of recent) {
      console.log(
        `  ${when(row.transferredAt)}  [${row.job}] ${quoteIfUnsafe(row.relPath)} -> ${
          quoteIfUnsafe(row.destination)
        }`,
      );
    }
    const moreProblems = problemsAndMore.length > limit;
    // As the page says it, from what the daemon tells of its jobs (none running: its next start).
    const jobsNow = { now, jobs: !daemon.running ? null : live && "jobs" in live ? live.jobs : [] };
    const retryOf = (row: TransferRow) => nextTry(row, jobsNow, (ms) => `at ${when(ms)}`);
    // Pending while the destination holds its job: its try found the destination down (not
    // counted as an attempt), so not among the failed ones.
    // (Without the page: the pause the daemon records.)
    const held = problems.filter((row) =>
      row.state === "pending" && (retryOf(row) === "waiting for the destination" ||
        (daemon.running && daemon.paused?.[row.job]?.state.startsWith("destination ")))
    );
    const failed = problems.filter((row) => !held.includes(row));
    console.log(
      // -n 0 lists none: only whether any failed, in a sentence rather than over an empty list.
      limit === 0
        ? `\nFiles whose last attempt failed: ${moreProblems ? "some; -n N lists them" : "none"}`
        : `\nFiles whose last attempt failed (${
          moreProblems ? `more than ${limit}; -n N lists more` : failed.length
        }):`,
    );
    const listed = (row: TransferRow) =>
      `  ${when(row.updatedAt)}  [${row.job}] ${quoteIfUnsafe(row.relPath)}: ${
        quoteIfUnsafe(String(row.lastError))
      }`;
    for (const row of failed) {
      console.log(`${listed(row)} (${retryOf(row)}; ${row.attempts} attempt(s))`);
    }
    if (held.length > 0) {
      console.log(
        `\nFiles waiting for the destination (${held.length}): pending, not failed (a try while ` +
          "it is down is not counted as an attempt); they go once it answers. Their last error:",
      );
      for (const row of held) console.log(listed(row));
    }
    if (overdue.length > 0) {
      console.log(
        `\nOverdue (${overdue.length}): retries due more than a minute ago that have not ` +
          `started${daemon.running ? "" : "; is the daemon running?"}`,
      );
      for (const row of overdue) {
        const ago = Math.round((now - row.nextAttemptAt) / 1000);
        console.log(
          `  [${row.job}] ${quoteIfUnsafe(row.relPath)}: next attempt was due ${ago} s ago ` +
            `(${row.attempts} failed attempt(s); last error: ${
              quoteIfUnsafe(String(row.lastError))
            })`,
        );
      }
    }
  } finally {
    ledger.close();
  }
}

/** One job's skipped entries. */
export interface SkippedSummary {
  job: string;
  /** Entries not sent (a folder not entered counts once); `null` if the watch folder is missing. */
  skipped: number | null;
  /** Whether the watch folder answered (one on a share whose server stopped answering does not). */
  answered: boolean;
  /** Entries that cannot be sent until somebody acts (readable paths, with why). */
  attention: Array<{ path: string; reason: string }>;
  /** Every entry not sent (readable paths, with why), in scan order. */
  entries: Array<{ path: string; reason: string }>;
}

/** How many skipped entries `status` lists per job without `--all`. */
export const SKIPPED_SHOWN = 20;

/**
 * What a look at a watch folder found: a folder, none there, a file, an `Error` (one that cannot
 * be looked at or listed: a share whose client died, say), or `null`: no answer within
 * {@linkcode SHARE_ANSWER_MS}.
 */
type FolderLook = "folder" | "none" | "file" | Error | null;

/** How a folder that did not answer is told. */
const NO_ANSWER = `does not answer within ${SHARE_ANSWER_MS / 1000} s (a share whose server ` +
  "stopped answering?)";

/** Look at the folder `path` on the thread pool, for a while (see {@linkcode FolderLook}). */
function lookAt(path: string): Promise<FolderLook> {
  return answerWithin(
    Deno.stat(path).then(async (info): Promise<FolderLook> => {
      if (!info.isDirectory) return info.isFile ? "file" : "none";
      const listed = await Deno.readDir(path)[Symbol.asyncIterator]().next().catch((e) => e);
      return listed instanceof Error ? listed : "folder";
    }, (error) => error instanceof Deno.errors.NotFound ? "none" : error),
  );
}

/**
 * Scan each job's watch folder and summarise what it skips; `looks`: each job's folder as
 * {@linkcode lookAt} found it (one that did not answer is not scanned); `fromOptions`: the jobs
 * of a run without a config file, whose skips name its options.
 */
export async function summarizeSkipped(
  jobs: JobConfig[],
  looks: Map<string, FolderLook>,
  fromOptions = false,
): Promise<SkippedSummary[]> {
  const out: SkippedSummary[] = [];
  for (const job of jobs) {
    const look = looks.get(job.name);
    if (look === undefined || look === "none" || look === "file" || look === null) {
      out.push({
        job: job.name,
        skipped: null,
        attention: [],
        entries: [],
        answered: look !== null,
      });
      continue;
    }
    const skipped: SkippedEntry[] = [];
    const filter = createFileFilter(job, { skipLog: null, fromOptions });
    for await (
      const _ of scanFolder(job.watch_path, filter, { onSkipped: (e) => skipped.push(e) })
    ) { /* only the skipped entries count here */ }
    out.push({
      job: job.name,
      answered: true,
      skipped: skipped.length,
      attention: skipped.filter((e) => e.skip.level === "error").map((e) => ({
        path: readablePath(e.path) + (e.folder ? "/" : ""),
        reason: readableText(e.skip.reason),
      })),
      entries: skipped.map((e) => ({
        path: readablePath(e.path) + (e.folder ? "/" : ""),
        reason: readableText(e.skip.reason),
      })),
    });
  }
  return out;
}

/**
 * Text lines for `status` (none when nothing is skipped): each job's count,
 * then its skipped entries with why, the first {@linkcode SKIPPED_SHOWN}
 * unless `all`.
 */
export function formatSkipped(summaries: SkippedSummary[], all = false): string[] {
  const lines: string[] = [];
  for (const s of summaries) {
    if (!s.answered) {
      lines.push(`Job ${s.job}: the watch folder ${NO_ANSWER}; what it skips is not known`);
    }
    if (s.skipped === null || s.skipped === 0) continue;
    lines.push(`Job ${s.job}: skipped ${s.skipped}:`);
    const shown = all ? s.entries : s.entries.slice(0, SKIPPED_SHOWN);
    const attention = new Set(s.attention.map((a) => a.path));
    for (const e of shown) {
      lines.push(`  ${attention.has(e.path) ? "NEEDS ATTENTION: " : ""}${e.path}: ${e.reason}`);
    }
    if (shown.length < s.entries.length) {
      lines.push(
        `  \u2026 and ${s.entries.length - shown.length} more (status --all lists every one)`,
      );
    }
  }
  return lines;
}
