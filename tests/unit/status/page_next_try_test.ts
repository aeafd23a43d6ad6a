/**
 * The status page's Failures table says when each file goes next: a time only while it is ahead,
 * and while the destination holds the job, that the files wait for it. Its own script's function,
 * taken from the page as served; `status` says the same words through the same function.
 */
import assert from "node:assert/strict";
import { STATUS_PAGE } from "../../../src/status/page.ts";
import { nextTry as statusNextTry } from "../../../src/status/next_try.ts";

type Problem = { job: string; state: string; nextAttemptAt: number };
type Job = { job: string; state: string; held?: boolean };
type NextTry = (
  p: Problem,
  s: { now: number; jobs: Job[] | null },
  time: (ms: number) => string,
  retryNow?: string,
) => string;

/** The page script's `nextTry`, its times written as `T<ms>`, with the page's Retry button. */
function nextTry(): (p: Problem, s: { now: number; jobs: Job[] | null }) => string {
  const start = STATUS_PAGE.indexOf("function nextTry");
  const end = STATUS_PAGE.indexOf("function chart");
  assert.ok(start > 0 && end > start, "the page defines nextTry");
  const page: NextTry = new Function(`${STATUS_PAGE.slice(start, end)}return nextTry;`)();
  return (p, s) => page(p, s, (ms: number) => `T${ms}`, ", or Retry now");
}

Deno.test("the page's next try: a time only while it is ahead; waiting for a destination that holds the job", () => {
  const next = nextTry();
  const now = 1_000_000;
  const at = (state: string, nextAttemptAt: number, job: Job) =>
    next({ job: "j", state, nextAttemptAt }, { now, jobs: [job] });
  const watching = { job: "j", state: "watching" };
  assert.equal(
    at("failed", now + 5000, watching),
    `failing; next try T${now + 5000}, or Retry now`,
  );
  // A time gone by is no promise: the try is due.
  assert.equal(at("failed", now - 5000, watching), "failing; next try now");
  assert.equal(at("failed", 0, watching), "failing; next try now");
  assert.equal(at("pending", now + 5000, watching), `retry T${now + 5000}`);
  assert.equal(at("pending", now - 5000, watching), "waiting");
  // The destination holds the job: whatever time the row keeps, the files wait for it.
  for (const job of [{ job: "j", state: "unreachable" }, { job: "j", state: "full" }]) {
    assert.equal(at("failed", now - 5000, job), "failing; waiting for the destination");
    assert.equal(at("failed", now + 5000, job), "failing; waiting for the destination");
    assert.equal(at("pending", 0, job), "waiting for the destination");
  }
  // Held while the job's state tells the last failure (the host answers, a file fails).
  const held = { job: "j", state: "failing", held: true };
  assert.equal(at("failed", now - 5000, held), "failing; waiting for the destination");
  assert.equal(
    at("failed", now - 5000, { job: "j", state: "paused" }),
    "failing; waiting: the job is paused",
  );
});

Deno.test("status says a file's next try in the page's words; with no daemon running, at the next start", () => {
  const next = nextTry();
  const now = 1_000_000;
  const cli = (p: Problem, jobs: Job[] | null) => statusNextTry(p, { now, jobs }, (ms) => `T${ms}`);
  for (const nextAttemptAt of [0, now - 5000, now + 5000]) {
    for (const state of ["failed", "pending"]) {
      for (const job of [{ job: "j", state: "watching" }, { job: "j", state: "full" }]) {
        const p = { job: "j", state, nextAttemptAt };
        assert.equal(cli(p, [job]), next(p, { now, jobs: [job] }).replace(", or Retry now", ""));
      }
    }
  }
  assert.equal(
    cli({ job: "j", state: "failed", nextAttemptAt: 0 }, null),
    "failing; next try at the next start",
  );
  assert.equal(
    cli({ job: "j", state: "failed", nextAttemptAt: now + 5000 }, null),
    "failing; next try at the next start",
  );
  assert.equal(
    cli({ job: "j", state: "pending", nextAttemptAt: now - 5000 }, null),
    "retry at the next start",
  );
});
