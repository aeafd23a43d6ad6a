/**
 * The hand-written Prometheus exposition: cumulative histogram buckets,
 * failures by class, escaped label values, and `promtool check metrics`.
 */
import assert from "node:assert/strict";
import { JOB_STATES, type JobSnapshot } from "../../../src/status/job_status.ts";
import { Metrics } from "../../../src/status/metrics.ts";
import { runProgram } from "../../helpers/cli.ts";

function snapshot(job: string, freeBytes: number | null = null): JobSnapshot {
  return {
    job,
    method: "rsync",
    target: "u@h:/data",
    state: "paused",
    since: 0,
    reason: null,
    queue: {
      planning: 0,
      queued: 3,
      waiting: 1,
      sending: 2,
      failed: job === "cam1" ? 4 : 0,
      observing: 4,
      unrecorded: 5,
    },
    oldestWaitingSince: job === "cam1" ? 1_700_000_000_000 - 90_500 : null,
    inFlight: [],
    transfers: 0,
    rateBytesPerSecond: 0,
    sent: 0,
    failed: job === "cam1" ? 4 : 0,
    held: false,
    pause: null,
    lastSuccessAt: null,
    cannotSend: job === "cam1" ? 2 : 0,
    unreadable: job === "cam1" ? 1 : 0,
    hookFailures: job === "cam1" ? 1 : 0,
    scheduleFailures: job === "cam1" ? 1 : 0,
    cleanupFailures: job === "cam1" ? 1 : 0,
    freeSpace: freeBytes === null ? null : { bytes: freeBytes, at: 0 },
    watch: null,
  };
}

/** `promtool check metrics` of `text`; its stdout and stderr together. */
async function promtool(text: string): Promise<{ code: number; output: string }> {
  const out = await runProgram("promtool", ["check", "metrics"], { stdin: text });
  return { code: out.code, output: out.stdout + out.stderr };
}

Deno.test("metrics: counters, cumulative duration buckets, failures by class, queue by state", async () => {
  const metrics = new Metrics();
  const sent = (durationMs: number, bytes: number) =>
    metrics.record({
      type: "sent",
      job: "cam1",
      method: "rsync",
      relPath: "a.fits",
      destination: "20240315/a.fits",
      bytes,
      durationMs,
      at: 1_700_000_000_000,
    });
  sent(30, 100);
  sent(700, 200);
  sent(400_000, 300);
  for (const errorClass of ["retry", "retry", "fatal"]) {
    metrics.record({
      type: "failed",
      job: "cam1",
      method: "rsync",
      relPath: "b.fits",
      errorClass,
      reason: "no route",
      final: false,
      attempted: true,
      at: 0,
    });
  }
  // A paused job's two probes: one refused unsent for room (no attempt), one tried.
  for (const attempted of [false, true]) {
    const started = { job: "cam1", method: "rsync", relPaths: ["c.fits"], probe: true, at: 0 };
    metrics.record({ type: "started", ...started });
    metrics.record({
      type: "failed",
      job: "cam1",
      method: "rsync",
      relPath: "c.fits",
      errorClass: "retry-later",
      reason: "no space left",
      final: false,
      attempted,
      at: 0,
    });
  }
  metrics.record({
    type: "started",
    job: "cam1",
    method: "rsync",
    relPaths: [],
    probe: false,
    at: 0,
  });
  // Hooks, schedule actions and clean-ups that failed, as the job tells them (its snapshot's
  // counts, which the page shows, are not what the counters show).
  for (const [extra, times] of [["hook", 4], ["schedule", 5], ["cleanup", 3]] as const) {
    for (let i = 0; i < times; i++) {
      metrics.record({ type: "extraFailed", job: "cam1", method: "rsync", extra, at: 0 });
    }
  }
  const text = metrics.render(
    [snapshot("cam1", 5_000_000_000), snapshot("cam2")],
    {
      version: "0.1.0",
      commit: 'a"b\\c\nd',
      deno: "2.9.6",
    },
    1_700_000_000_000,
    1_700_000_000_000,
  );
  const l = '{job="cam1",method="rsync"';
  assert.ok(text.includes(`image_transfer_files_transferred_total${l}} 3\n`));
  assert.ok(text.includes(`image_transfer_bytes_transferred_total${l}} 600\n`));
  assert.ok(text.includes(`image_transfer_failures_total${l},error_class="retry"} 2\n`));
  assert.ok(text.includes(`image_transfer_failures_total${l},error_class="fatal"} 1\n`));
  assert.ok(text.includes(`image_transfer_failures_total${l},error_class="retry-later"} 1\n`));
  assert.ok(text.includes(`image_transfer_probes_total${l}} 2\n`));
  assert.ok(text.includes(`image_transfer_probes_total{job="cam2",method="rsync"} 0\n`));
  // Every error class from 0, for a job that never failed too.
  assert.ok(
    text.includes(
      `image_transfer_failures_total{job="cam2",method="rsync",error_class="retry-later"} 0\n`,
    ),
  );
  assert.ok(
    text.includes(
      `image_transfer_failures_total{job="cam2",method="rsync",error_class="retry"} 0\n`,
    ),
  );
  // One state series per state, 1 only for the job's own.
  for (const state of JOB_STATES) {
    const value = state === "paused" ? 1 : 0;
    assert.ok(text.includes(`image_transfer_job_state${l},state="${state}"} ${value}\n`), state);
  }
  // Files found and not arrived (observing ones are not complete yet; unrecorded ones wait for the
  // ledger), and the oldest's age.
  assert.ok(text.includes(`image_transfer_files_waiting${l}} 11\n`));
  assert.ok(text.includes(`image_transfer_queue_files${l},state="unrecorded"} 5\n`));
  // Not complete yet, and cannot be looked at now: a gauge, 0 for a job without.
  assert.ok(text.includes("# TYPE image_transfer_files_unreadable gauge\n"));
  assert.ok(text.includes(`image_transfer_files_unreadable${l}} 1\n`));
  assert.ok(text.includes('image_transfer_files_unreadable{job="cam2",method="rsync"} 0\n'));
  // Found and never sendable as they are (said once each): a counter an alert can watch.
  assert.ok(text.includes("# TYPE image_transfer_cannot_send_total counter\n"));
  assert.ok(text.includes(`image_transfer_cannot_send_total${l}} 2\n`));
  // Hooks that failed or could not run: a counter an alert can watch.
  assert.ok(text.includes("# TYPE image_transfer_hook_failures_total counter\n"));
  assert.ok(text.includes(`image_transfer_hook_failures_total${l}} 4\n`));
  assert.ok(text.includes("# TYPE image_transfer_schedule_failures_total counter\n"));
  assert.ok(text.includes(`image_transfer_schedule_failures_total${l}} 5\n`));
  assert.ok(text.includes('image_transfer_hook_failures_total{job="cam2",method="rsync"} 0\n'));
  assert.ok(text.includes("# TYPE image_transfer_cleanup_failures_total counter\n"));
  assert.ok(text.includes(`image_transfer_cleanup_failures_total${l}} 3\n`));
  assert.ok(text.includes(`image_transfer_oldest_waiting_file_age_seconds${l}} 90.5\n`));
  assert.ok(
    text.includes(`image_transfer_oldest_waiting_file_age_seconds{job="cam2",method="rsync"} 0\n`),
  );
  const bucket = (le: string) =>
    Number(
      new RegExp(`_bucket\\{job="cam1",method="rsync",le="${le.replace("+", "\\+")}"\\} (\\d+)`)
        .exec(text)![1],
    );
  assert.deepEqual(["0.05", "0.5", "1", "300", "+Inf"].map(bucket), [1, 1, 2, 2, 3]);
  assert.ok(text.includes(`image_transfer_transfer_duration_seconds_sum${l}} 400.73\n`));
  assert.ok(text.includes(`image_transfer_queue_files${l},state="sending"} 2\n`));
  assert.ok(text.includes(`image_transfer_job_paused${l}} 1\n`));
  // A schedule's window pauses too (the state is `paused`): the help says so, not only "by hand".
  assert.match(text, /^# HELP image_transfer_job_paused .*by a schedule's transfer window/m);
  // Failing files, as the job's snapshot counts them (not also as waiting), 0 for a job without.
  assert.ok(text.includes(`image_transfer_files_failed${l}} 4\n`));
  assert.ok(text.includes(`image_transfer_queue_files${l},state="failed"} 4\n`));
  assert.ok(text.includes(`image_transfer_files_failed{job="cam2",method="rsync"} 0\n`));
  // Free space only where known.
  assert.ok(text.includes(`image_transfer_destination_free_bytes${l}} 5000000000\n`));
  assert.doesNotMatch(text, /image_transfer_destination_free_bytes\{job="cam2"/);
  assert.ok(text.includes('commit="a\\"b\\\\c\\nd"'), "label values escaped");
  const checked = await promtool(text);
  assert.equal(checked.code, 0, checked.output);
  // A broken exposition is refused: the check can fail.
  assert.notEqual(
    (await promtool(
      text.replace(
        "# TYPE image_transfer_job_paused gauge",
        "# TYPE image_transfer_job_paused nonsense",
      ),
    )).code,
    0,
  );
});

Deno.test("metrics: a job its destination pause holds is paused, as status says, whatever its state", async () => {
  const job = (state: JobSnapshot["state"], held: boolean, name: string): JobSnapshot => ({
    ...snapshot(name),
    state,
    held,
  });
  const text = new Metrics().render(
    [
      // `status`: "paused: destination unreachable" / "destination failing" (daemon.json).
      job("unreachable", true, "down"),
      job("failing", true, "refused"),
      // Recovering: files arrive again, the pause lets a few at a time go.
      job("watching", true, "recovering"),
      // Failing without a pause (`run --once`, a login refused): not paused.
      job("failing", false, "once"),
      job("watching", false, "idle"),
    ],
    { version: "0.1.0", commit: "c", deno: "2.9.6" },
    1_700_000_000_000,
    1_700_000_000_000,
  );
  const paused = (name: string) =>
    Number(
      new RegExp(`^image_transfer_job_paused\\{job="${name}",method="rsync"\\} (\\d+)$`, "m")
        .exec(text)?.[1],
    );
  assert.deepEqual(
    ["down", "refused", "recovering", "once", "idle"].map(paused),
    [1, 1, 1, 0, 0],
  );
  assert.match(text, /^# HELP image_transfer_job_paused .*by its destination/m);
  const checked = await promtool(text);
  assert.equal(checked.code, 0, checked.output);
});

Deno.test("metrics: a job removed or renamed by a reload leaves no series behind; its counts come back with it", () => {
  const metrics = new Metrics();
  metrics.record({
    type: "sent",
    job: "cam1",
    method: "rsync",
    relPath: "a.fits",
    destination: "20240315/a.fits",
    bytes: 100,
    durationMs: 30,
    at: 0,
  });
  metrics.record({ type: "extraFailed", job: "cam1", method: "rsync", extra: "hook", at: 0 });
  const build = { version: "0.1.0", commit: "abc", deno: "2.9.6" };
  const render = (...jobs: string[]) =>
    metrics.render(jobs.map((job) => snapshot(job)), build, 0, 0);
  assert.match(
    render("cam1"),
    /^image_transfer_files_transferred_total\{job="cam1",method="rsync"\} 1$/m,
  );
  // cam1 renamed cam1b by a reload.
  const after = render("cam1b");
  assert.doesNotMatch(after, /job="cam1"/);
  assert.match(after, /^image_transfer_files_transferred_total\{job="cam1b",method="rsync"\} 0$/m);
  // Back under its name: its counters go on from where they were, never down.
  const back = render("cam1");
  assert.match(back, /^image_transfer_files_transferred_total\{job="cam1",method="rsync"\} 1$/m);
  assert.match(back, /^image_transfer_hook_failures_total\{job="cam1",method="rsync"\} 1$/m);
  // Renamed cam9 by a reload: its counters go on under the new name.
  metrics.record({
    type: "renamed",
    renamed: [{ from: { job: "cam1", method: "rsync" }, to: { job: "cam9", method: "rsync" } }],
    at: 0,
  });
  metrics.record({ type: "extraFailed", job: "cam9", method: "rsync", extra: "hook", at: 0 });
  assert.match(
    render("cam9"),
    /^image_transfer_hook_failures_total\{job="cam9",method="rsync"\} 2$/m,
  );
});

Deno.test("metrics: the process figures under their conventional names, real values", () => {
  const text = new Metrics().render([], { version: "0.1.0", commit: "x", deno: "2" }, 0);
  const value = (name: string) => {
    const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
    assert.ok(match, `${name} missing`);
    return Number(match[1]);
  };
  const rss = value("process_resident_memory_bytes");
  assert.ok(rss > 1_000_000 && rss < 100_000_000_000, `rss ${rss}`);
  assert.ok(value("process_cpu_seconds_total") > 0);
  const start = value("process_start_time_seconds");
  assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600, `start ${start}`);
  assert.match(text, /# TYPE process_cpu_seconds_total counter\n/);
});
