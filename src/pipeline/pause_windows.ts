/**
 * The cron times of a job's `schedules` and the pause windows they make: when an entry fires next
 * or fired last (each in its time zone), whether a time falls in a pause window, and until when.
 *
 * A window edge in the hour the clocks skip when they go forward (02:00 to 03:00 in Europe/Berlin)
 * comes at the gap's end, as croner fires it. A `pause` and a `resume` that come at one time so
 * (a pause at 02:00, its resume at 03:00) are no clash: that day the window between them does not
 * exist, and the job stays as it was before that time (no pause that day; a day's transfer window
 * from 02:00 to 03:00 stays shut). The day the clocks go back, each edge comes once, at its first
 * occurrence (croner's), so that day's window is an hour longer.
 *
 * @module
 */
import { Cron } from "croner";
import type { JobConfig } from "../config/types.ts";

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
 * Until when `job`, inside a pause window of its schedules at `now`, stays paused, in words:
 * `until its resume at 2024-03-16 06:00 +01:00` (the first of its cron `resume` entries to come
 * that ends the window: not one the clocks going forward put at the time of a pause), `until its
 * next resume` (an `every_seconds` one), or `until Resume on the status page`.
 */
export function windowEnd(job: JobConfig, now: Date = new Date()): string {
  const entries = job.schedules.filter((entry) => entry.action === "resume");
  const resumes = entries.flatMap((entry) => {
    let at = nextCronRun(entry, job, now);
    for (let tried = 0; at !== null && tried < TIES_FOLLOWED && pausedAt(job, at); tried++) {
      at = nextCronRun(entry, job, at);
    }
    return at === null ? [] : [{ at, zone: scheduleTimeZone(entry, job) }];
  }).sort((a, b) => a.at.getTime() - b.at.getTime());
  if (resumes.length > 0) return `until its resume at ${zonedTime(resumes[0].at, resumes[0].zone)}`;
  return entries.length > 0 ? "until its next resume" : "until Resume on the status page";
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

/** How many pause and resume times at one time are looked past (one a year in a zone with DST). */
const TIES_FOLLOWED = 4;

/** The latest `pause` or `resume` cron time at or before `at`, and the entries at it. */
function latestEdge(
  job: JobConfig,
  at: Date,
): { at: number; pauses: number[]; resumes: number[] } | null {
  let latest: { at: number; pauses: number[]; resumes: number[] } | null = null;
  for (const [index, entry] of job.schedules.entries()) {
    if (entry.action !== "pause" && entry.action !== "resume") continue;
    const previous = lastCronTime(entry, job, at);
    if (previous === null || (latest !== null && previous < latest.at)) continue;
    if (latest === null || previous > latest.at) latest = { at: previous, pauses: [], resumes: [] };
    latest[entry.action === "pause" ? "pauses" : "resumes"].push(index);
  }
  return latest;
}

/**
 * Whether `at` falls in a pause window: the latest `pause` or `resume` cron time at or before it
 * was a `pause`. A pause and a resume at that one time (the clocks going forward moved one onto
 * the other; see the module doc) leave the job as it was before it.
 */
export function pausedAt(job: JobConfig, at: Date): boolean {
  let when = at;
  for (let looked = 0; looked < TIES_FOLLOWED; looked++) {
    const edge = latestEdge(job, when);
    if (edge === null) return false;
    if (edge.pauses.length === 0 || edge.resumes.length === 0) return edge.pauses.length > 0;
    when = new Date(edge.at - 1);
  }
  return false;
}

/**
 * The `pause` or `resume` entry (its index) of the other kind whose latest time at or before `at`
 * is that of entry `index`: the clocks going forward put them at one time (see the module doc);
 * `null` when none is.
 */
export function edgeAtSameTime(job: JobConfig, index: number, at: Date): number | null {
  const edge = latestEdge(job, at);
  if (edge === null) return null;
  const [own, other] = edge.pauses.includes(index)
    ? [edge.pauses, edge.resumes]
    : [edge.resumes, edge.pauses];
  return own.includes(index) && other.length > 0 ? other[0] : null;
}
