/**
 * Usage errors through the real CLI: unknown commands and options name the
 * word and suggest the right one, the old tool's service flags point to the
 * commands that replaced them, and the top-level help lists the run options.
 * Every usage error exits 2 without running anything.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliResult, runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

function assertUsage(result: CliResult, message: string): void {
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stderr.split("\n")[0], `error: ${message}`);
  assert.doesNotMatch(result.stderr, /too many arguments|^\s+at /m);
  assert.equal(result.stdout, "");
}

Deno.test("an unknown command is named, with a suggestion, and exits 2", async () => {
  await using box = await cliSandbox();
  const reload = await runCli(["-c", box.config, "reload"], { env: box.env });
  assertUsage(
    reload,
    "unknown command 'reload'; did you mean 'status'? (a running daemon reloads its config on " +
      "SIGHUP (kill -HUP <pid>); `status` shows its pid)",
  );
  assertUsage(
    await runCli(["statsu", "-c", box.config], { env: box.env }),
    "unknown command 'statsu'; did you mean 'status'?",
  );
  assertUsage(
    await runCli(["--once", "-c", box.config, "instal-service"], { env: box.env }),
    "unknown command 'instal-service'; did you mean 'install-service'?",
  );
  assertUsage(
    await runCli(["help", "reload"], { env: box.env }),
    reload.stderr.split("\n")[0].slice("error: ".length),
  );
  assertUsage(
    await runCli(["-c", box.config, "config", "valdate"], { env: box.env }),
    "unknown command 'config valdate'; did you mean 'config validate'?",
  );
  assertUsage(
    await runCli(["xyzzy"], { env: box.env }),
    "unknown command 'xyzzy'; the commands are: run, init, config, status, resend, doctor, " +
      "install-service, uninstall-service, stop, restart",
  );
  // Nothing ran: no ledger, no log.
  await assert.rejects(Deno.stat(box.stateDir), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(box.logFile), Deno.errors.NotFound);
});

Deno.test("an unknown option is named with a suggestion on the same line, exit 2", async () => {
  await using box = await cliSandbox();
  assertUsage(
    await runCli(["-c", box.config, "--onc"], { env: box.env }),
    "unknown option '--onc'; did you mean '--once'?",
  );
  assertUsage(
    await runCli(["-c", box.config, "status", "--jsn"], { env: box.env }),
    "unknown option '--jsn'; did you mean '--json'?",
  );
});

Deno.test("the old tool's --install, --uninstall and --status point to install-service, uninstall-service and status", async () => {
  await using box = await cliSandbox();
  for (const args of [["--install"], ["-c", box.config, "--install"]]) {
    const result = await runCli(args, { env: box.env });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^error: unknown option '--install': the service is installed with `image-transfer install-service`/,
    );
  }
  // The old service program's --status (image-transfer-service --status) is the status command.
  assertUsage(
    await runCli(["--status"], { env: box.env }),
    "unknown option '--status': the daemon's state is shown by `image-transfer status`",
  );
  const uninstall = await runCli(["--uninstall"], { env: box.env });
  assertUsage(
    uninstall,
    "unknown option '--uninstall': the service is removed with `image-transfer uninstall-service`",
  );
  await assert.rejects(Deno.stat(join(box.root, "home", ".config")), Deno.errors.NotFound);
});

Deno.test("the sync tool's --foreground, --service-name, --description and --output say what to do instead", async () => {
  await using box = await cliSandbox();
  const cases: [string[], string][] = [
    [["run", "--foreground"], "unknown option '--foreground': `run` always runs in the foreground"],
    [
      ["install-service", "--service-name", "my-sync", "--print"],
      "unknown option '--service-name': the service's name is fixed: image-transfer (systemd)",
    ],
    [["install-service", "--description", "x", "--print"], "unknown option '--description'"],
    [
      ["config", "generate", "--output", "sync.yaml"],
      "unknown option '--output': `init` (or `config generate`) writes the file that -c names: " +
      "`image-transfer config generate -c FILE.yaml`",
    ],
    // config show prints the config: not the advice for the commands that write one.
    [
      ["config", "show", "--output", "sync.yaml"],
      "unknown option '--output': `config show` prints the config: " +
      "`image-transfer config show > FILE.yaml`",
    ],
    // Another command's --output: commander's own word, no advice for another command.
    [["status", "--output", "sync.yaml"], "unknown option '--output'\n"],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(["-c", box.config, ...args], { env: box.env });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.stderr.startsWith(`error: ${message}`), result.stderr);
  }
  await assert.rejects(Deno.stat(join(box.root, "sync.yaml")), Deno.errors.NotFound);
});

Deno.test("the FTP monitor's command line (WATCH HOST PORT REMOTE_DIR) is answered with run --watch ... --to ftp://...", async () => {
  await using box = await cliSandbox();
  const watch = join(box.root, "watch dir;q");
  const ftp = await runCli([watch, "ftp.example.org", "2121", "/remote/dir"], { env: box.env });
  assert.equal(ftp.code, 2, ftp.stderr);
  assert.ok(
    ftp.stderr.startsWith(
      `error: unknown command '${watch}': a folder to watch is given with --watch, and where its files go ` +
        `with --to: \`image-transfer run --watch '${watch}' --to ftp://ftp.example.org:2121/remote/dir\``,
    ),
    ftp.stderr,
  );
  const two = await runCli(["-c", box.config, "./data", "obs@freya:/data"], { env: box.env });
  assert.equal(two.code, 2, two.stderr);
  assert.ok(
    two.stderr.startsWith("error: unknown command './data': a folder to watch"),
    two.stderr,
  );
  assert.match(two.stderr, /`image-transfer run --watch \.\/data --to obs@freya:\/data`/);
});

Deno.test("the top-level help lists the run options --once and --dry-run", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  const section = help.stdout.slice(help.stdout.indexOf("Options of run, the default command:"));
  assert.ok(section.length > 0, help.stdout);
  assert.match(section, /^ {2}--once +scan, transfer what is complete, then exit/m);
  assert.match(section, /^ {2}--dry-run +print what would be transferred where/m);
  // The commands' own help does not repeat it.
  const status = await runCli(["status", "--help"]);
  assert.doesNotMatch(status.stdout, /default command:/);
});

Deno.test("every command's help shows its defaults as they are typed, not as quoted strings", async () => {
  const commands = ["run", "init", "config", "status", "resend", "doctor", "install-service"];
  for (const command of [...commands, "uninstall-service", "stop", "restart"]) {
    const help = await runCli([command, "--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.doesNotMatch(help.stdout.replace(/\s+/g, " "), /\(default: "/, `${command} --help`);
  }
  const status = await runCli(["status", "--help"]);
  assert.match(status.stdout.replace(/\s+/g, " "), /-n, --limit <count> .*\(default: 10\)/);
});

Deno.test("resend --night takes a date of the calendar only, exit 2 otherwise", async () => {
  await using box = await cliSandbox();
  for (const night of ["20261399", "20240230", "2024031", "tonight"]) {
    assertUsage(
      await runCli(["-c", box.config, "resend", "--night", night], { env: box.env }),
      `Cannot resend: --night ${night} is not a night folder (YYYYMMDD)`,
    );
  }
  // A day written as --date takes it: the night folder of that day is said.
  assertUsage(
    await runCli(["-c", box.config, "resend", "--night", "2024-03-15"], { env: box.env }),
    "Cannot resend: --night 2024-03-15 is not a night folder (YYYYMMDD); the night folder of " +
      "that day: --night 20240315",
  );
});

Deno.test("resend --date takes a date of the calendar only (no month 13 or 0), exit 2 otherwise", async () => {
  await using box = await cliSandbox();
  for (const date of ["2026-13-01", "2026-00-15", "2024-02-30", "2024-3-1", "today"]) {
    assertUsage(
      await runCli(["-c", box.config, "resend", "--date", date, "--dry-run"], { env: box.env }),
      `Cannot resend: --date ${date} is not a date (YYYY-MM-DD)`,
    );
  }
  // A night folder's name: the day it names is said.
  assertUsage(
    await runCli(["-c", box.config, "resend", "--date", "20240315"], { env: box.env }),
    "Cannot resend: --date 20240315 is not a date (YYYY-MM-DD); that day: --date 2024-03-15 " +
      "(or --night 20240315: the files of that night folder)",
  );
  // A leap day is a date: taken (nothing sent yet, so nothing chosen: exit 1, not a usage error).
  const ok = await runCli(["-c", box.config, "resend", "--date", "2024-02-29", "--dry-run"], {
    env: box.env,
  });
  assert.equal(ok.code, 1, ok.stderr);
  assert.match(ok.stderr, /^error: No ledger yet in /, ok.stderr);
});

Deno.test("resend --name refuses a pattern the config would refuse, exit 2", async () => {
  await using box = await cliSandbox();
  const cases: Array<[string, string]> = [
    ["[abc", 'Cannot resend: --name: pattern "[abc" opens "[" and never closes it'],
    ["", "Cannot resend: --name: give a pattern, e.g. 'flat*'"],
  ];
  for (const [name, message] of cases) {
    const result = await runCli(["-c", box.config, "resend", "--name", name, "--dry-run"], {
      env: box.env,
    });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(result.stderr.startsWith(`error: ${message}`), result.stderr);
    assert.doesNotMatch(result.stderr, /^\s+at /m);
    assert.equal(result.stdout, "");
  }
});

Deno.test("resend --name with an absolute path outside every watch folder says so, naming them, exit 2", async () => {
  await using box = await cliSandbox();
  for (const name of ["/data/cam/light_0001.fits", "/data/*.fits", `${box.watch}-old/a.fits`]) {
    const result = await runCli(["-c", box.config, "resend", "--name", name, "--dry-run"], {
      env: box.env,
    });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(
      result.stderr.startsWith(
        `error: Cannot resend: --name ${name} is not in any watch folder (${box.watch} (job default));`,
      ),
      result.stderr,
    );
    assert.equal(result.stdout, "");
  }
});

Deno.test('an empty -c (a `-c "$CONFIG"` with the variable unset) is refused, never taken for the default config', async () => {
  await using box = await cliSandbox();
  const defaultConfig = join(box.root, "home", ".config", "image-transfer", "config.yaml");
  const empty = "-c/--config is empty: give it the config file, or leave -c out for the default " +
    "(~/.config/image-transfer/config.yaml)";
  for (
    const args of [
      ["-c", "", "init"],
      ["init", "--config="],
      ["-c", " ", "config", "validate"],
      ["status", "-c", ""],
      ["-c", "", "run", "--once"],
    ]
  ) {
    assertUsage(await runCli(args, { env: box.env, cwd: box.root }), empty);
  }
  // Nothing was written where the default config lives, and nothing ran.
  await assert.rejects(Deno.stat(defaultConfig), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(box.stateDir), Deno.errors.NotFound);
});
