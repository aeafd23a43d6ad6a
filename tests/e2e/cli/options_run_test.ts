/**
 * A run without a config file (`run --watch DIR --to DEST --set KEY=VALUE`) as a run with one:
 * without a home folder its `--set`s are taken where a file's keys would be, its exit before the
 * start is logged, and `status` finds its status page where the run says it is, or says none.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cliArgv, runCli, runProgram, startCli } from "../../helpers/cli.ts";
import { randomBytes, withTempDir } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";

/** Run the CLI with `args` with no home folder at all, as a service or `env -i` starts it. */
function homeless(args: string[], cwd: string) {
  return runProgram("env", [
    ...["-u", "HOME", "-u", "USERPROFILE", "-u", "XDG_STATE_HOME"],
    ...[Deno.execPath(), ...cliArgv(args)],
  ], { cwd });
}

Deno.test("without HOME, a run without a config file is told the --set options to give, and runs with them; status and stop find it by --set state_dir", async () => {
  await withTempDir(async (dir) => {
    const [watch, out, state, log] = ["watch", "out", "state", "nh.log"].map((n) => join(dir, n));
    await Deno.mkdir(watch);
    const bytes = randomBytes(3000);
    await Deno.writeFile(join(watch, "a.fits"), bytes);
    const run = ["run", "--once", "--watch", watch, "--to", out];

    const bare = await homeless(run, dir);
    assert.equal(bare.code, 2, bare.stderr);
    assert.equal(
      bare.stderr.split("\n")[0],
      "error: in the options (--watch, --to, --set): state_dir and log_file default to the home " +
        "folder, which cannot be found (neither HOME nor USERPROFILE is set): set HOME, or give " +
        `--set state_dir=DIR and --set log_file=FILE (--set 'log_file=""' for no log file)`,
    );

    // Before: exit 1, "Cannot find the home folder" (the command that finds it looked for it).
    const given = await homeless([
      ...run,
      "--set",
      `state_dir=${state}`,
      "--set",
      `log_file=${log}`,
    ], dir);
    assert.equal(given.code, 0, given.stderr);
    assert.match(given.stderr, new RegExp(`image-transfer status --set state_dir=${state} and`));
    const [night] = await Array.fromAsync(Deno.readDir(out));
    assert.deepEqual(await Deno.readFile(join(out, night.name, "a.fits")), bytes);
    assert.match(await Deno.readTextFile(log), /Successfully transferred/);

    const noLog = await homeless(
      [...run, "--set", `state_dir=${state}`, "--set", 'log_file=""'],
      dir,
    );
    assert.equal(noLog.code, 0, noLog.stderr);

    const status = await homeless(["status", "--set", `state_dir=${state}`], dir);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^Daemon: not running with state_dir ${state}$`, "m"));
    assert.match(status.stdout, /^Job default: pending 0, interrupted 0, done 1, failed 0$/m);
    const stop = await homeless(["stop", "--set", `state_dir=${state}`], dir);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, new RegExp(`No daemon is running with state_dir ${state}`));

    // Without state_dir, the default state folder is not to be found: said, exit 2.
    const lost = await homeless(["status", "--set", "status_listen=127.0.0.1:1"], dir);
    assert.equal(lost.code, 2, lost.stderr);
    assert.match(lost.stderr, /set HOME, or give the run's --set state_dir=DIR$/m);
  });
});

Deno.test("a run without a config file that exits before it starts logs why (FATAL) to the log file its --set names, or the default one", async () => {
  await withTempDir(async (dir) => {
    const home = join(dir, "home");
    await Deno.mkdir(home);
    const env = { HOME: home, XDG_STATE_HOME: "" };
    const out = join(dir, "out");
    const missing = await runCli(
      ["run", "--once", "--watch", join(dir, "nonexistent"), "--to", out],
      { env },
    );
    assert.equal(missing.code, 4, missing.stderr);
    const usual = join(home, "logs", "image_transfer.log");
    assert.match(
      await Deno.readTextFile(usual),
      /FATAL +\[exit\] Exiting with code 4: Cannot watch \S+nonexistent \(--watch /,
    );

    await Deno.mkdir(join(dir, "watch"));
    const ignored = await runCli([
      "run",
      ...["--watch", join(dir, "watch"), "--to", out],
      ...["--set", 'ssh_options=["RemoteCommand=ls"]'],
    ], { env });
    assert.equal(ignored.code, 2, ignored.stderr);
    assert.match(
      await Deno.readTextFile(usual),
      /FATAL +\[exit\] Exiting with code 2: --set ssh_options=\u2026 would be ignored/,
    );

    // The log file --set names, in its format.
    const named = join(dir, "named.log");
    const json = await runCli([
      "run",
      ...["--once", "--watch", join(dir, "nonexistent"), "--to", out],
      ...["--set", `log_file=${named}`, "--set", "log_format=json"],
    ], { env });
    assert.equal(json.code, 4, json.stderr);
    const line = JSON.parse((await Deno.readTextFile(named)).trim());
    assert.equal(line.level, "fatal");
    assert.equal(line.exitCode, 4);

    // A file that is no log of this program is not appended to (the run refuses it too).
    const foreign = join(dir, "notes.txt");
    await Deno.writeTextFile(foreign, "my notes\n");
    const refused = await runCli([
      "run",
      ...["--once", "--watch", join(dir, "nonexistent"), "--to", out],
      ...["--set", `log_file=${foreign}`],
    ], { env });
    assert.notEqual(refused.code, 0);
    assert.equal(await Deno.readTextFile(foreign), "my notes\n");
  });
});

Deno.test("status --set state_dir=DIR asks the run's page where the run says it listens, and says so when it started none", async () => {
  await withTempDir(async (dir) => {
    const home = join(dir, "home");
    const watch = join(dir, "watch");
    await Deno.mkdir(watch);
    const env = { HOME: home, XDG_STATE_HOME: "" };
    const runAt = (state: string, listen: string) =>
      startCli([
        "run",
        ...["--watch", watch, "--to", join(dir, "out")],
        ...["--set", `state_dir=${state}`, "--set", `status_listen=${listen}`],
        ...["--set", 'log_file=""'],
      ], { env });
    const statusOf = (state: string) => runCli(["status", "--set", `state_dir=${state}`], { env });

    // The run's own address is taken: it starts no page; the default address is not asked.
    const taken = `127.0.0.1:${freePort()}`;
    const [hostname, port] = taken.split(":");
    using squatter = Deno.listen({ hostname, port: Number(port) });
    const refused = runAt(join(dir, "refused"), taken);
    try {
      await refused.waitForOutput("Watching");
      assert.match(refused.stderr(), /Status page not started on \S+: the address is in use/);
      const status = await statusOf(join(dir, "refused"));
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /^Live status unavailable \(the daemon has not said that its status page listens, so none is asked: it started none/m,
      );
      // Before: "Live status unavailable (http://127.0.0.1:8765/ did not answer ...)".
      assert.doesNotMatch(status.stdout, /8765|did not answer/);
    } finally {
      assert.equal((await refused.stop()).code, 0, refused.stderr());
    }
    squatter.close();

    // Its page started: found where the run says it listens, not at the default address.
    const own = `127.0.0.1:${freePort()}`;
    const served = runAt(join(dir, "served"), own);
    try {
      await served.waitForOutput("Watching");
      const status = await statusOf(join(dir, "served"));
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        new RegExp(`^Live \\(http://${own.replaceAll(".", "\\.")}/\\):$`, "m"),
      );
    } finally {
      assert.equal((await served.stop()).code, 0, served.stderr());
    }
  });
});
