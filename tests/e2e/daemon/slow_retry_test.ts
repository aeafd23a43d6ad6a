/**
 * A failed file heals by itself: after its quick retries the daemon keeps
 * trying it every `retry_max_delay_seconds` until it arrives, with no restart,
 * rescan or click; `status` shows it failing with its reason and next try.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";

Deno.test("a file that fails (a plain file in the way) arrives on the slow schedule once the way is clear", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-slow-retry-" });
  const watch = join(root, "watch");
  const dest = join(root, "dest");
  const config = join(root, "config.yaml");
  try {
    await Deno.mkdir(watch);
    await Deno.mkdir(dest);
    // A plain file where the night folder must go.
    await Deno.writeTextFile(join(dest, "20240315"), "in the way");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: dest,
      transfer_method: "local",
      stability_window_seconds: 0.3,
      night_date_source: "mtime",
      night_timezone: "UTC",
      retry_attempts: 1,
      retry_delay_seconds: 0.2,
      retry_max_delay_seconds: 2,
      rescan_interval_seconds: 0,
      state_dir: join(root, "state"),
      log_file: join(root, "logs", "image_transfer.log"),
    });
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Watching");
      const data = randomBytes(20_000);
      await Deno.writeFile(join(watch, "m42.fits"), data);
      await Deno.utime(join(watch, "m42.fits"), 0, new Date("2024-03-15T20:00:00Z"));
      await daemon.waitForOutput(
        /Failed to transfer .*m42\.fits.*tried again every 2 s \(retry_max_delay_seconds\) until it arrives/,
      );
      // Said in the user's words, with the path at fault, not as the system's raw error.
      assert.ok(
        daemon.stderr().includes(
          `a file named 20240315 is in the way at ${
            join(dest, "20240315")
          }, where a folder must be`,
        ),
        daemon.stderr(),
      );
      assert.doesNotMatch(daemon.stderr(), /os error|ENOTDIR|EEXIST/);
      // Still failing on the slow schedule: tried again without any event.
      await daemon.waitForOutput(/Attempt 3 of .*m42\.fits failed: .*still failing, next try in/);
      const status = await runCli(["status", "-c", config], { env: { HOME: root } });
      assert.equal(status.code, 0, status.stderr);
      // Its next try as the page says it (a time, now, or waiting for the destination).
      assert.match(status.stdout, /m42\.fits: .*\(failing; .+; \d+ attempt\(s\)\)/);
      // The way is cleared; nothing else happens: the slow retry sends it.
      await Deno.remove(join(dest, "20240315"));
      const arrived = join(dest, "20240315", "m42.fits");
      await waitFor(
        async () => (await Deno.readFile(arrived).catch(() => null))?.length === data.length,
        30_000,
        "the file on the slow schedule",
      );
      assert.deepEqual(await Deno.readFile(arrived), data);
      await daemon.waitForOutput(/Successfully transferred .*m42\.fits/);
      const after = await runCli(["status", "-c", config], { env: { HOME: root } });
      assert.match(after.stdout, /Files whose last attempt failed \(0\)/, after.stdout);
    } finally {
      const stopped = await daemon.stop();
      assert.equal(stopped.code, 0, daemon.stderr());
    }
    // The file gave up its quick retries once: one ERROR line, then warnings.
    assert.equal(daemon.stderr().split("Failed to transfer").length - 1, 1, daemon.stderr());
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
