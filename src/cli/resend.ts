/**
 * `resend`: send files that already arrived again, on purpose: by night
 * folder, by arrival date, by name pattern, or all; `--dry-run` lists them.
 * Only files still in the watch folder can be sent again. The ledger marks
 * them pending: a running daemon takes them up within a minute, else the
 * next start does; a job the running daemon holds (paused from its page or
 * outside a transfer window, its destination unreachable or full, as the
 * daemon's state and status page say) sends them once that ends, and says so.
 * Choosing none exits 1, saying why on stderr ({@link ./resend_none.ts}).
 *
 * @module
 */
import { Command } from "commander";
import { loadConfig } from "../config/load.ts";
import { resolveConfigPath } from "../config/paths.ts";
import { globPattern } from "../config/values.ts";
import { UsageError } from "../errors.ts";
import { pastedWord } from "../shell_words.ts";
import { FileRows } from "../ledger/file_rows.ts";
import { ledgerTarget } from "../ledger/destination_spellings.ts";
import { ledgerName } from "../ledger/job_names.ts";
import { Ledger } from "../ledger/ledger.ts";
import { judgeStateDir, whatRunDoes } from "../ledger/ledger_check.ts";
import { quoteIfUnsafe } from "../log/logging.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { matcher } from "../watch/file_filter.ts";
import { absolutePath } from "../watch/file_version.ts";
import type { Config, JobConfig } from "../config/types.ts";
import { pausedAt } from "../pipeline/pause_windows.ts";
import { type DaemonStatus, daemonStatus } from "./daemon_state.ts";
import { askDaemon, type LiveStatus } from "./live_status.ts";
import { PAUSED_FROM_PAGE } from "../status/job_status.ts";
import { globalOptions } from "./options.ts";
import { inArchive, type NoneChosen, nothingChosen } from "./resend_none.ts";

interface ResendOptions {
  night?: string;
  date?: string;
  /** Every `--name` given, in order. */
  name?: string[];
  all?: boolean;
  job?: string;
  dryRun?: boolean;
}

/** The `resend` command. */
export function resendCommand(): Command {
  return new Command("resend")
    .description(
      "send files that already arrived again, on purpose (by night folder, arrival date, name pattern, or all)",
    )
    .option("--night <YYYYMMDD>", "the files of this night folder", once("--night"))
    .option(
      "--date <YYYY-MM-DD>",
      "the files that arrived on this day (local time)",
      once("--date"),
    )
    .option(
      "--name <pattern>",
      "the files whose path below the watch folder matches this glob, or this file's absolute path " +
        "(may be repeated: any of them)",
      (pattern: string, earlier: string[] | undefined) => [...earlier ?? [], pattern],
    )
    .option("--all", "every file that arrived")
    .option("--job <name>", "only this job")
    .option("--dry-run", "list what would be sent again; change nothing")
    .addHelpText(
      "after",
      "\nChoices combine (--night 20240315 --name 'flat*'); --all stands alone.\n" +
        "--name may be given more than once (--name 'flat*' --name 'dark*': a file matching either);\n" +
        "a --name that is an absolute path in a watch folder, as the log shows it, names that file (or\n" +
        "the files below that folder).\n" +
        "Only files still in the watch folder can be sent again, each over its own copy (in the\n" +
        "night folder it went to, whatever night the night rule gives it now). A running daemon\n" +
        "sends them within a minute (a job it holds: once it resumes, or its destination answers\n" +
        "again); otherwise the next start.\n\n" +
        "Exit status: 0 when files were chosen (sent again, or listed with --dry-run); 1 when none\n" +
        "is (no file that arrived matches, the chosen ones are no longer in the watch folder, or\n" +
        "nothing was sent yet), with why on stderr: a matching file that has not arrived yet (failed,\n" +
        "waiting, not sent yet) is named with where it stands; it goes by itself.",
    )
    .action(async (options: ResendOptions, command: Command) => {
      const choice = chosen(options);
      const config = await loadConfig(resolveConfigPath(globalOptions(command).config));
      const jobs = config.jobs.filter((job) =>
        options.job === undefined || job.name === options.job
      );
      if (jobs.length === 0) {
        throw new UsageError(
          `Cannot resend: no job named ${JSON.stringify(options.job)} in ${config.file} ` +
            `(jobs: ${config.jobs.map((job) => job.name).join(", ")})`,
        );
      }
      const matches = nameMatchers(options.name ?? [], jobs);
      // As `run` would find it: no ledger yet (nothing sent), or one lost or damaged (the next
      // start deals with it): nothing to choose from, and none is made or set aside here.
      const { path, found } = judgeStateDir(config.state_dir);
      if (found.kind !== "sound") {
        // Nothing chosen: exit 1, as a choice that takes no file.
        throw new Error(
          whatRunDoes(path, found) ??
            `No ledger yet in ${config.state_dir}: nothing has been sent, so nothing is sent again.`,
        );
      }
      const ledger = options.dryRun
        ? Ledger.open(config.state_dir, { readOnly: true })
        : Ledger.open(config.state_dir);
      let total = 0;
      let presentTotal = 0;
      const resent: JobConfig[] = [];
      const none: NoneChosen[] = [];
      const daemon = daemonStatus(config.state_dir);
      const configOption = globalOptions(command).config;
      let nothing: string | null = null;
      try {
        for (const job of jobs) {
          // A job renamed in the config: the rows of its former name, which the next start takes.
          const name = ledger && ledgerName(ledger, job, config.jobs);
          // Spelled as an older version recorded it: the rows the start takes over.
          const table = ledger &&
            new FileRows(ledger, name ?? job.name, ledgerTarget(ledger, job, name ?? job.name));
          const rows = table?.doneChosen(choice, matches(job)) ?? [];
          const present: string[] = [];
          const goneRows: string[] = [];
          for (const row of rows) {
            const source = absolutePath(job.watch_path, row.relPath);
            const info = await Deno.lstat(source).catch(() => null);
            if (!info?.isFile && !info?.isSymlink) {
              goneRows.push(row.relPath);
              continue;
            }
            present.push(row.relPath);
            if (options.dryRun) {
              // Quoted as `run --dry-run` lists names: a line break told from `\` and `n`.
              const [from, to] = [quoteIfUnsafe(source), quoteIfUnsafe(row.destination)];
              console.log(`would send again ${from} -> ${to}`);
            }
          }
          const count = options.dryRun || !table ? present.length : table.sendAgain(present);
          total += count;
          presentTotal += present.length;
          if (count > 0) resent.push(job);
          const gone = rows.length - present.length;
          const archived = await inArchive(job, goneRows);
          none.push({ job, table: table ?? null, matches: matches(job), gone, archived });
          console.log(
            `job ${job.name}: ${count} file(s) ${
              options.dryRun ? "would be" : "will be"
            } sent again` +
              (gone > 0 ? `; ${gone} chosen file(s) are no longer in the watch folder` : "") +
              (archived.length > 0
                ? ` (${archived.length} in the archive, ${job.archive_path})`
                : ""),
          );
        }
        if (presentTotal === 0) {
          const names = options.name ?? [];
          const flag = configOption === undefined ? "" : ` -c ${pastedWord(configOption)}`;
          nothing = await nothingChosen(none, {
            night: options.night,
            date: options.date,
            names,
            globs: names.filter((name) => !ABSOLUTE.test(name)),
            running: daemon.running,
            page: Boolean(daemon.statusListen),
            run: `image-transfer${flag} run`,
          });
        }
      } finally {
        ledger?.close();
      }
      // Nothing chosen: exit 1 (a script can tell), saying why on stderr.
      if (nothing !== null) throw new Error(nothing);
      if (options.dryRun || total === 0) return;
      for (const line of await whenSent(config, resent, configOption)) console.log(line);
    });
}

/**
 * When the files marked for the jobs `resent` go: at the next start, within a minute, or for a
 * job the running daemon holds, once what holds it ends (asked of its state and status page).
 * `configOption`: `-c` as given, for the `run` to paste.
 */
async function whenSent(
  config: Config,
  resent: JobConfig[],
  configOption: string | undefined,
): Promise<string[]> {
  const daemon = daemonStatus(config.state_dir);
  const flag = configOption === undefined ? "" : ` -c ${pastedWord(configOption)}`;
  if (!daemon.running) return [`They are sent at the next start (image-transfer${flag} run).`];
  const live = config.status_listen === ""
    ? undefined
    : await askDaemon(config, daemon.pid, daemon.statusListen);
  const lines: string[] = [];
  for (const job of resent) {
    const held = whatHolds(job, daemon, flag, live && "jobs" in live ? live : undefined);
    if (held) lines.push(`Job ${job.name}: ${held}.`);
  }
  if (lines.length === resent.length) return lines;
  const others = lines.length === 0 ? "them" : "the other jobs' files";
  // The page alone tells a pause from it; one that did not answer leaves it unknown.
  const unknown = live && "unavailable" in live
    ? ` (unless a job is paused from its status page, which did not answer: ${
      quoteIfUnsafe(live.unavailable)
    })`
    : "";
  return [...lines, `The running daemon sends ${others} within a minute${unknown}.`];
}

/**
 * Why the running daemon does not send `job`'s files now, and when it will, as a clause; `null`
 * when nothing holds it. `flag`: the `-c` given, for the command to paste; `live`: its status
 * page's answer, when it gave one.
 */
function whatHolds(
  job: JobConfig,
  daemon: DaemonStatus,
  flag: string,
  live?: LiveStatus,
): string | null {
  const queued = "its files are queued and go";
  if (daemon.jobs && !daemon.jobs.includes(job.name)) {
    return `the running daemon does not run it (not in the config it loaded): ${queued} once ` +
      `it does (reload it with SIGHUP, or image-transfer${flag} restart)`;
  }
  const shown = live?.jobs.find((shown) => shown.job === job.name);
  const why = shown?.reason ? ` (${quoteIfUnsafe(shown.reason)})` : "";
  const outsideWindow = `paused outside a transfer window (schedules): ${queued} once it opens`;
  switch (shown?.state) {
    case "paused":
      // The page tells a window's pause by its reason.
      return shown.reason === PAUSED_FROM_PAGE
        ? `paused from the status page: ${queued} once it is resumed there`
        : outsideWindow;
    case "unreachable":
      return `its destination cannot be reached${why}: ${queued} once it answers again`;
    case "full":
      return `its destination is full${why}: ${queued} once it has room again`;
    case "ledger_error":
      return `it cannot record what it sends${why}: ${queued} once its ledger can be written`;
  }
  // Without the page: the pause the daemon records (a destination full or not reachable)...
  const pause = daemon.paused?.[job.name];
  if (pause) {
    const until = pause.state === "destination full" ? "has room again" : "answers again";
    return `paused: ${pause.state} (${quoteIfUnsafe(pause.reason)}): ${queued} once it ${until}`;
  }
  // ...and its transfer windows, as the config says them.
  if (!live && pausedAt(job, new Date())) return outsideWindow;
  return null;
}

/** A `--name` that is an absolute path (as the log shows a file), not a pattern. */
const ABSOLUTE = /^(\/|[A-Za-z]:[\\/])/;

/**
 * For each of `jobs`, whether a path below its watch folder is chosen by `names`: a glob (matched
 * as the job's `file_patterns` are), or an absolute path inside the watch folder (that file, or the files below that folder, taken by
 * name: its characters are not a pattern's).
 * @throws {UsageError} for an absolute path in none of the jobs' watch folders
 */
function nameMatchers(
  names: string[],
  jobs: JobConfig[],
): (job: JobConfig) => (path: string) => boolean {
  if (names.length === 0) return () => () => true;
  const globs = names.filter((name) => !ABSOLUTE.test(name));
  const paths = names.filter((name) => ABSOLUTE.test(name));
  for (const path of paths) {
    if (jobs.some((job) => relativeTo(job.watch_path, path) !== null)) continue;
    const folders = jobs.map((job) => `${quoteIfUnsafe(job.watch_path)} (job ${job.name})`);
    throw new UsageError(
      `Cannot resend: --name ${quoteIfUnsafe(path)} is not in any watch folder ` +
        `(${folders.join(", ")}); give the path of a file in one of them, or a pattern ` +
        `matched below them such as 'flat*'`,
    );
  }
  return (job) => {
    const below = paths.map((path) => relativeTo(job.watch_path, path))
      .filter((relPath) => relPath !== null);
    // As the job's file_patterns match: a name with a line break, in either Unicode form, and
    // upper and lower case alike unless case_sensitive_patterns.
    const pattern = globs.length === 0 ? () => false : matcher(globs, !job.case_sensitive_patterns);
    return (relPath) =>
      pattern(relPath) ||
      below.some((chosen) =>
        chosen === "" || relPath === chosen || relPath.startsWith(`${chosen}/`)
      );
  };
}

/** A parser of an option given at most once (commander would keep the last one, unsaid). */
function once(option: string) {
  return (value: string, earlier: string | undefined): string => {
    if (earlier === undefined) return value;
    throw new UsageError(
      `Cannot resend: ${option} is given twice (${earlier}, then ${value}): give it once`,
    );
  };
}

/** The choice the options make. @throws {UsageError} when none or a malformed one is given */
function chosen(
  options: ResendOptions,
): { night?: string; arrivedFrom?: number; arrivedTo?: number } {
  if (!options.night && !options.date && options.name === undefined && !options.all) {
    throw new UsageError(
      "Cannot resend: say which files with --night YYYYMMDD, --date YYYY-MM-DD, --name <pattern> or --all",
    );
  }
  const narrowed = options.night ?? options.date ?? options.name;
  if (options.all && narrowed !== undefined) {
    throw new UsageError(
      "Cannot resend: --all is every file that arrived, and --night, --date and --name choose " +
        "some of them: give --all alone, or leave it out",
    );
  }
  for (const name of options.name ?? []) {
    if (ABSOLUTE.test(name)) continue;
    const pattern = name ? globPattern.safeParse(name) : null;
    if (name === "" || pattern?.error) {
      throw new UsageError(
        `Cannot resend: --name: ${
          pattern?.error?.issues[0].message ?? "give a pattern, e.g. 'flat*'"
        }`,
      );
    }
  }
  if (options.night !== undefined && !isNightFolder(options.night)) {
    // The day as --date takes it (2024-03-15): the night folder of that day.
    const day = options.night.replaceAll("-", "");
    throw new UsageError(
      `Cannot resend: --night ${options.night} is not a night folder (YYYYMMDD)` +
        (/^\d{4}-\d{2}-\d{2}$/.test(options.night) && isNightFolder(day)
          ? `; the night folder of that day: --night ${day}`
          : ""),
    );
  }
  if (options.date === undefined) return { night: options.night };
  const match = options.date.match(/^(\d{4})-(\d{2})-(\d{2})$/);
  const from = match && new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  // A date of the calendar only: month 13 or day 31 of a shorter month would roll over.
  const rolled = from && (from.getMonth() !== Number(match![2]) - 1 ||
    from.getDate() !== Number(match![3]));
  if (!from || Number.isNaN(from.getTime()) || rolled) {
    // A night folder's name (20240315): the day it names.
    const day = isNightFolder(options.date)
      ? `${options.date.slice(0, 4)}-${options.date.slice(4, 6)}-${options.date.slice(6)}`
      : null;
    throw new UsageError(
      `Cannot resend: --date ${options.date} is not a date (YYYY-MM-DD)` +
        (day === null
          ? ""
          : `; that day: --date ${day} (or --night ${options.date}: the files of that night folder)`),
    );
  }
  const to = new Date(from);
  to.setDate(to.getDate() + 1);
  return { night: options.night, arrivedFrom: from.getTime(), arrivedTo: to.getTime() };
}

/** Whether `night` names a night folder: `YYYYMMDD`, a date of the calendar. */
function isNightFolder(night: string): boolean {
  if (!/^\d{8}$/.test(night)) return false;
  const iso = `${night.slice(0, 4)}-${night.slice(4, 6)}-${night.slice(6)}`;
  const day = new Date(`${iso}T00:00:00Z`);
  return !Number.isNaN(day.getTime()) && day.toISOString().slice(0, 10) === iso;
}
