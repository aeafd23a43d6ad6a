/**
 * The take-over of rows recorded under another spelling of a destination
 * (`carryOverSpellings`), on a real SQLite file: every job name's rows move, with the job names
 * recorded for them, so a job both renamed and respelled still takes over its rows; other
 * folders, servers and destinations no job sends to stay as they are; the cost does not grow
 * with the number of files (the same statements, each through an index).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { carryOverSpellings, ledgerTarget } from "../../../src/ledger/destination_spellings.ts";
import { carryOverRenamedJobs, fromWatchFolder } from "../../../src/ledger/job_names.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { UnconfirmedCopies } from "../../../src/ledger/unconfirmed_copies.ts";
import { testJob } from "../../helpers/jobs.ts";

async function withLedger(fn: (ledger: Ledger) => void) {
  const root = await Deno.makeTempDir({ prefix: "itx-spellings-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    fn(ledger);
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
}

const FILE = { size: 100, mtimeMs: 1_700_000_000_123, destination: "20240315/a.fits" };

/** A local job `name` from `/in/a` to `base`. */
function job(name: string, base: string) {
  return testJob(name, { watch_path: "/in/a", remote_base_path: base, transfer_method: "local" });
}

/** Every row as `job target rel_path state`. */
function rows(ledger: Ledger): string[] {
  return (ledger.statement("SELECT * FROM files ORDER BY job, target, rel_path").all() as Array<
    Record<string, string>
  >).map((r) => `${r.job} ${r.target} ${r.rel_path} ${r.state}`);
}

Deno.test("spellings: a job renamed and respelled takes over its rows; other folders and servers stay", async () => {
  await withLedger((ledger) => {
    // What an older version recorded: job cam sending to /data/a/ (its name recorded there).
    new FileRows(ledger, "cam", "local:/data/a/").markDone([{ relPath: "a.fits", ...FILE }]);
    ledger.setMeta("job_names\nlocal:/data/a/\n/in/a", JSON.stringify(["cam"]));
    new FileRows(ledger, "cam", "local:/data/ab/").markDone([{ relPath: "b.fits", ...FILE }]);
    new FileRows(ledger, "cam", "local:/data/a/b").markDone([{ relPath: "c.fits", ...FILE }]);
    new FileRows(ledger, "cam", "ssh://obs@h/data/a/").markDone([{ relPath: "d.fits", ...FILE }]);
    // e.fits: its copy in place, not confirmed on disk (it moves with its row, and the job's name).
    const old = new FileRows(ledger, "cam", "local:/data/a/");
    old.enqueue("e.fits", FILE);
    new UnconfirmedCopies(old).add([{ relPath: "e.fits", destination: "20240315/e.fits" }]);

    const jobs = [job("north", "/data//a")];
    assert.deepEqual(carryOverSpellings(ledger, jobs), [
      { job: "cam", from: "local:/data/a/", to: "local:/data/a", rows: 2 },
    ]);
    assert.equal(ledger.meta("job_names\nlocal:/data/a/\n/in/a"), null);
    assert.deepEqual(carryOverRenamedJobs(ledger, jobs), [{ from: "cam", to: "north", rows: 2 }]);
    assert.deepEqual(rows(ledger), [
      "cam local:/data/a/b c.fits done",
      "cam local:/data/ab/ b.fits done",
      "cam ssh://obs@h/data/a/ d.fits done",
      "north local:/data/a a.fits done",
      "north local:/data/a e.fits pending",
    ]);
    assert.deepEqual(
      ledger.statement("SELECT job, target, rel_path FROM copies_unconfirmed").all()
        .map((r) => Object.values(r).join(" ")),
      ["north local:/data/a e.fits"],
    );
    // Nothing more to take over at the next start.
    assert.deepEqual(carryOverSpellings(ledger, jobs), []);
  });
});

Deno.test("spellings: where two spellings hold one file, the done row stays, else the newer; every row is kept once", async () => {
  await withLedger((ledger) => {
    const [plain, slash, twice] = ["local:/d", "local:/d/", "local:/d//"].map((target) =>
      new FileRows(ledger, "cam", target)
    );
    slash.markDone([{ relPath: "done-older.fits", ...FILE }], 1);
    twice.enqueue("done-older.fits", FILE, 5);
    twice.markDone([{ relPath: "newer-done.fits", ...FILE, size: 1 }], 1);
    slash.markDone([{ relPath: "newer-done.fits", ...FILE, size: 2 }], 3);
    slash.enqueue("newer-pending.fits", { ...FILE, size: 1 }, 1);
    twice.enqueue("newer-pending.fits", { ...FILE, size: 2 }, 4);
    twice.markDone([{ relPath: "only.fits", ...FILE }], 1);
    plain.enqueue("plain.fits", FILE, 1);
    slash.markDone([{ relPath: "plain.fits", ...FILE }], 9);
    const moved = carryOverSpellings(ledger, [job("cam", "/d")]);
    assert.deepEqual(moved.map((m) => m.from).sort(), ["local:/d/", "local:/d//"]);
    const sizes = (ledger.statement("SELECT rel_path, size, state FROM files ORDER BY rel_path")
      .all() as Array<Record<string, string | number>>).map((r) =>
        `${r.rel_path} ${r.size} ${r.state}`
      );
    assert.deepEqual(sizes, [
      "done-older.fits 100 done",
      "newer-done.fits 2 done",
      "newer-pending.fits 2 pending",
      "only.fits 100 done",
      "plain.fits 100 done",
    ]);
    assert.deepEqual(
      [...new Set(rows(ledger).map((row) => row.split(" ")[1]))],
      ["local:/d"],
    );
  });
});

Deno.test("spellings: the take-over costs the same statements with ten files as with thousands, each through an index", async () => {
  const statements = async (files: number) => {
    let used: string[] = [];
    await withLedger((ledger) => {
      for (const [at, target] of ["local:/d/", "local:/d//", "local:/e/"].entries()) {
        new FileRows(ledger, "cam", target).markDone(
          Array.from({ length: files }, (_, i) => ({ ...FILE, relPath: `f${i}.fits` })),
          at,
        );
      }
      const statement = ledger.statement.bind(ledger);
      ledger.statement = (sql: string) => {
        used.push(sql);
        return statement(sql);
      };
      const moved = carryOverSpellings(ledger, [job("cam", "/d")]);
      ledger.statement = statement;
      // The second spelling's rows are newer: they replace the first's.
      assert.deepEqual(moved.map((m) => m.rows), [files, files]);
      assert.equal(new FileRows(ledger, "cam", "local:/d").doneArrivedBy(1).length, files);
      for (const sql of used) {
        const plan =
          (ledger.statement(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>)
            .map((step) => step.detail).join("; ");
        assert.doesNotMatch(plan, /SCAN files(?! USING)|TEMP B-TREE/, `${sql}\n${plan}`);
      }
      used = used.map((sql) => sql.replace(/\s+/g, " "));
    });
    return used;
  };
  assert.deepEqual(await statements(10), await statements(3000));
});

Deno.test("spellings: before the take-over, status and dry runs read the rows of another spelling, the one as written first", async () => {
  await withLedger((ledger) => {
    const rows = (target: string) => new FileRows(ledger, "cam", target);
    assert.equal(ledgerTarget(ledger, job("cam", "/d"), "cam"), "local:/d");
    rows("local:/d/").markDone([{ relPath: "a.fits", ...FILE }]);
    rows("local:/e/").markDone([{ relPath: "e.fits", ...FILE }]);
    // The config written as this version spells it, the rows under an older spelling.
    assert.equal(ledgerTarget(ledger, job("cam", "/d"), "cam"), "local:/d/");
    assert.equal(ledgerTarget(ledger, job("other", "/d"), "other"), "local:/d");
    rows("local:/d//").markDone([{ relPath: "b.fits", ...FILE }]);
    assert.equal(ledgerTarget(ledger, job("cam", "/d//"), "cam"), "local:/d//");
    carryOverSpellings(ledger, [job("cam", "/d//")]);
    assert.equal(ledgerTarget(ledger, job("cam", "/d//"), "cam"), "local:/d");
    assert.equal(ledgerTarget(ledger, job("cam", "/e"), "cam"), "local:/e/");
  });
});

Deno.test("watch folder: another spelling of the same folder is no change; another folder is one, after every arrival recorded even with the clock behind them", async () => {
  await withLedger((ledger) => {
    const at = (watch: string) =>
      testJob("cam", { watch_path: watch, remote_base_path: "/data/a", transfer_method: "local" });
    const files = new FileRows(ledger, "cam", "local:/data/a");
    carryOverRenamedJobs(ledger, [at("/in/cam")]);
    files.markDone([{ relPath: "a.fits", ...FILE }]);
    const otherFolder = () => fromWatchFolder(files, files.get("a.fits"))?.otherFolder === true;
    // Respelled (a slash at the end, doubled, a "." in it): the same folder, its copies its own.
    for (const spelling of ["/in/cam/", "/in//cam", "/in/./cam"]) {
      carryOverRenamedJobs(ledger, [at(spelling)]);
      assert.equal(otherFolder(), false, spelling);
    }
    // The arrival was recorded a day ahead of the clock now (a clock set back since).
    ledger.write(() =>
      ledger.statement("UPDATE files SET transferred_at = ?").run(Date.now() + 86_400_000)
    );
    carryOverRenamedJobs(ledger, [at("/in/other")]);
    assert.equal(otherFolder(), true, "a copy from the folder before");
  });
});
