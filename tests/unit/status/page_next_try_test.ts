/**
 * The status page's Failures table says when each file goes next: a time only while it is ahead,
 * and while the destination holds the job, that the files wait for it. Its own script's function,
 * taken from the page as served.
 */
import assert from "node:assert/strict";
import { STATUS_PAGE } from "../../../src/status/page.ts";

type Problem = { job: string; state: string; nextAttemptAt: number };
type Job = { job: string; state: string; held?: boolean };

/** The page script's `nextTry`, its times written as `T<ms>`. */
function nextTry(): (p: Problem, s: { now: number; jobs: Job[] }) => string {
  const start = STATUS_PAGE.indexOf("function nextTry");
  const end = STATUS_PAGE.indexOf("function chart");
  assert.ok(start > 0 && end > start, "the page defines nextTry");
  return new Function("time", `${STATUS_PAGE.slice(start, end)}return nextTry;`)(
    (ms: number) => `T${ms}`,
  );
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
