/**
 * A wall clock stepped ahead while the daemon runs (NTP or a GPS fix setting
 * a battery-less PC's clock, a clock set by hand; libfaketime here): what the
 * status page, the metrics and `status` show stays true. A file's transfer
 * takes the seconds it took, not the step; a retry due in ten minutes is not
 * reported overdue by a day.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { reloadDaemon, runCli, startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { steppedWallClock } from "../../helpers/fake_clock.ts";

const DAY_MS = 86_400_000;

/** A daily cron entry (UTC) at the minute `minutes` from now (before it, when negative). */
function dailyUtcCron(minutes: number): string {
  const at = new Date(Date.now() + minutes * 60_000);
  return `${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
}

Deno.test("a wall clock stepped ahead a day: transfer times, waiting ages and retry times stay true", async () => {
  await using box = await cliSandbox();
  const port = freePort();
  await box.rewrite({
    retry_delay_seconds: 600,
    retry_max_delay_seconds: 600,
    night_date_source: "now",
    status_listen: `127.0.0.1:${port}`,
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 60_000);
    await clock.step("+1d");
    const stepped = Date.now() + DAY_MS;
    const night = new Date(stepped).toISOString().slice(0, 10).replaceAll("-", "");
    // A plain file where a sub folder of the night goes: its file fails and waits 10 min.
    await Deno.mkdir(join(box.dest, night), { recursive: true });
    await Deno.writeTextFile(join(box.dest, night, "blocked"), "in the way");
    await Deno.mkdir(join(box.watch, "blocked"));
    await Deno.writeFile(join(box.watch, "blocked", "b.fits"), randomBytes(2000));
    const bytes = randomBytes(200_000);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await waitFor(
      async () => (await listFiles(box.dest)).includes(`${night}/a.fits`),
      90_000,
      "a.fits at the destination",
    );
    assert.deepEqual(await Deno.readFile(join(box.dest, night, "a.fits")), bytes);
    // Both said: the arrival is logged once the ledger holds it (a moment after the rename).
    await waitFor(
      async () => {
        const log = await Deno.readTextFile(box.logFile);
        return /Attempt 1 of .*b\.fits failed/.test(log) &&
          /Successfully transferred .*a\.fits/.test(log);
      },
      90_000,
      "the failed attempt of b.fits and the arrival of a.fits",
    );

    const api = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    const a = api.recent.find((row: { relPath: string }) => row.relPath === "a.fits");
    // Before the fix the step counted as the transfer's time (a day), and the rate fell to nothing.
    assert.ok(a.durationMs < DAY_MS / 2, `a.fits took ${a.durationMs} ms`);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const age = Number(
      metrics.match(/^image_transfer_oldest_waiting_file_age_seconds\{[^}]*\} (\S+)$/m)?.[1],
    );
    assert.ok(age < DAY_MS / 2000, `the waiting file waits ${age} s`);

    const status = await runCli(["status", "--json", "-c", box.config], { env: clock.env });
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout);
    assert.deepEqual(report.overdue, [], "a retry due in ten minutes is not overdue");
    const b = report.problems.find((row: { relPath: string }) => row.relPath === "blocked/b.fits");
    assert.ok(b, status.stdout);
    assert.ok(b.nextAttemptAt > stepped, `next try at ${new Date(b.nextAttemptAt).toISOString()}`);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock stepped ahead over a pause and the later resume: the job sends (the resume listed first)", async () => {
  // Edges two and three hours ahead (UTC, whole hours): the daemon starts outside the window,
  // then the clock jumps four hours, past both. Croner fires each late, in the order the
  // entries are listed; before the fix the stale pause came last and held the job for a day.
  const hour = new Date().getUTCHours();
  await using box = await cliSandbox({
    schedules: [
      { cron: `0 ${(hour + 3) % 24} * * *`, timezone: "UTC", action: "resume" },
      { cron: `0 ${(hour + 2) % 24} * * *`, timezone: "UTC", action: "pause" },
    ],
  });
  const clock = await steppedWallClock(box.root, box.env);
  // With -v: the resume, which finds the job sending already, is said at debug level.
  const daemon = startCli(["run", "-v", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Schedule 1 of job default: pause", 60_000);
    assert.doesNotMatch(daemon.stderr(), /inside a pause window/);
    await clock.step("+4h");
    // Croner looks at the clock at least every 30 s.
    await daemon.waitForOutput("Transfers of job default resumed (schedule 0)", 120_000);
    await Deno.writeFile(join(box.watch, "after the step.fits"), randomBytes(5000));
    await waitFor(
      async () =>
        existsSync(box.dest) &&
        (await listFiles(box.dest)).some((f) => f.endsWith("/after the step.fits")),
      90_000,
      "the file written after the step at the destination",
    );
    assert.match(daemon.stderr(), /Schedule 1 of job default \(pause\) skipped: the clock passed/);
    assert.doesNotMatch(daemon.stderr(), /Transfers of job default paused/);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock set back past a cron time that has fired: the entry does not act a second time", async () => {
  // 15 s from now, to the second (six fields, UTC): a daily report.
  const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 15_000);
  const cron = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
  await using box = await cliSandbox({
    status_listen: "",
    schedules: [{ cron, timezone: "UTC", action: "report" }],
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Night report of job default", 120_000);
    // NTP corrects a clock 50 s fast: the report's time comes round again (croner looks at the
    // clock at least every 30 s, and finds it before that time).
    await clock.step("-50s");
    await daemon.waitForOutput(
      "Schedule 0 of job default (report) skipped: done at this time already",
      120_000,
    );
    const reports = daemon.stderr().split("\n").filter((l) => l.includes("Night report of job"));
    assert.equal(reports.length, 1, daemon.stderr());
    assert.equal([...Deno.readDirSync(join(box.stateDir, "reports"))].length, 1);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock set back past the daemon's start: cron times it never ran at run, not skipped as done", async () => {
  // Every 5 s (six fields, UTC): the trial's every-minute command, faster.
  await using box = await cliSandbox({
    status_listen: "",
    schedules: [{
      cron: "*/5 * * * * *",
      timezone: "UTC",
      action: "command",
      command: ["/usr/bin/true"],
    }],
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  const done = "Schedule 0 of job default: command /usr/bin/true done";
  const said = (text: string) => daemon.stderr().split(text).length - 1;
  try {
    await daemon.waitForOutput(done, 120_000);
    // NTP corrects a clock 3 h fast: the times of the 3 h before the start come round, and the
    // entry never ran at them.
    await clock.step("-3h");
    const before = said(done);
    const skipped = /\(command\) skipped: done at this time already/;
    // Before the fix it was skipped at each of them, said as done already (for 3 h).
    await waitFor(
      () => skipped.test(daemon.stderr()) || said(done) >= before + 2,
      120_000,
      "the entry acting, or skipped, after the step",
    );
    assert.doesNotMatch(daemon.stderr(), skipped);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("the day the clocks go forward over a 02:00-03:00 pause window (Europe/Berlin): no pause that day, said at 03:00; files go on", async () => {
  await using box = await cliSandbox({
    status_listen: "",
    night_timezone: "Europe/Berlin",
    night_date_source: "now",
    schedules: [{ cron: "0 2 * * *", action: "pause" }, { cron: "0 3 * * *", action: "resume" }],
  });
  const clock = await steppedWallClock(box.root, box.env);
  // 45 s before 02:00 CET on 2027-03-28, when the clocks go to 03:00 CEST (01:00 UTC): time for
  // the daemon to start, also on a busy machine.
  await clock.step(`+${Math.round((Date.parse("2027-03-28T00:59:15Z") - Date.now()) / 1000)}s`);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 40_000);
    // Before the fix the config was refused ("this resume comes at the same time as the pause").
    await daemon.waitForOutput(
      "Schedule 0 of job default (pause) skipped: the clocks go forward today, which puts this " +
        "pause and the resume of schedule 1 at one time, 2027-03-28 03:00 +02:00: there is no " +
        "pause window between them today, and transfers go on",
      120_000,
    );
    const bytes = randomBytes(5000);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await waitFor(
      async () =>
        existsSync(box.dest) &&
        (await listFiles(box.dest)).some((name) => name.endsWith("/a.fits")),
      90_000,
      "a.fits at the destination",
    );
    const sent = (await listFiles(box.dest)).find((name) => name.endsWith("/a.fits"))!;
    assert.deepEqual(await Deno.readFile(join(box.dest, sent)), bytes);
    assert.doesNotMatch(daemon.stderr(), /Transfers of job default paused/);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock set back an hour: /api/status counts the files that arrive after it", async () => {
  await using box = await cliSandbox();
  const port = freePort();
  await box.rewrite({ night_date_source: "now", status_listen: `127.0.0.1:${port}` });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  const done = async () => {
    const api = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    const row = api.counts.find((c: { state: string }) => c.state === "done");
    return row?.count ?? 0;
  };
  try {
    await daemon.waitForOutput("Watching", 60_000);
    await Deno.writeFile(join(box.watch, "before.fits"), randomBytes(3000));
    await waitFor(async () => await done() === 1, 90_000, "before.fits counted as done");
    // NTP corrects a clock an hour fast.
    await clock.step("-1h");
    await Deno.writeFile(join(box.watch, "after.fits"), randomBytes(3000));
    await daemon.waitForOutput(/Successfully transferred .*after\.fits/, 90_000);
    // Before the fix the counts read before the step were kept until the clock came back to
    // that time (an hour).
    await waitFor(async () => await done() === 2, 60_000, "after.fits counted as done");
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock set back past a pause window that has ended: the window's pause and resume act again at their times", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  const said = (text: string) => daemon.stderr().split(text).length - 1;
  const resumed = "Transfers of job default resumed (schedule 1)";
  try {
    await daemon.waitForOutput("Watching", 120_000);
    // A window of 10 s, 30 s from now (six fields, UTC, daily), given once the daemon runs: the
    // reload has 30 s to take it up, also on a busy machine.
    const second = (inS: number) => {
      const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + inS * 1000);
      return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
    };
    await box.rewrite({
      status_listen: "",
      schedules: [
        { cron: second(30), timezone: "UTC", action: "pause" },
        { cron: second(40), timezone: "UTC", action: "resume" },
      ],
    }, true);
    await reloadDaemon(daemon, 1);
    await daemon.waitForOutput(resumed, 120_000);
    assert.doesNotMatch(daemon.stderr(), /inside a pause window/);
    // NTP corrects a clock 50 s fast: the window's times come round again (croner looks at
    // the clock at least every 30 s, and finds the pause's before it).
    await clock.step("-50s");
    // Before the fix: "skipped: done at this time already", and the job went on sending inside
    // the window it is in again (or, set back into one, stayed paused past its resume).
    const pausedTwice = /paused \(schedule 0\)[\s\S]*paused \(schedule 0\)/;
    await daemon.waitForOutput(pausedTwice, 120_000);
    await Deno.writeFile(join(box.watch, "in the window.fits"), randomBytes(5000));
    await daemon.waitForOutput(/Successfully transferred .*in the window\.fits/, 120_000);
    const stderr = daemon.stderr();
    assert.equal(said(resumed), 2, stderr);
    assert.ok(
      stderr.lastIndexOf(resumed) < stderr.search(/Successfully transferred .*in the window/),
      `sent inside the window:\n${stderr}`,
    );
    assert.doesNotMatch(stderr, /skipped: done at this time already/);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock stepped into a pause window and out again, no window time on its way: the job pauses, then sends", async () => {
  // A window from three hours ago to one hour ago (UTC, daily): the daemon starts outside it. Set
  // back two hours, the clock is inside it, though no pause time passed (crons fire ahead only).
  await using box = await cliSandbox({
    status_listen: "",
    schedules: [
      { cron: dailyUtcCron(-180), timezone: "UTC", action: "pause" },
      { cron: dailyUtcCron(-60), timezone: "UTC", action: "resume" },
    ],
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 120_000);
    assert.doesNotMatch(daemon.stderr(), /inside a pause window/);
    await clock.step("-2h");
    await daemon.waitForOutput(
      /The wall clock was stepped -720\d s: job default is inside the pause windows/,
      120_000,
    );
    await Deno.writeFile(join(box.watch, "in the window.fits"), randomBytes(5000));
    // Found and queued, and held: not sent inside the window.
    await waitFor(
      async () =>
        /^Job default: pending 1,/m.test((await runCli(["status", "-c", box.config])).stdout),
      60_000,
      "the file queued",
    );
    assert.ok(!existsSync(box.dest) || (await listFiles(box.dest)).length === 0);
    await clock.step("+0");
    await daemon.waitForOutput(
      /stepped 720\d s: job default is outside the pause windows/,
      120_000,
    );
    await daemon.waitForOutput(/Successfully transferred .*in the window\.fits/, 120_000);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock stepped ahead over a pause time: the pause is said once, not by both the step and the late pause", async () => {
  // A window from 5 min to an hour ahead (UTC, daily): the daemon starts outside it, then the
  // clock jumps 10 min, into it. The look at the clock (every 10 s) and the pause's late timer
  // (croner looks at least every 30 s) both act, in either order.
  await using box = await cliSandbox({
    status_listen: "",
    schedules: [
      { cron: dailyUtcCron(5), timezone: "UTC", action: "pause" },
      { cron: dailyUtcCron(60), timezone: "UTC", action: "resume" },
    ],
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-v", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 120_000);
    // The schedules' timers are set (they are said after `Watching`): a step before then leaves
    // no pause time behind it to fire late, only the step's own line.
    await daemon.waitForOutput(/Schedule 1 of job default: resume at/, 120_000);
    assert.doesNotMatch(daemon.stderr(), /inside a pause window/);
    await clock.step("+600s");
    await daemon.waitForOutput(/The wall clock was stepped 60\d s/, 120_000);
    await daemon.waitForOutput(/Transfers of job default paused \(schedule 0\)/, 120_000);
    // Before the fix both said it at info level: two pauses in the log for one.
    const pauses = daemon.stderr().split("\n").filter((line) =>
      /\bINFO\b/.test(line) &&
      /paused \(schedule 0\)|stepped 60\d s: job default is inside/.test(line)
    );
    assert.equal(pauses.length, 1, daemon.stderr());
    await Deno.writeFile(join(box.watch, "in the window.fits"), randomBytes(5000));
    await waitFor(
      async () =>
        /^Job default: pending 1,/m.test((await runCli(["status", "-c", box.config])).stdout),
      60_000,
      "the file queued",
    );
    assert.ok(!existsSync(box.dest) || (await listFiles(box.dest)).length === 0);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("a wall clock wrong when a file was sent and set right later: a new file under its name goes beside its copy, never over it; the file edited in place goes over its own copy", async () => {
  await using box = await cliSandbox();
  const clock = await steppedWallClock(box.root, box.env);
  const noon = new Date("2024-05-02T12:00:00Z");
  const send = async (name: string, bytes: Uint8Array, mtime: Date) => {
    await Deno.writeFile(join(box.watch, name), bytes);
    await Deno.utime(join(box.watch, name), mtime, mtime);
    const run = await runCli(["run", "--once", "-c", box.config], { env: clock.env });
    assert.equal(run.code, 0, run.stderr);
  };
  // Sent while the clock was a day ahead (a PC keeping local time east of UTC, say).
  await clock.step("+1d");
  const first = randomBytes(3000);
  await send("a.fits", first, noon);
  // A day behind: sent as the clock said a day before.
  await clock.step("-1d");
  const edited = randomBytes(3000);
  await send("b.fits", edited, noon);
  await clock.step("+0"); // NTP sets it right.

  // The camera's counter started again: a new file under the name sent.
  await Deno.remove(join(box.watch, "a.fits"));
  const second = randomBytes(3000);
  await send("a.fits", second, new Date(noon.getTime() + 3600_000));
  // Written again in place (the same file): it replaces its own copy.
  {
    using file = await Deno.open(join(box.watch, "b.fits"), { write: true });
    await file.write(randomBytes(100));
  }
  const b = await Deno.readFile(join(box.watch, "b.fits"));
  const later = new Date(noon.getTime() + 7200_000);
  await Deno.utime(join(box.watch, "b.fits"), later, later);
  const run = await runCli(["run", "--once", "-c", box.config], { env: clock.env });
  assert.equal(run.code, 0, run.stderr);

  // Before: the new a.fits replaced the first observation (its birth was before the ahead clock's
  // arrival time), and the edited b.fits went beside its own copy (born after the behind one's).
  assert.deepEqual(await listFiles(box.dest), [
    "20240502/a.fits",
    "20240502/a~2.fits",
    "20240502/b.fits",
  ]);
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240502", "a.fits")), first);
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240502", "a~2.fits")), second);
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240502", "b.fits")), b);
});
