/**
 * `remote_sync` across a restart, through the real CLI over a real OpenSSH server whose `sync`
 * records its calls, hangs while a flag file is there (a daemon killed then is cut off between
 * its rename and the flush after it) and fails while another is: a copy in place that the server
 * never confirmed on disk counts as arrived only once a flush after the restart confirmed it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { countingHook } from "../../helpers/sandbox.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import {
  exists,
  listFiles,
  randomBytes,
  sha256Of,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/**
 * A folder holding a `sync` for the server's sessions that appends its arguments to `calls`,
 * and, for a flush of a folder holding a file under a final name (the upload folders are hidden),
 * that is after a rename: while `hang` is there, makes `hung` and waits for `hang` to go (then
 * removes `hung`); while
 * `failing` is there, fails with GNU sync's words for a write-back error.
 */
async function flagSync() {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-restart-" });
  // The login user writes its calls and `hung` there.
  await Deno.chmod(dir, 0o777);
  const [calls, hang, hung, failing] = ["calls", "hang", "hung", "failing"].map((name) =>
    join(dir, name)
  );
  await standInPrograms(dir, {
    sync: `printf '%s\\n' "$*" >> '${calls}'\nif [ "$1" = -f ]; then\n  for folder do\n` +
      `    case $folder in -f|--) continue ;; esac\n` +
      `    [ -n "$(ls -- "$folder")" ] || continue\n` +
      `    if [ -e '${hang}' ]; then\n      : > '${hung}'\n` +
      `      while [ -e '${hang}' ]; do sleep 0.1; done\n      rm -f '${hung}'\n    fi\n` +
      `    if [ -e '${failing}' ]; then\n` +
      `      echo "sync: error syncing '$folder': Input/output error" >&2\n      exit 1\n    fi\n` +
      `  done\nfi\nexec /usr/bin/sync "$@"\n`,
  });
  return { dir, calls, hang, hung, failing };
}

/** The calls of the `sync` of {@linkcode flagSync} so far, one line each. */
async function callsOf(sync: { calls: string }): Promise<string[]> {
  return (await Deno.readTextFile(sync.calls).catch(() => "")).split("\n").filter((l) => l !== "");
}

/**
 * A daemon killed (SIGKILL) between the rename of `a.fits` into place and the flush after it,
 * with `failingAfter` (the next start finds sync failing) or not; `then` runs with the second
 * daemon, the file's bytes and its hook's runs.
 */
async function killedAfterRename(
  failingAfter: boolean,
  then: (after: {
    daemon: ReturnType<typeof startCli>;
    /** The sync calls since the restart. */
    calls: () => Promise<string[]>;
    runs: () => Promise<string[]>;
    /** The flag that makes sync fail. */
    failing: string;
  }) => Promise<void>,
): Promise<{ remote: string; bytes: Uint8Array; runs: () => Promise<string[]> }> {
  const sync = await flagSync();
  const hooks = await Deno.makeTempDir({ prefix: "itx-hook-" });
  const { hook, runs } = await countingHook(hooks);
  const sshd = await startSshd({ sessionEnv: { PATH: `${sync.dir}:/usr/bin:/bin` } });
  try {
    const { watch, remote, config, env } = await sshSandbox(sshd, "scp", {
      remote_sync: true,
      stability_window_seconds: 0.2,
      retry_delay_seconds: 0.5,
      retry_attempts: 50,
      on_transfer: [hook],
    });
    const bytes = randomBytes(20_000);
    await Deno.writeTextFile(sync.hang, "");
    const first = startCli(["run", "-c", config], { env });
    try {
      await first.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "a.fits"), bytes);
      await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
      await waitFor(() => exists(sync.hung), 60_000, "the flush after the rename");
    } finally {
      assert.equal((await first.stop("SIGKILL")).signal, "SIGKILL");
    }
    // The copy is in place, as the killed attempt left it, and unrecorded.
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
    assert.doesNotMatch(first.stderr(), /Successfully transferred/);
    if (failingAfter) await Deno.writeTextFile(sync.failing, "");
    await Deno.remove(sync.hang);
    // The killed script's own flush ends; from here on, each call is the next daemon's.
    await waitFor(async () => !await exists(sync.hung), 30_000, "the killed script's flush");
    const before = await callsOf(sync);
    const second = startCli(["run", "-c", config], { env });
    try {
      await second.waitForOutput("Watching");
      const calls = async () => (await callsOf(sync)).slice(before.length);
      await then({ daemon: second, calls, runs, failing: sync.failing });
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
    }
    assert.deepEqual(await listFiles(remote), ["20240701/a.fits"], "no copy beside it, none left");
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
    assert.deepEqual(await runs(), ["a.fits"], "its hook run once");
    return { remote, bytes, runs };
  } finally {
    await sshd.stop();
    await Deno.remove(sync.dir, { recursive: true });
    await Deno.remove(hooks, { recursive: true });
  }
}

Deno.test("daemon (scp, remote_sync): killed after the rename, the copy found at the next start is flushed before it is recorded", async () => {
  await killedAfterRename(false, async ({ daemon, calls, runs }) => {
    await daemon.waitForOutput(/1 file\(s\) had arrived at \S* before the last stop/);
    // Asked and flushed in the look: the server confirmed its folder before it was recorded.
    const made = await calls();
    assert.ok(made.some((call) => /^-f -- \S*\/20240701$/.test(call)), made.join("\n"));
    await waitFor(async () => (await runs()).length > 0, 30_000, "its hook");
  });
});

Deno.test("daemon (scp, remote_sync): killed after the rename, a copy found at the next start that sync fails to flush is not recorded; sent again once sync works", async () => {
  await killedAfterRename(true, async ({ daemon, runs, failing }) => {
    await daemon.waitForOutput(
      /1 file\(s\) found at \S* were not confirmed on disk by the server \(remote_sync\): not counted as arrived, they are sent again \(the first: \S*a\.fits\): sync: error syncing '\S*20240701': Input\/output error/,
    );
    // Sent again, replacing its own copy: not confirmed either.
    await daemon.waitForOutput(/Cannot send \S*a\.fits to \S*20240701\/a\.fits: its copy/);
    assert.doesNotMatch(daemon.stderr(), /before the last stop|Successfully transferred/);
    assert.deepEqual(await runs(), []);
    await Deno.remove(failing);
    await daemon.waitForOutput(/Successfully transferred \S*a\.fits/);
    await waitFor(async () => (await runs()).length > 0, 30_000, "its hook");
    assert.doesNotMatch(daemon.stderr(), /put there by another|already/);
  });
});
