import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, parseConfig } from "../../../src/config/load.ts";
import { quickStartConfig } from "../../../src/cli/quick_start.ts";
import { jobKeyLine } from "../../../src/config/key_lines.ts";
import { defaultLogFile, defaultStateDir, homeDir } from "../../../src/config/paths.ts";
import { prepareConfigFile, renderDefaultConfig } from "../../../src/cli/config.ts";
import {
  describeKeys,
  firstSentence,
  renderConfigReference,
  renderConfigSummary,
} from "../../../src/config/reference.ts";
import { DEFAULT_FILE_PATTERNS } from "../../../src/config/schema.ts";
import { ConfigError } from "../../../src/errors.ts";
import { GENERATED, readRegion } from "../../../scripts/gen_config_reference.ts";
import { cliArgv, REPO_ROOT, runProgram } from "../../helpers/cli.ts";
import { withTempDir } from "../../helpers/files.ts";

const FIXTURES = fileURLToPath(new URL("../../fixtures/configs/", import.meta.url));

/** Run `fn` with a fresh temp dir that is removed afterwards. */

/** The ConfigError thrown by parsing `text`. */
function configError(text: string, file = "/etc/it/config.yaml"): ConfigError {
  try {
    parseConfig(text, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

const MINIMAL = "watch_path: /data/in\nremote_host: freya\nremote_base_path: /data/out\n";

Deno.test("old tool's Windows to Linux example loads with its values", async () => {
  const config = await loadConfig(join(FIXTURES, "windows_to_linux.yaml"));
  assert.equal(config.jobs.length, 1);
  const [job] = config.jobs;
  assert.equal(job.name, "default");
  assert.equal(job.watch_path, "C:/Users/Observer/data/images");
  assert.equal(job.remote_host, "freya");
  assert.equal(job.remote_user, "observer");
  assert.equal(job.remote_base_path, "/home/observer/data/images");
  assert.equal(job.transfer_method, "scp");
  assert.equal(job.compression, false);
  assert.equal(job.remote_sync, true);
  assert.deepEqual(job.file_patterns, ["*.fits", "*.FIT"]);
  assert.equal(job.verify_transfer, "checksum", "verify_transfer: true is the default check");
  assert.equal(job.retry_attempts, 3);
  assert.equal(job.retry_delay_seconds, 5, "the old name retry_delay is read");
  assert.equal(config.state_dir, defaultStateDir());
  assert.equal(config.log_file, defaultLogFile());
  assert.equal(config.log_format, "text");
  assert.equal(config.file, join(FIXTURES, "windows_to_linux.yaml"));
});

Deno.test("old tool's basic Windows to Linux example loads with defaults for the rest", async () => {
  const [job] = (await loadConfig(join(FIXTURES, "basic_windows_to_linux.yaml"))).jobs;
  assert.equal(job.watch_path, "C:/Users/Observer/data/images");
  assert.deepEqual(job.file_patterns, ["*.fits"]);
  assert.equal(job.verify_transfer, "checksum");
  assert.equal(job.retry_attempts, 3);
  assert.equal(job.stability_window_seconds, 2);
  assert.equal(job.ssh_port, null);
  assert.equal(job.ssh_identity_file, null);
});

Deno.test("old tool's rsync example keeps rsync options and the remote path", async () => {
  const [job] = (await loadConfig(join(FIXTURES, "linux_to_linux_rsync.yaml"))).jobs;
  assert.equal(job.transfer_method, "rsync");
  assert.equal(job.watch_path, join(homeDir(), "telescope/images"));
  assert.equal(job.remote_host, "processing-server.local");
  assert.equal(job.remote_user, "pipeline");
  assert.equal(job.remote_base_path, "/data/incoming/images");
  assert.deepEqual(job.rsync_options, ["--archive", "--partial", "--progress"]);
  assert.deepEqual(job.file_patterns, ["*.fits", "*.fit"]);
});

Deno.test("old tool's local example expands ~ in both local paths", async () => {
  const [job] = (await loadConfig(join(FIXTURES, "local_transfer.yaml"))).jobs;
  assert.equal(job.transfer_method, "local");
  assert.equal(job.watch_path, join(homeDir(), "camera/raw"));
  assert.equal(job.remote_base_path, join(homeDir(), "processing/inbox"));
  assert.equal(job.remote_user, "ignored");
});

Deno.test("jobs inherit top-level job keys; job keys override; names default to jobN", async () => {
  const config = await loadConfig(join(FIXTURES, "multi_job.yaml"));
  assert.deepEqual(config.jobs.map((j) => j.name), ["north", "job2", "job3"]);
  const [north, south, local] = config.jobs;
  // Inherited from the top level.
  for (const job of config.jobs) {
    assert.equal(job.remote_host, "processing-server");
    assert.equal(job.remote_user, "pipeline");
    assert.equal(job.night_rollover_hour, 12);
    assert.equal(job.night_timezone, "America/Santiago");
  }
  assert.equal(north.retry_attempts, 5);
  assert.equal(north.verify_transfer, "checksum");
  assert.equal(north.transfer_method, "scp");
  assert.deepEqual(north.file_patterns, DEFAULT_FILE_PATTERNS);
  // Overridden per job.
  assert.equal(south.retry_attempts, 1);
  assert.equal(south.transfer_method, "rsync");
  assert.equal(south.remote_base_path, "/data/incoming/images");
  assert.deepEqual(south.file_patterns, ["*.fits.fz"], "a single pattern is a one-element list");
  assert.equal(local.verify_transfer, "none");
  // A remote path keeps its ~/ for the remote shell; local paths are expanded.
  assert.equal(north.remote_base_path, "~/incoming/north");
  assert.equal(north.watch_path, join(homeDir(), "data/north"));
  assert.equal(south.watch_path, join(FIXTURES, "south"));
  assert.equal(local.watch_path, join(homeDir(), "local-cam"));
  assert.equal(local.remote_base_path, join(FIXTURES, "archive/local"));
  // Daemon keys.
  assert.equal(config.state_dir, join(FIXTURES, "state"));
  assert.equal(config.log_file, "");
  assert.equal(config.log_format, "json");
});

Deno.test("relative paths resolve against the config file's folder, not the cwd", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "conf"));
    const file = join(dir, "conf", "c.yaml");
    await Deno.writeTextFile(
      file,
      "watch_path: in\ntransfer_method: local\nremote_base_path: ../out\n" +
        "state_dir: ./st\nlog_file: logs/x.log\nssh_identity_file: keys/id\n" +
        "after_transfer: move\narchive_path: ../archive\n" +
        "ftp_password_file: secrets/ftp\nftp_ca_file: ../ca.pem\n",
    );
    const config = await loadConfig(file);
    assert.equal(config.jobs[0].archive_path, join(dir, "archive"));
    assert.equal(config.jobs[0].ftp_password_file, join(dir, "conf", "secrets", "ftp"));
    assert.equal(config.jobs[0].ftp_ca_file, join(dir, "ca.pem"));
    assert.equal(config.jobs[0].watch_path, join(dir, "conf", "in"));
    assert.equal(config.jobs[0].remote_base_path, join(dir, "out"));
    assert.equal(config.jobs[0].ssh_identity_file, join(dir, "conf", "keys", "id"));
    assert.equal(config.state_dir, join(dir, "conf", "st"));
    assert.equal(config.log_file, join(dir, "conf", "logs", "x.log"));
  });
});

Deno.test("~, $HOME, ${HOME} and %USERPROFILE% expand in every local path; remote paths stay", () => {
  const config = parseConfig(
    "watch_path: ~/a\nremote_host: h\nremote_base_path: ~/remote\n" +
      "ssh_identity_file: $HOME/.ssh/id\nstate_dir: '%USERPROFILE%/st'\nlog_file: ~/l.log\n" +
      "after_transfer: move\narchive_path: ~/archive\n" +
      "ftp_password_file: ${HOME}/ftp-pass\nftp_ca_file: ~/ca.pem\n",
    "/etc/it/config.yaml",
  );
  const home = homeDir();
  assert.equal(config.jobs[0].ftp_password_file, join(home, "ftp-pass"));
  assert.equal(config.jobs[0].ftp_ca_file, join(home, "ca.pem"));
  assert.equal(config.jobs[0].archive_path, join(home, "archive"));
  assert.equal(config.jobs[0].watch_path, join(home, "a"));
  assert.equal(config.jobs[0].ssh_identity_file, join(home, ".ssh/id"));
  assert.equal(config.jobs[0].remote_base_path, "~/remote");
  assert.equal(config.state_dir, join(home, "st"));
  assert.equal(config.log_file, join(home, "l.log"));
});

Deno.test("max_concurrent_transfers: 4 by default, 2 for ftp, as set when set", () => {
  const concurrent = (more: string) =>
    parseConfig(`${MINIMAL}${more}`, "/x/c.yaml").jobs[0].max_concurrent_transfers;
  assert.equal(concurrent(""), 4);
  assert.equal(concurrent("transfer_method: rsync\n"), 4);
  assert.equal(concurrent("transfer_method: ftp\nftp_password_env: PW\n"), 2);
  assert.equal(
    concurrent("transfer_method: ftp\nftp_password_env: PW\nmax_concurrent_transfers: 3\n"),
    3,
  );
  assert.equal(concurrent("max_concurrent_transfers: 1\n"), 1);
  assert.match(
    configError(`${MINIMAL}max_concurrent_transfers: 0\n`).message,
    /max_concurrent_transfers/,
  );
});

Deno.test("verify_transfer: true is checksum (the default, never weaker), false is none, names pass through", () => {
  const verify = (value: string) =>
    parseConfig(`${MINIMAL}verify_transfer: ${value}\n`, "/x/c.yaml").jobs[0].verify_transfer;
  // Before: true was size, a weaker check than a config without the key got.
  assert.equal(verify("true"), "checksum");
  assert.equal(verify("size"), "size");
  assert.equal(verify("false"), "none");
  assert.equal(verify("checksum"), "checksum");
  assert.equal(verify("none"), "none");
  assert.equal(parseConfig(MINIMAL, "/x/c.yaml").jobs[0].verify_transfer, "checksum");
});

Deno.test("a file with a byte order mark and CRLF line ends loads", () => {
  const config = parseConfig("\uFEFF" + MINIMAL.replaceAll("\n", "\r\n"), "/x/c.yaml");
  assert.equal(config.jobs[0].remote_base_path, "/data/out");
  assert.equal(config.jobs[0].remote_host, "freya");
});

Deno.test("all problems are reported at once, in line order, with line and key path", () => {
  const error = configError(
    "watch_path: /in\nremote_host: h\nremote_base_path: /out\nretry_attempts: three\n" +
      "retry_delay: -1\nverify_transfer: maybe\n",
    "/etc/it/config.yaml",
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 3, error.message);
  assert.match(lines[0], /^\/etc\/it\/config\.yaml:4: retry_attempts: expected a whole number/);
  assert.match(lines[0], /got "three"$/);
  assert.match(lines[1], /^\/etc\/it\/config\.yaml:5: retry_delay: expected a number from 0/);
  assert.match(lines[2], /:6: verify_transfer: expected true or false, or one of "none"/);
  assert.equal(error.line, 4);
  assert.equal(error.file, "/etc/it/config.yaml");
});

Deno.test('"" for a key whose default is no value says how to write no value, not "or an empty value, got """', () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  const how = 'got "": for its default leave the key out, or write nothing after its colon';
  assert.equal(
    said('ssh_identity_file: ""\n'),
    `c.yaml:4: ssh_identity_file: expected non-empty text, ${how}`,
  );
  assert.equal(
    said("ssh_port: ''\n"),
    `c.yaml:4: ssh_port: expected a whole number from 1 to 65535, ${how}`,
  );
  assert.equal(
    said("jobs:\n  - ftp_ca_file: ''\n"),
    `c.yaml:5: jobs[0].ftp_ca_file: expected non-empty text, ${how}`,
  );
  // Any other wrong value still hears that no value is allowed.
  assert.equal(
    said("ssh_port: abc\n"),
    'c.yaml:4: ssh_port: expected a whole number from 1 to 65535, or an empty value, got "abc"',
  );
  // And no value loads as the default.
  assert.equal(
    parseConfig(MINIMAL + "ssh_identity_file:\nssh_port:\n", "c.yaml").jobs[0].ssh_port,
    null,
  );
});

Deno.test('"true" in quotes where true or false is expected says to write it without quotes', () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  // Before: only 'expected true or false, got "true"', which reads as if "true" were wrong.
  assert.equal(
    said('compression: "true"\n'),
    'c.yaml:4: compression: expected true or false, got "true" (write it without quotes: ' +
      "compression: true)",
  );
  assert.equal(
    said("remote_sync: 'False'\n"),
    'c.yaml:4: remote_sync: expected true or false, got "False" (write it without quotes: ' +
      "remote_sync: false)",
  );
});

Deno.test("status_listen: false and log_file: false say how the docs turn them off, not to quote false", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  // Before: 'expected text, got false (put it in quotes: "...")', a file or address named false.
  assert.equal(
    said("status_listen: false\n"),
    "c.yaml:4: status_listen: expected text, got false; to turn the status page off write " +
      'status_listen: "" (an empty text)',
  );
  assert.equal(
    said("log_file: false\n"),
    'c.yaml:4: log_file: expected text, got false; to turn file logging off write log_file: "" ' +
      "(an empty text)",
  );
  assert.equal(parseConfig(MINIMAL + 'status_listen: ""\n', "c.yaml").status_listen, "");
});

Deno.test("log_file: off (or none, no) is refused, not taken for a log file named off", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  // Before: accepted, and the log went to a file named "off" beside the config.
  assert.equal(
    said("log_file: off\n"),
    'c.yaml:4: log_file: "off" would be a log file named off beside the config; to turn file ' +
      'logging off write log_file: "" (an empty text), for a file of that name ./off',
  );
  assert.match(said("log_file: None\n"), /^c\.yaml:4: log_file: "None" would be a log file/);
  assert.equal(parseConfig(MINIMAL + "log_file: ./off\n", "c.yaml").log_file.endsWith("off"), true);
});

Deno.test("a value with backslashes is shown as written (C:\\data), not with JSON's doubled ones", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  // Before: got "C:\\data\\port", two backslashes where the user wrote one.
  assert.equal(
    said("ssh_port: 'C:\\data\\port'\n"),
    "c.yaml:4: ssh_port: expected a whole number from 1 to 65535, or an empty value, got " +
      '"C:\\data\\port"',
  );
  // A control character is still written as an escape, so the text is JSON's there.
  assert.match(said('ssh_port: "a\\tb"\n'), /got "a\\tb"$/);
});

Deno.test("a space before or after remote_host or remote_user is refused at its line, with the name to write", () => {
  // Before: accepted, and "host " went into ssh's argv and the summary (" obs@host :/data/out").
  const error = configError(
    'watch_path: /in\nremote_host: "host "\nremote_user: " obs"\nremote_base_path: /out\n',
    "c.yaml",
  );
  assert.equal(
    error.message,
    'c.yaml:2: remote_host: "host " ends with a space, which would be taken as part of the ' +
      'name; write "host"\n' +
      'c.yaml:3: remote_user: " obs" starts with a space, which would be taken as part of the ' +
      'name; write "obs"',
  );
  // Blanks alone are no host at all: said as a missing one.
  assert.match(
    configError('watch_path: /in\nremote_host: "  "\nremote_base_path: /out\n').message,
    /:2: remote_host: required when transfer_method is "scp"/,
  );
});

Deno.test("a NUL character in a host, a pattern or a program's argument is refused at its line, not carried to ssh or the filter", () => {
  // Before: accepted; the host went into the summary with its NUL, ssh failed to start at each
  // file ("nul byte found in provided data"), a hook's check printed Deno's TypeError, and a
  // pattern matched nothing without a word.
  const error = configError(
    'watch_path: /in\nremote_host: "fr\\0eya"\nremote_base_path: /out\n' +
      'file_patterns: ["*.fits\\0"]\non_transfer: ["/bin/echo", "a\\0"]\n' +
      'ssh_options: ["ConnectTimeout=5\\0"]\n',
    "c.yaml",
  );
  assert.deepEqual(error.message.split("\n"), [
    'c.yaml:2: remote_host: the name holds a control character (U+0000 after "fr"); write the ' +
    "name alone",
    'c.yaml:4: file_patterns[0]: pattern "*.fits\\u0000" holds a NUL character, which no file ' +
    "name holds, so it matches nothing; remove it (in double quotes YAML reads \\0 as one)",
    'c.yaml:5: on_transfer[1]: a NUL character (U+0000 after "a") cannot be passed to a ' +
    "program; remove it (in double quotes YAML reads \\0 as one)",
    'c.yaml:6: ssh_options[0]: a NUL character (U+0000 after "ConnectTimeout=5") cannot be ' +
    "passed to a program; remove it (in double quotes YAML reads \\0 as one)",
  ]);
});

Deno.test("a number out of its range says the range in words, for a schedule's keys too", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  assert.equal(
    said("resume_partial_hours: 9000\n"),
    "c.yaml:4: resume_partial_hours: expected a number from 0 to 8760, got 9000",
  );
  assert.equal(
    said("hook_timeout_seconds: 0\n"),
    "c.yaml:4: hook_timeout_seconds: expected a number above 0 and at most 86400, got 0",
  );
  // Before: "expected a number <= 604800" and ">= 1", the bound zod's issue gave, in symbols.
  assert.equal(
    said(
      "schedules:\n  - every_seconds: 99999999\n    action: command\n    command: [/bin/true]\n    timeout_seconds: 9e9\n",
    ),
    "c.yaml:5: schedules[0].every_seconds: expected a number from 1 to 31536000, got 99999999\n" +
      "c.yaml:8: schedules[0].timeout_seconds: expected a number above 0 and at most 604800, got " +
      "9000000000",
  );
});

Deno.test("ftp_password_env holding something else than a variable's name (the password itself?) does not repeat it", () => {
  const message = configError(
    MINIMAL + "transfer_method: ftp\nftp_password_env: s3cr3t!pass word\n",
    "c.yaml",
  ).message;
  assert.match(message, /^c\.yaml:5: ftp_password_env: expected an environment variable name/);
  assert.match(message, /not shown: it may be the password itself.*e\.g\. FTP_PASSWORD/);
  assert.doesNotMatch(message, /s3cr3t/);
  // Digits alone are no name either, and not shown.
  const digits =
    configError(MINIMAL + "transfer_method: ftp\nftp_password_env: 98765432\n").message;
  assert.match(digits, /ftp_password_env: expected an environment variable name.*not shown/);
  assert.doesNotMatch(digits, /98765432/);
});

Deno.test("a status_listen port out of range is reported with the file's other problems", () => {
  const error = configError(
    "watch_path: /in\nremote_host: h\nremote_base_path: /out\nstatus_listen: 127.0.0.1:99999\n" +
      "retry_attempts: three\n",
    "/etc/it/config.yaml",
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 2, error.message);
  assert.match(
    lines[0],
    /:4: status_listen: its port is out of range: give a port from 1 to 65535/,
  );
  assert.match(lines[1], /:5: retry_attempts: expected a whole number/);
  // A wrong form is told as that alone.
  const form = configError(
    "watch_path: /in\nremote_host: h\nremote_base_path: /out\nstatus_listen: localhost\n",
    "c.yaml",
  ).message;
  assert.match(form, /^c\.yaml:4: status_listen: expected "HOST:PORT"/);
  assert.doesNotMatch(form, /out of range/);
});

Deno.test("watch_mode and poll_interval_seconds: defaults, and bad values named with their line", () => {
  const job = parseConfig(MINIMAL, "/x/c.yaml").jobs[0];
  assert.equal(job.watch_mode, "auto");
  assert.equal(job.poll_interval_seconds, 2);
  const forced = parseConfig(
    MINIMAL + "watch_mode: poll\npoll_interval_seconds: 0.5\n",
    "/x/c.yaml",
  );
  assert.equal(forced.jobs[0].watch_mode, "poll");
  assert.equal(forced.jobs[0].poll_interval_seconds, 0.5);
  const error = configError(
    "watch_path: /in\nremote_host: h\nremote_base_path: /out\nwatch_mode: inotify\n" +
      "poll_interval_seconds: 0\n",
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 2, error.message);
  assert.equal(
    lines[0],
    '/etc/it/config.yaml:4: watch_mode: expected one of "auto", "events", "poll", got "inotify"',
  );
  assert.equal(
    lines[1],
    "/etc/it/config.yaml:5: poll_interval_seconds: expected a number from 0.1 to 3600, got 0",
  );
});

Deno.test("an inherited bad value is reported once, at its top-level line", () => {
  const error = configError(
    "remote_host: h\nremote_base_path: /o\nretry_attempts: x\njobs:\n" +
      "  - watch_path: /a\n  - watch_path: /b\n    retry_delay: soon\n",
  );
  const lines = error.message.split("\n");
  assert.deepEqual(lines.map((l) => l.replace(/^[^:]*:(\d+): ([^:]*):.*$/, "$1 $2")), [
    "3 retry_attempts",
    "7 jobs[1].retry_delay",
  ]);
});

Deno.test("the sync tool's keys (max_concurrent_syncs, filters, log_level...) say what to write instead, not the nearest spelling", () => {
  const jobs = "transfer_method: local\njobs:\n  - watch_path: /a\n    remote_base_path: /b\n";
  const cases: [string, RegExp][] = [
    [
      "max_concurrent_syncs: 4",
      /:5: unknown key "max_concurrent_syncs" in jobs\[0\]; did you mean "max_concurrent_transfers"\?$/,
    ],
    [
      "filters: ['*.tmp']",
      /:5: unknown key "filters" in jobs\[0\]; did you mean "exclude_patterns"\? \(the files never sent\)$/,
    ],
    ["source_path: /a", /:5: unknown key "source_path" in jobs\[0\]; did you mean "watch_path"\?$/],
    [
      "destination_path: /b",
      /:5: unknown key "destination_path" in jobs\[0\]; did you mean "remote_base_path"\?$/,
    ],
    [
      "log_level: debug",
      /:5: unknown key "log_level" in jobs\[0\]; the log level is a command-line option \(--log-level, -v\); leave it out$/,
    ],
    [
      "enabled: false",
      /:5: unknown key "enabled" in jobs\[0\]; a job runs while its entry is in the file; comment the entry out to stop it$/,
    ],
  ];
  for (const [line, expected] of cases) {
    assert.match(configError(`${jobs}    ${line}\n`).message, expected);
  }
  assert.match(
    configError(`pid_file: /var/run/sync.pid\n${MINIMAL}`).message,
    /:1: unknown key "pid_file"; the PID file is daemon\.pid in state_dir; leave it out$/,
  );
});

Deno.test("the sync tool's config converted to YAML: each of its sections and job keys is answered with what to write, never a near-named key of another meaning", () => {
  const message = configError(
    [
      "pocketbase:\n  url: http://localhost:8090",
      "daemon:\n  pid_file: /var/run/sync-daemon.pid\n  config_refresh_interval_secs: 300",
      "sync_jobs:\n  - id: documents\n    source_path: /home/user/Documents",
      "file_watchers:\n  - watch_path: /home/user/Documents\n    debounce_ms: 1000",
      "concurrency:\n  max_concurrent_syncs: 4",
      "cache:\n  cache_dir: /var/cache/sync-daemon",
      "jobs:\n  - watch_path: /a\n    remote_base_path: /b\n    id: documents",
      "    schedule:\n      type: interval\n      interval: 5m",
      "    sync_options:\n      comparison_method: checksum",
      "    sync_job_id: documents",
      "    watch_events: [create, write]",
      "transfer_method: local\n",
    ].join("\n"),
  ).message;
  const said = (key: string) =>
    message.split("\n").find((line) => line.includes(`unknown key "${key}"`)) ?? "";
  const expected: [string, RegExp][] = [
    ["pocketbase", /; the settings are read from this file only, from no server; leave it out$/],
    ["daemon", /; write its log_file at the top level of the file; .*SIGHUP: leave the rest out$/],
    ["sync_jobs", /; did you mean "jobs"\? \(in each entry, source_path is watch_path and /],
    ["file_watchers", /; each job watches its own watch_path, .*stability_window_seconds, in /],
    ["concurrency", /; write its max_concurrent_syncs as "max_concurrent_transfers" /],
    ["cache", /; nothing is cached: the settings are read from this file only; leave it out$/],
    ["schedule", /in jobs\[0\]; each file is sent once it arrives, .*rescan_interval_seconds, /],
    ["sync_options", /in jobs\[0\]; not rsync_options, .*comparison_method is verify_transfer/],
    ["sync_job_id", /in jobs\[0\]; each job watches its own watch_path; leave it out$/],
    ["watch_events", /in jobs\[0\]; a file is sent once it is created or changed and then /],
  ];
  for (const [key, answer] of expected) assert.match(said(key), answer, message);
  // Before: the advice for an anchor's key, the key list, or a near name of another meaning.
  for (const wrong of ["x-", "see the key list", 'did you mean "rsync_options"', '"schedules"?']) {
    assert.ok(!message.includes(wrong), message);
  }
});

Deno.test("unknown keys get a suggestion only when one is close", () => {
  assert.match(
    configError(`${MINIMAL}retry_attempt: 3\n`).message,
    /:4: unknown key "retry_attempt"; did you mean "retry_attempts"\?$/,
  );
  assert.match(
    configError(`${MINIMAL}Watch-Path: /x\n`).message,
    /did you mean "watch_path"\?/,
  );
  const far = configError(`${MINIMAL}colour: blue\n`).message;
  assert.match(far, /:4: unknown key "colour"/);
  assert.doesNotMatch(far, /did you mean/);
  // Two letters of a four-letter word changed is another word, not a typo of "jobs";
  // one slip in it is.
  const oops = configError(`${MINIMAL}oops: 1\n`).message;
  assert.match(oops, /:4: unknown key "oops"; see the key list in the README$/);
  assert.match(
    configError(`${MINIMAL}jbos: 1\n`).message,
    /:4: unknown key "jbos"; did you mean "jobs"\?$/,
  );
  assert.match(
    configError(`${MINIMAL}watch_pth: /x\n`).message,
    /:4: unknown key "watch_pth"; did you mean "watch_path"\?$/,
  );
  // A mapping of shared settings under a name of its own: the x- prefix is what it misses.
  assert.match(
    configError(`common: &c\n  retry_attempts: 2\n${MINIMAL}`).message,
    /:1: unknown key "common"; settings shared with a YAML anchor go under a key starting with x- \("x-common: &common"\)/,
  );
});

Deno.test("retry_delay, the old name of retry_delay_seconds, loads as it everywhere", () => {
  const seconds = (text: string) => parseConfig(text, "/x/c.yaml").jobs[0].retry_delay_seconds;
  assert.equal(seconds(`${MINIMAL}retry_delay: 7\n`), 7);
  assert.equal(seconds(`${MINIMAL}retry_delay_seconds: 7\n`), 7);
  assert.equal(seconds(MINIMAL), 5);
  // In a jobs entry, inherited from the top level, and overridden under either name.
  const config = parseConfig(
    "remote_host: h\nremote_base_path: /o\nretry_delay: 9\njobs:\n" +
      "  - watch_path: /a\n  - watch_path: /b\n    retry_delay: 1\n" +
      "  - watch_path: /c\n    retry_delay_seconds: 2\n",
    "/x/c.yaml",
  );
  assert.deepEqual(config.jobs.map((j) => j.retry_delay_seconds), [9, 1, 2]);
  assert.ok(config.jobs.every((job) => !("retry_delay" in job)));
  // The same file with the new name gives the same config.
  const renamed = parseConfig(
    "remote_host: h\nremote_base_path: /o\nretry_delay_seconds: 9\njobs:\n" +
      "  - watch_path: /a\n  - watch_path: /b\n    retry_delay_seconds: 1\n" +
      "  - watch_path: /c\n    retry_delay_seconds: 2\n",
    "/x/c.yaml",
  );
  assert.deepEqual(renamed, config);
});

Deno.test("retry_delay and retry_delay_seconds together are refused, naming both lines", () => {
  const top = configError(`${MINIMAL}retry_delay_seconds: 3\nretry_attempts: 1\nretry_delay: 4\n`);
  assert.equal(
    top.message,
    "/etc/it/config.yaml:6: retry_delay (line 6) and retry_delay_seconds (line 4) are the same " +
      "setting: retry_delay is the old name of retry_delay_seconds; keep only the " +
      "retry_delay_seconds line",
  );
  assert.equal(top.line, 6);
  const inJob = configError(
    "remote_host: h\nremote_base_path: /o\njobs:\n  - watch_path: /a\n" +
      "    retry_delay: 3\n    retry_delay_seconds: 4\n",
  );
  assert.match(
    inJob.message,
    /^\/etc\/it\/config\.yaml:5: retry_delay \(line 5\) and retry_delay_seconds \(line 6\) in jobs\[0\] are the same setting/,
  );
  // Each name once, one at the top level and one in a job, is an override, not a conflict.
  const config = parseConfig(
    "remote_host: h\nremote_base_path: /o\nretry_delay: 3\njobs:\n  - watch_path: /a\n" +
      "    retry_delay_seconds: 4\n",
    "/x/c.yaml",
  );
  assert.equal(config.jobs[0].retry_delay_seconds, 4);
});

Deno.test("a bad value under the old name is reported under the name as written", () => {
  const error = configError(`${MINIMAL}retry_delay: soon\n`);
  assert.equal(
    error.message,
    '/etc/it/config.yaml:4: retry_delay: expected a number from 0 to 86400, got "soon"',
  );
});

Deno.test("a mistyped retry_delay is pointed to the new name", () => {
  assert.match(
    configError(`${MINIMAL}retry_delays: 3\n`).message,
    /:4: unknown key "retry_delays"; did you mean "retry_delay_seconds"\?$/,
  );
  assert.match(
    configError(`${MINIMAL}retry_delay_second: 3\n`).message,
    /:4: unknown key "retry_delay_second"; did you mean "retry_delay_seconds"\?$/,
  );
});

Deno.test("job-level mistakes: daemon key (also mistyped), nested jobs, top-level name, empty list", () => {
  const base = "remote_host: h\nremote_base_path: /o\n";
  assert.match(
    configError(`${base}jobs:\n  - watch_path: /a\n    log_file: /x.log\n`).message,
    /:5: "log_file" in jobs\[0\] applies to the whole daemon and is only allowed at the top level/,
  );
  // Mistyped as well: the daemon-wide key it resembles, and where it goes.
  assert.match(
    configError(`${base}jobs:\n  - watch_path: /a\n    stat_dir: /x\n`).message,
    /:5: unknown key "stat_dir" in jobs\[0\]; did you mean "state_dir"\? It applies to the whole daemon: write it at the top level of the file, not in a jobs entry$/,
  );
  assert.match(
    configError(`${base}jobs:\n  - watch_path: /a\n    jobs: []\n`).message,
    /:5: a jobs entry cannot contain another jobs list/,
  );
  assert.match(
    configError(`${base}name: cam\njobs:\n  - watch_path: /a\n`).message,
    /:3: name: a top-level name would be inherited by every job/,
  );
  assert.match(configError(`${base}jobs: []\n`).message, /:3: jobs: the list is empty/);
  assert.match(configError(`${base}jobs: /a\n`).message, /:3: jobs: expected a list of jobs/);
  assert.match(
    configError(`${base}jobs:\n  - /a\n`).message,
    /:4: jobs\[0\]: expected the keys of one job/,
  );
});

Deno.test("duplicate job names, including a given name equal to a default one", () => {
  const base = "remote_host: h\nremote_base_path: /o\njobs:\n";
  assert.match(
    configError(`${base}  - watch_path: /a\n  - name: job1\n    watch_path: /b\n`).message,
    /:5: jobs\[1\]\.name: duplicate job name "job1" \(also used by jobs\[0\] on line 4\)/,
  );
});

Deno.test("job names: only dots, a leading '-', too long or not ASCII are refused, each with why", () => {
  const job = (name: string) =>
    configError(
      `remote_host: h\nremote_base_path: /o\njobs:\n  - name: "${name}"\n    watch_path: /a\n`,
    )
      .message;
  for (const name of [".", ".."]) {
    assert.match(job(name), /:4: jobs\[0\]\.name: expected a name that is not only dots/, name);
  }
  assert.match(job("-v"), /:4: jobs\[0\]\.name: .*does not start with '-'/);
  assert.match(job("a".repeat(65)), /:4: jobs\[0\]\.name: expected text of at most 64 characters/);
  assert.match(job("kamera-ü"), /:4: jobs\[0\]\.name: expected ASCII letters, digits/);
  assert.match(job(""), /:4: jobs\[0\]\.name: expected non-empty text, got ""/);
});

Deno.test("missing required keys name the key and show an example", () => {
  const message = configError("transfer_method: scp\n").message;
  assert.match(message, /watch_path: required key missing; add a line like "watch_path: ~\/data/);
  assert.match(message, /remote_base_path: required key missing/);
  // remote_host is checked together with the other problems.
  assert.match(message, /remote_host: required when transfer_method is "scp"/);
  // A local job needs no remote_host.
  assert.equal(
    parseConfig("watch_path: /a\nremote_base_path: /b\ntransfer_method: local\n", "/c.yaml")
      .jobs.length,
    1,
  );
});

Deno.test("YAML syntax errors give the line and the parser's reason", () => {
  assert.match(
    configError('watch_path: /a\nremote_host: "freya\nremote_base_path: /o\n').message,
    /^\/etc\/it\/config\.yaml:2: YAML syntax error: Missing closing "quote/,
  );
  assert.match(
    configError("watch_path: /a\n\tremote_host: h\n").message,
    /:2: YAML syntax error: .*[Tt]ab/,
  );
  assert.match(
    configError("watch_path: /a\nwatch_path: /b\n").message,
    /:2: duplicate key "watch_path" \(first on line 1\)/,
  );
  // A key indented by mistake is pointed at, not the value above it that it seems to continue.
  for (const comment of ["", "# the host\n"]) {
    const at = comment === "" ? 2 : 3;
    assert.match(
      configError(`watch_path: /a\n${comment}  remote_host: h\nremote_base_path: /o\n`).message,
      new RegExp(`^/etc/it/config\\.yaml:${at}: YAML syntax error: .*(indentation|same column)`),
    );
  }
  // A [ or { list left open is noticed at the next key: the line is where it opened.
  for (const [open, close] of [["[", "]"], ["{", "}"]]) {
    const list = open === "[" ? '["*.fits"' : '{a: "*.fits"';
    assert.match(
      configError(`watch_path: /a\nremote_host: h\nfile_patterns: ${list}\nremote_base_path: /o\n`)
        .message,
      new RegExp(
        `:3: YAML syntax error: .*\\(a \\${open} list opened here is not closed: end it with \\${close}`,
      ),
    );
  }
});

Deno.test("a duplicate key inside a job is named, with both lines", () => {
  const error = configError(
    "remote_host: h\nremote_base_path: /o\njobs:\n  - watch_path: /a\n    retry_delay: 3\n" +
      '    "retry_delay": 4\n',
  );
  assert.match(error.message, /config\.yaml:6: duplicate key "retry_delay" \(first on line 5\)/);
  assert.equal(error.line, 6);
});

Deno.test("a duplicate key does not hide the file's other problems, which point at the later one", () => {
  const lines = configError(
    [
      "remote_host: h",
      "jobs:",
      "  - watch_path: /a",
      "    remote_base_path: /o",
      "    retry_attempts: 2",
      "    retry_attempts: -3",
      "    no_such_key: 1",
    ].join("\n") + "\n",
  ).message.split("\n");
  assert.deepEqual(lines.map((line) => line.match(/config\.yaml:(\d+):/)?.[1]), ["6", "6", "7"]);
  assert.match(lines[0], /duplicate key "retry_attempts" \(first on line 5\)/);
  assert.match(lines[1], /retry_attempts: expected a whole number from 0 to 1000, got -3/);
  assert.match(lines[2], /unknown key "no_such_key"/);
  // Only a duplicate: still refused.
  assert.match(
    configError("watch_path: /a\nremote_host: h\nremote_base_path: /o\nremote_host: h\n").message,
    /^\/etc\/it\/config\.yaml:4: duplicate key "remote_host" \(first on line 2\)[^\n]*$/,
  );
});

Deno.test("an alias bomb is refused with the line of the alias that expands most", () => {
  const lol = Array(9).fill('"lol"').join(", ");
  const text = [
    "watch_path: /a",
    "remote_host: h",
    "remote_base_path: /o",
    `a: &a [${lol}]`,
    ...["b", "c", "d", "e", "f", "g"].map((name, i) => {
      const previous = "abcdefg"[i];
      return `${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`;
    }),
  ].join("\n");
  const error = configError(text);
  assert.match(error.message, /^\/etc\/it\/config\.yaml:10: YAML aliases expand too far: \*f here/);
  assert.match(error.message, /alias bomb/);
  assert.equal(error.line, 10);
  // A few aliases are fine.
  const config = parseConfig(
    'watch_path: /a\nremote_host: h\nremote_base_path: /o\nfile_patterns: &p ["*.fit"]\n' +
      "exclude_patterns: *p\n",
    "/c.yaml",
  );
  assert.deepEqual(config.jobs[0].exclude_patterns, ["*.fit"]);
});

Deno.test("an empty (~) key is reported at its own line", () => {
  assert.match(
    configError("watch_path: /a\nremote_host: h\n~: x\n").message,
    /config\.yaml:3: unknown key ""/,
  );
});

Deno.test("an alias without its anchor is refused with its line", () => {
  const error = configError("watch_path: /a\nremote_host: *host\nremote_base_path: /o\n");
  assert.match(error.message, /config\.yaml:2: YAML alias \*host refers to no anchor/);
});

Deno.test("empty files and non-mapping files get a clear message", () => {
  assert.match(configError("").message, /the config file is empty/);
  assert.match(configError("# nothing here\n").message, /the config file is empty/);
  assert.match(
    configError("- a\n- b\n").message,
    /:1: expected "key: value" lines at the top level, got a list/,
  );
  assert.match(configError("just text\n").message, /got "just text"/);
  assert.match(configError("just text\n").message, /; get a commented template with `.* --force`$/);
});

Deno.test("another file given with -c (a private key) is not echoed whole, nor offered to init --force", () => {
  const key = "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" +
    "QyNTUxOQAAACCLz6ECc7146NVQG5o9lst1P8zPhJnH3mnglwUO9gHjJwAAAJAbReTCG0Xk\n" +
    "-----END OPENSSH PRIVATE KEY-----\n";
  for (const file of ["/home/obs/.ssh/id_ed25519", "/etc/hosts"]) {
    assert.equal(
      configError(key, file).message,
      `${file}:1: expected "key: value" lines at the top level, got ` +
        '"-----BEGIN OPENSSH PRIVATE KEY----- b3Bl"\u2026; give the YAML config file with -c, or ' +
        "write a template into a new one with `image-transfer -c FILE.yaml init`",
    );
  }
});

Deno.test("a missing file says where it looked and how to create it", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "nope.yaml");
    await assert.rejects(() => loadConfig(file), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, new RegExp(`Cannot read config file ${file}: it does not exist`));
      assert.match(error.message, /image-transfer -c .* init/);
      return true;
    });
  });
});

Deno.test("the generated default config documents every key and loads", () => {
  const text = renderDefaultConfig();
  for (const key of describeKeys()) {
    assert.match(text, new RegExp(`^(# )?${key.key}:`, "m"), `${key.key} missing`);
  }
  assert.ok(text.split("\n").every((line) => line.length <= 100), "a line is wider than 100");
  const config = parseConfig(text, "/etc/it/config.yaml");
  assert.equal(config.jobs.length, 1);
  assert.equal(config.jobs[0].watch_path, join(homeDir(), "data/images"));
  assert.equal(config.jobs[0].remote_host, "processing-server");
  assert.equal(config.jobs[0].remote_base_path, "/data/incoming/images");
  // Uncommenting the jobs example gives a valid two-job config.
  const start = text.indexOf("\n# jobs:\n");
  assert.ok(start > 0, "no commented jobs example");
  const withJobs = text.slice(0, start) + text.slice(start).replace(/^# (jobs:| {2}.*)$/gm, "$1");
  assert.notEqual(withJobs, text);
  const jobs = parseConfig(withJobs, "/etc/it/config.yaml").jobs;
  assert.deepEqual(jobs.map((j) => j.name), ["camera-north", "camera-south"]);
  assert.deepEqual(jobs[1].rsync_options, ["--bwlimit=50000"]);
});

Deno.test("every commented-out default in the generated config equals the real default", () => {
  const text = renderDefaultConfig();
  const jobsAt = text.indexOf("\n# jobs:\n");
  const keys = describeKeys().map((k) => k.key).join("|");
  const uncommented = text.slice(0, jobsAt)
    .replace(new RegExp(`^# ((?:${keys}):.*| {2}.*)$`, "gm"), "$1") + text.slice(jobsAt);
  assert.ok(uncommented.split("\n").filter((l) => /^[a-z_]+:/.test(l)).length >= 25);
  const plain = parseConfig(text, "/etc/it/config.yaml");
  const explicit = parseConfig(uncommented, "/etc/it/config.yaml");
  assert.deepEqual(explicit.jobs, plain.jobs);
  assert.equal(explicit.log_file, plain.log_file);
  assert.equal(explicit.log_format, plain.log_format);
});

Deno.test("both key references list every key and are stable under deno fmt", async () => {
  const full = renderConfigReference();
  const summary = renderConfigSummary();
  for (const key of describeKeys()) {
    assert.match(full, new RegExp(`^- \`${key.key}\` `, "m"));
    assert.match(summary, new RegExp(`^- \`${key.key}\` `, "m"));
  }
  await withTempDir(async (dir) => {
    for (const [name, reference] of [["full.md", full], ["summary.md", summary]]) {
      const file = join(dir, name);
      await Deno.writeTextFile(file, `# Reference\n\n${reference}\n`);
      const fmt = await new Deno.Command(Deno.execPath(), {
        args: ["fmt", "--check", "--config", join(REPO_ROOT, "deno.json"), file],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      assert.equal(fmt.code, 0, `${name}: ${new TextDecoder().decode(fmt.stderr)}`);
    }
  });
});

Deno.test("the summary gives each key the first sentence of its description, the full reference all of it", () => {
  const full = renderConfigReference().replaceAll("\n  ", " ");
  const summary = renderConfigSummary().replaceAll("\n  ", " ");
  for (const key of describeKeys()) {
    const description = key.description.replaceAll("\n", " ");
    const first = firstSentence(description);
    assert.ok(first.endsWith("."), `${key.key}: "${first}" is not a sentence`);
    assert.ok(first.length <= 160, `${key.key}: the first sentence is long for a summary`);
    assert.ok(summary.includes(`: ${first}\n`) || summary.endsWith(`: ${first}`), key.key);
    assert.ok(full.includes(`: ${description}\n`) || full.endsWith(`: ${description}`), key.key);
  }
  assert.equal(
    firstSentence('A zone, e.g. "UTC"; empty: none. More.'),
    'A zone, e.g. "UTC"; empty: none.',
  );
  assert.equal(firstSentence("One sentence only."), "One sentence only.");
  assert.ok(summary.length < full.length / 1.5, "the summary is not much shorter");
});

Deno.test("README.md and docs/configuration.md hold the generated references (run `deno task docs`)", async () => {
  assert.deepEqual(GENERATED.map((g) => g.path), ["README.md", "docs/configuration.md"]);
  const expected = [renderConfigSummary(), renderConfigReference()];
  for (const [i, { path }] of GENERATED.entries()) {
    const region = readRegion(await Deno.readTextFile(join(REPO_ROOT, path)));
    assert.ok(region !== undefined, `${path} lacks the config-reference markers`);
    assert.equal(region, expected[i], `${path} is out of date; run \`deno task docs\``);
  }
  const readme = await Deno.readTextFile(join(REPO_ROOT, "README.md"));
  assert.match(readme, /\]\(docs\/configuration\.md\)/, "README links the full reference");
});

Deno.test("resume_partial_hours and growing_patterns: defaults, a single pattern, clear errors", () => {
  const job = parseConfig(MINIMAL, "/x/c.yaml").jobs[0];
  assert.equal(job.resume_partial_hours, 24);
  assert.deepEqual(job.growing_patterns, []);
  const one = parseConfig(MINIMAL + "growing_patterns: '*.log'\n", "/x/c.yaml").jobs[0];
  assert.deepEqual(one.growing_patterns, ["*.log"]);
  const negative = configError(MINIMAL + "resume_partial_hours: -1\n");
  assert.match(negative.message, /^\/etc\/it\/config\.yaml:4: resume_partial_hours: expected /);
  const off = configError(MINIMAL + "resume_partial_hours: 0\ngrowing_patterns: ['*.log']\n");
  assert.match(
    off.message,
    /^\/etc\/it\/config\.yaml:5: growing_patterns: needs resume_partial_hours above 0/,
  );
});

Deno.test("jobKeyLine: the line of a job's key, in its jobs: entry or inherited from the top", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "config.yaml");
    await Deno.writeTextFile(
      file,
      [
        "on_failure: [/bin/false]", // 1
        "jobs:", // 2
        "  - name: a", // 3
        "    on_transfer: [/bin/true]", // 4
        "  - name: b", // 5
        "    schedules:", // 6
        "      - at: '08:00'", // 7
        "        action: command", // 8
        "        command: [/bin/true]", // 9
        "",
      ].join("\n"),
    );
    assert.equal(jobKeyLine(file, 0, ["on_transfer"]), 4);
    assert.equal(jobKeyLine(file, 1, ["on_failure"]), 1, "inherited: the top-level line");
    assert.equal(jobKeyLine(file, 1, ["schedules", 0, "command"]), 9);
    assert.equal(jobKeyLine(file, 1, ["on_transfer"]), null, "not written");
    assert.equal(jobKeyLine(join(dir, "missing.yaml"), 0, ["on_transfer"]), null);
  });
});

Deno.test("settings shared with a YAML anchor under an x- key are merged into each job with <<; a job's own key wins", async () => {
  const config = await loadConfig(join(FIXTURES, "shared_settings.yaml"));
  const [north, south] = config.jobs;
  assert.deepEqual(config.jobs.map((job) => job.name), ["north", "south"]);
  for (const job of config.jobs) {
    assert.equal(job.transfer_method, "rsync");
    assert.equal(job.remote_host, "archive.example.org");
    assert.equal(job.remote_user, "obs");
  }
  assert.equal(north.stability_window_seconds, 5);
  assert.equal(south.stability_window_seconds, 10);
  assert.equal(south.remote_base_path, "/data/south");
  // A mistake in the shared settings is reported where it is written, not where it is merged.
  const error = configError(
    "x-shared: &shared\n  retry_attempts: 2\n  retry_atempts: 3\n  stability_window_seconds: soon\n" +
      "jobs:\n  - <<: *shared\n    watch_path: /a\n    remote_host: h\n    remote_base_path: /o\n",
  );
  assert.match(error.message, /:3: unknown key "retry_atempts" in jobs\[0\]/);
  assert.match(error.message, /:4: jobs\[0\]\.stability_window_seconds: /);
});

Deno.test("a glob pattern that opens [ or { and never closes it is refused, naming its line", () => {
  const error = configError(
    `${MINIMAL}file_patterns: ["[.fits", "*.[Ff]its", 'x\\[1.fits', "[]a].fits"]\n` +
      `exclude_patterns:\n  - "{calib"\n  - "{a,b}/**"\n`,
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 2, error.message);
  assert.match(
    lines[0],
    /^\/etc\/it\/config\.yaml:4: file_patterns\[0\]: pattern "\[\.fits" opens "\[" and never closes it.*'\\\['/,
  );
  assert.match(
    lines[1],
    /:6: exclude_patterns\[0\]: pattern "\{calib" opens "\{" .*"\*\.\{fits,fz\}"/,
  );
  // Closed classes, escaped brackets and a class holding "]" pass.
  const job =
    parseConfig(`${MINIMAL}file_patterns: ["*.[Ff]its", 'x\\[1.fits', "[]a].fits"]\n`, "/x/c.yaml")
      .jobs[0];
  assert.deepEqual(job.file_patterns, ["*.[Ff]its", "x\\[1.fits", "[]a].fits"]);
});

Deno.test("several patterns written as one, and a bare ending as a pattern, are refused with the list to write", () => {
  const error = configError(
    `${MINIMAL}file_patterns: "*.fits,*.fit"\ngrowing_patterns: ["*.log *.txt", ".fits"]\n` +
      `exclude_patterns: ["*.tmp, *.bak"]\n`,
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 4, error.message);
  assert.equal(
    lines[0],
    '/etc/it/config.yaml:4: file_patterns[0]: pattern "*.fits,*.fit" is several patterns written ' +
      'as one (it matches only names with that "," in them); write each as an item of the list: ' +
      '["*.fits", "*.fit"]',
  );
  assert.match(
    lines[1],
    /:5: growing_patterns\[0\]: pattern "\*\.log \*\.txt" is several .* \["\*\.log", "\*\.txt"\]$/,
  );
  assert.equal(
    lines[2],
    '/etc/it/config.yaml:5: growing_patterns[1]: pattern ".fits" matches only a file named ' +
      '".fits", which is hidden and never sent; for the files ending in .fits write "*.fits"',
  );
  assert.match(lines[3], /:6: exclude_patterns\[0\]: .* \["\*\.tmp", "\*\.bak"\]$/);
  // A comma in braces, names with a space (globs on both sides of it), a class holding a space
  // and a comma, and an exact name pass.
  const patterns = [
    "*.{fits,fz}",
    "night *.fits",
    "*dark *.fits",
    "*_flat *",
    "*[ ,]*.fits",
    "flat_001.fits",
    "raw/.keep",
  ];
  const job = parseConfig(`${MINIMAL}file_patterns: ${JSON.stringify(patterns)}\n`, "/x/c.yaml")
    .jobs[0];
  assert.deepEqual(job.file_patterns, patterns);
  // So is a list given with --set without its brackets.
  assert.throws(
    () =>
      quickStartConfig({ watch: "/data/in", to: "/data/out", set: ["file_patterns=*.fits,*.fz"] }),
    /--set\): --set file_patterns=…: pattern "\*\.fits,\*\.fz" is several patterns .* \["\*\.fits", "\*\.fz"\]$/,
  );
});

Deno.test("a hook or scheduled command written as one line of text is answered with the list to write", () => {
  const error = configError(
    `${MINIMAL}on_transfer: /usr/local/bin/reduce --quick\non_failure: notify-observer\n` +
      `schedules:\n  - { cron: "0 8 * * *", action: command, command: "/bin/reduce-night -v" }\n`,
  );
  assert.deepEqual(error.message.split("\n"), [
    '/etc/it/config.yaml:4: on_transfer: expected a list (one "- item" per line), got ' +
    '"/usr/local/bin/reduce --quick"; a program and its arguments are a list, run without a ' +
    "shell: write [/usr/local/bin/reduce, --quick]",
    '/etc/it/config.yaml:5: on_failure: expected a list (one "- item" per line), got ' +
    '"notify-observer"; a program and its arguments are a list, run without a shell: write ' +
    "[notify-observer]",
    '/etc/it/config.yaml:7: schedules[0].command: expected a list (one "- item" per line), got ' +
    '"/bin/reduce-night -v"; a program and its arguments are a list, run without a shell: write ' +
    "[/bin/reduce-night, -v]",
  ]);
});

Deno.test("rsync_options that remove files, send nothing, leave files behind or move them are refused", () => {
  const options = [
    "--archive",
    "--bwlimit",
    "-n", // the value of --bwlimit, not --dry-run
    "--remove-source-files",
    "--existing",
    "-avn",
    "--exclude=*.fits",
    "--max-size=1G",
    "-f",
    "- *.fits", // the value of -f
    "-aF",
    "--files-from=list",
    "-aR",
    "--chmod=F640",
  ];
  const error = configError(
    `${MINIMAL}transfer_method: rsync\nrsync_options:\n${
      options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")
    }`,
  );
  const refused = error.message.split("\n").map((line) =>
    /rsync_options\[(\d+)\]: (\S+) (removes|sends nothing|leaves files|changes which)/.exec(line)
      ?.slice(1, 4).join(" ")
  );
  assert.deepEqual(refused, [
    "3 --remove-source-files removes",
    "4 --existing sends nothing",
    "5 -avn sends nothing",
    "6 --exclude=*.fits leaves files",
    "7 --max-size=1G leaves files",
    "8 -f leaves files",
    "10 -aF leaves files",
    "11 --files-from=list changes which",
    "12 -aR changes which",
  ], error.message);
});

Deno.test("rsync_options --delete is refused for what it removes, files at the destination; --remove-source-files for sources", () => {
  const error = configError(
    `${MINIMAL}transfer_method: rsync\nrsync_options: [--delete, --delete-after, --remove-source-files]\n`,
  );
  const [deletes, after, source] = error.message.split("\n");
  // Before: "a source leaves only by after_transfer", though --delete leaves sources alone.
  for (const [line, option] of [[deletes, "--delete"], [after, "--delete-after"]]) {
    assert.match(
      line,
      new RegExp(
        `rsync_options\\[\\d\\]: ${option} removes files at the destination that are not among ` +
          "those sent .*; remove it$",
      ),
    );
    assert.ok(!line.includes("after_transfer"), line);
  }
  assert.match(
    source,
    /--remove-source-files removes files; a source leaves only by after_transfer/,
  );
});

Deno.test("rsync_options that skip rsync's whole-file checksum (--append, --checksum-choice=none) are refused", () => {
  const options = [
    "--append-verify",
    "--append",
    "--checksum-choice=xxh64",
    "--checksum-choice=none",
    "--cc",
    "None,md5",
    "--cc",
    "-n", // the value of --cc, not --dry-run
  ];
  const error = configError(
    `${MINIMAL}transfer_method: rsync\nrsync_options:\n${
      options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")
    }`,
  );
  const refused = error.message.split("\n").map((line) =>
    /rsync_options\[(\d+)\]: \S+ skips rsync's whole-file checksum, which verifies each rsync arrival/
      .exec(line)?.[1]
  );
  assert.deepEqual(refused, ["1", "3", "4"], error.message);
  assert.match(
    error.message,
    /image-transfer continues copies itself, with --append-verify; remove it/,
  );
});

Deno.test("ssh_options RemoteCommand and RequestTTY=force, which break every session, are refused", () => {
  const options = [
    "Compression=yes",
    "RemoteCommand=ls",
    "RemoteCommand=none",
    "RequestTTY=force",
    "requesttty=no",
    "RequestTTY=yes", // a terminal only when ssh's input is one, which the daemon's never is
  ];
  const error = configError(
    `${MINIMAL}ssh_options:\n${options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")}`,
  );
  const refused = error.message.split("\n").map((line) =>
    /ssh_options\[(\d+)\]: \S+ (runs a command of its own|gives each session a terminal)/.exec(line)
      ?.[1]
  );
  assert.deepEqual(refused, ["1", "3"], error.message);
  assert.match(
    error.message,
    /:6: ssh_options\[1\]: RemoteCommand=ls runs a command of its own on the server instead of image-transfer's \(every transfer would fail\); remove it/,
  );
});

Deno.test("ssh_options ControlMaster, ControlPath and ControlPersist, the daemon's own shared connection, are refused", () => {
  const options = [
    "Compression=yes",
    "ControlMaster=yes",
    "controlpath=/tmp/cm-%C",
    "ControlPersist=600",
    "ControlMaster=no",
    "ControlMaster yes",
  ];
  const error = configError(
    `${MINIMAL}ssh_options:\n${options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")}`,
  );
  const refused = error.message.split("\n").map((line) =>
    /ssh_options\[(\d+)\]: .+?: image-transfer keeps its own shared connection/.exec(line)?.[1]
  ).filter((index) => index !== undefined);
  assert.deepEqual(refused, ["1", "2", "3", "4", "5"], error.message);
  assert.match(
    error.message,
    /:6: ssh_options\[1\]: ControlMaster=yes: image-transfer keeps its own shared connection per destination \(ControlMaster, ControlPath and ControlPersist are its own\), opened and closed with the job; one set here would be left running after a stop, or clash with it; remove it/,
  );
});

Deno.test("ssh_options that put ssh in the background or take its input away are refused", () => {
  const options = [
    "ForkAfterAuthentication=yes",
    "ForkAfterAuthentication=no",
    "StdinNull=yes",
    "stdinnull=no",
    "StdinNull yes",
  ];
  const error = configError(
    `${MINIMAL}ssh_options:\n${options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")}`,
  );
  const refused = error.message.split("\n").map((line) =>
    /ssh_options\[(\d+)\]: .*; remove it/.exec(line)?.[1]
  ).filter((index) => index !== undefined);
  assert.deepEqual(refused, ["0", "2", "4"], error.message);
  assert.match(
    error.message,
    /:5: ssh_options\[0\]: ForkAfterAuthentication=yes puts ssh in the background once logged in: image-transfer could not wait for its calls, and they would be left running after a stop; remove it/,
  );
  assert.match(
    error.message,
    /:7: ssh_options\[2\]: StdinNull=yes takes away ssh's standard input, which carries image-transfer's scripts and copies \(every transfer would fail\); remove it/,
  );
});

Deno.test("rsync_options that replace the ssh command (-e, --rsh) are refused, naming ssh_port and ssh_options", () => {
  const options = [
    "-e",
    "ssh -p 2222", // the value of -e
    "-e ssh -p 2222",
    "--rsh=ssh -o StrictHostKeyChecking=no",
    "-avze",
    "ssh",
    "--bwlimit",
    "-e", // the value of --bwlimit, not -e
    "-B1024",
    "--rsync-path=sudo rsync",
  ];
  const error = configError(
    `${MINIMAL}transfer_method: rsync\nrsync_options:\n${
      options.map((o) => `  - ${JSON.stringify(o)}\n`).join("")
    }`,
  );
  const refused = error.message.split("\n").map((line) =>
    /rsync_options\[(\d+)\]: .* replaces the ssh command image-transfer runs/.exec(line)?.[1]
  );
  assert.deepEqual(refused, ["0", "2", "3", "4"], error.message);
  assert.match(error.message, /give the port in ssh_port and other SSH options in ssh_options/);
});

Deno.test("several rsync or ssh options written as one list item are refused, naming each as an item of the list to write; an option whose value holds blanks is taken", () => {
  const error = configError(
    `${MINIMAL}transfer_method: rsync\nrsync_options:\n  - "--bwlimit=1000 --partial"\n` +
      '  - "--rsync-path=sudo -n rsync"\n  - --out-format\n  - "%n -%b"\n' +
      'ssh_options: ["ServerAliveInterval=30 Compression=yes", "SetEnv=A=1 B=2", ' +
      '"ProxyCommand=ssh -o ConnectTimeout=5 -W %h:%p jump"]\n',
    "c.yaml",
  );
  // Before: taken, and every rsync call failed on an unknown option "--bwlimit=1000 --partial".
  assert.equal(
    error.message,
    [
      'c.yaml:6: rsync_options[0]: "--bwlimit=1000 --partial" is several rsync options written ' +
      "as one (each item goes to rsync as one argument, so every transfer would fail); write " +
      'each as an item of the list: ["--bwlimit=1000", "--partial"]',
      'c.yaml:10: ssh_options[0]: "ServerAliveInterval=30 Compression=yes" is several ssh ' +
      "options written as one (each item goes to ssh as one argument, so every transfer would " +
      'fail); write each as an item of the list: ["ServerAliveInterval=30", "Compression=yes"]',
    ].join("\n"),
  );
  assert.match(
    configError(`${MINIMAL}transfer_method: rsync\nrsync_options: ["-v --partial"]\n`).message,
    /:5: rsync_options\[0\]: "-v --partial" is several rsync options .*\["-v", "--partial"\]$/,
  );
});

Deno.test("a merge key (<<) given something that is not a mapping is refused with its line", () => {
  const scalar = configError(`x-a: &a hello\n${MINIMAL}<<: *a\n`);
  assert.match(
    scalar.message,
    /^\/etc\/it\/config\.yaml:5: "<<" merges the keys of a mapping into this one, but here it is given \*a, which stands for the value hello; give it an anchored mapping/,
  );
  const inList = configError(`x-d: &d {remote_host: h}\n${MINIMAL}jobs:\n  - <<: [*d, 3]\n`);
  assert.match(inList.message, /:6: "<<" .* given the value 3;/);
  // An anchor that does not exist is said as such, not as a merge problem.
  const missing = configError(`${MINIMAL}jobs:\n  - <<: *nope\n`);
  assert.match(missing.message, /:5: YAML alias \*nope refers to no anchor/);
});

Deno.test("a config file that is not UTF-8 (Latin-1), or not text at all, is refused with what to do", async () => {
  await withTempDir(async (dir) => {
    const latin1 = join(dir, "latin1.yaml");
    await Deno.writeFile(
      latin1,
      new Uint8Array([...new TextEncoder().encode(MINIMAL), ...[
        0x23,
        0x20,
        0x63,
        0x61,
        0x66,
        0xe9,
      ]]),
    );
    await Deno.chmod(latin1, 0o600);
    await assert.rejects(
      loadConfig(latin1),
      (error: Error) =>
        error instanceof ConfigError &&
        /latin1\.yaml:4: the file is not UTF-8 text; save it as UTF-8/.test(error.message),
    );
    const binary = join(dir, "binary.yaml");
    await Deno.writeFile(binary, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0xff, 0xfe]));
    await Deno.chmod(binary, 0o600);
    await assert.rejects(
      loadConfig(binary),
      (error: Error) => /binary\.yaml: not a text file \(it holds NUL bytes\)/.test(error.message),
    );
  });
});

Deno.test('a config saved as UTF-16 (Notepad\'s "Unicode"), with or without its byte order mark, is refused saying so, not as a file that is not text', async () => {
  await withTempDir(async (dir) => {
    const utf16 = (text: string, bigEndian: boolean) =>
      new Uint8Array([...text].flatMap((c) => {
        const code = c.charCodeAt(0);
        return bigEndian ? [code >> 8, code & 0xff] : [code & 0xff, code >> 8];
      }));
    const cases: Array<[string, Uint8Array]> = [
      ["le-bom.yaml", new Uint8Array([0xff, 0xfe, ...utf16(MINIMAL, false)])],
      ["be-bom.yaml", new Uint8Array([0xfe, 0xff, ...utf16(MINIMAL, true)])],
      ["le.yaml", utf16(MINIMAL, false)],
    ];
    for (const [name, bytes] of cases) {
      const file = join(dir, name);
      await Deno.writeFile(file, bytes, { mode: 0o600 });
      await assert.rejects(
        loadConfig(file),
        (error: Error) =>
          error instanceof ConfigError &&
          new RegExp(`${name}: the file is UTF-16 text .*save it as UTF-8`).test(error.message),
        name,
      );
    }
  });
});

Deno.test("a glob pattern written as an absolute path is refused, naming its line", () => {
  const error = configError(
    `${MINIMAL}file_patterns: ["/data/in/*.fits", "raw/*.fits"]\nexclude_patterns: ['C:\\data\\x*']\n`,
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 2, error.message);
  assert.match(
    lines[0],
    /:4: file_patterns\[0\]: pattern "\/data\/in\/\*\.fits" is an absolute path, .* matches nothing; write "\*\.fits"/,
  );
  assert.match(
    lines[1],
    /:5: exclude_patterns\[0\]: pattern "C:\\data\\x\*" is an absolute path/,
  );
  // A folder written from the top, as in .gitignore: the pattern that names it.
  assert.match(
    configError(`${MINIMAL}exclude_patterns: ["/calib/"]\n`).message,
    /:4: exclude_patterns\[0\]: pattern "\/calib\/" is an absolute path, .* write "calib\/" \(every folder of that name\)$/,
  );
});

Deno.test("a pattern of files ending in / is refused, naming its line; one of exclude_patterns names folders", () => {
  const error = configError(
    `${MINIMAL}file_patterns: ["*.fits", "raw/"]\nexclude_patterns: ["calib/"]\n` +
      `growing_patterns: ["logs/"]\n`,
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 2, error.message);
  assert.match(
    lines[0],
    /:4: file_patterns\[1\]: pattern "raw\/" ends with "\/", so it names folders and matches no file; write "raw\/\*\.fits" .* or put it in exclude_patterns/,
  );
  assert.match(lines[1], /:6: growing_patterns\[0\]: pattern "logs\/" ends with "\/"/);
});

Deno.test("a path with a variable or another user's home that would be taken literally is refused, naming its line", () => {
  const error = configError(
    "watch_path: ~observer/in\nremote_host: freya\nremote_base_path: $ARCHIVE_ROOT/images\n" +
      'state_dir: "/var/${STATE}/it"\nlog_file: $HOME/logs/it.log\n',
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 3, error.message);
  assert.match(
    lines[0],
    /:1: watch_path: ~observer \(another user's home\) is not expanded, .* write the full path, e\.g\. \/home\/observer\//,
  );
  assert.match(
    lines[1],
    /:3: remote_base_path: \$ARCHIVE_ROOT is not expanded: the server takes the path as written .* write the path in full/,
  );
  assert.match(lines[2], /:4: state_dir: \$\{STATE\} is not expanded here/);
  // Past a leading $HOME too, and $HOME where no separator follows it.
  for (const path of ["$HOME/$FOO/x", "${HOME}_data", "$HOME$FOO"]) {
    const later = configError(`${MINIMAL}state_dir: "${path}"\n`);
    assert.match(later.message, /:4: state_dir: \$\{?(FOO|HOME)\}? is not expanded here/, path);
  }
  assert.doesNotThrow(() => parseConfig(`${MINIMAL}state_dir: "\${HOME}/st"\n`, "/etc/c.yaml"));
  // root's home is not in /home.
  assert.match(
    configError(`${MINIMAL}state_dir: ~root/st\n`).message,
    /:4: state_dir: ~root \(another user's home\) is not expanded, .* e\.g\. \/root\/…$/,
  );
  // The shell's ~+ and ~- are folders of the shell, not homes.
  assert.match(
    configError(`${MINIMAL}state_dir: ~+/st\n`).message,
    /:4: state_dir: ~\+ \(the shell's current folder\) is not expanded, .* write the full path$/,
  );
});

Deno.test("a variable in an scp, rsync or ftp remote_base_path ($HOME/x, ${DATA}) is refused: the server takes it as written", () => {
  const said = (method: string, path: string) =>
    configError(
      `watch_path: /data/in\ntransfer_method: ${method}\nremote_host: archive\n` +
        `remote_base_path: "${path}"\n`,
      "c.yaml",
    ).message;
  // Before: accepted, and the files went into a folder named "$HOME" on the server.
  assert.equal(
    said("scp", "$HOME/x"),
    "c.yaml:4: remote_base_path: $HOME is not expanded: the server takes the path as written and " +
      'would make a folder named "$HOME" there; write the path in full (e.g. /data/incoming), or ' +
      "~/x (~ is the login's home folder there)",
  );
  assert.match(said("rsync", "${HOME}"), /:4: remote_base_path: \$\{HOME\} is not .*, or ~ \(~ is/);
  assert.match(
    said("ftp", "$HOME/in"),
    /:4: remote_base_path: \$HOME is not expanded: .*, or in \(a relative path starts in the login's folder; FTP servers do not expand ~ either\)$/,
  );
  assert.match(
    said("rsync", "/srv/$DATA/in"),
    /:4: remote_base_path: \$DATA is not expanded: .*write the path in full \(e\.g\. \/data\/incoming\)$/,
  );
  // ~ is what scp and rsync do expand; a local destination expands a leading $HOME as any path.
  const job = (method: string, path: string) =>
    parseConfig(
      `watch_path: /data/in\ntransfer_method: ${method}\nremote_host: a\nremote_base_path: ${path}\n`,
      "c.yaml",
    ).jobs[0].remote_base_path;
  assert.equal(job("scp", "~/x"), "~/x");
  assert.equal(job("local", "$HOME/x"), join(homeDir(), "x"));
  assert.match(
    configError(`watch_path: /data/in\ntransfer_method: local\nremote_base_path: $DATA/x\n`)
      .message,
    /:3: remote_base_path: \$DATA is not expanded here .* or %DATA% to take it from the environment/,
  );
});

Deno.test('an empty value of a text key that is not a path says to write "" or leave the key out, not to write ~ for the home folder', () => {
  const error = configError(
    `${MINIMAL}remote_user:\nnight_timezone:\nstatus_listen:\nlog_file:\n`,
  );
  const lines = error.message.split("\n");
  assert.equal(lines.length, 4, error.message);
  for (const [line, key] of [[0, "remote_user"], [1, "night_timezone"], [2, "status_listen"]]) {
    assert.match(
      lines[line as number],
      new RegExp(
        `:${(line as number) + 4}: ${key}: expected text, got an empty value \\(write "" for an ` +
          `empty text, or leave the key out for its default\\)$`,
      ),
    );
  }
  // A path: where the home folder was meant.
  assert.match(lines[3], /:7: log_file: .*a bare ~ is YAML's empty value: for the home folder/);
});

Deno.test("a shell variable with a default or another form (${DATA:-/data}) is refused as $DATA is, not taken as a folder of that name", () => {
  const cases: Array<[string, RegExp]> = [
    ["${DATA:-/data}/cam", /\$\{DATA:-\/data\} is not expanded here .* or %DATA% to take it/],
    ["/srv/${CAM-north}/raw", /\$\{CAM-north\} is not expanded here .* or %CAM% to take it/],
    ["${HOME:-/root}/in", /\$\{HOME:-\/root\} is not expanded here .*write the folder itself/],
    ["/srv/${#X}", /\$\{#X\} is not expanded here/],
  ];
  for (const [path, expected] of cases) {
    const error = configError(`${MINIMAL}state_dir: "${path}"\n`);
    assert.match(error.message, new RegExp(`:4: state_dir: ${expected.source}`), path);
  }
});

Deno.test("verify_transfer: off never becomes none (no verification) through a %YAML directive: any but 1.2 is refused on its line", () => {
  const body = "watch_path: /data/in\nremote_host: freya\nremote_base_path: /data/out\n" +
    "verify_transfer: off\n";
  for (
    const [head, line] of [
      ["%YAML 1.1\n---\n", 1],
      ["%YAML 1.1\n", 1], // without its ---: said as the directive, not as a syntax error
      ["# the camera's config\n%YAML   1.1\n---\n", 2],
      ["%YAML 1.3\n---\n", 1],
      ["%YAML\n---\n", 1],
    ] as const
  ) {
    const message = configError(head + body, "c.yaml").message;
    assert.match(
      message,
      new RegExp(
        `^c\\.yaml:${line}: %YAML.* directive: the config file is read as YAML 1\\.2.*; remove this line$`,
      ),
      head,
    );
  }
  // 1.2 is what the file is read as: its values are checked as without the directive.
  assert.match(
    configError(`%YAML 1.2\n---\n${body}`, "c.yaml").message,
    /^c\.yaml:6: verify_transfer: expected true or false, or one of "none", "size", "checksum", got "off"/,
  );
});

Deno.test('several quoted values on one key\'s line ("*.fits", "*.FIT"): the YAML error says to write a list', () => {
  for (const value of ['"*.fits", "*.FIT"', "'*.fits' '*.FIT'", '["*.fits"] "*.FIT"']) {
    const error = configError(`${MINIMAL}file_patterns: ${value}\n`);
    assert.match(
      error.message,
      /:4: YAML syntax error: Unexpected .*scalar at node end \(a value ends with its closing quote or bracket, and only a # comment may follow it on its line; several values are a list: file_patterns: \["\*\.fits", "\*\.fit"\]\)$/,
    );
  }
});

Deno.test("a value starting with % or @ unquoted: the YAML error says to quote it", () => {
  const error = configError(`${MINIMAL}state_dir: %USERPROFILE%/state\n`);
  assert.match(
    error.message,
    /:4: YAML syntax error: Plain value cannot start with directive indicator character %.*put the value in quotes, e\.g\. '%USERPROFILE%\\data'/s,
  );
});

Deno.test("a Windows path in double quotes with an invalid escape (\\U of C:\\Users): the YAML error says to use single quotes", () => {
  const error = configError(`${MINIMAL}state_dir: "C:\\Users\\Zo\u00eb\\state"\n`);
  assert.match(
    error.message,
    /:4: YAML syntax error: Invalid escape sequence .*write a Windows path in single quotes \('C:\\Users\\obs\\data'\) or with forward slashes \(C:\/Users\/obs\/data\)/s,
  );
});

Deno.test("a remote_host that is a URL or holds a port, a user or a path is refused with the keys to write instead", () => {
  const config = (method: string, host: string) =>
    [
      "watch_path: /data/camera",
      "remote_base_path: /data/incoming",
      `transfer_method: ${method}`,
      "remote_user: obs",
      "ftp_password_env: OBS_FTP_PASSWORD",
      `remote_host: ${JSON.stringify(host)}`,
      "",
    ].join("\n");
  const cases: Array<[string, string, RegExp]> = [
    [
      "ftp",
      "ftp://127.0.0.1:19110",
      /config\.yaml:6: remote_host: expected the host name only, not a URL; write remote_host: 127\.0\.0\.1, ftp_port: 19110$/m,
    ],
    [
      "ftp",
      "ftps://obs@archive.example.org/data/in",
      /remote_host: expected the host name only, not a URL; write remote_host: archive\.example\.org, remote_user: obs, remote_base_path: \/data\/in$/m,
    ],
    [
      "scp",
      "ssh://archive.example.org:2222",
      /remote_host: expected the host name only, not a URL; write remote_host: archive\.example\.org, ssh_port: 2222$/m,
    ],
    [
      "rsync",
      "rsync://archive.example.org",
      /remote_host: expected the host name only, not a URL; write remote_host: archive\.example\.org$/m,
    ],
    [
      "ftp",
      "archive.example.org:2121",
      /remote_host: expected the host name only, without the port; write remote_host: archive\.example\.org, ftp_port: 2121$/m,
    ],
    [
      "scp",
      "[::1]:2222",
      /remote_host: expected the host name only, without the port; write remote_host: ::1, ssh_port: 2222$/m,
    ],
    [
      "ftp",
      "obs@archive.example.org",
      /remote_host: expected the host name only; the user goes in remote_user \(remote_host: archive\.example\.org\)$/m,
    ],
    // A login and a port: both moved out, not a host with its user left in (refused in turn).
    [
      "scp",
      "obs@archive.example.org:2222",
      /remote_host: expected the host name only, without the port; write remote_host: archive\.example\.org, remote_user: obs, ssh_port: 2222$/m,
    ],
    [
      "ftp",
      "obs@[::1]:2121",
      /remote_host: expected the host name only, without the port; write remote_host: ::1, remote_user: obs, ftp_port: 2121$/m,
    ],
    ["ftp", "archive/data", /remote_host: expected a host name or address/],
    [
      "ftp",
      "ftp://o%ZZ@archive.example.org/runs/100%",
      /config\.yaml:6: remote_host: expected the host name only, not a URL; write remote_host: archive\.example\.org, remote_user: o%ZZ, remote_base_path: \/runs\/100%$/m,
    ],
  ];
  for (const [method, host, expected] of cases) {
    const error = configError(config(method, host));
    assert.match(error.message, expected, `${method} ${host}: ${error.message}`);
  }
  // Plain hosts and addresses, IPv6 ones too, load for every method.
  for (const method of ["ftp", "scp", "rsync"]) {
    for (const host of ["archive.example.org", "127.0.0.1", "::1", "fe80::1"]) {
      assert.equal(parseConfig(config(method, host), "/c.yaml").jobs[0].remote_host, host);
    }
  }
});

Deno.test("without a home folder, a path in it is a config problem naming its key (exit 2), not a crash", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "config.yaml");
    // `config validate` with no HOME: in a process of its own, as the environment is the whole
    // test process's (other test files run in it too).
    const validate = async (lines: string[]) => {
      await Deno.writeTextFile(file, lines.join("\n") + "\n");
      const argv = cliArgv(["config", "validate", "-c", file]);
      return await runProgram("env", ["-u", "HOME", "-u", "USERPROFILE", Deno.execPath(), ...argv]);
    };
    const destination = ["remote_host: archive", "remote_base_path: /in"];
    let out = await validate(["watch_path: /data", ...destination]);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      out.stderr.split("\n")[0],
      `error: ${file}: state_dir and log_file default to the home folder, which ` +
        "cannot be found (neither HOME nor USERPROFILE is set): set HOME, or write state_dir and " +
        'log_file as absolute paths (or log_file: "" for no log file)',
    );
    out = await validate([
      "state_dir: /var/lib/x",
      'log_file: ""',
      "watch_path: ~/data",
      ...destination,
    ]);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      out.stderr.split("\n")[0],
      `error: ${file}: watch_path of job default: "~/data" is in the home ` +
        "folder, which cannot be found (neither HOME nor USERPROFILE is set): write " +
        "watch_path as an absolute path",
    );
    out = await validate([
      "state_dir: /var/lib/x",
      'log_file: ""',
      "watch_path: /data",
      ...destination,
    ]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /default: \/data -> archive:\/in \(scp\)/);
  });
});

Deno.test("a config path that is not UTF-8 is said to be so, not missing, and init writes no file under another name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-config-utf8-" });
  try {
    // What the runtime makes of `-c $'c\xe9.yaml'`: U+FFFD for the byte that is not UTF-8.
    const undecodable = join(dir, "c\uFFFD.yaml");
    await assert.rejects(loadConfig(undecodable), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      // Before: "it does not exist; create it with `image-transfer -c … init`", a file of another name.
      assert.match(error.message, /its path is not valid UTF-8 .*rename the file or folder/);
      assert.doesNotMatch(error.message, /create it/);
      return true;
    });
    await assert.rejects(loadConfig(join(dir, "c.yaml")), /it does not exist; create it with/);
    await assert.rejects(
      prepareConfigFile(join(dir, "new \uFFFD", "config.yaml"), "-c"),
      /Cannot write config .*: its path is not valid UTF-8 .*give a UTF-8 name/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a folder whose real name holds $NAME is taken as written where it exists, and refused where it does not", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-dollar-" });
  try {
    const named = join(dir, "watch $x");
    await Deno.mkdir(named);
    // Before, refused with no way to name it: "$x is not expanded here".
    const config = parseConfig(
      `watch_path: '${named}'\ntransfer_method: local\nremote_base_path: '${dir}/to'\n`,
      join(dir, "c.yaml"),
    );
    assert.equal(config.jobs[0].watch_path, named);
    // One not made yet is still taken for a variable meant to be expanded.
    assert.match(
      configError(`watch_path: '${dir}/gone $x'\ntransfer_method: local\nremote_base_path: /d\n`)
        .message,
      /:1: watch_path: \$x is not expanded here/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a number in quotes, or with the unit its key's name says, is told how to write it", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  assert.equal(
    said('retry_attempts: "5"\n'),
    'c.yaml:4: retry_attempts: expected a whole number from 0 to 1000, got "5" (write it ' +
      "without quotes: retry_attempts: 5)",
  );
  assert.equal(
    said("jobs:\n  - ssh_port: '2222'\n"),
    "c.yaml:5: jobs[0].ssh_port: expected a whole number from 1 to 65535, or an empty value, " +
      'got "2222" (write it without quotes: ssh_port: 2222)',
  );
  assert.equal(
    said("stability_window_seconds: 3s\n"),
    'c.yaml:4: stability_window_seconds: expected a number from 0 to 3600, got "3s" (the ' +
      "key's name says the unit: stability_window_seconds: 3)",
  );
  assert.equal(
    said("keep_days: 30 days\n"),
    'c.yaml:4: keep_days: expected a number from 0 to 36500, got "30 days" (the key\'s name ' +
      "says the unit: keep_days: 30)",
  );
  // Another unit than the key's is not turned into a number of the wrong unit.
  assert.equal(
    said("retry_delay_seconds: 5min\n"),
    'c.yaml:4: retry_delay_seconds: expected a number from 0 to 86400, got "5min" (a number ' +
      "alone, in seconds)",
  );
});

Deno.test("a line YAML cannot read says what it most likely got wrong: key = value, no space after the colon, a non-breaking space", () => {
  const said = (line: string) => configError(MINIMAL + line, "c.yaml").message;
  assert.match(
    said("jobs:\n  - name: cam\n    retry_attempts = 3\n    ssh_port: 22\n"),
    /^c\.yaml:6: YAML syntax error: .* \(write key: value, as YAML does, not retry_attempts = \.\.\.\)$/,
  );
  assert.match(
    said("jobs:\n  - name: cam\n    remote_base_path:/data/x\n    ssh_port: 22\n"),
    /^c\.yaml:6: YAML syntax error: .* \(put a space after the colon: remote_base_path: \.\.\.\)$/,
  );
  assert.match(
    said("jobs:\n  - name: cam\n    retry_attempts:\u00a03\n"),
    /^c\.yaml:6: YAML syntax error: .* \(the line holds a non-breaking space \(U\+00A0\), as text copied from a web page or a document does: type a plain space there instead\)$/,
  );
});

Deno.test("a // comment of JSON pasted into the config says that YAML comments start with #", () => {
  const message = configError('{\n  // the camera\n  "watch_path": "/data/in",\n}\n').message;
  assert.match(
    message,
    /:2: unknown key "\/\/ the camera "watch_path""; a comment starts with # in YAML: the \/\/ or \/\* comment and what follows it were read as one key/,
  );
});

Deno.test("an environment variable written in remote_host, remote_user or ftp_password_env says it is not read there, and what to write", () => {
  const said = (lines: string) =>
    configError(`watch_path: /data/in\nremote_base_path: /data/out\n${lines}`, "c.yaml").message;
  assert.equal(
    said("transfer_method: ftp\nremote_host: ${FTP_HOST}\nftp_password_env: $FTP_PASS\n"),
    [
      "c.yaml:4: remote_host: ${FTP_HOST} is not expanded here (only local paths expand " +
      "environment variables): write the host itself",
      "c.yaml:5: ftp_password_env: expected an environment variable name (letters, digits and " +
      "_), got something else (not shown: it may be the password itself); write the name of " +
      "the variable that holds it, without $ or braces, e.g. FTP_PASSWORD",
    ].join("\n"),
  );
  assert.equal(
    said("transfer_method: scp\nremote_host: archive\nremote_user: $USER\n"),
    "c.yaml:5: remote_user: $USER is not expanded here (only local paths expand environment " +
      "variables): write the login name itself",
  );
});

Deno.test("an FTP login with a $ in it (an Azure App Service FTP user, a service account) is taken as written, not as a variable", () => {
  const login = (user: string) =>
    parseConfig(
      "watch_path: /data/in\nremote_base_path: /site/wwwroot\ntransfer_method: ftp\n" +
        `remote_host: waws-prod.ftp.azurewebsites.windows.net\nremote_user: '${user}'\n` +
        "ftp_password_env: FTP_PASSWORD\n",
      "c.yaml",
    ).jobs[0].remote_user;
  // Before: "remote_user: $myapp is not expanded here ...": the login could not be written.
  assert.equal(login("myapp\\$myapp"), "myapp\\$myapp");
  assert.equal(login("svc$backup"), "svc$backup");
  // What can only be a variable is still refused.
  for (const [user, variable] of [["obs_${SITE}", "${SITE}"], ["%FTPUSER%", "%FTPUSER%"]]) {
    assert.throws(
      () => login(user),
      (e: Error) => e.message.includes(`${variable} is not expanded`),
    );
  }
});

Deno.test("a key indented with a tab is named in the message, with what to do", () => {
  const message = configError(MINIMAL + "jobs:\n  - name: cam\n\tretry_attempts: 3\n", "c.yaml")
    .message;
  assert.match(
    message,
    /^c\.yaml:6: YAML syntax error: Tabs are not allowed as indentation \(indent retry_attempts with spaces, not a tab\)/,
  );
});
