/**
 * One job's pipeline in-process, with the real local transport and a real
 * ledger: send once, never twice, retry and give up, resume after a fix,
 * resend a file that changed while it was sent, and the watcher path.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { problemFiles } from "../../../src/status/ledger_reports.ts";
import { StatusEvents } from "../../../src/status/events.ts";
import { Metrics } from "../../../src/status/metrics.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import type { JobSummary } from "../../../src/status/job_status.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome, Transport } from "../../../src/transfer/transport.ts";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { imageParts } from "../../helpers/fits.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

/** The real local transport, counting the items it is given. */
class CountingTransport implements Transport {
  readonly method = "local" as const;
  readonly inner: LocalTransport;
  readonly maxBatchFiles: number;
  sent: string[] = [];
  /** Runs before each item is handed to the real transport. */
  beforeSend?: (item: TransferItem) => Promise<void>;
  /** The look at the destination (the real transport's, where a test gives it). */
  destinationSizes?: Transport["destinationSizes"];
  destinationSha256?: Transport["destinationSha256"];

  /** Give the pipeline the real transport's look at the destination. */
  looksAtDestination(): void {
    this.destinationSizes = (paths, stop) => this.inner.destinationSizes(paths, stop);
    this.destinationSha256 = (paths, stop) => this.inner.destinationSha256(paths, stop);
  }

  constructor(job: JobConfig) {
    this.inner = new LocalTransport(job);
    this.maxBatchFiles = this.inner.maxBatchFiles;
  }
  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    for (const item of items) {
      this.sent.push(item.destination);
      await this.beforeSend?.(item);
    }
    return this.inner.send(items, signal);
  }
  describeTarget(destination: string): string {
    return this.inner.describeTarget(destination);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Run a job with `once: true` to the end; returns the summary and what was sent. */
async function runOnce(
  job: JobConfig,
  stateDir: string,
  setup?: (transport: CountingTransport) => void,
): Promise<JobSummary & { items: string[] }> {
  const ledger = Ledger.open(stateDir);
  const transport = new CountingTransport(job);
  setup?.(transport);
  const runner = new JobRunner(job, ledger, transport, { once: true });
  try {
    await runner.start();
    await runner.whenIdle();
  } finally {
    await runner.stop();
    ledger.close();
  }
  return { ...runner.summary, items: transport.sent };
}

/** The ledger's rows of `job` (for the destination it sends to). */
function readLedger(stateDir: string, job: JobConfig, fn: (files: FileRows) => void): void {
  const ledger = Ledger.open(stateDir);
  try {
    fn(FileRows.of(ledger, job));
  } finally {
    ledger.close();
  }
}

const EVENING = new Date("2024-03-15T20:00:00Z");

/** Write `bytes` at `watch/rel` with the mtime of the night 2024-03-15. */
async function place(watch: string, rel: string, bytes: Uint8Array): Promise<void> {
  const path = join(watch, ...rel.split("/"));
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, bytes);
  await Deno.utime(path, EVENING, EVENING);
}

async function withRoot(fn: (root: string, stateDir: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-runner-" });
  try {
    await Deno.mkdir(join(root, "watch"));
    await fn(root, join(root, "state"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("JobRunner once: sends every matching file, records it done; a second run sends nothing", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root);
    const watch = job.watch_path;
    const expected = new Map<string, Uint8Array>();
    const rels = [
      "a.fits",
      "night/b.fits",
      "night/flats/c.FITS",
      "night/$(x) -y\nz.fits",
      "caf\u00e9/d\u0301.fits",
      "back\\slash/-e.fits",
      "big.fits",
    ];
    for (const [i, rel] of rels.entries()) {
      const bytes = randomBytes(rel === "big.fits" ? 3 * 1024 * 1024 : 1000 + i);
      await place(watch, rel, bytes);
      expected.set(rel, bytes);
    }
    await place(watch, "notes.txt", randomBytes(10));
    await place(watch, ".hidden/e.fits", randomBytes(10));

    const first = await runOnce(job, stateDir);
    assert.equal(first.sent, rels.length);
    assert.equal(first.failed, 0);
    assert.equal(first.items.length, rels.length, "each file given to the transport once");
    assert.deepEqual(
      (await listFiles(job.remote_base_path)).sort(),
      rels.map((rel) => `20240315/${rel}`).sort(),
      "exactly the matching files, no temporary files",
    );
    for (const [rel, bytes] of expected) {
      assert.deepEqual(
        await Deno.readFile(join(job.remote_base_path, "20240315", ...rel.split("/"))),
        bytes,
        `bytes of ${JSON.stringify(rel)}`,
      );
    }
    readLedger(stateDir, job, (files) => {
      for (const rel of rels) {
        const row = files.get(rel);
        assert.equal(row?.state, "done", JSON.stringify(rel));
        assert.equal(row.destination, `20240315/${rel}`);
        assert.equal(row.size, expected.get(rel)!.length);
        assert.equal(row.mtimeMs, EVENING.getTime());
        assert.ok(row.transferredAt !== null);
      }
      assert.deepEqual(files.unfinished(), []);
    });

    // The second run must not send anything: remove the arrivals to make a resend visible.
    await Deno.remove(job.remote_base_path, { recursive: true });
    const second = await runOnce(job, stateDir);
    assert.deepEqual(second, { sent: 0, failed: 0, items: [] });
    await assert.rejects(() => Deno.stat(job.remote_base_path), Deno.errors.NotFound);

    // A changed file (new size) is sent again, alone.
    const changed = randomBytes(4321);
    await place(watch, "night/b.fits", changed);
    const third = await runOnce(job, stateDir);
    assert.deepEqual(third, { sent: 1, failed: 0, items: ["20240315/night/b.fits"] });
    assert.deepEqual(
      await Deno.readFile(join(job.remote_base_path, "20240315/night/b.fits")),
      changed,
    );
  });
});

Deno.test("JobRunner once: a retryable failure is retried, marked failed, then sent after a fix", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { retry_attempts: 2, retry_delay_seconds: 0.05 });
    const bytes = randomBytes(2048);
    await place(job.watch_path, "night/a.fits", bytes);
    // The destination base path is a regular file: every attempt fails retryably.
    await Deno.writeTextFile(job.remote_base_path, "in the way");

    const started = performance.now();
    const first = await runOnce(job, stateDir);
    assert.equal(first.sent, 0);
    assert.equal(first.failed, 1, "summary counts the failed file");
    assert.equal(first.items.length, 1 + job.retry_attempts, "first attempt plus the retries");
    // Two retries wait at least 0.8 * (50 + 100) ms.
    assert.ok(performance.now() - started >= 120, "retries waited for their delay");
    readLedger(stateDir, job, (files) => {
      const row = files.get("night/a.fits")!;
      assert.equal(row.state, "failed");
      assert.equal(row.attempts, 1 + job.retry_attempts);
      assert.ok(
        row.lastError?.startsWith(`Cannot send ${join(job.watch_path, "night", "a.fits")}`),
      );
      assert.deepEqual(problemFiles(files.ledger, 10).map((r) => r.relPath), ["night/a.fits"]);
    });

    // Fixed: the next start-up requeues the failed file and sends it.
    await Deno.remove(job.remote_base_path);
    const second = await runOnce(job, stateDir);
    assert.deepEqual(second, { sent: 1, failed: 0, items: ["20240315/night/a.fits"] });
    assert.deepEqual(
      await Deno.readFile(join(job.remote_base_path, "20240315/night/a.fits")),
      bytes,
    );
    assert.deepEqual(await listFiles(job.remote_base_path), ["20240315/night/a.fits"]);
    readLedger(stateDir, job, (files) => {
      const row = files.get("night/a.fits")!;
      assert.equal(row.state, "done");
      assert.equal(row.lastError, null);
      assert.deepEqual(problemFiles(files.ledger, 10), []);
    });
  });
});

Deno.test("JobRunner once: with retry_attempts 0 a failure is final at once; other files still go", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { retry_attempts: 0 });
    await place(job.watch_path, "ok.fits", randomBytes(10));
    await place(job.watch_path, "blocked/x.fits", randomBytes(10));
    // Only the night folder of "blocked/..." is in the way.
    await Deno.mkdir(join(job.remote_base_path, "20240315"), { recursive: true });
    await Deno.writeTextFile(join(job.remote_base_path, "20240315", "blocked"), "in the way");
    const run = await runOnce(job, stateDir);
    assert.equal(run.sent, 1);
    assert.equal(run.failed, 1);
    assert.equal(run.items.length, 2, "no retry");
    readLedger(stateDir, job, (files) => {
      assert.equal(files.get("ok.fits")?.state, "done");
      assert.equal(files.get("blocked/x.fits")?.state, "failed");
    });
  });
});

Deno.test("JobRunner once: a source that changes while it is sent is sent again complete", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root);
    const path = join(job.watch_path, "a.fits");
    await place(job.watch_path, "a.fits", randomBytes(1000));
    const extra = randomBytes(500);
    let changed = false;
    const run = await runOnce(job, stateDir, (transport) => {
      transport.beforeSend = async () => {
        if (changed) return;
        changed = true;
        // The instrument rewrites the file just as the copy starts.
        await Deno.writeFile(path, extra, { append: true });
      };
    });
    const final = await Deno.readFile(path);
    assert.equal(final.length, 1500);
    assert.equal(run.sent, 1);
    assert.equal(run.failed, 0);
    assert.equal(run.items.length, 2, "the stale attempt, then the complete file");
    const destination = run.items[1];
    assert.deepEqual(await Deno.readFile(join(job.remote_base_path, destination)), final);
    assert.deepEqual(await listFiles(job.remote_base_path), [destination]);
    readLedger(stateDir, job, (files) => {
      const row = files.get("a.fits")!;
      assert.equal(row.state, "done");
      assert.equal(row.size, 1500);
      // The one it arrived in: a change is not counted as a failed attempt.
      assert.equal(row.attempts, 1, "a change is not counted as a failed attempt");
    });
  });
});

Deno.test("JobRunner once: a source that changes while it is sent is a failed attempt in /metrics (status and the page list its error), not a failure of the job", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root);
    const path = join(job.watch_path, "a.fits");
    await place(job.watch_path, "a.fits", randomBytes(1000));
    const events = new StatusEvents();
    const metrics = new Metrics();
    const told: string[] = [];
    events.listen((event) => {
      metrics.record(event);
      if (event.type === "failed") told.push(event.relPath);
    });
    const ledger = Ledger.open(stateDir);
    const transport = new CountingTransport(job);
    transport.beforeSend = async () => {
      if (transport.sent.length === 1) {
        await Deno.writeFile(path, randomBytes(500), { append: true });
      }
    };
    const runner = new JobRunner(job, ledger, transport, { once: true, events });
    try {
      await runner.start();
      await runner.whenIdle();
    } finally {
      await runner.stop();
      ledger.close();
    }
    assert.equal(transport.sent.length, 2, "the stale attempt, then the complete file");
    assert.deepEqual(told, ["a.fits"]);
    const text = metrics.render([runner.snapshot()], { version: "0", commit: "", deno: "" }, 0);
    const failures = (errorClass: string) =>
      Number(
        text.match(
          new RegExp(
            `^image_transfer_failures_total\\{[^}]*error_class="${errorClass}"\\} (\\d+)$`,
            "m",
          ),
        )?.[1],
      );
    assert.equal(failures("retry"), 1, text);
    assert.match(text, /^image_transfer_files_transferred_total\{[^}]*\} 1$/m);
    // Not a failure of the job: it sent the file, and counts none failed.
    assert.deepEqual(runner.summary, { sent: 1, failed: 0 });
    assert.equal(runner.snapshot().state, "watching");
  });
});

Deno.test("JobRunner start-up: resumes interrupted files and drops vanished ones", async () => {
  for (const resume_partial_hours of [24, 0]) {
    const logs = await captureLogs();
    try {
      await resumesInterrupted(resume_partial_hours);
    } finally {
      await logs.stop();
    }
    // What becomes of them is said once, as it will be: none had arrived, none is kept.
    const said = logs.records.filter((r) => String(r.rawMessage).startsWith("Taking up"));
    assert.equal(said.length, 1, `resume_partial_hours ${resume_partial_hours}`);
    assert.equal(said[0].properties.count, 2);
    assert.match(
      String(said[0].rawMessage),
      resume_partial_hours > 0
        ? /: each is looked for at \{target\} first, and one found there is recorded, not sent again; a partial copy kept there is continued; the others are sent whole$/
        : /: each is looked for at \{target\} first, and one found there is recorded, not sent again; the others are sent again, whole$/,
    );
  }
});

/** An interrupted file is sent at start, a vanished one dropped. */
async function resumesInterrupted(resume_partial_hours: number): Promise<void> {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { resume_partial_hours });
    const bytes = randomBytes(777);
    await place(job.watch_path, "interrupted.fits", bytes);
    const info = await Deno.stat(join(job.watch_path, "interrupted.fits"));
    readLedger(stateDir, job, (files) => {
      const file = { size: info.size, mtimeMs: info.mtime!.getTime() };
      files.enqueue("interrupted.fits", {
        ...file,
        destination: "20240315/interrupted.fits",
      });
      files.markTransferring(["interrupted.fits"]);
      files.enqueue("vanished.fits", { ...file, destination: "20240315/vanished.fits" });
      files.markTransferring(["vanished.fits"]);
    });
    const run = await runOnce(job, stateDir);
    assert.deepEqual(run, { sent: 1, failed: 0, items: ["20240315/interrupted.fits"] });
    assert.deepEqual(
      await Deno.readFile(join(job.remote_base_path, "20240315/interrupted.fits")),
      bytes,
    );
    readLedger(stateDir, job, (files) => {
      assert.equal(files.get("interrupted.fits")?.state, "done");
      assert.equal(files.get("vanished.fits"), undefined);
    });
  });
}

/**
 * `light.fits` in the watch folder, whose last attempt was cut short after renaming its copy into
 * place (`20240315/light.fits`): its row left `transferring`. @returns its bytes
 */
async function cutOffWithCopyInPlace(job: JobConfig, stateDir: string): Promise<Uint8Array> {
  const bytes = randomBytes(2880);
  await place(job.watch_path, "light.fits", bytes);
  const info = await Deno.stat(join(job.watch_path, "light.fits"));
  readLedger(stateDir, job, (files) => {
    files.enqueue("light.fits", {
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
      destination: "20240315/light.fits",
    });
    files.markTransferring(["light.fits"]);
  });
  await Deno.mkdir(join(job.remote_base_path, "20240315"), { recursive: true });
  await Deno.writeFile(join(job.remote_base_path, "20240315/light.fits"), bytes);
  return bytes;
}

Deno.test("JobRunner start-up: an interrupted file rewritten in place before the restart (same size) is not taken for the copy of its earlier version found at the destination", async () => {
  await withRoot(async (root, stateDir) => {
    // The size alone is checked: the copy found there must still be told from the new version.
    const job = localTestJob(root, { verify_transfer: "size" });
    await cutOffWithCopyInPlace(job, stateDir);
    // Then, before the restart, the file was rewritten in place: same size, other bytes.
    const after = randomBytes(2880);
    await Deno.writeFile(join(job.watch_path, "light.fits"), after);
    const later = new Date(EVENING.getTime() + 60_000);
    await Deno.utime(join(job.watch_path, "light.fits"), later, later);

    const run = await runOnce(job, stateDir, (transport) => transport.looksAtDestination());
    assert.equal(run.sent, 1, "the new version is sent, not taken as arrived");
    let destination = "";
    readLedger(stateDir, job, (files) => {
      const row = files.get("light.fits")!;
      assert.equal(row.state, "done");
      assert.equal(row.mtimeMs, later.getTime());
      destination = row.destination;
    });
    assert.ok(run.items.includes(destination), `sent to ${destination}: ${run.items}`);
    assert.deepEqual(await Deno.readFile(join(job.remote_base_path, destination)), after);
  });
});

Deno.test("JobRunner start-up: an interrupted file whose destination cannot be asked at first is looked for again at its next attempt, its copy found there recorded as sent, not as another's", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { retry_attempts: 2, retry_delay_seconds: 0.1 });
    await cutOffWithCopyInPlace(job, stateDir);

    // The destination does not answer the first look (a restart before the network is up); the
    // batch fails then, whether or not a send would work.
    let down = true;
    let sends = 0;
    const run = await runOnce(job, stateDir, (transport) => {
      transport.looksAtDestination();
      const sizes = transport.destinationSizes!;
      transport.destinationSizes = (paths, stop) => {
        if (!down) return sizes(paths, stop);
        down = false;
        return Promise.reject(new Error("no answer"));
      };
      transport.beforeSend = () => {
        sends++;
        return Promise.resolve();
      };
    });
    assert.equal(run.sent, 1, "its copy there is recorded as this job's arrival");
    assert.equal(sends, 0, "nothing was sent over or beside it");
    assert.deepEqual(await listFiles(job.remote_base_path), ["20240315/light.fits"]);
  });
});

Deno.test("JobRunner start-up: an interrupted file whose final name holds another file of its size (verify_transfer size) is sent beside it; that file stays", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { verify_transfer: "size" });
    const bytes = await cutOffWithCopyInPlace(job, stateDir);
    // The attempt was cut off before its rename: what is there is another's file, of that size.
    const others = randomBytes(bytes.length);
    await Deno.writeFile(join(job.remote_base_path, "20240315/light.fits"), others);

    const run = await runOnce(job, stateDir, (transport) => transport.looksAtDestination());
    assert.equal(run.sent, 1);
    assert.deepEqual(
      await Deno.readFile(join(job.remote_base_path, "20240315/light.fits")),
      others,
    );
    let destination = "";
    readLedger(stateDir, job, (files) => destination = files.get("light.fits")!.destination);
    assert.notEqual(destination, "20240315/light.fits");
    assert.deepEqual(await Deno.readFile(join(job.remote_base_path, destination)), bytes);
  });
});

Deno.test("JobRunner once: a watch_path spelled with // or /./ still sends its files", async () => {
  await withRoot(async (root, stateDir) => {
    const bytes = randomBytes(64);
    await place(join(root, "watch"), "n/a.fits", bytes);
    for (const [i, spelling] of [`${root}//watch`, `${root}/./watch/`].entries()) {
      // A destination each: a copy another job put there would count as arrived, not as sent.
      const dest = join(root, `dest${i}`);
      const job = localTestJob(root, {
        name: `job${i}`,
        watch_path: spelling,
        remote_base_path: dest,
      });
      const run = await runOnce(job, stateDir);
      assert.deepEqual(run, { sent: 1, failed: 0, items: ["20240315/n/a.fits"] }, spelling);
      readLedger(stateDir, job, (files) => assert.equal(files.get("n/a.fits")?.state, "done"));
      assert.deepEqual(await Deno.readFile(join(dest, "20240315", "n", "a.fits")), bytes);
    }
  });
});

Deno.test("JobRunner once: a missing watch folder is an error that names it", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { watch_path: join(root, "no such folder") });
    await assert.rejects(
      () => runOnce(job, stateDir),
      (error: Error) =>
        error.message.startsWith(`Cannot watch ${job.watch_path}: the folder does not exist`),
    );
  });
});

Deno.test("JobRunner watching: files written after start are sent; stop is clean", async () => {
  await withRoot(async (root, stateDir) => {
    // The slow file's writer pauses 150 ms between pieces: a window well beyond that, so that a
    // busy machine's late timers do not make it look complete between two pieces.
    const job = localTestJob(root, { stability_window_seconds: 3 });
    const ledger = Ledger.open(stateDir);
    const transport = new CountingTransport(job);
    const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 100 });
    const files = FileRows.of(ledger, job);
    try {
      await place(job.watch_path, "before.fits", randomBytes(100));
      await runner.start();
      // A new subfolder with a file, and a file written in pieces with pauses.
      await Deno.mkdir(join(job.watch_path, "new night", "flats"), { recursive: true });
      const quick = randomBytes(3000);
      await Deno.writeFile(join(job.watch_path, "new night", "flats", "q.fits"), quick);
      const hostileRel = "new night/$(x) `y`; back\\slash\n-z.fits";
      const hostile = randomBytes(1234);
      await Deno.writeFile(join(job.watch_path, ...hostileRel.split("/")), hostile);
      const slowPath = join(job.watch_path, "new night", "slow.fits");
      const slow = randomBytes(4 * 1000);
      {
        using file = await Deno.open(slowPath, { write: true, create: true });
        for (let i = 0; i < 4; i++) {
          await file.write(slow.subarray(i * 1000, (i + 1) * 1000));
          await new Promise((r) => setTimeout(r, 150));
        }
      }
      await waitFor(
        () =>
          ["before.fits", "new night/flats/q.fits", "new night/slow.fits", hostileRel]
            .every((rel) => files.get(rel)?.state === "done"),
        20_000,
        "all four files done",
      );
      const today = (rel: string) => files.get(rel)!.destination;
      assert.deepEqual(await Deno.readFile(join(job.remote_base_path, today(hostileRel))), hostile);
      assert.deepEqual(
        await Deno.readFile(join(job.remote_base_path, today("new night/flats/q.fits"))),
        quick,
      );
      assert.deepEqual(
        await Deno.readFile(join(job.remote_base_path, today("new night/slow.fits"))),
        slow,
      );
      assert.equal(
        transport.sent.filter((d) => d.endsWith("slow.fits")).length,
        1,
        "the slow file was sent once, complete",
      );
    } finally {
      await runner.stop();
      ledger.close();
    }
    assert.equal(runner.summary.sent, 4);
    const arrived = await listFiles(job.remote_base_path);
    assert.equal(arrived.length, 4, `no temporary files: ${arrived}`);
  });
});

Deno.test("JobRunner watching: a file sent before that changed while no job ran is sent again after the start; unchanged ones are not", async () => {
  await withRoot(async (root, stateDir) => {
    const job = localTestJob(root, { stability_window_seconds: 0.4 });
    await place(job.watch_path, "night/same.fits", randomBytes(500));
    await place(job.watch_path, "night/changed.fits", randomBytes(600));
    assert.equal((await runOnce(job, stateDir)).sent, 2);
    // Rewritten while nothing watched: another size and mtime than the ledger's done row.
    const rewritten = randomBytes(700);
    await Deno.writeFile(join(job.watch_path, "night", "changed.fits"), rewritten);
    // The folder is old: the start's re-read of folders changed meanwhile does not list it.
    await Deno.utime(join(job.watch_path, "night"), EVENING, EVENING);
    const ledger = Ledger.open(stateDir);
    const transport = new CountingTransport(job);
    const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 100 });
    const files = FileRows.of(ledger, job);
    try {
      await runner.start();
      await waitFor(
        () => files.get("night/changed.fits")?.size === 700 && runner.summary.sent === 1,
        20_000,
        "the changed file sent again",
      );
      const row = files.get("night/changed.fits")!;
      assert.equal(row.state, "done");
      assert.deepEqual(await Deno.readFile(join(job.remote_base_path, row.destination)), rewritten);
      assert.deepEqual(transport.sent, [row.destination], "only the changed file went again");
    } finally {
      await runner.stop();
      ledger.close();
    }
  });
});

Deno.test("JobRunner watching: a file renamed or moved before it was complete is said so, with its new name; one deleted is said deleted or moved away", async () => {
  await withRoot(async (root, stateDir) => {
    // Never complete while the test runs: each file stays under observation until it is gone.
    const job = localTestJob(root, { stability_window_seconds: 3600, file_patterns: ["*.raw"] });
    await Deno.mkdir(join(job.watch_path, "other night"));
    const ledger = Ledger.open(stateDir);
    const runner = new JobRunner(job, ledger, new CountingTransport(job), {
      once: false,
      closedForMs: 100,
    });
    const logs = await captureLogs();
    const at = (...rel: string[]) => join(job.watch_path, ...rel);
    try {
      await runner.start();
      for (const name of ["frame 'a'.raw", "-b.raw", "c.raw"]) {
        await Deno.writeFile(at(name), randomBytes(500));
      }
      await waitFor(() => runner.snapshot().queue.observing === 3, 20_000, "three observed");
      // The instrument's rename to a name the job does not take; a move; a delete.
      await Deno.rename(at("frame 'a'.raw"), at("frame 'a'.raw.part"));
      await Deno.rename(at("-b.raw"), at("other night", "-b.raw"));
      await Deno.remove(at("c.raw"));
      const dropped = () => logs.records.filter((r) => String(r.rawMessage).startsWith("Dropped"));
      await waitFor(() => dropped().length === 3, 20_000, "three dropped");
      const said = new Map(dropped().map((r) => [r.properties.path, r]));
      const renamed = "Dropped {path}: it was renamed to {renamedTo} before it was complete";
      assert.equal(said.get(at("frame 'a'.raw"))?.rawMessage, renamed);
      assert.equal(said.get(at("frame 'a'.raw"))?.properties.renamedTo, at("frame 'a'.raw.part"));
      assert.equal(said.get(at("-b.raw"))?.rawMessage, renamed);
      assert.equal(said.get(at("-b.raw"))?.properties.renamedTo, at("other night", "-b.raw"));
      assert.equal(
        said.get(at("c.raw"))?.rawMessage,
        "Dropped {path}: it was deleted or moved away before it was complete",
      );
      assert.ok(!dropped().some((r) => String(r.rawMessage).includes("disappeared")));
    } finally {
      await runner.stop();
      await logs.stop();
      ledger.close();
    }
  });
});

Deno.test("JobRunner watching: a file renamed away while it was sent says nothing of its new name when a later file under its name goes before it was complete", async () => {
  await withRoot(async (root, stateDir) => {
    // A complete FITS file goes once closed; one with its header alone waits (its grace: an hour).
    const job = localTestJob(root, {
      file_patterns: ["*.fits"],
      fits_incomplete_grace_seconds: 3600,
    });
    const night = join(job.watch_path, "night");
    const frame = join(night, "frame.fits");
    await Deno.mkdir(night);
    const ledger = Ledger.open(stateDir);
    const transport = new CountingTransport(job);
    const { promise: sending, resolve: started } = Promise.withResolvers<void>();
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    transport.beforeSend = () => {
      started();
      return released;
    };
    const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 100 });
    const logs = await captureLogs();
    const dropped = () =>
      logs.records.filter((r) =>
        String(r.rawMessage).startsWith("Dropped") && r.properties.path === frame
      );
    const observing = (count: number) =>
      waitFor(() => runner.snapshot().queue.observing === count, 20_000, `${count} observed`);
    try {
      await runner.start();
      const { header, data } = imageParts(100, 100);
      await Deno.writeFile(frame, new Uint8Array([...header, ...data]));
      await sending;
      // Renamed while it is sent (the watcher tells the new name); a file written after it is
      // observed once the rename was told.
      await Deno.rename(frame, `${frame}.part`);
      await Deno.writeFile(join(job.watch_path, "later.fits"), header);
      await observing(1);
      release();
      await waitFor(() => dropped().length === 1, 20_000, "frame.fits dropped as gone");
      // A new frame.fits, its header alone, comes with its folder (no event names the file) and
      // leaves with it: what the checker finds gone was never renamed.
      await Deno.rename(night, join(root, "renamed night"));
      await Deno.mkdir(join(root, "next night"));
      await Deno.writeFile(join(root, "next night", "frame.fits"), header);
      await Deno.rename(join(root, "next night"), night);
      await observing(2);
      await Deno.rename(night, join(root, "gone night"));
      await waitFor(() => dropped().length === 2, 20_000, "the new frame.fits dropped");
      assert.equal(
        dropped()[1].rawMessage,
        "Dropped {path}: it was deleted or moved away before it was complete",
      );
      assert.equal(dropped()[1].properties.renamedTo, undefined);
    } finally {
      release();
      await runner.stop();
      await logs.stop();
      ledger.close();
    }
  });
});
