/**
 * The batch sender over a real ledger and real source files, with a
 * transport that answers as told: a batch settles only its own attempts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { TransferError } from "../../../src/errors.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { BatchSender } from "../../../src/pipeline/batch_sender.ts";
import { FileTable, type WorkRecord } from "../../../src/pipeline/file_table.ts";
import type { TransferItem, TransferOutcome, Transport } from "../../../src/transfer/transport.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { versionOf } from "../../../src/watch/stability.ts";
import { localTestJob } from "../../helpers/jobs.ts";

Deno.test("BatchSender: a file held by a full destination and taken by the next batch is that batch's, not settled by the first", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-sender-" });
  const job = localTestJob(root);
  await Deno.mkdir(job.watch_path, { recursive: true });
  const ledger = Ledger.open(join(root, "state"), { probeEveryMs: 3_600_000 });
  const table = new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: () => {},
    onDue: () => {},
  });
  try {
    for (const name of ["x.fits", "y.fits"]) {
      const path = join(job.watch_path, name);
      await Deno.writeTextFile(path, name);
      const version = versionOf(await Deno.stat(path));
      assert.equal(table.ready(name, version), "plan");
      assert.deepEqual(
        table.plannedAll([{ relPath: name, ...version, destination: `20240315/${name}` }]),
        ["queued"],
      );
    }
    // Every copy fails as a full disk does: each file is held, back in the queue.
    const transport = {
      method: "local",
      maxBatchFiles: 16,
      describeTarget: (destination: string) => join(job.remote_base_path, destination),
      send: (items: TransferItem[]): Promise<TransferOutcome[]> =>
        Promise.resolve(items.map((item) => ({
          item,
          error: new TransferError(
            `Cannot send ${item.source}: No space left on device`,
            "retry-later",
          ),
        }))),
    } as unknown as Transport;
    let second: WorkRecord[] = [];
    let fulls = 0;
    const sender = new BatchSender({
      job,
      table,
      transport,
      signal: new AbortController().signal,
      observe: () => {},
      onSent: () => {},
      onRecognised: () => {},
      onGaveUp: () => {},
      pauseWhenFull: true,
      // The second file's failure: the first is queued again by now, and the next batch takes it.
      onFull: () => {
        if (++fulls === 2) second = table.takeBatch(16);
      },
    });
    const first = table.takeBatch(16);
    assert.deepEqual(first.map((r) => r.relPath), ["x.fits", "y.fits"]);
    assert.equal(await sender.send(first), 0);
    assert.deepEqual(second.map((r) => r.relPath), ["x.fits"], "the next batch took x.fits");
    // The first batch's end left x.fits to the batch that has it now.
    assert.equal(table.record("x.fits")?.phase, "sending");
    assert.equal(table.record("x.fits")?.take, second[0].take);
    assert.equal(table.record("y.fits")?.phase, "queued");
  } finally {
    table.close();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("BatchSender: a source that cannot be examined after a failed attempt (not found is another thing) is retried, not dropped", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-sender-" });
  const job = localTestJob(root, { retry_attempts: 3, retry_delay_seconds: 60 });
  await Deno.mkdir(join(job.watch_path, "sub"), { recursive: true });
  const ledger = Ledger.open(join(root, "state"), { probeEveryMs: 3_600_000 });
  const table = new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: () => {},
    onDue: () => {},
  });
  try {
    const path = join(job.watch_path, "sub", "x.fits");
    await Deno.writeTextFile(path, "x");
    const version = versionOf(await Deno.stat(path));
    table.ready("sub/x.fits", version);
    table.plannedAll([{ relPath: "sub/x.fits", ...version, destination: "20240315/sub/x.fits" }]);
    // The attempt fails, and meanwhile its folder cannot be looked into (a loop of links stands
    // in for a share whose server stopped answering).
    const transport = {
      method: "local",
      maxBatchFiles: 16,
      describeTarget: (destination: string) => join(job.remote_base_path, destination),
      send: async (items: TransferItem[]): Promise<TransferOutcome[]> => {
        await Deno.rename(join(job.watch_path, "sub"), join(root, "away"));
        await Deno.symlink("sub", join(job.watch_path, "sub"));
        return items.map((item) => ({
          item,
          error: new TransferError(`Cannot send ${item.source}: Input/output error`, "retry"),
        }));
      },
    } as unknown as Transport;
    const sender = new BatchSender({
      job,
      table,
      transport,
      signal: new AbortController().signal,
      observe: () => {},
      onSent: () => {},
      onRecognised: () => {},
      onGaveUp: () => {},
      pauseWhenFull: true,
      onFull: () => {},
    });
    assert.equal(await sender.send(table.takeBatch(16)), 0);
    assert.equal(table.record("sub/x.fits")?.phase, "waiting", "retried, not dropped");
  } finally {
    table.close();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
