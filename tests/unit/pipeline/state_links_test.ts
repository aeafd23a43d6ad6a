/**
 * The state folder's children are never written through a link put there: a `reports` link is
 * moved aside (said at WARN) and the report written in a folder of its own, the link's target
 * left as it was; a link at the temporary name of `daemon.json` is replaced, not written through.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { writeAtomically } from "../../../src/ledger/state_files.ts";
import { acquireDaemonLock } from "../../../src/ledger/daemon_lock.ts";
import { writeNightReport } from "../../../src/pipeline/night_report.ts";
import { testJob } from "../../helpers/jobs.ts";

Deno.test("a reports link planted in state_dir is moved aside: the report is written in a folder of its own, the target untouched", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-state-links-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    const target = join(root, "elsewhere");
    await Deno.mkdir(target, { mode: 0o755 });
    await Deno.chmod(target, 0o755);
    await Deno.symlink(target, join(root, "state", "reports"));
    const job = testJob("cam", {
      watch_path: "/in",
      remote_base_path: "/out",
      transfer_method: "local",
    });
    const file = await writeNightReport(job, new FileRows(ledger, "cam", "local:/out/"), 1);
    assert.deepEqual([...Deno.readDirSync(target)], [], "nothing written through the link");
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o755, "its target not made private");
    const reports = await Deno.lstat(join(root, "state", "reports"));
    assert.ok(reports.isDirectory && !reports.isSymlink);
    assert.equal(file.startsWith(join(root, "state", "reports") + "/"), true, file);
    const aside = [...Deno.readDirSync(join(root, "state"))].map((e) => e.name)
      .filter((name) => name.startsWith("reports.set-aside-"));
    assert.equal(aside.length, 1, "the link kept aside, for whoever looks into it");
    assert.equal(await Deno.readLink(join(root, "state", aside[0])), target);
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a link at the temporary name of a state file is replaced, never written through", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-state-links-" });
  try {
    const victim = join(root, "victim");
    await Deno.writeTextFile(victim, "theirs\n");
    const path = join(root, "daemon.json");
    await Deno.symlink(victim, `${path}.${Deno.pid}.tmp`);
    writeAtomically(path, "{}\n");
    assert.equal(await Deno.readTextFile(victim), "theirs\n");
    assert.equal(await Deno.readTextFile(path), "{}\n");
    assert.ok(!(await Deno.lstat(path)).isSymlink);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a link under the name of the daemon's own files in state_dir refuses the start: nothing is made where it leads", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-state-links-" });
  try {
    const state = join(root, "state");
    await Deno.mkdir(state, { mode: 0o700 });
    const target = join(root, "elsewhere", "made.sqlite");
    await Deno.mkdir(join(root, "elsewhere"));
    await Deno.symlink(target, join(state, "ledger.sqlite"));
    await Deno.symlink(join(root, "elsewhere", "lock"), join(state, "daemon.lock"));
    assert.throws(
      () => acquireDaemonLock(state).release(),
      (error: Error) => {
        assert.ok(
          error.message.includes(
            `${join(state, "daemon.lock")} (to ${join(root, "elsewhere", "lock")}), `,
          ),
          error.message,
        );
        assert.match(error.message, /are symbolic links under the name of the daemon's own files/);
        return true;
      },
    );
    assert.deepEqual([...Deno.readDirSync(join(root, "elsewhere"))], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
