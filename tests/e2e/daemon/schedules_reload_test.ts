/**
 * `schedules` over a reload (SIGHUP), with a real daemon through the CLI: a
 * scheduled command running at the reload runs to its end (its result logged
 * and counted), and an entry the reload leaves unchanged keeps its record: an
 * `every_seconds` entry its pace, a cron entry the time it acted for (a clock
 * set back after the reload does not run it again) and a time that passed
 * while the reload had no timer for it (run as the reload ends: a command, a
 * window's pause).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { reloadDaemon, startCli } from "../../helpers/cli.ts";
import { existsSync, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson } from "../../helpers/status.ts";
import { steppedWallClock } from "../../helpers/fake_clock.ts";

/** Write an executable shell script (a command gets no variable of the test's: paths are in it). */
async function script(path: string, body: string): Promise<string> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}`, { mode: 0o755 });
  return path;
}

/**
 * A command that notes its start in `<name>.starts`, then runs until `release` exists; one
 * started after that ends at once, without a note.
 */
function untilReleased(out: string, name: string, end: string): string {
  const release = join(out, "release");
  return `[ -e '${release}' ] && exit 0\necho start >> '${join(out, `${name}.starts`)}'\n` +
    `while [ ! -e '${release}' ]; do sleep 0.1; done\n${end}\n`;
}

Deno.test("schedules (daemon): a command running at a reload runs to its end, its result logged and counted; one of an entry the reload removes ends too", async () => {
  await using box = await cliSandbox();
  const out = join(box.root, "out");
  await Deno.mkdir(out);
  // A long reduction (kept by the reload) and a tidy-up (removed by it), both running then.
  const reduce = await script(
    join(box.root, "reduce.sh"),
    untilReleased(out, "reduce", "echo reduced\nexit 3"),
  );
  const tidy = await script(join(box.root, "tidy.sh"), untilReleased(out, "tidy", "echo tidied"));
  const port = freePort();
  const kept = { every_seconds: 1, action: "command", command: [reduce] };
  const removed = { every_seconds: 1, action: "command", command: [tidy] };
  const keys = { status_listen: `127.0.0.1:${port}`, log_file: "" };
  await box.rewrite({ ...keys, schedules: [removed, kept] });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await waitFor(
      () => existsSync(join(out, "reduce.starts")) && existsSync(join(out, "tidy.starts")),
      30_000,
      "both commands running",
    );
    // Someone edits an unrelated key and takes out the tidy-up.
    await box.rewrite({ ...keys, retry_attempts: 7, schedules: [kept] });
    await reloadDaemon(daemon, 1);
    const mark = daemon.stderr().length;
    // Before the fix the reload killed both ("failed: stopped").
    assert.doesNotMatch(daemon.stderr(), /failed: stopped/);
    assert.match(
      daemon.stderr(),
      /Schedule 1 of job default: command .*reduce\.sh still running: the reload lets it end/,
    );
    // The reload's schedules know the reduction still runs (now entry 0): not started twice.
    await waitFor(
      () =>
        /Schedule 0 of job default \(command\) skipped: still running/.test(
          daemon.stderr().slice(mark),
        ),
      30_000,
      "the kept entry's next time, skipped",
    );
    await Deno.writeTextFile(join(out, "release"), "");
    await daemon.waitForOutput(/command .*reduce\.sh failed: exit code 3; stdout: reduced/);
    await daemon.waitForOutput(/command .*tidy\.sh done; stdout: tidied/);
    assert.equal(await Deno.readTextFile(join(out, "reduce.starts")), "start\n");
    assert.equal(await Deno.readTextFile(join(out, "tidy.starts")), "start\n");
    // Counted as the job's failure, as a command started after the reload would be.
    const status = await getJson<{ jobs: Array<{ scheduleFailures: number }> }>(
      `http://127.0.0.1:${port}`,
      "/api/status",
    );
    assert.equal(status.jobs[0].scheduleFailures, 1, daemon.stderr());
    assert.doesNotMatch(daemon.stderr(), /failed: stopped/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

Deno.test("schedules (daemon): a command still running when the daemon stops is killed, also one a reload let run on", async () => {
  await using box = await cliSandbox();
  const out = join(box.root, "out");
  await Deno.mkdir(out);
  const reduce = await script(join(box.root, "reduce.sh"), untilReleased(out, "reduce", ""));
  const keys = {
    log_file: "",
    schedules: [{ every_seconds: 1, action: "command", command: [reduce] }],
  };
  await box.rewrite(keys);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await waitFor(() => existsSync(join(out, "reduce.starts")), 30_000, "the command running");
    // The job changed (its schedules not): it starts again, the command runs on.
    await box.rewrite({ ...keys, retry_attempts: 7 });
    await reloadDaemon(daemon, 1);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
  assert.match(daemon.stderr(), /command .*reduce\.sh failed: stopped/);
});

Deno.test("schedules (daemon): reloads more often than an every_seconds entry's period do not put it off", async () => {
  await using box = await cliSandbox();
  const ticks = join(box.root, "ticks");
  const tick = await script(join(box.root, "tick.sh"), `echo tick >> '${ticks}'\n`);
  const keys = {
    log_file: "",
    schedules: [{ every_seconds: 20, action: "command", command: [tick] }],
  };
  await box.rewrite(keys);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    // Reloads one after another, each an edit of the job (not of its schedules), so the job
    // starts again each time: before the fix each one started the entry's 20 s again, and it
    // never ran.
    let reloads = 0;
    await waitFor(
      async () => {
        if (existsSync(ticks)) return true;
        await box.rewrite({ ...keys, retry_attempts: 4 + (reloads % 2) });
        await reloadDaemon(daemon, ++reloads);
        return false;
      },
      120_000,
      "the command, with reloads every few seconds",
    );
    assert.ok(reloads >= 1, daemon.stderr());
    await daemon.waitForOutput(/Schedule 0 of job default: command .*tick\.sh done/);
    assert.match(daemon.stderr(), /Schedule 0 of job default: command every 20 s, next in \d+ s/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

/** The six-field cron expression (seconds first, UTC) of `at`. */
function cronAt(at: Date): string {
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
}

Deno.test("schedules (daemon): a clock set back past a cron time that fired before a reload does not run it again", async () => {
  // 15 s from now, to the second: a daily report.
  const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 15_000);
  await using box = await cliSandbox({
    log_file: "",
    schedules: [{ cron: cronAt(at), timezone: "UTC", action: "report" }],
  });
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  const reports = () =>
    daemon.stderr().split("\n").filter((line) => line.includes("Night report of job")).length;
  try {
    await daemon.waitForOutput("Night report of job default", 120_000);
    // The job changed (its schedules not): it starts again.
    await box.rewrite({
      log_file: "",
      schedules: [{ cron: cronAt(at), timezone: "UTC", action: "report" }],
      retry_attempts: 7,
    });
    await reloadDaemon(daemon, 1);
    // NTP corrects a clock 50 s fast: the report's time comes round again (croner looks at the
    // clock at least every 30 s). Before the fix the reload's schedules wrote it a second time.
    await clock.step("-50s");
    await waitFor(
      () => /\(report\) skipped: done at this time already/.test(daemon.stderr()) || reports() > 1,
      120_000,
      "the report's time once more",
    );
    assert.equal(reports(), 1, daemon.stderr());
    assert.equal([...Deno.readDirSync(join(box.stateDir, "reports"))].length, 1);
  } finally {
    await daemon.stop("SIGTERM");
  }
});

Deno.test("schedules (daemon): a cron time that passes while a reload's job waits to start runs as it starts, once", async () => {
  // An hour from now, to the second: a nightly command.
  const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000);
  await using box = await cliSandbox();
  const ran = join(box.root, "ran");
  const nightly = await script(join(box.root, "nightly.sh"), `echo ran >> '${ran}'\n`);
  const keys = {
    log_file: "",
    schedules: [{ cron: cronAt(at), timezone: "UTC", action: "command", command: [nightly] }],
  };
  await box.rewrite(keys);
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  try {
    await daemon.waitForOutput("Watching", 60_000);
    // The watch folder gone (a share not mounted) and the job changed (its schedules not): the
    // reload's job waits for the folder to start, and its schedules with it, while the
    // command's time passes.
    await Deno.remove(box.watch);
    await box.rewrite({ ...keys, retry_attempts: 7 });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reloaded ");
    await clock.step("+3660s");
    await Deno.mkdir(box.watch);
    await waitFor(() => existsSync(ran), 60_000, "the command once the job starts");
    await daemon.waitForOutput(/Schedule 0 of job default: command .*nightly\.sh done/);
    assert.match(
      daemon.stderr(),
      /Schedule 0 of job default \(command\): its time .* passed during the reload: acting now/,
    );
    assert.equal(await Deno.readTextFile(ran), "ran\n");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

Deno.test("schedules (daemon): a pause time that passes while a reload's job waits to start pauses the job as it starts", async () => {
  // A transfer window from an hour from now to three hours from now, to the second.
  const now = Math.ceil(Date.now() / 1000) * 1000;
  const port = freePort();
  const keys = {
    log_file: "",
    status_listen: `127.0.0.1:${port}`,
    schedules: [
      { cron: cronAt(new Date(now + 3_600_000)), timezone: "UTC", action: "pause" },
      { cron: cronAt(new Date(now + 3 * 3_600_000)), timezone: "UTC", action: "resume" },
    ],
  };
  await using box = await cliSandbox(keys);
  const clock = await steppedWallClock(box.root, box.env);
  const daemon = startCli(["run", "-c", box.config], { env: clock.env });
  const state = async () =>
    (await getJson<{ jobs: Array<{ state: string }> }>(`http://127.0.0.1:${port}`, "/api/status"))
      .jobs[0].state;
  try {
    await daemon.waitForOutput("Watching", 60_000);
    assert.equal(await state(), "watching");
    // The reload's job waits for its watch folder while the pause time passes: before the fix
    // the job then sent all through the window (the windows had not changed, so the reload did
    // not look at them, and the pause's timer started after its time). The job changed (its
    // schedules not): it starts again.
    await Deno.remove(box.watch);
    await box.rewrite({ ...keys, retry_attempts: 7 });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reloaded ");
    await clock.step("+3660s");
    await Deno.mkdir(box.watch);
    await daemon.waitForOutput("Transfers of job default paused (schedule 0)");
    assert.equal(await state(), "paused");
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
