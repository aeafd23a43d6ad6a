/**
 * The file table alone, over a real ledger: every transition writes the row
 * and moves the record together, a row that cannot be written leaves the
 * file where the job takes it up again, and pending rows nothing holds are
 * found.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileTable } from "../../../src/pipeline/file_table.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";
import { localTestJob } from "../../helpers/jobs.ts";

const V1 = { size: 10, mtimeMs: 1000 };
/** The counts of a table without files. */
const NOTHING = {
  observing: 0,
  planning: 0,
  queued: 0,
  waiting: 0,
  sending: 0,
  failed: 0,
  unrecorded: 0,
};

/** A table over a fresh ledger; `observed` stands for the stability checker. */
async function withTable(
  fn: (
    t: { table: FileTable; ledger: Ledger; observed: Set<string>; watch: string },
  ) => void | Promise<void>,
  clock = new FakeClock(),
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-table-" });
  const ledger = Ledger.open(join(root, "state"), { probeEveryMs: 3_600_000 });
  const job = localTestJob(root);
  const observed = new Set<string>();
  const table = new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: (path) => void observed.add(path),
    onDue: () => {},
    clock,
  });
  try {
    await fn({ table, ledger, observed, watch: job.watch_path });
  } finally {
    table.close();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
}

/** Write a 3-byte source file; its mtime to the millisecond. */
async function writeSource(path: string): Promise<{ mtimeMs: number }> {
  await Deno.writeTextFile(path, "abc");
  return { mtimeMs: (await Deno.stat(path)).mtime!.getTime() };
}

/** The table's plan of one file, as the intake makes it. */
function planOne(table: FileTable, relPath: string, version: typeof V1, destination: string) {
  return table.plannedAll([{ relPath, ...version, destination }])[0];
}

/** Make every write of `ledger` fail (as a full disk would) until the returned function runs. */
function refuseWrites(ledger: Ledger): () => void {
  ledger.statement("PRAGMA query_only = 1").run();
  return () => void ledger.statement("PRAGMA query_only = 0").run();
}

Deno.test("FileTable: one file from complete to done moves its row and its record together", async () => {
  await withTable(({ table }) => {
    assert.equal(table.ready("a.fits", V1), "plan");
    assert.equal(table.rows.get("a.fits"), undefined, "nothing recorded while planning");
    assert.equal(planOne(table, "a.fits", V1, "20240315/a.fits"), "queued");
    assert.equal(table.rows.get("a.fits")?.state, "pending");
    assert.equal(table.record("a.fits")?.phase, "queued");

    const batch = table.takeBatch(10);
    assert.deepEqual(batch.map((r) => r.relPath), ["a.fits"]);
    assert.equal(table.rows.get("a.fits")?.state, "transferring");
    assert.equal(table.record("a.fits")?.phase, "sending");
    assert.deepEqual(table.inFlight().map((f) => [f.relPath, f.bytes]), [["a.fits", 10]]);

    assert.deepEqual(table.arrived(batch), []);
    assert.equal(table.rows.get("a.fits")?.state, "done");
    assert.equal(table.record("a.fits"), undefined, "out of motion once recorded done");
    assert.deepEqual(table.inFlight(), [], "no longer in flight");
    assert.equal(table.inMotion, 0);
    assert.equal(table.ready("a.fits", V1), "skip", "done as it is");
    assert.equal(table.ready("a.fits", { size: 11, mtimeMs: 2000 }), "plan", "a new version");
  });
});

Deno.test("FileTable: a ledger that cannot be written keeps each file where the job takes it up again", async () => {
  await withTable(({ table, ledger }) => {
    // Found complete while the ledger cannot record it: known (not "missed"), not in motion.
    let allow = refuseWrites(ledger);
    assert.equal(table.ready("found.fits", V1), "plan");
    assert.equal(planOne(table, "found.fits", V1, "n/found.fits"), "unrecorded");
    assert.ok(ledger.problem, "the ledger says it cannot be written");
    assert.equal(table.record("found.fits"), undefined);
    assert.equal(table.holds("found.fits"), true, "a scan does not take it for new");
    assert.equal(table.counts().unrecorded, 1, "counted as waiting (for the ledger)");
    allow();
    table.ledgerWritable();
    assert.equal(table.holds("found.fits"), false, "the next look finds it again");
    assert.equal(table.counts().unrecorded, 0);

    // A batch the ledger cannot mark as being sent stays queued.
    assert.equal(table.ready("b.fits", V1), "plan");
    assert.equal(planOne(table, "b.fits", V1, "n/b.fits"), "queued");
    allow = refuseWrites(ledger);
    assert.deepEqual(table.takeBatch(10), []);
    assert.equal(table.record("b.fits")?.phase, "queued");
    allow();

    // Arrivals the ledger cannot record stay `sending` (not done, not sent again).
    const batch = table.takeBatch(10);
    assert.equal(batch.length, 1);
    allow = refuseWrites(ledger);
    assert.equal(table.arrived(batch), null);
    assert.equal(table.record("b.fits")?.phase, "sending");
    assert.equal(table.takeBatch(10).length, 0, "not taken again");
    // Counted as arrived and waiting for the ledger, not as being sent (before: `sending: 1`, and
    // the status said "sending 1 file(s) in 0 transfer(s)").
    assert.deepEqual(table.counts(), { ...NOTHING, unrecorded: 1 });
    assert.deepEqual(table.inFlight(), [], "not in flight");
    allow();
    assert.deepEqual(table.arrived(batch), []);
    assert.deepEqual(table.counts(), NOTHING);
    assert.equal(table.rows.get("b.fits")?.state, "done");
    assert.equal(table.inMotion, 0);
  });
});

Deno.test("FileTable: a file resumed from the ledger waits since the ledger first recorded it", async () => {
  const clock = new FakeClock(Date.now() + 3_600_000);
  await withTable(async ({ table, watch }) => {
    await Deno.mkdir(watch, { recursive: true });
    for (const [rel, at] of [["later.fits", 2_000], ["first.fits", 1_000]] as const) {
      const version = { size: 3, mtimeMs: (await writeSource(join(watch, rel))).mtimeMs };
      table.rows.enqueue(rel, { ...version, destination: `n/${rel}` }, at);
    }
    assert.equal(table.oldestFoundAt, null, "nothing in motion before the start");
    await table.resumeUnfinished();
    assert.equal(table.record("later.fits")?.phase, "queued");
    // After a restart the oldest waiting file's age goes on from when it was found, not from 0.
    assert.equal(table.oldestFoundAt, 1_000);
  }, clock);
});

Deno.test("FileTable: a failed attempt records the failure; a vanished source is removed", async () => {
  await withTable(({ table }) => {
    for (const rel of ["retry.fits", "gone.fits"]) {
      table.ready(rel, V1);
      planOne(table, rel, V1, `n/${rel}`);
    }
    const batch = table.takeBatch(10);
    assert.equal(batch.length, 2);
    table.attemptFailed(
      "retry.fits",
      {
        kind: "failure",
        failure: { error: "refused", attempts: 1, nextAttemptAt: 0, final: false },
      },
      { to: "waiting", attempts: 1, nextAttemptAt: 0 },
    );
    const row = table.rows.get("retry.fits")!;
    assert.deepEqual([row.state, row.attempts, row.lastError], ["pending", 1, "refused"]);
    assert.equal(table.record("retry.fits")?.attempts, 1);
    table.attemptFailed("gone.fits", { kind: "remove" }, { to: "removed" });
    assert.equal(table.rows.get("gone.fits"), undefined);
    assert.equal(table.record("gone.fits"), undefined);
  });
});

Deno.test("FileTable: a file that gave up stays failed, row and record, while the destination holds it or a rescan tries it; Retry starts it over", async () => {
  await withTable(({ table }) => {
    const failure = (attempts: number, nextAttemptAt: number, final: boolean) => ({
      kind: "failure" as const,
      failure: { error: "Permission denied", attempts, nextAttemptAt, final },
    });
    const state = (rel: string) => [table.rows.get(rel)?.state, table.record(rel)?.failing];
    for (const rel of ["a.fits", "b.fits"]) {
      table.ready(rel, V1);
      planOne(table, rel, V1, `n/${rel}`);
    }
    // Both give up: failed, waiting for their slow retry.
    table.takeBatch(10);
    for (const rel of ["a.fits", "b.fits"]) {
      const slow = 1_000_000 + 60_000; // The fake clock's start, plus a minute.
      const next = { to: "waiting" as const, attempts: 2, nextAttemptAt: slow, failing: true };
      table.attemptFailed(rel, failure(2, slow, true), next);
      assert.deepEqual(state(rel), ["failed", true]);
    }
    const failedOnly = { ...NOTHING, failed: 2 };
    assert.deepEqual(table.counts(), failedOnly);
    // a.fits's slow retry finds the destination down: held (no attempt counted), still failed.
    assert.deepEqual(table.retry("a.fits", false), { count: 0, queued: true });
    table.takeBatch(1);
    assert.equal(table.rows.get("a.fits")?.state, "transferring");
    table.attemptFailed("a.fits", failure(2, 0, false), { to: "queued" });
    assert.deepEqual(state("a.fits"), ["failed", true]);
    assert.deepEqual(table.counts(), failedOnly, "counted once, as failed");
    // A rescan (or the destination's return) tries them as their slow retries would: still failed.
    table.beforeRescan();
    assert.deepEqual([state("a.fits"), state("b.fits")], [["failed", true], ["failed", true]]);
    assert.deepEqual(table.counts(), failedOnly);
    // A failed row nothing holds goes back to pending at a rescan (the checker looks at it).
    table.gone("b.fits");
    table.rows.enqueue("c.fits", { ...V1, destination: "n/c.fits" });
    table.rows.recordFailure("c.fits", failure(2, 0, true).failure);
    table.beforeRescan();
    assert.equal(table.rows.get("c.fits")?.state, "pending");
    // The user's Retry: fresh retries, pending again.
    assert.deepEqual(table.retry(), { count: 1, queued: true });
    assert.deepEqual(state("a.fits"), ["pending", false]);
    assert.deepEqual(table.counts(), { ...NOTHING, queued: 1 });
  });
});

Deno.test("FileTable: pending rows that nothing holds go to the checker; catch-up forgets only done rows", async () => {
  await withTable(({ table, observed, watch }) => {
    const file = { ...V1, destination: "d/x.fits" };
    for (const rel of ["stray.fits", "observed.fits", "done.fits", "failed.fits"]) {
      table.rows.enqueue(rel, file);
    }
    table.rows.markDone([{ relPath: "done.fits", ...file }]);
    table.rows.recordFailure("failed.fits", {
      error: "e",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    table.ready("queued.fits", V1);
    planOne(table, "queued.fits", V1, "d/q.fits");
    // Under observation: the checker keeps its observation in the file's record.
    table.observations.set("observed.fits", {
      size: -1,
      mtimeMs: -1,
      lastActivityMs: 0,
      closed: false,
      timer: undefined,
      dueMs: 0,
      structure: undefined,
    });
    assert.equal(table.record("observed.fits")?.phase, "observing");
    assert.ok(table.observations.get("observed.fits"));

    assert.deepEqual(table.observeStrayPending(), ["stray.fits"]);
    assert.ok(observed.has(join(watch, "stray.fits")));
    assert.ok(!observed.has(join(watch, "queued.fits")), "held in motion");

    assert.equal(
      table.forgetDone("done.fits", { size: 99, mtimeMs: 1000 }),
      false,
      "other version",
    );
    assert.equal(table.forgetDone("stray.fits", V1), false, "not done");
    assert.equal(table.forgetDone("done.fits", V1), true);
    // No longer done, but still the record of the copy it had there: sent again over it.
    const forgotten = table.rows.get("done.fits");
    assert.equal(forgotten?.state, "pending");
    assert.notEqual(forgotten?.transferredAt, null);
  });
});

Deno.test("FileTable: files planned together are recorded in one transaction, all or none; stale plans are left out", async () => {
  await withTable(({ table, ledger }) => {
    for (const rel of ["a.fits", "b.fits", "c.fits"]) assert.equal(table.ready(rel, V1), "plan");
    // b.fits is no longer planning (its plan failed): what comes of its plan is stale.
    table.planFailed("b.fits");
    const plans = ["a.fits", "b.fits", "c.fits"].map((relPath) => ({
      relPath,
      ...V1,
      destination: `n/${relPath}`,
    }));
    const allow = refuseWrites(ledger);
    assert.deepEqual(table.plannedAll(plans), ["unrecorded", "stale", "unrecorded"]);
    assert.equal(table.rows.get("a.fits"), undefined, "none of them recorded");
    assert.equal(table.holds("c.fits"), true);
    allow();
    table.ledgerWritable();

    for (const rel of ["a.fits", "c.fits"]) assert.equal(table.ready(rel, V1), "plan");
    table.rows.enqueue("c.fits", { ...V1, destination: "n/c.fits" });
    table.rows.recordFailure("c.fits", {
      error: "the link was cut",
      attempts: 1,
      nextAttemptAt: 0,
      final: false,
    });
    assert.deepEqual(table.plannedAll(plans), ["queued", "stale", "queued"]);
    assert.equal(table.rows.get("a.fits")?.state, "pending");
    assert.equal(table.rows.get("b.fits"), undefined, "the stale plan wrote nothing");
    assert.equal(table.rows.get("c.fits")?.attempts, 1, "an unchanged file keeps its attempts");
    assert.equal(table.record("c.fits")?.attempts, 1);
    assert.equal(table.takeBatch(10).length, 2);
  });
});

Deno.test("FileTable: once the ledger can be written, a file found meanwhile that cannot be looked at now goes to the checker (not forgotten); one gone is forgotten, one unchanged goes on", async () => {
  await withTable(async ({ table, ledger, observed, watch }) => {
    await Deno.mkdir(watch, { recursive: true });
    const { mtimeMs } = await writeSource(join(watch, "same.fits"));
    // A link to itself on the way: stat fails with ELOOP, as an I/O error on a share would.
    Deno.symlinkSync("loop", join(watch, "loop"));
    const plans = [
      { relPath: "same.fits", size: 3, mtimeMs, destination: "n/same.fits" },
      { relPath: "loop/a.fits", ...V1, destination: "n/a.fits" },
      { relPath: "gone.fits", ...V1, destination: "n/gone.fits" },
    ];
    for (const plan of plans) assert.equal(table.ready(plan.relPath, plan), "plan");
    const allow = refuseWrites(ledger);
    assert.deepEqual(table.plannedAll(plans), ["unrecorded", "unrecorded", "unrecorded"]);
    allow();
    assert.deepEqual(table.ledgerWritable().map((plan) => plan.relPath), ["same.fits"]);
    assert.deepEqual([...observed], [join(watch, "loop", "a.fits")]);
  });
});

Deno.test("FileTable: a file that arrived after failed attempts keeps the attempts it took in its done row", async () => {
  await withTable(({ table }) => {
    table.ready("a.fits", V1);
    planOne(table, "a.fits", V1, "n/a.fits");
    for (let attempts = 1; attempts <= 3; attempts++) {
      table.takeBatch(10);
      const failure = { error: "Connection reset", attempts, nextAttemptAt: 0, final: false };
      table.attemptFailed("a.fits", { kind: "failure", failure }, {
        to: "waiting",
        attempts,
        nextAttemptAt: 0,
      });
      assert.equal(table.record("a.fits")?.attempts, attempts);
      table.retry("a.fits", false);
    }
    const batch = table.takeBatch(10);
    assert.deepEqual(batch.map((record) => record.attempts), [3]);
    assert.deepEqual(table.arrived(batch), []);
    const row = table.rows.get("a.fits")!;
    assert.equal(row.state, "done");
    // Before: 0, what /api/status showed in recent[].attempts for a file that needed 4.
    assert.equal(row.attempts, 4, "three failed and the one it arrived in");
  });
});
