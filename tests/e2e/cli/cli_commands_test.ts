/**
 * The command line as users reach for it: every help lists `-c` and all four
 * methods, `doctor --watch/--to` without a config, `config generate` as
 * another name for `init`, `--log-level`, `stop` and `restart` through the PID
 * file, and a TOML file answered with "YAML only" and the same keys in YAML.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { existsSync, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("help: the main help names all four methods and stop/restart; each command's help lists -c", async () => {
  const main = await runCli(["--help"]);
  assert.equal(main.code, 0, main.stderr);
  for (const word of ["scp", "rsync", "FTP", "local", "stop", "restart", "--log-level"]) {
    assert.ok(main.stdout.includes(word), `${word} in:\n${main.stdout}`);
  }
  for (
    const args of [["doctor"], ["status"], ["config", "validate"], ["install-service"], ["stop"]]
  ) {
    const help = await runCli([...args, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /-c, --config <file>/, args.join(" "));
  }
  const doctor = await runCli(["doctor", "--help"]);
  assert.match(doctor.stdout, /--watch <dir>/);
  assert.match(doctor.stdout, /--to <dest>/);
});

Deno.test("doctor --watch/--to checks a config-free run", async () => {
  await using box = await cliSandbox();
  const out = await runCli(["doctor", "--watch", box.watch, "--to", box.dest], { env: box.env });
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, new RegExp(`job default \\(local -> ${box.dest}\\)`));
  assert.match(out.stdout, /ok +watch folder/);
  assert.match(out.stdout, /ok +free space: .* free at /);
  // A destination folder that does not exist is said, and not made (a share not mounted yet).
  const absent = join(box.dest, "share", "images");
  const missing = await runCli(["doctor", "--watch", box.watch, "--to", absent], { env: box.env });
  assert.equal(missing.code, 0, missing.stderr);
  assert.match(missing.stdout, /WARN +destination folder: .*images does not exist: the first/);
  assert.match(missing.stdout, /ok +destination writable/);
  assert.equal(existsSync(join(box.dest, "share")), false, "doctor makes nothing");
  // min_free_space is checked at a local destination too.
  const full = await runCli(
    ["doctor", "--watch", box.watch, "--to", box.dest, "--set", "min_free_space=99.9%"],
    { env: box.env },
  );
  assert.equal(full.code, 1, full.stderr);
  assert.match(full.stdout, /FAIL +free space: .* less than min_free_space \(/);
  const both = await runCli(["-c", box.config, "doctor", "--watch", box.watch, "--to", box.dest], {
    env: box.env,
  });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /give either --config or --watch\/--to, not both/);
});

Deno.test("config generate writes the commented config init writes", async () => {
  await using box = await cliSandbox();
  const file = join(box.root, "generated", "config.yaml");
  const out = await runCli(["-c", file, "config", "generate"], { env: box.env });
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^wrote /);
  const viaInit = join(box.root, "init", "config.yaml");
  assert.equal((await runCli(["-c", viaInit, "init"], { env: box.env })).code, 0);
  assert.equal(await Deno.readTextFile(file), await Deno.readTextFile(viaInit));
  const again = await runCli(["-c", file, "config", "generate"], { env: box.env });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists/);
  // A .toml name would be read as TOML by every other command: refused, nothing written.
  const toml = join(box.root, "config.toml");
  const refused = await runCli(["-c", toml, "init"], { env: box.env });
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /the config is YAML, .*give a \.yaml name \(-c .*config\.yaml\)/);
  assert.equal(existsSync(toml), false);
});

Deno.test("--log-level warning hides INFO lines; debug shows DEBUG ones", async () => {
  await using box = await cliSandbox();
  await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(1000));
  const quiet = await runCli(["--log-level", "warning", "-c", box.config, "run", "--once"], {
    env: box.env,
  });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, / INFO /);
  assert.equal((await Deno.readDir(box.dest)[Symbol.asyncIterator]().next()).done, false);
  await Deno.writeFile(join(box.watch, "b.fits"), randomBytes(1000));
  const loud = await runCli(["--log-level", "debug", "-c", box.config, "run", "--once"], {
    env: box.env,
  });
  assert.equal(loud.code, 0, loud.stderr);
  assert.match(loud.stderr, / DEBUG /);
  assert.match(loud.stderr, / INFO .*Successfully transferred .*b\.fits/);
  // -v wins over --log-level, as the help says.
  await Deno.writeFile(join(box.watch, "c.fits"), randomBytes(1000));
  const both = await runCli(["-v", "--log-level", "error", "-c", box.config, "run", "--once"], {
    env: box.env,
  });
  assert.equal(both.code, 0, both.stderr);
  assert.match(both.stderr, / DEBUG /);
  const help = await runCli(["--help"]);
  assert.match(help.stdout, /-v, --verbose +debug logging \(over any --log-level\)/);
  const wrong = await runCli(["--log-level", "loud", "status"], { env: box.env });
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /Allowed choices are debug, info, warning, error/);
  // A count that is not a whole number is a usage error too.
  for (const count of ["abc", "-1", "3x"]) {
    const limit = await runCli(["-c", box.config, "status", "-n", count], { env: box.env });
    assert.equal(limit.code, 2, limit.stderr);
    assert.match(limit.stderr, /--limit ".*": give how many transfers and failures to list/);
  }
});

Deno.test("status: a watch_path that is a file is said to be one, not a folder that does not exist", async () => {
  await using box = await cliSandbox();
  const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  // The watch_path edited to a file's path since (the daemon refuses that config).
  const file = join(box.root, "camera.fits");
  await Deno.writeFile(file, randomBytes(100));
  await box.rewrite({ watch_path: file });
  const status = await runCli(["-c", box.config, "status"], { env: box.env });
  assert.equal(status.code, 0, status.stderr);
  // Before: "Watch folder … does not exist (not mounted yet?)", of a path that is there.
  assert.match(
    status.stdout,
    new RegExp(`^ {2}Watch folder ${file} is a file, not a folder: give watch_path a folder$`, "m"),
  );
  assert.doesNotMatch(status.stdout, /does not exist/);
});

Deno.test("status -n: 0 lists no transfers nor failures and prints no heading over them; a count beyond any ledger lists them all; others are refused with what to give", async () => {
  await using box = await cliSandbox();
  for (const name of ["a.fits", "b.fits", "c.fits"]) {
    await Deno.writeFile(join(box.watch, name), randomBytes(1000));
  }
  const run = await runCli(["-c", box.config, "run", "--once"], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  const listed = (stdout: string) =>
    stdout.split("\n").filter((line) => / \[default\] /.test(line));
  const none = await runCli(["-c", box.config, "status", "-n", "0"], { env: box.env });
  assert.equal(none.code, 0, none.stderr);
  assert.doesNotMatch(none.stdout, /Recent transfers/);
  assert.deepEqual(listed(none.stdout), []);
  // Only whether any failed: a sentence, not a heading over an empty list.
  assert.match(none.stdout, /\nFiles whose last attempt failed: none\n/);
  assert.doesNotMatch(none.stdout, /:\n*$/);
  assert.match(none.stdout, /^Job default: .*done 3/m);
  const one = await runCli(["-c", box.config, "status", "-n", "1"], { env: box.env });
  assert.match(one.stdout, /\nRecent transfers \(1\):\n/);
  assert.equal(listed(one.stdout).length, 1, one.stdout);
  for (const many of ["99999999999999999999", "9007199254740993"]) {
    const all = await runCli(["-c", box.config, "status", "-n", many], { env: box.env });
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /\nRecent transfers \(3\):\n/);
    assert.equal(listed(all.stdout).length, 3, all.stdout);
    const json = await runCli(["-c", box.config, "status", "--json", "-n", many], {
      env: box.env,
    });
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).recent.length, 3);
  }
  for (const count of ["-1", "-0", "1.5", "1e3", "0x10", "", "ten"]) {
    const wrong = await runCli(["-c", box.config, "status", "-n", count], { env: box.env });
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(
      wrong.stderr,
      /^error: -n\/--limit ".*": give how many transfers and failures to list, a whole number \(0 or more\), e\.g\. -n 20\n/,
    );
  }
});

Deno.test("stop and status with -c naming a file that does not exist (a typo) refuse, and never stop the daemon of the default state_dir", async () => {
  await using box = await cliSandbox();
  // A daemon whose config names no state_dir: it uses the default one, under HOME.
  await writeConfig(box.config, {
    watch_path: box.watch,
    remote_base_path: box.dest,
    transfer_method: "local",
    log_file: "",
  });
  const daemon = startCli(["-c", box.config, "run"], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const typo = join(box.root, "cofnig.yaml");
    const stop = await runCli(["-c", typo, "stop"], { env: box.env });
    // Before the fix: "Stopped the daemon (pid …)", exit 0: the other daemon was stopped.
    assert.equal(stop.code, 2, stop.stdout + stop.stderr);
    assert.match(stop.stderr, /Cannot read config file .*cofnig\.yaml: it does not exist/);
    assert.doesNotMatch(stop.stdout, /Stopped the daemon/);
    const status = await runCli(["-c", typo, "status"], { env: box.env });
    assert.equal(status.code, 2);
    assert.doesNotMatch(status.stdout, /Daemon:/);
    // The daemon was left alone, and the right -c stops it.
    const right = await runCli(["-c", box.config, "stop"], { env: box.env });
    assert.equal(right.code, 0, right.stderr);
    assert.match(right.stdout, new RegExp(`Stopped the daemon \\(pid ${daemon.process.pid}\\)`));
  } finally {
    await daemon.stop();
  }
});

Deno.test("stop ends the running daemon through its PID file; restart stops it and runs it again", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const first = startCli(["-c", box.config, "run"], { env: box.env });
  try {
    await first.waitForOutput("Watching");
    const pid = Number((await Deno.readTextFile(join(box.stateDir, "daemon.pid"))).trim());
    assert.equal(pid, first.process.pid);
    const stop = await runCli(["-c", box.config, "stop"], { env: box.env });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout.trim(), `Stopped the daemon (pid ${pid})`);
    const status = await first.process.status;
    assert.equal(status.code, 0);
    await first.stop();
    assert.match(first.stderr(), /Stopped: 0 file\(s\) sent/);
    await assert.rejects(Deno.stat(join(box.stateDir, "daemon.pid")), Deno.errors.NotFound);
    const none = await runCli(["-c", box.config, "stop"], { env: box.env });
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /No daemon is running with state_dir /);
  } finally {
    await first.stop();
  }

  const second = startCli(["-c", box.config, "run"], { env: box.env });
  let third: ReturnType<typeof startCli> | undefined;
  try {
    await second.waitForOutput("Watching");
    third = startCli(["-c", box.config, "restart"], { env: box.env });
    await third.waitForOutput(`Stopped the daemon (pid ${second.process.pid})`);
    assert.equal((await second.process.status).code, 0);
    await third.waitForOutput("Watching");
    // The restarted daemon sends.
    const data = randomBytes(2000);
    await Deno.writeFile(join(box.watch, "after.fits"), data);
    await waitFor(
      () => third!.stderr().includes("Successfully transferred"),
      20_000,
      "a file sent by the restarted daemon",
    );
  } finally {
    await second.stop();
    if (third) assert.equal((await third.stop()).code, 0, third.stderr());
  }
});

Deno.test("restart with a config run would refuse (a hook program that is not there) leaves the daemon running", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const daemon = startCli(["-c", box.config, "run"], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const missing = join(box.root, "no such dir", "-hook");
    await box.rewrite({ on_transfer: [missing, "{path}"] });
    const restart = await runCli(["-c", box.config, "restart"], { env: box.env });
    assert.equal(restart.code, 2, restart.stderr);
    assert.match(restart.stderr, /^error: .*: on_transfer of job default: refusing to run /);
    assert.doesNotMatch(restart.stdout, /Stopped the daemon/);
    // Still the same daemon, still sending.
    assert.equal(
      Number((await Deno.readTextFile(join(box.stateDir, "daemon.pid"))).trim()),
      daemon.process.pid,
    );
    await Deno.writeFile(join(box.watch, "still.fits"), randomBytes(2000));
    await daemon.waitForOutput(/Successfully transferred .*still\.fits/);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("restart of a daemon its service started goes through the service manager", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  // systemd is not process 1 here: a systemctl on PATH stands in for it and notes its arguments.
  const bin = join(box.root, "bin");
  await Deno.mkdir(bin);
  const asked = join(box.root, "systemctl.args");
  await Deno.writeTextFile(
    join(bin, "systemctl"),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${asked}'\n`,
    { mode: 0o755 },
  );
  const env = { ...box.env, PATH: `${bin}:${Deno.env.get("PATH")}` };
  // What the installed unit's Environment= line gives the daemon.
  const daemon = startCli(["-c", box.config, "run"], {
    env: { ...env, IMAGE_TRANSFER_SERVICE: "systemd-system" },
  });
  try {
    await daemon.waitForOutput("Watching");
    const status = await runCli(["-c", box.config, "status", "--json"], { env });
    assert.equal(JSON.parse(status.stdout).daemon.service, "systemd-system", status.stdout);
    const restart = await runCli(["-c", box.config, "restart"], { env });
    assert.equal(restart.code, 0, restart.stderr);
    assert.equal(
      restart.stdout.trim(),
      "Restarted the service: systemctl restart image-transfer.service",
    );
    assert.equal(await Deno.readTextFile(asked), "restart image-transfer.service\n");
    // Not stopped and run in this terminal: the service's daemon is the one running.
    assert.equal(
      Number((await Deno.readTextFile(join(box.stateDir, "daemon.pid"))).trim()),
      daemon.process.pid,
    );
    // A service manager that refuses says so, with its words.
    await Deno.writeTextFile(
      join(bin, "systemctl"),
      "#!/bin/sh\necho 'Access denied' >&2\nexit 1\n",
      { mode: 0o755 },
    );
    const refused = await runCli(["-c", box.config, "restart"], { env });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /runs as a service; `systemctl restart image-transfer\.service` failed: Access denied \(run it with sudo\?\)/,
    );
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("a TOML config gets 'YAML only' with the same keys in YAML, and the file to save them in with the command that checks it", async () => {
  await using box = await cliSandbox();
  const file = join(box.root, "my config.toml");
  const toml =
    'watch_path = "/data/images"\nremote_host = "freya"\nremote_base_path = "/data"\n\n' +
    '[[jobs]]\nname = "cam1"\nwatch_path = "/data/cam1"\n';
  await Deno.writeTextFile(file, toml, { mode: 0o600 });
  const out = await runCli(["config", "validate", "-c", file], { env: box.env });
  assert.equal(out.code, 2);
  assert.match(out.stderr, /this looks like TOML; the config file is YAML only/);
  assert.match(out.stderr, /\n {4}watch_path: "\/data\/images"\n {4}remote_host: "freya"\n/);
  assert.match(out.stderr, /\n {4}jobs:\n {6}- name: "cam1"\n {8}watch_path: "\/data\/cam1"\n/);
  assert.doesNotMatch(out.stderr, /YAML syntax error|\n\s+at /);
  // Beside it under a .yaml name (a .toml name is read as TOML), checked with that -c, quoted.
  const yamlFile = join(box.root, "my config.yaml");
  assert.ok(
    out.stderr.endsWith(
      `\nSave that as ${yamlFile} and check it with \`image-transfer -c '${yamlFile}' config ` +
        "validate`\n",
    ),
    out.stderr,
  );
  // The default file, given without -c: written over, and checked without one.
  const defaults = join(box.env.HOME, ".config", "image-transfer", "config.yaml");
  await Deno.mkdir(dirname(defaults), { recursive: true });
  await Deno.writeTextFile(defaults, toml, { mode: 0o600 });
  const plain = await runCli(["config", "validate"], { env: box.env });
  assert.equal(plain.code, 2);
  assert.ok(
    plain.stderr.endsWith(
      `\nWrite that over ${defaults} and check it with \`image-transfer config validate\`\n`,
    ),
    plain.stderr,
  );
  // The same keys in a YAML file: only the unknown host's folders stand in the way.
  const yaml = join(box.root, "same.yaml");
  await Deno.writeTextFile(
    yaml,
    `watch_path: "${box.watch}"\nremote_host: "freya"\nremote_base_path: "/data"\n`,
    { mode: 0o600 },
  );
  const ok = await runCli(["config", "validate", "-c", yaml], { env: box.env });
  assert.equal(ok.code, 0, ok.stderr);
});
