/**
 * `status` reads the ledger and leaves the state folder as it found it: after a daemon stopped
 * cleanly (its journal copied into the ledger and removed), no `-wal` / `-shm` are left beside the
 * ledger (a read-only SQLite connection made them and could not remove them); after a daemon was
 * killed, its journal, which holds writes not yet in the ledger, stays as it was, byte for byte.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

/** The names in `folder`, sorted. */
async function names(folder: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(folder)) found.push(entry.name);
  return found.sort();
}

Deno.test("status on a stopped daemon's state folder leaves no -wal or -shm beside the ledger, and the ledger as it was", async () => {
  await using box = await cliSandbox();
  await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(1000));
  const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  const before = await names(box.stateDir);
  assert.deepEqual(before.filter((name) => name.startsWith("ledger")), ["ledger.sqlite"]);
  const ledger = join(box.stateDir, "ledger.sqlite");
  const bytes = await sha256OfFile(ledger);
  for (const args of [["status"], ["status", "--json"]]) {
    const status = await runCli(["-c", box.config, ...args], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /a\.fits/, "the ledger was read");
    // Before: ledger.sqlite-shm and ledger.sqlite-wal were left beside the ledger.
    assert.deepEqual(await names(box.stateDir), before, args.join(" "));
    assert.equal(await sha256OfFile(ledger), bytes, "the ledger is unchanged");
  }
});

Deno.test("status on a killed daemon's state folder leaves its journal (writes not yet in the ledger) as it was", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["-c", box.config, "run"], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(1000));
    await daemon.waitForOutput(/Successfully transferred \S*a\.fits/);
  } finally {
    await daemon.stop("SIGKILL");
  }
  const ledger = join(box.stateDir, "ledger.sqlite");
  const journal = `${ledger}-wal`;
  assert.ok((await Deno.stat(journal)).size > 0, "the killed daemon left its journal");
  const before = await names(box.stateDir);
  const sums = [await sha256OfFile(ledger), await sha256OfFile(journal)];
  const status = await runCli(["-c", box.config, "status"], { env: box.env });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /a\.fits/, "what the journal holds was read");
  assert.deepEqual(await names(box.stateDir), before);
  assert.deepEqual([await sha256OfFile(ledger), await sha256OfFile(journal)], sums);
});
