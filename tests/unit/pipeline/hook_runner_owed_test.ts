/**
 * The `on_transfer` hooks a job owes (`ledger/due_hooks.ts`) through the real
 * HookRunner and a real hook script: the ledger's side is a stand-in that
 * takes (or cannot take now) the start of each, or a real ledger's
 * `hooks_due` table.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HookRunner, type OwedHooks } from "../../../src/pipeline/hooks.ts";
import type { HookFacts } from "../../../src/pipeline/hook_facts.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { DueHooks } from "../../../src/ledger/due_hooks.ts";
import { testJob } from "../../helpers/jobs.ts";
import { waitFor } from "../../helpers/files.ts";
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
    },
  };
}

/** A hook that waits until `gate` exists, then notes the file; `atOnce` at a time, 4 waiting. */
async function gatedRunner(root: string, owed: OwedHooks, atOnce = 1) {
  const gate = join(root, "gate");
  const ran = join(root, "ran.log");
  const hook = join(root, "gated.sh");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\nwhile [ ! -e '${gate}' ]; do sleep 0.05; done\n` +
      `printf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${ran}'\n`,
  );
  await Deno.chmod(hook, 0o755);
  const job = testJob("test", {
    watch_path: join(root, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    on_transfer: [hook],
    max_concurrent_hooks: atOnce,
  });
  const runner = new HookRunner(job, undefined, owed, 4);
  const runs = async () =>
    (await Deno.readTextFile(ran).catch(() => "")).split("\n").filter((l) => l !== "").sort();
  return { runner, open: () => Deno.writeTextFile(gate, ""), runs };
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
      await waitFor(() => due.count() === 11, 30_000, "the first hook's start");
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
