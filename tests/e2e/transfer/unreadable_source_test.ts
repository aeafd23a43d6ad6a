/**
 * A batch with one file the daemon may not read: the others arrive whole, the
 * unreadable one is recorded as failed with a message that says what to fix,
 * and `run --once` exits 1. The daemon runs without root's power to read any
 * file (see `honourFileModes`), over a real SSH server, with scp and rsync.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { closeSource, openSource } from "../../../src/transfer/source.ts";
import { TransferError } from "../../../src/errors.ts";

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: one unreadable file in a batch fails alone and is recorded`, async () => {
    const sshd = await startSshd();
    const { root, watch, remote, config, env } = await sshSandbox(sshd, method, {
      stability_window_seconds: 0.3,
    });
    try {
      const night = new Date("2024-08-01T22:00:00Z");
      const names = ["a.fits", "b.fits", "locked.fits", "c.fits", "d.fits"];
      const bytes = new Map<string, Uint8Array>();
      for (const name of names) {
        const data = randomBytes(50_000);
        bytes.set(name, data);
        await Deno.writeFile(join(watch, name), data);
        await Deno.utime(join(watch, name), night, night);
      }
      await Deno.chmod(join(watch, "locked.fits"), 0o000);

      const run = await runCli(["-v", "run", "--once", "-c", config], {
        env,
        honourFileModes: true,
      });
      assert.equal(run.code, 1, run.stderr);
      // Usually one batch of 5; on a busy machine the files can become ready a few ms apart.
      const batched = [...run.stderr.matchAll(/Sending (\d+) file\(s\) in one batch/g)]
        .reduce((sum, match) => sum + Number(match[1]), 0);
      assert.equal(batched, 5, run.stderr);
      assert.match(run.stderr, /locked\.fits: cannot read the source file .*fix its permissions/);

      const sent = names.filter((name) => name !== "locked.fits");
      assert.deepEqual(await listFiles(remote), sent.map((name) => `20240801/${name}`));
      for (const name of sent) {
        assert.equal(
          await sha256OfFile(join(remote, "20240801", name)),
          createHash("sha256").update(bytes.get(name)!).digest("hex"),
          `bytes of ${name}`,
        );
      }

      const status = await runCli(["status", "-c", config], { env });
      assert.match(status.stdout, /done 4, failed 1/);
      assert.match(status.stdout, /locked\.fits: .*cannot read the source file/);
    } finally {
      await sshd.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("local: a subfolder of the watch folder the daemon may not read is said, listed by a dry run and status, and fails run --once; the rest arrives", async () => {
  await using box = await cliSandbox();
  const night = new Date("2024-08-01T22:00:00Z");
  const data = randomBytes(20_000);
  await Deno.writeFile(join(box.watch, "a.fits"), data);
  await Deno.utime(join(box.watch, "a.fits"), night, night);
  const locked = join(box.watch, "cam 2");
  await Deno.mkdir(locked);
  await Deno.writeFile(join(locked, "inner.fits"), randomBytes(1000));
  await Deno.chmod(locked, 0o000);
  try {
    const options = { env: box.env, honourFileModes: true };
    const dry = await runCli(["run", "--dry-run", "-c", box.config], options);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^skipped .*\/cam 2\/: the folder cannot be read \(.*\): the files/m);

    const once = await runCli(["run", "--once", "-c", box.config], options);
    assert.equal(once.code, 1, once.stderr);
    assert.match(
      once.stderr,
      /ERROR .*Cannot send .*\/cam 2 of job default: the folder cannot be read/,
    );
    assert.match(
      once.stderr,
      /matching file\(s\) or folder\(s\) cannot be sent by their names or read/,
    );
    assert.deepEqual(await Deno.readFile(join(box.dest, "20240801", "a.fits")), data);

    const status = await runCli(["status", "-c", box.config], options);
    assert.match(status.stdout, /NEEDS ATTENTION: .*\/cam 2\/?: the folder cannot be read/);
  } finally {
    await Deno.chmod(locked, 0o755);
  }
});

Deno.test("status with no daemon to ask: a watch folder the daemon's user may not read is said, not shown as watched", async () => {
  await using box = await cliSandbox();
  const options = { env: box.env, honourFileModes: true };
  assert.equal((await runCli(["run", "--once", "-c", box.config], options)).code, 0);
  const readable = await runCli(["status", "-c", box.config], options);
  assert.match(readable.stdout, /^ {2}Would be watched with file events/m);
  await Deno.chmod(box.watch, 0o000);
  try {
    const status = await runCli(["status", "-c", box.config], options);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ {2}Watch folder cannot be read: .*[Pp]ermission denied/m);
    assert.doesNotMatch(status.stdout, /[Ww]atched with/);
  } finally {
    await Deno.chmod(box.watch, 0o755);
  }
});

Deno.test("a watch folder the daemon may not read stops run, run --once and a dry run with exit 4, saying so (not a quiet success with nothing sent); readable again, its file arrives", async () => {
  await using box = await cliSandbox();
  const night = new Date("2024-08-01T22:00:00Z");
  const data = randomBytes(20_000);
  await Deno.writeFile(join(box.watch, "a.fits"), data);
  await Deno.utime(join(box.watch, "a.fits"), night, night);
  const options = { env: box.env, honourFileModes: true };
  await Deno.chmod(box.watch, 0o000);
  try {
    for (const args of [["run", "--once"], ["run", "--dry-run"], ["run"]]) {
      const result = await runCli([...args, "-c", box.config], options);
      const what = `${args.join(" ")}: ${result.stdout}${result.stderr}`;
      assert.equal(result.code, 4, what);
      assert.match(
        result.stderr,
        /error: .*watch.*: the folder cannot be read \(permission denied\), so not one file in it can be seen; .*read/,
        what,
      );
      assert.doesNotMatch(result.stdout, /0 file\(s\) would be transferred/, what);
    }
  } finally {
    await Deno.chmod(box.watch, 0o755);
  }
  assert.equal((await runCli(["run", "--once", "-c", box.config], options)).code, 0);
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240801", "a.fits")), data);
});

Deno.test("local: a file that gave up and is renamed or removed, or whose folder is renamed, is dropped from the failures at once; the renamed ones arrive", async () => {
  await using box = await cliSandbox({ retry_attempts: 0, retry_max_delay_seconds: 3600 });
  const options = { env: box.env, honourFileModes: true };
  const night = new Date("2024-08-01T22:00:00Z");
  const daemon = startCli(["run", "-c", box.config], options);
  try {
    await daemon.waitForOutput("Watching");
    const data = randomBytes(20_000);
    await Deno.mkdir(join(box.watch, "sub"));
    for (const name of ["renamed.fits", "removed.fits", "sub/inner.fits"]) {
      const path = join(box.watch, name);
      await Deno.writeFile(path, data, { mode: 0o000 });
      await Deno.chmod(path, 0o000);
      await Deno.utime(path, night, night);
      await daemon.waitForOutput(new RegExp(`Failed to transfer .*${name}: cannot read`));
    }
    const failing = await runCli(["status", "-c", box.config], options);
    assert.match(failing.stdout, /Files whose last attempt failed \(3\)/, failing.stdout);
    // Fewer listed than have failed: the heading says there are more, not how many are listed.
    const fewer = await runCli(["status", "-n", "2", "-c", box.config], options);
    const heading = "Files whose last attempt failed (more than 2; -n N lists more):\n";
    const listed = fewer.stdout.split(heading)[1]?.split("\n").filter((l) => l.startsWith("  "));
    assert.equal(listed?.length, 2, fewer.stdout);
    const none = await runCli(["status", "-n", "0", "-c", box.config], options);
    assert.match(none.stdout, /\nFiles whose last attempt failed: some; -n N lists them\n/);

    // The user fixes one by giving it another name, throws one away, and renames the folder of
    // the third.
    await Deno.chmod(join(box.watch, "renamed.fits"), 0o644);
    await Deno.rename(join(box.watch, "renamed.fits"), join(box.watch, "fixed.fits"));
    await Deno.remove(join(box.watch, "removed.fits"));
    await Deno.chmod(join(box.watch, "sub", "inner.fits"), 0o644);
    await Deno.rename(join(box.watch, "sub"), join(box.watch, "sub fixed"));
    for (const rel of ["fixed.fits", "sub fixed/inner.fits"]) {
      const arrived = join(box.dest, "20240801", rel);
      await waitFor(
        async () => (await Deno.readFile(arrived).catch(() => null))?.length === data.length,
        30_000,
        rel,
      );
      assert.deepEqual(await Deno.readFile(arrived), data);
    }
    for (const name of ["renamed.fits", "removed.fits", "sub/inner.fits"]) {
      await daemon.waitForOutput(
        new RegExp(
          `Dropped .*${name}: it is gone from the watch folder \\(its attempts had failed\\)`,
        ),
      );
    }
    const status = await runCli(["status", "-c", box.config], options);
    assert.match(status.stdout, /Files whose last attempt failed \(0\)/, status.stdout);
    assert.match(status.stdout, /done 2, failed 0/, status.stdout);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  // The old names are gone, not skipped: the folder's old name is no file that matches nothing.
  assert.doesNotMatch(daemon.stderr(), /Skipped /, daemon.stderr());
  assert.deepEqual(await listFiles(box.dest), [
    "20240801/fixed.fits",
    "20240801/sub fixed/inner.fits",
  ]);
});

Deno.test("local: a file that gave up waits for its slow retry while new files arrive beside it", async () => {
  await using box = await cliSandbox({ retry_attempts: 0, retry_max_delay_seconds: 3600 });
  const options = { env: box.env, honourFileModes: true };
  const daemon = startCli(["run", "-c", box.config], options);
  try {
    await daemon.waitForOutput("Watching");
    const stuck = join(box.watch, "stuck.fits");
    await Deno.writeFile(stuck, randomBytes(20_000), { mode: 0o000 });
    await Deno.chmod(stuck, 0o000);
    await daemon.waitForOutput(/Failed to transfer .*stuck\.fits: cannot read/);
    // New files in the same folder: each makes the folder be read again.
    for (let i = 0; i < 4; i++) {
      await Deno.writeFile(join(box.watch, `new ${i}.fits`), randomBytes(10_000));
      await daemon.waitForOutput(new RegExp(`Successfully transferred .*new ${i}\\.fits`));
    }
    const tries = daemon.stderr().split("\n").filter((line) =>
      /stuck\.fits/.test(line) && /Failed to transfer|Attempt \d+/.test(line)
    );
    assert.equal(tries.length, 1, tries.join("\n"));
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("a source on a share whose client died (ENOTCONN) is retried, not failed for its permissions", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-share-gone-" });
  const share = join(root, "share");
  const real = join(root, "real");
  await Deno.mkdir(real);
  await Deno.writeFile(join(real, "a.fits"), randomBytes(10_000));
  const view = await mountBindfsProcess(real, share);
  try {
    const { mtime } = await Deno.stat(join(real, "a.fits"));
    const item = {
      source: join(share, "a.fits"),
      destination: "20240801/a.fits",
      size: 10_000,
      mtimeMs: mtime!.getTime(),
    };
    closeSource(openSource(item)); // Readable while its client runs.
    view.kill("SIGKILL");
    await view.status;
    let error: unknown = null;
    try {
      closeSource(openSource(item));
    } catch (caught) {
      error = caught;
    }
    assert.ok(error instanceof TransferError, String(error));
    assert.equal(error.kind, "retry");
    assert.match(
      error.message,
      /a\.fits: its file system does not answer \(.*\); a share unmounted/,
    );
    assert.doesNotMatch(error.message, /permissions/);
  } finally {
    await unmountBindfs(share).catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});
