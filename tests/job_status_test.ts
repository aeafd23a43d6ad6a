/**
 * A job's live status: the current transfer rate is what arrived over the
 * last ten seconds, and the state changes say since when.
 */
import assert from "node:assert/strict";
import { JobStatus, RATE_WINDOW_MS } from "../src/status/job_status.ts";

Deno.test("job status: the rate counts the bytes that arrived in the last ten seconds", () => {
  const status = new JobStatus("default", "scp");
  assert.equal(status.rate(), 0, "nothing arrived yet");
  status.started([{ relPath: "a.fits", bytes: 4_000_000 }, {
    relPath: "b.fits",
    bytes: 6_000_000,
  }]);
  assert.equal(status.inFlight().length, 2);
  status.sent("a.fits", "20240315/a.fits", 4_000_000);
  status.sent("b.fits", "20240315/b.fits", 6_000_000);
  const now = Date.now();
  assert.equal(status.rate(now), 10_000_000 / (RATE_WINDOW_MS / 1000));
  assert.deepEqual(status.inFlight(), [], "arrived files are no longer in flight");
  // Once they are older than the window, the rate falls back to zero.
  assert.equal(status.rate(now + RATE_WINDOW_MS + 1), 0);
});

Deno.test("job status: paused from the page or by a transfer window, with the window's reason", () => {
  const status = new JobStatus("default", "local");
  assert.equal(status.state(false).state, "watching");
  status.windowPaused = true;
  assert.deepEqual(
    [status.paused, status.state(false).state, status.state(false).reason],
    [true, "paused", "outside a transfer window"],
  );
  status.windowPaused = false;
  status.userPaused = true;
  assert.deepEqual([status.state(false).state, status.state(false).reason], ["paused", null]);
  status.userPaused = false;
  assert.equal(status.state(true).state, "full");
});
