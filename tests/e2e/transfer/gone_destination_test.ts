/**
 * What `doctor` says of a destination folder that files arrived in and that is gone since (moved
 * away, a share not mounted, a symbolic link whose folder went): what `run` does, which sends
 * nothing there until it is back. And what `run` says of a destination folder that is not there
 * and whose folder above refuses it; `doctor`'s test folder that could not be removed. Through
 * the real CLI, against a real OpenSSH server on loopback and with the `local` method.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { exists, writeConfig } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

/** What `run` says of a destination folder gone although files arrived there (`baseGoneReason`). */
const GONE =
  /is gone \(a share that is not mounted\?\): files arrived there before, so it is not made again, and nothing is sent until it is back/;

/** The reason `run` logged for `base` being gone, from its log `text`. */
function goneReasonIn(text: string, base: string): string {
  const reason = text.match(/the destination folder \S+ is gone \(a share[^;]*;[^(\n]*/)?.[0];
  assert.ok(reason !== undefined, text);
  assert.ok(reason.includes(base), reason);
  return reason.trim();
}

/** Give the config file `config` the base path `base` instead of `was`; its text now. */
async function rebase(config: string, was: string, base: string): Promise<string> {
  const text = (await Deno.readTextFile(config))
    .replace(
      `remote_base_path: ${JSON.stringify(was)}`,
      `remote_base_path: ${JSON.stringify(base)}`,
    );
  assert.ok(text.includes(JSON.stringify(base)));
  await Deno.writeTextFile(config, text);
  return text;
}

Deno.test("doctor over SSH says what run does of a destination folder gone, refused or left", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "itx-gone-dest-" });
  await Deno.chmod(root, 0o755);
  // The server's rmdir fails while `no rmdir` is there (a PATH without it, say).
  const noRmdir = join(root, "no rmdir");
  const remoteTools = await standInPrograms(join(root, "remote"), {
    rmdir: `if [ -e '${noRmdir}' ]; then echo "sh: rmdir: not found" >&2; exit 127; fi\n` +
      'exec /usr/bin/rmdir "$@"\n',
  });
  const sshd = await startSshd({ sessionEnv: { PATH: `${remoteTools}:/usr/bin:/bin` } });
  try {
    await t.step(
      "a destination folder gone after files arrived there: FAIL, as run says",
      async () => {
        const box = await sshSandbox(sshd, "rsync", { retry_attempts: 0 });
        const base = join(box.remote, "base");
        await rebase(box.config, box.remote, base);
        await Deno.writeTextFile(join(box.watch, "a.fits"), "first night\n");
        const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
        assert.equal(first.code, 0, first.stderr);
        assert.match(first.stderr, /Successfully transferred .*a\.fits/);
        await Deno.rename(base, `${base}.gone`);

        const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
        assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
        assert.doesNotMatch(doctor.stdout, /the first transfer makes it/);
        assert.doesNotMatch(doctor.stdout, /destination writable/, "nothing to write into");

        await Deno.writeTextFile(join(box.watch, "b.fits"), "second night\n");
        const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
        assert.equal(run.code, 1, run.stderr);
        assert.ok(!(await exists(base)), "not made again");
        const reason = goneReasonIn(run.stderr, base);
        assert.ok(
          doctor.stdout.includes(
            `FAIL  destination folder: ${sshd.user}@127.0.0.1:${base}: ${reason}`,
          ),
          `doctor says run's reason (${reason}):\n${doctor.stdout}`,
        );
      },
    );

    await t.step("a symbolic link whose folder is gone: named as such, FAIL", async () => {
      const box = await sshSandbox(sshd, "rsync", { retry_attempts: 0 });
      const real = join(box.remote, "real");
      const link = join(box.remote, "link");
      await Deno.mkdir(real);
      await Deno.chown(real, sshd.uid, sshd.gid);
      await Deno.symlink(real, link);
      const config = await rebase(box.config, box.remote, link);
      await Deno.writeTextFile(join(box.watch, "a.fits"), "first night\n");
      const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
      assert.equal(first.code, 0, first.stderr);
      await Deno.rename(real, `${real}.gone`);

      const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(
        doctor.stdout,
        new RegExp(
          `FAIL  destination folder: .*:${link}: the destination folder ${link} ${GONE.source}.*` +
            `\\(it is a symbolic link to ${real}, which does not exist\\)`,
        ),
      );
      assert.doesNotMatch(doctor.stdout, /the first transfer makes it|no answer/);

      // A job that sent nothing there yet: no folder is made through the link either.
      const fresh = config.replace(/^state_dir: .*$/m, `state_dir: "${join(box.root, "fresh")}"`);
      await Deno.writeTextFile(box.config, fresh);
      const again = await runCli(["doctor", "-c", box.config], { env: box.env });
      assert.equal(again.code, 1, again.stdout + again.stderr);
      assert.match(
        again.stdout,
        new RegExp(
          `FAIL  destination folder: .*:${link}: the destination folder ${link} is a symbolic ` +
            `link to ${real}, which does ` +
            `not exist, and no folder is made through it: make ${real} there`,
        ),
      );
    });

    await t.step(
      "a destination folder whose folder above refuses it: run names that folder",
      async () => {
        // A retry: a file tried again is not taken for one whose own folder alone is refused.
        const box = await sshSandbox(sshd, "scp", { retry_attempts: 1, retry_delay_seconds: 1 });
        const above = join(box.remote, "ro");
        const base = join(above, "scp");
        await Deno.mkdir(above, { mode: 0o555 });
        await Deno.chown(above, sshd.uid, sshd.gid);
        await Deno.chmod(above, 0o555);
        await rebase(box.config, box.remote, base);
        for (const name of ["a.fits", "b.fits", "c.fits"]) {
          await Deno.writeTextFile(join(box.watch, name), `${name}\n`);
        }
        const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
        assert.equal(run.code, 1, run.stderr);
        assert.match(
          run.stderr,
          new RegExp(
            `may not make the destination folder ${base}: it is not there, and ${above} refuses ` +
              "it \\(permission denied\\)",
          ),
        );
        assert.doesNotMatch(run.stderr, /may not write into the destination folder/);
        assert.doesNotMatch(run.stderr, /files whose folder is there arrive/);
        assert.equal((run.stderr.match(/Failed to transfer/g) ?? []).length, 3, run.stderr);
      },
    );

    await t.step(
      "a destination folder there that refuses new folders, retried: said so, no file arrived",
      async () => {
        // A retry: the file tried again is its own failure, said as what it is.
        const box = await sshSandbox(sshd, "scp", { retry_attempts: 1, retry_delay_seconds: 1 });
        await Deno.chmod(box.remote, 0o555);
        await Deno.writeTextFile(join(box.watch, "a.fits"), "a\n");
        const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, /may not write into the destination folder/);
        assert.match(
          run.stderr,
          new RegExp(
            `may not make this file's folder in the destination folder ${box.remote} ` +
              "\\(permission denied; no new folder can be made there\\): make its folder there, " +
              "or fix the owner or permissions of the destination folder",
          ),
        );
        assert.doesNotMatch(run.stderr, /files whose folder is there arrive/);
      },
    );

    await t.step("a test folder that could not be removed is said, not ok", async () => {
      const box = await sshSandbox(sshd, "scp");
      await Deno.writeTextFile(noRmdir, "");
      try {
        const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
        assert.doesNotMatch(doctor.stdout, /created and removed a test folder/);
        const left = doctor.stdout.match(
          /WARN {2}destination writable: created a test folder in .*, but could not remove it \(.*rmdir: not found\): .*\/(\.image-transfer-probe-\w+) is left there; remove it/,
        );
        assert.ok(left, doctor.stdout);
        assert.ok(await exists(join(box.remote, left[1])), "the folder said is the one left");
      } finally {
        await Deno.remove(noRmdir);
      }
    });
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true });
  }
});

/** What `run` says of a base path `link` that is a symbolic link to `target`, which is not there. */
function danglingRun(link: string, target: string): RegExp {
  return new RegExp(
    `the destination folder ${link} is a symbolic link to ${target}, which does not exist, and ` +
      `no folder is made through it: make ${target}`,
  );
}

Deno.test("run over SSH names a destination folder that is a symbolic link to nothing", async (t) => {
  const sshd = await startSshd();
  try {
    for (const method of ["scp", "rsync"] as const) {
      await t.step(
        `${method}: no file arrived before: the link and its target, not mkdir's words`,
        async () => {
          const box = await sshSandbox(sshd, method, { retry_attempts: 0 });
          try {
            const real = join(box.remote, "real");
            const link = join(box.remote, "link");
            await Deno.symlink(real, link);
            await rebase(box.config, box.remote, link);
            await Deno.writeTextFile(join(box.watch, "a.fits"), "first night\n");
            const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
            assert.equal(run.code, 1, run.stderr);
            assert.match(run.stderr, danglingRun(link, real));
            assert.doesNotMatch(run.stderr, /File exists/);
            assert.ok(!(await exists(real)), "nothing made through the link");
            const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
            assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
            assert.match(doctor.stdout, danglingRun(link, real), "doctor says what run says");
          } finally {
            await Deno.remove(box.root, { recursive: true });
          }
        },
      );
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("doctor with the local method says what run does of a destination folder gone", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "itx-gone-local-" });
  try {
    const watch = join(root, "watch");
    await Deno.mkdir(watch);
    const config = join(root, "config.yaml");
    const job = (base: string, state: string) =>
      writeConfig(config, {
        watch_path: watch,
        transfer_method: "local",
        remote_base_path: base,
        night_timezone: "UTC",
        state_dir: join(root, state),
        log_file: "",
        retry_attempts: 0,
      });

    await t.step("moved away after files arrived: FAIL, as run says", async () => {
      const base = join(root, "dest");
      await job(base, "state-moved");
      await Deno.writeTextFile(join(watch, "a.fits"), "first night\n");
      const first = await runCli(["run", "--once", "-c", config]);
      assert.equal(first.code, 0, first.stderr);
      await Deno.rename(base, `${base}.gone`);
      const doctor = await runCli(["doctor", "-c", config]);
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.doesNotMatch(doctor.stdout, /the first transfer makes it/);
      await Deno.writeTextFile(join(watch, "b.fits"), "second night\n");
      const run = await runCli(["run", "--once", "-c", config]);
      assert.equal(run.code, 1, run.stderr);
      assert.ok(!(await exists(base)), "not made again");
      const reason = goneReasonIn(run.stderr, base);
      assert.ok(
        doctor.stdout.includes(`FAIL  destination folder: ${base}: ${reason}`),
        `doctor says run's reason (${reason}):\n${doctor.stdout}`,
      );
    });

    await t.step("a symbolic link to nothing: named as such, FAIL", async () => {
      const link = join(root, "link");
      const real = join(root, "real");
      await Deno.symlink(real, link);
      await job(link, "state-link");
      const doctor = await runCli(["doctor", "-c", config]);
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(
        doctor.stdout,
        new RegExp(
          `FAIL  destination folder: ${link}: the destination folder ${link} is a symbolic link ` +
            `to ${real}, which does not ` +
            "exist, and no folder is made through it",
        ),
      );
      assert.doesNotMatch(doctor.stdout, /the first transfer makes it/);

      // run says the same, not mkdir's "File exists", and makes nothing through the link.
      await Deno.writeTextFile(join(watch, "a.fits"), "first night\n");
      const run = await runCli(["run", "--once", "-c", config]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, danglingRun(link, real));
      assert.doesNotMatch(run.stderr, /File exists/);
      assert.ok(!(await exists(real)), "nothing made through the link");
      await Deno.remove(join(watch, "a.fits"));
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("doctor with the ftp method fails a destination folder gone after files arrived there", () =>
  withVsftpdAndRoot({}, "itx-gone-ftp-", async ({ server, root }) => {
    const { base, watch, config } = await ftpDaemonSandbox(
      server,
      root,
      { retry_attempts: 0 },
      "base",
    );
    await Deno.writeTextFile(join(watch, "a.fits"), "first night\n");
    const first = await runCli(["run", "--once", "-c", config], { env: { HOME: root } });
    assert.equal(first.code, 0, first.stderr);
    await Deno.rename(base, `${base}.gone`);
    const doctor = await runCli(["doctor", "-c", config], { env: { HOME: root } });
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, new RegExp(`FAIL  destination folder: .*base: .*${GONE.source}`));
    assert.doesNotMatch(doctor.stdout, /the first transfer makes it/);
    await Deno.writeTextFile(join(watch, "b.fits"), "second night\n");
    const run = await runCli(["run", "--once", "-c", config], { env: { HOME: root } });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, GONE);
    assert.ok(!(await exists(base)), "not made again");
  }));
