/**
 * `resend`: send files that already arrived again, on purpose: by night
 * folder, by arrival date, by name pattern, or all; `--dry-run` lists them.
 * Only files still in the watch folder can be sent again. The ledger marks
 * them pending: a running daemon takes them up within a minute, else the
 * next start does.
 *
 * @module
 */
import { Command } from "commander";
// @ts-types="@types/picomatch"
import picomatch from "picomatch";
import { loadConfig, resolveConfigPath } from "../config/load.ts";
import { globPattern } from "../config/values.ts";
import { UsageError } from "../errors.ts";
import { FileRows } from "../ledger/file_rows.ts";
import { Ledger } from "../ledger/ledger.ts";
import { escapeControlChars as oneLine } from "../log/logging.ts";
import { absolutePath } from "../watch/file_version.ts";
import { daemonStatus } from "./daemon_state.ts";
import { globalOptions } from "./options.ts";

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
    .option("--night <YYYYMMDD>", "the files of this night folder")
    .option("--date <YYYY-MM-DD>", "the files that arrived on this day (local time)")
    .option(
      "--name <pattern>",
      "the files whose path below the watch folder matches this glob (may be repeated: any of them)",
      (pattern: string, earlier: string[] | undefined) => [...earlier ?? [], pattern],
    )
    .option("--all", "every file that arrived")
    .option("--job <name>", "only this job")
    .option("--dry-run", "list what would be sent again; change nothing")
    .addHelpText(
      "after",
      "\nChoices combine (--night 20240315 --name 'flat*'); --name may be given more than once\n" +
        "(--name 'flat*' --name 'dark*': a file matching either). Only files still in the watch folder\n" +
        "can be sent again. A running daemon sends them within a minute; otherwise the next start.",
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
      const patterns = (options.name ?? []).map((name) =>
        picomatch(name, { dot: true, basename: !name.includes("/") })
      );
      const matches = patterns.length === 0
        ? () => true
        : (path: string) => patterns.some((pattern) => pattern(path));
      const ledger = options.dryRun
        ? Ledger.open(config.state_dir, { readOnly: true })
        : Ledger.open(config.state_dir);
      let total = 0;
      try {
        for (const job of jobs) {
          const table = ledger && FileRows.of(ledger, job);
          const rows = table?.doneChosen(choice, matches) ?? [];
          const present: string[] = [];
          for (const row of rows) {
            const source = absolutePath(job.watch_path, row.relPath);
            const info = await Deno.lstat(source).catch(() => null);
            if (!info?.isFile && !info?.isSymlink) continue;
            present.push(row.relPath);
            if (options.dryRun) {
              console.log(`would send again ${oneLine(source)} -> ${oneLine(row.destination)}`);
            }
          }
          const count = options.dryRun || !table ? present.length : table.sendAgain(present);
          total += count;
          const gone = rows.length - present.length;
          console.log(
            `job ${job.name}: ${count} file(s) ${
              options.dryRun ? "would be" : "will be"
            } sent again` +
              (gone > 0 ? `; ${gone} chosen file(s) are no longer in the watch folder` : ""),
          );
        }
      } finally {
        ledger?.close();
      }
      if (options.dryRun || total === 0) return;
      console.log(
        daemonStatus(config.state_dir).running
          ? "The running daemon sends them within a minute."
          : "They are sent at the next start (image-transfer run).",
      );
    });
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
  for (const name of options.name ?? []) {
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
    throw new UsageError(
      `Cannot resend: --night ${options.night} is not a night folder (YYYYMMDD)`,
    );
  }
  if (options.date === undefined) return { night: options.night };
  const match = options.date.match(/^(\d{4})-(\d{2})-(\d{2})$/);
  const from = match && new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  // A date of the calendar only: month 13 or day 31 of a shorter month would roll over.
  const rolled = from && (from.getMonth() !== Number(match![2]) - 1 ||
    from.getDate() !== Number(match![3]));
  if (!from || Number.isNaN(from.getTime()) || rolled) {
    throw new UsageError(`Cannot resend: --date ${options.date} is not a date (YYYY-MM-DD)`);
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
