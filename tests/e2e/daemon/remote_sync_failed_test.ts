/**
 * `remote_sync` through the real CLI over a real OpenSSH server whose `sync` fails after the
 * renames (GNU sync's words for a write-back error) while a flag file is there: the file is in
 * place at the destination, but the daemon does not record it as arrived (no success line, no
 * hook) and says why; once sync works, its next attempt puts the same bytes there (replacing its
 * own copy, not beside it), flushes, and records it as sent, with its hook.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { countingHook } from "../../helpers/sandbox.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/**
 * A folder holding a `sync` for the server's sessions: while `failing` exists, a flush of a
 * folder that holds a file under a final name (the upload folders are hidden) other than
 * `others`', that is after a rename, fails.
 */
async function syncFailingAfterRenames(others = ""): Promise<{ dir: string; failing: string }> {
  const dir = await Deno.makeTempDir({ prefix: "itx-sync-after-" });
  await Deno.chmod(dir, 0o755);
  const failing = join(dir, "failing");
  await standInPrograms(dir, {
    sync: `if [ -e '${failing}' ] && [ "$1" = -f ]; then\n  shift 2\n  for folder do\n` +
      `    if [ -n "$(ls -- "$folder" | grep -vx -- '${others}')" ]; then\n` +
      `      echo "sync: error syncing '$folder': Input/output error" >&2\n      exit 1\n` +
      `    fi\n  done\nfi\nexec /usr/bin/sync "$@"\n`,
  });
  await Deno.writeTextFile(failing, "");
  return { dir, failing };
}

/**
 * An scp job with `remote_sync` and an `on_transfer` hook, against a real sshd whose `sync` is
 * {@linkcode syncFailingAfterRenames}'s; `test` runs with it, and everything is removed after.
 */
async function withFailingFlush(
  retryDelaySeconds: number,
  others: string,
  test: (sandbox: {
    watch: string;
    remote: string;
    config: string;
    env: Record<string, string>;
    runs: () => Promise<string[]>;
    /** The flag that makes sync fail after the renames. */
    failing: string;
  }) => Promise<void>,
): Promise<void> {
  const sync = await syncFailingAfterRenames(others);
  const hooks = await Deno.makeTempDir({ prefix: "itx-hook-" });
  const { hook, runs } = await countingHook(hooks);
  const sshd = await startSshd({ sessionEnv: { PATH: `${sync.dir}:/usr/bin:/bin` } });
  try {
    const sandbox = await sshSandbox(sshd, "scp", {
      remote_sync: true,
      stability_window_seconds: 0.2,
      retry_delay_seconds: retryDelaySeconds,
      retry_attempts: 50,
      on_transfer: [hook],
    });
    await test({ ...sandbox, runs, failing: sync.failing });
  } finally {
    await sshd.stop();
    await Deno.remove(sync.dir, { recursive: true });
    await Deno.remove(hooks, { recursive: true });
  }
}

/**
 * A daemon run on `config` in which `a.fits` (`bytes`, of the night 20240701) is sent and its
 * copy left in place unconfirmed (`said` in the log); stopped then. @returns its log
 */
async function leaveUnconfirmed(
  { watch, config, env }: { watch: string; config: string; env: Record<string, string> },
  bytes: Uint8Array,
  said: RegExp,
): Promise<string> {
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(watch, "a.fits"), bytes);
    await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
    await daemon.waitForOutput(said);
  } finally {
    assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
  }
  return daemon.stderr();
}

for (
  const [how, size] of [["in one call", 20_000], [
    "by scp and the finishing call",
    9 << 20,
  ]] as const
) {
  Deno.test(`daemon (scp, ${how}): a flush that fails after the rename is no arrival; the next attempt, once sync works, is`, async () => {
    await withFailingFlush(0.5, "", async ({ watch, remote, config, env, runs, failing }) => {
      const bytes = randomBytes(size);
      const daemon = startCli(["run", "-c", config], { env });
      try {
        await daemon.waitForOutput("Watching");
        await Deno.writeFile(join(watch, "a.fits"), bytes);
        await Deno.utime(join(watch, "a.fits"), NIGHT, NIGHT);
        await daemon.waitForOutput(
          /Cannot send \S*a\.fits to \S*20240701\/a\.fits: its copy is in place, but the server did not confirm it on disk after the rename \(remote_sync\): not counted as arrived, it is sent again: sync: error syncing '\S*20240701': Input\/output error/,
        );
        // In place, and not recorded: no success, no hook.
        assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
        assert.doesNotMatch(daemon.stderr(), /Successfully transferred/);
        assert.deepEqual(await runs(), []);
        await Deno.remove(failing);
        await daemon.waitForOutput(/Successfully transferred \S*a\.fits/);
        await waitFor(async () => (await runs()).length > 0, 30_000, "its hook");
      } finally {
        const status = await daemon.stop("SIGTERM");
        assert.equal(status.code, 0, daemon.stderr());
      }
      assert.deepEqual(
        await listFiles(remote),
        ["20240701/a.fits"],
        "no copy beside it, none left",
      );
      assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(bytes));
      assert.deepEqual(await runs(), ["a.fits"], "sent once, its hook run once");
      assert.doesNotMatch(daemon.stderr(), /put there by another|already/);
    });
  });
}

for (const damaged of [false, true]) {
  Deno.test(
    `daemon (scp): a copy left unconfirmed by a failed flush and a restart before the retry: ${
      damaged ? "other bytes there are replaced" : "its bytes count once flushed"
    }; nothing beside it, its hook once`,
    async () => {
      await withFailingFlush(5, "", async ({ watch, remote, config, env, runs, failing }) => {
        const bytes = randomBytes(20_000);
        const first = await leaveUnconfirmed(
          { watch, config, env },
          bytes,
          /did not confirm it on disk after the rename/,
        );
        assert.doesNotMatch(first, /Successfully transferred/);
        // The write-back error the flush met damaged the copy (or did not).
        const copy = join(remote, "20240701/a.fits");
        if (damaged) await Deno.writeFile(copy, randomBytes(bytes.length));
        await Deno.remove(failing);
        const second = startCli(["run", "-c", config], { env });
        try {
          await second.waitForOutput(/Successfully transferred \S*a\.fits/);
          await waitFor(async () => (await runs()).length > 0, 30_000, "its hook");
        } finally {
          assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
        }
        assert.deepEqual(await listFiles(remote), ["20240701/a.fits"], "no copy beside it");
        assert.equal(await sha256OfFile(copy), sha256Of(bytes));
        assert.deepEqual(await runs(), ["a.fits"], "its hook run once");
        // Intact, it counts once the look flushed it; damaged, it is sent again over it.
        const counted = /Successfully transferred \S*a\.fits.*had arrived before the last stop/;
        if (damaged) assert.doesNotMatch(second.stderr(), counted);
        else assert.match(second.stderr(), counted);
        assert.doesNotMatch(second.stderr(), /put there by another|beside it/);
      });
    },
  );
}

Deno.test("daemon (scp): a copy put beside another's file and left unconfirmed, then a restart: the other's file is never replaced", async () => {
  await withFailingFlush(5, "a.fits", async ({ watch, remote, config, env, failing }) => {
    // Another's file under the name planned: the copy goes beside it, as a~2.fits.
    const theirs = randomBytes(5_000);
    await Deno.mkdir(join(remote, "20240701"), { mode: 0o777 });
    await Deno.chmod(join(remote, "20240701"), 0o777);
    await Deno.writeFile(join(remote, "20240701/a.fits"), theirs, { mode: 0o666 });
    const bytes = randomBytes(20_000);
    await leaveUnconfirmed(
      { watch, config, env },
      bytes,
      /a~2\.fits: its copy is in place, but the server did not confirm/,
    );
    await Deno.remove(failing);
    const second = startCli(["run", "-c", config], { env });
    try {
      // Its copy there, beside theirs, is found (confirmed by the look's flush) or sent again.
      await second.waitForOutput(/already with their bytes|a\.fits -> \S*20240701\/a~2\.fits/);
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
    }
    assert.equal(await sha256OfFile(join(remote, "20240701/a.fits")), sha256Of(theirs), "theirs");
    assert.equal(await sha256OfFile(join(remote, "20240701/a~2.fits")), sha256Of(bytes));
  });
});
