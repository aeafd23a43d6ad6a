/**
 * A job's live status: the current transfer rate is what arrived over the
 * last ten seconds, and the state changes say since when.
 */
import assert from "node:assert/strict";
import { JobStatus, RATE_WINDOW_MS } from "../../../src/status/job_status.ts";

Deno.test("job status: the rate counts the bytes that arrived in the last ten seconds", () => {
  const status = new JobStatus("default", "scp");
  assert.equal(status.rate(), 0, "nothing arrived yet");
  status.sent("a.fits", "20240315/a.fits", 4_000_000);
  status.sent("b.fits", "20240315/b.fits", 6_000_000);
  const now = Date.now();
  assert.equal(status.rate(now), 10_000_000 / (RATE_WINDOW_MS / 1000));
  // Once they are older than the window, the rate falls back to zero.
  assert.equal(status.rate(now + RATE_WINDOW_MS + 1), 0);
});

Deno.test("job status: a file sent for a minute counts at the rate it was sent, not all at once", () => {
  const status = new JobStatus("default", "scp");
  const started = Date.now() - 60_000;
  status.sent("cube.fits", "20240315/cube.fits", 600_000_000, started);
  // 600 MB over 60 s: 10 MB/s, of which the last ten seconds hold a sixth.
  const now = Date.now();
  assert.ok(Math.abs(status.rate(now) - 10_000_000) < 200_000, String(status.rate(now)));
  // Half the window later, half of that part is still in it.
  assert.ok(Math.abs(status.rate(now + RATE_WINDOW_MS / 2) - 5_000_000) < 200_000);
});

Deno.test("job status: paused from the page or by a transfer window, with the window's reason", () => {
  const status = new JobStatus("default", "local");
  assert.equal(status.state(false).state, "watching");
  status.windowPaused = true;
  assert.deepEqual(
    [status.paused, status.state(false).state, status.state(false).reason],
    [true, "paused", "outside a transfer window"],
  );
  // With when the window's pause ends, as the runner gives it.
  status.windowPaused = "until its resume at 2024-03-16 06:00 +01:00";
  assert.equal(
    status.state(false).reason,
    "outside a transfer window (until its resume at 2024-03-16 06:00 +01:00)",
  );
  status.windowPaused = false;
  status.userPaused = true;
  // Said as such (before: no reason, so `status` gave none where the log alone said why).
  assert.deepEqual(
    [status.state(false).state, status.state(false).reason],
    ["paused", "from the status page; Resume there ends it"],
  );
  status.userPaused = false;
  assert.equal(status.state(true).state, "full");
});

Deno.test("job status: one failing file is its own problem; the connection makes it unreachable; every file failing makes it failing", () => {
  const status = new JobStatus("cam", "scp");
  status.sent("a.fits", "20240315/a.fits", 10);
  // One file that cannot be placed while others arrive: the job goes on watching.
  status.failed("blocked.fits", "retry-later", "a file named 20240316 is in the way", false);
  assert.equal(status.state(false).state, "watching");
  status.sent("b.fits", "20240315/b.fits", 10);
  status.failed("blocked.fits", "retry-later", "a file named 20240316 is in the way", false);
  assert.equal(status.state(false).state, "watching");

  // Every file failing for another reason than the connection: failing, with the reason.
  status.failed("c.fits", "retry-later", "permission denied at the destination", false);
  assert.deepEqual(
    [status.state(false).state, status.state(false).reason],
    ["failing", "permission denied at the destination"],
  );

  // Authentication refused (a fatal error, for every file): the destination is unreachable.
  const refused = "authentication was refused for obs@freya: install your public key";
  status.failed("d.fits", "fatal", refused, true, "connection");
  assert.deepEqual([status.state(false).state, status.state(false).reason], [
    "unreachable",
    refused,
  ]);
  // A full destination and a ledger that cannot be written say so first.
  assert.equal(status.state(true).state, "full");
  status.ledgerProblem = "database or disk is full";
  assert.deepEqual([status.state(true).state, status.state(true).reason], [
    "ledger_error",
    "database or disk is full",
  ]);
  status.ledgerProblem = null;
  // An arrival clears what the failures said.
  status.sent("e.fits", "20240315/e.fits", 10);
  assert.deepEqual(status.state(false), {
    ...status.state(false),
    state: "watching",
    reason: null,
  });
  // A destination folder that is gone fails every file alike: failing from the first one.
  const gone = "the destination folder /mnt/share is gone (a share that is not mounted?): …";
  status.failed("f.fits", "retry-later", gone, false, "destination");
  assert.deepEqual([status.state(false).state, status.state(false).reason], ["failing", gone]);
});

Deno.test("job status: a failure the host answered ends unreachable (its reason is out of date)", () => {
  const status = new JobStatus("cam", "scp");
  const changed = "the host key of freya has CHANGED";
  status.failed("a.fits", "fatal", changed, false, "connection");
  assert.deepEqual([status.state(false).state, status.state(false).reason], [
    "unreachable",
    changed,
  ]);
  // The server is back, but the night folder cannot be written: every file fails there.
  const denied = "scp: /data/20240315/a.fits: Permission denied";
  status.failed("a.fits", "retry", denied, false);
  status.failed("b.fits", "retry", denied, false);
  assert.deepEqual([status.state(false).state, status.state(false).reason], ["failing", denied]);
});

Deno.test("job status: before any file arrived, a lone file that used up its fast retries makes the job failing", () => {
  const status = new JobStatus("cam", "scp");
  const denied = "scp: /data/in/x.fits: Permission denied";
  status.failed("x.fits", "retry", denied, false);
  assert.equal(status.state(false).state, "watching", "one attempt of one file: its own problem");
  status.failed("x.fits", "retry", denied, true);
  status.gaveUp("x.fits");
  assert.deepEqual([status.state(false).state, status.state(false).reason], ["failing", denied]);
  // A file that arrives says the job works; the given-up file alone is its own problem again.
  status.sent("y.fits", "20240315/y.fits", 10);
  assert.equal(status.state(false).state, "watching");
  status.failed("x.fits", "retry", denied, true);
  status.gaveUp("x.fits");
  assert.equal(status.state(false).state, "watching", "once the job has delivered");
});

Deno.test("job status: a watch folder that cannot be read makes the job failing, asked of the watch each time", () => {
  let problem: string | null = "the share (fuse) is not mounted there";
  const status = new JobStatus("cam", "local", undefined, undefined, () => problem);
  const away = status.state(false);
  assert.equal(away.state, "failing");
  assert.match(away.reason ?? "", /^the watch folder cannot be read: the share \(fuse\)/);
  problem = null;
  assert.equal(status.state(false).state, "watching");
});

Deno.test("job status: a reload keeps a job unreachable or failing since the trouble began", async () => {
  const refused = "the connection to freya failed (Connection refused)";
  const before = new JobStatus("cam", "rsync");
  before.sent("a.fits", "20240315/a.fits", 10);
  before.failed("b.fits", "retry-later", refused, false, "connection");
  const outage = before.state(false);
  assert.deepEqual([outage.state, outage.reason], ["unreachable", refused]);
  // Time passes before the reload (SIGHUP), as in a night where the server is down for hours.
  while (Date.now() <= outage.since) await new Promise((r) => setTimeout(r, 1));
  const after = new JobStatus("cam", "rsync");
  after.continueFrom(before);
  assert.deepEqual(after.state(false), outage, "the next runner says what the last one said");
  // Its own first attempt is refused too: still unreachable since the outage began.
  after.failed("b.fits", "retry-later", refused, false, "connection");
  assert.deepEqual(after.state(false), outage);
  // An arrival ends it.
  after.sent("b.fits", "20240315/b.fits", 10);
  assert.equal(after.state(false).state, "watching");

  // Every file failing (a folder that may not be written): failing, kept over a reload.
  const denied = "cannot create the folder: permission denied";
  after.failed("c.fits", "retry", denied, false);
  after.failed("d.fits", "retry", denied, false);
  const failing = after.state(false);
  assert.deepEqual([failing.state, failing.reason], ["failing", denied]);
  while (Date.now() <= failing.since) await new Promise((r) => setTimeout(r, 1));
  const next = new JobStatus("cam", "rsync");
  next.continueFrom(after);
  assert.deepEqual(next.state(false), failing);
  assert.deepEqual(next.summary, { sent: 2, failed: 0 });
});

Deno.test("job status: a reload while the destination is full keeps since when it was full", async () => {
  const noRoom = "no space left on the destination";
  const before = new JobStatus("cam", "scp");
  before.failed("a.fits", "retry-later", noRoom, false);
  before.failed("b.fits", "retry-later", noRoom, false);
  const full = before.state(true);
  assert.equal(full.state, "full");
  while (Date.now() <= full.since) await new Promise((r) => setTimeout(r, 1));
  const after = new JobStatus("cam", "scp");
  after.continueFrom(before);
  // The next runner's pause is new: until its first attempt finds no room, it sees files failing.
  after.failed("a.fits", "retry-later", noRoom, false);
  assert.equal(after.state(false).state, "failing");
  assert.deepEqual(after.state(true), full, "full since it was full before the reload");
  // Once it has arrived files, a later full destination is full from then on.
  after.sent("a.fits", "20240315/a.fits", 10);
  assert.equal(after.state(false).state, "watching", "the pause is over");
  while (Date.now() <= full.since) await new Promise((r) => setTimeout(r, 1));
  after.failed("b.fits", "retry-later", noRoom, false);
  assert.ok(after.state(true).since > full.since);
});

Deno.test("job status: an upload the server takes no data of makes the job unreachable while it lasts; given up, since the stall began", async () => {
  const stall =
    "FTP server obs@archive:21 takes no data of /data/20240315/x/a.fits (none for 60 s)";
  const status = new JobStatus("cam", "ftp");
  status.sent("z.fits", "20240315/z.fits", 10);
  status.stalledUpload = stall;
  const stalled = status.state(false);
  assert.deepEqual([stalled.state, stalled.reason], ["unreachable", stall]);
  // The server reads again: the job is watching.
  status.stalledUpload = null;
  assert.equal(status.state(false).state, "watching");

  // Stalled again, then given up: unreachable since the stall, with the failure's words.
  while (Date.now() <= stalled.since) await new Promise((r) => setTimeout(r, 1));
  status.stalledUpload = stall;
  const again = status.state(false);
  assert.ok(again.since > stalled.since);
  while (Date.now() <= again.since) await new Promise((r) => setTimeout(r, 1));
  status.stalledUpload = null;
  const gaveUp = "FTP server obs@archive:21 does not answer: STOR … made no progress for 300 s";
  status.failed("a.fits", "retry", gaveUp, false, "connection");
  assert.deepEqual(status.state(false), {
    state: "unreachable",
    since: again.since,
    reason: gaveUp,
  });
});
