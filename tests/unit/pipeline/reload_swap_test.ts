/**
 * What a reload's swap of a job's runner keeps when part of it fails: the counts of the runner it
 * replaces when the next one cannot be made, and the count of names its new patterns leave out
 * when the next one's start fails. Real config files, a real ledger, the real local transport.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../../src/config/load.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { ConfigError } from "../../../src/errors.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileTable } from "../../../src/pipeline/file_table.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { RunningJobs } from "../../../src/pipeline/running_jobs.ts";
import { StatusEvents } from "../../../src/status/events.ts";
import type { JobSummary } from "../../../src/status/job_status.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { createTransport } from "../../../src/transfer/transport.ts";
import { listArrived, randomBytes, waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("a reload whose changed job's next runner cannot be made keeps what the job it replaces sent in the daemon's totals", async () => {
  await using box = await cliSandbox({ name: "cam" });
  const config = await loadConfig(box.config);
  const ledger = Ledger.open(config.state_dir);
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  // A setting that fails as the job's transport is made (a key file gone, say).
  const transport = (job: JobConfig) => {
    if (job.retry_attempts === 7) throw new ConfigError("the key file is gone");
    return createTransport(job, runtimeDir, ledger);
  };
  const options = { once: false, events: new StatusEvents(), runtimeDir };
  let jobs = new RunningJobs(config, transport, ledger, options, () => {});
  const total: JobSummary = { sent: 0, failed: 0 };
  let failure: Error | null = null;
  try {
    await jobs.started;
    const bytes = randomBytes(2000);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await waitFor(() => jobs.runners[0].summary.sent === 1, 30_000, "a.fits sent");
    const [arrived] = await listArrived(box.dest);
    assert.deepEqual(await Deno.readFile(join(box.dest, arrived)), bytes);

    await box.rewrite({ name: "cam", retry_attempts: 7 });
    const next = await loadConfig(box.config);
    // As the daemon does: stop the changed runner, then start the next generation.
    await jobs.stop(total, true, next);
    const before = jobs;
    failure = await (async () => {
      jobs = new RunningJobs(next, transport, ledger, options, () => {}, before);
      await jobs.started;
    })().then(() => null, (error: Error) => error);
  } finally {
    await jobs.stop(total);
    ledger.close();
    await Deno.remove(runtimeDir, { recursive: true });
  }
  assert.deepEqual(total, { sent: 1, failed: 0 });
  // The daemon stops, saying which job could not start.
  assert.match(String(failure?.message), /^Cannot start job cam: the key file is gone$/);
});

Deno.test("a reload's next runner whose start fails says the names its new patterns leave out, once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const original = FileTable.prototype.resumeUnfinished;
  const logs = await captureLogs();
  const ledger = Ledger.open(join(root, "state"));
  let before: JobRunner | undefined;
  let after: JobRunner | undefined;
  try {
    await Deno.mkdir(join(root, "watch"));
    const job = localTestJob(root);
    // Two files waiting in the ledger, which the next config's file_patterns leave out.
    for (const name of ["a.fits", "b.fits"]) {
      await Deno.writeFile(join(job.watch_path, name), randomBytes(100));
      const info = await Deno.stat(join(job.watch_path, name));
      FileRows.of(ledger, job).enqueue(name, {
        size: info.size,
        mtimeMs: info.mtime!.getTime(),
        destination: `20240315/${name}`,
      });
    }
    before = new JobRunner(job, ledger, new LocalTransport(job), { once: false });
    await before.stop(true);
    // The ledger fails once the unfinished rows were looked at (a disk's I/O error, say).
    FileTable.prototype.resumeUnfinished = async function (this: FileTable) {
      await original.call(this);
      throw new Error("disk I/O error");
    };
    const next = { ...job, file_patterns: ["*.fit"] };
    after = new JobRunner(next, ledger, new LocalTransport(next), {
      once: false,
      replaces: before,
    });
    await assert.rejects(after.start(), /disk I\/O error/);
    const said = logs.records.filter((r) => String(r.rawMessage).startsWith("Skipped {count}"));
    assert.equal(said.length, 1);
    assert.equal(said[0].properties.count, 2);
  } finally {
    FileTable.prototype.resumeUnfinished = original;
    await after?.stop();
    ledger.close();
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});
