/**
 * Source clean-up through the real CLI: `after_transfer: delete` removes only
 * sources the ledger holds as arrived verified with the size and mtime now on
 * disk (never a file changed after it was sent, never a file not sent),
 * `keep_days` keeps them for a while, `run --dry-run` lists what would go and
 * removes nothing, `move` puts them into `archive_path` (a name archived
 * before gets a numbered name beside it).
 */
import assert from "node:assert/strict";
import { extname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LEDGER_FILE } from "../../../src/ledger/ledger.ts";
import { isMounted, mountBindfs, unmountBindfs } from "../../helpers/bindfs.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { resizeTmpfs, withTmpfs } from "../../helpers/tmpfs.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

/** A sandbox whose watch folder has a `sub dir`; `archive` is for `archive_path`. */
async function setUp() {
  const box = await cliSandbox();
  await Deno.mkdir(join(box.watch, "sub dir"));
  return Object.assign(box, { archive: join(box.root, "archive") });
}

const EVENING = new Date("2024-03-15T20:00:00Z");

Deno.test("after_transfer: delete removes only verified sources, never one changed after it was sent", async () => {
  await using p = await setUp();
  // keep_days of about 8.6 s: sources stay right after their arrival (a run on a busy machine
  // may take seconds from an arrival to its end).
  await p.rewrite({ after_transfer: "delete", keep_days: 0.0001 });
  const env = p.env;
  const files: Record<string, Uint8Array> = {
    "a.fits": randomBytes(30_000),
    "sub dir/-b $(x).fits": randomBytes(40_000),
    "c.fits": randomBytes(50_000),
  };
  for (const [rel, data] of Object.entries(files)) {
    await Deno.writeFile(join(p.watch, rel), data);
    await Deno.utime(join(p.watch, rel), EVENING, EVENING);
  }
  await Deno.writeTextFile(join(p.watch, "notes.txt"), "not an image");
  const first = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(first.code, 0, first.stderr);
  for (const [rel, data] of Object.entries(files)) {
    assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", rel)), data);
    assert.ok(existsSync(join(p.watch, rel)), `${rel} removed before keep_days passed`);
  }

  // c.fits is written again after it was sent (same size, new bytes and mtime).
  const changed = randomBytes(50_000);
  await Deno.writeFile(join(p.watch, "c.fits"), changed);
  // keep_days passes.
  await new Promise((r) => setTimeout(r, 9_000));

  // The dry run lists the two due sources and removes nothing.
  const dry = await runCli(["run", "--dry-run", "-c", p.config], { env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(dry.stdout.includes(`would delete ${join(p.watch, "a.fits")} (arrived`), dry.stdout);
  assert.ok(dry.stdout.includes(`would delete ${join(p.watch, "sub dir/-b $(x).fits")}`));
  assert.ok(!dry.stdout.includes("would delete " + join(p.watch, "c.fits")), dry.stdout);
  assert.match(dry.stdout, /2 source\(s\) would be deleted now/);
  for (const rel of Object.keys(files)) assert.ok(existsSync(join(p.watch, rel)));

  const second = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.ok(!existsSync(join(p.watch, "a.fits")), second.stderr);
  assert.ok(!existsSync(join(p.watch, "sub dir/-b $(x).fits")), second.stderr);
  // Changed after it was sent: kept (and sent again, as the new version).
  assert.deepEqual(await Deno.readFile(join(p.watch, "c.fits")), changed);
  assert.ok(existsSync(join(p.watch, "notes.txt")));
  assert.ok(existsSync(join(p.watch, "sub dir")));
  // What was deleted is safe at the destination.
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "a.fits")), files["a.fits"]);
  assert.deepEqual(
    await Deno.readFile(join(p.dest, "20240315", "sub dir/-b $(x).fits")),
    files["sub dir/-b $(x).fits"],
  );
  // The new version (its mtime today) goes beside the copy sent, in that copy's night folder:
  // the source's copies stay together, the later one numbered, none replaced.
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "c~2.fits")), changed);
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "c.fits")), files["c.fits"]);
  assert.deepEqual(await listFiles(p.dest), [
    "20240315/a.fits",
    "20240315/c.fits",
    "20240315/c~2.fits",
    "20240315/sub dir/-b $(x).fits",
  ]);
});

Deno.test("keep_days: a source goes only while its copy is still at the destination; a copy removed or damaged there meanwhile is sent again, its source kept; with none of them there (a night folder gone), every source stays", async () => {
  await using p = await setUp();
  // keep_days of about 8.6 s, as above.
  await p.rewrite({ after_transfer: "delete", keep_days: 0.0001 });
  const env = p.env;
  const files: Record<string, Uint8Array> = {
    "gone.fits": randomBytes(30_000),
    "cut.fits": randomBytes(40_000),
    "kept.fits": randomBytes(50_000),
  };
  for (const [rel, data] of Object.entries(files)) {
    await Deno.writeFile(join(p.watch, rel), data);
    await Deno.utime(join(p.watch, rel), EVENING, EVENING);
  }
  const night = join(p.dest, "20240315");
  const first = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(first.code, 0, first.stderr);
  for (const [rel, data] of Object.entries(files)) {
    assert.deepEqual(await Deno.readFile(join(night, rel)), data);
  }
  // At the destination, one copy is removed and one cut short while their sources are kept.
  await Deno.remove(join(night, "gone.fits"));
  await Deno.truncate(join(night, "cut.fits"), 1000);
  await new Promise((r) => setTimeout(r, 9_000)); // keep_days passes.

  const second = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.ok(!existsSync(join(p.watch, "kept.fits")), second.stderr);
  assert.match(second.stderr, /gone\.fits is missing at the destination; sending gone\.fits again/);
  assert.match(second.stderr, /cut\.fits is 1000 bytes, not 40000 at the destination; sending/);
  // Kept, and sent again (by this run or the next): their copies whole again.
  const third = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(third.code, 0, third.stderr);
  for (const rel of ["gone.fits", "cut.fits"]) {
    assert.deepEqual(await Deno.readFile(join(p.watch, rel)), files[rel], `${rel} kept`);
    assert.deepEqual(await Deno.readFile(join(night, rel)), files[rel], `${rel} sent again`);
  }
  assert.deepEqual(await Deno.readFile(join(night, "kept.fits")), files["kept.fits"]);
  // Their arrival lines say what happened there (before: "replaced the copy sent at ..." for both).
  const resent = second.stderr + third.stderr;
  assert.match(
    resent,
    /Successfully transferred \S*gone\.fits -> \S*20240315\/gone\.fits \(sent again: its copy recorded as arrived at \S+ was no longer at the destination\)/,
  );
  assert.match(
    resent,
    /Successfully transferred \S*cut\.fits -> \S*20240315\/cut\.fits \(replaced its copy recorded as arrived at \S+: the same version, sent again\)/,
  );

  // The night folder is moved away there: not one copy due is there, so none is sent again
  // (the destination looks gone), and every source stays.
  await Deno.rename(night, join(p.dest, "moved away"));
  await new Promise((r) => setTimeout(r, 9_000)); // keep_days passes for the copies sent again.
  const fourth = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(fourth.code, 0, fourth.stderr);
  assert.match(fourth.stderr, /None of the 2 file\(s\) of job \S+ due for clean-up is at/);
  for (const rel of ["gone.fits", "cut.fits"]) {
    assert.deepEqual(await Deno.readFile(join(p.watch, rel)), files[rel], `${rel} kept`);
  }
  assert.ok(!existsSync(night), "nothing sent again");

  // Back in place: the sources go.
  await Deno.rename(join(p.dest, "moved away"), night);
  const fifth = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(fifth.code, 0, fifth.stderr);
  for (const rel of ["gone.fits", "cut.fits"]) {
    assert.ok(!existsSync(join(p.watch, rel)), `${rel} deleted: ${fifth.stderr}`);
    assert.deepEqual(await Deno.readFile(join(night, rel)), files[rel]);
  }
});

Deno.test("after_transfer: move puts each arrived source into archive_path (daemon, right after its arrival)", async () => {
  await using p = await setUp();
  const daemon = await p.rewrite({ after_transfer: "move", archive_path: p.archive }).then(() =>
    startCli(["run", "-c", p.config], { env: p.env })
  );
  try {
    await daemon.waitForOutput("Watching");
    const data = randomBytes(200_000);
    const rel = "sub dir/m42 'x'.fits";
    await Deno.writeFile(join(p.watch, rel), data);
    await waitFor(() => existsSync(join(p.archive, rel)), 20_000, "the source in the archive");
    assert.deepEqual(await Deno.readFile(join(p.archive, rel)), data);
    // The copy is put in place in the archive before the source is removed.
    await waitFor(() => !existsSync(join(p.watch, rel)), 20_000, "the source removed");
    const night = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    assert.deepEqual(await Deno.readFile(join(p.dest, night, rel)), data);
    await daemon.waitForOutput("it arrived verified");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

Deno.test("after_transfer: move into a full archive says the move failed and when it is tried again, in every view, counted once however often tried; a reload keeps the count; it is moved once there is room, without a reload", async () => {
  await using p = await setUp();
  const base = `127.0.0.1:${freePort()}`;
  await withTmpfs(p.archive, "64k", async () => {
    const daemon = await p.rewrite({
      after_transfer: "move",
      archive_path: p.archive,
      status_listen: base,
      retry_delay_seconds: 1,
      retry_max_delay_seconds: 2,
    }).then(() => startCli(["run", "-c", p.config], { env: p.env }));
    try {
      await daemon.waitForOutput("Watching");
      const data = randomBytes(200_000);
      const source = join(p.watch, "big.fits");
      await Deno.writeFile(source, data);
      const night = new Date().toISOString().slice(0, 10).replaceAll("-", "");
      await waitFor(() => existsSync(join(p.dest, night, "big.fits")), 20_000, "the copy");
      assert.deepEqual(await Deno.readFile(join(p.dest, night, "big.fits")), data);
      // Before the fix: "Cannot remove ... : No space left on device ...; it stays".
      await daemon.waitForOutput(
        `Cannot move ${source} into the archive (${join(p.archive, "big.fits")})`,
      );
      assert.match(daemon.stderr(), /it stays in the watch folder and is tried again in 1 s/);
      // Before, it waited for a restart or a reload. Tried again, and counted once still.
      await daemon.waitForOutput(/tried again in 2 s/);
      assert.deepEqual(await Deno.readFile(source), data, "the source stays whole");
      // Not in the log alone: the API, the metrics an alert can watch, and `status` count it.
      const api = await getJson<{ jobs: Array<{ cleanupFailures: number }> }>(
        `http://${base}`,
        "/api/status",
      );
      assert.equal(api.jobs[0].cleanupFailures, 1);
      const metrics = await (await fetch(`http://${base}/metrics`)).text();
      assert.match(
        metrics,
        /^image_transfer_cleanup_failures_total\{job="default",method="local"\} 1$/m,
      );
      const shown = await runCli(["status", "-c", p.config], { env: p.env });
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(
        shown.stdout,
        /^ {4}1 source\(s\) after_transfer could not delete or move into the archive since the daemon started: they stay in the watch folder; the log says why$/m,
      );
      // A reload that restarts the job while the source still cannot move: counted once still.
      // Said on its own at first, then with the others failing again as before, in one line.
      const said = (text: string) => daemon.stderr().split(text).length - 1;
      const failed = () =>
        said(`Cannot move ${source}`) +
        said(`still cannot be moved into the archive after their transfer (${source}:`);
      const before = failed();
      await p.rewrite({
        after_transfer: "move",
        archive_path: p.archive,
        status_listen: base,
        retry_delay_seconds: 1,
        retry_max_delay_seconds: 3,
      });
      daemon.process.kill("SIGHUP");
      await daemon.waitForOutput(/Reloaded .*: 1 job\(s\)/);
      await waitFor(() => failed() > before, 20_000, "a failure after the reload");
      const reloaded = await getJson<{ jobs: Array<{ cleanupFailures: number }> }>(
        `http://${base}`,
        "/api/status",
      );
      assert.equal(reloaded.jobs[0].cleanupFailures, 1);
      await resizeTmpfs(p.archive, "1m");
      await waitFor(
        () => existsSync(join(p.archive, "big.fits")),
        20_000,
        "the source in the archive",
      );
      assert.deepEqual(await Deno.readFile(join(p.archive, "big.fits")), data);
      // The copy is put in place in the archive before the source is removed.
      await waitFor(() => !existsSync(source), 20_000, "the source removed");
      const after = await getJson<{ jobs: Array<{ cleanupFailures: number }> }>(
        `http://${base}`,
        "/api/status",
      );
      assert.equal(after.jobs[0].cleanupFailures, 1);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
});

Deno.test("after_transfer: delete on a watch share mounted read-only: each source said once at ERROR, each later round that fails as before in one line; remounted, every source goes", async () => {
  await using box = await cliSandbox();
  const under = join(box.root, "under");
  const share = join(box.root, "share");
  await Deno.mkdir(under);
  await mountBindfs(under, share, { readOnly: true });
  try {
    await box.rewrite({
      watch_path: share,
      after_transfer: "delete",
      retry_delay_seconds: 1,
      retry_max_delay_seconds: 1,
      poll_interval_seconds: 0.5,
      rescan_interval_seconds: 0,
    });
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput(/Watching .* with file events and a poll/);
      // Written on the file server: the share shows them, and refuses to remove them.
      const names = ["a.fits", "b.fits", "c $(x).fits"];
      const bytes = new Map(names.map((name) => [name, randomBytes(20_000)]));
      for (const [name, data] of bytes) await Deno.writeFile(join(under, name), data);
      const night = new Date().toISOString().slice(0, 10).replaceAll("-", "");
      const tried = () => daemon.stderr().split("tried again in 1 s").length - 1;
      // Three first failures, then (before the fix, three lines a round) a few rounds more.
      await waitFor(() => tried() >= names.length + 3, 60_000, "rounds of retries");
      for (const [name, data] of bytes) {
        assert.deepEqual(await Deno.readFile(join(box.dest, night, name)), data, name);
        const said = daemon.stderr().split(`Cannot delete ${join(share, name)} `).length - 1;
        // Before the fix: said again at ERROR in every round of retries, for every source.
        assert.equal(said, 1, daemon.stderr());
      }
      assert.match(
        daemon.stderr(),
        /ERROR +\[cleanup\] 3 source\(s\) still cannot be deleted after their transfer \(.*Read-only file system.*\); they stay in the watch folder and are tried again in 1 s/,
      );
      await unmountBindfs(share);
      await mountBindfs(under, share);
      await waitFor(
        async () => (await listFiles(under)).length === 0,
        60_000,
        "the sources deleted",
      );
      for (const [name, data] of bytes) {
        assert.deepEqual(await Deno.readFile(join(box.dest, night, name)), data, name);
      }
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  } finally {
    if (await isMounted(share)) await unmountBindfs(share);
  }
});

Deno.test("keep_days over scp: run --once looks at the destination for the sources due and removes them before it stops", async () => {
  // Before: the look over SSH was cut off by the run's end ("Cannot look at the destination
  // ... (stopping): ... until the next look, within the hour"), so a run --once from cron never
  // removed a source.
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, "scp", { after_transfer: "delete", keep_days: 0.0001 });
  try {
    const files: Record<string, Uint8Array> = {
      "due $(id).fits": randomBytes(30_000),
      "-gone.fits": randomBytes(20_000),
    };
    for (const [rel, data] of Object.entries(files)) {
      await Deno.writeFile(join(box.watch, rel), data);
      await Deno.utime(join(box.watch, rel), EVENING, EVENING);
    }
    const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(first.code, 0, first.stderr);
    const night = join(box.remote, "20240315");
    await Deno.remove(join(night, "-gone.fits")); // Its source stays, and goes again.
    await new Promise((r) => setTimeout(r, 9_000)); // keep_days (about 8.6 s) passes.
    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /Cannot look at the destination/);
    assert.ok(!existsSync(join(box.watch, "due $(id).fits")), second.stderr);
    assert.deepEqual(await Deno.readFile(join(night, "due $(id).fits")), files["due $(id).fits"]);
    assert.deepEqual(await Deno.readFile(join(box.watch, "-gone.fits")), files["-gone.fits"]);
    assert.deepEqual(await Deno.readFile(join(night, "-gone.fits")), files["-gone.fits"]);
  } finally {
    await Deno.remove(box.root, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("after_transfer: run --once whose move into a full archive fails says it is tried at the next run, and the next run moves it", async () => {
  await using p = await setUp();
  await withTmpfs(p.archive, "64k", async () => {
    await p.rewrite({ after_transfer: "move", archive_path: p.archive });
    const data = randomBytes(200_000);
    const source = join(p.watch, "big.fits");
    await Deno.writeFile(source, data);
    const first = await runCli(["run", "--once", "-c", p.config], { env: p.env });
    // Not "tried again in 5 s": the run ends with the batch.
    assert.match(
      first.stderr,
      /Cannot move .*big\.fits into the archive .*; it stays in the watch folder and is tried again at the next run/,
    );
    assert.deepEqual(await Deno.readFile(source), data, "the source stays whole");
    await resizeTmpfs(p.archive, "1m");
    const second = await runCli(["run", "--once", "-c", p.config], { env: p.env });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(await Deno.readFile(join(p.archive, "big.fits")), data);
    assert.ok(!existsSync(source));
  });
});

Deno.test("after_transfer: an archive inside the watch folder, a move without archive or no verification are refused", async () => {
  await using p = await setUp();
  const env = p.env;
  await p.rewrite({ after_transfer: "move", archive_path: join(p.watch, "archive") });
  await Deno.writeFile(join(p.watch, "a.fits"), randomBytes(100));
  const inside = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(inside.code, 2, inside.stderr);
  assert.match(inside.stderr, /archive_path of job default: .* must not contain each other/);
  assert.ok(!existsSync(p.dest), "nothing sent");
  assert.ok(existsSync(join(p.watch, "a.fits")));

  await p.rewrite({ after_transfer: "move" });
  const noArchive = await runCli(["config", "validate", "-c", p.config], { env });
  assert.equal(noArchive.code, 2);
  const line = /:(\d+): after_transfer: "move" needs archive_path: add the folder/.exec(
    noArchive.stderr,
  )?.[1];
  assert.ok(line !== undefined, noArchive.stderr);
  const written = (await Deno.readTextFile(p.config)).split("\n");
  assert.match(written[Number(line) - 1], /^after_transfer:/, "said at the after_transfer line");

  await p.rewrite({ after_transfer: "delete", verify_transfer: "none" });
  const unverified = await runCli(["config", "validate", "-c", p.config], { env });
  assert.equal(unverified.code, 2);
  assert.match(
    unverified.stderr,
    /after_transfer: "delete" removes sources only once they arrived verified/,
  );
  assert.doesNotMatch(unverified.stderr + noArchive.stderr + inside.stderr, /\n\s+at /);
});

for (const how of ["delete", "move"] as const) {
  Deno.test(`after_transfer: ${how}, a new file under a name sent before goes beside the earlier one, never over it (in the archive too)`, async () => {
    await using p = await setUp();
    const archive = how === "move" ? { archive_path: p.archive } : {};
    await p.rewrite({ after_transfer: how, ...archive });
    const env = p.env;
    // A camera's counter starts again: the same name, new images, the same night.
    const images = [randomBytes(30_000), randomBytes(31_000), randomBytes(29_000)];
    const names = ["flat 001.fits", "flat 001~2.fits", "flat 001~3.fits"];
    for (const [i, image] of images.entries()) {
      await Deno.writeFile(join(p.watch, "flat 001.fits"), image);
      await Deno.utime(join(p.watch, "flat 001.fits"), EVENING, EVENING);
      // The trial run names the place the run takes (before, the earlier file's name).
      const dry = await runCli(["run", "--dry-run", "-c", p.config], { env });
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(
        dry.stdout,
        new RegExp(`would transfer .* -> .*/20240315/${names[i]}${i > 0 ? " \\(beside" : "\n"}`),
      );
      const run = await runCli(["run", "--once", "-c", p.config], { env });
      assert.equal(run.code, 0, run.stderr);
      // Before, a moved one stayed in the watch folder for good ("exists already").
      assert.ok(!existsSync(join(p.watch, "flat 001.fits")), "the source was removed");
      if (i > 0) assert.match(run.stderr, /is a new file under a name sent before/);
      if (i > 0 && how === "move") {
        assert.match(run.stderr, /a file of that name is there: beside it/);
      }
      // Every image is at the destination (and in the archive), each under its own name.
      for (const [j, earlier] of images.slice(0, i + 1).entries()) {
        assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", names[j])), earlier);
        if (how === "move") {
          assert.deepEqual(await Deno.readFile(join(p.archive, names[j])), earlier, names[j]);
        }
      }
    }
    // A source named like one of those copies goes beside them all, never over one.
    const named = randomBytes(28_000);
    await Deno.writeFile(join(p.watch, "flat 001~2.fits"), named);
    await Deno.utime(join(p.watch, "flat 001~2.fits"), EVENING, EVENING);
    const run = await runCli(["run", "--once", "-c", p.config], { env });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /where another file's copy is .* it goes to .*flat 001~2~2\.fits/);
    assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "flat 001~2~2.fits")), named);
    for (const [j, earlier] of images.entries()) {
      assert.deepEqual(
        await Deno.readFile(join(p.dest, "20240315", names[j])),
        earlier,
        names[j],
      );
    }
  });
}

Deno.test("after_transfer: keep, a file changed replaces its copy; a new file under a name sent before goes beside it", async () => {
  await using p = await setUp();
  await p.rewrite({ after_transfer: "keep" });
  const env = p.env;
  const source = join(p.watch, "flat 001.fits");
  const sent = (name: string) => join(p.dest, "20240315", name);
  const send = async (bytes: Uint8Array) => {
    await Deno.writeFile(source, bytes);
    await Deno.utime(
      source,
      EVENING,
      new Date(EVENING.getTime() + 1000 * (1 + bytes.length % 7)),
    );
    const run = await runCli(["run", "--once", "-c", p.config], { env });
    assert.equal(run.code, 0, run.stderr);
    return run.stderr;
  };
  const first = randomBytes(30_000);
  await send(first);
  // The same file written again (the same file on disk, changed): its copy is replaced.
  const changed = randomBytes(30_001);
  assert.doesNotMatch(await send(changed), /name sent before/);
  assert.deepEqual(await Deno.readFile(sent("flat 001.fits")), changed);
  // The sources cleared, the camera's counter starts again: a new file, beside the one sent.
  await Deno.remove(source);
  const fresh = randomBytes(29_000);
  await Deno.writeFile(source, fresh);
  await Deno.utime(source, EVENING, new Date(EVENING.getTime() + 9000));
  const dry = await runCli(["run", "--dry-run", "-c", p.config], { env });
  assert.match(dry.stdout, /would transfer .* -> .*\/20240315\/flat 001~2\.fits \(beside/);
  const run = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /is a new file under a name sent before/);
  assert.deepEqual(await Deno.readFile(sent("flat 001.fits")), changed, "never replaced");
  assert.deepEqual(await Deno.readFile(sent("flat 001~2.fits")), fresh);
  assert.ok(existsSync(source), "kept");
  // That file changed in place replaces its own copy, the one beside.
  const freshChanged = randomBytes(29_001);
  await send(freshChanged);
  assert.deepEqual(await Deno.readFile(sent("flat 001~2.fits")), freshChanged);
  assert.deepEqual(await Deno.readFile(sent("flat 001.fits")), changed, "never replaced");
  // Sent again on purpose after a new file took the name: beside too, never over a copy.
  await Deno.remove(source);
  const third = randomBytes(28_000);
  await Deno.writeFile(source, third);
  await Deno.utime(source, EVENING, new Date(EVENING.getTime() + 12_000));
  const resend = await runCli(["resend", "--name", "flat 001.fits", "-c", p.config], { env });
  assert.equal(resend.code, 0, resend.stderr);
  const again = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.match(
    again.stderr,
    /is a new file under a name sent before .* it goes to .*001~3\.fits/,
  );
  assert.deepEqual(await Deno.readFile(sent("flat 001~3.fits")), third);
  assert.deepEqual(await Deno.readFile(sent("flat 001~2.fits")), freshChanged);
  assert.deepEqual(await Deno.readFile(sent("flat 001.fits")), changed);
});

Deno.test("after_transfer: keep, new files under a name and a source named like their copies: every copy stays, each where run --dry-run said", async () => {
  await using p = await setUp();
  await p.rewrite({ after_transfer: "keep" });
  const env = p.env;
  const night = join(p.dest, "20240315");
  const kept = new Map<string, Uint8Array>();
  let second = 1;
  /** Write `name` anew (a new file), send it, and check it went where the dry run said. */
  const send = async (name: string, expected: string) => {
    const path = join(p.watch, name);
    await Deno.remove(path).catch(() => {});
    const bytes = randomBytes(20_000 + second);
    await Deno.writeFile(path, bytes);
    await Deno.utime(path, EVENING, new Date(EVENING.getTime() + 1000 * second++));
    const dry = await runCli(["run", "--dry-run", "-c", p.config], { env });
    assert.match(
      dry.stdout,
      new RegExp(`would transfer .*/${name} -> .*/20240315/${expected}( |\n)`),
    );
    const run = await runCli(["run", "--once", "-c", p.config], { env });
    assert.equal(run.code, 0, run.stderr);
    kept.set(expected, bytes);
    for (const [copy, content] of kept) {
      assert.deepEqual(await Deno.readFile(join(night, copy)), content, copy);
    }
  };
  await send("d.fits", "d.fits");
  await send("d.fits", "d~2.fits");
  await send("d~2.fits", "d~2~2.fits");
  await send("d.fits", "d~3.fits");
  await send("d~2.fits", "d~2~3.fits");
  await send("d~2~2.fits", "d~2~2~2.fits");
  await send("d~2~2.fits", "d~2~2~3.fits");
  await send("d~2.fits", "d~2~4.fits");
  await send("d.fits", "d~4.fits");
  await send("e~2.fits", "e~2.fits");
  await send("e.fits", "e.fits");
  await send("e.fits", "e~3.fits");
  assert.equal((await Array.fromAsync(Deno.readDir(night))).length, kept.size);
});

/** With `after_transfer: keep`, `d.fits` (20,000 bytes of the evening) written and sent. */
async function sentOnce(p: Awaited<ReturnType<typeof setUp>>) {
  await p.rewrite({ after_transfer: "keep" });
  const env = p.env;
  const source = join(p.watch, "d.fits");
  const first = randomBytes(20_000);
  await Deno.writeFile(source, first);
  await Deno.utime(source, EVENING, EVENING);
  assert.equal((await runCli(["run", "--once", "-c", p.config], { env })).code, 0);
  return { env, source, first };
}

Deno.test("after_transfer: keep, a new file renamed over the name while the earlier one's copy was on the way goes beside that copy, never over it", async () => {
  await using p = await setUp();
  const { env, source, first } = await sentOnce(p);
  // The copy of d.fits took long (a slow link): it arrived a minute after now, while the camera
  // wrote its next exposure under the same name and renamed it into place (a new file, made
  // after d.fits was found complete and before its copy arrived).
  const db = new DatabaseSync(join(p.stateDir, LEDGER_FILE));
  try {
    const updated = db.prepare(
      "UPDATE files SET created_at = ?, transferred_at = ? WHERE rel_path = 'd.fits'",
    ).run(Date.now() - 60_000, Date.now() + 60_000);
    assert.equal(Number(updated.changes), 1);
  } finally {
    db.close();
  }
  const second = randomBytes(21_000);
  await Deno.writeFile(join(p.watch, "d.fits.tmp"), second);
  await Deno.utime(join(p.watch, "d.fits.tmp"), EVENING, new Date(EVENING.getTime() + 5000));
  await Deno.rename(join(p.watch, "d.fits.tmp"), source);
  const run = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /is a new file under a name sent before/);
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "d.fits")), first, "replaced");
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "d~2.fits")), second);
});

Deno.test("after_transfer: keep, a file sent again on purpose and gone before it was: its copy is still known, and a new file of its name goes beside it", async () => {
  await using p = await setUp();
  const { env, source, first } = await sentOnce(p);
  const resend = await runCli(["resend", "--name", "d.fits", "-c", p.config], { env });
  assert.equal(resend.code, 0, resend.stderr);
  await Deno.remove(source);
  const gone = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(gone.code, 0, gone.stderr);
  const status = await runCli(["status", "-c", p.config], { env });
  assert.match(status.stdout, /done 1, failed 0/, status.stdout);
  const second = randomBytes(21_000);
  await Deno.writeFile(source, second);
  await Deno.utime(source, EVENING, new Date(EVENING.getTime() + 5000));
  const run = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "d.fits")), first);
  assert.deepEqual(await Deno.readFile(join(p.dest, "20240315", "d~2.fits")), second);
});

Deno.test("a file changed after it was sent and gone before it was sent again is not taken as sent when it comes back: it is sent, then deleted", async () => {
  await using p = await setUp();
  const { env, source, first } = await sentOnce(p);
  // Changed in place and taken up (pending, as the daemon records it), then gone before it
  // was sent again (a share unmounted, a file moved away).
  const changed = new Uint8Array([...first, ...randomBytes(7_000)]);
  const later = new Date(EVENING.getTime() + 60_000);
  const db = new DatabaseSync(join(p.stateDir, LEDGER_FILE));
  try {
    const updated = db.prepare(
      "UPDATE files SET state = 'pending', size = ?, mtime_ms = ? WHERE rel_path = 'd.fits'",
    ).run(changed.length, later.getTime());
    assert.equal(Number(updated.changes), 1);
  } finally {
    db.close();
  }
  await Deno.remove(source);
  const gone = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(gone.code, 0, gone.stderr);
  // Back, as it was changed; clean-up now deletes what arrived verified.
  await Deno.writeFile(source, changed);
  await Deno.utime(source, later, later);
  await p.rewrite({ after_transfer: "delete" });
  const back = await runCli(["run", "--once", "-c", p.config], { env });
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stderr, /Successfully transferred \S*d\.fits/);
  const night = join(p.dest, "20240315");
  const copies = await Array.fromAsync(Deno.readDir(night), (entry) => entry.name);
  const contents = await Promise.all(copies.map((name) => Deno.readFile(join(night, name))));
  assert.ok(
    contents.some((bytes) =>
      bytes.length === changed.length && bytes.every((b, i) => b === changed[i])
    ),
    `the changed version is at the destination (${copies.join(", ")})`,
  );
  assert.equal(existsSync(source), false, "deleted once it arrived");
});

for (
  const { what, after_transfer, name, growing_patterns } of [
    {
      what: "a growing file",
      after_transfer: "delete",
      name: "spectrum.log",
      growing_patterns: ["*.log"],
    },
    // Before, only growing_patterns waited: this one went after the window, and was moved away
    // while its writer still wrote (what it wrote after that went into a file no folder holds).
    {
      what: "any other file (not FITS)",
      after_transfer: "move",
      name: "-frame $(x).dat",
      growing_patterns: [],
    },
  ]
) {
  Deno.test(`after_transfer: ${after_transfer}, ${what} whose writer pauses longer than the window goes only after its writer closed it`, async () => {
    await using p = await setUp();
    await p.rewrite({
      after_transfer,
      archive_path: p.archive,
      file_patterns: [`*${extname(name)}`],
      growing_patterns,
    });
    const daemon = startCli(["run", "-c", p.config], { env: p.env });
    const gone = after_transfer === "delete" ? "Deleted" : "Moved";
    const removed = new RegExp(`${gone} .*${name.replace(/[$().]/g, "\\$&")}`);
    try {
      await daemon.waitForOutput("Watching");
      const source = join(p.watch, name);
      const parts = [randomBytes(100_000), randomBytes(50_000)];
      {
        using file = await Deno.open(source, { write: true, createNew: true });
        await file.write(parts[0]);
        // Its writer pauses, the file still open, longer than the window (0.3 s).
        await daemon.waitForOutput(new RegExp(`still has it open|${removed.source}`));
        assert.doesNotMatch(daemon.stderr(), removed, "removed while its writer had it open");
        assert.match(
          daemon.stderr(),
          new RegExp(`sends it once its writer closed it, and then ${after_transfer}s the source`),
        );
        await file.write(parts[1]);
      }
      await daemon.waitForOutput(removed);
      const night = new Date().toISOString().slice(0, 10).replaceAll("-", "");
      assert.deepEqual(await Deno.readFile(join(p.dest, night, name)), concat(parts));
      assert.ok(!existsSync(source));
      if (after_transfer === "move") {
        assert.deepEqual(await Deno.readFile(join(p.archive, name)), concat(parts));
      }
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
}

Deno.test("after_transfer: delete with growing_patterns where no close is seen (watch_mode: poll) is warned of at the start", async () => {
  await using p = await setUp();
  const env = p.env;
  const config = { after_transfer: "delete", growing_patterns: ["*.log"] };
  await p.rewrite(config);
  const seen = await runCli(["config", "validate", "-c", p.config], { env });
  assert.equal(seen.code, 0, seen.stderr);
  assert.doesNotMatch(seen.stderr, /growing_patterns/, "closes are seen: no warning");
  await p.rewrite({ ...config, watch_mode: "poll" });
  const polled = await runCli(["config", "validate", "-c", p.config], { env });
  assert.equal(polled.code, 0, polled.stderr);
  assert.match(
    polled.stderr,
    /growing_patterns of job default: with after_transfer: delete, watch_mode: poll sees no closes, so a growing file is deleted once unchanged for stability_window_seconds \(0\.3 s\), even if its writer only paused/,
  );
});

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}
