/**
 * The daemon as a process: the PID file and `status`, SIGHUP reloads (valid,
 * invalid, in the middle of a copy), and fatal start-up errors reaching the
 * log file with their exit codes. Real processes through the CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { cliSandbox, type Sandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";
import { remountTmpfs, withTmpfs } from "../../helpers/tmpfs.ts";
import { VERSION } from "../../../src/version.ts";

const noon = new Date("2024-05-02T12:00:00Z");

/** Write a file with a known mtime into `folder`; returns its bytes. */
async function drop(folder: string, name: string, size = 2048): Promise<Uint8Array> {
  const bytes = randomBytes(size);
  await Deno.writeFile(join(folder, name), bytes);
  await Deno.utime(join(folder, name), noon, noon);
  return bytes;
}

/** Wait until `dest/20240502/name` holds exactly `bytes`. */
async function arrives(dest: string, name: string, bytes: Uint8Array): Promise<void> {
  const path = join(dest, "20240502", name);
  await waitFor(
    async () => {
      const got = await Deno.readFile(path).catch(() => null);
      return got !== null && got.length === bytes.length;
    },
    30_000,
    `${path}`,
  );
  assert.deepEqual(await Deno.readFile(path), bytes);
}

function status(box: Sandbox, json = false) {
  return runCli(["-c", box.config, "status", ...(json ? ["--json"] : [])], { env: box.env });
}

Deno.test("PID file while running, gone after SIGTERM; status says whether a daemon runs", async () => {
  await using box = await cliSandbox();
  const pidFile = join(box.stateDir, "daemon.pid");
  const before = await status(box);
  assert.equal(before.code, 0, before.stderr);
  assert.match(
    before.stdout,
    new RegExp(`^Daemon: not running with state_dir ${RegExp.escape(box.stateDir)}$`, "m"),
  );

  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    assert.equal(await Deno.readTextFile(pidFile), `${daemon.process.pid}\n`);
    const text = await status(box);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      new RegExp(
        `^Daemon: running, pid ${daemon.process.pid}, since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d, ` +
          `version ${VERSION.replaceAll(".", "\\.")}, config ${box.config}$`,
        "m",
      ),
    );
    const json = JSON.parse((await status(box, true)).stdout);
    assert.equal(json.daemon.running, true);
    assert.equal(json.daemon.pid, daemon.process.pid);
    assert.equal(json.daemon.version, VERSION);
    assert.ok(Date.now() - Date.parse(json.daemon.startedAt) < 60_000);
  } finally {
    const exit = await daemon.stop("SIGTERM");
    assert.equal(exit.code, 0, daemon.stderr());
  }
  await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(join(box.stateDir, "daemon.json")), Deno.errors.NotFound);
  assert.match((await status(box)).stdout, /^Daemon: not running with state_dir .+$/m);
  assert.equal(JSON.parse((await status(box, true)).stdout).daemon.running, false);
});

Deno.test("status shows live data only from its own daemon, not from another one on the same status_listen", async () => {
  const listen = `127.0.0.1:${freePort()}`;
  await using first = await cliSandbox({ status_listen: listen });
  await using second = await cliSandbox({ status_listen: listen });
  const a = startCli(["run", "-c", first.config], { env: first.env });
  try {
    await a.waitForOutput("Watching");
    const b = startCli(["run", "-c", second.config], { env: second.env });
    try {
      await b.waitForOutput("Watching");
      assert.match(
        b.stderr(),
        /Status page not started on 127\.0\.0\.1:\d+: the address is in use/,
      );
      const own = await status(first);
      assert.equal(own.code, 0, own.stderr);
      assert.match(
        own.stdout,
        new RegExp(`^Live \\(http://${listen.replaceAll(".", "\\.")}/\\):$`, "m"),
      );
      const other = await status(second);
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stdout, new RegExp(`^Daemon: running, pid ${b.process.pid},`, "m"));
      assert.doesNotMatch(other.stdout, /^Live \(/m);
      assert.match(
        other.stdout,
        new RegExp(
          `^Live status unavailable \\(.*answered by another process \\(pid ${a.process.pid}\\), ` +
            `not by this daemon \\(pid ${b.process.pid}\\)`,
          "m",
        ),
      );
      const json = JSON.parse((await status(second, true)).stdout);
      assert.equal(json.live.jobs, undefined);
      assert.match(json.live.unavailable, /another process/);
    } finally {
      assert.equal((await b.stop("SIGTERM")).code, 0, b.stderr());
    }
  } finally {
    assert.equal((await a.stop("SIGTERM")).code, 0, a.stderr());
  }
});

Deno.test("a PID file left by a killed daemon is reported stale and replaced at the next start", async () => {
  await using box = await cliSandbox();
  const pidFile = join(box.stateDir, "daemon.pid");
  const killed = startCli(["run", "-c", box.config], { env: box.env });
  await killed.waitForOutput("Watching");
  const oldPid = killed.process.pid;
  assert.equal((await killed.stop("SIGKILL")).signal, "SIGKILL");
  assert.equal(await Deno.readTextFile(pidFile), `${oldPid}\n`);

  const stale = await status(box);
  assert.match(
    stale.stdout,
    new RegExp(
      `^Daemon: not running with state_dir .+ \\(stale PID file .* of pid ${oldPid}:`,
      "m",
    ),
  );

  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    assert.match(daemon.stderr(), new RegExp(`Replacing the PID file of pid ${oldPid}`));
    assert.equal(await Deno.readTextFile(pidFile), `${daemon.process.pid}\n`);
    const bytes = await drop(box.watch, "after.fits");
    await arrives(box.dest, "after.fits", bytes);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("what a killed daemon left in the runtime folder (its watcher's heartbeat folder included) is removed by the next start; a clean stop leaves nothing there", async () => {
  await using box = await cliSandbox();
  const runtime = join(box.root, "run");
  await Deno.mkdir(runtime);
  const env = { ...box.env, RUNTIME_DIRECTORY: runtime };
  const killed = startCli(["run", "-c", box.config], { env });
  await killed.waitForOutput("Watching");
  assert.equal((await killed.stop("SIGKILL")).signal, "SIGKILL");
  const left = await listFiles(runtime);
  assert.ok(
    left.some((rel) => /^itx-[^/]+\/image-transfer-watch-[^/]+\/heartbeat$/.test(rel)),
    left.join(),
  );
  assert.deepEqual([...Deno.readDirSync(runtime)].length, 1, "one folder: the daemon's");

  const daemon = startCli(["run", "-c", box.config], { env });
  try {
    await daemon.waitForOutput("Watching");
    assert.match(daemon.stderr(), /Removed the runtime folder .*itx-/);
    assert.deepEqual([...Deno.readDirSync(runtime)].length, 1, "only the running daemon's");
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.deepEqual([...Deno.readDirSync(runtime)], []);
});

Deno.test("SIGHUP with a valid config: the new jobs and destinations take effect, and the log says what changed", async () => {
  await using box = await cliSandbox({ name: "cam" });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const first = await drop(box.watch, "first.fits");
    await arrives(box.dest, "first.fits", first);

    const dest2 = join(box.root, "dest2");
    const watch2 = join(box.root, "watch2");
    const dest3 = join(box.root, "dest3");
    await Deno.mkdir(watch2);
    await box.rewrite({
      jobs: [
        { name: "cam", remote_base_path: dest2, max_concurrent_transfers: 1 },
        { name: "second", watch_path: watch2, remote_base_path: dest3 },
      ],
    });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(/Reloaded .*: 2 job\(s\)/);
    await daemon.waitForOutput(`Watching ${watch2} for job second`);
    // What changed is said, key by key, and the job added with where it sends.
    await daemon.waitForOutput(
      `Reload: job second added (${watch2} -> ${dest3} (local))`,
    );
    await daemon.waitForOutput(
      `Reload: job cam: max_concurrent_transfers 4 -> 1, remote_base_path "${box.dest}" -> "${dest2}"`,
    );

    const moved = await drop(box.watch, "moved.fits");
    const other = await drop(watch2, "other.fits");
    await arrives(dest2, "moved.fits", moved);
    await arrives(dest3, "other.fits", other);
    // The new destination gets what it has not received: the file sent before the reload too.
    await arrives(dest2, "first.fits", first);
    assert.deepEqual(await listFiles(box.dest), ["20240502/first.fits"]);

    // A job removed, and a reload of an unchanged file, are said too.
    await box.rewrite({
      jobs: [{ name: "cam", remote_base_path: dest2, max_concurrent_transfers: 1 }],
    });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(
      `Reload: job second removed (${watch2} -> ${dest3} (local)): its files are no longer sent`,
    );
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload: nothing changed in the config");
    assert.equal(
      await Deno.readTextFile(join(box.stateDir, "daemon.pid")),
      `${daemon.process.pid}\n`,
    );
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = await Deno.readTextFile(box.logFile);
  assert.match(log, /INFO +\[daemon\] Reloading .*config\.yaml \(SIGHUP\)/);
  assert.match(
    log,
    /1 file\(s\) of job cam went to another destination before \(or by another transfer_method\), not to .*dest2 by local; those still in the watch folder are sent there now/,
  );
  assert.match(log, /Stopped: 4 file\(s\) sent, 0 failed in this run/);
});

Deno.test("a job renamed in the config keeps what it sent, at a restart and at a reload: nothing is sent again", async () => {
  await using box = await cliSandbox({ name: "cam" });
  const first = await drop(box.watch, "first.fits");
  const once = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(once.code, 0, once.stderr);
  await arrives(box.dest, "first.fits", first);
  // The copy is taken away: a job that sent it again would bring it back.
  await Deno.remove(join(box.dest, "20240502"), { recursive: true });

  await box.rewrite({ jobs: [{ name: "north" }] });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const second = await drop(box.watch, "second.fits");
    await arrives(box.dest, "second.fits", second);

    await box.rewrite({ jobs: [{ name: "south" }] });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(/Reloaded .*: 1 job\(s\)/);
    await daemon.waitForOutput("Watching " + box.watch + " for job south");
    const third = await drop(box.watch, "third.fits");
    await arrives(box.dest, "third.fits", third);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.deepEqual(await listFiles(box.dest), ["20240502/second.fits", "20240502/third.fits"]);
  const log = await Deno.readTextFile(box.logFile);
  assert.match(
    log,
    /Job north was named cam before \(same watch folder and destination\): its 1 file\(s\) in the ledger are its own, nothing is sent again/,
  );
  assert.match(log, /Job south was named north before .*: its 2 file\(s\) in the ledger/);
  // The reload says the rename as one, not as a job removed whose files are no longer sent.
  const renamed = `Reload: job north renamed to south (${box.watch} -> ${box.dest} (local)): ` +
    "what it sent stays its own\n";
  assert.ok(log.includes(renamed), log);
  assert.doesNotMatch(log, /Reload: job (north|south) (removed|added)/);
  assert.equal(log.match(/Successfully transferred .*first\.fits/g)?.length, 1, log);
});

Deno.test("SIGHUP with an invalid config is refused with a log line; the running config keeps working", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await box.rewrite({ retry_attempts: "three", remote_base_path: join(box.root, "elsewhere") });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload refused");
    const bytes = await drop(box.watch, "still.fits");
    await arrives(box.dest, "still.fits", bytes);
    // While the file is broken, status still finds the daemon by the file's state_dir, says the
    // reload was refused and what the ledger knows, then ends with the file's error (exit 2).
    const broken = await status(box);
    assert.equal(broken.code, 2, broken.stdout + broken.stderr);
    assert.match(
      broken.stdout,
      /^Config .*config\.yaml cannot be read \(below\): a running daemon/,
    );
    assert.match(broken.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
    assert.match(broken.stdout, /Its last reload \(.*\) was refused, so it runs the config it had/);
    assert.match(broken.stdout, /^Job default: .*done 1/m);
    // The daemon has no status page: none is asked for at the default address (another's page).
    assert.doesNotMatch(broken.stdout, /Live/);
    assert.match(broken.stderr, /^error: .*config\.yaml:\d+: retry_attempts: /m);
    // The same when the YAML itself is broken (a bracket left open): its state_dir still counts.
    const text = await Deno.readTextFile(box.config);
    await Deno.writeTextFile(box.config, `${text}file_patterns: ["*.fits"\n`);
    const unparsed = await status(box);
    assert.equal(unparsed.code, 2, unparsed.stdout + unparsed.stderr);
    assert.match(unparsed.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
    await Deno.writeTextFile(box.config, text);

    // A config others could write is refused the same way.
    await box.rewrite({ remote_base_path: join(box.root, "elsewhere") });
    await Deno.chmod(box.config, 0o666);
    daemon.process.kill("SIGHUP");
    await waitFor(() => daemon.stderr().split("Reload refused").length === 3, 30_000, "refusal");
    const again = await drop(box.watch, "again.fits");
    await arrives(box.dest, "again.fits", again);
    await assert.rejects(Deno.stat(join(box.root, "elsewhere")), Deno.errors.NotFound);
    // And stop finds it by the refused file's state_dir.
    const stopped = await runCli(["stop", "-c", box.config], { env: box.env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped the daemon/);
    assert.match(stopped.stderr, /^warning: .*writable by group and others.*\(stopping all the/m);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const refusals = (await Deno.readTextFile(box.logFile)).split("\n")
    .filter((line) => line.includes("Reload refused"));
  assert.equal(refusals.length, 2, refusals.join("\n"));
  assert.match(
    refusals[0],
    /ERROR +\[daemon\] Reload refused, the running config is kept: .*config\.yaml:\d+: retry_attempts: expected a whole number/,
  );
  assert.match(
    refusals[1],
    /refusing this config file: it is writable by group and others .*chmod go-w/,
  );
});

/**
 * `init --force` (with the `-c` of `given`) over the config of `box`, then the daemon's own state
 * folder, log and status page added: only the template's examples differ from what runs.
 */
async function templateOver(box: Sandbox, given: string[]): Promise<void> {
  const init = await runCli([...given, "init", "--force"], { env: box.env });
  assert.equal(init.code, 0, init.stderr);
  const template = await Deno.readTextFile(box.config);
  await Deno.writeTextFile(
    box.config,
    `${template}state_dir: ${JSON.stringify(box.stateDir)}\n` +
      `log_file: ${JSON.stringify(box.logFile)}\nstatus_listen: ""\n`,
  );
}

Deno.test("a config file moved away (or a folder in its place) while its daemon runs: status and stop say so and how --set state_dir=DIR finds it; with the default state_dir they find it", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.rename(box.config, `${box.config}.moved`);
    const hint = (what: string) =>
      new RegExp(
        `^error: Cannot read config file .*config\\.yaml: it ${what}, so the state_dir it names ` +
          "is not known, and no daemon started with it runs with the default one \\(.+\\); a " +
          "daemon that still runs with it is found by that state_dir: `image-transfer status " +
          "--set state_dir=DIR` \\(and `stop --set state_dir=DIR`\\), or give -c the config file " +
          "itself$",
        "m",
      );
    // Before: "it does not exist; create it with `image-transfer -c … init`" (exit 2), not a word
    // of the daemon still running with it, nor of how to find it.
    for (const command of ["status", "stop"]) {
      const missing = await runCli(["-c", box.config, command], { env: box.env });
      assert.equal(missing.code, 2, missing.stdout + missing.stderr);
      assert.match(missing.stderr, hint("does not exist"), command);
    }
    await Deno.mkdir(box.config);
    const folder = await runCli(["-c", box.config, "stop"], { env: box.env });
    assert.equal(folder.code, 2, folder.stdout + folder.stderr);
    assert.match(folder.stderr, hint("is a folder"));
    await Deno.remove(box.config);
    // What the hint says finds it, and stops it.
    const found = await runCli(["status", "--set", `state_dir=${box.stateDir}`], { env: box.env });
    assert.match(found.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
    const stopped = await runCli(["stop", "--set", `state_dir=${box.stateDir}`], { env: box.env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped the daemon/);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  // A config without state_dir: the daemon of the default one says it runs with this file.
  await Deno.writeTextFile(
    box.config,
    (await Deno.readTextFile(`${box.config}.moved`)).replace(/^state_dir: .*\n/m, ""),
  );
  const usual = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await usual.waitForOutput("Watching");
    await Deno.remove(box.config);
    const shown = await status(box);
    assert.equal(shown.code, 2, shown.stdout + shown.stderr);
    assert.match(shown.stdout, new RegExp(`^Daemon: running, pid ${usual.process.pid},`, "m"));
    assert.match(
      shown.stderr,
      /^error: Cannot read config file .*config\.yaml: it does not exist \(the daemon started with it runs with the default state_dir .+\); put it back before the daemon is reloaded or restarted$/m,
    );
    const stopped = await runCli(["-c", box.config, "stop"], { env: box.env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, new RegExp(`^Stopped the daemon \\(pid ${usual.process.pid}\\)`));
  } finally {
    assert.equal((await usual.stop()).code, 0, usual.stderr());
  }
});

Deno.test("the template init writes, over the running config: a reload refuses it and restart stops nothing, naming the example values; the running config keeps working", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await templateOver(box, ["-c", box.config]);
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload refused");
    assert.match(
      daemon.stderr(),
      /Reload refused, the running config is kept: Config .*config\.yaml still holds the example values of the template `init` writes.*watch_path is still the template's example ~\/data\/images/,
    );
    const restart = await runCli(["-c", box.config, "restart"], { env: box.env });
    assert.equal(restart.code, 2, restart.stdout + restart.stderr);
    assert.match(restart.stderr, /still holds the example values of the template `init` writes/);
    assert.match(restart.stderr, /:\d+: remote_host is still the template's example/);
    const running = await status(box);
    assert.match(running.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
    const bytes = await drop(box.watch, "kept.fits");
    await arrives(box.dest, "kept.fits", bytes);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("a reload refused for the template names the check as the daemon was started: without -c for the default file, with the file's -c, quoted, otherwise", async () => {
  await using box = await cliSandbox({}, { configName: "my config.yaml" });
  // The default file is that config too.
  const defaults = join(box.env.HOME, ".config", "image-transfer");
  await Deno.mkdir(defaults, { recursive: true });
  await Deno.symlink(box.config, join(defaults, "config.yaml"));
  const cases: Array<[string[], string]> = [
    [[], "`image-transfer config validate`"],
    [["-c", box.config], `\`image-transfer -c '${box.config}' config validate\``],
  ];
  for (const [given, check] of cases) {
    await box.rewrite({});
    const daemon = startCli(["run", ...given], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      await templateOver(box, given);
      daemon.process.kill("SIGHUP");
      await daemon.waitForOutput("Reload refused");
      const refused = daemon.stderr().split("\n").find((line) => line.includes("Reload refused"));
      assert.ok(refused?.includes(`set them, then check it with ${check}`), refused);
    } finally {
      assert.equal((await daemon.stop()).code, 0, daemon.stderr());
    }
  }
});

Deno.test("a reload refused for a new state_dir: status, stop and run with the edited config find the daemon still running with the old one; nothing is sent twice", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching", 30_000);
    const bytes = await drop(box.watch, "a.fits");
    await arrives(box.dest, "a.fits", bytes);
    const { ino } = await Deno.stat(join(box.dest, "20240502", "a.fits"));
    const moved = join(box.root, "state-new");
    await box.rewrite({ state_dir: moved });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(/Reload refused.*state_dir changed/, 30_000);
    // Says how to keep what was sent: the new folder has no ledger.
    assert.match(
      daemon.stderr(),
      /stop the daemon, move .*ledger\.sqlite and sender_id into .*state-new \(without the ledger every file in the watch folders is sent again, without the install's id its unfinished copies are never resumed or removed\), then start it/,
    );
    // Before: "Daemon: not running", and `run` started a second daemon that sent a.fits again.
    const shown = await status(box);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^Daemon: running, pid \d+/);
    assert.ok(shown.stdout.includes(`It runs with state_dir ${box.stateDir}, not ${moved}`));
    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 3, second.stderr);
    assert.match(second.stderr, /already running with its earlier state_dir/);
    assert.equal((await Deno.stat(join(box.dest, "20240502", "a.fits"))).ino, ino, "sent again");
    const stopped = await runCli(["stop", "-c", box.config], { env: box.env });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /Stopped the daemon/);
    assert.equal((await daemon.process.status).code, 0);
    // The refused start left no sign of a run there: no lock, no word of a lost ledger.
    const after = await status(box);
    assert.match(after.stdout, /^Daemon: not running/);
    assert.doesNotMatch(after.stdout + after.stderr, /lost/);
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});

Deno.test("status after a refused reload says so, and names a job the daemon does not run", async () => {
  await using box = await cliSandbox();
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const second = join(box.root, "second");
    await Deno.mkdir(second);
    const hook = join(box.root, "new-hook.sh");
    await Deno.writeTextFile(hook, "#!/bin/sh\nexit 0\n");
    await Deno.chmod(hook, 0o755);
    // A valid config whose new job names a program the running daemon may not start.
    const jobs = (withHook: boolean) => ({
      jobs: [
        { name: "cam" },
        {
          name: "second",
          watch_path: second,
          remote_base_path: join(box.root, "dest2"),
          ...(withHook ? { on_transfer: [hook] } : {}),
        },
      ],
    });
    await box.rewrite(jobs(true));
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload refused");
    const refused = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(refused.code, 0, refused.stderr);
    assert.match(
      refused.stdout,
      /Its last reload \(.*\) was refused, so it runs the config it had before: .*new-hook\.sh/,
    );
    assert.match(
      refused.stdout,
      /Job second: .*; not run by the daemon: the reload that would add it was refused/,
    );
    const json = JSON.parse(
      (await runCli(["status", "--json", "-c", box.config], {
        env: box.env,
      })).stdout,
    );
    assert.deepEqual(json.daemon.jobs, ["default"]);
    assert.match(json.daemon.reloadRefused.reason, /new-hook\.sh/);

    // The next reload that loads clears it, and the job runs.
    await box.rewrite(jobs(false));
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(`Watching ${second} for job second`);
    const taken = await runCli(["status", "-c", box.config], { env: box.env });
    assert.doesNotMatch(taken.stdout, /was refused|not run by the daemon/);
    assert.match(taken.stdout, /Job second: pending 0/);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

/** A 200 MiB FITS-named file of random bytes in `watch`, dated like the sandbox's files. */
async function bigFile(watch: string, name: string): Promise<string> {
  const big = join(watch, name);
  {
    using file = await Deno.open(big, { write: true, create: true });
    const chunk = randomBytes(1024 * 1024);
    for (let i = 0; i < 200; i++) await file.write(chunk);
  }
  await Deno.utime(big, noon, noon);
  return big;
}

Deno.test("SIGHUP that changes the job in the middle of a copy: the copy is aborted and resumed, whole", async () => {
  await using box = await cliSandbox({ verify_transfer: "checksum" });
  const big = await bigFile(box.watch, "big.fits");
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitFor(async () => (await listFiles(box.dest).catch(() => [])).length > 0, 30_000);
    await box.rewrite({ verify_transfer: "checksum", retry_attempts: 7 });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload: job default: retry_attempts 3 -> 7");
    await daemon.waitForOutput("Successfully transferred", 120_000);
    // The new runner took over the copy the old one had started.
    assert.match(
      daemon.stderr(),
      /Taking up 1 interrupted file\(s\) of job default: .* a partial copy kept there is continued/,
    );
    assert.equal(daemon.stderr().split("Successfully transferred").length, 2, daemon.stderr());
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.deepEqual(await listFiles(box.dest), ["20240502/big.fits"]);
  assert.equal(await sha256OfFile(join(box.dest, "20240502/big.fits")), await sha256OfFile(big));
});

Deno.test("SIGHUP that leaves a job's settings as they are (a log rotation's, another job edited): its copy in flight goes on, not aborted", async () => {
  await using box = await cliSandbox({ name: "cam", verify_transfer: "checksum" });
  const watch2 = join(box.root, "watch2");
  const dest2 = join(box.root, "dest2");
  await Deno.mkdir(watch2);
  const cam = { name: "cam", verify_transfer: "checksum", bandwidth_limit: "40MiB/s" };
  await box.rewrite({ jobs: [cam] });
  const big = await bigFile(box.watch, "big.fits");
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitFor(async () => (await listFiles(box.dest).catch(() => [])).length > 0, 30_000);
    // Nothing changed: the job goes on.
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload: job(s) cam go on untouched");
    // Another job added: the first goes on all the same, and the new one starts.
    await box.rewrite({
      jobs: [cam, { name: "second", watch_path: watch2, remote_base_path: dest2 }],
    });
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(`Reload: job second added (${watch2} -> ${dest2} (local))`);
    await daemon.waitForOutput(`Watching ${watch2} for job second`);
    assert.equal(daemon.stderr().split("go on untouched").length, 3, daemon.stderr());
    const other = await drop(watch2, "other.fits");
    await arrives(dest2, "other.fits", other);
    await daemon.waitForOutput(`Successfully transferred ${big}`, 120_000);
    // The copy was never interrupted: not taken up again, not resumed, sent once.
    assert.doesNotMatch(daemon.stderr(), /Taking up|interrupted|Resuming/);
    assert.equal(daemon.stderr().split("Successfully transferred").length, 3, daemon.stderr());
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.deepEqual(await listFiles(box.dest), ["20240502/big.fits"]);
  assert.equal(await sha256OfFile(join(box.dest, "20240502/big.fits")), await sha256OfFile(big));
  assert.match(
    await Deno.readTextFile(box.logFile),
    /Stopped: 2 file\(s\) sent, 0 failed in this run/,
  );
});

Deno.test("SIGHUP that changes nothing gives the files that gave up fresh quick retries, as a restart or Retry does", async () => {
  await using box = await cliSandbox({ retry_attempts: 0, retry_max_delay_seconds: 3600 });
  // A file where the folder `blocked` goes in the night folder: what goes there fails, alone.
  await Deno.mkdir(join(box.dest, "20240502"), { recursive: true });
  await Deno.writeTextFile(join(box.dest, "20240502", "blocked"), "in the way");
  await Deno.mkdir(join(box.watch, "blocked"));
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const bytes = await drop(join(box.watch, "blocked"), "x.fits");
    await daemon.waitForOutput("Failed to transfer");
    // Fixed; its next slow retry is an hour away: the reload tries it now.
    await Deno.remove(join(box.dest, "20240502", "blocked"));
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput("Reload: job(s) default go on untouched");
    await arrives(box.dest, "blocked/x.fits", bytes);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  assert.deepEqual(await listFiles(box.dest), ["20240502/blocked/x.fits"]);
});

Deno.test("run --once (and --dry-run) with a missing watch folder: exit 4, and the reason is in the log file", async () => {
  await using box = await cliSandbox();
  await Deno.remove(box.watch);
  const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run.code, 4, run.stderr);
  const reason = `Cannot watch ${box.watch}: the folder does not exist (job default)`;
  assert.ok(run.stderr.includes(`error: ${reason}`), run.stderr);
  assert.equal(run.stderr.split(reason).length, 2, "stderr has the reason once");
  const log = await Deno.readTextFile(box.logFile);
  assert.match(log, /FATAL +\[exit\] Exiting with code 4: Cannot watch .* does not exist/);
  assert.ok(log.includes(reason), log);
  // A dry run cannot list the folder either: it says so, and so does its exit code.
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 4, dry.stderr);
  assert.match(dry.stdout, /^job default: watch folder .* does not exist$/m);
  assert.match(
    dry.stderr,
    /error: Cannot list what would be sent from .* does not exist; create it/,
  );
  // Fixed, the next run starts as a first run: its ledger is not said to be lost.
  await Deno.mkdir(box.watch);
  const next = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(next.code, 0, next.stderr);
  assert.doesNotMatch(next.stderr, /is lost/);
});

Deno.test("a lock conflict: exit 3, and the reason is in the log file", async () => {
  await using box = await cliSandbox();
  const first = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await first.waitForOutput("Watching");
    const second = await runCli(["run", "-c", box.config], { env: box.env });
    assert.equal(second.code, 3, second.stderr);
    const reason = `another image-transfer daemon is already running (pid ${first.process.pid})`;
    assert.ok(second.stderr.includes(reason), second.stderr);
    const fatal = (await Deno.readTextFile(box.logFile)).split("\n")
      .filter((line) => line.includes("[exit]"));
    assert.equal(fatal.length, 1, fatal.join("\n"));
    assert.match(fatal[0], /FATAL +\[exit\] Exiting with code 3: Cannot start: /);
    assert.ok(fatal[0].includes(reason), fatal[0]);
    // The running daemon's PID file is untouched.
    assert.equal(
      await Deno.readTextFile(join(box.stateDir, "daemon.pid")),
      `${first.process.pid}\n`,
    );
  } finally {
    assert.equal((await first.stop()).code, 0, first.stderr());
  }
});

Deno.test("a state_dir that is a file: exit 2, a message naming state_dir and its line, also in the log file", async () => {
  await using box = await cliSandbox();
  const file = join(box.root, "state-is-a-file");
  await Deno.writeTextFile(file, "x");
  await box.rewrite({ state_dir: file });
  const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run.code, 2, run.stderr);
  const reason = `state_dir: ${file} (or a folder on its path) is a file; give a folder`;
  assert.match(run.stderr, /config\.yaml:\d+: state_dir: /);
  assert.ok(run.stderr.includes(reason), run.stderr);
  assert.doesNotMatch(run.stderr, /os error|^ {4}at /m);
  const fatal = (await Deno.readTextFile(box.logFile)).split("\n")
    .filter((line) => line.includes("[exit]"));
  assert.equal(fatal.length, 1, fatal.join("\n"));
  assert.ok(fatal[0].includes("Exiting with code 2: ") && fatal[0].includes(reason), fatal[0]);
  assert.equal(await Deno.readTextFile(file), "x");
});

Deno.test("a state_dir on a read-only file system: exit 2, said as such by run, doctor and config validate", async () => {
  await using box = await cliSandbox();
  await withTmpfs(join(box.root, "read-only"), "1m", async (stateDir) => {
    await box.rewrite({ state_dir: stateDir });
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(1000));
    for (const args of [["run", "--once"], ["doctor"], ["config", "validate"]]) {
      const out = await runCli([...args, "-c", box.config], { env: box.env });
      assert.equal(out.code, 2, `${args.join(" ")}: ${out.stderr}`);
      assert.match(
        out.stderr,
        /config\.yaml:\d+: state_dir: .*read-only cannot be written \(it is on a read-only file system\); give a folder this user can write/,
      );
      assert.doesNotMatch(out.stderr, /database file|os error|^ {4}at /m);
    }
    // A state_dir still to be made there: said as such when it cannot be.
    await box.rewrite({ state_dir: join(stateDir, "state", "deeper") });
    for (const args of [["run", "--once"], ["doctor"], ["config", "validate"]]) {
      const made = await runCli([...args, "-c", box.config], { env: box.env });
      assert.equal(made.code, 2, `${args.join(" ")}: ${made.stderr}`);
      assert.match(
        made.stderr,
        /state_dir: .*read-only\/state\/deeper cannot be made in .*read-only \(it is on a read-only file system\); give a folder this user can write/,
      );
    }
    const sent = await listFiles(box.dest).catch(() => []);
    assert.deepEqual(sent, [], "nothing was sent without a ledger");
  }, { readOnly: true });
});

Deno.test("a ledger whose state_dir was remounted read-only: status, status --json and resend --dry-run read it, also with a journal a killed daemon left", async () => {
  await using box = await cliSandbox();
  await withTmpfs(join(box.root, "state-ro"), "16m", async (stateDir) => {
    await box.rewrite({ state_dir: stateDir });
    await drop(box.watch, "a.fits");
    await drop(box.watch, "b.fits");
    const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(sent.code, 0, sent.stderr);
    const readAll = async (done: number) => {
      await remountTmpfs(stateDir, true);
      try {
        // Before: `error: unable to open database file` (SQLite cannot make the journal's index).
        const text = await status(box);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, new RegExp(`Job default: .*done ${done}`), text.stdout);
        const json = await status(box, true);
        assert.equal(json.code, 0, json.stderr);
        const counts = JSON.parse(json.stdout).counts as { state: string; count: number }[];
        assert.equal(counts.find((c) => c.state === "done")?.count, done, json.stdout);
        const listed = await runCli(["resend", "--all", "--dry-run", "-c", box.config], {
          env: box.env,
        });
        assert.equal(listed.code, 0, listed.stderr);
        assert.match(listed.stdout, /a\.fits/);
        assert.match(listed.stdout, /b\.fits/);
        // resend itself writes: said why it cannot (not the free space, which is plenty).
        const resend = await runCli(["resend", "--all", "-c", box.config], { env: box.env });
        assert.equal(resend.code, 1, resend.stderr);
        assert.match(
          resend.stderr,
          // Opened (with a journal's index left), its first write is refused by SQLite.
          /Cannot open the ledger .*ledger\.sqlite: .*\(its folder cannot be written: it is on a read-only file system; make .*state-ro writable|Cannot write the ledger .*ledger\.sqlite: attempt to write a readonly database/,
        );
      } finally {
        await remountTmpfs(stateDir, false);
      }
    };
    // Stopped cleanly: the journal was copied into the ledger and removed.
    await readAll(2);
    // Killed: the journal and its index are left, holding the last arrival.
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching", 30_000);
      const bytes = await drop(box.watch, "c.fits");
      await arrives(box.dest, "c.fits", bytes);
      // Its own line (the log holds a's and b's from the first run): said once it is recorded.
      await waitFor(
        async () =>
          (await Deno.readTextFile(box.logFile)).split("\n")
            .some((line) => line.includes("Successfully transferred") && line.includes("c.fits")),
        30_000,
        "c's arrival recorded",
      );
    } finally {
      await daemon.stop("SIGKILL");
    }
    await readAll(3);
    // A journal without its index cannot be read without making one: said, with what to do.
    const ledger = join(stateDir, "ledger.sqlite");
    assert.ok((await Deno.stat(`${ledger}-wal`)).size > 0, "the killed daemon left its journal");
    await Deno.remove(`${ledger}-shm`);
    await remountTmpfs(stateDir, true);
    try {
      const text = await status(box);
      assert.equal(text.code, 1, text.stderr);
      assert.match(
        text.stderr,
        /Cannot read the ledger .*ledger\.sqlite: .*\(its folder cannot be written: it is on a read-only file system, and its journal .*ledger\.sqlite-wal holds writes not yet copied into it, .*make .*state-ro writable/,
      );
      assert.doesNotMatch(text.stderr, /^\s+at /m, "no stack trace");
    } finally {
      await remountTmpfs(stateDir, false);
    }
  });
});

Deno.test("a config error at start reaches the log file the config names, else the default one", async () => {
  await using box = await cliSandbox({ retry_attempts: "three" });
  const run = await runCli(["run", "-c", box.config], { env: box.env });
  assert.equal(run.code, 2, run.stderr);
  assert.match(run.stderr, /^error: .*config\.yaml:\d+: retry_attempts: expected a whole number/);
  const log = await Deno.readTextFile(box.logFile);
  assert.match(
    log,
    /FATAL +\[exit\] Exiting with code 2: .*config\.yaml:\d+: retry_attempts: expected a whole number/,
  );

  // A config others can write does not choose where to write: the default log file gets it.
  await Deno.remove(box.logFile);
  await box.rewrite({});
  await Deno.chmod(box.config, 0o666);
  const refused = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(refused.code, 2, refused.stderr);
  await assert.rejects(Deno.stat(box.logFile), Deno.errors.NotFound);
  const fallback = await Deno.readTextFile(join(box.env.HOME, "logs", "image_transfer.log"));
  assert.match(fallback, /Exiting with code 2: .*refusing this config file/);

  // --dry-run writes nothing, not even this.
  await Deno.remove(join(box.env.HOME, "logs"), { recursive: true });
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 2, dry.stderr);
  await assert.rejects(Deno.stat(join(box.env.HOME, "logs")), Deno.errors.NotFound);
});
