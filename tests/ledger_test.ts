/**
 * The ledger on a real SQLite file: state changes, attempt counting, the
 * read-only view, durability across close and reopen, and hostile paths.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Ledger, LEDGER_FILE } from "../src/ledger/ledger.ts";

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

Deno.test("Ledger: enqueue → transferring → done", async () => {
  await withLedger((ledger) => {
    assert.equal(ledger.get("job", "a.fits"), undefined);
    ledger.enqueue("job", "a.fits", FILE, 1000);
    let row = ledger.get("job", "a.fits")!;
    assert.deepEqual(row, {
      job: "job",
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
    });
    ledger.markTransferring("job", ["a.fits"], 2000);
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "transferring");
    assert.equal(row.updatedAt, 2000);
    ledger.markDone("job", "a.fits", 3000);
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "done");
    assert.equal(row.transferredAt, 3000);
    assert.equal(row.updatedAt, 3000);
    assert.equal(row.createdAt, 1000);
    assert.deepEqual(ledger.unfinished("job"), []);
    assert.deepEqual(
      ledger.doneIndex("job"),
      new Map([["a.fits", { size: 100, mtimeMs: 1_700_000_000_123 }]]),
    );
  });
});

Deno.test("Ledger: recordFailure retries, then fails; markDone clears the error", async () => {
  await withLedger((ledger) => {
    ledger.enqueue("job", "a.fits", FILE);
    ledger.markTransferring("job", ["a.fits"]);
    ledger.recordFailure("job", "a.fits", {
      error: "Cannot send: timeout",
      attempts: 1,
      nextAttemptAt: 5000,
      final: false,
    }, 4000);
    let row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 1);
    assert.equal(row.nextAttemptAt, 5000);
    assert.equal(row.lastError, "Cannot send: timeout");
    assert.equal(row.updatedAt, 4000);
    assert.deepEqual(ledger.problems(10).map((r) => r.relPath), ["a.fits"]);

    ledger.recordFailure("job", "a.fits", {
      error: "Cannot send: disk full",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "failed");
    assert.equal(row.attempts, 4);
    assert.equal(row.lastError, "Cannot send: disk full");
    assert.deepEqual(ledger.unfinished("job").map((r) => r.state), ["failed"]);

    ledger.markDone("job", "a.fits");
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "done");
    assert.equal(row.attempts, 0);
    assert.equal(row.nextAttemptAt, 0);
    assert.equal(row.lastError, null);
    assert.deepEqual(ledger.problems(10), []);
  });
});

Deno.test("Ledger.enqueue: a changed file starts over, an unchanged one keeps its attempts", async () => {
  await withLedger((ledger) => {
    const fail = (attempts: number, final = false) =>
      ledger.recordFailure("job", "a.fits", {
        error: "boom",
        attempts,
        nextAttemptAt: 99_999,
        final,
      });
    ledger.enqueue("job", "a.fits", FILE, 1000);
    fail(2);
    // Unchanged pending: keeps the attempts, may start now.
    ledger.enqueue("job", "a.fits", FILE, 2000);
    let row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 2);
    assert.equal(row.nextAttemptAt, 0);
    assert.equal(row.createdAt, 1000, "created_at is kept");
    assert.equal(row.updatedAt, 2000);

    // Unchanged failed: back to pending, attempts kept.
    fail(3, true);
    ledger.enqueue("job", "a.fits", FILE);
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 3);

    assert.equal(row.lastError, "boom", "an unchanged file keeps its last error");

    // New size: starts over, the old error no longer applies; destination follows.
    ledger.enqueue("job", "a.fits", { ...FILE, size: 101, destination: "20240316/a.fits" });
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.attempts, 0);
    assert.equal(row.lastError, null);
    assert.deepEqual(ledger.problems(10), []);
    assert.equal(row.size, 101);
    assert.equal(row.destination, "20240316/a.fits");

    // New mtime only: starts over too.
    fail(2);
    ledger.enqueue("job", "a.fits", { ...FILE, size: 101, mtimeMs: FILE.mtimeMs + 1 });
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.attempts, 0);
    assert.equal(row.mtimeMs, FILE.mtimeMs + 1);

    // A done file seen again unchanged is pending again with no attempts.
    ledger.markDone("job", "a.fits");
    ledger.enqueue("job", "a.fits", { ...FILE, size: 101, mtimeMs: FILE.mtimeMs + 1 });
    row = ledger.get("job", "a.fits")!;
    assert.equal(row.state, "pending");
    assert.equal(row.attempts, 0);
  });
});

Deno.test("Ledger.requeue: puts transferring and failed files back to pending", async () => {
  await withLedger((ledger) => {
    for (const name of ["p.fits", "t.fits", "f.fits", "d.fits"]) {
      ledger.enqueue("job", name, { ...FILE, destination: `n/${name}` });
    }
    ledger.enqueue("other", "t.fits", FILE);
    ledger.markTransferring("job", ["t.fits"]);
    ledger.markTransferring("other", ["t.fits"]);
    ledger.recordFailure("job", "p.fits", {
      error: "e",
      attempts: 1,
      nextAttemptAt: 123,
      final: false,
    });
    ledger.recordFailure("job", "f.fits", {
      error: "e",
      attempts: 4,
      nextAttemptAt: 0,
      final: true,
    });
    ledger.markDone("job", "d.fits");

    assert.equal(ledger.requeue("job", []), 0);
    assert.equal(ledger.requeue("job", ["failed"], 7000), 1);
    let f = ledger.get("job", "f.fits")!;
    assert.equal(f.state, "pending");
    assert.equal(f.attempts, 0);
    assert.equal(f.updatedAt, 7000);
    assert.equal(ledger.get("job", "t.fits")!.state, "transferring");

    assert.equal(ledger.requeue("job", ["transferring", "failed"]), 1);
    assert.equal(ledger.get("job", "t.fits")!.state, "pending");
    assert.equal(ledger.get("other", "t.fits")!.state, "transferring", "other jobs untouched");
    assert.equal(ledger.get("job", "d.fits")!.state, "done", "done files untouched");
    const p = ledger.get("job", "p.fits")!;
    assert.equal(p.attempts, 1, "plain pending files untouched");
    assert.equal(p.nextAttemptAt, 123);
    f = ledger.get("job", "f.fits")!;
    assert.equal(f.state, "pending");

    assert.deepEqual(
      ledger.unfinished("job").map((r) => r.relPath).sort(),
      ["f.fits", "p.fits", "t.fits"],
    );
  });
});

Deno.test("Ledger: remove, counts, recentDone and problems", async () => {
  await withLedger((ledger) => {
    for (let i = 0; i < 5; i++) ledger.enqueue("a", `${i}.fits`, FILE);
    ledger.enqueue("b", "x.fits", FILE);
    ledger.enqueue("b", "y.fits", FILE);
    ledger.markDone("a", "0.fits", 1000);
    ledger.markDone("a", "1.fits", 3000);
    ledger.markDone("b", "x.fits", 2000);
    ledger.recordFailure("a", "2.fits", {
      error: "e2",
      attempts: 1,
      nextAttemptAt: 1,
      final: false,
    }, 10);
    ledger.recordFailure(
      "a",
      "3.fits",
      { error: "e3", attempts: 4, nextAttemptAt: 0, final: true },
      20,
    );
    ledger.markTransferring("a", ["4.fits"]);

    assert.deepEqual(ledger.counts(), [
      { job: "a", state: "done", count: 2 },
      { job: "a", state: "failed", count: 1 },
      { job: "a", state: "pending", count: 1 },
      { job: "a", state: "transferring", count: 1 },
      { job: "b", state: "done", count: 1 },
      { job: "b", state: "pending", count: 1 },
    ]);
    assert.deepEqual(
      ledger.recentDone(10).map((r) => `${r.job}/${r.relPath}`),
      ["a/1.fits", "b/x.fits", "a/0.fits"],
    );
    assert.deepEqual(ledger.recentDone(1).map((r) => r.relPath), ["1.fits"]);
    // Failed ones and pending ones with an error, newest first; not plain pending.
    assert.deepEqual(ledger.problems(10).map((r) => r.relPath), ["3.fits", "2.fits"]);
    assert.deepEqual(ledger.problems(1).map((r) => r.lastError), ["e3"]);
    assert.deepEqual([...ledger.doneIndex("a").keys()].sort(), ["0.fits", "1.fits"]);
    assert.deepEqual([...ledger.doneIndex("b").keys()], ["x.fits"]);
    assert.equal(ledger.doneIndex("nobody").size, 0);

    ledger.remove("a", "3.fits");
    ledger.remove("a", "not there.fits");
    assert.equal(ledger.get("a", "3.fits"), undefined);
    assert.deepEqual(ledger.problems(10).map((r) => r.relPath), ["2.fits"]);
    assert.equal(ledger.get("b", "y.fits")!.state, "pending", "remove touches one row only");
  });
});

Deno.test("Ledger.transaction: commits on success, rolls back on a throw", async () => {
  await withLedger((ledger) => {
    ledger.transaction(() => {
      ledger.enqueue("job", "a.fits", FILE);
      ledger.enqueue("job", "b.fits", FILE);
    });
    assert.throws(
      () =>
        ledger.transaction(() => {
          ledger.enqueue("job", "c.fits", FILE);
          throw new Error("abort this");
        }),
      /abort this/,
    );
    assert.deepEqual(ledger.unfinished("job").map((r) => r.relPath).sort(), ["a.fits", "b.fits"]);
    // The ledger is still usable after a rollback.
    ledger.enqueue("job", "d.fits", FILE);
    assert.equal(ledger.unfinished("job").length, 3);
  });
});

Deno.test("Ledger: data survives close and reopen", async () => {
  await withLedger((first, stateDir) => {
    for (let i = 0; i < 50; i++) first.enqueue("job", `n/${i}.fits`, { ...FILE, size: i });
    first.markTransferring("job", ["n/1.fits"]);
    first.markDone("job", "n/2.fits", 4242);
    first.recordFailure("job", "n/3.fits", {
      error: "Cannot send: x",
      attempts: 2,
      nextAttemptAt: 9,
      final: true,
    });
    const before = [...first.unfinished("job"), first.get("job", "n/2.fits")!]
      .sort((a, b) => a.relPath.localeCompare(b.relPath));
    first.close();

    const again = Ledger.open(stateDir);
    try {
      const after = [...again.unfinished("job"), again.get("job", "n/2.fits")!]
        .sort((a, b) => a.relPath.localeCompare(b.relPath));
      assert.deepEqual(after, before);
      assert.equal(again.get("job", "n/2.fits")!.transferredAt, 4242);
      assert.equal(again.get("job", "n/3.fits")!.lastError, "Cannot send: x");
    } finally {
      again.close();
    }
  });
});

Deno.test("Ledger: committed writes are on disk while the ledger is still open", async () => {
  await withLedger((ledger) => {
    ledger.enqueue("job", "a.fits", FILE);
    ledger.markDone("job", "a.fits", 77);
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
    writer.enqueue("job", "a.fits", FILE);
    writer.markDone("job", "a.fits", 5);
    // Readable while the writer is open, and after it closed.
    const whileOpen = Ledger.open(stateDir, { readOnly: true })!;
    try {
      assert.deepEqual(whileOpen.recentDone(5).map((r) => r.relPath), ["a.fits"]);
      assert.throws(() => whileOpen.enqueue("job", "b.fits", FILE), /readonly|read-only/i);
    } finally {
      whileOpen.close();
    }
    writer.close();
    const afterClose = Ledger.open(stateDir, { readOnly: true })!;
    try {
      assert.deepEqual(afterClose.counts(), [{ job: "job", state: "done", count: 1 }]);
    } finally {
      afterClose.close();
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
      ledger.enqueue("job", rel, { ...FILE, destination: `20240315/${rel}` });
    }
    ledger.recordFailure("job", names[2], {
      error: "Cannot send '\"; $(x)\nsecond line",
      attempts: 1,
      nextAttemptAt: 0,
      final: true,
    });
    ledger.close();
    const again = Ledger.open(stateDir);
    try {
      const rows = again.unfinished("job");
      assert.deepEqual(rows.map((r) => r.relPath).sort(), [...names].sort());
      for (const rel of names) {
        assert.equal(again.get("job", rel)?.destination, `20240315/${rel}`, JSON.stringify(rel));
      }
      // NFC and NFD spellings are different files.
      assert.notEqual(again.get("job", "caf\u00e9.fits"), undefined);
      assert.notEqual(again.get("job", "cafe\u0301.fits"), undefined);
      assert.equal(rows.length, names.length);
      assert.equal(again.get("job", names[2])!.lastError, "Cannot send '\"; $(x)\nsecond line");
      assert.ok(again.counts().length > 0, "the table is still there");
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
    assert.equal(ledger.enqueue("j", "a.fits", file), 0);
    ledger.recordFailure("j", "a.fits", {
      error: "x",
      attempts: 2,
      nextAttemptAt: 0,
      final: false,
    });
    assert.equal(ledger.enqueue("j", "a.fits", file), 2);
    assert.equal(ledger.enqueue("j", "a.fits", { ...file, size: 11 }), 0);
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Ledger.overdue lists pending retries due before a time; markDue makes them due now; pending", async () => {
  await withLedger((ledger) => {
    const fail = (job: string, rel: string, nextAttemptAt: number, final = false) => {
      ledger.enqueue(job, rel, FILE);
      ledger.recordFailure(job, rel, { error: "e", attempts: 1, nextAttemptAt, final });
    };
    fail("a", "late.fits", 1000);
    fail("a", "later.fits", 500);
    fail("a", "future.fits", 9000);
    fail("a", "given-up.fits", 0, true);
    fail("b", "other.fits", 700);
    ledger.enqueue("a", "fresh.fits", FILE);
    assert.deepEqual(
      ledger.overdue(5000, 10).map((r) => `${r.job}/${r.relPath}`),
      ["a/later.fits", "b/other.fits", "a/late.fits"],
      "oldest first, every job, only pending rows with a retry time",
    );
    assert.deepEqual(ledger.overdue(5000, 1).map((r) => r.relPath), ["later.fits"]);
    assert.deepEqual(ledger.overdue(5000, 10, "b").map((r) => r.relPath), ["other.fits"]);
    ledger.markDue("a", ["late.fits", "given-up.fits", "missing.fits"]);
    assert.deepEqual(ledger.overdue(5000, 10, "a").map((r) => r.relPath), ["later.fits"]);
    assert.equal(ledger.get("a", "late.fits")?.nextAttemptAt, 0);
    assert.equal(ledger.get("a", "late.fits")?.attempts, 1, "attempts kept");
    assert.equal(ledger.get("a", "given-up.fits")?.state, "failed", "only pending rows change");
    assert.deepEqual(
      ledger.pending("a").map((r) => r.relPath).sort(),
      ["fresh.fits", "future.fits", "late.fits", "later.fits"],
    );
  });
});
