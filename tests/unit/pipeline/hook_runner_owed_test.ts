/**
 * The `on_transfer` hooks a job owes (`ledger/due_hooks.ts`) through the real
 * HookRunner and a real hook script: the `started` callback stands for the
 * ledger, which takes (or cannot take now) the start of each.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type HookFacts, HookRunner } from "../../../src/pipeline/hooks.ts";
import { testJob } from "../../helpers/jobs.ts";
import { waitFor } from "../../helpers/files.ts";
import { countingHook } from "../../helpers/sandbox.ts";

function facts(root: string, relPath: string): HookFacts {
  return {
    source: join(root, "watch", relPath),
    relPath,
    destination: join(root, "dest", "20240315", relPath),
    destinationPath: `20240315/${relPath}`,
    size: 10,
    mtimeMs: 1_710_532_800_000,
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
  const started = () => writable;
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
