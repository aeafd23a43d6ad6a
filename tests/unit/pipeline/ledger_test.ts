/**
 * The ledger on a real SQLite file: state changes, attempt counting, the
 * read-only view, durability across close and reopen, and hostile paths.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger, LEDGER_FILE, LedgerWriteError } from "../../../src/ledger/ledger.ts";
import { carryOverRenamedJobs } from "../../../src/ledger/job_names.ts";
import { DueHooks } from "../../../src/ledger/due_hooks.ts";
import { UnconfirmedCopies } from "../../../src/ledger/unconfirmed_copies.ts";
import { acquireDaemonLock } from "../../../src/ledger/daemon_lock.ts";
import { testJob } from "../../helpers/jobs.ts";
import { waitFor } from "../../helpers/files.ts";
import { whileImmutable } from "../../helpers/immutable.ts";
import { type DoneEntry, FileRows } from "../../../src/ledger/file_rows.ts";
import {
  ledgerCounts,
  openForReports,
  overdueFiles,
  problemFiles,
  recentDone,
} from "../../../src/status/ledger_reports.ts";

/** The destination every job of these tests sends to. */
const T = "local:/data";

/** The rows of `job` for {@linkcode T}. */
function files(ledger: Ledger, job: string): FileRows {
  return new FileRows(ledger, job, T);
}

/** Record a file done with the size, mtime and destination it was recorded with. */
function markDone(table: FileRows, relPath: string, now?: number): void {
  const row = table.get(relPath)!;
  table.markDone([{ ...row, relPath }], now);
}

/** Size and mtime of every done file of `job`. */
function doneIndex(ledger: Ledger, job: string): Map<string, DoneEntry> {
  return new Map(
    files(ledger, job).doneArrivedBy(Number.MAX_SAFE_INTEGER)
      .map((r) => [r.relPath, { size: r.size, mtimeMs: r.mtimeMs }]),
  );
}

async function withLedger(fn: (ledger: Ledger, stateDir: string) => Promise<void> | void) {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-" });
  const stateDir = join(root, "state");
  const ledger = Ledger.open(stateDir);
  try {
    await fn(ledger, stateDir);
  } finally {
    try {
      ledger.close();
    } catch { /* closed by the test */ }
    await Deno.remove(root, { recursive: true });
  }
}

const FILE = { size: 100, mtimeMs: 1_700_000_000_123, destination: "20240315/a.fits" };

Deno.test("Ledger.open creates the state folder and a WAL database", async () => {
  await withLedger((ledger, stateDir) => {
    assert.equal(ledger.path, join(stateDir, LEDGER_FILE));
    assert.ok(Deno.statSync(ledger.path).isFile);
    const db = new DatabaseSync(ledger.path);
    try {
      const row = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
      assert.equal(row.journal_mode, "wal");
    } finally {
      db.close();
    }
  });
});

Deno.test("The daemon's ledger and the status page's reader keep a small page cache: a year of history read once does not stay in memory", async () => {
  await withLedger((ledger) => {
    const row = ledger.statement("PRAGMA cache_size").get() as { cache_size: number };
    assert.equal(row.cache_size, -256);
    const reports = openForReports(ledger.path);
    try {
      const shown = reports.prepare("PRAGMA cache_size").get() as { cache_size: number };
      assert.equal(shown.cache_size, -256);
    } finally {
      reports.close();
    }
  });
});

Deno.test("Ledger: enqueue → transferring → done", async () => {
  await withLedger((ledger) => {
    assert.equal(files(ledger, "job").get("a.fits"), undefined);
    files(ledger, "job").enqueue("a.fits", { ...FILE, bornMs: 1_699_999_999_000 }, 1000);
    let row = files(ledger, "job").get("a.fits")!;
    assert.deepEqual(row, {
      job: "job",
      target: T,
      relPath: "a.fits",
      size: 100,
      mtimeMs: 1_700_000_000_123,
      destination: "20240315/a.fits",
      state: "pending",
      attempts: 0,
      nextAttemptAt: 0,
      lastError: null,
      createdAt: 1000,
      updatedAt: 1000,
      transferredAt: null,
      bornMs: 1_699_999_999_000,
      sentSize: null,
      sentMtimeMs: null,
    });
    files(ledger, "job").markTransferring(["a.fits"], 2000);
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "transferring");
    assert.equal(row.updatedAt, 2000);
    markDone(files(ledger, "job"), "a.fits", 3000);
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "done");
    assert.equal(row.transferredAt, 3000);
    assert.equal(row.updatedAt, 3000);
    assert.equal(row.createdAt, 1000);
    assert.equal(row.bornMs, 1_699_999_999_000, "the birth time of the version sent is kept");
    assert.deepEqual([row.sentSize, row.sentMtimeMs], [100, 1_700_000_000_123]);
    assert.deepEqual(files(ledger, "job").unfinished(), []);
    assert.deepEqual(
      doneIndex(ledger, "job"),
      new Map([["a.fits", { size: 100, mtimeMs: 1_700_000_000_123 }]]),
    );
  });
});

Deno.test("Ledger: a copy in place unconfirmed is kept until the file arrives or its row goes, for its job and destination only", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "cam1");
    for (const name of ["a.fits", "b.fits", "c.fits"]) table.enqueue(name, FILE);
    const unconfirmed = new UnconfirmedCopies(table);
    const at = (name: string, destination = `20240315/${name}`) => ({ relPath: name, destination });
    unconfirmed.add([at("a.fits", "x"), at("b.fits"), at("c.fits"), at("a.fits")]);
    assert.deepEqual(
      [...unconfirmed.all()].sort(),
      [["a.fits", "20240315/a.fits"], ["b.fits", "20240315/b.fits"], ["c.fits", "20240315/c.fits"]],
      "one entry a file, where its copy was put last",
    );
    assert.equal(new UnconfirmedCopies(files(ledger, "cam2")).all().size, 0);
    assert.equal(new UnconfirmedCopies(new FileRows(ledger, "cam1", "ssh://x/d")).all().size, 0);
    table.recordFailure("a.fits", { error: "e", attempts: 1, nextAttemptAt: 0, final: false });
    markDone(table, "b.fits");
    table.remove("c.fits", true);
    assert.deepEqual(
      [...unconfirmed.all().keys()],
      ["a.fits"],
      "kept by a failure; gone with arrival and row",
    );
    markDone(table, "a.fits");
    assert.equal(unconfirmed.all().size, 0);
  });
});

Deno.test("Ledger: recordFailure retries, then fails; markDone clears the error", async () => {
  await withLedger((ledger) => {
    files(ledger, "job").enqueue("a.fits", FILE);
    files(ledger, "job").markTransferring(["a.fits"]);
    files(ledger, "job").recordFailure("a.fits", {
      error: "Cannot send: timeout",
      attempts: 1,
      nextAttemptAt: 5000,
      final: false,
    }, 4000);
    let row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 1);
    assert.equal(row.nextAttemptAt, 5000);
    assert.equal(row.lastError, "Cannot send: timeout");
    assert.equal(row.updatedAt, 4000);
    assert.deepEqual(problemFiles(ledger, 10).map((r) => r.relPath), ["a.fits"]);

    files(ledger, "job").recordFailure("a.fits", {
      error: "Cannot send: disk full",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "failed");
    assert.equal(row.attempts, 4);
    assert.equal(row.lastError, "Cannot send: disk full");
    assert.deepEqual(files(ledger, "job").unfinished().map((r) => r.state), ["failed"]);

    markDone(files(ledger, "job"), "a.fits");
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "done");
    assert.equal(row.attempts, 4, "the attempts it was told it took (here the row's)");
    assert.equal(row.nextAttemptAt, 0);
    assert.equal(row.lastError, null);
    assert.deepEqual(problemFiles(ledger, 10), []);
  });
});

Deno.test("Ledger.enqueue: a changed file starts over, an unchanged one keeps its attempts", async () => {
  await withLedger((ledger) => {
    const fail = (attempts: number, final = false) =>
      files(ledger, "job").recordFailure("a.fits", {
        error: "boom",
        attempts,
        nextAttemptAt: 99_999,
        final,
      });
    files(ledger, "job").enqueue("a.fits", FILE, 1000);
    fail(2);
    // Unchanged pending: keeps the attempts, may start now.
    files(ledger, "job").enqueue("a.fits", FILE, 2000);
    let row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 2);
    assert.equal(row.nextAttemptAt, 0);
    assert.equal(row.createdAt, 1000, "created_at is kept");
    assert.equal(row.updatedAt, 2000);

    // Unchanged failed: back to pending, attempts kept.
    fail(3, true);
    files(ledger, "job").enqueue("a.fits", FILE);
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 3);

    assert.equal(row.lastError, "boom", "an unchanged file keeps its last error");

    // New size: starts over, the old error no longer applies; destination follows.
    assert.equal(row.createdAt, 1000, "waits since the version was first recorded");
    files(ledger, "job").enqueue(
      "a.fits",
      { ...FILE, size: 101, destination: "20240316/a.fits" },
      3000,
    );
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.attempts, 0);
    assert.equal(row.lastError, null);
    assert.equal(row.createdAt, 3000, "a new version waits from when it was recorded");
    assert.deepEqual(problemFiles(ledger, 10), []);
    assert.equal(row.size, 101);
    assert.equal(row.destination, "20240316/a.fits");

    // New mtime only: starts over too.
    fail(2);
    files(ledger, "job").enqueue("a.fits", { ...FILE, size: 101, mtimeMs: FILE.mtimeMs + 1 });
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.attempts, 0);
    assert.equal(row.mtimeMs, FILE.mtimeMs + 1);

    // A done file seen again unchanged is pending again with no attempts.
    markDone(files(ledger, "job"), "a.fits");
    files(ledger, "job").enqueue("a.fits", { ...FILE, size: 101, mtimeMs: FILE.mtimeMs + 1 }, 5000);
    row = files(ledger, "job").get("a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 0);
    assert.equal(row.createdAt, 5000, "sent again: waits from now");
  });
});

Deno.test("Ledger.requeue: puts transferring and failed files back to pending", async () => {
  await withLedger((ledger) => {
    for (const name of ["p.fits", "t.fits", "f.fits", "d.fits"]) {
      files(ledger, "job").enqueue(name, { ...FILE, destination: `n/${name}` });
    }
    files(ledger, "other").enqueue("t.fits", FILE);
    files(ledger, "job").markTransferring(["t.fits"]);
    files(ledger, "other").markTransferring(["t.fits"]);
    files(ledger, "job").recordFailure("p.fits", {
      error: "e",
      attempts: 1,
      nextAttemptAt: 123,
      final: false,
    });
    files(ledger, "job").recordFailure("f.fits", {
      error: "e",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    markDone(files(ledger, "job"), "d.fits");

    assert.equal(files(ledger, "job").requeue([]), 0);
    assert.equal(files(ledger, "job").requeue(["failed"], 7000), 1);
    let f = files(ledger, "job").get("f.fits")!;
    assert.equal(f.state, "pending");
    assert.equal(f.attempts, 0);
    assert.equal(f.updatedAt, 7000);
    assert.equal(files(ledger, "job").get("t.fits")!.state, "transferring");

    assert.equal(files(ledger, "job").requeue(["transferring", "failed"]), 1);
    assert.equal(files(ledger, "job").get("t.fits")!.state, "pending");
    assert.equal(
      files(ledger, "other").get("t.fits")!.state,
      "transferring",
      "other jobs untouched",
    );
    assert.equal(files(ledger, "job").get("d.fits")!.state, "done", "done files untouched");
    const p = files(ledger, "job").get("p.fits")!;
    assert.equal(p.attempts, 1, "plain pending files untouched");
    assert.equal(p.nextAttemptAt, 123);
    f = files(ledger, "job").get("f.fits")!;
    assert.equal(f.state, "pending");

    assert.deepEqual(
      files(ledger, "job").unfinished().map((r) => r.relPath).sort(),
      ["f.fits", "p.fits", "t.fits"],
    );
  });
});

Deno.test("Ledger: remove, counts, recentDone and problems", async () => {
  await withLedger((ledger) => {
    for (let i = 0; i < 5; i++) files(ledger, "a").enqueue(`${i}.fits`, FILE);
    files(ledger, "b").enqueue("x.fits", FILE);
    files(ledger, "b").enqueue("y.fits", FILE);
    markDone(files(ledger, "a"), "0.fits", 1000);
    markDone(files(ledger, "a"), "1.fits", 3000);
    markDone(files(ledger, "b"), "x.fits", 2000);
    files(ledger, "a").recordFailure("2.fits", {
      error: "e2",
      attempts: 1,
      nextAttemptAt: 1,
      final: false,
    }, 10);
    files(ledger, "a").recordFailure(
      "3.fits",
      { error: "e3", attempts: 4, nextAttemptAt: 0, final: true },
      20,
    );
    files(ledger, "a").markTransferring(["4.fits"]);

    assert.deepEqual(ledgerCounts(ledger), [
      { job: "a", target: T, state: "done", count: 2 },
      { job: "a", target: T, state: "failed", count: 1 },
      { job: "a", target: T, state: "pending", count: 1 },
      { job: "a", target: T, state: "transferring", count: 1 },
      { job: "b", target: T, state: "done", count: 1 },
      { job: "b", target: T, state: "pending", count: 1 },
    ]);
    assert.deepEqual(
      recentDone(ledger, 10).map((r) => `${r.job}/${r.relPath}`),
      ["a/1.fits", "b/x.fits", "a/0.fits"],
    );
    assert.deepEqual(recentDone(ledger, 1).map((r) => r.relPath), ["1.fits"]);
    // Failed ones and pending ones with an error, newest first; not plain pending.
    assert.deepEqual(problemFiles(ledger, 10).map((r) => r.relPath), ["3.fits", "2.fits"]);
    assert.deepEqual(problemFiles(ledger, 1).map((r) => r.lastError), ["e3"]);
    assert.deepEqual([...doneIndex(ledger, "a").keys()].sort(), ["0.fits", "1.fits"]);
    assert.deepEqual([...doneIndex(ledger, "b").keys()], ["x.fits"]);
    assert.equal(doneIndex(ledger, "nobody").size, 0);

    files(ledger, "a").remove("3.fits");
    files(ledger, "a").remove("not there.fits");
    assert.equal(files(ledger, "a").get("3.fits"), undefined);
    assert.deepEqual(problemFiles(ledger, 10).map((r) => r.relPath), ["2.fits"]);
    assert.equal(files(ledger, "b").get("y.fits")!.state, "pending", "remove touches one row only");
  });
});

Deno.test("Ledger: the kept counts follow every change of a file's state, job or destination", async () => {
  /** What counting every row says. */
  const counted = (ledger: Ledger) =>
    (ledger.statement(
      "SELECT job, target, state, COUNT(*) AS n FROM files GROUP BY job, target, state " +
        "ORDER BY job, target, state",
    ).all() as Array<{ job: string; target: string; state: string; n: number }>).map((r) => ({
      job: r.job,
      target: r.target,
      state: r.state,
      count: Number(r.n),
    }));
  await withLedger((ledger) => {
    const a = files(ledger, "a");
    const steps: Array<() => void> = [
      () => {
        for (let i = 0; i < 6; i++) a.enqueue(`${i}.fits`, FILE);
      },
      () => a.markTransferring(["0.fits", "1.fits", "2.fits"]),
      () => markDone(a, "0.fits"),
      () => markDone(a, "1.fits"),
      // The same file again, changed: an upsert turns the done row back to pending.
      () => a.enqueue("1.fits", { ...FILE, size: 101 }),
      () => a.recordFailure("3.fits", { error: "e", attempts: 9, nextAttemptAt: 0, final: true }),
      () => a.requeue(["transferring", "failed"]),
      () => a.remove("4.fits"),
      () => a.remove("not there.fits"),
      // Another destination of the job, and rows from before destinations adopted by it.
      () => new FileRows(ledger, "a", "local:/elsewhere").enqueue("0.fits", FILE),
      () =>
        ledger.write(() =>
          ledger.statement("UPDATE files SET target = '' WHERE job = 'a' AND rel_path = '5.fits'")
            .run()
        ),
      () => a.adoptUnattributed(),
      () => a.sendAgain(["0.fits"]),
    ];
    for (const [index, step] of steps.entries()) {
      step();
      assert.deepEqual(ledgerCounts(ledger), counted(ledger), `after step ${index}`);
    }
    assert.deepEqual(ledgerCounts(ledger), [
      { job: "a", target: "local:/data", state: "pending", count: 5 },
      { job: "a", target: "local:/elsewhere", state: "pending", count: 1 },
    ]);
  });
});

Deno.test("Ledger.transaction: commits on success, rolls back on a throw", async () => {
  await withLedger((ledger) => {
    ledger.write(() => {
      files(ledger, "job").enqueue("a.fits", FILE);
      files(ledger, "job").enqueue("b.fits", FILE);
    });
    assert.throws(
      () =>
        ledger.write(() => {
          files(ledger, "job").enqueue("c.fits", FILE);
          throw new Error("abort this");
        }),
      /abort this/,
    );
    assert.deepEqual(files(ledger, "job").unfinished().map((r) => r.relPath).sort(), [
      "a.fits",
      "b.fits",
    ]);
    // The ledger is still usable after a rollback.
    files(ledger, "job").enqueue("d.fits", FILE);
    assert.equal(files(ledger, "job").unfinished().length, 3);
  });
});

Deno.test("Ledger: data survives close and reopen", async () => {
  await withLedger((first, stateDir) => {
    for (let i = 0; i < 50; i++) files(first, "job").enqueue(`n/${i}.fits`, { ...FILE, size: i });
    files(first, "job").markTransferring(["n/1.fits"]);
    markDone(files(first, "job"), "n/2.fits", 4242);
    files(first, "job").recordFailure("n/3.fits", {
      error: "Cannot send: x",
      attempts: 2,
      nextAttemptAt: 9,
      final: true,
    });
    const before = [...files(first, "job").unfinished(), files(first, "job").get("n/2.fits")!]
      .sort((a, b) => a.relPath.localeCompare(b.relPath));
    first.close();

    const again = Ledger.open(stateDir);
    try {
      const after = [...files(again, "job").unfinished(), files(again, "job").get("n/2.fits")!]
        .sort((a, b) => a.relPath.localeCompare(b.relPath));
      assert.deepEqual(after, before);
      assert.equal(files(again, "job").get("n/2.fits")!.transferredAt, 4242);
      assert.equal(files(again, "job").get("n/3.fits")!.lastError, "Cannot send: x");
    } finally {
      again.close();
    }
  });
});

Deno.test("Ledger: committed writes are on disk while the ledger is still open", async () => {
  await withLedger((ledger) => {
    files(ledger, "job").enqueue("a.fits", FILE);
    markDone(files(ledger, "job"), "a.fits", 77);
    // A separate connection (as after a crash) sees the state.
    const db = new DatabaseSync(ledger.path, { readOnly: true });
    try {
      const row = db.prepare("SELECT state, transferred_at FROM files WHERE rel_path = ?")
        .get("a.fits") as { state: string; transferred_at: number };
      assert.equal(row.state, "done");
      assert.equal(Number(row.transferred_at), 77);
    } finally {
      db.close();
    }
  });
});

Deno.test("Ledger.open readOnly: null when missing, no file created; reads an existing one", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-" });
  try {
    const stateDir = join(root, "state");
    assert.equal(Ledger.open(stateDir, { readOnly: true }), null);
    await assert.rejects(() => Deno.stat(stateDir), Deno.errors.NotFound);
    await Deno.mkdir(stateDir);
    assert.equal(Ledger.open(stateDir, { readOnly: true }), null);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(stateDir)), []);

    const writer = Ledger.open(stateDir);
    files(writer, "job").enqueue("a.fits", FILE);
    markDone(files(writer, "job"), "a.fits", 5);
    // Readable while the writer is open, and after it closed.
    const whileOpen = Ledger.open(stateDir, { readOnly: true })!;
    try {
      assert.deepEqual(recentDone(whileOpen, 5).map((r) => r.relPath), ["a.fits"]);
      assert.throws(() => files(whileOpen, "job").enqueue("b.fits", FILE), /readonly|read-only/i);
    } finally {
      whileOpen.close();
    }
    writer.close();
    const afterClose = Ledger.open(stateDir, { readOnly: true })!;
    try {
      assert.deepEqual(ledgerCounts(afterClose), [{
        job: "job",
        target: T,
        state: "done",
        count: 1,
      }]);
    } finally {
      afterClose.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Ledger: opened while its file could not be written (SQLite opened it read-only), it is written again by itself once the file can be", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-" });
  try {
    const stateDir = join(root, "state");
    const first = Ledger.open(stateDir);
    files(first, "job").enqueue("a.fits", FILE);
    first.close();
    const path = join(stateDir, LEDGER_FILE);
    const ledger = await whileImmutable(path, async () => {
      const opened = Ledger.open(stateDir, { probeEveryMs: 50 });
      assert.throws(() => files(opened, "job").enqueue("b.fits", FILE), LedgerWriteError);
      assert.match(opened.problem?.error ?? "", /readonly/);
      // Probed meanwhile: still unwritable, and said as such.
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.ok(opened.problem, "unwritable while the file is");
      return opened;
    });
    try {
      // Before, the probe kept the read-only connection: unwritable until a restart.
      await waitFor(() => ledger.problem === null, 10_000, "the ledger writable again");
      files(ledger, "job").enqueue("b.fits", FILE);
      assert.equal(files(ledger, "job").get("a.fits")?.state, "pending", "nothing was lost");
    } finally {
      ledger.close();
    }
    const again = Ledger.open(stateDir);
    try {
      assert.deepEqual(
        ["a.fits", "b.fits"].map((rel) => files(again, "job").get(rel)?.state),
        ["pending", "pending"],
      );
    } finally {
      again.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Ledger.open: a ledger missing beside the daemon.lock of an earlier run was lost, also for an opener that does not say so (resend)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-" });
  try {
    const stateDir = join(root, "state");
    const first = Ledger.open(stateDir);
    assert.equal(first.rebuilt, null, "a first start");
    first.close();
    // An earlier run's lock, as it leaves it (an empty one is a start that could not write it).
    const lock = acquireDaemonLock(stateDir);
    lock.ledgerMade();
    lock.release();
    await Deno.remove(join(stateDir, LEDGER_FILE));
    // Before, only the daemon said so: a new ledger made by `resend` hid the loss from it.
    const again = Ledger.open(stateDir);
    try {
      assert.match(again.rebuilt?.reason ?? "", /missing, although the daemon ran with this/);
    } finally {
      again.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Ledger.open: a first start killed while it made the ledger (its lock says none was made; the ledger 0 bytes, with SQLite's journal) starts a first ledger, not a rebuilt one; an earlier version's lock still tells of a lost one", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-ledger-" });
  try {
    const stateDir = join(root, "state");
    // The lock taken, then killed as SQLite began the ledger's first page.
    acquireDaemonLock(stateDir).release();
    await Deno.writeFile(join(stateDir, LEDGER_FILE), new Uint8Array());
    await Deno.writeFile(join(stateDir, `${LEDGER_FILE}-journal`), new Uint8Array());
    const first = Ledger.open(stateDir);
    try {
      assert.equal(first.rebuilt, null, "a first ledger");
      assert.deepEqual(
        (await Array.fromAsync(Deno.readDir(stateDir))).filter((e) => /damaged/.test(e.name)),
        [],
        "nothing set aside as damaged",
      );
    } finally {
      first.close();
    }
    // A lock of an earlier version (user_version 1, a ledger made beside each): one missing was lost.
    const old = join(root, "old");
    await Deno.mkdir(old);
    const lockFile = new DatabaseSync(join(old, "daemon.lock"));
    lockFile.exec("PRAGMA user_version = 1;");
    lockFile.close();
    const lost = Ledger.open(old);
    try {
      assert.match(lost.rebuilt?.reason ?? "", /missing, although the daemon ran with this/);
    } finally {
      lost.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Ledger: hostile relative paths and errors round-trip exactly", async () => {
  await withLedger((ledger, stateDir) => {
    const names = [
      "with space/a b.fits",
      "$(rm -rf ~)/`id`.fits",
      "quote'\"; DROP TABLE files; --.fits",
      "-leading/-dash.fits",
      "new\nline.fits",
      "tab\t.fits",
      "caf\u00e9.fits",
      "cafe\u0301.fits",
      "日本/語.fits",
      "emoji 🔭.fits",
      "back\\slash.fits",
      "%s %d ?.fits",
    ];
    for (const rel of names) {
      files(ledger, "job").enqueue(rel, { ...FILE, destination: `20240315/${rel}` });
    }
    files(ledger, "job").recordFailure(names[2], {
      error: "Cannot send '\"; $(x)\nsecond line",
      attempts: 1,
      nextAttemptAt: 0,
      final: true,
    });
    ledger.close();
    const again = Ledger.open(stateDir);
    try {
      const rows = files(again, "job").unfinished();
      assert.deepEqual(rows.map((r) => r.relPath).sort(), [...names].sort());
      for (const rel of names) {
        assert.equal(
          files(again, "job").get(rel)?.destination,
          `20240315/${rel}`,
          JSON.stringify(rel),
        );
      }
      // NFC and NFD spellings are different files.
      assert.notEqual(files(again, "job").get("caf\u00e9.fits"), undefined);
      assert.notEqual(files(again, "job").get("cafe\u0301.fits"), undefined);
      assert.equal(rows.length, names.length);
      assert.equal(
        files(again, "job").get(names[2])!.lastError,
        "Cannot send '\"; $(x)\nsecond line",
      );
      assert.ok(ledgerCounts(again).length > 0, "the table is still there");
    } finally {
      again.close();
    }
  });
});

Deno.test("Ledger: enqueue returns the attempts kept, 0 for a new or changed file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-ledger-attempts-" });
  const ledger = Ledger.open(dir);
  try {
    const file = { size: 10, mtimeMs: 1000, destination: "20240101/a.fits" };
    assert.equal(files(ledger, "j").enqueue("a.fits", file), 0);
    files(ledger, "j").recordFailure("a.fits", {
      error: "x",
      attempts: 2,
      nextAttemptAt: 0,
      final: false,
    });
    assert.equal(files(ledger, "j").enqueue("a.fits", file), 2);
    assert.equal(files(ledger, "j").enqueue("a.fits", { ...file, size: 11 }), 0);
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ledger.overdue lists pending retries due before a time; markDue makes them due now; pending", async () => {
  await withLedger((ledger) => {
    const fail = (job: string, rel: string, nextAttemptAt: number, final = false) => {
      files(ledger, job).enqueue(rel, FILE);
      files(ledger, job).recordFailure(rel, { error: "e", attempts: 1, nextAttemptAt, final });
    };
    fail("a", "late.fits", 1000);
    fail("a", "later.fits", 500);
    fail("a", "future.fits", 9000);
    fail("a", "given-up.fits", 0, true);
    fail("b", "other.fits", 700);
    files(ledger, "a").enqueue("fresh.fits", FILE);
    assert.deepEqual(
      overdueFiles(ledger, 5000, 10).map((r) => `${r.job}/${r.relPath}`),
      ["a/later.fits", "b/other.fits", "a/late.fits"],
      "oldest first, every job, only pending rows with a retry time",
    );
    assert.deepEqual(overdueFiles(ledger, 5000, 1).map((r) => r.relPath), ["later.fits"]);
    const only = (job: string) => [{ job, target: T }];
    assert.deepEqual(overdueFiles(ledger, 5000, 10, only("b")).map((r) => r.relPath), [
      "other.fits",
    ]);
    // Another destination of the job is not where it sends now.
    assert.deepEqual(
      overdueFiles(ledger, 5000, 10, [{ job: "b", target: "local:/elsewhere" }]),
      [],
    );
    files(ledger, "a").markDue(["late.fits", "given-up.fits", "missing.fits"]);
    assert.deepEqual(overdueFiles(ledger, 5000, 10, only("a")).map((r) => r.relPath), [
      "later.fits",
    ]);
    assert.equal(files(ledger, "a").get("late.fits")?.nextAttemptAt, 0);
    assert.equal(files(ledger, "a").get("late.fits")?.attempts, 1, "attempts kept");
    assert.equal(
      files(ledger, "a").get("given-up.fits")?.state,
      "failed",
      "only pending rows change",
    );
    assert.deepEqual(
      files(ledger, "a").inState("pending").map((r) => r.relPath).sort(),
      ["fresh.fits", "future.fits", "late.fits", "later.fits"],
    );
  });
});

Deno.test("doneVersions, doneVersion, doneAmong: done for this destination or recorded before destinations were, in order; else undefined", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "job");
    for (const rel of ["a.fits", "b.fits", "c.fits"]) table.enqueue(rel, FILE);
    markDone(table, "a.fits");
    markDone(table, "c.fits");
    // Another destination's done file, and another job's, are not done here.
    const elsewhere = new FileRows(ledger, "job", "local:/elsewhere");
    elsewhere.enqueue("d.fits", FILE);
    markDone(elsewhere, "d.fits");
    const other = files(ledger, "other");
    other.enqueue("e.fits", FILE);
    markDone(other, "e.fits");
    const version = { size: FILE.size, mtimeMs: FILE.mtimeMs };
    const asked = ["c.fits", "b.fits", "d.fits", "e.fits", "missing.fits", "a.fits"];
    assert.deepEqual(table.doneVersions(asked), [
      version,
      undefined,
      undefined,
      undefined,
      undefined,
      version,
    ]);
    assert.deepEqual(table.doneAmong(asked), [true, false, false, false, false, true]);
    // A row of an older ledger (no destination recorded yet) counts as this destination's, unless
    // this destination has a done row of its own; one pending here is done by the older row.
    const unattributed = new FileRows(ledger, "job", "");
    for (const rel of ["old.fits", "both.fits", "pending.fits"]) {
      unattributed.enqueue(rel, { ...FILE, size: 7 });
      markDone(unattributed, rel);
    }
    table.enqueue("pending.fits", FILE);
    table.markDone([{ relPath: "both.fits", ...FILE }]);
    const older = { size: 7, mtimeMs: FILE.mtimeMs };
    const mixed = ["old.fits", "both.fits", "pending.fits", "d.fits"];
    assert.deepEqual(table.doneVersions(mixed), [older, version, older, undefined]);
    assert.deepEqual(table.doneAmong(mixed), [true, true, true, false]);
    // One path at a time, the same answers.
    for (const rel of [...asked, ...mixed]) {
      assert.deepEqual(table.doneVersion(rel), table.doneVersions([rel])[0], rel);
    }
    // Asked inside a write transaction, it sees that transaction's rows.
    ledger.write(() => {
      markDone(table, "b.fits");
      assert.deepEqual(table.doneVersions(["b.fits"]), [version]);
      assert.deepEqual(table.doneAmong(["b.fits"]), [true]);
    });
    assert.deepEqual(table.doneVersions([]), []);
    assert.deepEqual(table.doneAmong([]), []);
  });
});

Deno.test("doneVersions, doneAmong: hostile names and a folder of thousands of files come back exactly, in order", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "job");
    const hostile = [
      'a "quoted" name.fits',
      "it's.fits",
      "back\\slash.fits",
      "new\nline.fits",
      "tab\tand $(rm -rf x) `cmd`.fits",
      "-leading dash.fits",
      "ünïcødé 😀/星.fits",
      "[x]%20{y}*?.fits",
      "\u0001control.fits",
    ];
    const many = Array.from({ length: 5_000 }, (_, i) => `night/frame_${i}.fits`);
    const done = [...hostile, ...many.filter((_, i) => i % 2 === 0)];
    table.enqueueAll(done.map((relPath, i) => ({ relPath, ...FILE, size: i })));
    ledger.write(() => done.forEach((relPath) => markDone(table, relPath)));
    const asked = [...hostile, ...many, "new\nline.fits.not"];
    const expected = asked.map((relPath) => {
      const i = done.indexOf(relPath);
      return i < 0 ? undefined : { size: i, mtimeMs: FILE.mtimeMs };
    });
    assert.deepEqual(table.doneVersions(asked), expected);
    assert.deepEqual(table.doneAmong(asked), expected.map((version) => version !== undefined));
  });
});

/** Garbage over an open ledger's database and journal, as a failing disk would leave them. */
function damageOpenLedger(stateDir: string): void {
  const garbage = new Uint8Array(64 * 1024).fill(0x41);
  for (const suffix of ["", "-wal", "-shm"]) {
    Deno.writeFileSync(join(stateDir, LEDGER_FILE + suffix), garbage);
  }
}

Deno.test("enqueueAll: a ledger damaged while open is set aside at the write, and the burst recorded in the new one", async () => {
  await withLedger((ledger, stateDir) => {
    files(ledger, "job").enqueueAll([{ relPath: "before.fits", ...FILE }]);
    damageOpenLedger(stateDir);
    const attempts = files(ledger, "job").enqueueAll([
      { relPath: "a.fits", ...FILE },
      { relPath: "b.fits", ...FILE, size: 7 },
    ]);
    assert.deepEqual(attempts, [0, 0]);
    assert.equal(files(ledger, "job").get("a.fits")?.state, "pending");
    assert.equal(files(ledger, "job").get("b.fits")?.size, 7);
    const damaged = [...Deno.readDirSync(stateDir)].filter((e) =>
      e.name.startsWith(`${LEDGER_FILE}.damaged-`)
    );
    assert.equal(damaged.length, 1, "the damaged ledger is kept aside");
  });
});

Deno.test("doneVersions: a ledger damaged while open is set aside at the read, which answers from the new one", async () => {
  await withLedger((ledger, stateDir) => {
    const rows = files(ledger, "job");
    rows.enqueueAll([{ relPath: "a.fits", ...FILE }]);
    markDone(rows, "a.fits");
    assert.deepEqual(rows.doneVersions(["a.fits"]), [{ size: FILE.size, mtimeMs: FILE.mtimeMs }]);
    damageOpenLedger(stateDir);
    // The rebuilt ledger knows nothing yet: the file is looked at again, not taken for done.
    assert.deepEqual(rows.doneVersions(["a.fits", "b.fits"]), [undefined, undefined]);
    assert.ok(
      [...Deno.readDirSync(stateDir)].some((e) => e.name.startsWith(`${LEDGER_FILE}.damaged-`)),
    );
  });
});

Deno.test("Ledger: the unfinished, pending and requeued rows are found through the state index, not among the done", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "cam");
    // Without statistics SQLite would read a job's whole history through the primary key
    // (every done file of a year) to find the few rows in another state.
    const used: string[] = [];
    const statement = ledger.statement.bind(ledger);
    ledger.statement = (sql: string) => {
      used.push(sql);
      return statement(sql);
    };
    table.unfinished();
    table.inState("pending");
    table.requeue(["transferring", "failed"]);
    ledger.statement = statement;
    const plans = used.map((sql) =>
      (ledger.statement(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
        .map((step) => step.detail).join("; ")
    );
    assert.equal(plans.length, 3, plans.join("\n"));
    for (const plan of plans) {
      assert.match(plan, /USING INDEX files_by_state \(job=\? AND target=\? AND state=\?\)/);
    }
  });
});

Deno.test("Ledger reports for `status` read through indexes: no scan of the whole history, no sort of it", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "cam");
    table.enqueue("waiting.fits", FILE);
    table.recordFailure("waiting.fits", {
      error: "e",
      attempts: 1,
      nextAttemptAt: 5,
      final: false,
    });
    const used: string[] = [];
    const statement = ledger.statement.bind(ledger);
    ledger.statement = (sql: string) => {
      used.push(sql);
      return statement(sql);
    };
    assert.equal(recentDone(ledger, 10).length, 0);
    assert.deepEqual(problemFiles(ledger, 10).map((r) => r.relPath), ["waiting.fits"]);
    assert.deepEqual(overdueFiles(ledger, 10, 10).map((r) => r.relPath), ["waiting.fits"]);
    ledger.statement = statement;
    for (const sql of used) {
      const plan =
        (ledger.statement(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
          .map((step) => step.detail).join("; ");
      assert.doesNotMatch(plan, /SCAN files(?! USING INDEX)|TEMP B-TREE/, `${sql}\n${plan}`);
    }
  });
});

Deno.test("a renamed job takes over its destination's rows of the name it had there, also where another job has that name now", async () => {
  await withLedger((ledger) => {
    const job = (name: string, folder: string) =>
      testJob(name, {
        watch_path: `/in/${folder}`,
        remote_base_path: `/data/${folder}`,
        transfer_method: "local",
      });
    const rows = (name: string, folder: string) =>
      new FileRows(ledger, name, `local:/data/${folder}`);
    const done = (name: string, folder: string) =>
      [...rows(name, folder).doneArrivedBy(Number.MAX_SAFE_INTEGER)].map((r) => r.relPath);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("cam", "a"), job("guide", "b")]), []);
    rows("cam", "a").markDone([{ relPath: "a.fits", ...FILE }]);
    DueHooks.of(rows("cam", "a")).add([{ relPath: "a.fits", ...FILE }]);
    new UnconfirmedCopies(rows("cam", "a")).add([{ relPath: "a.fits", destination: "x/a.fits" }]);
    rows("guide", "b").markDone([{ relPath: "g.fits", ...FILE }]);

    // Renamed: its rows, and the hooks it owes, go with it; the other job keeps its own.
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("north", "a"), job("guide", "b")]), [
      { from: "cam", to: "north", rows: 1 },
    ]);
    assert.deepEqual(done("north", "a"), ["a.fits"]);
    assert.deepEqual(DueHooks.of(rows("north", "a")).list().map((h) => h.relPath), ["a.fits"]);
    assert.deepEqual(DueHooks.of(rows("cam", "a")).list(), []);
    assert.deepEqual([...new UnconfirmedCopies(rows("north", "a")).all()], [[
      "a.fits",
      "x/a.fits",
    ]]);
    assert.equal(new UnconfirmedCopies(rows("cam", "a")).all().size, 0);
    assert.deepEqual(done("cam", "a"), []);
    assert.deepEqual(done("guide", "b"), ["g.fits"]);

    // Two jobs swap names: each takes the rows of its own folder and destination.
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("guide", "a"), job("north", "b")]), [
      { from: "north", to: "guide", rows: 1 },
      { from: "guide", to: "north", rows: 1 },
    ]);
    assert.deepEqual(done("guide", "a"), ["a.fits"]);
    assert.deepEqual(done("north", "b"), ["g.fits"]);

    // A job that has rows of its own for its destination keeps them and takes nothing.
    rows("east", "c").markDone([{ relPath: "e.fits", ...FILE }]);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("east", "c")]), []);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("west", "c")]), [
      { from: "east", to: "west", rows: 1 },
    ]);

    // Two names gone from one watch folder and destination (the second had rows of its own
    // there, so it took none): which one it was cannot be told, and neither is taken.
    rows("other", "d").markDone([{ relPath: "o.fits", ...FILE }]);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("other", "d")]), []);
    rows("two", "d").markDone([{ relPath: "t.fits", ...FILE }]);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("two", "d")]), []);
    assert.deepEqual(carryOverRenamedJobs(ledger, [job("three", "d")]), []);
    assert.deepEqual(done("three", "d"), []);
    assert.deepEqual(done("other", "d"), ["o.fits"]);
  });
});

Deno.test("DueHooks.list: the hooks owed in the order their files arrived, a batch's by name, one whose row is gone first", async () => {
  await withLedger((ledger) => {
    const rows = new FileRows(ledger, "cam", "local:/data");
    const due = DueHooks.of(rows);
    const arrive = (names: string[], at: number) => {
      const files = names.map((relPath) => ({ ...FILE, relPath, destination: relPath }));
      rows.markDone(files, at);
      due.add(files);
    };
    arrive(["z_first.fits"], 1_000);
    arrive(["m_second.fits", "b_second.fits"], 2_000);
    arrive(["a_third.fits"], 3_000);
    due.add([{ ...FILE, relPath: "y_no_row.fits" }]);
    assert.deepEqual(due.list().map((h) => h.relPath), [
      "y_no_row.fits",
      "z_first.fits",
      "b_second.fits",
      "m_second.fits",
      "a_third.fits",
    ]);
    assert.deepEqual(due.list(2).map((h) => h.relPath), ["y_no_row.fits", "z_first.fits"]);
  });
});

Deno.test("Ledger: a changed version recorded pending keeps the version whose copy arrived", async () => {
  await withLedger((ledger) => {
    const table = files(ledger, "job");
    table.enqueue("a.fits", FILE, 1000);
    markDone(table, "a.fits", 2000);
    table.enqueue("a.fits", { ...FILE, size: 150, mtimeMs: FILE.mtimeMs + 60_000 }, 3000);
    const row = table.get("a.fits")!;
    assert.deepEqual([row.state, row.size, row.transferredAt], ["pending", 150, 2000]);
    assert.deepEqual([row.sentSize, row.sentMtimeMs], [100, FILE.mtimeMs]);
  });
});
