/**
 * A destination folder (`remote_base_path`) the login may not write into, whose night folder for
 * tonight is there and writable: tonight's files go, and a file of another night (whose night
 * folder cannot be made there) fails on its own, with its retries, without pausing the job nor
 * holding tonight's files until a probe. Tonight's night folder that files arrived in, gone (moved
 * away) from that folder: the job pauses, no file gives up. A real daemon sends with scp and rsync to a real sshd, and
 * with FTP over TLS to a real vsftpd, whose login user is not root, so the folder's mode holds.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { nightFolder } from "../../../src/layout/destination.ts";
import { startCli } from "../../helpers/cli.ts";
import {
  dropDated,
  existsSync,
  LEAST_CEILING_MS,
  listArrived,
  listFiles,
  randomBytes,
  waitFor,
} from "../../helpers/files.ts";
import { ONE_RETRY_THEN_AN_HOUR } from "../../helpers/jobs.ts";
import { REMOTE_METHODS, remoteSandbox } from "../../helpers/remote_daemon.ts";
import { pausedJob, waitPaused } from "../../helpers/status.ts";
import { countingHook } from "../../helpers/sandbox.ts";

/** Tonight, as far as these files say (their mtime); the old file's night is long gone. */
const TONIGHT = new Date("2026-01-10T20:00:00Z");
const OLD_NIGHT = new Date("2024-03-15T20:00:00Z");

for (const method of REMOTE_METHODS) {
  Deno.test(`${method}: in a destination folder the login may not write into, tonight's files go into their night folder there; two files of another night each fail on their own, the job is not paused`, async () => {
    const box = await remoteSandbox(method, {
      stability_window_seconds: 0.3,
      night_date_source: "mtime",
      night_rollover_hour: 12,
      night_timezone: "UTC",
      // Its own failure: retried once soon, then given up (tried again after an hour).
      ...ONE_RETRY_THEN_AN_HOUR,
      rescan_interval_seconds: 0,
    });
    const night = nightFolder(TONIGHT, 12, "UTC");
    assert.notEqual(nightFolder(OLD_NIGHT, 12, "UTC"), night);
    await Deno.mkdir(join(box.remote, night));
    await Deno.chown(join(box.remote, night), box.owner.uid, box.owner.gid);
    await Deno.chmod(box.remote, 0o555);
    const outside = join(box.root, "outside");
    await Deno.mkdir(outside);
    const sent = new Map<string, Uint8Array>();
    /** Write `name` with `mtime` beside the watch folder, then move it in whole. */
    const drop = (name: string, mtime: Date) =>
      dropDated(outside, box.watch, name, randomBytes(2000 + sent.size), mtime);
    const arrived = async (count: number, what: string) =>
      await waitFor(
        async () => (await listArrived(box.remote)).length === count,
        LEAST_CEILING_MS,
        what,
      );
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      sent.set("first.fits", await drop("first.fits", TONIGHT));
      await arrived(1, "tonight's first file to arrive");
      // Two of another night, refused by their one folder together: each its own failure.
      await drop("old.fits", OLD_NIGHT);
      await drop("old2.fits", OLD_NIGHT);
      for (const name of ["a.fits", "b.fits", "c.fits"]) sent.set(name, await drop(name, TONIGHT));
      await arrived(sent.size, "tonight's files to arrive");
      // The old file: its own failure, retried once, then given up; said as its own, once.
      await daemon.waitForOutput(/Failed to transfer \S*old\.fits: .*this file's folder/);
      await daemon.waitForOutput(/Failed to transfer \S*old2\.fits: .*this file's folder/);
      for (const name of ["d.fits", "e.fits"]) sent.set(name, await drop(name, TONIGHT));
      await arrived(sent.size, "the files written after it to arrive");
      for (const [name, bytes] of sent) {
        assert.deepEqual(await Deno.readFile(join(box.remote, night, name)), bytes, name);
      }
      const log = daemon.stderr();
      assert.doesNotMatch(log, /takes no file|pauses/, log);
      // Said once for the batch, by whichever of the two it names first, at WARNING as any
      // retry of a file's own failure.
      assert.match(
        log,
        /WARNING \[pipeline\] Attempt 1 of \S*old2?\.fits failed: .*may not make this file's folder/,
      );
      assert.equal(log.split(/Failed to transfer \S*old\.fits/).length - 1, 1, log);
      assert.equal(await pausedJob(box.config, box.env), undefined);
    } finally {
      await daemon.stop();
      await Deno.chmod(box.remote, 0o755).catch(() => {});
      await box.stop();
    }
  });
}

for (const method of REMOTE_METHODS) {
  Deno.test(`${method}: a file arrives, then its night folder goes from a destination folder the login may not write into: the job pauses, no later file gives up nor runs on_failure; once writable, each arrives once`, async () => {
    const hooks = await Deno.makeTempDir({ prefix: "itx-hook-" });
    const { hook, hookLog } = await countingHook(hooks);
    const box = await remoteSandbox(method, {
      stability_window_seconds: 0.3,
      night_date_source: "mtime",
      night_rollover_hour: 12,
      night_timezone: "UTC",
      // As a user's trial: a file failing on its own gives up at its first attempt.
      retry_attempts: 0,
      retry_delay_seconds: 0.5,
      retry_max_delay_seconds: 5,
      rescan_interval_seconds: 0,
      on_failure: [hook],
    });
    const night = nightFolder(TONIGHT, 12, "UTC");
    const outside = join(box.root, "outside");
    await Deno.mkdir(outside);
    const drop = (name: string) =>
      dropDated(outside, box.watch, name, randomBytes(2000 + name.length * 7), TONIGHT);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      const first = await drop("first.fits");
      // Recorded, not only renamed into place (its folder is flushed after): then its folder goes.
      await daemon.waitForOutput(/Successfully transferred \S*first\.fits/);
      const elsewhere = join(box.root, "elsewhere");
      await Deno.rename(join(box.remote, night), elsewhere);
      await Deno.chmod(box.remote, 0o555);
      const sent = new Map<string, Uint8Array>();
      for (const name of ["g1.fits", "g2.fits", "g3.fits"]) sent.set(name, await drop(name));
      await waitPaused(box.config, box.env);
      await daemon.waitForOutput(/still takes no file/);
      assert.equal((await pausedJob(box.config, box.env))?.state, "destination failing");
      assert.doesNotMatch(daemon.stderr(), /Failed to transfer|gave up|this file's folder/);

      await Deno.chmod(box.remote, 0o755);
      await waitFor(
        async () => (await listArrived(box.remote)).length === sent.size,
        LEAST_CEILING_MS,
        "every file to arrive once the destination folder can be written",
      );
      await daemon.waitForOutput("takes files again; job default resumes");
      assert.deepEqual(
        (await listFiles(box.remote)).sort(),
        [...sent.keys()].map((name) => `${night}/${name}`).sort(),
      );
      for (const [name, bytes] of sent) {
        assert.deepEqual(await Deno.readFile(join(box.remote, night, name)), bytes, name);
      }
      assert.deepEqual(await Deno.readFile(join(elsewhere, "first.fits")), first);
      assert.doesNotMatch(daemon.stderr(), /Failed to transfer|gave up/);
      assert.equal(existsSync(hookLog), false, "on_failure ran");
    } finally {
      await daemon.stop();
      await Deno.chmod(box.remote, 0o755).catch(() => {});
      await box.stop();
      await Deno.remove(hooks, { recursive: true });
    }
  });
}
