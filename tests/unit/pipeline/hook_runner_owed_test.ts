/**
 * The `on_transfer` hooks a job owes (`ledger/due_hooks.ts`) through the real
 * HookRunner and a real hook script: the ledger's side is a stand-in that
 * takes (or cannot take now) the start of each, or a real ledger's
 * `hooks_due` table; and through a job's runner that stops.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { HookRunner, type OwedHooks } from "../../../src/pipeline/hooks.ts";
import type { HookFacts } from "../../../src/pipeline/hook_facts.ts";
import { Ledger, LEDGER_FILE, LedgerWriteError } from "../../../src/ledger/ledger.ts";
import { DueHooks } from "../../../src/ledger/due_hooks.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";
import { localTestJob, testJob } from "../../helpers/jobs.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { countingHook } from "../../helpers/sandbox.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

/** The version of every file here. */
const VERSION = { size: 10, mtimeMs: 1_710_532_800_000 };

function facts(root: string, relPath: string): HookFacts {
  return {
    source: join(root, "watch", relPath),
    relPath,
    destination: join(root, "dest", "20240315", relPath),
    destinationPath: `20240315/${relPath}`,
    ...VERSION,
  };
}

Deno.test("hooks waiting for the ledger when a reload replaces the job run once it can be written, not only at the next start", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-reload-" });
  const { hook, hookLog: ran } = await countingHook(root);
  const keys = {
    watch_path: join(root, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    on_transfer: [hook],
    max_concurrent_hooks: 1,
  };
  // The ledger cannot be written: the hooks wait (owed).
  let writable = false;
  const started: OwedHooks = {
    started: () => writable ? "taken" : "not now",
    list: () => [],
    count: () => 0,
    notStarted: () => {},
  };
  const before = new HookRunner(testJob("test", keys), undefined, started);
  let after: HookRunner | undefined;
  try {
    before.arrived(facts(root, "a.fits"));
    before.arrived(facts(root, "b.fits"));
    // A reload that changes the job: the waiting hooks go on in the job's next runner.
    const finishing = before.close(true, true);
    after = new HookRunner(
      testJob("test", { ...keys, hook_timeout_seconds: 90 }),
      before,
      started,
    );
    writable = true;
    const lines = async () =>
      (await Deno.readTextFile(ran).catch(() => "")).split("\n").filter((l) => l !== "");
    // Counted once each hook has ended (after it wrote its line).
    await waitFor(() => after!.stats.succeeded === 2, 30_000, "the waiting hooks");
    assert.deepEqual((await lines()).sort(), ["a.fits", "b.fits"]);
    assert.deepEqual(after.stats, { succeeded: 2, failed: 0, dropped: 0 });
    await after.close(true);
    before.abort();
    await finishing;
  } finally {
    after?.abort();
    before.abort();
    await Deno.remove(root, { recursive: true });
  }
});

/** A real ledger's `hooks_due` for the job `test`, as the runner sees it (as `job_extras.ts` does). */
function ledgerOwed(root: string, ledger: Ledger): { due: DueHooks; owed: OwedHooks } {
  const due = new DueHooks(ledger, "test", "local:/dest");
  return {
    due,
    owed: {
      started: (f) => due.started(f),
      list: (limit) => due.list(limit).map((hook) => facts(root, hook.relPath)),
      count: () => due.count(),
      notStarted: (f) =>
        due.add([{ relPath: f.relPath, destination: f.destinationPath, ...VERSION }], true),
    },
  };
}

/**
 * A hook that notes the file as it starts (`started`), waits until `gate` exists (`open`), then
 * notes the file again (`runs`: what it noted then).
 */
async function gatedHook(root: string) {
  const gate = join(root, "gate");
  const began = join(root, "started.log");
  const ran = join(root, "ran.log");
  const hook = join(root, "gated.sh");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\nprintf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${began}'\n` +
      `while [ ! -e '${gate}' ]; do sleep 0.05; done\n` +
      `printf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${ran}'\n`,
  );
  await Deno.chmod(hook, 0o755);
  const noted = async (path: string) =>
    (await Deno.readTextFile(path).catch(() => "")).split("\n").filter((l) => l !== "").sort();
  return {
    hook,
    open: () => Deno.writeTextFile(gate, ""),
    runs: () => noted(ran),
    started: () => noted(began),
  };
}

/** A runner of {@linkcode gatedHook}, `atOnce` at a time, 4 waiting. */
async function gatedRunner(root: string, owed: OwedHooks, atOnce = 1) {
  const { hook, open, runs, started } = await gatedHook(root);
  const job = testJob("test", {
    watch_path: join(root, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    on_transfer: [hook],
    max_concurrent_hooks: atOnce,
  });
  const runner = new HookRunner(job, undefined, owed, 4);
  return { runner, open, runs, started };
}

const NAMES = Array.from({ length: 12 }, (_, i) => `f${String(i).padStart(2, "0")}.fits`);

Deno.test("hooks beyond the queue's room wait in the ledger and all run in this run, each once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-" });
  const ledger = Ledger.open(join(root, "state"));
  const { due, owed } = ledgerOwed(root, ledger);
  const { runner, open, runs } = await gatedRunner(root, owed);
  try {
    // Twelve arrivals while the first hook is held: one runs, four wait, seven have no room.
    for (const name of NAMES) {
      due.add([{
        relPath: name,
        destination: `20240315/${name}`,
        size: 10,
        mtimeMs: 1_710_532_800_000,
      }]);
      runner.arrived(facts(root, name));
    }
    assert.equal(runner.stats.dropped, 0);
    assert.equal(due.count(), 11, "the one started is no longer owed");
    await open();
    await waitFor(() => runner.stats.succeeded === NAMES.length, 60_000, "every hook");
    assert.deepEqual(await runs(), NAMES);
    assert.equal(due.count(), 0);
    assert.deepEqual(runner.stats, { succeeded: 12, failed: 0, dropped: 0 });
    await runner.close(true);
  } finally {
    runner.abort();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the hooks the last run owed all run, more than the queue holds; a stop keeps the rest owed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-start-" });
  const ledger = Ledger.open(join(root, "state"));
  const { due, owed } = ledgerOwed(root, ledger);
  try {
    due.add(
      NAMES.map((name) => ({
        relPath: name,
        destination: `x/${name}`,
        size: 10,
        mtimeMs: 1_710_532_800_000,
      })),
    );
    // A start whose first hook is held, then a stop: only the one that started is no longer owed.
    const first = await gatedRunner(root, owed);
    const logs = await captureLogs();
    try {
      first.runner.runOwed();
      // Its program started: a stop before that would keep it owed.
      await waitFor(async () => (await first.started()).length === 1, 30_000, "the first hook");
      assert.equal(due.count(), 11);
      first.runner.abort();
      await first.runner.close(false);
      // The stop's tally counts those the ledger still owes, also the ones it did not name.
      assert.equal(logs.count("warning", "{owed} on_transfer hook(s) owed in all"), 1);
      assert.equal(logs.records.find((r) => r.properties.owed !== undefined)?.properties.owed, 11);
    } finally {
      await logs.stop();
    }
    assert.equal(due.count(), 11);
    // The next start runs every one left.
    const next = await gatedRunner(root, owed);
    await next.open();
    next.runner.runOwed();
    await waitFor(() => next.runner.stats.succeeded === 11, 60_000, "the hooks owed");
    assert.deepEqual(await next.runs(), NAMES.slice(1));
    assert.equal(due.count(), 0);
    await next.runner.close(true);
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a batch recorded while hooks wait in the ledger runs each of its hooks once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-batch-" });
  const ledger = Ledger.open(join(root, "state"));
  const { due, owed } = ledgerOwed(root, ledger);
  const owe = (names: string[]) =>
    due.add(names.map((name) => ({ relPath: name, destination: `x/${name}`, ...VERSION })));
  // Three at a time: a hook taken from the ledger starts at once.
  const { runner, open, runs } = await gatedRunner(root, owed, 3);
  try {
    owe(["r0.fits", "r1.fits", "r2.fits", "r3.fits"]);
    runner.runOwed();
    await waitFor(() => due.count() === 1, 30_000, "three hooks of the last run started");
    // A batch of two recorded in one go, then announced one by one (as the sender does).
    owe(["a1.fits", "a2.fits"]);
    runner.arrived(facts(root, "a1.fits"));
    runner.arrived(facts(root, "a2.fits"));
    await open();
    await waitFor(() => runner.stats.succeeded >= 6, 60_000, "every hook");
    await runner.close(true);
    assert.deepEqual(await runs(), [
      "a1.fits",
      "a2.fits",
      "r0.fits",
      "r1.fits",
      "r2.fits",
      "r3.fits",
    ]);
    assert.deepEqual(runner.stats, { succeeded: 6, failed: 0, dropped: 0 });
    assert.equal(due.count(), 0);
  } finally {
    runner.abort();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a hook whose start was taken as the daemon stops, before its program started, is owed again for the next start", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-taken-" });
  const ledger = Ledger.open(join(root, "state"));
  const { due, owed } = ledgerOwed(root, ledger);
  const { runner, open, runs } = await gatedRunner(root, owed);
  const logs = await captureLogs();
  try {
    due.add([{ relPath: "a.fits", destination: "20240315/a.fits", ...VERSION }]);
    runner.arrived(facts(root, "a.fits"));
    assert.equal(due.count(), 0, "its start taken");
    // The stop, in the same task: its program has not started yet.
    await runner.close(false);
    // Before, it was lost: no longer owed, and never run.
    assert.equal(due.count(), 1, "owed again");
    const dropped = logs.records.filter((r) =>
      String(r.rawMessage).includes("not run: {reason}; it runs at the next start")
    );
    assert.deepEqual(dropped.map((r) => r.properties.reason), ["stopping"]);
    assert.deepEqual(runner.stats, { succeeded: 0, failed: 0, dropped: 1 });
    await open();
    assert.deepEqual(await runs(), []);
  } finally {
    await logs.stop();
    runner.abort();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a hook whose start was taken as the daemon stops, before its program started, runs all the same where the ledger cannot keep it owed (its disk full)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-full-" });
  const { hook, runs } = await countingHook(root);
  const job = testJob("test", {
    watch_path: join(root, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    on_transfer: [hook],
  });
  const keptOwed: string[] = [];
  // The ledger takes each start, then can no longer be written (its disk filled meanwhile).
  const owed: OwedHooks = {
    started: () => "taken",
    list: () => [],
    count: () => 0,
    notStarted: (f) => {
      keptOwed.push(f.relPath);
      throw new LedgerWriteError("Cannot write the ledger: database or disk is full");
    },
  };
  const runner = new HookRunner(job, undefined, owed);
  const logs = await captureLogs();
  try {
    runner.arrived(facts(root, "a.fits"));
    // The stop, in the same task: its program has not started yet.
    await runner.close(false);
    assert.deepEqual(keptOwed, ["a.fits"], "asked to keep it owed");
    // Before, it was lost: taken from the ledger, never run, and not owed any more.
    assert.deepEqual(await runs(), ["a.fits"]);
    assert.deepEqual(runner.stats, { succeeded: 1, failed: 0, dropped: 0 });
    const said = logs.records.filter((r) =>
      String(r.rawMessage).includes("runs as the daemon stops")
    );
    assert.equal(said.length, 1);
  } finally {
    await logs.stop();
    runner.abort();
    await Deno.remove(root, { recursive: true });
  }
});

/** The local transport, which takes the ledger's write lock (`lock`) as it is handed a batch. */
class LockingTransport extends LocalTransport {
  lock: (() => void) | undefined;
  override send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    this.lock?.();
    return super.send(items, signal);
  }
}

Deno.test("an arrival the ledger could record only as the daemon stops owes its hook to the next start: not started there and killed at once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-hook-owed-stop-" });
  try {
    const stateDir = join(root, "state");
    await Deno.mkdir(join(root, "watch"));
    const { hook, open, runs } = await gatedHook(root);
    const job = localTestJob(root, { on_transfer: [hook] });
    // Probed for a minute: only the stop finds the ledger writable again.
    const ledger = Ledger.open(stateDir, { probeEveryMs: 60_000 });
    const transport = new LockingTransport(job);
    const runner = new JobRunner(job, ledger, transport, { once: false, closedForMs: 100 });
    const other = new DatabaseSync(join(stateDir, LEDGER_FILE));
    const bytes = randomBytes(100);
    const logs = await captureLogs();
    try {
      await runner.start();
      // Another holds the ledger's write lock while the file is sent: its arrival cannot be
      // recorded and waits; then the lock goes, and the daemon stops.
      transport.lock = () => {
        transport.lock = undefined;
        other.exec("BEGIN IMMEDIATE");
      };
      await Deno.writeFile(join(job.watch_path, "a.fits"), bytes);
      await waitFor(() => ledger.problem !== null, 30_000, "the arrival unrecorded");
      other.exec("ROLLBACK");
    } finally {
      other.close();
      await runner.stop();
      await logs.stop();
    }
    try {
      assert.equal(FileRows.of(ledger, job).get("a.fits")?.state, "done");
      // Before, its hook was taken from the ledger as the stop recorded the arrival, then killed.
      assert.equal(DueHooks.of(FileRows.of(ledger, job)).count(), 1, "its hook is owed");
    } finally {
      ledger.close();
    }
    const dropped = logs.records.filter((r) =>
      String(r.rawMessage).includes("not run: {reason}; it runs at the next start")
    );
    assert.deepEqual(dropped.map((r) => r.properties.reason), ["stopping"]);
    const tally = logs.records.find((r) => r.properties.dropped !== undefined);
    assert.equal(tally?.properties.dropped, 1, "counted in the stop's tally");
    // The next start runs it, once.
    await open();
    const again = Ledger.open(stateDir);
    const next = new JobRunner(job, again, new LocalTransport(job), {
      once: false,
      closedForMs: 100,
    });
    try {
      await next.start();
      await waitFor(async () => (await runs()).length === 1, 30_000, "the hook owed");
      assert.deepEqual(await runs(), ["a.fits"]);
      assert.equal(DueHooks.of(FileRows.of(again, job)).count(), 0);
      const copy = FileRows.of(again, job).get("a.fits")!.destination;
      assert.deepEqual(await Deno.readFile(join(job.remote_base_path, copy)), bytes);
    } finally {
      await next.stop();
      again.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
