/** Pending ledger rows that nothing in memory holds are handed to the stability checker. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileTable } from "../../../src/ledger/file_table.ts";
import { observeStrayPending } from "../../../src/pipeline/ledger_sync.ts";
import { WorkQueue } from "../../../src/pipeline/work_queue.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";
import { localTestJob } from "../../helpers/jobs.ts";

Deno.test("observeStrayPending: only pending rows without a record and not observed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-sync-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    const job = localTestJob(root);
    const file = { size: 10, mtimeMs: 1, destination: "d/x.fits" };
    const table = FileTable.of(ledger, job);
    for (const rel of ["stray.fits", "queued.fits", "observed.fits", "done.fits", "failed.fits"]) {
      table.enqueue(rel, file);
    }
    table.markDone([{ relPath: "done.fits", ...file }]);
    table.recordFailure("failed.fits", {
      error: "e",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    const queue = new WorkQueue(() => {}, new FakeClock());
    queue.resume({
      relPath: "queued.fits",
      version: file,
      destination: file.destination,
      attempts: 0,
      nextAttemptAt: 0,
    });
    const observed = new Set([join(job.watch_path, "observed.fits")]);
    const touched: string[] = [];
    const stray = observeStrayPending({
      job,
      table,
      filter: createFileFilter(job),
      queue,
      observed: (path) => observed.has(path),
      observe: (path) => touched.push(path),
    });
    assert.deepEqual(stray, ["stray.fits"]);
    assert.deepEqual(touched, [join(job.watch_path, "stray.fits")]);
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
