/**
 * A job's `schedules`: at cron times (croner, in a chosen time zone) or
 * intervals, rescan the watch folder, run the user's command, or write a
 * night report. An action still running when its time comes again is skipped
 * (logged), never stacked.
 *
 * @module
 */
import { Cron } from "croner";
import type { JobConfig } from "../config/types.ts";
import type { FileRows } from "../ledger/file_rows.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { runCaptured } from "../process/captured.ts";
import { programProblem } from "./user_programs.ts";
import { writeNightReport } from "./night_report.ts";

/** One `schedules` entry as the schema returns it. */
export type ScheduleEntry = JobConfig["schedules"][number];

/** The time zone an entry's cron expression is read in (`undefined`: the system's). */
export function scheduleTimeZone(entry: ScheduleEntry, job: JobConfig): string | undefined {
  return entry.timezone || job.night_timezone || undefined;
}

/** What is wrong with schedules that {@linkcode pausesForGood}. */
export const PAUSES_FOR_GOOD = "pause transfers but none resumes them: once paused, only Resume " +
  "on the status page sends files again; add an entry with action: resume";

/** Whether two configs of a job have the same pause windows (pause and resume times). */
export function samePauseWindows(a: JobConfig, b: JobConfig): boolean {
  const windows = (job: JobConfig) =>
    JSON.stringify(
      job.schedules.filter((entry) => entry.action === "pause" || entry.action === "resume")
        .map((entry) => [entry.cron, entry.action, scheduleTimeZone(entry, job)]),
    );
  return windows(a) === windows(b);
}

/** Whether `job`'s schedules pause transfers and none resumes them. */
export function pausesForGood(job: JobConfig): boolean {
  const actions = new Set(job.schedules.map((entry) => entry.action));
  return actions.has("pause") && !actions.has("resume");
}

/** When a cron `entry` fires next after `after` (`null` for an interval entry or never). */
export function nextCronRun(entry: ScheduleEntry, job: JobConfig, after: Date): Date | null {
  if (entry.cron === undefined) return null;
  const cron = new Cron(entry.cron, { timezone: scheduleTimeZone(entry, job), paused: true });
  try {
    return cron.nextRun(after);
  } finally {
    cron.stop();
  }
}

/**
 * `at` as the wall clock of `timeZone` (the system's when `undefined`) with its
 * offset from UTC, e.g. `2024-03-31 03:00 +02:00`; seconds only when not 0.
 */
export function zonedTime(at: Date, timeZone: string | undefined): string {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
  }).formatToParts(at);
  const field = (type: Intl.DateTimeFormatPartTypes) =>
    Number(parts.find((part) => part.type === type)?.value);
  const [year, month, day] = [field("year"), field("month"), field("day")];
  const [hour, minute, second] = [field("hour"), field("minute"), field("second")];
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const offset = Math.round((wall - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const sign = offset < 0 ? "-" : "+";
  const seconds = second === 0 ? "" : `:${pad(second)}`;
  return `${pad(year, 4)}-${pad(month)}-${pad(day)} ${pad(hour)}:${pad(minute)}${seconds} ` +
    `${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

/** The latest cron time of `entry` at or before `at` (ms since epoch), or `null`. */
export function lastCronTime(entry: ScheduleEntry, job: JobConfig, at: Date): number | null {
  if (entry.cron === undefined) return null;
  // Cron times are whole seconds, and croner finds those at least 1 s before the time it is
  // given: from the next whole second, a time at `at` itself counts (a timer firing now).
  const after = new Date(Math.floor(at.getTime() / 1000) * 1000 + 1000);
  const cron = new Cron(entry.cron, { timezone: scheduleTimeZone(entry, job), paused: true });
  const previous = cron.previousRuns(1, after)[0];
  cron.stop();
  return previous?.getTime() ?? null;
}

/**
 * Whether `at` falls in a pause window: the latest `pause` or `resume` cron
 * time at or before it was a `pause`.
 */
export function pausedAt(job: JobConfig, at: Date): boolean {
  let latest: { at: number; pause: boolean } | null = null;
  for (const entry of job.schedules) {
    if (entry.action !== "pause" && entry.action !== "resume") continue;
    const previous = lastCronTime(entry, job, at);
    if (previous !== null && (latest === null || previous > latest.at)) {
      latest = { at: previous, pause: entry.action === "pause" };
    }
  }
  return latest?.pause ?? false;
}

/** The longest delay a timer takes (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Call `fn` every `ms` milliseconds, also beyond {@linkcode MAX_TIMER_MS} (`every_seconds` may be
 * up to a year): a longer wait is made of several timers. Returns what stops it.
 */
export function repeatEvery(ms: number, fn: () => void): () => void {
  if (ms <= MAX_TIMER_MS) {
    const interval = setInterval(fn, ms);
    return () => clearInterval(interval);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = (left: number) => {
    timer = setTimeout(() => {
      if (left > MAX_TIMER_MS) return wait(left - MAX_TIMER_MS);
      wait(ms);
      fn();
    }, Math.min(left, MAX_TIMER_MS));
  };
  wait(ms);
  return () => clearTimeout(timer);
}

/** The environment a scheduled command receives. */
export function scheduleEnvironment(job: JobConfig, index: number): Record<string, string> {
  return {
    IMAGE_TRANSFER_EVENT: "schedule",
    IMAGE_TRANSFER_JOB: job.name,
    IMAGE_TRANSFER_METHOD: job.transfer_method,
    IMAGE_TRANSFER_SCHEDULE: String(index),
    IMAGE_TRANSFER_WATCH_PATH: job.watch_path,
    IMAGE_TRANSFER_DESTINATION_BASE: job.remote_base_path,
  };
}

/** What {@linkcode JobSchedules} acts on. */
export interface ScheduleContext {
  job: JobConfig;
  table: FileRows;
  /**
   * A full rescan of the watch folder (failed files get another chance),
   * after checking the last `nights` night folders at the destination.
   */
  rescan(nights: number): Promise<void>;
  /** Start no new transfers until {@linkcode ScheduleContext.resume}. */
  pause(): void;
  /** Send again; returns `false` when a pause from the status page still holds the job. */
  resume(): boolean;
}

/** Runs one job's schedules; see the module doc. */
export class JobSchedules {
  #context: ScheduleContext;
  #log: Logger;
  #crons: Cron[] = [];
  /** Stops the `every_seconds` timers. */
  #timers: Array<() => void> = [];
  #busy = new Set<number>();
  /** The cron time each cron entry last fired for (see {@linkcode JobSchedules.#firstAt}). */
  #actedAt = new Map<number, number>();
  /** Aborted on stop: kills the programs still running. */
  #stopping = new AbortController();
  #running = new Set<Promise<void>>();
  /** Actions that failed or could not run, since the daemon started (reloads included). */
  failures = 0;

  /** @param replaces the same job's schedules of the config a reload replaced (their count goes on) */
  constructor(context: ScheduleContext, replaces?: JobSchedules) {
    this.#log = jobLogger("schedule", context.job.name);
    this.#context = context;
    this.failures = replaces?.failures ?? 0;
  }

  /**
   * Pause the job if the last window edge before now was a pause: before its
   * first scan, so that no file found there goes out inside the window. After
   * a reload that changed the schedules (`reloaded`), a pause of the old ones
   * outside the new ones' windows ends.
   */
  applyWindow(reloaded: boolean): void {
    if (!pausedAt(this.#context.job, new Date())) {
      if (reloaded) this.#context.resume();
      return;
    }
    this.#log.info("Transfers of job {job} paused: inside a pause window of its schedules", {});
    this.#context.pause();
  }

  /** Start every entry's timer (after {@linkcode applyWindow}). */
  start(): void {
    const { job } = this.#context;
    if (pausesForGood(job)) this.#log.warn(`Schedules of job {job} ${PAUSES_FOR_GOOD}`, {});
    for (const [index, entry] of job.schedules.entries()) {
      const fire = () => this.#fire(index, entry);
      if (entry.cron !== undefined) {
        const once = () => void (this.#firstAt(index, entry) && fire());
        this.#crons.push(new Cron(entry.cron, { timezone: scheduleTimeZone(entry, job) }, once));
      } else if (entry.every_seconds !== undefined) {
        this.#timers.push(repeatEvery(entry.every_seconds * 1000, fire));
      }
      const next = nextCronRun(entry, job, new Date());
      const zone = scheduleTimeZone(entry, job);
      this.#log.info("Schedule {index} of job {job}: {action} {when}", {
        index,
        action: entry.action,
        when: entry.cron === undefined
          ? `every ${entry.every_seconds} s`
          : `at "${entry.cron}" (${zone ?? "system time zone"}), next ${
            next === null ? "never" : zonedTime(next, zone)
          }`,
      });
    }
  }

  /** Stop the timers, kill running commands, wait for actions under way. */
  async stop(): Promise<void> {
    for (const cron of this.#crons) cron.stop();
    for (const stop of this.#timers) stop();
    this.#crons = [];
    this.#timers = [];
    this.#stopping.abort();
    await Promise.allSettled([...this.#running]);
  }

  /** Whether a cron entry has not acted at its time now (a clock set back brings it round again). */
  #firstAt(index: number, entry: ScheduleEntry): boolean {
    const at = lastCronTime(entry, this.#context.job, new Date());
    if (at !== null && at <= (this.#actedAt.get(index) ?? -Infinity)) {
      return this.#skipped(index, entry, "done at this time already (the clock was set back)");
    }
    if (at !== null) this.#actedAt.set(index, at);
    return true;
  }

  /** Log that entry `index` does not act now, and why. */
  #skipped(index: number, entry: ScheduleEntry, why: string): false {
    const fields = { index, action: entry.action };
    this.#log.warn(`Schedule {index} of job {job} ({action}) skipped: ${why}`, fields);
    return false;
  }

  #fire(index: number, entry: ScheduleEntry): void {
    if (this.#busy.has(index)) return void this.#skipped(index, entry, "still running");
    this.#busy.add(index);
    const run: Promise<void> = this.#act(index, entry).catch((error) => {
      if (!this.#stopping.signal.aborted) this.failures++;
      this.#log.error("Schedule {index} of job {job} ({action}) failed: {error}", {
        index,
        action: entry.action,
        error: error instanceof Error ? error.message : String(error),
      });
    }).finally(() => {
      this.#busy.delete(index);
      this.#running.delete(run);
    });
    this.#running.add(run);
  }

  async #act(index: number, entry: ScheduleEntry): Promise<void> {
    const { job, table } = this.#context;
    const fields = { index, action: entry.action };
    switch (entry.action) {
      case "rescan":
        this.#log.info("Schedule {index} of job {job}: rescanning", fields);
        await this.#context.rescan(entry.nights ?? 1);
        return;
      case "report":
        await writeNightReport(job, table, entry.nights ?? 1);
        return;
      case "pause":
      case "resume":
        // A clock stepped ahead over several window edges fires each late, in no useful order:
        // the latest edge before now holds (an `every_seconds` entry has none: it always acts).
        if (entry.cron !== undefined && pausedAt(job, new Date()) !== (entry.action === "pause")) {
          return void this.#skipped(index, entry, "the clock passed a later pause or resume time");
        }
        if (entry.action === "pause") {
          this.#log.info("Transfers of job {job} paused (schedule {index})", fields);
          this.#context.pause();
          return;
        }
        // A pause from the status page holds until the page resumes the job.
        if (this.#context.resume()) {
          this.#log.info("Transfers of job {job} resumed (schedule {index})", fields);
        } else {
          this.#log.info(
            "Transfer window of job {job} open (schedule {index}); the job stays paused from the status page until it is resumed there",
            fields,
          );
        }
        return;
      case "command": {
        // Checked at start, and again before each run (see `HookRunner`).
        const problem = await programProblem(entry.command[0]);
        if (problem !== undefined) {
          throw new Error(
            `not run: schedules[${index}].command: ${problem}; then reload the daemon ` +
              "(kill -HUP its pid) or restart it",
          );
        }
        const result = await runCaptured(entry.command, scheduleEnvironment(job, index), {
          timeoutMs: (entry.timeout_seconds ?? 3600) * 1000,
          signal: this.#stopping.signal,
        });
        if (result.kind === "not-started") throw new Error(`cannot start: ${result.error}`);
        const logged = { ...fields, command: entry.command[0], output: result.output };
        const suffix = result.output === "" ? "" : "; {output}";
        // Named as the start-up and "skipped" lines name the entry.
        if (result.kind === "ok") {
          this.#log.info(`Schedule {index} of job {job}: command {command} done${suffix}`, logged);
          return;
        }
        const reason = result.kind === "timed-out"
          ? `killed after ${entry.timeout_seconds ?? 3600} s (timeout_seconds)`
          : result.reason;
        if (!this.#stopping.signal.aborted) this.failures++;
        this.#log.error(
          `Schedule {index} of job {job}: command {command} failed: {reason}${suffix}`,
          { ...logged, reason },
        );
      }
    }
  }
}
