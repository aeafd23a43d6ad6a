/**
 * A job's `schedules`: at cron times (croner, in a chosen time zone) or intervals, rescan the
 * watch folder, run the user's command, or write a night report. An action still running when its
 * time comes again is skipped (logged), never stacked. A reload's schedules go on from an entry it
 * leaves unchanged (see {@linkcode JobSchedules}).
 *
 * @module
 */
import { Cron } from "croner";
import type { JobConfig } from "../config/types.ts";
import type { FileRows } from "../ledger/file_rows.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { runCaptured } from "../process/captured.ts";
import { programProblem } from "./user_programs.ts";
import type { FinishingHooks } from "./hooks.ts";
import { writeNightReport } from "./night_report.ts";
import { onClockStep, repeatEvery } from "./retry_timer.ts";
import {
  edgeAtSameTime,
  lastCronTime,
  nextCronRun,
  pausedAt,
  PAUSES_FOR_GOOD,
  pausesForGood,
  type ScheduleEntry,
  scheduleTimeZone,
  zonedTime,
} from "./pause_windows.ts";

/**
 * What one entry keeps while the config keeps it: the next schedules of a reload that leaves the
 * entry as it was (the same keys and values, read in the same time zone) go on from it.
 */
interface EntryRecord {
  /** The entry as written, with its time zone: what tells it unchanged over a reload. */
  key: string;
  /** The wall time (ms) since which its cron times are watched (`NaN` until it starts). */
  since: number;
  /**
   * The cron times its timer came for in this run (those within {@linkcode TIMES_KEPT} of the
   * latest), each with whether its action started then (not: skipped as still running). A clock
   * set back over a time it started at does not bring that time round again (but for a window's
   * `pause` or `resume`); one it never started at, before the daemon started, runs.
   */
  times: Map<number, boolean>;
  /** `every_seconds`: when it is due next, on the `performance.now()` clock (`NaN` until it starts). */
  dueAt: number;
  /** Its action under way (a command may be one started before a reload), or `null`. */
  running: Promise<void> | null;
}

/**
 * How far from the latest the cron times an entry remembers go (the longest step back of a clock
 * that is believed: a day, and an hour for a DST change), and at most how many (a day of minutes).
 */
const TIMES_KEPT = { ms: 25 * 3_600_000, count: 1500 };

/** Remember in `record` that its timer came for cron time `at`, and whether its action `started`. */
function keepTime(record: EntryRecord, at: number, started: boolean): void {
  for (const time of record.times.keys()) {
    if (Math.abs(time - at) > TIMES_KEPT.ms) record.times.delete(time);
  }
  record.times.delete(at);
  record.times.set(at, started);
  if (record.times.size > TIMES_KEPT.count) record.times.delete(record.times.keys().next().value!);
}

/** {@linkcode EntryRecord.key} of `entry` in `job`. */
function entryKey(entry: ScheduleEntry, job: JobConfig): string {
  const keys = Object.entries(entry).filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => a < b ? -1 : 1);
  // The zone only where it is read: an `every_seconds` entry has none.
  const zone = entry.cron === undefined ? null : scheduleTimeZone(entry, job) ?? null;
  return JSON.stringify([keys, zone]);
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
  /** Whether a window's pause holds the job now (only a change of it is said at info level). */
  windowPaused(): boolean;
  /** Send again; returns `false` when a pause from the status page still holds the job. */
  resume(): boolean;
}

/**
 * Runs one job's schedules; see the module doc. A reload's schedules of the same job go on from
 * these: an entry left unchanged keeps when it acted and is due next (a cron time that passed
 * during the reload acts as it ends, an `every_seconds` entry keeps its pace), and its command
 * still running runs to its end, its result logged and counted as usual.
 */
export class JobSchedules {
  #context: ScheduleContext;
  #log: Logger;
  #crons: Cron[] = [];
  #timers: Array<() => void> = []; // Stop the `every_seconds` timers.
  /** One per entry, in the order of the config's entries. */
  #records: EntryRecord[];
  /** Aborted when the daemon stops: kills the programs still running. */
  #stopping = new AbortController();
  /** The actions under way, with the entry each is for. */
  #running = new Map<Promise<void>, { index: number; entry: ScheduleEntry }>();
  /** Actions that failed or could not run, since the daemon started (shared over reloads). */
  #tally: { failures: number };
  /** Told of each action that failed or could not run, as it is counted (see `JobExtras`). */
  onFailure: () => void = () => {};

  /**
   * @param replaces the same job's schedules of the config a reload replaced (their count and
   *   the records of the entries left unchanged go on)
   */
  constructor(context: ScheduleContext, replaces?: JobSchedules) {
    this.#log = jobLogger("schedule", context.job.name);
    this.#context = context;
    this.#tally = replaces ? replaces.#tally : { failures: 0 };
    const left = replaces ? [...replaces.#records] : [];
    this.#records = context.job.schedules.map((entry) => {
      const key = entryKey(entry, context.job);
      const kept = left.findIndex((record) => record.key === key);
      if (kept >= 0) return left.splice(kept, 1)[0];
      return { key, since: NaN, times: new Map(), dueAt: NaN, running: null };
    });
  }

  /** Actions that failed or could not run, since the daemon started (reloads included). */
  get failures(): number {
    return this.#tally.failures;
  }

  /**
   * Pause the job if the last window edge before now was a pause: before its first scan, so that
   * no file found there goes out inside the window. After a reload that changed the schedules
   * (`reloaded`), a pause of the old ones outside the new ones' windows ends.
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
    // A wall clock stepped into or out of a window passes no window time (crons fire ahead only).
    if (job.schedules.some((entry) => entry.cron && ["pause", "resume"].includes(entry.action))) {
      this.#timers.push(onClockStep((byMs) => this.#clockStepped(byMs)));
    }
    for (const [index, entry] of job.schedules.entries()) {
      const record = this.#records[index];
      const kept = !Number.isNaN(record.since);
      if (!kept) record.since = Date.now();
      const fire = () => void this.#fire(index, entry);
      if (entry.cron !== undefined) {
        const once = () => {
          const at = lastCronTime(entry, job, new Date());
          if (!this.#firstAt(index, entry, at)) return;
          const started = this.#fire(index, entry);
          if (at !== null) keepTime(record, at, started);
        };
        this.#crons.push(new Cron(entry.cron, { timezone: scheduleTimeZone(entry, job) }, once));
        // Its time came while no timer watched it (the reload stopped one, started the other).
        const missed = lastCronTime(entry, job, new Date());
        if (kept && missed !== null && missed >= record.since && !record.times.has(missed)) {
          const at = zonedTime(new Date(missed), scheduleTimeZone(entry, job));
          const fields = { index, action: entry.action, at };
          this.#log.info(
            "Schedule {index} of job {job} ({action}): its time {at} passed during the reload: " +
              "acting now",
            fields,
          );
          once();
        }
      } else if (entry.every_seconds !== undefined) {
        if (!kept) record.dueAt = performance.now() + entry.every_seconds * 1000;
        this.#timers.push(repeatEvery(entry.every_seconds * 1000, fire, record));
      }
      const next = nextCronRun(entry, job, new Date());
      const zone = scheduleTimeZone(entry, job);
      this.#log.info("Schedule {index} of job {job}: {action} {when}", {
        index,
        action: entry.action,
        when: entry.cron === undefined
          ? `every ${entry.every_seconds} s` +
            (kept
              ? `, next in ${Math.max(0, Math.round((record.dueAt - performance.now()) / 1000))} s`
              : "")
          : `at "${entry.cron}" (${zone ?? "system time zone"}), next ${
            next === null ? "never" : zonedTime(next, zone)
          }`,
      });
    }
  }

  /**
   * Stop the timers and wait for the actions under way. A stopping daemon kills the commands
   * still running; a reload (`reloading`) lets them run to their end: returned, for the daemon
   * to end at its stop.
   */
  async stop(reloading = false): Promise<FinishingHooks | null> {
    for (const cron of this.#crons) cron.stop();
    for (const stop of this.#timers) stop();
    this.#crons = [];
    this.#timers = [];
    if (!reloading) this.#stopping.abort();
    const commands: Promise<void>[] = [];
    for (const [run, { index, entry }] of this.#running) {
      if (!reloading || entry.action !== "command") continue;
      commands.push(run);
      this.#log.info(
        "Schedule {index} of job {job}: command {command} still running: the reload lets it end",
        { index, command: entry.command[0] },
      );
    }
    await Promise.allSettled([...this.#running.keys()].filter((run) => !commands.includes(run)));
    if (!reloading) return null;
    // Only what ends them is kept: not these schedules, nor the runner they belonged to.
    const stopping = this.#stopping;
    return { finished: Promise.allSettled(commands).then(() => {}), abort: () => stopping.abort() };
  }

  /**
   * Whether a cron entry has not started its action at its time now, `at`, in this run (a clock
   * set back over a time it started at brings that time round again; one it did not start at, as
   * still running or before the daemon started, runs). A window's `pause` or `resume` acts again:
   * it sets what the window gives for now (`#act`), and, skipped, would leave the job as the
   * later times it acted at left it.
   */
  #firstAt(index: number, entry: ScheduleEntry, at: number | null): boolean {
    const windowEdge = entry.action === "pause" || entry.action === "resume";
    if (at !== null && this.#records[index].times.get(at) === true && !windowEdge) {
      return this.#skipped(index, entry, "done at this time already (the clock was set back)");
    }
    return true;
  }

  /** Log that entry `index` does not act now, and why. */
  #skipped(index: number, entry: ScheduleEntry, why: string): false {
    const fields = { index, action: entry.action };
    this.#log.warn(`Schedule {index} of job {job} ({action}) skipped: ${why}`, fields);
    return false;
  }

  /** Start entry `index`'s action; `false` when it is still running from an earlier time. */
  #fire(index: number, entry: ScheduleEntry): boolean {
    const record = this.#records[index];
    if (record.running !== null) return this.#skipped(index, entry, "still running");
    const run: Promise<void> = this.#act(index, entry).catch((error) => {
      const stop = this.#stopping.signal; // Counted unless the stop ended it (even as it comes).
      if (!stop.aborted || (error !== stop.reason && error?.name !== "AbortError")) {
        this.#tally.failures++;
        this.onFailure();
      }
      this.#log.error("Schedule {index} of job {job} ({action}) failed: {error}", {
        index,
        action: entry.action,
        error: error instanceof Error ? error.message : String(error),
      });
    }).finally(() => {
      if (record.running === run) record.running = null;
      this.#running.delete(run);
    });
    record.running = run;
    this.#running.set(run, { index, entry });
    return true;
  }

  #clockStepped(byMs: number): void {
    const inside = pausedAt(this.#context.job, new Date());
    // A window's time the step passed may have paused or resumed the job first, and said so.
    this.#log[inside === this.#context.windowPaused() ? "debug" : "info"](
      `The wall clock was stepped {seconds} s: job {job} is ${inside ? "inside" : "outside"} ` +
        "the pause windows of its schedules",
      { seconds: Math.round(byMs / 1000) },
    );
    if (inside) this.#context.pause();
    else this.#context.resume();
  }

  /**
   * Why a window's `pause` or `resume` (entry `index`, at a cron time now) does not hold: a later
   * edge passed (a clock stepped ahead), or the clocks going forward put it at the time of an edge
   * of the other kind, and that day's window between them does not exist (see `pause_windows.ts`).
   */
  #notNow(index: number, entry: ScheduleEntry): string {
    const { job } = this.#context;
    const now = new Date();
    const other = edgeAtSameTime(job, index, now);
    if (other === null) return "the clock passed a later pause or resume time";
    const at = zonedTime(new Date(lastCronTime(entry, job, now)!), scheduleTimeZone(entry, job));
    const pause = entry.action === "pause";
    return `the clocks go forward today, which puts this ${entry.action} and the ` +
      `${job.schedules[other].action} of schedule ${other} at one time, ${at}: there is no ` +
      `${pause ? "pause" : "transfer"} window between them today, and transfers ` +
      (pause ? "go on" : "stay paused");
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
      case "resume": {
        // A clock stepped ahead over several window edges fires each late, in no useful order:
        // the latest edge before now holds (an `every_seconds` entry has none: it always acts).
        if (entry.cron !== undefined && pausedAt(job, new Date()) !== (entry.action === "pause")) {
          return void this.#skipped(index, entry, this.#notNow(index, entry));
        }
        // Paused or resumed already (a step of the clock into or out of the window said so, or
        // an `every_seconds` entry's earlier time): said at debug level.
        const again = this.#context.windowPaused() === (entry.action === "pause");
        const level = again ? "debug" : "info";
        if (entry.action === "pause") {
          this.#log[level]("Transfers of job {job} paused (schedule {index})", fields);
          return this.#context.pause();
        }
        // A pause from the status page holds until the page resumes the job (said each time).
        if (this.#context.resume()) {
          return this.#log[level]("Transfers of job {job} resumed (schedule {index})", fields);
        }
        this.#log.info(
          "Transfer window of job {job} open (schedule {index}); the job stays paused from the status page until it is resumed there",
          fields,
        );
        return;
      }
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
        if (reason !== "stopped") { // Not when the stop killed it.
          this.#tally.failures++;
          this.onFailure();
        }
        this.#log.error(
          `Schedule {index} of job {job}: command {command} failed: {reason}${suffix}`,
          { ...logged, reason },
        );
      }
    }
  }
}
