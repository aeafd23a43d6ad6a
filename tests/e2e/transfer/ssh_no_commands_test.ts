/**
 * An account that logs in but runs no commands (an sftp-only account, a login shell like
 * nologin), through the real CLI against a real OpenSSH server on loopback: doctor, `run --once`
 * and `run --dry-run` say so, quoting the server, and `run --once -v` ends without a stack.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

const NO_COMMANDS =
  /logged in to itx-test@127\.0\.0\.1, but the account runs no commands \(an sftp-only account, or a login shell like nologin\)/;

/** The words the server said, as the message quotes them. */
const quoted = (said: string) =>
  new RegExp(
    `the server said: "${
      said.replace(/[.()]/g, "\\$&")
    }": image-transfer needs a POSIX shell on the server`,
  );

for (
  const [name, forceCommand, said] of [
    ["an sftp-only account", "internal-sftp", "This service allows sftp connections only."],
    ["a nologin login shell", "/usr/sbin/nologin", "This account is currently not available."],
  ] as const
) {
  Deno.test(`${name}: doctor says the login works but runs no commands, quoting the server; run --once fails each file at once saying so, with no stack under -v`, async () => {
    const sshd = await startSshd({ forceCommand });
    try {
      for (const method of ["scp", "rsync"] as const) {
        const box = await sshSandbox(sshd, method, {
          retry_attempts: 3,
          retry_delay_seconds: 0.1,
          retry_max_delay_seconds: 0.2,
        });
        try {
          const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
          assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
          const login = doctor.stdout.split("\n").find((line) => line.includes("login:")) ?? "";
          assert.match(login, /^ {2}FAIL {2}login: /, doctor.stdout);
          assert.match(login, NO_COMMANDS);
          assert.match(login, quoted(said));
          assert.match(login, /ask the server's admin/);
          assert.doesNotMatch(login, /Cannot log in|exit code/);

          await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(2000));
          const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
          assert.match(dry.stdout + dry.stderr, NO_COMMANDS, method);

          const run = await runCli(["run", "--once", "-v", "-c", box.config], { env: box.env });
          assert.equal(run.code, 1, run.stderr);
          const output = run.stdout + run.stderr;
          assert.match(
            output,
            /Failed to transfer .*a\.fits: Cannot send .*but the account runs no commands/,
          );
          assert.match(output, quoted(said));
          // Fatal: given up at the first attempt, not retried.
          assert.doesNotMatch(output, /Attempt 1 of .* failed/, method);
          assert.match(output, /^error: Not every file was transferred: 1 file\(s\) failed/m);
          assert.doesNotMatch(
            output,
            /^\s+at .*\(file:\/\//m,
            "no stack trace for an expected outcome",
          );
          assert.deepEqual(await listFiles(box.remote), [], method);
        } finally {
          await Deno.remove(box.root, { recursive: true });
        }
      }
    } finally {
      await sshd.stop();
    }
  });
}

Deno.test("a login that runs nothing and says nothing (a shell like /bin/false): doctor still says it runs no commands", async () => {
  const sshd = await startSshd({ forceCommand: "/bin/false" });
  try {
    const box = await sshSandbox(sshd, "scp");
    try {
      const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(
        doctor.stdout,
        /^ {2}FAIL {2}login: logged in to itx-test@127\.0\.0\.1, but the account runs no commands .*: image-transfer needs a POSIX shell/m,
      );
      assert.doesNotMatch(doctor.stdout, /the server said/);
    } finally {
      await Deno.remove(box.root, { recursive: true });
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("a login shell that prints text, rsync: run --once sends not even a small file (whose call would skip the text), saying what doctor says, and sends once it is quiet", async () => {
  // The login's home for this server only (SetEnv HOME): bash reads its ~/.bashrc for commands.
  const home = await Deno.makeTempDir({ prefix: "itx-noisy-home-" });
  const bashrc = join(home, ".bashrc");
  await Deno.writeTextFile(bashrc, 'echo "Welcome to the archive server!"\n');
  const sshd = await startSshd({ sessionEnv: { HOME: home } });
  await Deno.chown(home, sshd.uid, sshd.gid);
  const box = await sshSandbox(sshd, "rsync", { retry_attempts: 3, retry_delay_seconds: 0.1 });
  try {
    await Deno.writeFile(join(box.watch, "small.fits"), randomBytes(2000));
    const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /Failed to transfer .*small\.fits: Cannot send .*: the login shell of itx-test@127\.0\.0\.1 prints text for non-interactive sessions .*which rsync cannot get through.*\(it printed: "Welcome to the archive server!"\)/,
    );
    assert.doesNotMatch(run.stderr, /Attempt 1 of .* failed/, "fatal: not retried");
    assert.deepEqual(await listFiles(box.remote), []);

    await Deno.writeTextFile(bashrc, '[[ $- == *i* ]] || return\necho "Welcome!"\n');
    const quiet = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal((await listFiles(box.remote)).length, 1);
  } finally {
    await Deno.remove(box.root, { recursive: true });
    await sshd.stop();
    await Deno.remove(home, { recursive: true });
  }
});
