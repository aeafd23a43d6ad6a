/**
 * A `local` destination folder (`remote_base_path`) that cannot be written (immutable: root, who
 * runs the tests, is refused too): every file's night folder is made there, so the job pauses and
 * probes it, and once it can be written the files waiting go at the next probe, not after their
 * slow retry. With tonight's night folder there, tonight's files go and a file of another night
 * fails on its own, without pausing the job.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { nightFolder } from "../../../src/layout/destination.ts";
import type { JobPause } from "../../../src/ledger/daemon_lock.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import {
  LEAST_CEILING_MS,
  listArrived,
  randomBytes,
  waitFor,
  writeConfig,
} from "../../helpers/files.ts";
import { setImmutable } from "../../helpers/immutable.ts";

const TONIGHT = new Date("2026-01-10T20:00:00Z");
const OLD_NIGHT = new Date("2024-03-15T20:00:00Z");

/** A daemon sending with `local` into `dest`, made immutable (and `night` made there before). */
async function withImmutableBase(
  night: string | null,
  fn: (box: { watch: string; dest: string; config: string; root: string }) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-local-base-refused-" });
  const box = { root, watch: join(root, "watch"), dest: join(root, "dest"), config: "" };
  box.config = join(root, "config.yaml");
  await Deno.mkdir(box.watch);
  await Deno.mkdir(join(root, "outside"));
  await Deno.mkdir(box.dest);
  if (night !== null) await Deno.mkdir(join(box.dest, night));
  await writeConfig(box.config, {
    watch_path: box.watch,
    remote_base_path: box.dest,
    transfer_method: "local",
    stability_window_seconds: 0.3,
    night_date_source: "mtime",
    night_rollover_hour: 12,
    night_timezone: "UTC",
    // A file failing on its own is retried once soon, then waits an hour: far beyond this test.
    retry_attempts: 1,
    retry_delay_seconds: 0.5,
    retry_max_delay_seconds: 3600,
    rescan_interval_seconds: 0,
    state_dir: join(root, "state"),
    log_file: "",
  });
  await setImmutable(box.dest, true);
  try {
    await fn(box);
  } finally {
    await setImmutable(box.dest, false).catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
}

/** Write `name` with `mtime` beside the watch folder, then move it in whole; its bytes. */
async function drop(root: string, watch: string, name: string, mtime: Date, size: number) {
  const bytes = randomBytes(size);
  await Deno.writeFile(join(root, "outside", name), bytes);
  await Deno.utime(join(root, "outside", name), mtime, mtime);
  await Deno.rename(join(root, "outside", name), join(watch, name));
  return bytes;
}

async function pausedNow(config: string, root: string): Promise<JobPause | undefined> {
  const out = await runCli(["status", "--json", "-c", config], { env: { HOME: root } });
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout).daemon.paused?.default as JobPause | undefined;
}

Deno.test("local: a destination folder that cannot be written pauses the job; once writable, the waiting files go at the next probe", async () => {
  await withImmutableBase(null, async ({ root, watch, dest, config }) => {
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Watching");
      const sent = new Map<string, Uint8Array>();
      for (const name of ["a.fits", "b.fits", "c.fits"]) {
        sent.set(name, await drop(root, watch, name, TONIGHT, 3000 + sent.size));
      }
      let pause: JobPause | undefined;
      await waitFor(
        async () => (pause = await pausedNow(config, root))?.state === "destination failing",
        LEAST_CEILING_MS,
        "status to say the job is paused",
      );
      assert.match(pause!.reason, /may not write into the destination folder/);
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
      assert.equal(await pausedNow(config, root), undefined);
    } finally {
      await daemon.stop();
    }
  });
});

Deno.test("local: in a destination folder that cannot be written, tonight's files go into their night folder there; a file of another night fails on its own, the job is not paused", async () => {
  const night = nightFolder(TONIGHT, 12, "UTC");
  await withImmutableBase(night, async ({ root, watch, dest, config }) => {
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
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
      assert.equal(await pausedNow(config, root), undefined);
    } finally {
      await daemon.stop();
    }
  });
});
