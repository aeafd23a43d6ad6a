/**
 * `local`: a file whose attempt was cut off with its copy in place (the daemon killed while
 * sending: its row still `transferring`), rewritten while the daemon was down, replaces that copy
 * of its own at the next start (the destination's size and mtime are the version that attempt
 * sent), never going beside it as `~2`; a file of another size and mtime there is left as it is.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { LEDGER_FILE } from "../../../src/ledger/ledger.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/** As a crash in the middle of its attempt leaves it: the copy in place, the row `transferring`. */
function cutOff(stateDir: string): void {
  const db = new DatabaseSync(join(stateDir, LEDGER_FILE));
  try {
    db.prepare("UPDATE files SET state = 'transferring', transferred_at = NULL").run();
  } finally {
    db.close();
  }
}

for (const sameSize of [true, false]) {
  Deno.test(`local: a file rewritten (${sameSize ? "the same size" : "another size"}) while the daemon was down after an attempt cut off with its copy in place replaces that copy, none goes beside it`, async () => {
    await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
    const source = join(box.watch, "a.fits");
    await Deno.writeFile(source, randomBytes(20_000));
    await Deno.utime(source, NIGHT, NIGHT);
    const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(first.code, 0, first.stderr);
    cutOff(box.stateDir);
    // The instrument writes the file again while the daemon is down.
    const rewritten = randomBytes(sameSize ? 20_000 : 30_000);
    await Deno.writeFile(source, rewritten);
    const later = new Date(NIGHT.getTime() + 60_000);
    await Deno.utime(source, later, later);

    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(await listFiles(box.dest), ["20240701/a.fits"], "one copy, none beside");
    assert.equal(await sha256OfFile(join(box.dest, "20240701/a.fits")), sha256Of(rewritten));
    assert.equal((await Deno.stat(join(box.dest, "20240701/a.fits"))).mtime?.getTime(), +later);
    assert.doesNotMatch(second.stderr, /put there by another/);
  });
}

Deno.test("local: after an attempt cut off, a file at its name that is not that attempt's copy (another mtime) is left as it is, the rewritten file goes beside it", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const source = join(box.watch, "a.fits");
  await Deno.writeFile(source, randomBytes(20_000));
  await Deno.utime(source, NIGHT, NIGHT);
  const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(first.code, 0, first.stderr);
  cutOff(box.stateDir);
  // Someone else's file took the name meanwhile, the same size.
  const theirs = randomBytes(20_000);
  const copy = join(box.dest, "20240701/a.fits");
  await Deno.writeFile(copy, theirs);
  const other = new Date(NIGHT.getTime() - 3600_000);
  await Deno.utime(copy, other, other);
  const rewritten = randomBytes(20_000);
  await Deno.writeFile(source, rewritten);
  const later = new Date(NIGHT.getTime() + 60_000);
  await Deno.utime(source, later, later);

  const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(await listFiles(box.dest), ["20240701/a.fits", "20240701/a~2.fits"]);
  assert.equal(await sha256OfFile(copy), sha256Of(theirs));
  assert.equal(await sha256OfFile(join(box.dest, "20240701/a~2.fits")), sha256Of(rewritten));
});
