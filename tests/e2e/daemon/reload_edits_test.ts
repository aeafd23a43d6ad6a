/**
 * Edits of a running daemon's config and what a reload makes of them: two jobs whose names are
 * swapped keep each their own figures, and a change of `file_patterns` over a full folder is said
 * in a few lines, not one per file. Real daemons through the CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { reloadDaemon, startCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

interface Status {
  jobs: Array<{ job: string; sent: number }>;
}

Deno.test("two jobs whose names a reload swaps keep each their own counts on the status page", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-swap-" });
  const place = (name: string) => ({ watch: join(root, name), dest: join(root, `${name}-dest`) });
  const [a, b] = [place("a"), place("b")];
  for (const { watch } of [a, b]) await Deno.mkdir(watch);
  try {
    await using d = await startStatusDaemon({
      jobs: [
        { name: "alpha", watch_path: a.watch, remote_base_path: a.dest },
        { name: "beta", watch_path: b.watch, remote_base_path: b.dest },
      ],
    });
    const sent = async () =>
      Object.fromEntries(
        (await getJson<Status>(d.base, "/api/status")).jobs.map((job) => [job.job, job.sent]),
      );
    for (const name of ["a1.fits", "a2.fits"]) {
      await Deno.writeFile(join(a.watch, name), randomBytes(1500));
    }
    await Deno.writeFile(join(b.watch, "b1.fits"), randomBytes(1500));
    await waitFor(
      async () => {
        const now = await sent();
        return now.alpha === 2 && now.beta === 1;
      },
      30_000,
      "alpha's two files and beta's one",
    );

    const text = await Deno.readTextFile(d.config);
    const swapped = text.replaceAll('"name":"alpha"', '"name":"-"')
      .replaceAll('"name":"beta"', '"name":"alpha"').replaceAll('"name":"-"', '"name":"beta"');
    assert.notEqual(swapped, text);
    await Deno.writeTextFile(d.config, swapped);
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reloaded .*: 2 job\(s\)/);
    // Each job's figures go with the folder and destination it sends: beta sends a's files now.
    assert.deepEqual(await sent(), { alpha: 1, beta: 2 });
    await d.daemon.waitForOutput(
      `Reload: job alpha renamed to beta (${a.watch} -> ${a.dest} (local)): what it sent stays its own`,
    );
    await d.daemon.waitForOutput(
      `Reload: job beta renamed to alpha (${b.watch} -> ${b.dest} (local)): what it sent stays its own`,
    );
    const a3 = randomBytes(1700);
    await Deno.writeFile(join(a.watch, "a3.fits"), a3);
    await waitFor(async () => (await sent()).beta === 3, 30_000, "a3.fits sent by beta");
    assert.deepEqual(await sent(), { alpha: 1, beta: 3 });
    const night = (await Array.fromAsync(Deno.readDir(a.dest)))[0].name;
    assert.deepEqual(await Deno.readFile(join(a.dest, night, "a3.fits")), a3);
    await d.daemon.stop();
    // Nothing was sent again, and the stop counts each file once.
    assert.equal(d.daemon.stderr().match(/Successfully transferred/g)?.length, 4);
    assert.match(d.daemon.stderr(), /Stopped: 4 file\(s\) sent, 0 failed in this run/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a reload whose file_patterns leave out a folder's files says it once with a count, for those sent and those waiting", async () => {
  await using box = await cliSandbox({ name: "cam" });
  const sent = 30, waiting = 10;
  for (let i = 0; i < sent; i++) {
    await Deno.writeFile(join(box.watch, `frame${i}.fits`), randomBytes(100));
  }
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitFor(
      () => daemon.stderr().split("Successfully transferred").length - 1 === sent,
      30_000,
      "the first files sent",
    );
    // min_free_space no disk has: the files found next wait, unsent, in the ledger.
    await box.rewrite({ name: "cam", min_free_space: "900 TB" });
    await reloadDaemon(daemon, 1);
    for (let i = sent; i < sent + waiting; i++) {
      await Deno.writeFile(join(box.watch, `frame${i}.fits`), randomBytes(100));
    }
    await daemon.waitForOutput("is full");
    await box.rewrite({ name: "cam", min_free_space: "900 TB", file_patterns: ["*.fit"] });
    await reloadDaemon(daemon, 2);
    await daemon.waitForOutput(
      `Skipped ${sent + waiting} name(s) of job cam that its file_patterns or exclude_patterns ` +
        "leave out now",
    );
    await daemon.waitForOutput(
      `Dropped ${waiting} unsent file(s) of job cam: they are left out by its file_patterns, ` +
        "exclude_patterns or symlinks now",
    );
    // A file of the new pattern is sent (the destination has room again).
    await box.rewrite({ name: "cam", file_patterns: ["*.fit"] });
    await reloadDaemon(daemon, 3);
    const bytes = randomBytes(3000);
    await Deno.writeFile(join(box.watch, "new.fit"), bytes);
    await waitFor(
      () => daemon.stderr().includes("new.fit -> "),
      30_000,
      "new.fit sent",
    );
    const night = (await Array.fromAsync(Deno.readDir(box.dest)))[0].name;
    assert.deepEqual(await Deno.readFile(join(box.dest, night, "new.fit")), bytes);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  // Not a line per file: each said once, with the count.
  assert.doesNotMatch(log, /Skipped .*frame\d+\.fits( of job cam)?: matches none of file_patterns/);
  assert.doesNotMatch(log, /Dropped .*frame\d+\.fits: it is/);
  assert.equal(log.match(/Successfully transferred/g)?.length, sent + 1, log);
});

Deno.test("a reload that adds only keys the jobs' method ignores (ssh_port to local jobs) says so, and the jobs go on untouched", async () => {
  await using box = await cliSandbox();
  const watch2 = join(box.root, "watch2");
  await Deno.mkdir(watch2);
  const jobs = [
    { name: "cam" },
    { name: "second", watch_path: watch2, remote_base_path: join(box.root, "dest2") },
  ];
  await box.rewrite({ jobs });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(`Watching ${watch2} for job second`);
    await daemon.waitForOutput(`Watching ${box.watch} for job cam`);
    // A default of every job, and a job's own key.
    await box.rewrite({
      ssh_port: 22,
      jobs: [jobs[0], { ...jobs[1], remote_host: "archive" }],
    });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload: job(s) cam, second go on untouched");
    await daemon.waitForOutput(/ssh_port at the top level is ignored/);
    // A file comes after the reload: the job that went on sends it.
    const bytes = randomBytes(1200);
    await Deno.writeFile(join(box.watch, "after.fits"), bytes);
    await waitFor(() => daemon.stderr().includes("after.fits -> "), 30_000, "after.fits sent");
    const night = (await Array.fromAsync(Deno.readDir(box.dest)))[0].name;
    assert.deepEqual(await Deno.readFile(join(box.dest, night, "after.fits")), bytes);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  assert.match(log, /Reload: job cam: ssh_port null -> 22 \(ignored: only scp and rsync use it\)/);
  assert.match(
    log,
    /Reload: job second: remote_host "" -> "archive" \(ignored: only scp, rsync and ftp use it\), ssh_port null -> 22 \(ignored: only scp and rsync use it\)/,
  );
  // Not stopped and started again.
  assert.equal(log.split("Watching ").length - 1, 2, log);
});

Deno.test("a job failing for its one file that keeps failing watches again when a reload's patterns leave that file out", async () => {
  await using d = await startStatusDaemon({
    retry_attempts: 1,
    retry_delay_seconds: 0.5,
    retry_max_delay_seconds: 600,
  });
  type Jobs = { jobs: { job: string; state: string; failed: number }[] };
  const job = async () => (await getJson<Jobs>(d.base, "/api/status")).jobs[0];
  // Its folder at the destination is a file in the way: the file cannot arrive.
  await Deno.mkdir(join(d.watch, "sub"));
  await Deno.writeFile(join(d.watch, "sub", "z.fits"), randomBytes(2000));
  await Deno.utime(join(d.watch, "sub", "z.fits"), 0, new Date("2024-03-15T20:00:00Z"));
  const night = "20240315";
  await Deno.mkdir(join(d.dest, night), { recursive: true });
  await Deno.writeTextFile(join(d.dest, night, "sub"), "in the way");
  await waitFor(async () => (await job()).state === "failing", 60_000, "the job failing");
  const text = await Deno.readTextFile(d.config);
  await Deno.writeTextFile(
    d.config,
    text.replace("retry_attempts", `exclude_patterns: ["sub/"]\nretry_attempts`),
  );
  await reloadDaemon(d.daemon, 1);
  await d.daemon.waitForOutput(/Dropped .*z\.fits: it is left out by its file_patterns/);
  await waitFor(async () => (await job()).state === "watching", 30_000, "the job watching again");
  assert.equal((await job()).failed, 0);
  // It works: a file of the watch folder arrives.
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(d.watch, "ok.fits"), bytes);
  await Deno.utime(join(d.watch, "ok.fits"), 0, new Date("2024-03-15T21:00:00Z"));
  await waitFor(
    () => Deno.stat(join(d.dest, night, "ok.fits")).then(() => true, () => false),
    30_000,
    "ok.fits",
  );
  assert.deepEqual(await Deno.readFile(join(d.dest, night, "ok.fits")), bytes);
});

Deno.test("a stop while the probe of a paused job is on its way does not say the destination takes files again", async () => {
  await using box = await cliSandbox({ name: "cam", min_free_space: "900 TB" });
  await Deno.writeFile(join(box.watch, "big.fits"), randomBytes(6_000_000));
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("is full");
    // Room again, and a slow copy: the probe is under way when the daemon stops.
    await box.rewrite({ name: "cam", bandwidth_limit: "1MB/s" });
    await reloadDaemon(daemon, 1);
    await waitFor(
      async () => (await listFiles(box.dest).catch(() => [])).length > 0,
      30_000,
      "the probe's copy begun",
    );
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  assert.match(log, /Stopped: 0 file\(s\) sent/);
  assert.doesNotMatch(log, /takes files again/, log);
});
