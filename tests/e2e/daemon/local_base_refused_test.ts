/**
 * A `local` destination folder (`remote_base_path`) that cannot be written (immutable: root, who
 * runs the tests, is refused too): every file's night folder is made there, so the job pauses and
 * probes it, and once it can be written the files waiting go at the next probe, not after their
 * slow retry. With tonight's night folder there, tonight's files go and a file of another night
 * fails on its own, without pausing the job. A night folder that files arrived in in this run,
 * gone (moved away) from a destination folder that cannot be written: the job pauses too, and no
 * file gives up.
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
import { setImmutable } from "../../helpers/immutable.ts";
import { ONE_RETRY_THEN_AN_HOUR } from "../../helpers/jobs.ts";
import { cliSandbox, countingHook, type Sandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";
import { pausedJob, waitPaused } from "../../helpers/status.ts";

const TONIGHT = new Date("2026-01-10T20:00:00Z");
const OLD_NIGHT = new Date("2024-03-15T20:00:00Z");

/** A daemon's sandbox sending with `local` into `dest`, made immutable (`night` made there before). */
async function withImmutableBase(
  night: string | null,
  fn: (box: Sandbox) => Promise<void>,
): Promise<void> {
  await using box = await cliSandbox({
    night_date_source: "mtime",
    night_rollover_hour: 12,
    // A file failing on its own is retried once soon, then waits an hour: far beyond this test.
    ...ONE_RETRY_THEN_AN_HOUR,
    rescan_interval_seconds: 0,
    log_file: "",
  });
  await Deno.mkdir(join(box.root, "outside"));
  await Deno.mkdir(box.dest);
  if (night !== null) await Deno.mkdir(join(box.dest, night));
  await setImmutable(box.dest, true);
  try {
    await fn(box);
  } finally {
    await setImmutable(box.dest, false).catch(() => {});
  }
}

/** Write `name` with `mtime` beside the watch folder, then move it in whole; its bytes. */
function drop(root: string, watch: string, name: string, mtime: Date, size: number) {
  return dropDated(join(root, "outside"), watch, name, randomBytes(size), mtime);
}

Deno.test("local: a destination folder that cannot be written pauses the job; once writable, the waiting files go at the next probe", async () => {
  await withImmutableBase(null, async ({ root, watch, dest, config, env }) => {
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      const sent = new Map<string, Uint8Array>();
      for (const name of ["a.fits", "b.fits", "c.fits"]) {
        sent.set(name, await drop(root, watch, name, TONIGHT, 3000 + sent.size));
      }
      const pause = await waitPaused(config, env);
      assert.match(pause.reason, /may not write into the destination folder/);
      const log = daemon.stderr();
      assert.equal(log.split("takes no file:").length - 1, 1, log);
      assert.doesNotMatch(log, /Failed to transfer/);

      await setImmutable(dest, false);
      await waitFor(
        async () => (await listArrived(dest)).length === sent.size,
        LEAST_CEILING_MS,
        "every file to arrive",
      );
      const night = (await listArrived(dest))[0].split("/")[0];
      for (const [name, bytes] of sent) {
        assert.deepEqual(await Deno.readFile(join(dest, night, name)), bytes, name);
      }
      await daemon.waitForOutput("takes files again; job default resumes");
      assert.equal(await pausedJob(config, env), undefined);
    } finally {
      await daemon.stop();
    }
  });
});

Deno.test("local: in a destination folder that cannot be written, tonight's files go into their night folder there; a file of another night fails on its own, the job is not paused", async () => {
  const night = nightFolder(TONIGHT, 12, "UTC");
  await withImmutableBase(night, async ({ root, watch, dest, config, env }) => {
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      const sent = new Map<string, Uint8Array>();
      const arrived = (what: string) =>
        waitFor(
          async () => (await listArrived(dest)).length === sent.size,
          LEAST_CEILING_MS,
          what,
        );
      sent.set("first.fits", await drop(root, watch, "first.fits", TONIGHT, 2000));
      await arrived("tonight's first file to arrive");
      await drop(root, watch, "old.fits", OLD_NIGHT, 1500);
      for (const name of ["a.fits", "b.fits"]) {
        sent.set(name, await drop(root, watch, name, TONIGHT, 2000 + sent.size));
      }
      await arrived("tonight's files to arrive");
      await daemon.waitForOutput(/Failed to transfer \S*old\.fits: .*this file's folder/);
      sent.set("d.fits", await drop(root, watch, "d.fits", TONIGHT, 2500));
      await arrived("the file written after it to arrive");
      for (const [name, bytes] of sent) {
        assert.deepEqual(await Deno.readFile(join(dest, night, name)), bytes, name);
      }
      const log = daemon.stderr();
      assert.doesNotMatch(log, /takes no file|pauses/, log);
      assert.equal(log.split(/Failed to transfer \S*old\.fits/).length - 1, 1, log);
      assert.equal(await pausedJob(config, env), undefined);
    } finally {
      await daemon.stop();
    }
  });
});

Deno.test("local: a file arrives, then its night folder goes and the destination folder cannot be written: the job pauses, no later file gives up nor runs on_failure; once writable, each arrives once", async () => {
  await using box = await cliSandbox();
  const { root, watch, dest, config, env } = box;
  const port = freePort();
  const { hook, hookLog } = await countingHook(root);
  await box.rewrite({
    night_date_source: "mtime",
    night_rollover_hour: 12,
    // As the trial's config: a file failing on its own gives up at its first attempt.
    retry_attempts: 0,
    retry_delay_seconds: 0.5,
    retry_max_delay_seconds: 5,
    rescan_interval_seconds: 0,
    log_file: "",
    on_failure: [hook],
    status_listen: `127.0.0.1:${port}`,
  });
  await Deno.mkdir(join(root, "outside"));
  await Deno.mkdir(dest);
  const night = nightFolder(TONIGHT, 12, "UTC");
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    const first = await drop(root, watch, "first.fits", TONIGHT, 2000);
    // Recorded, not only renamed into place (its folder is flushed after): then its folder goes.
    await daemon.waitForOutput(/Successfully transferred \S*first\.fits/);
    // Its night folder goes (moved away, a share's folder gone) and no folder can be made there.
    const elsewhere = join(root, "elsewhere");
    await Deno.rename(join(dest, night), elsewhere);
    await setImmutable(dest, true);
    const sent = new Map<string, Uint8Array>();
    for (const name of ["g1.fits", "g2.fits", "g3.fits"]) {
      sent.set(name, await drop(root, watch, name, TONIGHT, 3000 + sent.size));
    }
    const pause = await waitPaused(config, env);
    assert.match(pause.reason, /may not write into the destination folder/);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^image_transfer_job_paused\{job="default"[^}]*\} 1$/m, metrics);
    const api = await (await fetch(`http://127.0.0.1:${port}/api/status`)).json();
    assert.equal(api.jobs[0].held, true, JSON.stringify(api.jobs[0]));
    // A probe fails meanwhile, as the destination's, not a file's: the job stays paused.
    await daemon.waitForOutput(/still takes no file/);
    assert.equal((await pausedJob(config, env))?.state, "destination failing");
    let log = daemon.stderr();
    assert.equal(log.split("takes no file:").length - 1, 1, log);
    assert.doesNotMatch(log, /Failed to transfer|gave up|this file's folder/, log);

    await setImmutable(dest, false);
    await waitFor(
      async () => (await listArrived(dest)).length === sent.size,
      LEAST_CEILING_MS,
      "every file to arrive once the destination folder can be written",
    );
    await daemon.waitForOutput("takes files again; job default resumes");
    // Each once, with its bytes, in its night folder made again; the first where it was moved.
    assert.deepEqual(
      (await listFiles(dest)).sort(),
      [...sent.keys()].map((name) => `${night}/${name}`).sort(),
    );
    for (const [name, bytes] of sent) {
      assert.deepEqual(await Deno.readFile(join(dest, night, name)), bytes, name);
    }
    assert.deepEqual(await Deno.readFile(join(elsewhere, "first.fits")), first);
    assert.equal(await pausedJob(config, env), undefined);
    log = daemon.stderr();
    assert.doesNotMatch(log, /Failed to transfer|gave up/, log);
    assert.equal(existsSync(hookLog), false, "on_failure ran");
  } finally {
    await setImmutable(dest, false).catch(() => {});
    await daemon.stop();
  }
});
