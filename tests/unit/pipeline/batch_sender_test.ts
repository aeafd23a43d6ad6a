/**
 * The batch sender over a real ledger and real source files, with a
 * transport that answers as told: a batch settles only its own attempts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { TransferError, type TransferErrorKind } from "../../../src/errors.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { BatchSender, type BatchSenderContext } from "../../../src/pipeline/batch_sender.ts";
import { FileTable, type WorkRecord } from "../../../src/pipeline/file_table.ts";
import type { Transport } from "../../../src/transfer/transport.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { versionOf } from "../../../src/watch/file_version.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { waitFor } from "../../helpers/files.ts";
import type { JobConfig } from "../../../src/config/types.ts";

/** The file table of `job` over `ledger`, as a start makes it (nothing observed). */
function fileTable(job: JobConfig, ledger: Ledger): FileTable {
  return new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: () => {},
    onDue: () => {},
  });
}

/** A job's ledger and file table in a fresh folder, with `files` (relative paths) queued. */
async function queued(files: string[], overrides: Partial<JobConfig> = {}) {
  const root = await Deno.makeTempDir({ prefix: "itx-sender-" });
  const job = localTestJob(root, overrides);
  const ledger = Ledger.open(join(root, "state"), { probeEveryMs: 3_600_000 });
  const table = fileTable(job, ledger);
  for (const rel of files) {
    const path = join(job.watch_path, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(path, rel);
    const version = versionOf(await Deno.stat(path));
    assert.equal(table.ready(rel, version), "plan");
    assert.deepEqual(
      table.plannedAll([{ relPath: rel, ...version, destination: `20240315/${rel}` }]),
      ["queued"],
    );
  }
  const close = async () => {
    table.close();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  };
  return { root, job, table, close };
}

/** A transport whose `send` answers with `answer`. */
function answering(job: JobConfig, answer: Transport["send"]): Transport {
  return {
    method: "local",
    maxBatchFiles: 16,
    describeTarget: (destination: string) => join(job.remote_base_path, destination),
    send: answer,
  } as unknown as Transport;
}

/** A transport whose `send` fails every item with `reason` (after "Cannot send <source>"). */
function failing(job: JobConfig, reason: () => string | null, kind: TransferErrorKind): Transport {
  return answering(job, (items) =>
    Promise.resolve(items.map((item) => {
      const why = reason();
      return {
        item,
        error: why === null ? null : new TransferError(`Cannot send ${item.source}${why}`, kind),
      };
    })));
}

/** A sender of `table` through `transport` that tells nothing but a full destination and its return. */
function sender(
  job: JobConfig,
  table: FileTable,
  transport: Transport,
  onHold: () => void = () => {},
  onBack: () => void = () => {},
  more: Partial<BatchSenderContext> = {},
): BatchSender {
  return new BatchSender({
    ...more,
    job,
    table,
    transport,
    signal: new AbortController().signal,
    observe: () => {},
    onSent: () => {},
    onRecognised: () => {},
    onGaveUp: () => {},
    pauseWhenUnavailable: true,
    onHold,
    onBack,
  });
}

Deno.test("BatchSender: a file held by a full destination and taken by the next batch is that batch's, not settled by the first", async () => {
  const { job, table, close } = await queued(["x.fits", "y.fits"]);
  try {
    // Every copy fails as a full disk does: each file is held, back in the queue.
    const transport = failing(job, () => ": No space left on device", "retry-later");
    let second: WorkRecord[] = [];
    let fulls = 0;
    // The second file's failure: the first is queued again by now, and the next batch takes it.
    const batchSender = sender(job, table, transport, () => {
      if (++fulls === 2) second = table.takeBatch(16);
    });
    const first = table.takeBatch(16);
    assert.deepEqual(first.map((r) => r.relPath), ["x.fits", "y.fits"]);
    assert.equal(await batchSender.send(first), 0);
    assert.deepEqual(second.map((r) => r.relPath), ["x.fits"], "the next batch took x.fits");
    // The first batch's end left x.fits to the batch that has it now.
    assert.equal(table.record("x.fits")?.phase, "sending");
    assert.equal(table.record("x.fits")?.take, second[0].take);
    assert.equal(table.record("y.fits")?.phase, "queued");
  } finally {
    await close();
  }
});

Deno.test("BatchSender: an error no attempt's outcome explains is said with where it happened and thrown; its files are retried", async () => {
  const { job, table, close } = await queued(["x.fits"], { retry_delay_seconds: 60 });
  const logs = await captureLogs();
  try {
    const transport = failing(job, () => null, "retry");
    // A fault of the program, not of the file or the destination (a TypeError, say).
    const admit = () => Promise.reject(new TypeError("x is not a function"));
    const batchSender = sender(job, table, transport, undefined, undefined, { admit });
    // The job's pause learns of it as no outcome at all (see DestinationPause.ended).
    await assert.rejects(batchSender.send(table.takeBatch(16)), /x is not a function/);
    const said = logs.records.filter((r) => r.level === "error");
    assert.equal(said.length, 1);
    assert.match(String(said[0].rawMessage), /failed unexpectedly/);
    assert.match(String(said[0].properties.error), /TypeError: x is not a function\n\s+at /);
    const record = table.record("x.fits");
    assert.equal(record?.phase, "waiting", "retried after its delay, not lost");
    assert.equal(record?.attempts, 1);
  } finally {
    await logs.stop();
    await close();
  }
});

Deno.test("BatchSender: a batch past its deadline is each file's failed attempt, said in words and retried, not a fault with a stack", async () => {
  const { job, table, close } = await queued(["x.fits", "y.fits"], { retry_delay_seconds: 60 });
  const logs = await captureLogs();
  try {
    // A connection that hangs: the transport gives up only when the batch is aborted, with the
    // abort's reason (as a transport's own plumbing may).
    const transport = answering(job, (_items, signal) =>
      new Promise((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }));
    const batchSender = sender(job, table, transport, undefined, undefined, { deadlineMs: 50 });
    assert.equal(await batchSender.send(table.takeBatch(16)), 0);
    assert.deepEqual(logs.records.filter((r) => r.level === "error").map((r) => r.rawMessage), []);
    const said = logs.records.filter((r) => String(r.rawMessage).startsWith("Attempt {attempt}"));
    assert.deepEqual(
      said.map((r) => String(r.properties.source).split("/").at(-1)).sort(),
      ["x.fits", "y.fits"],
      "each file's attempt said",
    );
    for (const record of said) {
      assert.equal(record.level, "warning");
      assert.equal(
        record.properties.reason,
        "the batch of 2 file(s) it was sent in took longer than 0.05 s (its deadline: a " +
          "connection that hangs?) and was stopped",
      );
      assert.doesNotMatch(String(record.properties.reason), /\n\s+at /);
    }
    for (const rel of ["x.fits", "y.fits"]) {
      assert.equal(table.record(rel)?.phase, "waiting", `${rel} retried after its delay`);
      assert.equal(table.record(rel)?.attempts, 1);
    }
  } finally {
    await logs.stop();
    await close();
  }
});

Deno.test("BatchSender: a source that cannot be examined after a failed attempt (not found is another thing) is retried, not dropped", async () => {
  const { root, job, table, close } = await queued(["sub/x.fits"], {
    retry_attempts: 3,
    retry_delay_seconds: 60,
  });
  try {
    // The attempt fails, and meanwhile its folder cannot be looked into (a loop of links stands
    // in for a share whose server stopped answering).
    const transport = answering(job, async (items) => {
      await Deno.rename(join(job.watch_path, "sub"), join(root, "away"));
      await Deno.symlink("sub", join(job.watch_path, "sub"));
      return items.map((item) => ({
        item,
        error: new TransferError(`Cannot send ${item.source}: Input/output error`, "retry"),
      }));
    });
    assert.equal(await sender(job, table, transport).send(table.takeBatch(16)), 0);
    assert.equal(table.record("sub/x.fits")?.phase, "waiting", "retried, not dropped");
  } finally {
    await close();
  }
});

Deno.test("BatchSender: a source removed while its connection failed is dropped; the next arrival does not say the destination is back", async () => {
  const { job, table, close } = await queued(["gone.fits", "kept.fits"]);
  const logs = await captureLogs();
  try {
    // The upload's connection ends as the source goes (as scp's does): the error names the link.
    let first = true;
    const transport = answering(job, async (items) => {
      if (!first) return items.map((item) => ({ item, error: null }));
      first = false;
      await Deno.remove(join(job.watch_path, "gone.fits"));
      const why = ": the connection to archive failed";
      return items.map((item) => ({
        item,
        error: new TransferError(`Cannot send ${item.source}${why}`, "retry"),
      }));
    });
    let back = 0;
    const batchSender = sender(job, table, transport, () => {}, () => back++);
    assert.equal(await batchSender.send(table.takeBatch(1)), 0);
    assert.equal(logs.count("info", "Dropped {path}: it is gone from the watch folder"), 1);
    assert.equal(table.record("gone.fits"), undefined);
    assert.equal(await batchSender.send(table.takeBatch(1)), 1);
    assert.equal(back, 0, "the destination is not told back");
  } finally {
    await logs.stop();
    await close();
  }
});

for (const restarts of [1, 2]) {
  const again = restarts === 2 ? ", and the next run killed before it looked," : "";
  Deno.test(`BatchSender: files a killed run had sent unrecorded${again} are found there, said once for the batch, not sent again`, async () => {
    const files = ["a.fits", "b.fits", "c.fits"];
    const { job, table, close } = await queued(files);
    const logs = await captureLogs();
    try {
      // The last run took them (recorded `transferring`) and was killed before recording arrivals.
      assert.equal(table.takeBatch(16).length, 3);
      // Each run started takes over the ledger the run before left; all but the last are killed.
      let next = table;
      for (let run = 0; run < restarts; run++) {
        if (next !== table) next.close();
        next = fileTable(job, table.ledger);
        next.takeOverLedger();
        await next.resumeUnfinished();
      }
      let sent = 0;
      const transport = {
        ...answering(job, (items) => {
          sent += items.length;
          return Promise.resolve(items.map((item) => ({ item, error: null })));
        }),
        // Every copy is there with its size and its SHA-256 (each source holds its name).
        destinationSizes: (destinations: string[]) =>
          Promise.resolve(new Map(destinations.map((d) => [d, d.split("/").at(-1)!.length]))),
        destinationSha256: (destinations: string[]) =>
          Promise.resolve(
            new Map(
              destinations.map((
                d,
              ) => [d, createHash("sha256").update(d.split("/").at(-1)!).digest("hex")]),
            ),
          ),
      } as unknown as Transport;
      const batch = next.takeBatch(16);
      assert.equal(batch.length, 3);
      assert.equal(await sender(job, next, transport).send(batch), 3);
      assert.equal(sent, 0, "none sent again");
      assert.equal(logs.count("info", "had arrived at"), 1, "said once for the batch");
      assert.equal(logs.count("info", "the count is this batch's"), 1, "said as the batch's");
      assert.equal(logs.count("info", "Successfully transferred"), 3);
      const said =
        "before the last stop or in an attempt cut off after its rename: recorded, not sent";
      assert.equal(logs.count("info", said), 3);
      next.close();
    } finally {
      await logs.stop();
      await close();
    }
  });
}

Deno.test("BatchSender: arrivals the ledger could not record by the stop are said as the next start treats them: found there with their bytes, recorded, not sent again; one gone from there is sent again", async () => {
  const files = ["a.fits", "b.fits", "c.fits"];
  const { job, table, close } = await queued(files);
  const logs = await captureLogs();
  try {
    const batch = table.takeBatch(16);
    assert.equal(batch.length, 3);
    // The ledger's disk fills while they are sent: their arrivals cannot be recorded.
    table.ledger.statement("PRAGMA query_only = 1").run();
    const delivered = answering(
      job,
      (items) => Promise.resolve(items.map((item) => ({ item, error: null }))),
    );
    const first = sender(job, table, delivered);
    await first.send(batch);
    first.close();
    table.ledger.statement("PRAGMA query_only = 0").run();
    assert.equal(logs.count("warning", "arrived but the ledger could not record them"), 1);
    assert.equal(logs.count("warning", "sends them again"), 0, "not what the next start does");
    assert.equal(logs.count("warning", "the next start looks for them at"), 1);
    assert.equal(
      logs.count(
        "warning",
        "each found there with its bytes (SHA-256) is recorded then, not sent again, and any other is sent again",
      ),
      1,
    );

    // The next start: a.fits and b.fits are there with their bytes, c.fits was removed there.
    const next = fileTable(job, table.ledger);
    next.takeOverLedger();
    await next.resumeUnfinished();
    const there = (d: string) => d.split("/").at(-1)!;
    const kept = (d: string) => there(d) !== "c.fits";
    const sent: string[] = [];
    const transport = {
      ...answering(job, (items) => {
        sent.push(...items.map((item) => there(item.destination)));
        return Promise.resolve(items.map((item) => ({ item, error: null })));
      }),
      destinationSizes: (destinations: string[]) =>
        Promise.resolve(new Map(destinations.map((d) => [d, kept(d) ? there(d).length : null]))),
      destinationSha256: (destinations: string[]) =>
        Promise.resolve(
          new Map(destinations.map((d) => [
            d,
            kept(d) ? createHash("sha256").update(there(d)).digest("hex") : null,
          ])),
        ),
    } as unknown as Transport;
    const again = next.takeBatch(16);
    assert.equal(again.length, 3);
    assert.equal(await sender(job, next, transport).send(again), 3);
    assert.deepEqual(sent, ["c.fits"], "only the one gone from the destination is sent again");
    assert.equal(logs.count("info", "had arrived at"), 1);
    for (const rel of files) assert.equal(next.rows.get(rel)?.state, "done", rel);
    next.close();
  } finally {
    await logs.stop();
    await close();
  }
});

Deno.test("BatchSender: a folder that cannot be made is that folder's: files arriving elsewhere do not send its files again", async () => {
  const { job, table, close } = await queued(["locked/a.fits", "b.fits", "c.fits"]);
  const logs = await captureLogs();
  try {
    // Every file of the folder "locked" fails; the others arrive.
    const transport = answering(job, (items) =>
      Promise.resolve(items.map((item) => ({
        item,
        error: item.source.includes("locked")
          ? new TransferError(`Cannot send ${item.source}: cannot create folder locked`, "retry")
          : null,
      }))));
    let back = 0;
    const batchSender = sender(job, table, transport, () => {}, () => back++);
    for (let i = 0; i < 3; i++) await batchSender.send(table.takeBatch(1));
    assert.equal(back, 0, "no file arriving elsewhere tells the failed ones to go again");
  } finally {
    await logs.stop();
    await close();
  }
});

Deno.test("BatchSender: a refused login: each file that gives up says so; the first arrival after it gives the failed files a try", async () => {
  const { job, table, close } = await queued(["a.fits", "b.fits", "c.fits"]);
  const logs = await captureLogs();
  try {
    let refuse = true;
    const transport = failing(
      job,
      () => refuse ? ": authentication was refused by obs@archive" : null,
      "fatal",
    );
    let back = 0;
    const batchSender = sender(job, table, transport, () => {}, () => back++);
    assert.equal(await batchSender.send(table.takeBatch(2)), 0);
    assert.equal(logs.count("error", "Failed to transfer"), 2, "one line per file that gives up");
    assert.equal(back, 0);
    // The key is fixed: the next file arrives, and the failed ones are told to go again.
    refuse = false;
    assert.equal(await batchSender.send(table.takeBatch(16)), 1);
    assert.equal(back, 1);
  } finally {
    await logs.stop();
    await close();
  }
});

Deno.test("BatchSender: a login refused once the host that could not be reached is back is said, once", async () => {
  const { job, table, close } = await queued(["a.fits", "b.fits", "c.fits"]);
  const logs = await captureLogs();
  try {
    let failure = { why: ": the connection to archive failed", kind: "retry" as TransferErrorKind };
    const transport = answering(job, (items) =>
      Promise.resolve(items.map((item) => ({
        item,
        error: new TransferError(`Cannot send ${item.source}${failure.why}`, failure.kind),
      }))));
    let held = 0;
    const batchSender = sender(job, table, transport, () => held++);
    assert.equal(await batchSender.send(table.takeBatch(1)), 0);
    assert.equal(held, 1, "the job waits for the host (its pause says so)");
    // The host answers, and refuses the login: said, though the destination was down already.
    failure = {
      why: ": the FTP server archive refused the login (530 Login incorrect.)",
      kind: "fatal",
    };
    assert.equal(await batchSender.send(table.takeBatch(1)), 0);
    assert.equal(logs.count("error", "Failed to transfer"), 1);
    assert.equal(await batchSender.send(table.takeBatch(1)), 0);
    assert.equal(logs.count("error", "Failed to transfer"), 2, "one line per file that gives up");
  } finally {
    await logs.stop();
    await close();
  }
});

for (
  const [method, reason] of [
    [
      "ssh",
      " to obs@archive:/data/20240315/x: cannot create the folder: the remote user on archive " +
      "may not write there (Permission denied)",
    ],
    ["ftp", ": cannot create folder /data/20240315 (550 Create directory operation failed.)"],
  ]
) {
  Deno.test(`BatchSender: a destination folder the remote user may not create (${method}) is said once, the attempts after it at debug level, and each file that gives up`, async () => {
    const { job, table, close } = await queued(["a.fits", "b.fits", "c.fits"], {
      retry_attempts: 1,
    });
    const logs = await captureLogs();
    try {
      const batchSender = sender(job, table, failing(job, () => reason, "retry-later"));
      assert.equal(await batchSender.send(table.takeBatch(16)), 0);
      assert.equal(logs.count("error", "Attempt {attempt} of {source} failed"), 1, "said once");
      assert.equal(logs.count("debug", "failed the same way"), 2);
      assert.equal(logs.count("error", "Failed to transfer"), 0);
      // Their second attempts fail the same way: each gives up and says so.
      await waitFor(() => table.count("queued") === 3, 10_000, "the retries");
      assert.equal(await batchSender.send(table.takeBatch(16)), 0);
      assert.equal(logs.count("error", "Failed to transfer"), 3, "one line per file that gives up");
      assert.equal(logs.count("debug", "failed the same way"), 2);
      for (const rel of ["a.fits", "b.fits", "c.fits"]) {
        assert.equal(table.rows.get(rel)?.state, "failed");
      }
    } finally {
      await logs.stop();
      await close();
    }
  });
}
