/**
 * The status server of a real daemon (`deno run` with the project's
 * permission set): JSON API, actions,
 * `/metrics` checked by `promtool` and against the ledger.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { ledgerCounts, recentDone } from "../../../src/status/ledger_reports.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { headerBytes, imageCards } from "../../helpers/fits.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson, post, startStatusDaemon } from "../../helpers/status.ts";

const HOSTILE = "<img src=x onerror=alert(1)>.fits";

interface Snapshot {
  job: string;
  state: string;
  reason: string | null;
  queue: Record<string, number>;
  since: number;
  sent: number;
  rateBytesPerSecond: number;
  freeSpace: { bytes: number; at: number } | null;
}
interface Status {
  version: string;
  jobs: Snapshot[];
  recent: Array<{ relPath: string; destination: string; size: number; durationMs: number | null }>;
  problems: Array<{ relPath: string; lastError: string; state: string }>;
  nights: Array<{ night: string; files: number; done: number; bytes: number }>;
}

Deno.test("status API: sent files, filters, nights; /metrics passes promtool and matches the ledger", async () => {
  await using d = await startStatusDaemon();
  const sizes = new Map<string, number>();
  for (let i = 0; i < 12; i++) {
    const name = i === 0 ? HOSTILE : `frame ${i}.fits`;
    const bytes = randomBytes(1000 + i * 100);
    await Deno.writeFile(join(d.watch, name), bytes);
    const night = new Date(i % 2 ? "2024-03-15T20:00:00Z" : "2024-03-16T20:00:00Z");
    await Deno.utime(join(d.watch, name), night, night);
    sizes.set(name, bytes.length);
  }
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].sent === 12,
    30_000,
    "12 files sent",
  );
  // Just after the arrivals, the current rate is what they brought in over the last 10 s.
  const { rateBytesPerSecond } = (await getJson<Status>(d.base, "/api/status")).jobs[0];
  const total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
  assert.ok(
    rateBytesPerSecond > 0 && rateBytesPerSecond <= total / 10 + 1,
    `rate ${rateBytesPerSecond} B/s for ${total} bytes`,
  );
  // Night totals are reused for a moment (they read every row): wait for them too.
  await waitFor(
    async () => {
      const nights = (await getJson<Status>(d.base, "/api/status")).nights;
      return nights.reduce((sum, n) => sum + n.done, 0) === 12;
    },
    30_000,
    "night totals",
  );
  const status = await getJson<Status>(d.base, "/api/status");
  assert.equal(status.jobs[0].state, "watching");
  assert.ok(status.recent.some((r) => r.relPath === HOSTILE && r.size === sizes.get(HOSTILE)));
  // Each transfer of this run says how long it took.
  assert.ok(status.recent.every((r) => typeof r.durationMs === "number" && r.durationMs >= 0));
  const hostileAt = join(d.dest, "20240316", HOSTILE);
  assert.equal((await Deno.stat(hostileAt)).size, sizes.get(HOSTILE));

  const nights = status.nights.map((n) => [n.night, n.files, n.done]);
  assert.deepEqual(nights, [["20240316", 6, 6], ["20240315", 6, 6]]);
  const byNight = await getJson<{ transfers: unknown[] }>(d.base, "/api/transfers?night=20240315");
  assert.equal(byNight.transfers.length, 6);
  const byName = await getJson<{ transfers: Array<{ relPath: string }> }>(
    d.base,
    `/api/transfers?state=done&name=${encodeURIComponent("onerror")}`,
  );
  assert.deepEqual(byName.transfers.map((t) => t.relPath), [HOSTILE]);
  const bad = await fetch(`${d.base}/api/transfers?state=nonsense`);
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /state: expected one of/);

  // The destination's free space, asked in the background once the status is read.
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].freeSpace !== null,
    10_000,
    "the destination's free space",
  );
  const { freeSpace } = (await getJson<Status>(d.base, "/api/status")).jobs[0];
  assert.ok(freeSpace!.bytes > 0 && Number.isInteger(freeSpace!.bytes));

  // /metrics: valid exposition, and its counters say what the ledger says.
  const metrics = await (await fetch(`${d.base}/metrics`)).text();
  const check = await new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = check.stdin.getWriter();
  await writer.write(new TextEncoder().encode(metrics));
  await writer.close();
  const checked = await check.output();
  const problems = new TextDecoder().decode(checked.stdout) +
    new TextDecoder().decode(checked.stderr);
  assert.equal(checked.code, 0, problems);
  assert.equal(problems.trim(), "");
  const ledger = Ledger.open(d.state, { readOnly: true })!;
  try {
    const done = ledgerCounts(ledger).find((c) => c.state === "done")!.count;
    const bytes = recentDone(ledger, 100).reduce((sum, row) => sum + row.size, 0);
    const labels = '{job="default",method="local"}';
    assert.ok(
      metrics.includes(`image_transfer_files_transferred_total${labels} ${done}\n`),
      metrics,
    );
    assert.ok(metrics.includes(`image_transfer_bytes_transferred_total${labels} ${bytes}\n`));
    assert.equal(bytes, [...sizes.values()].reduce((a, b) => a + b, 0));
    assert.ok(
      metrics.includes(`image_transfer_transfer_duration_seconds_count${labels} ${done}\n`),
    );
    assert.match(metrics, /^image_transfer_build_info\{version="0\.1\.0",/m);
    assert.match(
      metrics,
      /^image_transfer_destination_free_bytes\{job="default",method="local"\} [1-9]\d*$/m,
    );
    assert.match(
      metrics,
      /^image_transfer_last_success_timestamp_seconds\{job="default",method="local"\} \d/m,
    );
  } finally {
    ledger.close();
  }
});

Deno.test("status API: a failing destination shows its reason; retry after the fix sends it; pause and resume", async () => {
  await using d = await startStatusDaemon({ retry_attempts: 0, rescan_interval_seconds: 0 });
  // The destination folder is blocked by a file of the same name.
  await Deno.writeTextFile(d.dest, "not a folder");
  const bytes = randomBytes(4096);
  await Deno.writeFile(join(d.watch, "first.fits"), bytes);
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).problems.length === 1,
    30_000,
    "the failure",
  );
  let status = await getJson<Status>(d.base, "/api/status");
  assert.equal(status.problems[0].relPath, "first.fits");
  assert.equal(status.problems[0].state, "failed");
  assert.ok(status.problems[0].lastError.length > 0);
  // A file that failed until its fast retries were used up, and nothing arrived since: the job
  // is failing, with the reason (a job failing for 10 minutes is what alerts watch for).
  assert.equal(status.jobs[0].state, "failing");
  assert.equal(status.jobs[0].reason, status.problems[0].lastError);
  // Waiting for its slow retry, it counts as failed only, not also as waiting to retry.
  assert.equal(status.jobs[0].queue.waiting, 0);
  const failedMetric = async () =>
    /^image_transfer_files_failed\{job="default",method="local"\} (\d+)$/m.exec(
      await (await fetch(`${d.base}/metrics`)).text(),
    )?.[1];
  // The ledger's counts are reused for up to a second.
  await waitFor(async () => await failedMetric() === "1", 10_000, "1 failed file in /metrics");

  // Fixed: the retry action sends it.
  await Deno.remove(d.dest);
  await Deno.mkdir(d.dest);
  const retry = await post(d.base, "/api/jobs/default/retry", { file: "first.fits" });
  assert.equal(retry.status, 200);
  assert.deepEqual(await retry.json(), { job: "default", requeued: 1 });
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].sent === 1,
    30_000,
    "the retried file sent",
  );
  const night = (await getJson<Status>(d.base, "/api/status")).recent[0].destination;
  assert.deepEqual(await Deno.readFile(join(d.dest, night)), bytes);
  status = await getJson<Status>(d.base, "/api/status");
  assert.equal(status.jobs[0].state, "watching");
  assert.equal(status.problems.length, 0);
  await waitFor(async () => await failedMetric() === "0", 10_000, "no failed file in /metrics");

  // Pause: a new file waits in the queue; resume sends it.
  const paused = await post(d.base, "/api/jobs/default/pause");
  assert.deepEqual(await paused.json(), { job: "default", state: "paused" });
  await Deno.writeFile(join(d.watch, "second.fits"), bytes);
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].queue.queued === 1,
    30_000,
    "the file queued while paused",
  );
  await new Promise((r) => setTimeout(r, 500));
  status = await getJson<Status>(d.base, "/api/status");
  assert.equal(status.jobs[0].sent, 1);
  assert.equal(status.jobs[0].state, "paused");
  assert.equal(status.jobs[0].reason, "from the status page; Resume there ends it");
  const resumed = await post(d.base, "/api/jobs/default/resume");
  assert.deepEqual(await resumed.json(), { job: "default", state: "watching" });
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].sent === 2,
    30_000,
    "the file sent after resume",
  );
  assert.equal((await post(d.base, "/api/jobs/nope/pause")).status, 404);
  // A job name that is no valid %-escape is an unknown job too, not a server error.
  assert.equal((await post(d.base, "/api/jobs/%E0/pause")).status, 404);
});

Deno.test("status command: live job state from the API while the daemon runs, the ledger when it is down", async () => {
  await using d = await startStatusDaemon();
  await Deno.writeFile(join(d.watch, "a.fits"), randomBytes(1000));
  await d.daemon.waitForOutput("Successfully transferred");
  const env = { HOME: join(d.root, "home") };
  const up = await runCli(["status", "-c", d.config], { env });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`Live \\(${d.base}/\\):`));
  assert.match(
    up.stdout,
    /Job default: watching since .*; pending 0, sending 0, waiting to retry 0; sent 1, failed 0 in this run/,
  );
  assert.match(up.stdout, /Job default: pending 0, transferring 0, done 1, failed 0/);
  // A FITS file whose data has not come yet is pending, said to be not complete yet (the ledger
  // has no row for it).
  await Deno.writeFile(join(d.watch, "partial.fits"), headerBytes(imageCards(100, 100)));
  await waitFor(
    async () =>
      /Job default: watching since .*; pending 1 \(1 not complete yet\), sending 0,/
        .test((await runCli(["status", "-c", d.config], { env })).stdout),
    30_000,
    "the file not complete yet on the live line",
  );
  const json = JSON.parse(
    (await runCli(["status", "--json", "-c", d.config], { env })).stdout,
  );
  assert.equal(json.live.jobs[0].sent, 1);
  // Without network access to the address: the ledger view, and why there is no live one.
  const denied = await runCli(["status", "-c", d.config], {
    env,
    extraFlags: [`--deny-net=${new URL(d.base).host}`],
  });
  assert.equal(denied.code, 0, denied.stderr);
  assert.match(denied.stdout, /Live status unavailable \(.*\); showing what the ledger knows/);
  assert.match(denied.stdout, /done 1/);
  await d.daemon.stop();
  const down = await runCli(["status", "-c", d.config], { env });
  assert.equal(down.code, 0, down.stderr);
  assert.match(down.stdout, /Daemon: not running/);
  assert.doesNotMatch(down.stdout, /Live/);
  assert.match(down.stdout, /a\.fits -> \d{8}\/a\.fits/);
});

Deno.test("status API: after a SIGHUP reload the page shows the new jobs and still answers", async () => {
  await using d = await startStatusDaemon();
  await Deno.writeTextFile(d.config, 'name: "renamed"\n', { append: true });
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput("Reloaded");
  await waitFor(
    async () => {
      const status = await getJson<Status>(d.base, "/api/status");
      return status.jobs.length === 1 && status.jobs[0].job === "renamed";
    },
    30_000,
    "the renamed job",
  );
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(d.watch, "after reload.fits"), bytes);
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].sent === 1,
    30_000,
    "the file sent by the new job",
  );
  const paused = await post(d.base, "/api/jobs/renamed/pause");
  assert.deepEqual(await paused.json(), { job: "renamed", state: "paused" });
});

Deno.test("status command: with a config file that cannot be read now, the live state comes from the page where the daemon serves it", async () => {
  await using d = await startStatusDaemon();
  const env = { HOME: join(d.root, "home") };
  await Deno.writeTextFile(d.config, "retry_atempts: 3\n", { append: true });
  const shown = await runCli(["status", "-c", d.config], { env });
  assert.equal(shown.code, 2, shown.stdout + shown.stderr);
  assert.match(shown.stdout, new RegExp(`Live \\(${d.base}/\\):\n {2}Job default: watching`));
  assert.match(shown.stderr, /unknown key "retry_atempts"/);
});

Deno.test("status command: after a reload that moved status_listen, it asks the page where the daemon still serves it", async () => {
  await using d = await startStatusDaemon();
  const env = { HOME: join(d.root, "home") };
  const text = await Deno.readTextFile(d.config);
  const moved = text.replace(/^status_listen: .*$/m, `status_listen: "127.0.0.1:${freePort()}"`);
  assert.notEqual(moved, text);
  await Deno.writeTextFile(d.config, moved);
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput("Reloaded");
  assert.match(
    d.daemon.stderr(),
    /status_listen is .* in the config, but the status page keeps .*, as the daemon started/,
  );
  // Before, `status` asked the new address, where nothing listens.
  const up = await runCli(["status", "-c", d.config], { env });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, new RegExp(`Live \\(${d.base}/\\):\n {2}Job default: watching`));
  // Moved back to where the page is: nothing to say. (Before, it was compared with the last
  // config read, and said the page kept the address it had never had.)
  await Deno.writeTextFile(d.config, text);
  d.daemon.process.kill("SIGHUP");
  await waitFor(() => d.daemon.stderr().split("Reloaded").length === 3, 30_000, "reloaded again");
  assert.equal(d.daemon.stderr().match(/the status page keeps/g)?.length, 1, d.daemon.stderr());
});

Deno.test("status API: a reload that keeps a job keeps its pause from the page and this run's counts", async () => {
  await using d = await startStatusDaemon();
  const job = async () => (await getJson<Status>(d.base, "/api/status")).jobs[0];
  await Deno.writeFile(join(d.watch, "before.fits"), randomBytes(2000));
  await waitFor(async () => (await job()).sent === 1, 30_000, "the file sent before the reload");
  assert.equal((await post(d.base, "/api/jobs/default/pause")).status, 200);
  const pausedSince = (await job()).since;
  await new Promise((resolve) => setTimeout(resolve, 50));
  await Deno.writeTextFile(d.config, "max_concurrent_transfers: 2\n", { append: true });
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput("Reloaded");
  const after = await job();
  assert.equal(after.state, "paused");
  assert.equal(after.since, pausedSince, "paused since the page's pause, not since the reload");
  assert.equal(after.sent, 1);
  // Still paused: a new file waits until the page resumes the job.
  await Deno.writeFile(join(d.watch, "while paused.fits"), randomBytes(3000));
  await waitFor(async () => (await job()).queue.queued === 1, 30_000, "the file queued");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal((await job()).sent, 1);
  assert.equal((await post(d.base, "/api/jobs/default/resume")).status, 200);
  await waitFor(async () => (await job()).sent === 2, 30_000, "the file sent after the resume");
  await d.daemon.stop();
  // The page's actions are in the log.
  assert.match(d.daemon.stderr(), /Job default paused from the status page; it is paused now/);
  assert.match(d.daemon.stderr(), /Job default resumed from the status page; it is watching now/);
  // The stop line counts each file once, across the reload.
  assert.match(d.daemon.stderr(), /Stopped: 2 file\(s\) sent, 0 failed in this run/);
});

Deno.test("status API: a scheduled resume does not end a pause from the page, and says so", async () => {
  await using d = await startStatusDaemon({
    schedules: [{ every_seconds: 1, action: "resume" }],
  });
  assert.equal((await post(d.base, "/api/jobs/default/pause")).status, 200);
  await d.daemon.waitForOutput(
    "the job stays paused from the status page until it is resumed there",
  );
  const [job] = (await getJson<Status>(d.base, "/api/status")).jobs;
  assert.equal(job.state, "paused");
  await Deno.writeFile(join(d.watch, "waits.fits"), randomBytes(500));
  await waitFor(
    async () => (await getJson<Status>(d.base, "/api/status")).jobs[0].queue.queued === 1,
    30_000,
    "the file queued",
  );
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal((await getJson<Status>(d.base, "/api/status")).jobs[0].sent, 0);
});

Deno.test("status API: several jobs share one page; pausing one leaves the other sending", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-status-jobs-" });
  const folders = (name: string) => ({
    watch: join(root, name, "watch"),
    dest: join(root, name, "dest"),
  });
  const [a, b] = [folders("a"), folders("b")];
  for (const { watch } of [a, b]) await Deno.mkdir(watch, { recursive: true });
  try {
    await using d = await startStatusDaemon({
      jobs: [
        { name: "camera-a", watch_path: a.watch, remote_base_path: a.dest },
        { name: "camera-b", watch_path: b.watch, remote_base_path: b.dest },
      ],
    });
    const jobs = async () =>
      new Map((await getJson<Status>(d.base, "/api/status")).jobs.map((j) => [j.job, j]));
    assert.deepEqual([...(await jobs()).keys()].sort(), ["camera-a", "camera-b"]);
    const paused = await post(d.base, "/api/jobs/camera-b/pause");
    assert.deepEqual(await paused.json(), { job: "camera-b", state: "paused" });
    await Deno.writeFile(join(a.watch, "a1.fits"), randomBytes(2000));
    await Deno.writeFile(join(b.watch, "b1.fits"), randomBytes(2000));
    await waitFor(async () => (await jobs()).get("camera-a")!.sent === 1, 30_000, "job a sends");
    // Job b stays paused with its file waiting; job a's counts are its own.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    let now = await jobs();
    assert.equal(now.get("camera-b")!.state, "paused");
    assert.equal(now.get("camera-b")!.sent, 0);
    await post(d.base, "/api/jobs/camera-b/resume");
    await waitFor(async () => (await jobs()).get("camera-b")!.sent === 1, 30_000, "job b sends");
    now = await jobs();
    assert.equal(now.get("camera-a")!.sent, 1);
    const metrics = await (await fetch(`${d.base}/metrics`)).text();
    for (const job of ["camera-a", "camera-b"]) {
      assert.match(
        metrics,
        new RegExp(`image_transfer_files_transferred_total\\{job="${job}",method="local"\\} 1\\b`),
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status API and /metrics: a job's last arrival outlasts a restart", async () => {
  await using d = await startStatusDaemon();
  await Deno.writeFile(join(d.watch, "a.fits"), randomBytes(2048));
  const lastSuccess = async (base: string) =>
    (await getJson<{ jobs: Array<{ lastSuccessAt: number | null }> }>(base, "/api/status"))
      .jobs[0].lastSuccessAt;
  await waitFor(async () => await lastSuccess(d.base) !== null, 30_000, "the arrival");
  const arrivedAt = (await lastSuccess(d.base))!;
  await d.daemon.stop();

  const again = startCli(["run", "-c", d.config], { env: { HOME: join(d.root, "home") } });
  try {
    await again.waitForOutput("Watching");
    // Nothing arrived in this run: the ledger says when the last file did.
    const after = await lastSuccess(d.base);
    assert.ok(after !== null && Math.abs(after - arrivedAt) < 2_000, `${after} vs ${arrivedAt}`);
    const metrics = await (await fetch(`${d.base}/metrics`)).text();
    const gauge =
      /^image_transfer_last_success_timestamp_seconds\{job="default",method="local"\} (\S+)$/m
        .exec(metrics);
    assert.ok(gauge, metrics);
    assert.equal(Number(gauge[1]), after / 1000);
  } finally {
    await again.stop();
  }
});

Deno.test("status API: after a reload, Pause then Resume on the page make the job watching since the resume, as a window's resume does", async () => {
  await using d = await startStatusDaemon();
  const job = async () => (await getJson<Status>(d.base, "/api/status")).jobs[0];
  const first = await job();
  assert.equal(first.state, "watching");
  // A reload that changes the job: the new one goes on watching since the first start.
  await Deno.writeTextFile(d.config, "max_concurrent_transfers: 2\n", { append: true });
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput("Reload: job default: max_concurrent_transfers");
  await waitFor(() => d.daemon.stderr().split("Watching ").length === 3, 30_000, "rebuilt");
  assert.equal((await job()).since, first.since, "watching since the start, over the reload");
  // Until the wall clock reads a later millisecond than the first `since`.
  await waitFor(() => Date.now() > first.since, 10_000, "a later millisecond");
  assert.equal((await post(d.base, "/api/jobs/default/pause")).status, 200);
  const paused = await job();
  assert.equal(paused.state, "paused");
  assert.ok(paused.since > first.since, "paused since the pause");
  await waitFor(() => Date.now() > paused.since, 10_000, "a later millisecond");
  const resumedAfter = Date.now();
  assert.equal((await post(d.base, "/api/jobs/default/resume")).status, 200);
  const resumed = await job();
  assert.equal(resumed.state, "watching");
  assert.ok(
    resumed.since >= resumedAfter,
    `watching since the resume (${resumedAfter}), not since the start (${resumed.since})`,
  );
});
