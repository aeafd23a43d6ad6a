/**
 * What a reload's swap of a job's runner keeps when part of it fails: the counts of the runner it
 * replaces when the next one cannot be made, and the count of names its new patterns leave out
 * when the next one's start fails. Real config files, a real ledger, the real local transport.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../../../src/config/load.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { ConfigError } from "../../../src/errors.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileTable } from "../../../src/pipeline/file_table.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { RunningJobs } from "../../../src/pipeline/running_jobs.ts";
import { RecentDurations } from "../../../src/status/api.ts";
import { StatusEvents } from "../../../src/status/events.ts";
import { Metrics } from "../../../src/status/metrics.ts";
import type { JobSummary } from "../../../src/status/job_status.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { createTransport } from "../../../src/transfer/transport.ts";
import { runProgram } from "../../helpers/cli.ts";
import { listArrived, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("a reload whose changed job's next runner cannot be made keeps what the job it replaces sent in the daemon's totals", async () => {
  await using box = await cliSandbox({ name: "cam" });
  const config = await loadConfig(box.config);
  const ledger = Ledger.open(config.state_dir);
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  // A setting that fails as the job's transport is made (a key file gone, say).
  const transport = (job: JobConfig) => {
    if (job.retry_attempts === 7) throw new ConfigError("the key file is gone");
    return createTransport(job, runtimeDir, ledger);
  };
  const options = { once: false, events: new StatusEvents(), runtimeDir };
  let jobs = new RunningJobs(config, transport, ledger, options, () => {});
  const total: JobSummary = { sent: 0, failed: 0 };
  let failure: Error | null = null;
  try {
    await jobs.started;
    const bytes = randomBytes(2000);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await waitFor(() => jobs.runners[0].summary.sent === 1, 30_000, "a.fits sent");
    const [arrived] = await listArrived(box.dest);
    assert.deepEqual(await Deno.readFile(join(box.dest, arrived)), bytes);

    await box.rewrite({ name: "cam", retry_attempts: 7 });
    const next = await loadConfig(box.config);
    // As the daemon does: stop the changed runner, then start the next generation.
    await jobs.stop(total, true, next);
    const before = jobs;
    failure = await (async () => {
      jobs = new RunningJobs(next, transport, ledger, options, () => {}, before);
      await jobs.started;
    })().then(() => null, (error: Error) => error);
  } finally {
    await jobs.stop(total);
    ledger.close();
    await Deno.remove(runtimeDir, { recursive: true });
  }
  assert.deepEqual(total, { sent: 1, failed: 0 });
  // The daemon stops, saying which job could not start.
  assert.match(String(failure?.message), /^Cannot start job cam: the key file is gone$/);
});

Deno.test("a reload's next runner whose start fails says the names its new patterns leave out, once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const original = FileTable.prototype.resumeUnfinished;
  const logs = await captureLogs();
  const ledger = Ledger.open(join(root, "state"));
  let before: JobRunner | undefined;
  let after: JobRunner | undefined;
  try {
    await Deno.mkdir(join(root, "watch"));
    const job = localTestJob(root);
    // Two files waiting in the ledger, which the next config's file_patterns leave out.
    for (const name of ["a.fits", "b.fits"]) {
      await Deno.writeFile(join(job.watch_path, name), randomBytes(100));
      const info = await Deno.stat(join(job.watch_path, name));
      FileRows.of(ledger, job).enqueue(name, {
        size: info.size,
        mtimeMs: info.mtime!.getTime(),
        destination: `20240315/${name}`,
      });
    }
    before = new JobRunner(job, ledger, new LocalTransport(job), { once: false });
    await before.stop(true);
    // The ledger fails once the unfinished rows were looked at (a disk's I/O error, say).
    FileTable.prototype.resumeUnfinished = async function (this: FileTable) {
      await original.call(this);
      throw new Error("disk I/O error");
    };
    const next = { ...job, file_patterns: ["*.fit"] };
    after = new JobRunner(next, ledger, new LocalTransport(next), {
      once: false,
      replaces: before,
    });
    await assert.rejects(after.start(), /disk I\/O error/);
    const said = logs.records.filter((r) => String(r.rawMessage).startsWith("Skipped {count}"));
    assert.equal(said.length, 1);
    assert.equal(said[0].properties.count, 2);
  } finally {
    FileTable.prototype.resumeUnfinished = original;
    await after?.stop();
    ledger.close();
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});

/** The value of `name{job="JOB",...}` in the exposition `text`, per job (series without `le`). */
function perJobSeries(text: string, name: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (
    const [, job, value] of text.matchAll(
      new RegExp(`^${name}\\{job="([^"]+)"[^}]*\\} (\\S+)$`, "gm"),
    )
  ) {
    found[job] = Number(value);
  }
  return found;
}

Deno.test("a reload that swaps two jobs' names, then renames one, keeps each job's durations and /metrics series with the job, as /api/status keeps its counts", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const [a, b] = [join(root, "a"), join(root, "b")];
  for (const folder of [a, b]) await Deno.mkdir(folder);
  const file = join(root, "config.yaml");
  const base = {
    transfer_method: "local",
    stability_window_seconds: 0.2,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
  };
  const write = (first: string, second: string) =>
    writeConfig(file, {
      ...base,
      jobs: [
        { name: first, watch_path: a, remote_base_path: `${a}-dest` },
        { name: second, watch_path: b, remote_base_path: `${b}-dest` },
      ],
    });
  await write("alpha", "beta");
  const config = await loadConfig(file);
  const ledger = Ledger.open(config.state_dir);
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const events = new StatusEvents();
  const metrics = new Metrics();
  const durations = new RecentDurations();
  events.listen((event) => {
    metrics.record(event);
    durations.record(event);
  });
  const options = { once: false, events, runtimeDir };
  const transport = (job: JobConfig) => createTransport(job, runtimeDir, ledger);
  let jobs = new RunningJobs(config, transport, ledger, options, () => {});
  const total: JobSummary = { sent: 0, failed: 0 };
  /** What /api/status and /metrics show of each job, and the durations of a's and b's files. */
  const shown = () => {
    const snapshots = jobs.runners.map((runner) => runner.snapshot());
    const text = metrics.render(snapshots, { version: "0", commit: "x", deno: "2" }, 0);
    return {
      sent: Object.fromEntries(snapshots.map((s) => [s.job, s.sent])),
      files: perJobSeries(text, "image_transfer_files_transferred_total"),
      durations: perJobSeries(text, "image_transfer_transfer_duration_seconds_count"),
      text,
    };
  };
  try {
    await jobs.started;
    const sent = { a1: randomBytes(1500), a2: randomBytes(1600), b1: randomBytes(1700) };
    await Deno.writeFile(join(a, "a1.fits"), sent.a1);
    await Deno.writeFile(join(a, "a2.fits"), sent.a2);
    await Deno.writeFile(join(b, "b1.fits"), sent.b1);
    await waitFor(
      () => jobs.runners[0].summary.sent === 2 && jobs.runners[1].summary.sent === 1,
      30_000,
      "a's two files and b's one",
    );
    const arrived = await listArrived(`${a}-dest`);
    assert.deepEqual(await Deno.readFile(join(`${a}-dest`, arrived[0])), sent.a1);
    const tookA1 = durations.get("alpha", "a1.fits");
    const tookB1 = durations.get("beta", "b1.fits");
    assert.notEqual(tookA1, null);
    assert.notEqual(tookB1, null);

    const reload = async (first: string, second: string) => {
      await write(first, second);
      const next = await loadConfig(file);
      await jobs.stop(total, true, next);
      jobs = new RunningJobs(next, transport, ledger, options, () => {}, jobs);
      await jobs.started;
    };
    // The names swapped: each job's figures go with its watch folder and destination.
    await reload("beta", "alpha");
    let now = shown();
    assert.deepEqual(now.sent, { beta: 2, alpha: 1 });
    assert.deepEqual(now.files, now.sent);
    assert.deepEqual(now.durations, now.sent);
    assert.equal(durations.get("beta", "a1.fits"), tookA1);
    assert.equal(durations.get("alpha", "b1.fits"), tookB1);
    assert.equal(durations.get("alpha", "a1.fits"), null);

    // Renamed: the series of the name it had end, its figures go on under the new one.
    await reload("north", "alpha");
    now = shown();
    assert.deepEqual(now.sent, { north: 2, alpha: 1 });
    assert.deepEqual(now.files, now.sent);
    assert.deepEqual(now.durations, now.sent);
    assert.equal(durations.get("north", "a1.fits"), tookA1);
    assert.equal(durations.get("beta", "a1.fits"), null);
    assert.doesNotMatch(now.text, /job="beta"/);
    const checked = await runProgram("promtool", ["check", "metrics"], { stdin: now.text });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  } finally {
    await jobs.stop(total);
    ledger.close();
    await Deno.remove(runtimeDir, { recursive: true });
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(total, { sent: 3, failed: 0 });
});

Deno.test("a reload that removes a job leaves its waiting hooks owed at once, its running one ends and the tally is said; the job back runs each once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const [watch, other] = [join(root, "watch"), join(root, "other")];
  for (const folder of [watch, other]) await Deno.mkdir(folder);
  // A hook that waits for the gate, then notes its file.
  const gate = join(root, "gate");
  const ran = join(root, "ran.log");
  const hook = join(root, "gated.sh");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\nwhile [ ! -e '${gate}' ]; do sleep 0.05; done\n` +
      `printf '%s\\n' "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${ran}'\n`,
  );
  await Deno.chmod(hook, 0o755);
  const runs = async () =>
    (await Deno.readTextFile(ran).catch(() => "")).split("\n").filter((l) => l !== "").sort();
  const file = join(root, "config.yaml");
  const cam = {
    name: "cam",
    watch_path: watch,
    remote_base_path: join(root, "dest"),
    on_transfer: [hook],
    max_concurrent_hooks: 1,
  };
  const write = (withCam: boolean) =>
    writeConfig(file, {
      transfer_method: "local",
      stability_window_seconds: 0.2,
      night_timezone: "UTC",
      state_dir: join(root, "state"),
      log_file: "",
      jobs: [
        ...(withCam ? [cam] : []),
        { name: "other", watch_path: other, remote_base_path: join(root, "other-dest") },
      ],
    });
  await write(true);
  const logs = await captureLogs();
  const config = await loadConfig(file);
  const ledger = Ledger.open(config.state_dir);
  const runtimeDir = await Deno.makeTempDir({ prefix: "itx-reload-swap-" });
  const options = { once: false, events: new StatusEvents(), runtimeDir };
  const transport = (job: JobConfig) => createTransport(job, runtimeDir, ledger);
  let jobs = new RunningJobs(config, transport, ledger, options, () => {});
  const total: JobSummary = { sent: 0, failed: 0 };
  const reload = async (withCam: boolean) => {
    await write(withCam);
    const next = await loadConfig(file);
    await jobs.stop(total, true, next);
    jobs = new RunningJobs(next, transport, ledger, options, () => {}, jobs);
    await jobs.started;
  };
  const tally = () => logs.records.filter((r) => String(r.rawMessage).startsWith("Hooks of job"));
  const names = ["f1.fits", "f2.fits", "f3.fits"];
  try {
    await jobs.started;
    const bytes = randomBytes(1200);
    for (const name of names) await Deno.writeFile(join(watch, name), bytes);
    await waitFor(() => jobs.runners[0].summary.sent === 3, 30_000, "cam's three files");
    for (const night of await listArrived(join(root, "dest"))) {
      assert.deepEqual(await Deno.readFile(join(root, "dest", night)), bytes);
    }
    // One hook runs (held at the gate), two wait; the reload removes cam.
    await reload(false);
    await Deno.writeTextFile(gate, "");
    await waitFor(() => tally().length === 1, 20_000, "cam's hook tally");
    assert.equal((await runs()).length, 1);
    assert.deepEqual(tally()[0].properties, {
      job: "cam",
      succeeded: 1,
      failed: 0,
      dropped: 0,
      owed: 2,
    });
    // cam back: the two hooks it owes run, each once.
    await reload(true);
    await waitFor(async () => (await runs()).length >= 3, 30_000, "the hooks cam owed");
  } finally {
    await jobs.stop(total);
    ledger.close();
    await logs.stop();
    await Deno.remove(runtimeDir, { recursive: true });
  }
  assert.deepEqual(await runs(), names);
  assert.equal(total.sent, 3);
  await Deno.remove(root, { recursive: true });
});
