/**
 * Retries always fire: through a long outage where the transport fails in
 * every way it can (reports errors, throws, hangs), no pending file is ever
 * overdue, and everything arrives once the destination is back, without a
 * restart. `status` shows retries that are overdue all the same (a daemon
 * that is not running).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { TransferError } from "../../../src/errors.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { destinationIdentity } from "../../../src/ledger/destination_identity.ts";
import { overdueFiles } from "../../../src/status/ledger_reports.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome, Transport } from "../../../src/transfer/transport.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";

/** How the transport fails during the outage, in turn. */
const FAILURES = ["reports", "throws", "hangs", "reports-later"] as const;

/** The real local transport, failing every call in one of {@linkcode FAILURES} while `down`. */
class FlakyTransport implements Transport {
  readonly method = "local" as const;
  readonly maxBatchFiles = 3;
  readonly inner: LocalTransport;
  down = true;
  calls = 0;
  seen = new Set<string>();
  /** Copies the real transport made and reported arrived, per source. */
  arrived = new Map<string, number>();

  constructor(job: JobConfig) {
    this.inner = new LocalTransport(job);
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    if (!this.down) {
      // The local transport copies one file per call.
      const outcomes: TransferOutcome[] = [];
      for (const item of items) outcomes.push(...await this.inner.send([item], signal));
      for (const { item, error } of outcomes) {
        if (!error) this.arrived.set(item.source, (this.arrived.get(item.source) ?? 0) + 1);
      }
      return outcomes;
    }
    const failure = FAILURES[this.calls++ % FAILURES.length];
    this.seen.add(failure);
    switch (failure) {
      case "throws":
        throw new Error("Cannot open the shared connection: Connection reset by peer");
      case "hangs":
        // Until the pipeline gives up on the batch.
        await new Promise((_, reject) => {
          signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
        throw new Error("unreachable");
      default: {
        const kind = failure === "reports" ? "retry" : "retry-later";
        return items.map((item) => ({
          item,
          error: new TransferError(`Cannot send ${item.source}: Connection timed out`, kind),
        }));
      }
    }
  }
  describeTarget(destination: string): string {
    return this.inner.describeTarget(destination);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

Deno.test("retries: through a 3 s outage of every kind, no retry is ever overdue; all arrive after it", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-retries-" });
  await Deno.mkdir(join(root, "watch"));
  const job = localTestJob(root, {
    retry_attempts: 1000,
    retry_delay_seconds: 0.1,
    retry_max_delay_seconds: 0.4,
    max_concurrent_transfers: 2,
  });
  const ledger = Ledger.open(join(root, "state"));
  const transport = new FlakyTransport(job);
  const runner = new JobRunner(job, ledger, transport, {
    once: false,
    closedForMs: 50,
    batchDeadlineMs: 400,
  });
  const files = new Map<string, Uint8Array>();
  const write = async (rel: string) => {
    const bytes = randomBytes(1000 + files.size * 13);
    files.set(rel, bytes);
    await Deno.writeFile(join(job.watch_path, rel), bytes);
  };
  let watching = true;
  const overdue: string[] = [];
  // Every 50 ms: is any pending retry due for more than 5 s and not started? (Retries come
  // every 0.4 s at most; a busy machine may hold one up for a moment, a retry left behind
  // stays overdue.)
  const watcher = (async () => {
    while (watching) {
      const scope = [{ job: job.name, target: destinationIdentity(job) }];
      for (const row of overdueFiles(ledger, Date.now() - 5000, 10, scope)) {
        overdue.push(`${row.relPath} due ${Date.now() - row.nextAttemptAt} ms ago`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  try {
    for (let i = 0; i < 20; i++) await write(`before ${i}.fits`);
    await runner.start();
    for (let i = 0; i < 10; i++) await write(`during ${i}.fits`);
    // The outage lasts 3 s, and until every kind of failure was met.
    await Promise.all([
      new Promise((r) => setTimeout(r, 3000)),
      waitFor(() => transport.seen.size === FAILURES.length, 60_000, "every kind of failure"),
    ]);
    assert.deepEqual([...transport.seen].sort(), [...FAILURES].sort(), "every kind of failure");
    assert.equal(runner.summary.sent, 0);
    transport.down = false;
    const done = () =>
      [...files.keys()].every((rel) => FileRows.of(ledger, job).get(rel)?.state === "done");
    await waitFor(done, 10_000, "every file done after the outage");
    for (const [rel, bytes] of files) {
      const row = FileRows.of(ledger, job).get(rel)!;
      assert.deepEqual(
        await Deno.readFile(join(job.remote_base_path, ...row.destination.split("/"))),
        bytes,
        rel,
      );
    }
    // Each file copied once. (A copy the batch deadline cut off on a busy machine may have
    // arrived: the next attempt records it as found there, not sent again, and not as sent.)
    const twice = [...transport.arrived].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "each file sent once");
    assert.ok(runner.summary.sent <= files.size, `${runner.summary.sent} sent`);
    assert.deepEqual(runner.summary.failed, 0);
  } finally {
    watching = false;
    await watcher;
    await runner.stop();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(overdue, [], "no retry overdue");
});

Deno.test("status lists retries overdue by more than a minute as a problem", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const ledger = Ledger.open(box.stateDir);
  const now = Date.now();
  const file = { size: 10, mtimeMs: 1, destination: "20240101/x.fits" };
  for (
    // fresh.fits: due a moment ago, under the minute however long a busy machine takes `status`.
    const [rel, dueAgoMs] of [["stuck.fits", 99_000], ["soon.fits", -5000], [
      "fresh.fits",
      5_000,
    ]] as const
  ) {
    const table = new FileRows(ledger, "default", `local:${box.dest}`);
    table.enqueue(rel, file);
    table.recordFailure(rel, {
      error: "Cannot send: connection lost",
      attempts: 2,
      nextAttemptAt: now - dueAgoMs,
      final: false,
    });
  }
  ledger.close();
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  const elapsedS = Math.ceil((Date.now() - now) / 1000);
  assert.equal(status.code, 0, status.stderr);
  const overdue = status.stdout.match(
    /Overdue \(1\): retries due more than a minute ago that have not started; is the daemon running\?\n {2}\[default\] stuck\.fits: next attempt was due (\d+) s ago \(2 failed attempt\(s\); last error: Cannot send: connection lost\)\n/,
  );
  assert.ok(overdue, status.stdout);
  // 99 s before the ledger was written, plus however long `status` took to start.
  const dueAgoS = Number(overdue[1]);
  assert.ok(dueAgoS >= 99 && dueAgoS <= 99 + elapsedS, `due ${dueAgoS} s ago`);
  assert.doesNotMatch(status.stdout, /(soon|fresh)\.fits: next attempt was due/);
  const json = JSON.parse(
    (await runCli(["status", "--json", "-c", box.config], { env: box.env })).stdout,
  );
  assert.deepEqual(json.overdue.map((row: { relPath: string }) => row.relPath), ["stuck.fits"]);
});

Deno.test("status leaves out failures and overdue retries of a destination the job no longer sends to", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const ledger = Ledger.open(box.stateDir);
  const file = { size: 10, mtimeMs: 1, destination: "20240101/x.fits" };
  for (const [rel, base] of [["old.fits", "old-dest"], ["now.fits", "dest"]]) {
    const table = new FileRows(ledger, "default", `local:${join(box.root, base)}`);
    table.enqueue(rel, file);
    table.recordFailure(rel, {
      error: `Cannot send to ${base}: permission denied`,
      attempts: 2,
      nextAttemptAt: Date.now() - 99_000,
      final: true,
    });
  }
  ledger.close();
  const status = async (base: string) => {
    await box.rewrite({ log_file: "", remote_base_path: join(box.root, base) });
    const run = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(run.code, 0, run.stderr);
    return run.stdout;
  };
  // Before, the old destination's failure was listed, its next try long past.
  const now = await status("dest");
  assert.match(
    now,
    /Files whose last attempt failed \(1\):\n {2}\S+ \S+ {2}\[default\] now\.fits: Cannot send to dest/,
  );
  assert.doesNotMatch(now, /old\.fits/);
  const before = await status("old-dest");
  assert.match(
    before,
    /Files whose last attempt failed \(1\):\n {2}\S+ \S+ {2}\[default\] old\.fits: Cannot send to old-dest/,
  );
  assert.doesNotMatch(before, /now\.fits/);
});

Deno.test("status of a running daemon never asks whether the daemon runs over its overdue retries", async () => {
  await using box = await cliSandbox({ log_file: "", status_listen: `127.0.0.1:${freePort()}` });
  // A retry long due at a destination the job sent to before, which the daemon leaves alone.
  const ledger = Ledger.open(box.stateDir);
  const table = new FileRows(ledger, "default", `local:${join(box.root, "old-dest")}`);
  table.enqueue("old.fits", { size: 10, mtimeMs: 1, destination: "20240101/old.fits" });
  table.recordFailure("old.fits", {
    error: "Cannot send: connection lost",
    attempts: 2,
    nextAttemptAt: Date.now() - 99_000,
    final: false,
  });
  ledger.close();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(`Watching ${box.watch}`);
    // An edit the daemon would refuse: status shows every job and destination its ledger knows.
    await Deno.writeTextFile(box.config, "retry_attempts: [\n", { append: true });
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 2, status.stderr);
    assert.match(status.stdout, /^Daemon: running, pid /m);
    // Before: "…that have not started; is the daemon running?", right under "Daemon: running".
    assert.match(
      status.stdout,
      /^Overdue \(1\): retries due more than a minute ago that have not started\n {2}\[default\] old\.fits: /m,
    );
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});
