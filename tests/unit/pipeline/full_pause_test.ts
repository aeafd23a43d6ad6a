/** The pause of a job whose destination is full, on a manual clock. */
import assert from "node:assert/strict";
import {
  DestinationPause,
  type DestinationPauseOptions,
} from "../../../src/pipeline/destination_pause.ts";
import type { JobPause } from "../../../src/ledger/daemon_lock.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

/** A pause on a manual clock; `reports` holds what it told `onChange`. */
function setup(fullSpeed = 8, options: Partial<DestinationPauseOptions> = {}) {
  const clock = new FakeClock();
  let due = 0;
  const reports: Array<JobPause | null> = [];
  const pause = new DestinationPause({
    job: "test",
    target: "/dest",
    fullSpeed,
    onProbeDue: () => due++,
    probeEveryMs: 10_000,
    clock,
    onChange: (report) => reports.push(report),
    ...options,
  });
  return { clock, pause, due: () => due, reports };
}

/** Pause a {@linkcode setup} (first probe after 1 s) as a destination that cannot be reached,
 * and have its first probe arrive: it recovers. */
function recovering({ clock, pause }: Pick<ReturnType<typeof setup>, "clock" | "pause">): void {
  pause.pause("connection refused", false);
  clock.advance(1_000);
  pause.started();
  pause.ended(true, 1);
}

Deno.test("DestinationPause: running until full; then one probe per interval", () => {
  const { clock, pause, due } = setup();
  assert.equal(pause.room(100), Infinity);
  assert.equal(pause.pause("no space left", true), true, "the pause begins: say so");
  assert.equal(pause.pause("no space left", true), false, "only once");
  assert.equal(pause.room(0), 0, "nothing goes before the probe");
  clock.advance(9_999);
  assert.equal(due(), 0);
  clock.advance(1);
  assert.equal(due(), 1);
  assert.equal(pause.room(3), 1, "one probe, whatever is still on its way");
  assert.equal(pause.started(), true, "this batch is the probe");
  assert.equal(pause.started(), false, "one probe at a time");
  assert.equal(pause.room(1), 0);
  // Refused for room again (the sender pauses the job before the batch ends).
  assert.equal(pause.pause("no space left", true), false, "still the same pause");
  assert.equal(pause.ended(true, 0), false, "the probe did not arrive");
  assert.equal(pause.room(0), 0);
  clock.advance(10_000);
  assert.equal(due(), 2, "the next probe");
});

Deno.test("DestinationPause: a probe that arrives starts a recovery that doubles to full speed", () => {
  const { clock, pause } = setup(8);
  pause.pause("no space left", true);
  clock.advance(10_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "recovering, not running yet");
  assert.equal(pause.paused, true);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.room(1), 1);
  assert.equal(pause.ended(false, 2), false);
  assert.equal(pause.room(0), 4);
  assert.equal(pause.ended(false, 0), false, "a batch without arrivals does not grow it");
  assert.equal(pause.room(0), 4);
  assert.equal(pause.ended(false, 4), true, "full speed: the pause is over");
  assert.equal(pause.room(50), Infinity);
});

Deno.test("DestinationPause: full again while recovering goes back to probing, without a new pause", () => {
  const { clock, pause, due } = setup(1000);
  pause.pause("no space left", true);
  clock.advance(10_000);
  pause.started();
  pause.ended(true, 1);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.pause("no space left", true), false, "same pause, nothing new to say");
  assert.equal(pause.room(0), 0);
  clock.advance(10_000);
  assert.equal(due(), 2);
  // Caught up while recovering (nothing left to send): running again.
  pause.started();
  assert.equal(pause.ended(true, 1), false);
  assert.equal(pause.ended(false, 1, true), true);
  assert.equal(pause.paused, false);
  pause.close();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("DestinationPause: the probe alone never ends the pause while files wait, even at full speed 2", () => {
  const { clock, pause } = setup(2);
  pause.pause("no space left", true);
  clock.advance(10_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "only the probe arrived");
  assert.equal(pause.paused, true);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.ended(false, 1), true, "the batch after it arrived too");
  assert.equal(pause.paused, false);
  pause.close();
});

Deno.test("DestinationPause: a probe every 15 s unless told otherwise", () => {
  const clock = new FakeClock();
  let due = 0;
  const pause = new DestinationPause({
    job: "test",
    target: "/dest",
    fullSpeed: 2,
    onProbeDue: () => due++,
    probeEveryMs: undefined,
    clock,
  });
  pause.pause("no space left", true);
  clock.advance(14_999);
  assert.equal(due, 0);
  clock.advance(1);
  assert.equal(due, 1);
  pause.close();
});

Deno.test("DestinationPause: a destination that cannot be reached pauses the same way, said as such", () => {
  const clock = new FakeClock();
  const changes: Array<string | null> = [];
  const pause = new DestinationPause({
    job: "test",
    target: "obs@freya:/data",
    fullSpeed: 4,
    onProbeDue: () => {},
    onChange: (change) => changes.push(change?.state ?? null),
    probeEveryMs: 10_000,
    clock,
  });
  assert.equal(pause.pause("the connection to obs@freya failed", false), true);
  assert.equal(pause.paused, true);
  assert.equal(pause.full, false, "paused, but not for a full destination");
  assert.equal(pause.room(0), 0);
  clock.advance(10_000);
  assert.equal(pause.started(), true);
  assert.equal(pause.ended(true, 1, true), true, "back once a file arrives");
  assert.deepEqual(changes, ["destination unreachable", null]);
  pause.close();
});

Deno.test("DestinationPause: a destination that cannot be reached gets its first probe sooner", () => {
  const clock = new FakeClock();
  let due = 0;
  const pause = new DestinationPause({
    job: "test",
    target: "obs@freya:/data",
    fullSpeed: 4,
    onProbeDue: () => due++,
    probeEveryMs: 15_000,
    firstProbeMs: 5_000,
    clock,
  });
  pause.pause("the connection to obs@freya was refused", false);
  clock.advance(4_999);
  assert.equal(due, 0);
  clock.advance(1);
  assert.equal(due, 1, "the first probe after the retry delay");
  pause.started();
  // Still refused (the sender pauses the job again before the batch ends).
  pause.pause("the connection to obs@freya was refused", false);
  pause.ended(true, 0);
  clock.advance(14_999);
  assert.equal(due, 1, "then one every interval");
  clock.advance(1);
  assert.equal(due, 2);
  pause.started();
  assert.equal(pause.ended(true, 1, true), true);
  // A full destination waits the whole interval from the start: room does not come back in 5 s.
  pause.pause("no space left", true);
  clock.advance(5_000);
  assert.equal(due, 2);
  clock.advance(10_000);
  assert.equal(due, 3);
  pause.close();
});

Deno.test("DestinationPause: a pause whose reason changes is reported again, from the same moment; its end once", () => {
  const { clock, pause, reports } = setup(4);
  pause.stillDown("refused the login");
  assert.equal(reports.length, 0, "not paused: nothing to say");
  pause.pause("Connection refused", false);
  clock.advance(10_000);
  pause.started();
  pause.pause("Connection refused", false);
  assert.equal(reports.length, 1, "the same reason is not reported twice");
  clock.advance(10_000);
  pause.started();
  // The host is back, but refuses the login (no pause of its own: a fix is needed): said.
  pause.stillDown("refused the login: Permission denied (publickey)");
  assert.equal(reports.length, 2);
  assert.equal(reports[1]?.reason, "refused the login: Permission denied (publickey)");
  assert.equal(reports[1]?.state, "destination unreachable");
  assert.equal(reports[1]?.since, reports[0]?.since, "the pause began when it began");
  clock.advance(10_000);
  pause.started();
  pause.pause("No space left on device", true);
  assert.equal(reports[2]?.state, "destination full");
  clock.advance(10_000);
  pause.started();
  pause.ended(true, 1, true);
  assert.deepEqual(reports.slice(3), [null], "the end, once");
  pause.close();
});

Deno.test("DestinationPause: a pause that turns into another kind (reachable again, but full) is reported since it turned", () => {
  const { clock, pause, reports } = setup(100, { firstProbeMs: 1_000 });
  pause.pause("connection refused", false);
  clock.advance(1_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "the probe arrived: recovering");
  clock.advance(5_000);
  pause.pause("No space left on device", true);
  assert.equal(pause.full, true);
  clock.advance(10_000);
  pause.started();
  pause.pause("the share does not answer", false, 0, "failing");
  // Each kind since it began, ms after the first: as the job's state on the page says it.
  const began = Date.parse(reports[0]!.since);
  assert.deepEqual(reports.map((r) => [r?.state, Date.parse(r!.since) - began, r?.reason]), [
    ["destination unreachable", 0, "connection refused"],
    ["destination full", 6_000, "No space left on device"],
    ["destination failing", 16_000, "the share does not answer"],
  ]);
  pause.close();
});

Deno.test("DestinationPause: a pause that turns full (the host back up, its disk full) says so, once, as one that begins full", async () => {
  const logs = await captureLogs();
  try {
    const { clock, pause } = setup(100, { firstProbeMs: 1_000 });
    recovering({ clock, pause });
    assert.equal(pause.pause("No space left on device", true), false, "the same pause goes on");
    pause.pause("No space left on device", true);
    clock.advance(10_000);
    pause.started();
    pause.ended(true, 0);
    pause.pause("No space left on device (inodes)", true);
    // Unreachable and full by turns (a server that restarts with its disk full): still once.
    for (let flip = 0; flip < 4; flip++) {
      clock.advance(10_000);
      pause.started();
      pause.pause("connection refused", false);
      pause.ended(true, 0);
      clock.advance(10_000);
      pause.started();
      pause.pause("No space left on device", true);
      pause.ended(true, 0);
    }
    assert.equal(logs.count("error", "is full"), 1);
    const said = logs.records.find((r) => String(r.rawMessage).includes("is full"))!;
    assert.equal(said.properties.reason, "No space left on device");
    pause.close();
  } finally {
    await logs.stop();
  }
});

Deno.test("DestinationPause: unreachable again while recovering is a pause of its own, said; caught up with only a failing file left, it ends", () => {
  const { clock, pause, reports } = setup(100, { firstProbeMs: 1_000 });
  assert.equal(pause.pause("connection refused", false), true);
  clock.advance(1_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "the probe arrived: recovering");
  // Down again before full speed: said again (nothing said it was back: the pause had not ended).
  assert.equal(pause.pause("connection refused again", false), true);
  assert.deepEqual(reports.map((r) => r?.reason), [
    "connection refused",
    "connection refused again",
  ]);
  assert.equal(pause.room(0), 0);
  clock.advance(1_000);
  pause.started();
  pause.ended(true, 1);
  // Only a file that fails as no other would is left: its batch delivers nothing, and nothing
  // else waits. The pause is over; that file waits for its own retry.
  assert.equal(pause.ended(false, 0, false), false, "others still wait");
  assert.equal(pause.ended(false, 0, true), true, "caught up");
  assert.equal(pause.paused, false);
  assert.deepEqual(reports.at(-1), null);
  pause.close();
});

Deno.test("DestinationPause: while full, a file smaller than every one refused for room is tried at once", () => {
  const { clock, pause, due } = setup();
  assert.equal(pause.offer(1_000), false, "running: nothing to offer");
  pause.pause("no space left", true, 30_000);
  assert.equal(pause.offer(40_000), false, "larger than the refused: waits for the probe");
  assert.equal(pause.room(0), 0);
  assert.equal(pause.offer(1_000), true, "smaller: it may fit, tried now");
  assert.equal(pause.room(0), 1);
  assert.equal(pause.started(), true, "as the probe");
  assert.equal(pause.offer(500), false, "one probe at a time");
  // It found no room either: the smallest refused is its size now.
  assert.equal(pause.pause("no space left", true, 1_000), false, "the same pause");
  assert.equal(pause.ended(true, 0), false);
  assert.equal(pause.offer(2_000), false);
  assert.equal(pause.offer(999), true);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "it arrived: recovering");
  assert.equal(pause.offer(10), false, "recovering: files go anyway");
  clock.advance(10_000);
  assert.equal(due(), 0, "the probe timer was cancelled by the offers");
  // A destination that cannot be reached takes no offer: its files all fail alike.
  const unreachable = setup().pause;
  unreachable.pause("Connection refused", false);
  assert.equal(unreachable.offer(1), false);
});

Deno.test("DestinationPause: a probe that fails as no other file would tries another at once; with none left, the pause ends", () => {
  const { clock, pause, due, reports } = setup(8, { firstProbeMs: 1_000 });
  assert.equal(pause.pause("connection refused", false), true);
  clock.advance(1_000);
  assert.equal(due(), 1);
  assert.equal(pause.started(), true);
  // The host answers, but this file's folder may not be written: no hold, nothing arrived.
  assert.equal(pause.ended(true, 0, false), false, "other files wait");
  assert.equal(pause.paused, true);
  assert.equal(pause.room(0), 1, "the next file is the probe now, not in 10 s");
  assert.equal(pause.started(), true);
  // That one fails the same way, and nothing else waits: the pause is over.
  assert.equal(pause.ended(true, 0, true), true, "caught up: running again");
  assert.equal(pause.paused, false);
  assert.equal(pause.room(5), Infinity);
  assert.deepEqual(reports.at(-1), null, "the pause's end is reported");
  clock.advance(60_000);
  assert.equal(due(), 1, "no probe timer left behind");
  pause.close();
});

Deno.test("DestinationPause: a probe that fails unexpectedly (a fault of the program, no attempt's outcome) keeps the pause, unsaid; the next probe comes after the wait", async () => {
  const logs = await captureLogs();
  try {
    const { clock, pause, due, reports } = setup(8, { firstProbeMs: 1_000 });
    assert.equal(pause.pause("connection refused", false), true);
    clock.advance(1_000);
    assert.equal(due(), 1);
    assert.equal(pause.started(), true);
    // Nothing else waits (its file waits for its retry): before, the pause ended here and said
    // "The destination /dest takes files again; job test resumes", the host still down.
    assert.equal(pause.ended(true, null, true), false, "the pause holds");
    assert.equal(pause.paused, true);
    assert.equal(logs.count("info", "takes files again"), 0);
    assert.equal(reports.at(-1)?.state, "destination unreachable", "still reported as paused");
    assert.equal(pause.room(0), 0, "no probe before the wait");
    clock.advance(9_999);
    assert.equal(due(), 1);
    clock.advance(1);
    assert.equal(due(), 2, "the next probe after the usual wait");
    assert.equal(pause.started(), true);
    assert.equal(pause.ended(true, 1, true), true, "a probe that arrives ends it");
    assert.equal(logs.count("info", "takes files again"), 1);
    pause.close();
  } finally {
    await logs.stop();
  }
});

Deno.test("DestinationPause: that the destination takes files again is said once per recovery, by one line", async () => {
  const logs = await captureLogs();
  const said = () => logs.count("info", "takes files again");
  try {
    // Paused: said as the pause ends, not when the probe arrives, and not by the batches after.
    const { clock, pause } = setup(8, { firstProbeMs: 1_000 });
    recovering({ clock, pause });
    assert.equal(said(), 0, "recovering: not yet");
    assert.equal(pause.ended(false, 2), false);
    assert.equal(pause.ended(false, 4), true, "full speed");
    assert.equal(said(), 1);
    assert.equal(logs.count("info", "takes files again; job {job} resumes"), 1);
    pause.ended(false, 8);
    assert.equal(said(), 1, "the batches after it say nothing");
    // The whole destination fails without a pause (a login refused): said at the first batch
    // that files arrived in since, once.
    pause.stillDown("authentication refused");
    pause.ended(false, 0);
    assert.equal(said(), 1);
    pause.ended(false, 3);
    pause.ended(false, 3);
    assert.equal(said(), 2);
    assert.equal(logs.count("info", "takes files again; job {job} resumes"), 1, "it never paused");
    // A pause that ends with nothing arrived (the files left fail as no other file would) says
    // it; the first arrival after it does not say it again.
    pause.pause("connection refused", false);
    clock.advance(1_000);
    pause.started();
    assert.equal(pause.ended(true, 0, true), true);
    assert.equal(said(), 3);
    pause.ended(false, 1);
    assert.equal(said(), 3);
    // Files that arrive with no failure of the whole destination before say nothing.
    const quiet = setup(4).pause;
    quiet.ended(false, 5);
    assert.equal(said(), 3);
    pause.close();
  } finally {
    await logs.stop();
  }
});

Deno.test("DestinationPause: a probe refused as the whole destination (a login refused) ends the pause with nothing left, unsaid; the first arrival says it", async () => {
  const logs = await captureLogs();
  const said = () => logs.count("info", "takes files again");
  try {
    const { clock, pause, reports } = setup(8, { firstProbeMs: 1_000 });
    pause.pause("connection refused", false);
    clock.advance(1_000);
    assert.equal(pause.started(), true);
    // The server is back, but refuses the login: every file would fail so.
    pause.stillDown("530 Login incorrect");
    assert.equal(pause.ended(true, 0, true), true, "nothing else waits: the pause ends");
    assert.equal(pause.paused, false);
    assert.deepEqual(reports.at(-1), null);
    // Before the fix: "The destination /dest takes files again; job test resumes".
    assert.equal(said(), 0, "nothing arrived");
    pause.ended(false, 0);
    assert.equal(said(), 0);
    pause.ended(false, 1);
    assert.equal(said(), 1, "said by the first batch that files arrived in");
    assert.equal(logs.count("info", "takes files again; job {job} resumes"), 0);
    // A later probe that fails as a file of its own (not the whole destination) still says it.
    pause.pause("connection refused", false);
    clock.advance(1_000);
    pause.started();
    assert.equal(pause.ended(true, 0, true), true);
    assert.equal(said(), 2);
    pause.close();
  } finally {
    await logs.stop();
  }
});

Deno.test("DestinationPause: probes of files of two nights failing alike over SSH say it once: the night folder in the message is no new reason", async () => {
  const logs = await captureLogs();
  try {
    const { clock, pause } = setup(8, { firstProbeMs: 1_000 });
    const sshFails = (relPath: string, night: string) =>
      pause.pause(
        `Cannot send /watch/${relPath} to obs@h:/data/${night}/${relPath}: connection refused`,
        false,
        10,
        "unreachable",
        relPath,
      );
    sshFails("a.fits", "20240701");
    for (let probe = 0; probe < 20; probe++) {
      clock.advance(clock.nextTimerAt - clock.now());
      pause.started();
      if (probe % 2) sshFails("a.fits", "20240701");
      else sshFails("b.fits", "20240702");
      pause.ended(true, 0);
    }
    assert.equal(logs.count("warning", "still"), 1);
    pause.close();
  } finally {
    await logs.stop();
  }
});

Deno.test("DestinationPause: failed probes of a destination that cannot be reached are said: the first, one whose reason changed, else every 10 min", async () => {
  const logs = await captureLogs();
  const lines = () =>
    logs.records.filter((r) => r.level === "warning").map((r) => r.message.map(String).join(""));
  try {
    const { clock, pause } = setup(8, { firstProbeMs: 1_000, target: "ftp://obs@freya/data" });
    /** A probe of `file` that fails with `reason` (the sender pauses before the batch ends). */
    const probeFails = (file: string, reason: string, kind?: "failing") => {
      clock.advance(clock.nextTimerAt - clock.now());
      assert.equal(pause.started(), true, "a probe");
      pause.pause(`Cannot send /watch/${file}: ${reason}`, false, 10, kind, file);
      pause.ended(true, 0);
    };
    /** The outage begins: a file fails as the whole destination. */
    const outage = () =>
      pause.pause(
        "Cannot send /watch/a.fits: connection refused",
        false,
        10,
        "unreachable",
        "a.fits",
      );
    outage();
    assert.deepEqual(lines(), [], "the pause's own line is an ERROR");
    probeFails("a.fits", "connection refused");
    assert.deepEqual(lines(), [
      "The destination ftp://obs@freya/data still cannot be reached, for under a minute (1 probe(s) failed): " +
      "Cannot send /watch/a.fits: connection refused. Job test stays paused; one file is tried " +
      "every 10 s (said again when the reason changes, else every 10 min)",
    ]);
    // The same reason, through another file too: not said again for 10 min.
    for (let probe = 2; probe <= 30; probe++) {
      probeFails(probe % 2 ? "a.fits" : "night/b.fits", "connection refused");
    }
    assert.equal(lines().length, 1, lines().join("\n"));
    // A new reason is said at once.
    probeFails("a.fits", "530 Login incorrect (too many sessions)");
    assert.equal(lines().length, 2);
    assert.match(lines()[1], /, 5 min on \(31 probe\(s\) failed\): .*530 Login incorrect/);
    // The same one, 10 min after it was said: a reminder, with how long and how many.
    while (clock.now() - 1_000_000 < 15 * 60_000) {
      probeFails("a.fits", "530 Login incorrect (too many sessions)");
    }
    assert.equal(lines().length, 3, lines().join("\n"));
    assert.match(lines()[2], /still cannot be reached, 15 min on \(91 probe\(s\) failed\): .*530/);
    // Its folder gone: it takes no file, said so.
    probeFails("a.fits", "the destination folder /data is gone", "failing");
    assert.match(lines()[3], /^The destination ftp:\/\/obs@freya\/data still takes no file, /);
    // Back: the next pause starts its count and its lines anew.
    clock.advance(clock.nextTimerAt - clock.now());
    pause.started();
    assert.equal(pause.ended(true, 1, true), true);
    outage();
    probeFails("a.fits", "connection refused");
    assert.match(
      lines()[4],
      /, for under a minute \(1 probe\(s\) failed\): Cannot send \/watch\/a\.fits: /,
    );
    // A full destination is said once, never per probe.
    probeFails("a.fits", "connection refused");
    clock.advance(clock.nextTimerAt - clock.now());
    pause.started();
    pause.pause("No space left on device", true, 10);
    assert.equal(lines().length, 5);
    pause.close();
  } finally {
    await logs.stop();
  }
});
