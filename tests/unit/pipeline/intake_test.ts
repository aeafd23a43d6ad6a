/**
 * The intake over a real ledger and a real watch folder: how files found by
 * scans are taken into observation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileTable } from "../../../src/pipeline/file_table.ts";
import { Intake } from "../../../src/pipeline/intake.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { ASTROPY_FITS_DATA } from "../../helpers/fits.ts";
import { waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";

Deno.test("Intake: a file of a folder moved in that another scan found first is told how it came (astropy's double_ext.fits, NEXTEND larger than its extensions, goes without waiting the grace)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const ledger = Ledger.open(join(root, "state"));
  const job = localTestJob(root, {
    stability_window_seconds: 0.2,
    fits_incomplete_grace_seconds: 3600,
  });
  await Deno.mkdir(join(job.watch_path, "night1"), { recursive: true });
  const file = { path: join(job.watch_path, "night1", "double_ext.fits"), relPath: "" };
  file.relPath = "night1/double_ext.fits";
  await Deno.copyFile(join(ASTROPY_FITS_DATA, "double_ext.fits"), file.path);
  const queued: number[] = [];
  const table = new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: (path) => intake.observe(path),
    onDue: () => {},
  });
  const intake: Intake = new Intake({
    job,
    table,
    once: false,
    closedForMs: 50,
    transport: new LocalTransport(job),
    signal: new AbortController().signal,
    scanIfFolder: () => Promise.resolve(false),
    stopping: () => false,
    onQueued: (bytes) => queued.push(bytes),
    onSettled: () => {},
    onFailedGone: () => {},
  });
  try {
    // Found first as any new file is (the re-read of the folder it came into, say) ...
    assert.deepEqual(intake.found([file]), [file]);
    // ... then by the scan of the folder moved in, which tells that it was put there whole.
    assert.deepEqual(intake.found([file], false, "moved"), [], "held already: not found twice");
    await waitFor(() => queued.length > 0, 20_000, "the file queued (not held for the grace)");
    assert.equal(table.rows.get(file.relPath)?.state, "pending");
  } finally {
    await intake.close();
    table.close();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
