/**
 * Regressions found in review: sequences of events that once lost a file
 * (until a restart or the hourly rescan), sent one twice, or crashed the
 * daemon. Each test runs one job in-process with the real local transport,
 * a real ledger and real files. Sequences inside the work queue (a retry
 * re-checked by an event, a change while planning or sending) are unit tests
 * of the queue in `work_queue_test.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome, Transport } from "../../../src/transfer/transport.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";

/** The shared test job (three retries here). */
function testJob(root: string, overrides: Partial<JobConfig> = {}): JobConfig {
  return localTestJob(root, { retry_attempts: 3, ...overrides });
}

/**
 * The real local transport; `hook` may replace the outcome of a call (by its
 * number, from 1) with a failure or a thrown error.
 */
class HookedTransport implements Transport {
  readonly method = "local" as const;
  readonly maxBatchFiles = 1;
  readonly inner: LocalTransport;
  calls = 0;
  active = 0;
  maxActive = 0;
  hook?: (call: number, items: TransferItem[]) => Promise<TransferOutcome[] | null>;

  constructor(job: JobConfig) {
    this.inner = new LocalTransport(job);
  }
  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const call = ++this.calls;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const replaced = await this.hook?.(call, items);
      return replaced ?? await this.inner.send(items, signal);
    } finally {
      this.active--;
    }
  }
  describeTarget(destination: string): string {
    return this.inner.describeTarget(destination);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A temp root with an empty `watch` folder, a ledger and a runner; all cleaned up. */
async function withRunner(
  overrides: Partial<JobConfig>,
  fn: (ctx: {
    root: string;
    job: JobConfig;
    ledger: Ledger;
    transport: HookedTransport;
    runner: JobRunner;
  }) => Promise<void>,
  options: { once?: boolean; missingFolderRetryMs?: number } = {},
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-review-" });
  try {
    await Deno.mkdir(join(root, "watch"));
    const job = testJob(root, overrides);
    const ledger = Ledger.open(join(root, "state"));
    const transport = new HookedTransport(job);
    const runner = new JobRunner(job, ledger, transport, {
      once: options.once ?? false,
      closedForMs: 50,
      missingFolderRetryMs: options.missingFolderRetryMs,
    });
    try {
      await fn({ root, job, ledger, transport, runner });
    } finally {
      await runner.stop();
      ledger.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** The bytes that arrived for `rel`, per its ledger row. */
function arrived(job: JobConfig, ledger: Ledger, rel: string): Promise<Uint8Array> {
  const row = FileRows.of(ledger, job).get(rel);
  assert.ok(row, `a ledger row for ${rel}`);
  return Deno.readFile(join(job.remote_base_path, ...row.destination.split("/")));
}

Deno.test("review: a folder moved in whose name matches file_patterns is scanned, not dropped", async () => {
  await withRunner({ file_patterns: ["*"] }, async ({ root, job, ledger, runner }) => {
    await runner.start();
    // Built outside, then moved in with one rename: no event for the files inside.
    const outside = join(root, "night 1");
    await Deno.mkdir(join(outside, "sub"), { recursive: true });
    const files = new Map([["night 1/a.fits", randomBytes(1500)], [
      "night 1/sub/b.fits",
      randomBytes(2500),
    ]]);
    for (const [rel, bytes] of files) {
      await Deno.writeFile(join(root, ...rel.split("/")), bytes);
    }
    await Deno.rename(outside, join(job.watch_path, "night 1"));
    await waitFor(
      () => [...files.keys()].every((rel) => FileRows.of(ledger, job).get(rel)?.state === "done"),
      5000,
      "both files of the moved-in folder done",
    );
    for (const [rel, bytes] of files) assert.deepEqual(await arrived(job, ledger, rel), bytes);
  });
});

Deno.test("review: a transport that throws instead of reporting is retried, not stuck 'transferring'", async () => {
  await withRunner({}, async ({ job, ledger, transport, runner }) => {
    const bytes = randomBytes(3000);
    await Deno.writeFile(join(job.watch_path, "t.fits"), bytes);
    transport.hook = (call) => {
      if (call === 1) throw new Error("Cannot create a staging folder: No such file or directory");
      return Promise.resolve(null);
    };
    await runner.start();
    await runner.whenIdle();
    assert.equal(FileRows.of(ledger, job).get("t.fits")?.state, "done");
    assert.equal(transport.calls, 2);
    assert.deepEqual(await arrived(job, ledger, "t.fits"), bytes);
  }, { once: true });
});

Deno.test("review: a failing rescan is logged, not an unhandled rejection that ends the daemon", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-review-" });
  try {
    await Deno.mkdir(join(root, "watch"));
    const job = testJob(root, { rescan_interval_seconds: 0.05 });
    const ledger = Ledger.open(join(root, "state"));
    const runner = new JobRunner(job, ledger, new LocalTransport(job), { once: false });
    try {
      await runner.start();
      // The database becomes unusable (as on a full or failing disk): the next rescan throws.
      ledger.close();
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(runner.summary, { sent: 0, failed: 0 });
    } finally {
      await runner.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("review: a watch folder deleted and created again is watched again", async () => {
  await withRunner({}, async ({ job, ledger, runner }) => {
    await runner.start();
    await Deno.remove(job.watch_path, { recursive: true });
    await new Promise((r) => setTimeout(r, 200));
    await Deno.mkdir(job.watch_path);
    await new Promise((r) => setTimeout(r, 300));
    const bytes = randomBytes(2000);
    await Deno.writeFile(join(job.watch_path, "after.fits"), bytes);
    await waitFor(
      () => FileRows.of(ledger, job).get("after.fits")?.state === "done",
      5000,
      "the file in the re-created folder done",
    );
    assert.deepEqual(await arrived(job, ledger, "after.fits"), bytes);
  }, { missingFolderRetryMs: 100 });
});

Deno.test("review: stop during start-up leaves no watcher or rescan timer behind", async () => {
  await withRunner({ rescan_interval_seconds: 60 }, async ({ runner }) => {
    const started = runner.start();
    // Stop while the watcher thread is still starting.
    await new Promise((r) => setTimeout(r, 20));
    await runner.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settled = await Promise.race([
      started.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), 60_000)),
    ]);
    clearTimeout(timer);
    assert.equal(settled, true, "start() settles after stop()");
    // The test sanitizers fail this test if an interval or a worker outlives it.
  });
});

Deno.test("a pending file that no longer matches file_patterns is dropped at start-up, not sent", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-review-patterns-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    await Deno.mkdir(join(root, "watch"));
    const path = join(root, "watch", "old.fit");
    await Deno.writeFile(path, randomBytes(100));
    const info = await Deno.stat(path);
    // Queued by an earlier configuration that matched *.fit.
    const job = testJob(root, { file_patterns: ["*.fits"] });
    FileRows.of(ledger, job).enqueue("old.fit", {
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
      destination: "20240101/old.fit",
    });
    const runner = new JobRunner(job, ledger, new LocalTransport(job), { once: true });
    await runner.start();
    await runner.whenIdle();
    await runner.stop();
    assert.equal(runner.summary.sent, 0);
    assert.equal(FileRows.of(ledger, job).get("old.fit"), undefined);
    await assert.rejects(Deno.stat(join(root, "dest")), Deno.errors.NotFound);
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
