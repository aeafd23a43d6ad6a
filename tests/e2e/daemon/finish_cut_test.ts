/**
 * The call that renames a batch's copies into place cut off right after the rename (the
 * connection lost, the server's session killed), through the real CLI over a real OpenSSH server
 * whose `mv` kills its session once the copy is under its final name: the daemon cannot know
 * whether the copy arrived. Its next attempt finds the copy there with the source's bytes: that is
 * this job's own arrival, recorded as sent, with its `on_transfer` hook and in the counts of the
 * status page, `/metrics` and the log, never said to be another's file; so too where the daemon
 * is killed after that call and started again before the next attempt.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { countingHook } from "../../helpers/sandbox.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import {
  exists,
  LEAST_CEILING_MS,
  listFiles,
  randomBytes,
  sha256Of,
  sha256OfFile,
  waitFor,
  writeConfig,
} from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { sshSandbox, startSshd, type TestSshd } from "../../helpers/sshd.ts";
import { pausedJob } from "../../helpers/status.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/**
 * A private OpenSSH server whose `mv`, while the returned `cut` flag is there, renames onto a final
 * name (not a hidden upload folder's), then kills the session's whole process group, as a lost
 * connection ends it (`hang`: then waits a minute instead, a call the daemon is killed in); and a
 * hook that counts its runs.
 */
async function cuttingServer(hang = false) {
  const tools = await Deno.makeTempDir({ prefix: "itx-mv-cut-" });
  await Deno.chmod(tools, 0o777); // the login user removes `cut`
  const cut = join(tools, "cut");
  await standInPrograms(tools, {
    mv: `/usr/bin/mv "$@" || exit\nfor last do :; done\n` +
      `case "\${last##*/}" in .*) exit 0 ;; esac\n` +
      `if [ -e '${cut}' ]; then rm -f '${cut}'; ${hang ? "sleep 60" : "kill -KILL 0"}; fi\n`,
  });
  await Deno.writeTextFile(cut, "");
  const hooks = await Deno.makeTempDir({ prefix: "itx-hook-" });
  const { hook, runs } = await countingHook(hooks);
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools}:/usr/bin:/bin` } });
  return {
    sshd,
    cut,
    hook,
    runs,
    async stop() {
      await sshd.stop();
      await Deno.remove(tools, { recursive: true });
      await Deno.remove(hooks, { recursive: true });
    },
  };
}

/**
 * The scp sandbox of a daemon killed after the cut-off call, before its next attempt, with
 * `server`'s hook: the first run's next attempt (the destination's first probe, 15 s away; a retry
 * an hour away) is not waited for. `retryAtOnce` writes its config again with retries due at once,
 * for the start after the kill.
 */
async function killedSandbox({ sshd, hook }: { sshd: TestSshd; hook: string }) {
  const keys = { stability_window_seconds: 0.2, on_transfer: [hook] };
  const box = await sshSandbox(sshd, "scp", {
    ...keys,
    retry_delay_seconds: 3600,
    retry_max_delay_seconds: 3600,
  });
  const retryAtOnce = () =>
    writeConfig(box.config, {
      watch_path: box.watch,
      transfer_method: "scp",
      ...sshd.configKeys(),
      remote_base_path: box.remote,
      night_timezone: "UTC",
      state_dir: join(box.root, "state"),
      log_file: "",
      ...keys,
      retry_delay_seconds: 0.5,
      retry_max_delay_seconds: 1,
    });
  return { ...box, retryAtOnce };
}

Deno.test("daemon (scp): a copy renamed into place by a call cut off after the rename, the daemon killed before its next attempt, is this job's arrival after the restart, with its hook", async () => {
  const server = await cuttingServer();
  try {
    const { watch, remote, config, env, retryAtOnce } = await killedSandbox(server);
    const bytes = randomBytes(20_000);
    const first = startCli(["run", "-c", config], { env });
    try {
      await first.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "a.fits"), bytes);
      await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
      await first.waitForOutput(/cannot be reached: Cannot send \S*a\.fits/);
    } finally {
      assert.equal((await first.stop("SIGKILL")).signal, "SIGKILL");
    }
    assert.equal(await Deno.stat(server.cut).catch(() => null), null, "the call was cut off");
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
    // Started again with retries due at once: the file's next attempt comes now.
    await retryAtOnce();
    const second = startCli(["run", "-c", config], { env });
    try {
      await second.waitForOutput(/Successfully transferred \S*a\.fits|put there by another/);
      assert.doesNotMatch(second.stderr(), /put there by another/);
      await waitFor(async () => (await server.runs()).length > 0, 30_000, "its hook");
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
    }
    const copies = (await listFiles(remote)).filter((path) => !path.includes("/."));
    assert.deepEqual(copies, ["20240701/a.fits"], "one copy, none beside");
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
    assert.deepEqual(await server.runs(), ["a.fits"], "its hook once");
    assert.doesNotMatch(second.stderr(), /put there by another/);
  } finally {
    await server.stop();
  }
});

for (const hang of [false, true]) {
  const cutOff = hang
    ? "the daemon killed in the call that renamed its copy into place"
    : "a copy renamed into place by a call cut off after the rename, the daemon killed";
  Deno.test(`daemon (scp): ${cutOff}, the source rewritten while it was down: the new version replaces that copy of its own, none goes beside it`, async () => {
    const server = await cuttingServer(hang);
    try {
      const { watch, remote, config, env, retryAtOnce } = await killedSandbox(server);
      const source = join(watch, "a.fits");
      const first = startCli(["run", "-c", config], { env });
      try {
        await first.waitForOutput("Watching");
        await Deno.writeFile(source, randomBytes(20_000));
        await Deno.utime(source, NIGHT, NIGHT);
        if (hang) {
          await waitFor(() => exists(join(remote, "20240701/a.fits")), 30_000, "the copy in place");
        } else await first.waitForOutput(/cannot be reached: Cannot send \S*a\.fits/);
      } finally {
        assert.equal((await first.stop("SIGKILL")).signal, "SIGKILL");
      }
      assert.equal(await Deno.stat(server.cut).catch(() => null), null, "the call was cut off");
      // The instrument writes the file again while the daemon is down: other bytes, the same size.
      const rewritten = randomBytes(20_000);
      await Deno.writeFile(source, rewritten);
      const later = new Date(NIGHT.getTime() + 60_000);
      await Deno.utime(source, later, later);
      await retryAtOnce();
      const second = startCli(["run", "-c", config], { env });
      try {
        await second.waitForOutput(/Successfully transferred \S*a\.fits/);
      } finally {
        assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
      }
      const copies = (await listFiles(remote)).filter((path) => !path.includes("/."));
      assert.deepEqual(copies, ["20240701/a.fits"], "one copy, none beside");
      assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(rewritten));
      assert.doesNotMatch(second.stderr(), /put there by another/);
    } finally {
      await server.stop();
    }
  });
}

for (
  const [how, size] of [["in one call", 20_000], [
    "by scp and the finishing call",
    9 << 20,
  ]] as const
) {
  Deno.test(`daemon (scp, ${how}): a copy renamed into place by a call cut off after the rename is counted as this job's arrival, with its hook`, async () => {
    const server = await cuttingServer();
    const { sshd, cut, hook, runs } = server;
    const port = freePort();
    try {
      const { watch, remote, config, env } = await sshSandbox(sshd, "scp", {
        stability_window_seconds: 0.2,
        retry_delay_seconds: 0.5,
        on_transfer: [hook],
        status_listen: `127.0.0.1:${port}`,
      });
      const bytes = randomBytes(size);
      const daemon = startCli(["run", "-c", config], { env });
      try {
        await daemon.waitForOutput("Watching");
        await Deno.writeFile(join(watch, "a.fits"), bytes);
        await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
        await daemon.waitForOutput(/Successfully transferred \S*a\.fits/);
        await waitFor(async () => (await runs()).length > 0, 30_000, "its hook");
        assert.equal(await Deno.stat(cut).catch(() => null), null, "the call was cut off");
        const base = `http://127.0.0.1:${port}`;
        const status = await (await fetch(`${base}/api/status`)).json();
        assert.equal(status.jobs[0].sent, 1, "sent this run");
        const metrics = await (await fetch(`${base}/metrics`)).text();
        assert.match(metrics, /^image_transfer_files_transferred_total\{[^}]*\} 1$/m);
      } finally {
        assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
      }
      // (The upload folder of a call cut off in the middle is left until the next batch there.)
      const copies = (await listFiles(remote)).filter((path) => !path.includes("/."));
      assert.deepEqual(copies, ["20240701/a.fits"], "one copy, none beside");
      assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
      assert.deepEqual(await runs(), ["a.fits"], "its hook once");
      assert.doesNotMatch(daemon.stderr(), /put there by another/);
    } finally {
      await server.stop();
    }
  });
}

Deno.test("daemon (scp): a copy renamed into place by a call cut off after the rename, the server down since: the job stays paused (its look at the destination fails as the destination does), not said to take files again until the file arrives", async () => {
  const server = await cuttingServer(true);
  try {
    const { watch, remote, config, env } = await sshSandbox(server.sshd, "scp", {
      stability_window_seconds: 0.2,
      retry_delay_seconds: 0.2,
    });
    const bytes = randomBytes(20_000);
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "a.fits"), bytes);
      await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
      // Renamed into place, the call waits: the server goes down under it, and stays down.
      await waitFor(async () => !await exists(server.cut), LEAST_CEILING_MS, "the rename");
      await server.sshd.halt();
      await daemon.waitForOutput(/cannot be reached: Cannot send \S*a\.fits/);
      // Its next attempt (the pause's probe) first asks the destination whether the copy is there.
      await daemon.waitForOutput(
        /still cannot be reached|Sending a batch failed|takes files again/,
      );
      assert.doesNotMatch(daemon.stderr(), /Sending a batch failed|takes files again/);
      assert.equal((await pausedJob(config, env))?.state, "destination unreachable");
      await server.sshd.restart();
      await daemon.waitForOutput(/Successfully transferred \S*a\.fits/);
      await daemon.waitForOutput(/takes files again/); // Said as the batch ends, after the file.
    } finally {
      assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    }
    const copies = (await listFiles(remote)).filter((path) => !path.includes("/."));
    assert.deepEqual(copies, ["20240701/a.fits"], "one copy, none beside");
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
  } finally {
    await server.stop();
  }
});
