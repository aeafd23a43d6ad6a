/**
 * Files in flight are sent in batches, a few transfers at a time (`max_concurrent_transfers`):
 * the job's picture says how many transfers are under way, and `status` says how many files are
 * being sent in how many transfers, not a count of files that reads as transfers ("sending 256"
 * with at most 4 transfers at once). A `local` transport whose batches wait until the test lets
 * them go keeps them under way while they are looked at.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";
import { formatLive } from "../../../src/cli/live_status.ts";
import { waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";

/** A `local` transport whose batches wait for `go` before they are sent. */
class HeldTransport extends LocalTransport {
  go = Promise.withResolvers<void>();
  override async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    await this.go.promise;
    return await super.send(items, signal);
  }
}

Deno.test("the job's picture counts the transfers under way, at most max_concurrent_transfers, and status says the files sending in them", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-batches-" });
  const job = localTestJob(root, { max_concurrent_transfers: 2, file_patterns: ["*.dat"] });
  await Deno.mkdir(job.watch_path, { recursive: true });
  const ledger = Ledger.open(join(root, "state"));
  const transport = new HeldTransport(job);
  const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 50 });
  try {
    await runner.start();
    for (let i = 0; i < 300; i++) {
      await Deno.writeFile(join(job.watch_path, `f${i}.dat`), new Uint8Array(100));
    }
    // Both transfer slots taken by batches that wait: nothing changes until they go.
    await waitFor(() => runner.snapshot().transfers === 2, 20_000, "two transfers under way");
    const snapshot = runner.snapshot();
    const { sending } = snapshot.queue;
    assert.ok(sending > 2, `more files than transfers: ${sending}`);
    assert.equal(snapshot.inFlight.length, sending);
    const lines = formatLive({ url: "x", jobs: [snapshot], uptimeSeconds: 1, lastSuccessAt: null });
    // Before: "sending 128", read as 128 transfers where at most 2 run.
    assert.match(lines[1], new RegExp(`, sending ${sending} file\\(s\\) in 2 transfer\\(s\\), `));
    transport.go.resolve();
    await waitFor(() => runner.snapshot().queue.sending === 0, 20_000, "the batches sent");
    assert.equal(runner.snapshot().transfers, 0);
    assert.equal(
      formatLive({ url: "x", jobs: [runner.snapshot()], uptimeSeconds: 1, lastSuccessAt: null })[1]
        .includes(", sending 0, "),
      true,
    );
  } finally {
    transport.go.resolve();
    await runner.stop();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("files that arrived while the ledger cannot record them are counted unrecorded, not sending, and status says they wait for the ledger", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-batches-unrecorded-" });
  const job = localTestJob(root, { file_patterns: ["*.dat"] });
  await Deno.mkdir(job.watch_path, { recursive: true });
  const ledger = Ledger.open(join(root, "state"), { probeEveryMs: 3_600_000 });
  const transport = new HeldTransport(job);
  const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 50 });
  try {
    await runner.start();
    for (let i = 0; i < 3; i++) {
      await Deno.writeFile(join(job.watch_path, `f${i}.dat`), new Uint8Array(100));
    }
    await waitFor(() => runner.snapshot().queue.sending === 3, 20_000, "the batch under way");
    // The state folder's disk fills while the batch goes: its arrivals cannot be recorded.
    ledger.statement("PRAGMA query_only = 1").run();
    transport.go.resolve();
    await waitFor(() => runner.snapshot().queue.unrecorded === 3, 20_000, "arrived, unrecorded");
    const snapshot = runner.snapshot();
    // Before: `sending: 3, unrecorded: 0`, and "sending 3 file(s) in 0 transfer(s)".
    assert.equal(snapshot.queue.sending, 0);
    assert.deepEqual(snapshot.inFlight, []);
    assert.equal(
      (await Array.fromAsync(Deno.readDir(join(job.remote_base_path)))).length > 0,
      true,
    );
    const lines = formatLive({ url: "x", jobs: [snapshot], uptimeSeconds: 1, lastSuccessAt: null });
    assert.match(lines[1], /pending 0, sending 0, /);
    assert.ok(
      lines.some((line) => /3 file\(s\) wait for the ledger to record them/.test(line)),
      lines.join("\n"),
    );
  } finally {
    transport.go.resolve();
    ledger.statement("PRAGMA query_only = 0").run();
    await runner.stop();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
