/**
 * A job switched from scp to rsync between two runs of the daemon, through the real CLI over a
 * real OpenSSH server: both write over SSH into the same folder, so the second run sends nothing
 * again (the copies at the destination are the same files, once, none beside them as `~2`),
 * `run --dry-run` and `status` keep the history, and a new file goes by rsync.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor, writeConfig } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

/** Inode and mtime of each file under `root`, by relative path. */
async function identities(root: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const rel of await listFiles(root)) {
    const info = await Deno.stat(join(root, rel));
    found.set(rel, `${info.ino} ${info.mtime?.getTime()}`);
  }
  return found;
}

Deno.test("a job switched from scp to rsync sends nothing again after the restart; a new file goes by rsync", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.2,
  });
  try {
    const night = new Date("2024-07-01T20:00:00Z"); // -> 20240701
    const sent = new Map<string, Uint8Array>();
    for (const rel of ["a.fits", "sub/b.fits", "sub/c d.fits"]) {
      await Deno.mkdir(join(watch, "sub"), { recursive: true });
      sent.set(rel, randomBytes(30_000 + sent.size));
      await Deno.writeFile(join(watch, rel), sent.get(rel)!);
      await Deno.utime(join(watch, rel), night, night);
    }
    const first = startCli(["run", "-c", config], { env });
    try {
      await waitFor(
        () => (first.stderr().match(/Successfully transferred/g) ?? []).length === sent.size,
        120_000,
        "the files to go by scp",
      );
    } finally {
      assert.equal((await first.stop("SIGTERM")).code, 0, first.stderr());
    }
    assert.match(first.stderr(), /\(scp to /);
    const before = await identities(remote);
    assert.deepEqual([...before.keys()].sort(), [...sent.keys()].map((r) => `20240701/${r}`));

    // The user switches to rsync: nothing else changes.
    const text = await Deno.readTextFile(config);
    await Deno.writeTextFile(
      config,
      text.replace(/^transfer_method: .*$/m, 'transfer_method: "rsync"'),
    );
    const dry = await runCli(["run", "--dry-run", "-c", config], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout + dry.stderr,
      /job default: 0 file\(s\) would be transferred \(rsync\)/,
    );

    const second = startCli(["run", "-c", config], { env });
    try {
      await second.waitForOutput(/Watching .* for job default \(rsync to /, 120_000);
      const bytes = randomBytes(40_000);
      await Deno.writeFile(join(watch, "new.fits"), bytes);
      await Deno.utime(join(watch, "new.fits"), night, night);
      sent.set("new.fits", bytes);
      await waitFor(
        async () => {
          const out = await runCli(["status", "-c", config], { env });
          return /Job default: pending 0, transferring 0, done 4, failed 0/.test(out.stdout);
        },
        120_000,
        "status to count the new file done, and nothing left to send",
      );
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
    }
    assert.doesNotMatch(second.stderr(), /went to another destination before/);
    assert.equal(
      [...second.stderr().matchAll(/Successfully transferred (.*) ->/g)].map((m) => m[1]).join(),
      join(watch, "new.fits"),
      "only the new file is sent",
    );
    assert.match(second.stderr(), /Stopped: 1 file\(s\) sent, 0 failed/);

    // The copies the scp run made are untouched, once each; the new one arrived whole.
    const after = await identities(remote);
    assert.deepEqual(
      [...after.keys()].sort(),
      [...sent.keys()].map((rel) => `20240701/${rel}`).sort(),
      "each file once, none beside it",
    );
    for (const [rel, id] of before) {
      assert.equal(after.get(rel), id, `${rel} was not written again`);
    }
    for (const [rel, bytes] of sent) {
      const file = join(root, "expected");
      await Deno.writeFile(file, bytes);
      assert.equal(
        await sha256OfFile(join(remote, "20240701", rel)),
        await sha256OfFile(file),
        rel,
      );
    }
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a job renamed in the config: run --dry-run and status count what it sent under its old name before the start takes it over", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-renamed-" });
  try {
    const [watch, dest, config] = ["watch", "dest", "config.yaml"].map((p) => join(root, p));
    await Deno.mkdir(watch);
    await Deno.mkdir(join(root, "home"));
    for (const name of ["a.fits", "b.fits"]) {
      await Deno.writeFile(join(watch, name), randomBytes(2880));
    }
    const keys = {
      watch_path: watch,
      remote_base_path: dest,
      transfer_method: "local",
      stability_window_seconds: 0.2,
      night_timezone: "UTC",
      state_dir: join(root, "state"),
      log_file: "",
    };
    const env = { HOME: join(root, "home") };
    await writeConfig(config, { name: "camera", ...keys });
    const first = await runCli(["run", "--once", "-c", config], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await listFiles(dest)).length, 2);

    await writeConfig(config, { name: "camera-north", ...keys });
    const dry = await runCli(["run", "--dry-run", "-c", config], { env });
    assert.match(dry.stdout + dry.stderr, /job camera-north: 0 file\(s\) would be transferred/);
    const status = await runCli(["status", "-c", config], { env });
    assert.match(status.stdout, /Job camera-north: pending 0, interrupted 0, done 2, failed 0/);
    const again = await runCli(["run", "--once", "-c", config], { env });
    assert.match(again.stderr, /Job camera-north was named camera before/);
    assert.match(again.stderr, /Stopped: 0 file\(s\) sent/);
    assert.equal((await listFiles(dest)).length, 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
