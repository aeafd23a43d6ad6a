/**
 * When a file with an error goes next, in the words the status page's Failures table and
 * `status` both use: one function, which the page's script embeds as its source.
 *
 * @module
 */

/** A file with an error, as the ledger keeps it (a row of `/api/status`'s `problems`). */
export interface ProblemFile {
  job: string;
  /** `failed` (its quick retries used up) or `pending` (a retry due). */
  state: string;
  /** When its next attempt is due (ms since epoch), `0` for none set. */
  nextAttemptAt: number;
}

/** What is known of the jobs when the words are made. */
export interface JobsNow {
  /** Now, ms since epoch. */
  now: number;
  /**
   * Each job's state as the running daemon tells it (`/api/status`'s `jobs`; empty where it does
   * not tell), or `null` when no daemon runs: the next start tries the files again.
   */
  jobs: Array<{ job: string; state: string; held?: boolean }> | null;
}

/**
 * When `p` goes next: a time only while it is ahead; while the destination holds the job (full,
 * or not reachable), that it waits for it; with no daemon running, at the next start. A file
 * whose quick retries are used up is said `failing`. The function must stay self-contained (no
 * imports, no names from outside): the status page embeds its source.
 *
 * @param time how a time is written (the page: the browser's locale; `status`: "at <time>")
 * @param retryNow what follows a time ahead for a failing file (the page: its Retry button)
 * @returns e.g. `failing; next try at 2024-05-02 12:00:00`, `failing; waiting for the destination`
 */
export function nextTry(
  p: ProblemFile,
  s: JobsNow,
  time: (ms: number) => string,
  retryNow = "",
): string {
  const failing = p.state === "failed", ahead = p.nextAttemptAt > s.now;
  const lead = failing ? "failing; " : "";
  if (s.jobs === null) {
    return lead + (failing ? "next try at the next start" : "retry at the next start");
  }
  const j = s.jobs.find((job) => job.job === p.job) || { job: p.job, state: "" };
  const held = j.held || j.state === "unreachable" || j.state === "full"
    ? "waiting for the destination"
    : j.state === "paused"
    ? "waiting: the job is paused"
    : j.state === "ledger_error"
    ? "waiting for the ledger"
    : "";
  if (held) return lead + held;
  if (!failing) return ahead ? "retry " + time(p.nextAttemptAt) : "waiting";
  return ahead ? "failing; next try " + time(p.nextAttemptAt) + retryNow : "failing; next try now";
}
