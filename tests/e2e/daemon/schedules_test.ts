/**
 * `schedules`: the cron computation under a chosen time zone (a fixed clock),
 * and a real daemon (through the CLI with its permission set) that runs a
 * command at a cron time in a chosen time zone, writes night reports, and
 * rescans to retry a failed file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { JobSchedules } from "../../../src/pipeline/schedules.ts";
import {
  nextCronRun,
  pausedAt,
  windowEnd,
  zonedTime,
} from "../../../src/pipeline/pause_windows.ts";
import { writeNightReport } from "../../../src/pipeline/night_report.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { reloadDaemon, runCli, startCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { existsSync, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { chromiumPage, getJson, post, startStatusDaemon } from "../../helpers/status.ts";

function job(keys: Record<string, unknown>): JobConfig {
  return testJob("j", {
    watch_path: "/w",
    remote_base_path: "/d",
    transfer_method: "local",
    verify_transfer: "checksum",
    ...keys,
  });
}

/**
 * The schedules of `scheduled` with no ledger table (start, stop, commands, pause and resume use
 * none), rescans that do nothing, `pause` called at each pause, and every resume taken.
 */
function schedulesWithoutLedger(scheduled: JobConfig, pause: () => void = () => {}): JobSchedules {
  return new JobSchedules({
    job: scheduled,
    table: null as unknown as FileRows,
    rescan: () => Promise.resolve(),
    pause,
    windowPaused: () => false,
    resume: () => true,
  });
}

Deno.test("schedules: cron times are read in the entry's time zone, else night_timezone", () => {
  const santiago = job({
    schedules: [{ cron: "0 8 * * *", timezone: "America/Santiago", action: "report" }],
  });
  const entry = santiago.schedules[0];
  // 08:00 in Santiago: UTC-3 in March (summer time), UTC-4 after 7 April 2024.
  assert.equal(
    nextCronRun(entry, santiago, new Date("2024-03-15T00:00:00Z"))?.toISOString(),
    "2024-03-15T11:00:00.000Z",
  );
  assert.equal(
    nextCronRun(entry, santiago, new Date("2024-04-10T00:00:00Z"))?.toISOString(),
    "2024-04-10T12:00:00.000Z",
  );
  const tokyo = job({
    night_timezone: "Asia/Tokyo",
    schedules: [{ cron: "0 8 * * *", action: "rescan" }],
  });
  assert.equal(
    nextCronRun(tokyo.schedules[0], tokyo, new Date("2024-03-14T12:00:00Z"))?.toISOString(),
    "2024-03-14T23:00:00.000Z",
  );
  const interval = job({ schedules: [{ every_seconds: 60, action: "rescan" }] });
  assert.equal(nextCronRun(interval.schedules[0], interval, new Date()), null);
});

Deno.test("schedules: a time is told as the wall clock of the entry's zone with its UTC offset", () => {
  const cases: Array<[at: string, zone: string, told: string]> = [
    // The night summer time starts in Berlin: 01:00 UTC is 03:00 there.
    ["2024-03-31T01:00:00Z", "Europe/Berlin", "2024-03-31 03:00 +02:00"],
    ["2024-03-31T00:59:00Z", "Europe/Berlin", "2024-03-31 01:59 +01:00"],
    ["2024-03-15T11:00:00Z", "America/Santiago", "2024-03-15 08:00 -03:00"],
    ["2024-01-01T18:30:05Z", "Asia/Kolkata", "2024-01-02 00:00:05 +05:30"],
    ["2024-01-01T00:00:00Z", "UTC", "2024-01-01 00:00 +00:00"],
  ];
  for (const [at, zone, told] of cases) assert.equal(zonedTime(new Date(at), zone), told);
});

Deno.test("schedules: the start-up line gives the next run as local time with its offset, not UTC", async () => {
  const logs = await captureLogs();
  try {
    const entries = [
      { cron: "0 8 * * *", timezone: "Pacific/Chatham", action: "rescan" },
      { cron: "0 8 * * *", action: "report" },
    ];
    const scheduled = job({ schedules: entries });
    const schedules = schedulesWithoutLedger(scheduled);
    schedules.start();
    await schedules.stop();
    const lines = logs.records.map((r) => r.message.join(""))
      .filter((line) => line.startsWith("Schedule "));
    const next = (index: number) => nextCronRun(scheduled.schedules[index], scheduled, new Date())!;
    assert.deepEqual(lines, [
      `Schedule 0 of job j: rescan at "0 8 * * *" (Pacific/Chatham), next ${
        zonedTime(next(0), "Pacific/Chatham")
      }`,
      `Schedule 1 of job j: report at "0 8 * * *" (system time zone), next ${
        zonedTime(next(1), undefined)
      }`,
    ]);
    // 08:00 on the wall clock of each zone, with the offset that zone has then.
    assert.match(lines[0], /next \d{4}-\d\d-\d\d 08:00 \+1[23]:45$/);
    assert.match(lines[1], /next \d{4}-\d\d-\d\d 08:00 [+-]\d\d:\d\d$/);
  } finally {
    await logs.stop();
  }
});

Deno.test("schedules: a scheduled command's result line names its schedule, as the skipped line does", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-schedule-result-" });
  const logs = await captureLogs();
  try {
    const slow = join(dir, "slow.sh");
    await Deno.writeTextFile(slow, "#!/bin/sh\necho oops >&2\nsleep 2.5\nexit 7\n", {
      mode: 0o755,
    });
    const quick = join(dir, "quick.sh");
    await Deno.writeTextFile(quick, "#!/bin/sh\necho fine\n", { mode: 0o755 });
    const schedules = schedulesWithoutLedger(job({
      schedules: [
        { every_seconds: 3600, action: "rescan" },
        { every_seconds: 1, action: "command", command: [slow] },
        { every_seconds: 1, action: "command", command: [quick] },
      ],
    }));
    const said = (pattern: RegExp) =>
      logs.records.map((r) => r.message.join("")).find((line) => pattern.test(line));
    schedules.start();
    try {
      await waitFor(() => said(/slow\.sh.* failed/) !== undefined, 20_000, "the failure");
      // On a busy machine the quick one can be skipped too: schedule 1's line is the one asked for.
      await waitFor(() => said(/Schedule 1 .*skipped/) !== undefined, 20_000, "a skipped run");
      await waitFor(() => said(/quick\.sh.* done/) !== undefined, 20_000, "the success");
    } finally {
      await schedules.stop();
    }
    assert.equal(
      said(/slow\.sh.* failed/),
      `Schedule 1 of job j: command ${slow} failed: exit code 7; stderr: oops`,
    );
    assert.equal(
      said(/Schedule 1 .*skipped/),
      "Schedule 1 of job j (command) skipped: still running",
    );
    assert.equal(
      said(/quick\.sh.* done/),
      `Schedule 2 of job j: command ${quick} done; stdout: fine`,
    );
  } finally {
    await logs.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("schedules: a command that fails or cannot run is counted, one a stop ends is not, and the count goes on over a reload", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-schedule-failures-" });
  const logs = await captureLogs();
  try {
    const failing = join(dir, "reduce.sh");
    await Deno.writeTextFile(failing, "#!/bin/sh\nexit 7\n", { mode: 0o755 });
    const gone = join(dir, "notify.sh");
    await Deno.writeTextFile(gone, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const long = join(dir, "stack.sh");
    const started = join(dir, "stacking");
    await Deno.writeTextFile(long, `#!/bin/sh\ntouch '${started}'\nsleep 600\n`, { mode: 0o755 });
    const scheduled = job({
      schedules: [
        { every_seconds: 1, action: "command", command: [failing] },
        { every_seconds: 1, action: "command", command: [gone] },
        { every_seconds: 1, action: "command", command: [long] },
      ],
    });
    await Deno.remove(gone);
    const said = (pattern: RegExp) =>
      logs.records.map((r) => r.message.join("")).some((line) => pattern.test(line));
    const before = schedulesWithoutLedger(scheduled);
    assert.equal(before.failures, 0);
    before.start();
    try {
      await waitFor(
        () =>
          said(/reduce\.sh failed/) && said(/\(command\) failed: not run: .*notify\.sh/) &&
          existsSync(started),
        20_000,
        "both",
      );
    } finally {
      await before.stop();
    }
    const lines = logs.records.map((r) => r.message.join(""));
    // The stop killed stack.sh (said as "failed: stopped"): not a failure of the command.
    assert.ok(lines.some((line) => line.endsWith("stack.sh failed: stopped")), lines.join("\n"));
    const failed = lines.filter((line) => / failed/.test(line) && !/stopped$/.test(line)).length;
    assert.ok(failed >= 2, lines.join("\n"));
    assert.equal(before.failures, failed);
    // A reload's schedules of the same job go on with the count.
    const after = new JobSchedules({
      job: scheduled,
      table: null as unknown as FileRows,
      rescan: () => Promise.resolve(),
      pause: () => {},
      windowPaused: () => false,
      resume: () => true,
    }, before);
    assert.equal(after.failures, failed);
  } finally {
    await logs.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

/** "S M H" of `at` as a wall clock in `timeZone`. */
function wallClock(at: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone,
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)!.value);
  return `${get("second")} ${get("minute")} ${get("hour")}`;
}

Deno.test("schedules (daemon): a command at a cron time in a chosen zone, night reports, a rescan retries a failed file", async () => {
  const box = await cliSandbox();
  const { root, watch, dest, stateDir: state } = box;
  const out = join(root, "out");
  await Deno.mkdir(out);
  const script = join(root, "process night.sh");
  await Deno.writeTextFile(
    script,
    // The folder is written into the script: a command gets no variable of the daemon's but
    // PATH, HOME, LANG and TZ.
    `#!/bin/sh\ndate +%s.%N > "${out}/ran-at"\nenv -0 | grep -z "^IMAGE_TRANSFER_" > "${out}/env"\necho processed\n`,
    { mode: 0o755 },
  );
  // A file where the night folder goes at first: the first file fails for good.
  await Deno.mkdir(dest);
  await Deno.writeTextFile(join(dest, "20240315"), "in the way");
  // A cron time 30 s from now (the daemon has started by then, even on a busy machine), as the
  // wall clock of a zone 13:45 ahead of UTC.
  const zone = "Pacific/Chatham";
  const target = new Date(Math.ceil(Date.now() / 1000) * 1000 + 30_000);
  await box.rewrite({
    retry_attempts: 0,
    rescan_interval_seconds: 0,
    schedules: [
      {
        cron: `${wallClock(target, zone)} * * *`,
        timezone: zone,
        action: "command",
        command: [script, "--night"],
      },
      { every_seconds: 1, action: "report", nights: 2 },
      { every_seconds: 2, action: "rescan" },
    ],
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const data = randomBytes(12_345);
    await Deno.writeFile(join(watch, "a.fits"), data);
    await Deno.utime(join(watch, "a.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    await daemon.waitForOutput("Failed to transfer");
    // Fixed; the scheduled rescan (not a watcher event) sends it.
    await Deno.remove(join(dest, "20240315"));
    await waitFor(() => existsSync(join(dest, "20240315", "a.fits")), 20_000, "the retried file");
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "a.fits")), data);
    await daemon.waitForOutput(/rescanning/);

    // The command ran at its time in that zone, not before (a wrong zone would be hours off; a
    // busy machine may start it late).
    await waitFor(() => existsSync(join(out, "ran-at")), 90_000, "the scheduled command");
    await daemon.waitForOutput(
      /Schedule 0 of job default: command .*process night\.sh done; stdout: processed/,
    );
    const ranAt = Number((await Deno.readTextFile(join(out, "ran-at"))).trim()) * 1000;
    assert.ok(
      ranAt >= target.getTime() - 50 && ranAt <= target.getTime() + 60_000,
      `ran at ${new Date(ranAt).toISOString()}, due ${target.toISOString()}`,
    );
    const env = await Deno.readTextFile(join(out, "env"));
    assert.ok(env.includes("IMAGE_TRANSFER_EVENT=schedule\0"), env);
    assert.ok(env.includes("IMAGE_TRANSFER_JOB=default\0"), env);
    await daemon.waitForOutput(
      /Schedule 0 of job default: command .*process night\.sh done; stdout: processed/,
    );

    // A report (written every second) that has the arrival.
    await waitFor(
      async () => {
        for await (const entry of Deno.readDir(join(state, "reports"))) {
          if (!entry.name.endsWith(".json")) continue;
          const report = JSON.parse(await Deno.readTextFile(join(state, "reports", entry.name)));
          if (report.nights[0]?.files_sent === 1) return true;
        }
        return false;
      },
      20_000,
      "a night report with the file",
    );
    const reports = [...Deno.readDirSync(join(state, "reports"))].map((e) => e.name).sort();
    const last = JSON.parse(await Deno.readTextFile(join(state, "reports", reports.at(-1)!)));
    assert.equal(last.job, "default");
    assert.deepEqual(
      { ...last.nights[0], first_arrival: typeof last.nights[0].first_arrival },
      {
        night: "20240315",
        files_sent: 1,
        bytes_sent: 12_345,
        failed: 0,
        waiting: 0,
        first_arrival: "string",
        last_arrival: last.nights[0].first_arrival,
      },
    );
    await daemon.waitForOutput(
      /Night report of job default, 20240315: 1 file\(s\), 12345 bytes, 0 failed/,
    );
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await box[Symbol.asyncDispose]();
  }
});

/**
 * A local daemon (see `startStatusDaemon`) with a rescan every 2 s whose catch-up checks the last
 * night, once `files` (dated 2024-03-15) are at the destination and the first catch-up found
 * nothing to send again.
 */
async function catchUpDaemon(files: Record<string, Uint8Array>) {
  const running = await startStatusDaemon({
    rescan_interval_seconds: 0,
    schedules: [{ every_seconds: 2, action: "rescan", nights: 1 }],
  });
  const { root, watch, dest, daemon } = running;
  try {
    for (const [name, data] of Object.entries(files)) {
      await Deno.writeFile(join(watch, name), data);
      await Deno.utime(join(watch, name), 0, new Date("2024-03-15T20:00:00Z"));
    }
    const night = join(dest, "20240315");
    await waitFor(
      () => Object.keys(files).every((name) => existsSync(join(night, name))),
      20_000,
      "both files",
    );
    await daemon.waitForOutput(/Catch-up of job default: 1 night folder\(s\) checked, 0 file/);
  } catch (error) {
    await running[Symbol.asyncDispose]();
    throw error;
  }
  return { root, watch, dest, daemon };
}

Deno.test("schedules (daemon): the rescan's catch-up sends again a file deleted or cut short at the destination", async () => {
  const files = { "gone 'a'.fits": randomBytes(20_000), "short.fits": randomBytes(30_000) };
  const { root, watch, dest, daemon } = await catchUpDaemon(files);
  try {
    const night = join(dest, "20240315");
    await Deno.remove(join(night, "gone 'a'.fits"));
    await Deno.truncate(join(night, "short.fits"), 100);
    await waitFor(
      async () => {
        try {
          return (await Deno.stat(join(night, "gone 'a'.fits"))).size === 20_000 &&
            (await Deno.stat(join(night, "short.fits"))).size === 30_000;
        } catch {
          return false;
        }
      },
      20_000,
      "both files sent again",
    );
    for (const [name, data] of Object.entries(files)) {
      assert.deepEqual(await Deno.readFile(join(night, name)), data);
    }
    assert.match(daemon.stderr(), /gone 'a'\.fits is missing at the destination; sending/);
    assert.match(daemon.stderr(), /short\.fits is 100 bytes, not 30000 at the destination/);

    // Missing at the destination with its source gone too: said, not claimed to be sent again.
    await Deno.remove(join(watch, "short.fits"));
    await Deno.remove(join(night, "short.fits"));
    await daemon.waitForOutput(
      /ERROR .*short\.fits is missing at the destination, and its source short\.fits is gone: it cannot be sent again/,
    );
    await daemon.waitForOutput(
      /Catch-up of job default: 1 night folder\(s\) checked, 0 file\(s\) to send again, 1 missing or damaged that cannot be/,
    );
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("schedules (daemon): a destination folder gone (a share not mounted) is not taken by the catch-up for every file lost: nothing is sent again", async () => {
  const files = { "a.fits": randomBytes(20_000), "b.fits": randomBytes(30_000) };
  const { root, dest, daemon } = await catchUpDaemon(files);
  try {
    const night = join(dest, "20240315");
    // The share goes away: its mount point is gone (or empty) while its files are safe on it.
    await Deno.rename(dest, `${dest}.away`);
    await daemon.waitForOutput(
      `none of the 2 file(s) of the last 1 night folder(s) is at ${dest}: the destination folder looks gone`,
    );
    await Deno.rename(`${dest}.away`, dest);
    const sent = () => daemon.stderr().split("Successfully transferred").length - 1;
    assert.equal(sent(), 2, daemon.stderr());
    const checks = () => daemon.stderr().split("night folder(s) checked, 0 file(s)").length - 1;
    const before = checks();
    await waitFor(() => checks() > before, 20_000, "a catch-up with the folder back");
    // Before the fix every file was said missing and sent again (and its hooks run again).
    assert.doesNotMatch(daemon.stderr(), /is missing at the destination/);
    assert.equal(sent(), 2, daemon.stderr());
    for (const [name, data] of Object.entries(files)) {
      assert.deepEqual(await Deno.readFile(join(night, name)), data);
    }
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("schedules (daemon): a file dated ahead (an instrument's wrong clock) does not take the catch-up's last night: the night that is over is checked", async () => {
  const running = await startStatusDaemon({
    rescan_interval_seconds: 0,
    schedules: [{ every_seconds: 2, action: "rescan", nights: 1 }],
  });
  const { watch, dest, daemon } = running;
  try {
    const data = randomBytes(20_000);
    await Deno.writeFile(join(watch, "wrong clock.fits"), randomBytes(100));
    await Deno.utime(join(watch, "wrong clock.fits"), 0, new Date(Date.now() + 200 * 86_400_000));
    // Two files in the night that is over: one stays there (the destination is not gone).
    for (const [name, bytes] of [["a.fits", data], ["b.fits", randomBytes(10)]] as const) {
      await Deno.writeFile(join(watch, name), bytes);
      await Deno.utime(join(watch, name), 0, new Date("2024-03-15T20:00:00Z"));
    }
    await daemon.waitForOutput(/day\(s\) ahead of this machine's clock/);
    await waitFor(
      () => daemon.stderr().split("Successfully transferred").length - 1 === 3,
      20_000,
      "the three files sent",
    );
    await Deno.remove(join(dest, "20240315", "a.fits"));
    // Before the fix the future night was the last one, and the night that is over never checked.
    await waitFor(() => existsSync(join(dest, "20240315", "a.fits")), 20_000, "a.fits sent again");
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", "a.fits")), data);
    assert.match(daemon.stderr(), /a\.fits is missing at the destination; sending a\.fits again/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await running[Symbol.asyncDispose]();
  }
});

Deno.test("schedules (daemon): every_seconds longer than 24.8 days (a monthly report) waits, not fires at once and again every millisecond", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-every-long-" });
  const home = join(root, "home");
  const watch = join(root, "watch");
  for (const dir of [watch, home]) await Deno.mkdir(dir);
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    state_dir: join(root, "state"),
    log_file: "",
    status_listen: "",
    schedules: [
      { every_seconds: 2_592_000, action: "report" },
      { every_seconds: 1, action: "rescan" },
    ],
  });
  const daemon = startCli(["run", "-c", config], { env: { HOME: home } });
  try {
    await daemon.waitForOutput("Schedule 0 of job default: report every 2592000 s");
    const rescans = () => daemon.stderr().split("Schedule 1 of job default: rescanning").length - 1;
    await waitFor(() => rescans() >= 3, 30_000, "three rescans of the other schedule");
    // Before the fix the 30-day timer overflowed: a report every millisecond from the start.
    assert.doesNotMatch(daemon.stderr(), /Night report|TimeoutOverflowWarning/);
    assert.ok(!existsSync(join(root, "state", "reports")), "no report written");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("schedules: a pause window holds from its pause to its resume, in the entries' zones", () => {
  const windowed = job({
    schedules: [
      { cron: "0 18 * * *", timezone: "America/Santiago", action: "pause" },
      { cron: "0 6 * * *", timezone: "America/Santiago", action: "resume" },
    ],
  });
  // 18:00 in Santiago (UTC-3 in March) is 21:00 UTC; 06:00 is 09:00 UTC.
  assert.equal(pausedAt(windowed, new Date("2024-03-15T20:59:00Z")), false);
  assert.equal(pausedAt(windowed, new Date("2024-03-15T21:01:00Z")), true);
  assert.equal(pausedAt(windowed, new Date("2024-03-16T08:59:00Z")), true);
  assert.equal(pausedAt(windowed, new Date("2024-03-16T09:01:00Z")), false);
  assert.equal(pausedAt(job({}), new Date()), false);
});

Deno.test("schedules: a 02:00-03:00 window in Europe/Berlin: none the day the clocks skip 02:00 (the pause and resume meet at 03:00), three hours long the day they go back", () => {
  const night = (pause: string, resume: string) =>
    job({
      night_timezone: "Europe/Berlin",
      schedules: [{ cron: pause, action: "pause" }, { cron: resume, action: "resume" }],
    });
  const pauseWindow = night("0 2 * * *", "0 3 * * *");
  // 2027-03-28: 01:59 CET is 00:59Z; 02:00 CET is 03:00 CEST, 01:00Z. Before the fix the pause,
  // listed first, won the tie at 03:00: paused until the next day's 03:00.
  for (const at of ["2027-03-28T00:59:00Z", "2027-03-28T01:00:00Z", "2027-03-28T05:00:00Z"]) {
    assert.equal(pausedAt(pauseWindow, new Date(at)), false, at);
  }
  assert.equal(pausedAt(pauseWindow, new Date("2027-03-29T00:30:00Z")), true); // 02:30 CEST
  assert.equal(pausedAt(pauseWindow, new Date("2027-03-29T01:00:00Z")), false); // 03:00 CEST
  // The other way round (a transfer window 02:00-03:00): shut all that day.
  const sendWindow = night("0 3 * * *", "0 2 * * *");
  for (const at of ["2027-03-28T00:59:00Z", "2027-03-28T01:00:00Z", "2027-03-28T05:00:00Z"]) {
    assert.equal(pausedAt(sendWindow, new Date(at)), true, at);
  }
  assert.equal(pausedAt(sendWindow, new Date("2027-03-29T00:30:00Z")), false);
  assert.equal(
    windowEnd(sendWindow, new Date("2027-03-27T12:00:00Z")),
    "until its resume at 2027-03-29 02:00 +02:00",
  );
  // 2027-10-31: 02:00 CEST (00:00Z) pauses, once; 02:00 CET (01:00Z) comes again and passes;
  // 03:00 CET (02:00Z) resumes.
  const pause = pauseWindow.schedules[0];
  const pauses = [new Date("2027-10-30T12:00:00Z")];
  for (let i = 0; i < 2; i++) pauses.push(nextCronRun(pause, pauseWindow, pauses.at(-1)!)!);
  assert.deepEqual(pauses.slice(1).map((at) => at.toISOString()), [
    "2027-10-31T00:00:00.000Z",
    "2027-11-01T01:00:00.000Z",
  ]);
  for (
    const [at, paused] of [["2027-10-30T23:59:00Z", false], ["2027-10-31T00:30:00Z", true], [
      "2027-10-31T01:30:00Z",
      true,
    ], ["2027-10-31T02:00:00Z", false]] as const
  ) {
    assert.equal(pausedAt(pauseWindow, new Date(at)), paused, at);
  }
  assert.equal(
    windowEnd(pauseWindow, new Date("2027-10-31T01:30:00Z")),
    "until its resume at 2027-10-31 03:00 +01:00",
  );
});

Deno.test("schedules: a pause every_seconds acts beside a cron resume (no clock edge to be stale against)", async () => {
  const logs = await captureLogs();
  let pauses = 0;
  const schedules = schedulesWithoutLedger(
    job({
      schedules: [
        { every_seconds: 1, action: "pause" },
        { cron: "0 8 * * *", action: "resume" },
      ],
    }),
    () => void pauses++,
  );
  try {
    schedules.start();
    await waitFor(() => pauses >= 2, 30_000, "two pauses");
    const lines = logs.records.map((r) => r.message.join(""));
    assert.ok(!lines.some((line) => line.includes("skipped")), lines.join("\n"));
  } finally {
    await schedules.stop();
    await logs.stop();
  }
});

Deno.test("schedules: a pause without any resume is warned about at start", async () => {
  const logs = await captureLogs();
  try {
    const cases: Array<[string[], number]> = [[["pause"], 1], [["pause", "resume"], 0], [
      ["resume"],
      0,
    ]];
    for (const [actions, warned] of cases) {
      const mark = logs.records.length;
      const entries = actions.map((action, index) => ({ cron: `0 ${6 + index} * * *`, action }));
      const schedules = schedulesWithoutLedger(job({ schedules: entries }));
      schedules.start();
      await schedules.stop();
      const said = logs.records.slice(mark).filter((r) =>
        r.level === "warning" && String(r.rawMessage).includes("none resumes them")
      );
      assert.equal(said.length, warned, actions.join(", "));
    }
  } finally {
    await logs.stop();
  }
});

Deno.test("schedules: run --dry-run inside a pause window says run would start the job paused, until its resume; outside one it says nothing of it", async () => {
  const hour = 3_600_000;
  const now = Math.floor(Date.now() / 1000) * 1000;
  const window = (pause: number, resume: number) => [
    { cron: `${wallClock(new Date(pause), "UTC")} * * *`, timezone: "UTC", action: "pause" },
    { cron: `${wallClock(new Date(resume), "UTC")} * * *`, timezone: "UTC", action: "resume" },
  ];
  await using box = await cliSandbox({ schedules: window(now - hour, now + hour) });
  await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(2880));
  const inside = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(inside.code, 0, inside.stderr);
  assert.match(inside.stdout, /would transfer .*a\.fits/);
  const until = zonedTime(new Date(now + hour), "UTC");
  assert.ok(
    inside.stdout.includes(
      "job default: inside a pause window of its schedules now: `run` starts it paused and " +
        `sends nothing until its resume at ${until}`,
    ),
    inside.stdout,
  );

  await box.rewrite({ schedules: window(now + hour, now - hour) });
  const outside = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(outside.code, 0, outside.stderr);
  assert.match(outside.stdout, /would transfer .*a\.fits/);
  assert.doesNotMatch(outside.stdout, /pause window/);
});

Deno.test("schedules (daemon): inside a pause window nothing is sent, not even what the first scan finds; at the resume time it is", async () => {
  const zone = "Asia/Kathmandu"; // UTC+5:45
  const paused = new Date(Date.now() - 3_600_000);
  // 30 s from now: the daemon has started inside the window by then, even on a busy machine.
  const resume = new Date(Math.ceil(Date.now() / 1000) * 1000 + 30_000);
  const box = await cliSandbox({
    // Files found by the first scan are ready at once: the pause must hold before it.
    stability_window_seconds: 0,
    log_file: "",
    schedules: [
      { cron: `${wallClock(paused, zone)} * * *`, timezone: zone, action: "pause" },
      { cron: `${wallClock(resume, zone)} * * *`, timezone: zone, action: "resume" },
    ],
  });
  const evening = new Date("2024-03-15T20:00:00Z");
  const early = Array.from({ length: 20 }, (_, i) => `early_${i}.fits`);
  const { watch, dest } = box;
  for (const name of early) {
    await Deno.writeFile(join(watch, name), randomBytes(2000));
    await Deno.utime(join(watch, name), evening, evening);
  }
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("inside a pause window");
    await daemon.waitForOutput("Watching");
    const data = randomBytes(10_000);
    await Deno.writeFile(join(watch, "a.fits"), data);
    await Deno.utime(join(watch, "a.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    const target = join(dest, "20240315", "a.fits");
    await waitFor(() => existsSync(target), 90_000, "the file after the resume");
    const arrivedAt = Date.now();
    assert.ok(arrivedAt >= resume.getTime(), `arrived ${arrivedAt - resume.getTime()} ms early`);
    assert.deepEqual(await Deno.readFile(target), data);
    assert.match(daemon.stderr(), /Transfers of job default resumed/);
    // Each arrived (was renamed into place: its ctime, in whole seconds) after the resume.
    for (const name of early) {
      const arrived = join(dest, "20240315", name);
      await waitFor(() => existsSync(arrived), 30_000, name);
      const ctime = Deno.statSync(arrived).ctime!.getTime();
      assert.ok(ctime >= resume.getTime(), `${name} arrived ${resume.getTime() - ctime} ms early`);
    }
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await box[Symbol.asyncDispose]();
  }
});

Deno.test("schedules (daemon): Resume on the status page sends inside a pause window; Pause holds it again", async () => {
  const { box, base, window, writeSchedules } = await windowSetUp("Asia/Kathmandu");
  const { watch, dest } = box;
  await writeSchedules(window);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const state = async () => {
      const s = await getJson<{ jobs: Array<{ state: string; reason: string | null }> }>(
        base,
        "/api/status",
      );
      return s.jobs[0];
    };
    const before = await state();
    assert.equal(before.state, "paused");
    // Until when, as the window's resume entry says it: in its zone, with the offset.
    assert.match(
      before.reason ?? "",
      /^outside a transfer window \(until its resume at \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? \+05:45\)$/,
    );
    {
      // The page says it as a plan, not in the red of a fault.
      await using browser = await chromiumPage();
      await browser.page.goto(base + "/");
      const reason = browser.page.locator(".job .reason");
      await reason.waitFor();
      assert.equal(await reason.textContent(), before.reason);
      assert.equal(await reason.getAttribute("class"), "meta reason");
    }
    const held = randomBytes(5_000);
    await Deno.writeFile(join(watch, "held.fits"), held);
    await Deno.utime(join(watch, "held.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const target = join(dest, "20240315", "held.fits");
    assert.equal(existsSync(target), false, "held by the window");

    // The page's Resume sends now, though the window's own resume is an hour away.
    const resumed = await post(base, "/api/jobs/default/resume");
    assert.equal(resumed.status, 200);
    assert.equal((await resumed.json()).state, "watching");
    await waitFor(() => existsSync(target), 20_000, "the file after Resume");
    assert.deepEqual(await Deno.readFile(target), held);

    // A reload that keeps the schedules keeps the Resume: the window does not close again.
    await reloadDaemon(daemon, 1);
    assert.equal((await state()).state, "watching");
    const afterReload = randomBytes(700);
    await Deno.writeFile(join(watch, "after-reload.fits"), afterReload);
    await Deno.utime(join(watch, "after-reload.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    const sentAfterReload = join(dest, "20240315", "after-reload.fits");
    await waitFor(() => existsSync(sentAfterReload), 20_000, "the file after the reload");
    assert.deepEqual(await Deno.readFile(sentAfterReload), afterReload);
    // So does one that adds a schedule other than a window (the windows are the same).
    await writeSchedules([...window, { every_seconds: 3600, action: "rescan" }]);
    await reloadDaemon(daemon, 2);
    assert.equal((await state()).state, "watching");

    // Pause holds again.
    assert.equal((await (await post(base, "/api/jobs/default/pause")).json()).state, "paused");
    await Deno.writeFile(join(watch, "later.fits"), randomBytes(100));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(existsSync(join(dest, "20240315", "later.fits")), false);
    assert.equal((await readdirNames(dest)).length, 1, "only the night of held.fits");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await box[Symbol.asyncDispose]();
  }
});

/**
 * A local job with a status page (see `cliSandbox`) and a pause window of `zone` open now (paused
 * since an hour ago, until in an hour); `writeSchedules` writes its config with the schedules given.
 */
async function windowSetUp(zone: string) {
  const box = await cliSandbox();
  const port = freePort();
  const around = (ms: number) => `${wallClock(new Date(Date.now() + ms), zone)} * * *`;
  const window = [
    { cron: around(-3_600_000), timezone: zone, action: "pause" },
    { cron: around(3_600_000), timezone: zone, action: "resume" },
  ];
  const writeSchedules = (schedules: unknown[]) =>
    box.rewrite({ status_listen: `127.0.0.1:${port}`, schedules });
  return { box, base: `http://127.0.0.1:${port}`, window, writeSchedules };
}

async function readdirNames(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name);
}

Deno.test("schedules (daemon): a reload that changes the schedules applies the new windows at once", async () => {
  const { box, base, window, writeSchedules } = await windowSetUp("UTC");
  const { watch, dest } = box;
  await writeSchedules([]);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const state = async () =>
      (await getJson<{ jobs: Array<{ state: string }> }>(base, "/api/status")).jobs[0].state;
    assert.equal(await state(), "watching");
    // A window added by a reload, open now: paused at once.
    await writeSchedules(window);
    await reloadDaemon(daemon, 1);
    assert.equal(await state(), "paused");
    const file = join(watch, "held.fits");
    await Deno.writeFile(file, randomBytes(600));
    await Deno.utime(file, 0, new Date("2024-03-15T20:00:00Z"));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const target = join(dest, "20240315", "held.fits");
    assert.equal(existsSync(target), false, "held by the new window");
    // The window taken out again by the next reload: the pause it made ends.
    await writeSchedules([]);
    await reloadDaemon(daemon, 2);
    assert.equal(await state(), "watching");
    await waitFor(() => existsSync(target), 20_000, "the file once the window is gone");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await box[Symbol.asyncDispose]();
  }
});

/** Send SIGHUP and wait until the `nth` reload's job watches again. */
Deno.test("schedules: two reports of one job in the same second (a daily and a weekly one) are both kept", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-reports-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    const rows = new FileRows(ledger, "j", "local:/d");
    const now = new Date("2024-03-18T08:00:00.250Z");
    const nights = [1, 7, 30];
    const files = await Promise.all(nights.map((n) => writeNightReport(job({}), rows, n, now)));
    assert.equal(new Set(files).size, 3, files.join(", "));
    const kept = [...Deno.readDirSync(join(root, "state", "reports"))].map((e) => e.name).sort();
    assert.deepEqual(kept, [
      "j-20240318T080000Z-2.json",
      "j-20240318T080000Z-3.json",
      "j-20240318T080000Z.json",
    ]);
    for (const file of files) {
      assert.equal(JSON.parse(await Deno.readTextFile(file)).generated_at, now.toISOString());
    }
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
