/**
 * A folder a scan cannot read because the process ran out of open files (EMFILE) is not one the
 * user must fix: it is said once with what to do (raise the open-file limit), not reported as
 * unreadable, and read again soon, finding its files. A real process under `prlimit` holds every
 * descriptor it may have, scans, frees them, and waits.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT, runProgram } from "../../helpers/cli.ts";
import { withTempDir, writeRandomFiles } from "../../helpers/files.ts";

Deno.test("a folder not read for want of open files is said as that, and read again soon", async () => {
  await withTempDir(async (root) => {
    const rels = ["a.fits", "cam0/b.fits", "cam1/deep/c.fits"];
    await writeRandomFiles(root, rels, 100);
    const program = join(REPO_ROOT, "tests/fixtures/programs/scan_short_of_files.ts");
    const run = await runProgram("prlimit", [
      "--nofile=128:128",
      "--",
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      join(REPO_ROOT, "deno.json"),
      program,
      root,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const said = JSON.parse(run.stdout) as {
      failedFirst: boolean;
      found: string[];
      lines: { level: string; message: string }[];
      skipped: string[];
    };
    assert.ok(said.failedFirst, "the first scan found nothing: it had no descriptor to read with");
    assert.deepEqual(said.found, rels);
    assert.deepEqual(said.skipped, []);
    const short = said.lines.filter((line) => /ran out of open files/.test(line.message));
    assert.equal(short.length, 1, JSON.stringify(said.lines));
    assert.equal(short[0].level, "warning");
    assert.match(
      short[0].message,
      /Cannot read folder .* now \(.*Too many open files.*raise the limit/,
    );
    assert.ok(said.lines.every((line) => !/read and search access/.test(line.message)));
  });
});
