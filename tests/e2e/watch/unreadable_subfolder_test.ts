/**
 * One folder inside the watch folder that the daemon's account cannot read makes the runtime's
 * watch of the whole tree fail: the daemon then rescans every minute, and says so everywhere (the
 * ERROR line naming the folder and what to do, the start line, `status`, `/api/status`), not
 * "file events". Once the folder can be read, it is watched again at once. The daemon runs
 * without root's power to read any file (see `honourFileModes`), with the `local` method.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";
import type { JobSnapshot } from "../../../src/status/job_status.ts";

Deno.test("a folder inside the watch folder that cannot be read: the daemon says it rescans every minute, why and what to do, and watches again once it can be read", async () => {
  const port = freePort();
  await using box = await cliSandbox({
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  const base = `http://127.0.0.1:${port}`;
  const options = { env: box.env, honourFileModes: true };
  const locked = join(box.watch, "locked2");
  await Deno.mkdir(join(box.watch, "cam"));
  await Deno.mkdir(locked);
  await Deno.chmod(locked, 0o000);
  const daemon = startCli(["run", "-c", box.config], options);
  const watch = async () =>
    (await getJson<{ jobs: JobSnapshot[] }>(base, "/api/status")).jobs[0].watch;
  try {
    await daemon.waitForOutput("Status page on");
    await daemon.waitForOutput(/Watching \S+ for job/);
    const log = daemon.stderr();
    // Before: "Watching … with file events (ext4)" 3 ms after the ERROR line.
    assert.doesNotMatch(log, /Watching \S+ for job .* with file events/, log);
    assert.match(log, /Watching \S+ for job .* with a rescan every minute, no file events/, log);
    assert.match(
      log,
      /ERROR.*Watching \S+ failed: .*cannot read \S*locked2.*rescanning every minute.*Give the daemon's account read and search access/,
      log,
    );
    assert.equal((await watch())?.mode, "rescans");
    const status = await runCli(["status", "-c", box.config], options);
    assert.match(
      status.stdout,
      /Watched with a rescan every minute, no file events \(the daemon's account cannot read \S*locked2/,
      status.stdout,
    );
    assert.doesNotMatch(status.stdout, /Watched with file events/, status.stdout);

    // Readable again: watched again, with events (no rescans in this job; a minute has not passed).
    await Deno.chmod(locked, 0o755);
    await daemon.waitForOutput(/Watching \S+ again; the rescans every minute stop/);
    assert.equal((await watch())?.mode, "events");
    const data = randomBytes(5000);
    await Deno.writeFile(join(box.watch, "cam", "a.fits"), data);
    const day = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    const arrived = join(box.dest, day, "cam", "a.fits");
    await waitFor(
      async () => (await Deno.readFile(arrived).catch(() => null))?.length === data.length,
      60_000,
      `a.fits at the destination:\n${daemon.stderr()}`,
    );
    assert.deepEqual(await Deno.readFile(arrived), data);
  } finally {
    await Deno.chmod(locked, 0o755);
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});
