/**
 * The JSON API behind the status page: what the daemon and its jobs are
 * doing, transfers filtered by state, night and name, night totals, and the
 * actions (retry, pause, resume). Never file contents, never config secrets.
 *
 * Responses of the status server: the security headers every answer carries,
 * and JSON and plain-text answers with them.
 *
 * How long the latest transfers of this run took, for the status page's
 * recent transfers (the ledger keeps when a file arrived, not how long it
 * took). Only the latest {@linkcode KEPT_DURATIONS} are kept, in memory.
 *
 * @module
 */
import type { FileState } from "../ledger/file_rows.ts";
import { logger } from "../log/logging.ts";
import { logFileLoss, logLinesLostTotal } from "../log/file_sink.ts";
import type { JobSnapshot } from "./job_status.ts";
import { renamedLabels, type TransferEvent } from "./events.ts";
import type { LedgerReports, TransferFilter, TransferRow } from "./ledger_reports.ts";

/** What the API may do with a running job. */
export interface StatusJob {
  snapshot(): JobSnapshot;
  pause(): void;
  resume(): void;
  /** @returns how many failed files go back into the queue */
  retry(relPath?: string): number;
}

/** What the API reads from. */
export interface StatusSource {
  /** The jobs running now (they change on a reload). */
  jobs(): StatusJob[];
  reports: LedgerReports;
  build: { version: string; commit: string; deno: string };
  startedAt: number;
  /** The last reload, when it was refused (the daemon runs with the config it had), else `null`. */
  reloadRefused(): { at: string; reason: string } | null;
}

/** How far back the page's chart reaches. */
const CHART_SPAN_MS = 6 * 3600_000;
/** The page's night totals count the files changed in this time. */
const NIGHTS_SPAN_MS = 10 * 86_400_000;
/** Rows (a night folder of a job) of the page's night totals, the latest first. */
const NIGHT_ROWS = 7;

const STATES: FileState[] = ["pending", "transferring", "done", "failed"];

/** A request the API refuses, with its HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A file as the API shows it: with how long its transfer took, when it was sent in this run. */
function withDuration(
  row: TransferRow,
  durations: RecentDurations,
): TransferRow & { durationMs: number | null } {
  return {
    ...row,
    durationMs: row.state === "done" ? durations.get(row.job, row.relPath) : null,
  };
}

/** `GET /api/status`: the whole picture the page shows. */
export function statusReport(
  source: StatusSource,
  durations: RecentDurations,
  limit = 20,
): Record<string, unknown> {
  const now = Date.now();
  const jobs = source.jobs().map((j) => j.snapshot());
  const lastSuccessAt = jobs.reduce<number | null>(
    (latest, j) =>
      j.lastSuccessAt !== null && j.lastSuccessAt > (latest ?? 0) ? j.lastSuccessAt : latest,
    null,
  );
  const recent = source.reports.transfers({ state: "done", limit })
    .map((row) => withDuration(row, durations));
  // One more than shown tells whether the list goes on (the page says so).
  const problems = source.reports.problems(limit + 1);
  const nights = source.reports.nights(NIGHT_ROWS + 1, now - NIGHTS_SPAN_MS);
  return {
    ...source.build,
    pid: Deno.pid,
    now,
    startedAt: source.startedAt,
    reloadRefused: source.reloadRefused(),
    ledgerRebuilt: source.reports.rebuilt(),
    // The latest stretch of lines the log file could not take (`until` null: still), and all.
    logFileLoss: logFileLoss(),
    logLinesLost: logLinesLostTotal(),
    // On the monotonic clock: a wall clock stepped back does not make it negative.
    uptimeSeconds: Math.round(performance.now() / 1000),
    lastSuccessAt: lastSuccessAt ?? recent[0]?.transferredAt ?? null,
    jobs,
    counts: source.reports.counts(),
    recent,
    problems: problems.slice(0, limit),
    problemsMore: problems.length > limit,
    nights: nights.slice(0, NIGHT_ROWS),
    nightsMore: nights.length > NIGHT_ROWS,
    perMinute: source.reports.perMinute(now - CHART_SPAN_MS),
  };
}

/** `GET /api/transfers?state=&night=&name=&job=&limit=`. */
export function transfersReport(
  source: StatusSource,
  durations: RecentDurations,
  params: URLSearchParams,
): unknown {
  const filter: TransferFilter = { limit: limitParam(params, 100) };
  const state = params.get("state");
  if (state !== null) {
    if (!STATES.includes(state as FileState)) {
      throw new ApiError(400, `state: expected one of ${STATES.join(", ")}`);
    }
    filter.state = state as FileState;
  }
  const night = params.get("night");
  if (night !== null) {
    if (!/^\d{8}$/.test(night)) throw new ApiError(400, "night: expected YYYYMMDD");
    filter.night = night;
  }
  if (params.get("name")) filter.name = params.get("name")!;
  if (params.get("job")) filter.job = params.get("job")!;
  return {
    transfers: source.reports.transfers(filter).map((row) => withDuration(row, durations)),
  };
}

/** `GET /api/nights?limit=`. */
export function nightsReport(source: StatusSource, params: URLSearchParams): unknown {
  return { nights: source.reports.nights(limitParam(params, 14)) };
}

/**
 * `POST /api/jobs/{job}/{pause|resume|retry}`; retry takes an optional JSON
 * body `{"file": "relative/path"}` (without it, every failed file of the job).
 */
export function jobAction(
  source: StatusSource,
  jobName: string,
  action: string,
  body: string,
): unknown {
  const job = source.jobs().find((j) => j.snapshot().job === jobName);
  if (!job) throw new ApiError(404, `no running job named ${jobName}`);
  switch (action) {
    case "pause":
    case "resume": {
      if (action === "pause") job.pause();
      else job.resume();
      const { state } = job.snapshot();
      logger("status").info(`Job {job} ${action}d from the status page; it is {state} now`, {
        job: jobName,
        state,
      });
      return { job: jobName, state };
    }
    case "retry": {
      const text = body;
      let file: unknown;
      if (text.trim() !== "") {
        try {
          file = (JSON.parse(text) as { file?: unknown }).file;
        } catch {
          throw new ApiError(400, 'expected a JSON body like {"file": "relative/path"}');
        }
        if (file !== undefined && typeof file !== "string") {
          throw new ApiError(400, "file: expected a relative path (a string)");
        }
      }
      return { job: jobName, requeued: job.retry(file as string | undefined) };
    }
    default:
      throw new ApiError(404, `unknown action ${action}; use pause, resume or retry`);
  }
}

function limitParam(params: URLSearchParams, fallback: number): number {
  const raw = params.get("limit");
  if (raw === null) return fallback;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ApiError(400, "limit: expected a whole number from 1 to 1000");
  }
  return limit;
}

/** Headers every response of the status server carries. */
export const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** A JSON response with the security headers. */
export function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...SECURITY_HEADERS },
  });
}

/** A plain-text response with the security headers (and `headers`). */
export function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...SECURITY_HEADERS, ...headers },
  });
}

/** How many transfer durations are remembered. */
export const KEPT_DURATIONS = 1000;

/** The durations of the latest transfers, by job and relative path. */
export class RecentDurations {
  #byFile = new Map<string, number>();

  /** Remember the duration of a `sent` event (others are ignored). */
  record(event: TransferEvent): void {
    if (event.type === "renamed") {
      // They follow the job as its ledger's rows do: a job renamed shows its own.
      const moved = new Map<string, number>();
      for (const [key, ms] of this.#byFile) {
        const at = key.indexOf("\0");
        const to = renamedLabels(
          { job: key.slice(0, at), method: "" },
          event.renamed,
          (a, b) => a.job === b.job,
        );
        if (to) moved.set(`${to.job}${key.slice(at)}`, ms);
      }
      this.#byFile = moved;
      return;
    }
    if (event.type !== "sent") return;
    const key = `${event.job}\0${event.relPath}`;
    this.#byFile.delete(key);
    this.#byFile.set(key, event.durationMs);
    if (this.#byFile.size > KEPT_DURATIONS) {
      this.#byFile.delete(this.#byFile.keys().next().value!);
    }
  }

  /** Milliseconds the last transfer of `relPath` took, if it was sent in this run. */
  get(job: string, relPath: string): number | null {
    return this.#byFile.get(`${job}\0${relPath}`) ?? null;
  }
}
