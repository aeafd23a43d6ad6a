/**
 * A job a reload removed and a later reload brings back (same name and `method`): its `/metrics`
 * counters go on from where they were, the hook and schedule failures as the files sent, never
 * down; its page (`/api/status`) counts from 0, as a new job's. A job a reload renames while its
 * hook runs: that hook's failure counts under its new name. Real `local` daemons, hooks and a
 * scheduled command that fail, reloads (SIGHUP).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runProgram } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

/** The value of the sample `name` of job `cam` (local) in `text`, or `undefined`. */
function camSample(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}\\{job="cam",method="local"\\} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

Deno.test("metrics: a job removed by a reload and brought back goes on counting its hook and schedule failures from where they were", async () => {
  const cam = await Deno.makeTempDir({ prefix: "itx-cam-" });
  try {
    await Deno.mkdir(join(cam, "watch"));
    const camJob = {
      name: "cam",
      watch_path: join(cam, "watch"),
      remote_base_path: join(cam, "dest"),
      on_transfer: ["false"],
      schedules: [{ every_seconds: 1, action: "command", command: ["false"] }],
    };
    await using d = await startStatusDaemon({
      rescan_interval_seconds: 0,
      jobs: [{ name: "north" }, camJob],
    });
    const metrics = async () => await (await fetch(`${d.base}/metrics`)).text();
    const hooksFailed = () => d.daemon.stderr().match(/Hook on_transfer of job cam .*failed/g);
    /** Scheduled commands of cam said failed in the log since its `from`th reload. */
    const schedulesFailed = (from: number) =>
      d.daemon.stderr().split(/Reloaded .*: \d job\(s\)/).slice(from).join("")
        .match(/Schedule \d+ of job cam: command \S*false failed/g)?.length ?? 0;
    const reloads = () => d.daemon.stderr().match(/Reloaded .*: \d job\(s\)/g)?.length ?? 0;
    const files = new Map<string, Uint8Array>();
    const send = async (name: string) => {
      const data = randomBytes(2000 + files.size);
      files.set(name, data);
      const path = join(cam, "watch", name);
      await Deno.writeFile(path, data);
      const night = new Date("2024-03-15T22:00:00Z");
      await Deno.utime(path, night, night);
    };
    for (const name of ["a.fits", "b.fits", "c.fits"]) await send(name);
    await waitFor(() => hooksFailed()?.length === 3, LEAST_CEILING_MS, "three hooks failed");
    await waitFor(() => schedulesFailed(0) >= 3, LEAST_CEILING_MS, "scheduled commands failed");
    const before = await metrics();
    assert.equal(camSample(before, "image_transfer_hook_failures_total"), 3);
    assert.equal(camSample(before, "image_transfer_files_transferred_total"), 3);
    const schedulesBefore = camSample(before, "image_transfer_schedule_failures_total")!;

    // Cam removed by a reload: none of its series is shown.
    const both = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(
      d.config,
      both.replace(/^jobs: .*$/m, `jobs: ${JSON.stringify([{ name: "north" }])}`),
    );
    d.daemon.process.kill("SIGHUP");
    await waitFor(() => reloads() === 1, LEAST_CEILING_MS, "the reload removing cam");
    assert.equal(camSample(await metrics(), "image_transfer_hook_failures_total"), undefined);

    // Cam back, by another reload: one more file, whose hook fails too.
    await Deno.writeTextFile(d.config, both);
    d.daemon.process.kill("SIGHUP");
    await waitFor(() => reloads() === 2, LEAST_CEILING_MS, "the reload bringing cam back");
    await send("d.fits");
    await waitFor(() => hooksFailed()?.length === 4, LEAST_CEILING_MS, "the fourth hook failed");
    await waitFor(() => schedulesFailed(2) >= 1, LEAST_CEILING_MS, "a command of cam back failed");
    for (const [name, data] of files) {
      assert.deepEqual(await Deno.readFile(join(cam, "dest", "20240315", name)), data, name);
    }
    const failedSinceBack = schedulesFailed(2);
    const after = await metrics();
    // Before the fix: 1, the count of the job's new runner.
    assert.equal(camSample(after, "image_transfer_hook_failures_total"), 4);
    assert.equal(camSample(after, "image_transfer_files_transferred_total"), 4);
    assert.equal(camSample(after, "image_transfer_cleanup_failures_total"), 0);
    // Those of before, and at least those said since (before the fix: those said since).
    const schedulesAfter = camSample(after, "image_transfer_schedule_failures_total")!;
    assert.ok(schedulesAfter >= schedulesBefore + failedSinceBack, `${schedulesAfter}`);
    const checked = await runProgram("promtool", ["check", "metrics"], { stdin: after });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    // The page counts the job back from 0, as a new one (docs/reference.md).
    const api = await getJson<{ jobs: Array<{ job: string; sent: number; hookFailures: number }> }>(
      d.base,
      "/api/status",
    );
    const shown = api.jobs.find((job) => job.job === "cam")!;
    assert.deepEqual([shown.sent, shown.hookFailures], [1, 1]);
  } finally {
    await Deno.remove(cam, { recursive: true });
  }
});

Deno.test("metrics: a hook still running as a reload renames its job counts its failure under the new name, as the page does", async () => {
  const cam = await Deno.makeTempDir({ prefix: "itx-cam-" });
  try {
    await Deno.mkdir(join(cam, "watch"));
    // A hook that says it started, then fails once the test lets it end.
    const hook = join(cam, "held hook.sh");
    const [started, release] = [join(cam, "started"), join(cam, "release")];
    await Deno.writeTextFile(
      hook,
      `#!/bin/sh\ntouch '${started}'\nwhile [ ! -e '${release}' ]; do sleep 0.05; done\nexit 3\n`,
      { mode: 0o755 },
    );
    const camJob = {
      name: "cam",
      watch_path: join(cam, "watch"),
      remote_base_path: join(cam, "dest"),
      on_transfer: [hook],
    };
    await using d = await startStatusDaemon({
      rescan_interval_seconds: 0,
      jobs: [{ name: "north" }, camJob],
    });
    const data = randomBytes(3000);
    const path = join(cam, "watch", "a.fits");
    await Deno.writeFile(path, data);
    const night = new Date("2024-03-15T22:00:00Z");
    await Deno.utime(path, night, night);
    await waitFor(() => Deno.stat(started).then(() => true, () => false), LEAST_CEILING_MS, "hook");
    assert.deepEqual(await Deno.readFile(join(cam, "dest", "20240315", "a.fits")), data);

    // Cam renamed cam2 by a reload while its hook runs (the same folder and destination).
    const config = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(d.config, config.replace('"name":"cam"', '"name":"cam2"'));
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reload: job cam renamed to cam2/);
    await Deno.writeTextFile(release, "");
    await d.daemon.waitForOutput(/Hook on_transfer of job cam for .*a\.fits failed: exit code 3/);
    const api = await getJson<{ jobs: Array<{ job: string; hookFailures: number }> }>(
      d.base,
      "/api/status",
    );
    assert.equal(api.jobs.find((job) => job.job === "cam2")?.hookFailures, 1);
    const text = await (await fetch(`${d.base}/metrics`)).text();
    assert.match(text, /^image_transfer_hook_failures_total\{job="cam2",method="local"\} 1$/m);
    assert.doesNotMatch(text, /job="cam"/);
  } finally {
    await Deno.remove(cam, { recursive: true });
  }
});

Deno.test("metrics: names a job cannot send, counted under its name, go with it when a reload renames it (two jobs swapping names too)", async () => {
  const cam = await Deno.makeTempDir({ prefix: "itx-cam-" });
  try {
    await Deno.mkdir(join(cam, "watch"));
    // A name that is not UTF-8: said once, at ERROR, and counted.
    const bad = await runProgram("python3", [
      "-c",
      "import sys; open(sys.argv[1].encode() + b'/bad\\xff.fits', 'wb').write(b'x')",
      join(cam, "watch"),
    ]);
    assert.equal(bad.code, 0, bad.stderr);
    const camJob = {
      name: "cam",
      watch_path: join(cam, "watch"),
      remote_base_path: join(cam, "dest"),
    };
    await using d = await startStatusDaemon({ jobs: [{ name: "north" }, camJob] });
    const cannotSend = async (job: string) => {
      const text = await (await fetch(`${d.base}/metrics`)).text();
      const sample = new RegExp(
        `^image_transfer_cannot_send_total\\{job="${job}",method="local"\\} (\\d+)$`,
        "m",
      );
      return Number(sample.exec(text)?.[1]);
    };
    await waitFor(async () => await cannotSend("cam") === 1, LEAST_CEILING_MS, "the name counted");
    assert.equal(await cannotSend("north"), 0);
    // The two jobs swap names (each keeps its folder and destination).
    const config = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(
      d.config,
      config.replace('"name":"cam"', '"name":"north2"').replace('"name":"north"', '"name":"cam"')
        .replace('"name":"north2"', '"name":"north"'),
    );
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reload: job cam renamed to north/);
    // Before: the count stayed with the name, so the job that has the bad name said 0.
    assert.equal(await cannotSend("north"), 1);
    assert.equal(await cannotSend("cam"), 0);
  } finally {
    await Deno.remove(cam, { recursive: true });
  }
});
