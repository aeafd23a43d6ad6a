/**
 * What the daemon keeps about the files it moves is its account's alone: the
 * state folder it creates is 0700, and the ledger, the lock, the PID file and
 * the log are 0600, even where the account's umask would let others read them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";

const modeOf = async (path: string) => ((await Deno.stat(path)).mode ?? 0) & 0o777;

Deno.test("state_dir is created 0700; the ledger, lock, PID file and log are 0600", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-private-" });
  try {
    const watch = join(root, "watch");
    const state = join(root, "state", "image-transfer");
    const log = join(root, "logs", "image_transfer.log");
    await Deno.mkdir(watch);
    await Deno.mkdir(join(root, "logs"));
    // A log file left readable by others (an older version, a user's touch) is made private.
    await Deno.writeTextFile(log, "", { mode: 0o644 });
    await Deno.chmod(log, 0o644);
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: join(root, "dest"),
      transfer_method: "local",
      stability_window_seconds: 0.3,
      night_timezone: "UTC",
      state_dir: state,
      log_file: log,
    });
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Watching");
      // Start-up says where the log goes.
      assert.ok(daemon.stderr().includes(`; log file ${log}`), daemon.stderr());
      await Deno.writeFile(join(watch, "a.fits"), randomBytes(4000));
      await waitFor(
        async () => (await Deno.readTextFile(log)).includes("a.fits"),
        20_000,
        "a log line",
      );
      assert.equal(await modeOf(state), 0o700);
      const names = [...Deno.readDirSync(state)].filter((e) => e.isFile).map((e) => e.name);
      assert.ok(names.includes("daemon.pid"), names.join(", "));
      assert.ok(names.some((name) => /\.(db|sqlite)/.test(name)), names.join(", "));
      for (const name of names) {
        assert.equal(
          await modeOf(join(state, name)),
          0o600,
          `${name}: ${(await modeOf(join(state, name))).toString(8)}`,
        );
      }
      assert.equal(await modeOf(log), 0o600);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
    // A log folder the daemon creates is its own too.
    const fresh = join(root, "fresh-logs", "it.log");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: join(root, "dest"),
      transfer_method: "local",
      state_dir: state,
      log_file: fresh,
    });
    const again = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await again.waitForOutput("Watching");
      assert.equal(await modeOf(join(root, "fresh-logs")), 0o700);
      assert.equal(await modeOf(fresh), 0o600);
    } finally {
      assert.equal((await again.stop()).code, 0, again.stderr());
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("night reports are private as the rest of state_dir: reports/ 0700, each report 0600", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-private-" });
  try {
    const watch = join(root, "watch");
    const state = join(root, "state");
    await Deno.mkdir(watch);
    // A reports folder an older version left open to others is made private.
    await Deno.mkdir(join(state, "reports"), { recursive: true });
    await Deno.chmod(join(state, "reports"), 0o755);
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: join(root, "dest"),
      transfer_method: "local",
      state_dir: state,
      log_file: join(root, "it.log"),
      schedules: [{ every_seconds: 1, action: "report" }],
    });
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Night report of job default");
      const reports = [...Deno.readDirSync(join(state, "reports"))].map((e) => e.name);
      assert.ok(reports.some((name) => name.endsWith(".json")), reports.join(", "));
      assert.equal(await modeOf(join(state, "reports")), 0o700);
      for (const name of reports) {
        assert.equal(await modeOf(join(state, "reports", name)), 0o600, name);
      }
    } finally {
      assert.equal((await daemon.stop()).code, 0, daemon.stderr());
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
