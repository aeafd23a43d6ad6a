/**
 * A file under observation whose folder cannot be searched for a while (its stat fails with
 * EACCES, as an I/O error or a stale handle on a share would fail it) is not taken as gone: the
 * daemon says so once, keeps looking, and sends it once it can be read, with rescans off and no
 * new event for the file. And a FITS file whose structure cannot be read for a while (its stat
 * can) is read again, not taken for a file that is not FITS. The daemon runs without root's power
 * to read any file (see `honourFileModes`), with the `local` method.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, runProgram, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";
import type { JobSnapshot } from "../../../src/status/job_status.ts";
import { fitsFile, imageParts } from "../../helpers/fits.ts";

const LONG_AGO = new Date("2020-01-01T00:00:00Z");

/** The status page's `/metrics`. */
async function metricsText(base: string): Promise<string> {
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

/** The value of the job's `image_transfer_files_unreadable` in `text`. */
function unreadableGauge(text: string): number {
  const match = /^image_transfer_files_unreadable\{job="default",method="local"\} (\S+)$/m
    .exec(text);
  assert.ok(match, text);
  return Number(match[1]);
}

Deno.test("local: a file whose folder cannot be searched for a while is looked at again, not dropped, and arrives once it can be read (no rescan, no new event)", async () => {
  // A long-ish window: the file is still under observation when its folder is closed. Rescans
  // off: only the daemon's own looks can find it again.
  const port = freePort();
  await using box = await cliSandbox({
    stability_window_seconds: 10,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  const base = `http://127.0.0.1:${port}`;
  const options = { env: box.env, honourFileModes: true };
  const cam = join(box.watch, "cam");
  await Deno.mkdir(cam);
  const data = randomBytes(40_000);
  const daemon = startCli(["run", "-c", box.config], options);
  const observing = async () =>
    (await getJson<{ jobs: JobSnapshot[] }>(base, "/api/status")).jobs[0].queue.observing;
  let closed = false;
  try {
    await daemon.waitForOutput("Status page on");
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(cam, "a.fits"), data);
    await waitFor(async () => await observing() === 1, 60_000, "a.fits under observation");
    // As on a share, where no event tells of a folder: its mtime no longer says it had a new
    // file, so reading again the folders that had events (the chmods) does not enter it.
    await Deno.utime(cam, LONG_AGO, LONG_AGO);
    await Deno.chmod(cam, 0o000);
    closed = true;
    // The daemon looked at it (and, before, dropped it as deleted). Its re-read of the folders that
    // had events (to find files whose events were lost) cannot read this one now, nor enters it
    // once it can (its mtime): only the daemon's own looks at the file can find it again.
    await daemon.waitForOutput(/(Cannot look at|Dropped) \S*cam\/a\.fits/);
    // Not gone: pending, said to be one that cannot be looked at now, by the API and /metrics
    // (whose whole text passes promtool's check).
    const job = (await getJson<{ jobs: JobSnapshot[] }>(base, "/api/status")).jobs[0];
    assert.deepEqual([job.queue.observing, job.unreadable], [1, 1], daemon.stderr());
    assert.equal(unreadableGauge(await metricsText(base)), 1);
    const checked = await runProgram("promtool", ["check", "metrics"], {
      stdin: await metricsText(base),
    });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    const status = await runCli(["status", "-c", box.config], options);
    assert.match(
      status.stdout,
      /Live .*\n.*; pending 1 \(1 not complete yet, 1 of them cannot be looked at now: the log says why\)/,
      status.stdout,
    );
    // Searchable again: not one event comes for the file after this.
    await Deno.chmod(cam, 0o755);
    closed = false;
    const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    const arrived = join(box.dest, day, "cam", "a.fits");
    await waitFor(
      async () => (await Deno.readFile(arrived).catch(() => null))?.length === data.length,
      120_000,
      `a.fits at the destination:\n${daemon.stderr()}`,
    );
    assert.deepEqual(await Deno.readFile(arrived), data);
    assert.equal(unreadableGauge(await metricsText(base)), 0);
  } finally {
    if (closed) await Deno.chmod(cam, 0o755);
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  assert.doesNotMatch(log, /Dropped /, log);
  // Said once, as a warning naming the system's error and what the daemon does; and once more
  // when it can be read.
  const said = log.match(/WARN.*Cannot look at \S*cam\/a\.fits.*/g) ?? [];
  assert.equal(said.length, 1, log);
  assert.match(said[0], /[Pp]ermission denied.*keeps looking at it/);
  assert.match(log, /INFO.*\S*cam\/a\.fits can be looked at again/);
});

Deno.test("local: a complete FITS file that cannot be read for a while goes once it can be read, without waiting the stability window as a file that is not FITS", async () => {
  // An hour's window: only its structure, read once it can be, lets the file go in this test.
  const port = freePort();
  await using box = await cliSandbox({
    stability_window_seconds: 3600,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  const base = `http://127.0.0.1:${port}`;
  const options = { env: box.env, honourFileModes: true };
  const { header, data } = imageParts(64, 64);
  const image = fitsFile(header, data);
  const locked = join(box.watch, "locked.fits");
  const daemon = startCli(["run", "-c", box.config], options);
  const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
  const arrived = (name: string) => join(box.dest, day, name);
  const hasArrived = async (name: string) =>
    (await Deno.readFile(arrived(name)).catch(() => null))?.length === image.length;
  try {
    await daemon.waitForOutput("Status page on");
    await daemon.waitForOutput("Watching");
    // Written whole, closed, and unreadable to the daemon from the start (its stat works: the
    // folder can be searched). Then a readable one: once it arrived, the daemon had looked at
    // the first (its close came before) and failed to read it.
    await Deno.writeFile(locked, image, { mode: 0o000 });
    await Deno.chmod(locked, 0o000);
    await Deno.writeFile(join(box.watch, "open.fits"), image);
    await waitFor(() => hasArrived("open.fits"), 60_000, `open.fits:\n${daemon.stderr()}`);
    const job = (await getJson<{ jobs: JobSnapshot[] }>(base, "/api/status")).jobs[0];
    assert.equal(job.queue.observing, 1, daemon.stderr());
    assert.equal(await hasArrived("locked.fits"), false);
    // Readable now: complete by its structure, and closed, it goes (not in an hour).
    await Deno.chmod(locked, 0o644);
    await waitFor(() => hasArrived("locked.fits"), 60_000, `locked.fits:\n${daemon.stderr()}`);
    assert.deepEqual(await Deno.readFile(arrived("locked.fits")), image);
  } finally {
    await Deno.chmod(locked, 0o644).catch(() => {});
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.doesNotMatch(daemon.stderr(), /truncated|incomplete/i, daemon.stderr());
});
