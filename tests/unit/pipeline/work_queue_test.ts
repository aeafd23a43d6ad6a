/**
 * The work queue alone, on a manual clock: sequences of events that once
 * lost a file or sent it twice, and retries that must always fire.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { WorkQueue } from "../../../src/pipeline/work_queue.ts";
import { type Observation, StabilityChecker } from "../../../src/watch/stability.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";

const V1 = { size: 100, mtimeMs: 5000 };
const V2 = { size: 150, mtimeMs: 6000 };
const PLAN = { destination: "20240315/a.fits", attempts: 0, nextAttemptAt: 0 };
/** The counts of an empty queue. */
const NONE = { observing: 0, planning: 0, queued: 0, waiting: 0, sending: 0, failed: 0 };

function setup() {
  const clock = new FakeClock();
  const due: string[][] = [];
  const queue = new WorkQueue((relPaths) => due.push(relPaths), clock);
  return { clock, queue, due };
}

/** Plan `rel` at `version` and check it is queued. */
function queueFile(queue: WorkQueue, rel: string, version = V1): void {
  assert.equal(queue.ready(rel, version, false), "plan");
  assert.equal(queue.planned(rel, version, PLAN), "queued");
}

Deno.test("WorkQueue: ready → planning → queued → sending → removed; a done file is skipped", () => {
  const { queue } = setup();
  assert.equal(queue.ready("a.fits", V1, true), "skip", "done as it is");
  assert.equal(queue.size, 0);
  assert.equal(queue.ready("a.fits", V1, false), "plan");
  assert.equal(queue.get("a.fits")?.phase, "planning");
  assert.deepEqual(queue.takeBatch(10), [], "nothing to send while planning");
  assert.equal(queue.planned("a.fits", V1, PLAN), "queued");
  const batch = queue.takeBatch(10);
  assert.deepEqual(batch.map((r) => [r.relPath, r.phase, r.destination]), [
    ["a.fits", "sending", "20240315/a.fits"],
  ]);
  assert.deepEqual(queue.takeBatch(10), [], "a file is taken once");
  assert.equal(queue.finish("a.fits", { to: "removed" }), false, "nothing to look at again");
  assert.equal(queue.size, 0);
});

Deno.test("WorkQueue: batches keep arrival order and their size limit", () => {
  const { queue } = setup();
  for (const rel of ["c", "a", "b", "d"]) queueFile(queue, rel);
  assert.deepEqual(queue.takeBatch(3).map((r) => r.relPath), ["c", "a", "b"]);
  assert.deepEqual(queue.takeBatch(3).map((r) => r.relPath), ["d"]);
  assert.equal(queue.count("sending"), 4);
});

Deno.test("WorkQueue: a batch holds no more bytes than asked, unless its first file alone does", () => {
  const { queue } = setup();
  const size = (n: number) => ({ size: n, mtimeMs: 5000 });
  queueFile(queue, "big", size(500));
  queueFile(queue, "s1", size(100));
  queueFile(queue, "s2", size(100));
  queueFile(queue, "s3", size(100));
  queueFile(queue, "s4", size(350));
  assert.deepEqual(queue.takeBatch(10, 300).map((r) => r.relPath), ["big"], "larger alone: goes");
  assert.deepEqual(queue.takeBatch(10, 300).map((r) => r.relPath), ["s1", "s2", "s3"]);
  assert.deepEqual(queue.takeBatch(2, 300).map((r) => r.relPath), ["s4"]);
  assert.deepEqual(queue.takeBatch(10, 300), []);
});

Deno.test("WorkQueue: smallest first (a full destination), sizes equal in arrival order, within the limits", () => {
  const { queue } = setup();
  const size = (n: number) => ({ size: n, mtimeMs: 5000 });
  queueFile(queue, "big", size(900));
  queueFile(queue, "b", size(200));
  queueFile(queue, "a", size(100));
  queueFile(queue, "c", size(200));
  queueFile(queue, "d", size(50));
  assert.deepEqual(queue.takeBatch(1, Infinity, true).map((r) => r.relPath), ["d"]);
  assert.deepEqual(queue.takeBatch(3, 400, true).map((r) => r.relPath), ["a", "b"]);
  assert.deepEqual(queue.takeBatch(10, Infinity, false).map((r) => r.relPath), ["big", "c"]);
});

Deno.test("WorkQueue: an event while a file is sent is remembered and looked at after the attempt", () => {
  const { queue } = setup();
  queueFile(queue, "a.fits");
  queue.takeBatch(1);
  assert.equal(queue.activity("a.fits"), false, "the checker waits until the attempt ends");
  assert.equal(queue.ready("a.fits", V2, false), "later", "a report while sending is deferred");
  assert.equal(queue.finish("a.fits", { to: "removed" }), true, "then the checker looks again");
});

Deno.test("WorkQueue: a file waiting for a retry is not also sent at once when an event re-checks it", () => {
  const { clock, queue, due } = setup();
  queueFile(queue, "retry.fits");
  queue.takeBatch(1);
  // An event arrives while it is sent (nothing changed), then the attempt fails.
  assert.equal(queue.activity("retry.fits"), false);
  const observe = queue.finish("retry.fits", {
    to: "waiting",
    attempts: 1,
    nextAttemptAt: clock.now() + 1500,
  });
  assert.equal(observe, true, "the checker looks at the file again");
  assert.deepEqual(queue.takeBatch(10), [], "not sent while it is re-checked and waits");
  // The checker finds it complete as it was: it keeps its place and its backoff.
  assert.equal(queue.ready("retry.fits", V1, false), "keep");
  assert.equal(queue.get("retry.fits")?.phase, "waiting");
  assert.deepEqual(queue.takeBatch(10), [], "still waiting for its retry time");
  clock.advance(1499);
  assert.deepEqual(due, []);
  clock.advance(1);
  assert.deepEqual(due, [["retry.fits"]]);
  assert.deepEqual(queue.takeBatch(10).map((r) => [r.relPath, r.attempts]), [["retry.fits", 1]]);
  assert.deepEqual(queue.takeBatch(10), [], "exactly one retry");
});

Deno.test("WorkQueue: an event on a queued file holds it; a new version is planned again from zero", () => {
  const { queue } = setup();
  queueFile(queue, "a.fits");
  assert.equal(queue.activity("a.fits"), true, "the checker observes it now");
  assert.deepEqual(queue.takeBatch(10), [], "held while it is observed");
  assert.equal(queue.ready("a.fits", V2, false), "plan", "it changed: plan again");
  const record = queue.get("a.fits")!;
  assert.deepEqual([record.phase, record.version, record.attempts], ["planning", V2, 0]);
  assert.equal(queue.planned("a.fits", V1, PLAN), "stale", "a plan of the old version is ignored");
  assert.equal(queue.planned("a.fits", V2, PLAN), "queued");
  assert.deepEqual(queue.takeBatch(10).map((r) => r.version), [V2]);
});

Deno.test("WorkQueue: a queued or waiting file that changed counts as not complete, not as waiting, until it is complete again", () => {
  const { clock, queue } = setup();
  queueFile(queue, "a.fits");
  clock.advance(1_000);
  queueFile(queue, "b.fits");
  const bFound = clock.now();
  queueFile(queue, "c.fits");
  queue.takeBatch(1);
  queue.finish("a.fits", { to: "waiting", attempts: 1, nextAttemptAt: clock.now() + 60_000 });
  assert.deepEqual(queue.counts(), { ...NONE, queued: 2, waiting: 1 });
  // The writer opened a.fits (waiting for its retry) and b.fits (queued) again: the checker
  // observes them, nothing sends them, and they may stay incomplete (a FITS file's grace).
  assert.equal(queue.activity("a.fits"), true);
  assert.equal(queue.activity("b.fits"), true);
  assert.deepEqual(queue.counts(), { ...NONE, observing: 2, queued: 1 });
  assert.equal(queue.oldestFoundAt, clock.now(), "c.fits alone waits for the daemon");
  assert.deepEqual([queue.count("queued"), queue.count("waiting")], [2, 1], "their phases stay");
  // Complete again as they were: waiting and queued again, since they were first found.
  assert.equal(queue.ready("b.fits", V1, false), "keep");
  assert.equal(queue.ready("a.fits", V1, false), "keep");
  assert.deepEqual(queue.counts(), { ...NONE, queued: 2, waiting: 1 });
  assert.equal(queue.oldestFoundAt, bFound - 1_000);
  // Changed while sent: held for the checker after the attempt, and counted so.
  assert.deepEqual(queue.takeBatch(2).map((r) => r.relPath).sort(), ["b.fits", "c.fits"]);
  assert.equal(queue.activity("b.fits"), false);
  assert.equal(queue.finish("b.fits", { to: "queued" }), true);
  assert.equal(queue.finish("c.fits", { to: "removed" }), false);
  assert.deepEqual(queue.counts(), { ...NONE, observing: 1, waiting: 1 });
  queue.remove("b.fits");
  queue.remove("a.fits");
  assert.deepEqual(queue.counts(), NONE);
});

Deno.test("WorkQueue: a change while planning queues the file held, for the checker to confirm", () => {
  const { queue } = setup();
  assert.equal(queue.ready("a.fits", V1, false), "plan");
  assert.equal(queue.activity("a.fits"), false, "not while planning");
  assert.equal(queue.planned("a.fits", V1, PLAN), "observe");
  assert.deepEqual(queue.takeBatch(10), [], "held until the checker reports");
  assert.equal(queue.ready("a.fits", V1, false), "keep");
  assert.equal(queue.takeBatch(10).length, 1);
});

Deno.test("WorkQueue: a removed file's plan is stale; removing twice is harmless", () => {
  const { queue } = setup();
  queue.ready("a.fits", V1, false);
  assert.equal(queue.remove("a.fits"), true);
  assert.equal(queue.remove("a.fits"), false);
  assert.equal(queue.planned("a.fits", V1, PLAN), "stale");
  assert.equal(queue.size, 0);
  assert.equal(queue.finish("a.fits", { to: "removed" }), false, "no record: nothing to do");
});

Deno.test("WorkQueue: every retry fires at its time, however many and in whatever order they fail", () => {
  const { clock, queue, due } = setup();
  const start = clock.now();
  const times = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const rel = `f${i}.fits`;
    queueFile(queue, rel);
    queue.takeBatch(1);
    // Delays from 0.1 to 90 s, some equal, in random order.
    const at = start + (1 + Math.floor(Math.random() * 900)) * 100;
    times.set(rel, at);
    queue.finish(rel, { to: "waiting", attempts: 1, nextAttemptAt: at });
  }
  const promotedAt = new Map<string, number>();
  while (promotedAt.size < times.size) {
    const earliestWaiting = Math.min(
      ...[...times].filter(([rel]) => !promotedAt.has(rel)).map(([, at]) => at),
    );
    assert.equal(queue.timerAt, earliestWaiting, "the one timer is armed for the earliest retry");
    clock.advance(100);
    for (const rel of due.splice(0).flat()) {
      assert.ok(!promotedAt.has(rel), `${rel} promoted once`);
      promotedAt.set(rel, clock.now());
    }
    // Meanwhile other files come and go.
    queueFile(queue, `other${clock.now()}`);
    for (const record of queue.takeBatch(10_000)) {
      if (record.relPath.startsWith("other")) queue.finish(record.relPath, { to: "removed" });
    }
  }
  for (const [rel, at] of times) {
    const when = promotedAt.get(rel)!;
    assert.ok(when >= at && when < at + 100, `${rel}: due ${at}, promoted ${when}`);
  }
  assert.equal(queue.count("sending"), 2000);
  assert.equal(queue.timerAt, Infinity);
  assert.equal(clock.pendingTimers, 0, "no timer left when nothing waits");
});

Deno.test("WorkQueue: a retry of a resumed file fires; an overdue one is queued at once", () => {
  const { clock, queue, due } = setup();
  queue.resume({
    relPath: "late.fits",
    version: V1,
    destination: "d",
    attempts: 2,
    nextAttemptAt: 1,
  });
  queue.resume({
    relPath: "soon.fits",
    version: V1,
    destination: "d",
    attempts: 1,
    nextAttemptAt: clock.now() + 5000,
  });
  assert.deepEqual(queue.takeBatch(10).map((r) => r.relPath), ["late.fits"]);
  clock.advance(5000);
  assert.deepEqual(due, [["soon.fits"]]);
  assert.deepEqual(queue.takeBatch(10).map((r) => [r.relPath, r.attempts]), [["soon.fits", 1]]);
});

Deno.test("WorkQueue: a record that leaves waiting early does not fire; close stops the timer", () => {
  const { clock, queue, due } = setup();
  queueFile(queue, "a.fits");
  queueFile(queue, "b.fits");
  queue.takeBatch(2);
  queue.finish("a.fits", { to: "waiting", attempts: 1, nextAttemptAt: clock.now() + 1000 });
  queue.finish("b.fits", { to: "waiting", attempts: 1, nextAttemptAt: clock.now() + 3000 });
  queue.remove("a.fits");
  clock.advance(1000);
  assert.deepEqual(due, [], "the removed record does not come back");
  assert.equal(queue.timerAt, clock.now() + 2000, "re-armed for the next one");
  queue.close();
  clock.advance(5000);
  assert.deepEqual(due, []);
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("WorkQueue: promoteDue from outside the timer (a sweep) queues what is due", () => {
  const { clock, queue, due } = setup();
  queueFile(queue, "a.fits");
  queue.takeBatch(1);
  queue.finish("a.fits", { to: "waiting", attempts: 1, nextAttemptAt: clock.now() + 1000 });
  assert.deepEqual(queue.promoteDue(), [], "not due yet");
  // Time passes without the timer firing (a stalled event loop): a sweep finds it due.
  clock.jump(1000);
  assert.deepEqual(queue.promoteDue(), ["a.fits"]);
  assert.equal(queue.get("a.fits")?.phase, "queued");
  clock.advance(0);
  assert.deepEqual(due, [], "the timer then finds nothing left to do");
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("WorkQueue: the oldest waiting file is the one found first, through retries and new versions", () => {
  const { clock, queue } = setup();
  assert.equal(queue.oldestFoundAt, null, "nothing waits");
  const start = clock.now();
  queueFile(queue, "a.fits");
  clock.advance(1_000);
  queueFile(queue, "b.fits");
  clock.advance(1_000);
  queue.resume({
    relPath: "c.fits",
    version: V1,
    destination: "n/c",
    attempts: 1,
    nextAttemptAt: 0,
  });
  assert.equal(queue.oldestFoundAt, start);
  // A failed attempt or a new version keeps the time the file was first found.
  queue.takeBatch(1);
  queue.finish("a.fits", { to: "waiting", attempts: 1, nextAttemptAt: clock.now() + 60_000 });
  assert.equal(queue.ready("a.fits", V2, false), "plan");
  assert.equal(queue.oldestFoundAt, start);
  // Once it arrived the next-oldest counts; found again, a file waits from then.
  assert.equal(queue.planned("a.fits", V2, PLAN), "queued");
  assert.deepEqual(queue.takeBatch(1).map((r) => r.relPath), ["b.fits"]);
  queue.remove("a.fits");
  assert.equal(queue.oldestFoundAt, start + 1_000);
  queue.finish("b.fits", { to: "removed" });
  assert.equal(queue.oldestFoundAt, start + 2_000, "the resumed file waits from its resumption");
  queueFile(queue, "a.fits");
  queue.remove("c.fits");
  assert.equal(queue.oldestFoundAt, clock.now());
  // A failing file (its fast retries used up) is counted as failed, not as waiting.
  queue.takeBatch(1);
  queue.finish("a.fits", {
    to: "waiting",
    attempts: 4,
    nextAttemptAt: clock.now() + 1,
    failing: true,
  });
  assert.equal(queue.oldestFoundAt, null, "only a failing file left");
  queue.remove("a.fits");
  assert.equal(queue.oldestFoundAt, null);
});

Deno.test("WorkQueue: a failing file waits for its slow retry; a rescan or Retry sends it now", () => {
  const { clock, queue, due } = setup();
  queueFile(queue, "a.fits");
  queueFile(queue, "b.fits");
  queue.takeBatch(2);
  const slow = clock.now() + 600_000;
  queue.finish("a.fits", { to: "waiting", attempts: 4, nextAttemptAt: slow, failing: true });
  queue.finish("b.fits", { to: "waiting", attempts: 4, nextAttemptAt: slow, failing: true });
  assert.equal(queue.get("a.fits")?.failing, true);
  assert.equal(queue.timerAt, slow);
  // Counted as failed only, once each (the count every report reads).
  assert.equal(queue.count("waiting"), 2);
  assert.deepEqual(queue.counts(), { ...NONE, failed: 2 });
  // A rescan finds a.fits complete as it was: it goes now, still failing (a new failure is slow again).
  assert.equal(queue.ready("a.fits", V1, false), "keep");
  assert.equal(queue.get("a.fits")?.phase, "queued");
  assert.equal(queue.get("a.fits")?.failing, true);
  assert.deepEqual([queue.count("waiting"), queue.count("queued")], [1, 1]);
  assert.deepEqual(queue.counts(), { ...NONE, failed: 2 }, "a.fits is failing still, queued");
  // Retry: b.fits goes now with fresh quick retries.
  assert.deepEqual(queue.retryNow("b.fits"), ["b.fits"]);
  assert.deepEqual(
    [queue.get("b.fits")?.phase, queue.get("b.fits")?.attempts, queue.get("b.fits")?.failing],
    ["queued", 0, false],
  );
  assert.deepEqual(queue.counts(), { ...NONE, queued: 1, failed: 1 });
  // A failing file held back in line (the destination paused the job) stays failing: a rescan or
  // the destination's return does not queue it again; the user's Retry gives it fresh retries.
  queue.takeBatch(1);
  queue.finish("a.fits", { to: "queued" });
  assert.equal(queue.get("a.fits")?.failing, true);
  assert.deepEqual(queue.retryNow(undefined, false), []);
  assert.deepEqual(queue.retryNow(), ["a.fits"]);
  assert.deepEqual(queue.counts(), { ...NONE, queued: 2 });
  assert.deepEqual(queue.retryNow(), [], "nothing else is failing");
  // Left alone, a failing file is queued by the timer at its slow retry time.
  queue.takeBatch(2);
  queue.finish("a.fits", { to: "waiting", attempts: 5, nextAttemptAt: slow + 1, failing: true });
  queue.finish("b.fits", { to: "removed" });
  clock.advance(600_001);
  assert.deepEqual(due.at(-1), ["a.fits"]);
  assert.equal(queue.get("a.fits")?.phase, "queued");
  // Its batch failing (not the file) keeps it failing: counted as failed, once.
  queue.takeBatch(1);
  queue.finish("a.fits", { to: "waiting", attempts: 6, nextAttemptAt: clock.now() + 1_000 });
  assert.equal(queue.get("a.fits")?.failing, true);
  assert.deepEqual(queue.counts(), { ...NONE, failed: 1 });
});

Deno.test("WorkQueue: the stability checker's observations live in the records (the observing phase)", async () => {
  const { queue, clock } = setup();
  const root = await Deno.makeTempDir({ prefix: "itx-observing-" });
  try {
    const ready: string[] = [];
    const gone: string[] = [];
    const path = (rel: string) => join(root, rel);
    // The checker as the job runs it: the queue keeps its observations (the intake's store
    // turns absolute paths into relative ones the same way).
    const observations = {
      get: (p: string) => queue.observations.get(p.slice(root.length + 1)),
      set: (p: string, o: Observation) => queue.observations.set(p.slice(root.length + 1), o),
      delete: (p: string) => queue.observations.delete(p.slice(root.length + 1)),
      values: () => queue.observations.values(),
      clear: () => queue.observations.clear(),
    };
    const byPath = new StabilityChecker({
      stableForMs: 50,
      store: observations,
      onReady: (file) => ready.push(file.path.slice(root.length + 1)),
      onGone: (p) => gone.push(p.slice(root.length + 1)),
    });

    await Deno.writeTextFile(path("a.fits"), "aaaa");
    await Deno.writeTextFile(path("gone.fits"), "g");
    byPath.touch(path("a.fits"));
    byPath.touch(path("gone.fits"));
    assert.equal(queue.get("a.fits")?.phase, "observing", "seen: one record, observing");
    assert.equal(queue.count("observing"), 2);
    assert.equal(queue.oldestFoundAt, null, "files not complete yet wait for nobody");
    assert.deepEqual(queue.takeBatch(10), [], "nothing to send while observing");
    assert.equal(queue.activity("a.fits"), true, "an event is the checker's to see");
    assert.equal(queue.get("a.fits")?.recheck, false);

    await Deno.remove(path("gone.fits"));
    await waitFor(() => ready.length === 1 && gone.length === 1);
    assert.deepEqual([ready, gone], [["a.fits"], ["gone.fits"]]);
    assert.equal(queue.size, 0, "the verdicts removed the observing records");

    // A queued file that changes carries an observation, and keeps its phase, until the verdict.
    clock.advance(1);
    queueFile(queue, "a.fits", { size: 4, mtimeMs: 0 });
    assert.equal(queue.activity("a.fits"), true);
    byPath.touch(path("a.fits"));
    assert.equal(queue.get("a.fits")?.phase, "queued");
    assert.ok(queue.observations.get("a.fits"), "observed in its record");
    await waitFor(() => ready.length === 2);
    assert.equal(queue.get("a.fits")?.phase, "queued", "the record outlives its observation");
    assert.equal(queue.observations.get("a.fits"), undefined);

    byPath.touch(path("b.fits")); // Not there: gone at once, no record left behind.
    assert.equal(queue.get("b.fits"), undefined);
    await Deno.writeTextFile(path("c.fits"), "c");
    byPath.touch(path("c.fits"));
    byPath.close();
    assert.equal(queue.get("c.fits"), undefined, "closing the checker ends its observations");
    assert.equal(queue.size, 1);
  } finally {
    queue.close();
    await Deno.remove(root, { recursive: true });
  }
});

/** Wait until `ok()` holds (the checker's timers are real). */
async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(ok(), "in time");
}
