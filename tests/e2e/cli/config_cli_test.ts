import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import {
  cliArgv,
  type CliResult,
  REPO_ROOT,
  runCli,
  runProgram,
  startCli,
} from "../../helpers/cli.ts";
import { randomBytes, within } from "../../helpers/files.ts";
import {
  ASTROPY_FITS_DATA,
  fitsFile,
  headerBytes,
  imageCards,
  int16Data,
} from "../../helpers/fits.ts";
import { renderDefaultConfig } from "../../../src/cli/config.ts";
import { renderConfigReference, renderConfigSummary } from "../../../src/config/reference.ts";
import { END_MARKER, readRegion, START_MARKER } from "../../../scripts/gen_config_reference.ts";
import { withTempDir } from "../../helpers/files.ts";

const FIXTURES = fileURLToPath(new URL("../../fixtures/configs/", import.meta.url));

/** Run `fn` with a temp folder used as HOME, removed afterwards. */

/** Run the CLI with `home` as HOME (and no XDG_STATE_HOME), from inside `home`. */
function cli(home: string, args: string[]): Promise<CliResult> {
  return runCli(args, { env: { HOME: home, USERPROFILE: home, XDG_STATE_HOME: "" }, cwd: home });
}

/** Assert a usage/config failure: exit 2, `error: ` first, no stack trace. */
function assertConfigFailure(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 2, `exit code; stderr:\n${result.stderr}`);
  assert.match(result.stderr, /^error: /);
  assert.match(result.stderr, pattern);
  assert.doesNotMatch(result.stderr, /^\s+at /m, "stack trace in stderr");
  assert.equal(result.stdout, "");
}

const VALID = [
  ["windows_to_linux.yaml", 1],
  ["basic_windows_to_linux.yaml", 1],
  ["linux_to_linux_rsync.yaml", 1],
  ["local_transfer.yaml", 1],
  ["multi_job.yaml", 3],
  ["shared_settings.yaml", 2],
] as const;

for (const [name, jobs] of VALID) {
  Deno.test(`config validate accepts ${name}`, async () => {
    await withTempDir(async (home) => {
      const file = join(FIXTURES, name);
      const result = await cli(home, ["-c", file, "config", "validate"]);
      assert.equal(result.code, 0, result.stderr);
      // The examples' watch folders are on other machines: each is said to be missing (or, a
      // Windows one, to be refused by `run` here), no more; and a local copy's login, unused.
      for (const line of result.stderr.trimEnd().split("\n").filter(Boolean)) {
        if (name === "local_transfer.yaml" && / is ignored: /.test(line)) {
          assert.match(line, /:[23]: remote_(host|user) of job default is ignored: .* by local;/);
          continue;
        }
        assert.match(
          line,
          Deno.build.os !== "windows" && name.includes("windows")
            ? /^warning: .*:\d: watch_path of job default: "C:\/Users\/Observer\/data\/images" is a Windows path .*; `run` refuses it on this machine$/
            : /^warning: .*:\d+: watch folder of job \S+ .* is not a folder that exists/,
        );
      }
      const first = result.stdout.split("\n")[0];
      assert.equal(first, `ok: ${file} (${jobs} job${jobs === 1 ? "" : "s"})`);
    });
  });
}

Deno.test("config validate warns of a watch folder that does not exist, naming its line; not once it does", async () => {
  await withTempDir(async (home) => {
    const file = join(home, "config.yaml");
    const watch = join(home, "camera $(id) 'in'");
    await Deno.writeTextFile(
      file,
      [
        "transfer_method: local",
        `remote_base_path: ${JSON.stringify(join(home, "out"))}`,
        `watch_path: ${JSON.stringify(watch)}`,
        "",
      ].join("\n"),
    );
    const missing = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(missing.code, 0, missing.stderr);
    assert.match(missing.stdout, /^ok: /);
    assert.equal(
      missing.stderr,
      `warning: ${file}:3: watch folder of job default ${watch} is not a folder that exists ` +
        "(yet): `run` waits until it appears (`run --once` exits with 4); create it, mount its " +
        "disk, or fix the path\n",
    );
    await Deno.mkdir(watch);
    const present = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(present.code, 0, present.stderr);
    assert.equal(present.stderr, "");
  });
});

Deno.test("config validate warns of schedules that pause and never resume, naming the line", async () => {
  await withTempDir(async (home) => {
    await Deno.mkdir(join(home, "in"));
    const file = join(home, "config.yaml");
    await Deno.writeTextFile(
      file,
      [
        `watch_path: ${JSON.stringify(join(home, "in"))}`,
        `remote_base_path: ${JSON.stringify(join(home, "out"))}`,
        "transfer_method: local",
        "schedules:",
        '  - { cron: "0 6 * * *", action: pause }',
        "",
      ].join("\n"),
    );
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ok: /);
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:4: schedules of job default pause transfers but none resumes them.*action: resume/,
    );
  });
});

Deno.test("a pause and a resume at a same cron time are refused by config validate and run (exit 2), naming both keys and the line; apart they pass", async () => {
  await withTempDir(async (home) => {
    await Deno.mkdir(join(home, "in"));
    const file = join(home, "config.yaml");
    const write = (resume: string) =>
      Deno.writeTextFile(
        file,
        [
          `watch_path: ${JSON.stringify(join(home, "in"))}`,
          `remote_base_path: ${JSON.stringify(join(home, "out"))}`,
          "transfer_method: local",
          "night_timezone: America/Santiago",
          "schedules:",
          '  - { cron: "0 0 8 1 * *", action: pause }',
          `  - { ${resume}, action: resume }`,
          "",
        ].join("\n"),
      );
    // The same time written otherwise: eight o'clock on a Monday that is a month's first.
    await write('cron: "0 8 * * 1"');
    for (const args of [["config", "validate"], ["run", "--once"]]) {
      assertConfigFailure(
        await cli(home, ["-c", file, ...args]),
        /config\.yaml:7: schedules\[1\]\.cron: this resume comes at the same time as the pause of schedules\[0\]\.cron \("0 8 \* \* 1" and "0 0 8 1 \* \*"\), so whether transfers stop then is not defined; give the resume or the pause another time$/m,
      );
    }
    // Eight o'clock in another zone is another time.
    await write('cron: "0 8 * * 1", timezone: UTC');
    const apart = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(apart.code, 0, apart.stderr);
  });
});

Deno.test("a pause at 02:00 and its resume at 03:00 in a zone whose clocks skip that hour pass config validate; the same time every day is still refused", async () => {
  await withTempDir(async (home) => {
    await Deno.mkdir(join(home, "in"));
    const file = join(home, "config.yaml");
    const write = (pause: string, resume: string) =>
      Deno.writeTextFile(
        file,
        [
          `watch_path: ${JSON.stringify(join(home, "in"))}`,
          `remote_base_path: ${JSON.stringify(join(home, "out"))}`,
          "transfer_method: local",
          "night_timezone: Europe/Berlin",
          "schedules:",
          `  - { cron: ${JSON.stringify(pause)}, action: pause }`,
          `  - { cron: ${JSON.stringify(resume)}, action: resume }`,
          "",
        ].join("\n"),
      );
    // Before the fix: refused, as the spring day's 02:00 comes at 03:00.
    for (const [pause, resume] of [["0 2 * * *", "0 3 * * *"], ["0 3 * * *", "0 2 * * *"]]) {
      await write(pause, resume);
      const result = await cli(home, ["-c", file, "config", "validate"]);
      assert.equal(result.code, 0, result.stderr);
    }
    await write("0 3 * * *", "0 0 3 * * *");
    assertConfigFailure(
      await cli(home, ["-c", file, "config", "validate"]),
      /schedules\[1\]\.cron: this resume comes at the same time as the pause of schedules\[0\]\.cron/,
    );
  });
});

/**
 * A writer of `home/config.yaml` for one job from `home/in` (made) to `remote_base_path` on
 * archive.example.org, with `lines` after `transfer_method` and an FTP password file for ftp;
 * returns the config file and the writer, which takes the method.
 */
async function methodConfig(
  home: string,
  remoteBasePath: string,
  lines: string[] = [],
): Promise<{ file: string; write: (method: string) => Promise<void> }> {
  await Deno.mkdir(join(home, "in"));
  const password = join(home, "ftp-password");
  await Deno.writeTextFile(password, "secret\n", { mode: 0o600 });
  const file = join(home, "config.yaml");
  const write = (method: string) =>
    Deno.writeTextFile(
      file,
      [
        `watch_path: ${JSON.stringify(join(home, "in"))}`,
        "remote_host: archive.example.org",
        `remote_base_path: ${remoteBasePath}`,
        `transfer_method: ${method}`,
        ...lines,
        ...(method === "ftp" ? [`ftp_password_file: ${JSON.stringify(password)}`] : []),
        "",
      ].join("\n"),
    );
  return { file, write };
}

Deno.test("config validate warns that an FTP remote_base_path starting with ~ is a folder named ~ there, naming the line; not for scp", async () => {
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "~/incoming");
    await write("ftp");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:3: remote_base_path of job default: ~\/incoming goes to an FTP server, which does not expand ~ \(vsftpd makes a folder named ~\): write incoming \(in the login's folder\) or the full path$/m,
    );
    await write("scp");
    const scp = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(scp.code, 0, scp.stderr);
    assert.doesNotMatch(scp.stderr, /expand ~/);
  });
});

Deno.test("a remote_base_path that starts with a port, or is one, is refused by config validate, doctor and run (exit 2), naming ssh_port or ftp_port and the folder meant; ./PORT/... is that folder", async () => {
  const cases: Array<[string, string, string]> = [
    ["scp", "2301:/data/x", "ssh_port: 2301, remote_base_path: /data/x"],
    ["rsync", "2301/data/x", "ssh_port: 2301, remote_base_path: /data/x"],
    ["scp", "2301:data/x", "ssh_port: 2301, remote_base_path: data/x"],
    ["ftp", "2121:/in", "ftp_port: 2121, remote_base_path: /in"],
    // A port alone: before, taken as the folder "2301" in the login's home.
    ["scp", '"2301"', "ssh_port: 2301, remote_base_path: <the folder on the server>"],
  ];
  for (const [index, [method, base, meant]] of cases.entries()) {
    await withTempDir(async (home) => {
      const { file, write } = await methodConfig(home, base);
      await write(method);
      // Before: "ok", the job shown as "-> archive.example.org:2301:/data/x (scp)".
      const validate = ["config", "validate"];
      const commands = index === 0 ? [validate, ["doctor"], ["run", "--once"]] : [validate];
      for (const command of commands) {
        const result = await cli(home, ["-c", file, ...command]);
        assertConfigFailure(
          result,
          new RegExp(
            RegExp.escape(
              "config.yaml:3: remote_base_path: expected the folder only, without the port; " +
                `write ${meant} (for a folder of that name in the login's home, ` +
                `./${base.replaceAll('"', "")})`,
            ) + "$",
            "m",
          ),
        );
      }
    });
  }
  // Written as a folder in the login's home, as the message says: taken.
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "./2301/data/x");
    await write("scp");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /-> archive\.example\.org:\.\/2301\/data\/x \(scp\)$/m);
  });
});

Deno.test("config validate warns that night_timezone or a schedule's timezone Etc/GMT+3 is UTC-03:00, with its line and the name for UTC+03:00", async () => {
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "/data/incoming", [
      "night_timezone: Etc/GMT+3",
      "schedules:",
      '  - cron: "0 8 * * *"',
      "    timezone: etc/GMT-11",
      "    action: rescan",
      '  - cron: "0 9 * * *"',
      "    timezone: Etc/GMT+0",
      "    action: rescan",
    ]);
    await write("scp");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    // Before: nothing, and the night folders turned at noon six hours from where they seemed to.
    assert.equal(
      result.stderr,
      `warning: ${file}:5: night_timezone of job default: Etc/GMT+3 is UTC-03:00, not ` +
        "UTC+03:00: the Etc zones count hours west of UTC (POSIX's sign); for UTC+03:00 write " +
        'Etc/GMT-3, or a city\'s zone such as "America/Santiago"\n' +
        `warning: ${file}:8: schedules[0].timezone of job default: etc/GMT-11 is UTC+11:00, not ` +
        "UTC-11:00: the Etc zones count hours west of UTC (POSIX's sign); for UTC-11:00 write " +
        'Etc/GMT+11, or a city\'s zone such as "America/Santiago"\n',
    );
  });
});

Deno.test("config validate warns that exclude_patterns leaving out every name file_patterns takes sends nothing, with its line; a narrower one says nothing", async () => {
  await withTempDir(async (home) => {
    const lines = (exclude: string) => ['file_patterns: ["*.fits", "raw/*.FIT"]', exclude];
    const validate = async (exclude: string) => {
      const { file, write } = await methodConfig(home, "/data/incoming", lines(exclude));
      await write("scp");
      const result = await cli(home, ["-c", file, "config", "validate"]);
      assert.equal(result.code, 0, result.stderr);
      await Deno.remove(join(home, "in"), { recursive: true });
      return { file, stderr: result.stderr };
    };
    // Before: accepted without a word, and the job sent nothing.
    const all = await validate('exclude_patterns: ["*"]');
    assert.equal(
      all.stderr,
      `warning: ${all.file}:6: exclude_patterns of job default: "*" leaves out every name ` +
        "file_patterns takes (*.fits, raw/*.FIT), so this job sends nothing; narrow the " +
        'exclusion (e.g. "*.tmp") or remove it\n',
    );
    const two = await validate('exclude_patterns: ["*.fits", "*.fit", "calib/"]');
    assert.match(
      two.stderr,
      /:6: exclude_patterns of job default: "\*\.fits", "\*\.fit" leave out/,
    );
    // One file pattern still takes names: nothing to say.
    assert.equal((await validate('exclude_patterns: ["*.fits", "?.fit"]')).stderr, "");
  });
});

Deno.test("yes, no, on and off where true or false is expected are refused with the one to write, as YAML 1.2 reads them as text (config validate and a --set)", async () => {
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "/data/incoming", [
      "verify_transfer: yes",
      "compression: Off",
      "remote_sync: no",
      "case_sensitive_patterns: maybe",
    ]);
    await write("scp");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    // Before: each "expected true or false ..., got "yes"", and no more.
    assertConfigFailure(
      result,
      new RegExp(
        [
          'config.yaml:5: verify_transfer: expected true or false, or one of "none", "size", ' +
          '"checksum", got "yes" (YAML 1.2 reads yes as text: write verify_transfer: true)',
          'config.yaml:6: compression: expected true or false, got "Off" (YAML 1.2 reads Off as ' +
          "text: write compression: false)",
          'config.yaml:7: remote_sync: expected true or false, got "no" (YAML 1.2 reads no as ' +
          "text: write remote_sync: false)",
          // Not a YAML 1.1 boolean either: nothing to suggest.
          'config.yaml:8: case_sensitive_patterns: expected true or false, got "maybe"',
        ].map((line) => RegExp.escape(line) + "$").join("\n.*"),
        "m",
      ),
    );
    const set = await cli(home, [
      "run",
      "--dry-run",
      "--watch",
      join(home, "in"),
      "--to",
      join(home, "out"),
      "--set",
      "verify_transfer=off",
    ]);
    assertConfigFailure(
      set,
      /--set verify_transfer=…: expected true or false, or one of .*, got "off" \(YAML 1\.2 reads off as text: write verify_transfer: false\)$/m,
    );
  });
});

Deno.test("a %YAML 1.1 directive is refused, naming its line, so that yes, off, 010 and 1:30 are not read by YAML 1.1's rules (config validate)", async () => {
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "/data/incoming", [
      "compression: yes",
      "verify_transfer: off",
      "retry_attempts: 010",
      "stability_window_seconds: 1:30",
    ]);
    await write("scp");
    await Deno.writeTextFile(file, `%YAML 1.1\n---\n${await Deno.readTextFile(file)}`);
    const result = await cli(home, ["-c", file, "config", "validate"]);
    // Before: exit 0, with verify_transfer none (no check), compression on, 8 retries, 90 s.
    assertConfigFailure(
      result,
      new RegExp(
        RegExp.escape(
          "config.yaml:1: %YAML 1.1 directive: the config file is read as YAML 1.2, not as YAML " +
            "1.1, which would read yes/no/on/off as true or false (verify_transfer: off as no " +
            "verification), 010 as 8 and 1:30 as 90; remove this line",
        ) + "$",
        "m",
      ),
    );
  });
});

Deno.test("a rescan_interval_seconds between 0 and 1 (a rescan many times a second) is refused by config validate and run, naming its line; 0 and 1 are taken", async () => {
  await withTempDir(async (home) => {
    for (const [value, taken] of [["0.001", false], ["0.5", false], ["0", true], ["1", true]]) {
      const { file, write } = await methodConfig(home, "/data/incoming", [
        `rescan_interval_seconds: ${value}`,
      ]);
      await write("scp");
      const result = await cli(home, ["-c", file, "config", "validate"]);
      await Deno.remove(join(home, "in"));
      if (taken) {
        assert.equal(result.code, 0, result.stderr);
        continue;
      }
      // Before: taken, and the daemon rescanned the watch folder in a near-busy loop.
      assertConfigFailure(
        result,
        new RegExp(
          RegExp.escape(
            `config.yaml:5: rescan_interval_seconds: ${value} would rescan the whole watch ` +
              "folder more than once a second, keeping a processor busy; give at least 1 (the " +
              "default is 3600, an hour), or 0 for no periodic rescans",
          ) + "$",
          "m",
        ),
      );
      if (value === "0.001") {
        const run = await cli(home, ["-c", file, "run", "--dry-run"]);
        assertConfigFailure(run, /config\.yaml:5: rescan_interval_seconds: 0\.001 would rescan/);
      }
    }
  });
});

Deno.test("config validate and run --dry-run warn of a key the job's method does not use (ssh_port on an ftp job), naming its line; not when the method uses it", async () => {
  await withTempDir(async (home) => {
    const { file, write } = await methodConfig(home, "/data/incoming", [
      "ssh_port: 2222",
      "ssh_options: []",
    ]);
    await write("ftp");
    const said =
      /^warning: .*config\.yaml:5: ssh_port of job default is ignored: only scp and rsync use it, and this job sends by ftp \(an FTP server's port goes in ftp_port\); remove it$/m;
    const validated = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(validated.code, 0, validated.stderr);
    assert.match(validated.stderr, said);
    // An empty key says nothing: not said.
    assert.doesNotMatch(validated.stderr, /ssh_options/);
    const dry = await cli(home, ["-c", file, "run", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, said);
    await write("scp");
    const scp = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(scp.code, 0, scp.stderr);
    assert.doesNotMatch(scp.stderr, /ignored/);
    // A local job: ignored, but no FTP port is meant (before: "an FTP server's port goes in ...").
    const out = join(home, "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace("/data/incoming", JSON.stringify(out))
        .replace("transfer_method: scp", "transfer_method: local"),
    );
    const local = await cli(home, ["-c", file, "config", "validate"]);
    assert.match(
      local.stderr,
      /^warning: .*config\.yaml:5: ssh_port of job default is ignored: only scp and rsync use it, and this job sends by local; remove it$/m,
    );
    assert.doesNotMatch(local.stderr, /ftp_port/);
  });
});

Deno.test("config validate warns of remote_host and remote_user on a local job, as the template says they are ignored there; not when empty or used", async () => {
  await withTempDir(async (home) => {
    const out = join(home, "out");
    await Deno.mkdir(out);
    const { file, write } = await methodConfig(home, JSON.stringify(out), ["remote_user: obs"]);
    await write("local");
    const validated = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(validated.code, 0, validated.stderr);
    // Before: not a word, as if they named where the files go.
    for (const [line, key] of [[2, "remote_host"], [5, "remote_user"]]) {
      assert.match(
        validated.stderr,
        new RegExp(
          `^warning: .*config\\.yaml:${line}: ${key} of job default is ignored: only scp, rsync ` +
            "and ftp use it, and this job sends by local; remove it$",
          "m",
        ),
      );
    }
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace("remote_user: obs", 'remote_user: ""'),
    );
    const empty = await cli(home, ["-c", file, "config", "validate"]);
    assert.doesNotMatch(empty.stderr, /remote_user/);
    await write("scp");
    const scp = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(scp.code, 0, scp.stderr);
    assert.doesNotMatch(scp.stderr, /remote_host|remote_user/);
  });
});

Deno.test("config validate warns of a method's key in a jobs entry of another method, and of a top-level one only when no job that inherits it uses it", async () => {
  await withTempDir(async (home) => {
    for (const folder of ["north", "south"]) await Deno.mkdir(join(home, folder));
    const password = join(home, "ftp-password");
    await Deno.writeTextFile(password, "secret\n", { mode: 0o600 });
    const file = join(home, "config.yaml");
    const write = (southMethod: string) =>
      Deno.writeTextFile(
        file,
        [
          "remote_host: archive.example.org",
          "ssh_port: 2222",
          `ftp_password_file: ${JSON.stringify(password)}`,
          "jobs:",
          "  - name: north",
          `    watch_path: ${JSON.stringify(join(home, "north"))}`,
          "    remote_base_path: /data/north",
          "    transfer_method: ftp",
          "    rsync_options: [--bwlimit=1000]",
          "  - name: south",
          `    watch_path: ${JSON.stringify(join(home, "south"))}`,
          "    remote_base_path: /data/south",
          `    transfer_method: ${southMethod}`,
          "",
        ].join("\n"),
      );
    await write("ftp");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:9: rsync_options of job north is ignored: only rsync uses it, and this job sends by ftp; remove it$/m,
    );
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:2: ssh_port at the top level is ignored: only scp and rsync use it, and the jobs that inherit it send by ftp \(an FTP server's port goes in ftp_port\); remove it$/m,
    );
    // A default some job uses (south sends by rsync) is no mistake: said for no job.
    await write("rsync");
    const used = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(used.code, 0, used.stderr);
    assert.doesNotMatch(used.stderr, /ssh_port/);
    assert.doesNotMatch(used.stderr, /ftp_password_file/);
    assert.match(used.stderr, /rsync_options of job north is ignored/);
  });
});

Deno.test("config validate, run --dry-run and doctor warn of keep_days and archive_path with after_transfer: keep (nothing is ever removed), naming the line and what to set; not when empty or used", async () => {
  await withTempDir(async (home) => {
    const out = join(home, "out");
    await Deno.mkdir(out);
    const archive = join(home, "archive");
    const { file, write } = await methodConfig(home, JSON.stringify(out), [
      "keep_days: 3",
      `archive_path: ${JSON.stringify(archive)}`,
    ]);
    await write("local");
    const keepDays =
      /^(?:warning:|WARN ) .*config\.yaml:5: keep_days of job default is ignored: only after_transfer: delete and move use it \(the days a source stays after it arrived\), and this job keeps its sources \(after_transfer: keep, the default\), so no source is ever removed; to remove sources 3 days after they arrived, set after_transfer: delete \(or move, into archive_path\), else remove it$/m;
    const archivePath =
      /^(?:warning:|WARN ) .*config\.yaml:6: archive_path of job default is ignored: only after_transfer: move uses it \(sources are moved into it once they arrived verified\), and this job keeps its sources \(after_transfer: keep, the default\); to move them there, set after_transfer: move, else remove it$/m;
    // Before: "ok", not a word, while the disk filled with sources kept for good. (doctor: WARN)
    for (const args of [["config", "validate"], ["run", "--dry-run"], ["doctor"]]) {
      const result = await cli(home, ["-c", file, ...args]);
      assert.match(result.stderr + result.stdout, keepDays, args.join(" "));
      assert.match(result.stderr + result.stdout, archivePath, args.join(" "));
    }
    // Deleted: keep_days is used, archive_path is not.
    const text = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, `${text}after_transfer: delete\n`);
    const deleted = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.doesNotMatch(deleted.stderr, /keep_days/);
    assert.match(
      deleted.stderr,
      /config\.yaml:6: archive_path of job default is ignored: .* and this job deletes its sources \(after_transfer: delete\); to move them there, set after_transfer: move/,
    );
    // Moved: both used.
    await Deno.writeTextFile(file, `${text}after_transfer: move\n`);
    const moved = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.doesNotMatch(moved.stderr, /keep_days|archive_path/);
    // Empty (0, ""): says nothing, not said.
    await Deno.writeTextFile(
      file,
      text.replace("keep_days: 3", "keep_days: 0").replace(/archive_path: .*/, 'archive_path: ""'),
    );
    const empty = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.doesNotMatch(empty.stderr, /keep_days|archive_path/);
    // A run without a config file: said of its --set.
    const set = await cli(home, [
      ...["run", "--dry-run", "--watch", join(home, "in"), "--to", out, "--set", "keep_days=3"],
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.match(
      set.stderr,
      /^warning: in the options \(--watch, --to, --set\): --set keep_days=… is ignored: only after_transfer: delete and move use it .* set after_transfer: delete/m,
    );
  });
});

Deno.test("config validate warns of a top-level keep_days next to a jobs list only when every job that inherits it keeps its sources", async () => {
  await withTempDir(async (home) => {
    for (const folder of ["north", "south"]) await Deno.mkdir(join(home, folder));
    const file = join(home, "config.yaml");
    const write = (southAfter: string) =>
      Deno.writeTextFile(
        file,
        [
          "transfer_method: local",
          "keep_days: 2",
          "jobs:",
          "  - name: north",
          `    watch_path: ${JSON.stringify(join(home, "north"))}`,
          `    remote_base_path: ${JSON.stringify(join(home, "out-north"))}`,
          "  - name: south",
          `    watch_path: ${JSON.stringify(join(home, "south"))}`,
          `    remote_base_path: ${JSON.stringify(join(home, "out-south"))}`,
          `    after_transfer: ${southAfter}`,
          "",
        ].join("\n"),
      );
    await write("keep");
    const kept = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(
      kept.stderr,
      /^warning: .*config\.yaml:2: keep_days at the top level is ignored: only after_transfer: delete and move use it .*, and the jobs that inherit it keep their sources \(after_transfer: keep, the default\), so no source is ever removed; to remove sources 2 days after/m,
    );
    await write("delete");
    const used = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(used.code, 0, used.stderr);
    assert.doesNotMatch(used.stderr, /keep_days/);
  });
});

Deno.test("config validate warns of a retry_delay_seconds above retry_max_delay_seconds, saying the longest wait wins; not of the default delay under a low maximum", async () => {
  await withTempDir(async (home) => {
    const out = join(home, "out");
    await Deno.mkdir(out);
    const { file, write } = await methodConfig(home, JSON.stringify(out), [
      "retry_max_delay_seconds: 1",
      "retry_delay_seconds: 100",
    ]);
    await write("local");
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    // Before: accepted without a word.
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:6: retry_delay_seconds of job default \(100\) is above retry_max_delay_seconds \(1\), which wins: every retry waits at most 1 s, the first one too; lower retry_delay_seconds to 1 or less, or raise retry_max_delay_seconds$/m,
    );
    // Only the maximum written (below the default delay, 5): what was asked for, not said.
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace("retry_delay_seconds: 100\n", ""),
    );
    const alone = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(alone.code, 0, alone.stderr);
    assert.doesNotMatch(alone.stderr, /retry/);
  });
});

Deno.test("config validate warns of top-level job keys next to a jobs list that every entry sets itself (a single-job config turned into a list), naming the line; not of those inherited", async () => {
  await withTempDir(async (home) => {
    for (const folder of ["in", "north", "south"]) await Deno.mkdir(join(home, folder));
    const file = join(home, "config.yaml");
    const write = (entries: string[]) =>
      Deno.writeTextFile(
        file,
        [
          `watch_path: ${JSON.stringify(join(home, "in"))}`,
          `remote_base_path: ${JSON.stringify(join(home, "out"))}`,
          "transfer_method: local",
          "retry_delay: 20",
          "jobs:",
          ...entries,
          "",
        ].join("\n"),
      );
    const north = [
      "  - name: north",
      `    watch_path: ${JSON.stringify(join(home, "north"))}`,
      `    remote_base_path: ${JSON.stringify(join(home, "out-north"))}`,
      "    retry_delay_seconds: 30",
    ];
    await write(north);
    const result = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:1: watch_path at the top level is inherited by no job, as every entry of jobs sets its own: .*not a job of their own; to send from that folder too, give it an entry of its own in jobs, else remove the key$/m,
    );
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:2: remote_base_path at the top level is inherited by no job, .*remove it, or set it in the entries that need it$/m,
    );
    // Written under its old name at the top and its new one in the entry: the same key.
    assert.match(
      result.stderr,
      /^warning: .*config\.yaml:4: retry_delay at the top level is inherited by no job/m,
    );
    assert.doesNotMatch(result.stderr, /transfer_method at the top level/);
    // A second entry that inherits the folder: the keys are used.
    await write([
      ...north,
      "  - name: south",
      `    remote_base_path: ${JSON.stringify(join(home, "out-south"))}`,
    ]);
    const used = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(used.code, 0, used.stderr);
    assert.doesNotMatch(used.stderr, /watch_path at the top level/);
    assert.match(used.stderr, /remote_base_path at the top level is inherited by no job/);
  });
});

/** Broken fixtures and what the message must contain (file:line: and the key or reason). */
const BROKEN: [string, RegExp][] = [
  ["unclosed_quote.yaml", /unclosed_quote\.yaml:2: YAML syntax error: Missing closing "quote/],
  [
    "unquoted_patterns.yaml",
    /unquoted_patterns\.yaml:4: YAML alias \*\.fits .*must be quoted: "\*\.fits"/,
  ],
  [
    "job_key_misindented.yaml",
    /job_key_misindented\.yaml:4: .*Sequence item without - indicator \(check the indentation/,
  ],
  ["bad_indentation.yaml", /bad_indentation\.yaml:3: YAML syntax error: /],
  [
    "retry_three.yaml",
    /retry_three\.yaml:7: retry_attempts: expected a whole number from 0 to 1000, got "three"/,
  ],
  [
    "unknown_key.yaml",
    /unknown_key\.yaml:4: unknown key "retry_attempt"; did you mean "retry_attempts"\?/,
  ],
  ["missing_watch_path.yaml", /missing_watch_path\.yaml:1: watch_path: required key missing/],
  [
    "bad_transfer_method.yaml",
    /bad_transfer_method\.yaml:4: transfer_method: expected one of "scp", "rsync", "local", "ftp", got "sftp"/,
  ],
  [
    "bad_night_timezone.yaml",
    /bad_night_timezone\.yaml:4: night_timezone: unknown time zone "Mars\/Olympus_Mons"/,
  ],
  [
    "daemon_key_in_job.yaml",
    /daemon_key_in_job\.yaml:8: "state_dir" in jobs\[1\] applies to the whole daemon/,
  ],
  [
    "duplicate_job_names.yaml",
    /duplicate_job_names\.yaml:6: jobs\[1\]\.name: duplicate job name "cam"/,
  ],
  ["empty_jobs.yaml", /empty_jobs\.yaml:3: jobs: the list is empty/],
  [
    "every_seconds_zero.yaml",
    /every_seconds_zero\.yaml:6: schedules\[0\]\.every_seconds: expected a number from 1 to 31536000, got 0/,
  ],
  [
    "every_seconds_millisecond.yaml",
    /every_seconds_millisecond\.yaml:8: schedules\[1\]\.every_seconds: expected a number from 1 to 31536000, got 0\.001/,
  ],
  [
    "cron_never.yaml",
    /cron_never\.yaml:6: schedules\[0\]\.cron: not a cron expression, or one that never comes .*"0 8 \* \* \* \* \*".*\n.*cron_never\.yaml:8: schedules\[1\]\.cron: .*"0 8 31 2 \*"/,
  ],
  [
    "two_documents.yaml",
    /two_documents\.yaml:5: the file holds more than one YAML document \(a "---" line starts another\)/,
  ],
  [
    "bare_tilde.yaml",
    /bare_tilde\.yaml:2: watch_path: expected text, got an empty value \(a bare ~ is YAML's empty value: for the home folder write "~"\)/,
  ],
  [
    "schedule_key_typo.yaml",
    /schedule_key_typo\.yaml:8: schedules\[0\]\.timzone: unknown key; did you mean "timezone"\? \(the keys here: cron, every_seconds, timezone, action, .*\n.*schedule_key_typo\.yaml:9: schedules\[0\]\.nigths: unknown key; did you mean "nights"\?/,
  ],
  [
    "schedule_key_not_taken.yaml",
    /schedule_key_not_taken\.yaml:8: schedules\[0\]\.nights: action "pause" does not take nights \(only "rescan" and "report"\): remove it, or change the action\n.*schedule_key_not_taken\.yaml:11: schedules\[1\]\.command: action "report" does not take command/,
  ],
  [
    "file_patterns_number.yaml",
    /file_patterns_number\.yaml:4: file_patterns: expected a list of patterns/,
  ],
  // Before: "write at least watch_path, remote_host and remote_base_path", local copies too.
  [
    "empty.yaml",
    /empty\.yaml: the config file is empty; write at least watch_path and remote_base_path \(and remote_host, unless transfer_method: local\), or get a commented template with `image-transfer -c .*empty\.yaml init --force`$/m,
  ],
  ["only_comment.yaml", /only_comment\.yaml: the config file is empty/],
  ["top_level_list.yaml", /top_level_list\.yaml:1: expected "key: value" lines at the top level/],
  [
    "alias_bomb.yaml",
    /alias_bomb\.yaml:11: YAML aliases expand too far: \*f here stands for [\d,]+ values .*alias bomb/,
  ],
  [
    "duplicate_key.yaml",
    /duplicate_key\.yaml:6: duplicate key "retry_attempts" \(first on line 4\)/,
  ],
  [
    "unresolved_alias.yaml",
    /unresolved_alias\.yaml:2: YAML alias \*processing_host refers to no anchor/,
  ],
  [
    "retry_delay_twice.yaml",
    /retry_delay_twice\.yaml:5: retry_delay \(line 5\) and retry_delay_seconds \(line 7\) are the same setting: retry_delay is the old name of retry_delay_seconds; keep only the retry_delay_seconds line/,
  ],
  [
    "job_errors.yaml",
    /job_errors\.yaml:8: jobs\[1\]\.retry_attempts: .*\n.*job_errors\.yaml:9: unknown key "retry_atempts" in jobs\[1\]/,
  ],
  [
    "rsync_remove_source.yaml",
    /rsync_remove_source\.yaml:6: rsync_options\[1\]: --remove-source-files removes files; .*; remove it/,
  ],
  [
    "remote_host_option.yaml",
    /remote_host_option\.yaml:3: remote_host: expected a host name, address or ~\/\.ssh\/config alias/,
  ],
  [
    "cleanup_shared_watch.yaml",
    /cleanup_shared_watch\.yaml:8: after_transfer of job backup: "delete" would take sources away from job archive, which watches \/data\/camera too, before it has sent them/,
  ],
  [
    "files_in_the_way.yaml",
    new RegExp(
      [
        "files_in_the_way\\.yaml:6: state_dir: /etc/hostname/state \\(or a folder on its path\\) is " +
        "a file",
        "files_in_the_way\\.yaml:5: log_file: /etc/hostname on the path of " +
        "/etc/hostname/logs/it\\.log is a file",
        "files_in_the_way\\.yaml:2: watch_path of job default: /etc/hostname is a file, not a folder",
        "files_in_the_way\\.yaml:4: remote_base_path of job default: /etc/hostname on the " +
        "path of /etc/hostname/incoming is a file, not a folder; give a folder \\(made if missing\\)",
      ].join("[^]*"),
    ),
  ],
  [
    // Every place the daemon cannot use, said at once, each with its line.
    "unusable_places.yaml",
    new RegExp(
      [
        "unusable_places\\.yaml:5: state_dir: /etc/hostname \\(or a folder on its path\\) is a file",
        "unusable_places\\.yaml:6: log_file: /etc is a folder",
        "unusable_places\\.yaml:2: watch_path of job default: /dev/shm/camera is under /dev, " +
        "where image-transfer cannot open files",
        "unusable_places\\.yaml:8: archive_path of job default: /dev/shm/camera/done is under /dev",
        "unusable_places\\.yaml:8: archive_path of job default: .* must not contain each other",
        "unusable_places\\.yaml:9: status_listen: 0\\.0\\.0\\.0:8765 can be reached from other " +
        "machines",
      ].join("[^]*"),
    ),
  ],
];

for (const [name, pattern] of BROKEN) {
  Deno.test(`config validate rejects broken/${name} with exit 2`, async () => {
    await withTempDir(async (home) => {
      const result = await cli(home, ["-c", join(FIXTURES, "broken", name), "config", "validate"]);
      assertConfigFailure(result, pattern);
    });
  });
}

Deno.test("config show reports a broken config the same way", async () => {
  await withTempDir(async (home) => {
    const file = join(FIXTURES, "broken", "retry_three.yaml");
    const result = await cli(home, ["-c", file, "config", "show"]);
    assertConfigFailure(result, /retry_three\.yaml:7: retry_attempts: /);
  });
});

Deno.test("a missing config file names the path and suggests init", async () => {
  await withTempDir(async (home) => {
    const result = await cli(home, ["config", "validate"]);
    const expected = join(home, ".config", "image-transfer", "config.yaml");
    assertConfigFailure(
      result,
      new RegExp(`Cannot read config file ${expected}: it does not exist`),
    );
    assert.match(result.stderr, /`image-transfer init`/);
  });
});

Deno.test("without HOME, a command on the default config file is a config error (exit 2) saying to set HOME or give -c; with -c it goes on", async () => {
  await withTempDir(async (dir) => {
    // As a service or `env -i` starts it: no home folder at all.
    const homeless = (args: string[]) =>
      runProgram("env", ["-u", "HOME", "-u", "USERPROFILE", Deno.execPath(), ...cliArgv(args)], {
        cwd: dir,
      });
    for (
      const args of [["init"], ["--create-config"], ["config", "generate"], ["run"], ["status"]]
    ) {
      const result = await homeless(args);
      assertConfigFailure(
        result,
        /The config file ~\/\.config\/image-transfer\/config\.yaml is in the home folder, which cannot be found \(neither HOME nor USERPROFILE is set\): set HOME, or give the config file's full path with -c FILE/,
      );
    }
    // A file given with -c needs no home folder to be written, or to be said missing.
    const file = join(dir, "config.yaml");
    const written = await homeless(["-c", file, "init"]);
    assert.equal(written.code, 0, written.stderr);
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());
    const missing = await homeless(["-c", join(dir, "other.yaml"), "config", "validate"]);
    assertConfigFailure(missing, /other\.yaml: it does not exist/);
  });
});

Deno.test("without HOME, every command on a -c file whose state_dir defaults to the home folder says to write it (exit 2)", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "config.yaml");
    await Deno.writeTextFile(
      file,
      `watch_path: ${dir}\ntransfer_method: local\nremote_base_path: ${join(dir, "out")}\n`,
    );
    for (const args of [["config", "validate"], ["status"], ["stop"], ["status", "--json"]]) {
      const result = await runProgram("env", [
        ...["-u", "HOME", "-u", "USERPROFILE", "-u", "XDG_STATE_HOME"],
        ...[Deno.execPath(), ...cliArgv(["-c", file, ...args])],
      ], { cwd: dir });
      // Before: status and stop exited 1 with "Cannot find the home folder", saying no key.
      assertConfigFailure(
        result,
        /config\.yaml: state_dir and log_file default to the home folder, which cannot be found \(neither HOME nor USERPROFILE is set\): set HOME, or write state_dir and log_file as absolute paths/,
      );
    }
  });
});

Deno.test("without HOME, a -c file whose paths are all absolute is checked and run (config validate, doctor, run --once)", async () => {
  await withTempDir(async (dir) => {
    const [watch, out] = [join(dir, "watch"), join(dir, "out")];
    await Deno.mkdir(watch);
    const bytes = randomBytes(5000);
    await Deno.writeFile(join(watch, "a.dat"), bytes);
    const file = join(dir, "config.yaml");
    await Deno.writeTextFile(
      file,
      [
        `watch_path: ${watch}`,
        "transfer_method: local",
        `remote_base_path: ${out}`,
        `state_dir: ${join(dir, "state")}`,
        'log_file: ""',
        'status_listen: ""',
        'file_patterns: ["*.dat"]',
        "",
      ].join("\n"),
    );
    const homeless = (args: string[]) =>
      runProgram("env", [
        ...["-u", "HOME", "-u", "USERPROFILE", "-u", "XDG_STATE_HOME"],
        ...[Deno.execPath(), ...cliArgv(["-c", file, ...args])],
      ], { cwd: dir });
    // Before: each exited 1 with "Cannot find the home folder" (the check for the template's
    // example watch_path, ~/data/images, looked for the home folder).
    for (const args of [["config", "validate"], ["doctor"], ["run", "--once"]]) {
      const result = await homeless(args);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
    }
    const nights = [...Deno.readDirSync(out)].map((entry) => entry.name);
    assert.equal(nights.length, 1);
    assert.deepEqual(await Deno.readFile(join(out, nights[0], "a.dat")), bytes);
  });
});

Deno.test("init writes a config that loads; a second init refuses; --force overwrites", async () => {
  await withTempDir(async (home) => {
    const file = join(home, ".config", "image-transfer", "config.yaml");
    const first = await cli(home, ["init"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^wrote ${file}$`, "m"));
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());

    // Its example values are refused (see the next test); once set, it validates.
    const text = renderDefaultConfig().replace(/^remote_host: .*$/m, "remote_host: archive");
    await Deno.writeTextFile(file, text);
    const validate = await cli(home, ["config", "validate"]);
    assert.equal(validate.code, 0, validate.stderr);
    assert.match(validate.stdout, /^ok: .*config\.yaml \(1 job\)$/m);

    await Deno.writeTextFile(file, "# my edits\n" + renderDefaultConfig());
    const again = await cli(home, ["init"]);
    assertConfigFailure(again, /already exists.*--force/);
    assert.ok((await Deno.readTextFile(file)).startsWith("# my edits\n"), "file was changed");

    const forced = await cli(home, ["init", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());
  });
});

Deno.test("config validate, run, install-service and doctor refuse the untouched template init writes, naming each example value's line and what to set", async () => {
  await withTempDir(async (home) => {
    const file = join(home, "site.yaml");
    assert.equal((await cli(home, ["-c", file, "init"])).code, 0);
    const lines = (await Deno.readTextFile(file)).split("\n");
    const line = (key: string) => lines.findIndex((text) => text.startsWith(`${key}:`)) + 1;
    const validate = await cli(home, ["-c", file, "config", "validate"]);
    assertConfigFailure(
      validate,
      new RegExp(
        `^error: Config ${file} still holds the example values of the template \`init\` ` +
          "writes, which name no folder or server of yours: set them, then check it with " +
          `\`image-transfer -c ${file} config validate\`\n`,
      ),
    );
    const said = [
      `${file}:${line("watch_path")}: watch_path is still the template's example ~/data/images: ` +
      "set the folder your instrument writes its files into",
      `${file}:${line("remote_host")}: remote_host is still the template's example ` +
      "processing-server: set the server the files go to",
      `${file}:${line("remote_base_path")}: remote_base_path is still the template's example ` +
      "/data/incoming/images: set the folder the night folders (YYYYMMDD/) go into",
    ];
    for (const text of said) assert.ok(validate.stderr.includes(text), validate.stderr);
    // run and install-service refuse it as config validate does, before anything starts.
    for (const args of [["run", "--once"], ["run"], ["install-service", "--print"]]) {
      const refused = await cli(home, ["-c", file, ...args]);
      assertConfigFailure(refused, /still holds the example values of the template/);
      for (const text of said) assert.ok(refused.stderr.includes(text), refused.stderr);
    }
    const doctor = await cli(home, ["-c", file, "doctor"]);
    assert.equal(doctor.code, 1, doctor.stderr);
    assert.ok(
      doctor.stdout.startsWith(
        `${file} still holds the example values of the template init writes:\n`,
      ),
      doctor.stdout,
    );
    for (const text of said) assert.ok(doctor.stdout.includes(`FAIL  ${text}`), doctor.stdout);
    // Only what to fill in, and where: no check of the example folder and server, which would
    // fail as if something were broken (before: "watch folder: ... does not exist", "Cannot log
    // in to processing-server", and "Cannot confirm every job will work").
    assert.equal(doctor.stdout.match(/FAIL/g)?.length, 3, doctor.stdout);
    assert.doesNotMatch(doctor.stdout, /^job default|processing-server: cannot|does not exist/m);
    assert.equal(
      doctor.stderr,
      `error: Fill in watch_path at line ${line("watch_path")}, remote_host at line ` +
        `${line("remote_host")} and remote_base_path at line ${line("remote_base_path")} of ` +
        `${file} (the FAIL lines above say what each takes), then run ` +
        `\`image-transfer -c ${file} doctor\` again\n`,
    );
    // A copy on this machine needs no server: its two example values are still the template's.
    const local = lines.map((text) => text.startsWith("remote_host:") ? "" : text)
      .join("\n").replace(/^# transfer_method: .*$/m, "transfer_method: local");
    await Deno.writeTextFile(file, local);
    const localValidate = await cli(home, ["-c", file, "config", "validate"]);
    assertConfigFailure(localValidate, /remote_base_path is still the template's example/);
    assert.doesNotMatch(localValidate.stderr, /remote_host/);
    // One value set is an edited config: the rest may be the user's own (a server named so).
    await Deno.writeTextFile(file, local.replace(/^watch_path: .*$/m, `watch_path: ${home}`));
    const edited = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(edited.code, 0, edited.stderr);
    assert.equal(edited.stderr, "");
  });
});

Deno.test("init -c writes to the given path, creating its folders", async () => {
  await withTempDir(async (home) => {
    const file = join(home, "deep", "er folder", "site.yaml");
    const result = await cli(home, ["-c", file, "init"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^wrote ${file}$`, "m"));
    const validate = await cli(home, ["-c", file, "config", "validate"]);
    assertConfigFailure(validate, /still holds the example values of the template/);
    // Nothing was written to the default location.
    await assert.rejects(() => Deno.stat(join(home, ".config")), Deno.errors.NotFound);
    // A folder given for the file: said plainly, with the name to give instead.
    for (const args of [["init"], ["init", "--force"]]) {
      const folder = await cli(home, ["-c", join(home, "deep"), ...args]);
      assertConfigFailure(
        folder,
        /Cannot write config .*deep: it is a folder; give a file name in it \(-c .*deep\/config\.yaml\)/,
      );
    }
    // A file where a folder of its path should be: that file named, exit 2, no stack trace.
    const under = await cli(home, ["-c", join(file, "sub", "x.yaml"), "init"]);
    assertConfigFailure(
      under,
      new RegExp(
        `^error: Cannot write config .*x\\.yaml: ${file} on its path is a file, not a folder; ` +
          `give a file in a folder \\(-c FILE\\), or move ${file} away\n`,
      ),
    );
    // Another system's path is no name here (it would be a file of that name in this folder).
    if (Deno.build.os !== "windows") {
      const windows = await cli(home, ["-c", "C:\\x.yaml", "init"]);
      assertConfigFailure(windows, /Cannot write config C:\\x\.yaml: .* is a Windows path/);
      const names = await Array.fromAsync(Deno.readDir(home), (entry) => entry.name);
      assert.ok(!names.some((name) => name.startsWith("C:")), names.join(", "));
    }
  });
});

Deno.test("init and run --save-config into a folder this user cannot write say so, with what to do, exit 2", async () => {
  if (Deno.build.os === "windows") return; // No file modes there.
  await withTempDir(async (home) => {
    const locked = join(home, "locked");
    await Deno.mkdir(locked, { mode: 0o555 });
    await Deno.chmod(locked, 0o555);
    const env = { HOME: home, USERPROFILE: home, XDG_STATE_HOME: "" };
    const asUser = (args: string[]) => runCli(args, { env, cwd: home, honourFileModes: true });
    for (const file of [join(locked, "site.yaml"), join(locked, "sub", "site.yaml")]) {
      const init = await asUser(["-c", file, "init"]);
      assertConfigFailure(
        init,
        new RegExp(
          `Cannot write config ${file}: permission denied; give a file in a folder this user can ` +
            `write \\(-c FILE\\), or make ${locked} writable`,
        ),
      );
      await Deno.mkdir(join(home, "w"), { recursive: true });
      const save = await asUser([
        "run",
        "--watch",
        join(home, "w"),
        "--to",
        join(home, "d"),
        "--save-config",
        file,
      ]);
      assertConfigFailure(save, /Cannot write config .*permission denied.*\(--save-config FILE\)/);
      assert.doesNotMatch(save.stderr, /os error/);
    }
  });
});

Deno.test("a log_file this user cannot write is refused by config validate and doctor as run refuses it, with its line", async () => {
  if (Deno.build.os === "windows") return; // No file modes there.
  await withTempDir(async (home) => {
    const locked = join(home, "locked");
    await Deno.mkdir(locked);
    await Deno.writeTextFile(join(locked, "old.log"), "");
    await Deno.chmod(join(locked, "old.log"), 0o444);
    await Deno.chmod(locked, 0o555);
    await Deno.mkdir(join(home, "w"));
    const env = { HOME: home, USERPROFILE: home, XDG_STATE_HOME: "" };
    const file = join(home, "config.yaml");
    const cases: Array<[string, RegExp]> = [
      [join(locked, "it.log"), /locked cannot be written \(permission denied\), so the log file/],
      [join(locked, "logs", "it.log"), /locked\/logs cannot be made in .*locked \(permission/],
      [join(locked, "old.log"), /old\.log cannot be written \(permission denied\); give a file/],
    ];
    for (const [log, pattern] of cases) {
      await Deno.writeTextFile(
        file,
        [
          `watch_path: ${join(home, "w")}`,
          "transfer_method: local",
          `remote_base_path: ${join(home, "d")}`,
          `state_dir: ${join(home, "state")}`,
          `log_file: ${log}`,
          "",
        ].join("\n"),
      );
      for (const args of [["config", "validate"], ["doctor"], ["run", "--once"]]) {
        const result = await runCli(["-c", file, ...args], { env, honourFileModes: true });
        assertConfigFailure(result, /config\.yaml:5: log_file: /);
        assert.match(result.stderr, pattern, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /or "" to log to stderr only/);
      }
    }
    assert.equal(await Deno.stat(join(home, "d")).then(() => true, () => false), false, "sent");
  });
});

Deno.test("a log_file that is a named pipe is refused by config validate, doctor and run with its line, never opened", async () => {
  await withTempDir(async (home) => {
    const pipe = join(home, "it.log");
    const made = await new Deno.Command("mkfifo", { args: ["--", pipe] }).output();
    assert.equal(made.code, 0);
    await Deno.mkdir(join(home, "w"));
    const file = join(home, "config.yaml");
    await Deno.writeTextFile(
      file,
      [
        `watch_path: ${join(home, "w")}`,
        "transfer_method: local",
        `remote_base_path: ${join(home, "d")}`,
        `state_dir: ${join(home, "state")}`,
        `log_file: ${pipe}`,
        "",
      ].join("\n"),
    );
    for (const args of [["config", "validate"], ["doctor"], ["run", "--once"]]) {
      // Nothing ever reads the pipe: a command that opens it to append waits forever.
      const cli = startCli(["-c", file, ...args], {
        env: { HOME: home, XDG_STATE_HOME: "" },
        cwd: home,
      });
      let exited = false;
      try {
        await cli.waitForOutput(
          `config.yaml:5: log_file: ${pipe} is not a regular file (a device, a pipe?); give a ` +
            'file this user can write (made if missing), or "" to log to stderr only',
        );
        const status = await within(cli.process.status, 60_000, `${args.join(" ")} to exit`);
        exited = true;
        assert.equal(status.code, 2, `${args.join(" ")}: ${cli.stderr()}`);
        assert.doesNotMatch(cli.stderr(), /\n\s+at /, "no stack trace");
      } finally {
        if (!exited) await cli.stop("SIGKILL");
      }
    }
    assert.equal(await Deno.stat(join(home, "d")).then(() => true, () => false), false, "sent");
  });
});

Deno.test("a FITS image given with -c is said to be one, not read as TOML, and init (--force or not) leaves it as it is", async () => {
  await withTempDir(async (home) => {
    const image = join(home, "flat_001.fits");
    // astropy's ascii.fits, as the trial gave it, and an image with data.
    const data = [
      await Deno.readFile(join(ASTROPY_FITS_DATA, "ascii.fits")),
      fitsFile(headerBytes(imageCards(4, 4)), int16Data(4, 4, (x, y) => x * y)),
    ];
    for (const bytes of data) {
      await Deno.writeFile(image, bytes, { mode: 0o644 });
      for (const command of [["config", "validate"], ["run", "--dry-run"]]) {
        const result = await cli(home, ["-c", image, ...command]);
        // Before: "…is TOML…", its header dumped as one line, and a template offered over it.
        assertConfigFailure(
          result,
          new RegExp(
            `^error: Cannot read config file ${RegExp.escape(image)}: it is a FITS image \\(it ` +
              'starts with "SIMPLE  ="\\), not a config file; give the YAML config file with -c, ' +
              "or write a template into a new one with `image-transfer -c FILE\\.yaml init` " +
              "\\(the folder of the images goes in its watch_path\\)\n$",
          ),
        );
        assert.doesNotMatch(result.stderr, /TOML|--force|BITPIX/, command.join(" "));
      }
      for (const init of [["init"], ["init", "--force"]]) {
        const result = await cli(home, ["-c", image, ...init]);
        assertConfigFailure(
          result,
          new RegExp(
            `^error: Cannot write config ${RegExp.escape(image)}: it is a FITS image .*, not a ` +
              "config file, and is left as it is; give the config a name of its own " +
              `\\(-c ${RegExp.escape(join(home, "flat_001.yaml"))}\\)\n$`,
          ),
        );
        assert.doesNotMatch(result.stderr, /--force/, init.join(" "));
        assert.deepEqual(await Deno.readFile(image), bytes, `${init.join(" ")} wrote over it`);
      }
    }
  });
});

Deno.test("--create-config (the old flag) writes the default config like init, and replaces one with --force", async () => {
  await withTempDir(async (home) => {
    const file = join(home, "legacy.yaml");
    const result = await cli(home, ["-c", file, "--create-config"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());
    const again = await cli(home, ["-c", file, "--create-config"]);
    assertConfigFailure(again, /already exists/);
    // What it suggests acts on that file, not on the default one (a plain path, unquoted).
    assert.ok(
      again.stderr.includes(`\`image-transfer -c ${file} config validate\``),
      again.stderr,
    );
    assert.ok(again.stderr.includes(`\`image-transfer -c ${file} init --force\``), again.stderr);
    // With --force, as init takes it: the file is written anew, not refused as if it were not given.
    await Deno.writeTextFile(file, "watch_path: /edited\n");
    const forced = await cli(home, ["-c", file, "--create-config", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());
  });
});

Deno.test("--create-config with another command than run or init is refused (exit 2, one line), not ignored, and only their help lists it", async () => {
  await withTempDir(async (home) => {
    const file = join(home, "c1.yaml");
    for (
      const args of [
        ["status", "--create-config"],
        ["--create-config", "stop"],
        ["config", "validate", "--create-config"],
      ]
    ) {
      const result = await cli(home, ["-c", file, ...args]);
      // Before: status printed the status (exit 0), the flag ignored.
      assertConfigFailure(
        result,
        new RegExp(
          "^error: --create-config \\(the old tool's flag for `init`\\) does nothing with `" +
            (args.includes("validate")
              ? "config validate"
              : args.includes("stop")
              ? "stop"
              : "status") +
            "`: leave it out, or write the config with `image-transfer init` " +
            "\\(-c FILE for another file than the default\\)$",
          "m",
        ),
      );
      assert.equal(await Deno.stat(file).then(() => true, () => false), false, "written");
    }
    for (const args of [["status", "--help"], ["config", "validate", "--help"]]) {
      const help = await cli(home, args);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /--log-level/);
      assert.doesNotMatch(help.stdout, /--create-config/, args.join(" "));
    }
    for (const args of [["--help"], ["run", "--help"], ["init", "--help"]]) {
      assert.match((await cli(home, args)).stdout, /--create-config/, args.join(" "));
    }
    const init = await cli(home, ["-c", file, "init", "--create-config"]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(await Deno.readTextFile(file), renderDefaultConfig());
  });
});

Deno.test("config show prints the effective config as YAML that is itself a valid config", async () => {
  await withTempDir(async (home) => {
    const result = await cli(home, ["-c", join(FIXTURES, "multi_job.yaml"), "config", "show"]);
    assert.equal(result.code, 0, result.stderr);
    const shown = parse(result.stdout);
    assert.equal(shown.log_format, "json");
    assert.equal(shown.state_dir, join(FIXTURES, "state"));
    assert.deepEqual(shown.jobs.map((j: { name: string }) => j.name), ["north", "job2", "job3"]);
    assert.equal(shown.jobs[0].watch_path, join(home, "data", "north"));
    assert.equal(shown.jobs[0].remote_base_path, "~/incoming/north");
    // The header says which paths are made absolute: not this remote one.
    assert.match(
      result.stdout.split("\n")[0],
      /paths on this machine made absolute; remote paths and the programs .* as written\)$/,
    );
    assert.equal(shown.jobs[0].retry_attempts, 5);
    assert.equal(shown.jobs[2].verify_transfer, "none");

    const copy = join(home, "shown.yaml");
    await Deno.writeTextFile(copy, result.stdout);
    const again = await cli(home, ["-c", copy, "config", "show", "--json"]);
    assert.equal(again.code, 0, again.stderr);
    const json = JSON.parse(again.stdout);
    assert.equal(json.file, copy);
    assert.deepEqual(json.jobs, shown.jobs);
  });
});

Deno.test("config show writes the old name retry_delay under its new name", async () => {
  await withTempDir(async (home) => {
    const file = join(FIXTURES, "windows_to_linux.yaml");
    assert.match(await Deno.readTextFile(file), /^retry_delay: 5$/m);
    const result = await cli(home, ["-c", file, "config", "show"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
    const shown = parse(result.stdout);
    assert.equal(shown.jobs[0].retry_delay_seconds, 5);
    assert.ok(!("retry_delay" in shown.jobs[0]), result.stdout);
  });
});

Deno.test("config show --json applies defaults and expands paths under HOME", async () => {
  await withTempDir(async (home) => {
    const file = join(FIXTURES, "local_transfer.yaml");
    const result = await cli(home, ["-c", file, "config", "show", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const config = JSON.parse(result.stdout);
    assert.equal(config.file, file);
    assert.equal(config.state_dir, join(home, ".local", "state", "image-transfer"));
    assert.equal(config.log_file, join(home, "logs", "image_transfer.log"));
    assert.equal(config.jobs[0].name, "default");
    assert.equal(config.jobs[0].watch_path, join(home, "camera", "raw"));
    assert.equal(config.jobs[0].remote_base_path, join(home, "processing", "inbox"));
    assert.equal(config.jobs[0].stability_window_seconds, 2);
  });
});

Deno.test("config without a subcommand is a usage error", async () => {
  await withTempDir(async (home) => {
    const result = await cli(home, ["config"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^error: missing subcommand for `config`/);
  });
});

Deno.test("deno task docs rewrites only the marked regions of README.md and docs/configuration.md", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(REPO_ROOT, "deno.json")));
  const task: string[] = config.tasks.docs.split(" ");
  assert.deepEqual(task.slice(0, 2), ["deno", "run"]);
  assert.equal(task.at(-1), "scripts/gen_config_reference.ts");
  await withTempDir(async (dir) => {
    const readme = join(dir, "README.md");
    const full = join(dir, "docs", "configuration.md");
    await Deno.mkdir(join(dir, "docs"));
    const page = (title: string) =>
      `# ${title}\n\nIntro.\n\n${START_MARKER}\nstale list\n${END_MARKER}\n\nAfter.\n`;
    await Deno.writeTextFile(readme, page("Title"));
    await Deno.writeTextFile(full, page("Keys"));
    // The task's own permission flags, run from a folder holding the two files.
    const run = (...extra: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--config",
          join(REPO_ROOT, "deno.json"),
          ...task.slice(2, -1),
          join(REPO_ROOT, "scripts", "gen_config_reference.ts"),
          ...extra,
        ],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const first = await run();
    assert.equal(first.code, 0, new TextDecoder().decode(first.stderr));
    for (
      const [file, title, expected] of [
        [readme, "Title", renderConfigSummary()],
        [full, "Keys", renderConfigReference()],
      ]
    ) {
      const after = await Deno.readTextFile(file);
      assert.ok(after.startsWith(`# ${title}\n\nIntro.\n\n${START_MARKER}\n`), file);
      assert.ok(after.endsWith(`${END_MARKER}\n\nAfter.\n`), file);
      assert.equal(readRegion(after), expected, file);
    }
    const written = [await Deno.readTextFile(readme), await Deno.readTextFile(full)];
    const check = await run("--check");
    assert.equal(check.code, 0, "--check after a rewrite");
    const second = await run();
    assert.equal(second.code, 0);
    assert.deepEqual(
      [await Deno.readTextFile(readme), await Deno.readTextFile(full)],
      written,
      "second run changed a file",
    );
    // Drift is reported by --check and left in place.
    await Deno.writeTextFile(full, page("Keys"));
    const drift = await run("--check");
    assert.equal(drift.code, 1);
    assert.match(
      new TextDecoder().decode(drift.stderr),
      /docs\/configuration\.md: the config reference is out of date/,
    );
    assert.equal(await Deno.readTextFile(full), page("Keys"));
  });
});

Deno.test("a control character in a configured path (a Windows path in double quotes) is refused with the single-quote hint; single quotes pass", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-ctl-path-" });
  try {
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      `watch_path: ${JSON.stringify(dir)}\nremote_host: freya\nremote_base_path: "D:\\archive"\n` +
        `log_file: "${dir}/logs\\tnight.log"\n`,
    );
    const bad = await runCli(["config", "validate", "-c", config], { env: { HOME: dir } });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /config\.yaml:3: remote_base_path: the path holds a control character \(U\+0007 after "D:"\)/,
    );
    assert.match(bad.stderr, /write Windows paths in single quotes \('D:\\archive'\)/);
    assert.match(
      bad.stderr,
      /config\.yaml:4: log_file: the path holds a control character \(U\+0009/,
    );
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
    await Deno.writeTextFile(
      config,
      `watch_path: ${JSON.stringify(dir)}\nremote_host: freya\nremote_base_path: 'D:\\archive'\n`,
    );
    const good = await runCli(["config", "validate", "-c", config], { env: { HOME: dir } });
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /freya:D:\\archive/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run, a dry run and doctor refuse another OS's paths, and unset %VAR%s, with their lines, making nothing where they point; validate warns", async () => {
  if (Deno.build.os === "windows") return; // There a drive path is this machine's.
  await withTempDir(async (home) => {
    const file = join(home, "config.yaml");
    await Deno.mkdir(join(home, "camera"));
    await Deno.writeTextFile(
      file,
      [
        `watch_path: ${JSON.stringify(join(home, "camera"))}`,
        "transfer_method: local",
        "remote_base_path: 'D:\\archive'",
        "state_dir: C:/state",
        "log_file: C:/logs/it.log",
        'status_listen: ""',
        "archive_path: '%ARCHIVE_NOT_SET%/done'",
        "",
      ].join("\n"),
    );
    for (const args of [["run", "--once"], ["run", "--dry-run"], ["doctor"], ["run"]]) {
      const result = await cli(home, ["-c", file, ...args]);
      assertConfigFailure(
        result,
        /:4: state_dir: "C:\/state" is a Windows path \(drive C:\), which Linux does not have|which macOS does not have/,
      );
      assert.match(result.stderr, /:5: log_file: "C:\/logs\/it\.log" is a Windows path/);
      assert.match(
        result.stderr,
        // As written ('D:\archive'), not with JSON's doubled backslash ("D:\\archive").
        /:3: remote_base_path of job default: "D:\\archive" is a Windows/,
      );
      // A variable of another environment (a service's is not the shell's) is that machine's too.
      assert.match(
        result.stderr,
        /:7: archive_path of job default: %ARCHIVE_NOT_SET% is not set in this environment, so the path would hold it as written/,
      );
    }
    // Nothing was made below the current folder (the CLI ran in HOME).
    const made = [...Deno.readDirSync(home)].map((e) => e.name).filter((n) => n !== ".cache");
    assert.deepEqual(made.sort(), ["camera", "config.yaml"]);
    const validate = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(validate.code, 0, validate.stderr);
    assert.equal(
      validate.stderr.match(/`run` refuses it on this machine/g)?.length,
      4,
      validate.stderr,
    );
  });
});

Deno.test("a config that is a device or under /dev or /proc is refused in plain words, never with the runtime's --allow-all advice", async () => {
  if (Deno.build.os === "windows") return; // No /dev there.
  await withTempDir(async (home) => {
    const device = await cli(home, ["-c", "/dev/null", "config", "validate"]);
    assertConfigFailure(device, /\/dev\/null: it is not a regular file \(a device, a pipe\?\)/);
    assert.doesNotMatch(device.stderr, /chmod/);
    for (
      const args of [
        ["-c", "/dev/stdin", "config", "validate"],
        // -v adds the runtime's error as the cause, in the same plain words.
        ["-v", "-c", "/dev/shm/x.yaml", "config", "validate"],
        ["-c", "/proc/x.yaml", "init"],
        ["-c", "/dev/null", "init", "--force"],
      ]
    ) {
      const result = await cli(home, args);
      assert.notEqual(result.code, 0, args.join(" "));
      assert.match(
        result.stderr,
        /is (under|one of) \/dev, \/proc or \/sys .*cannot open files/,
        args.join(" "),
      );
      if (args.includes("init")) {
        assert.match(result.stderr, /^error: Cannot write config \/[a-z]+\//);
      }
      assert.doesNotMatch(result.stderr, /allow-all/, args.join(" "));
    }
  });
});

Deno.test("config validate warns of ssh_options that leave the server's key unchecked, with the line", async () => {
  await withTempDir(async (home) => {
    await Deno.mkdir(join(home, "data"));
    const file = join(home, "config.yaml");
    const write = (options: string[]) =>
      Deno.writeTextFile(
        file,
        [
          "watch_path: ~/data",
          "transfer_method: rsync",
          "remote_host: archive.example.org",
          "remote_base_path: /srv/incoming",
          `state_dir: ${join(home, "state")}`,
          "ssh_options:",
          ...options.map((option) => `  - ${option}`),
          "",
        ].join("\n"),
      );
    await write(["Ciphers=aes128-gcm@openssh.com", "StrictHostKeyChecking=no"]);
    const unchecked = await cli(home, ["-c", file, "config", "validate"]);
    assert.equal(unchecked.code, 0, unchecked.stderr);
    assert.match(
      unchecked.stderr,
      /^warning: .*config\.yaml:6: ssh_options of job default: StrictHostKeyChecking=no sends the files to whatever answers as archive\.example\.org, its key unchecked .*use StrictHostKeyChecking=accept-new/m,
    );
    // A dry run says it too (it logs nothing: the warning goes to stderr).
    const dry = await cli(home, ["-c", file, "run", "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /^warning: .*config\.yaml:6: ssh_options of job default: Strict/m);
    // ssh takes the first value given: a later `no` changes nothing.
    const later = ["StrictHostKeyChecking=accept-new", "StrictHostKeyChecking=no"];
    for (const options of [later, ["Ciphers=aes128-gcm@openssh.com"]]) {
      await write(options);
      const checked = await cli(home, ["-c", file, "config", "validate"]);
      assert.equal(checked.code, 0, checked.stderr);
      assert.doesNotMatch(checked.stderr, /StrictHostKeyChecking/, options.join(", "));
    }
  });
});

Deno.test("-v says each problem of a config once, and the cause of a read error", async () => {
  await withTempDir(async (home) => {
    const config = join(home, "three problems.yaml");
    const problems = [
      `${config}:4: retry_attempts: expected a whole number from 0 to 1000, got -1`,
      `${config}:5: retry_delay_seconds: expected a number from 0 to 86400, got "x"`,
      `${config}:6: unknown key "bogus"; see the key list in the README`,
    ];
    await Deno.writeTextFile(
      config,
      `watch_path: ${home}\ntransfer_method: local\nremote_base_path: ${home}/out\n` +
        `retry_attempts: -1\nretry_delay_seconds: x\nbogus: 1\n`,
      { mode: 0o600 },
    );
    for (const command of [["config", "validate"], ["run", "--once"]]) {
      const result = await cli(home, ["-v", "-c", config, ...command]);
      assertConfigFailure(result, /retry_attempts/);
      assert.equal(result.stderr.trimEnd(), `error: ${problems.join("\n")}`, command.join(" "));
    }
    const folder = join(home, "a folder.yaml");
    await Deno.mkdir(folder);
    const read = await cli(home, ["-v", "-c", folder, "config", "validate"]);
    assertConfigFailure(read, /it is a folder/);
    assert.match(read.stderr, /\n {2}caused by: Is a directory .*\n$/);
    assert.equal(read.stderr.split("\n").length, 3, read.stderr);
  });
});

Deno.test("a named pipe given as the config is refused by run, status and stop, never read", async () => {
  await withTempDir(async (home) => {
    const pipe = join(home, "-config pipe.yaml");
    const made = await new Deno.Command("mkfifo", { args: ["--", pipe] }).output();
    assert.equal(made.code, 0);
    for (const command of ["run", "status", "stop"]) {
      // Nothing ever writes into the pipe: a command that opens it to read waits forever.
      const cli = startCli(["-c", pipe, command], {
        env: { HOME: home, XDG_STATE_HOME: "" },
        cwd: home,
      });
      let exited = false;
      try {
        await cli.waitForOutput("it is not a regular file (a device, a pipe?)");
        const status = await within(cli.process.status, 60_000, `${command} to exit`);
        exited = true;
        assert.equal(status.code, 2, `${command}: ${cli.stderr()}`);
      } finally {
        if (!exited) await cli.stop("SIGKILL");
      }
    }
  });
});
