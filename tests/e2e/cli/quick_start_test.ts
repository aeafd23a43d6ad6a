/**
 * A first run without a config file (`run --watch DIR --to DEST`): how DEST
 * is read, and real config-free runs through the CLI (local folder, FTP,
 * FTPS, rsync over SSH) that deliver files, with `--save-config`.
 */
import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import {
  checkQuickStart,
  destinationKeys,
  quickStartConfig,
} from "../../../src/cli/quick_start.ts";
import { ConfigError, UsageError } from "../../../src/errors.ts";
import { REPO_ROOT, runCli, runTask, startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { startSshd, type TestSshd } from "../../helpers/sshd.ts";
import { startVsftpd } from "../../helpers/vsftpd.ts";

const FITS_DIR = new URL("../../fixtures/fits/", import.meta.url).pathname;

/** The `--set`s that point a quick run at the test server `sshd` (port, key, host key). */
function loginSets(sshd: TestSshd): string[] {
  return [
    "--set",
    `ssh_port=${sshd.port}`,
    "--set",
    `ssh_identity_file=${sshd.identityFile}`,
    "--set",
    `ssh_options=${JSON.stringify(sshd.sshOptions)}`,
  ];
}

Deno.test("--to: SSH, FTP and local destinations give the keys they stand for", () => {
  assert.deepEqual(destinationKeys("obs@freya:/data/in"), {
    transfer_method: "scp",
    remote_host: "freya",
    remote_user: "obs",
    remote_base_path: "/data/in",
  });
  assert.deepEqual(destinationKeys("freya:incoming", "rsync"), {
    transfer_method: "rsync",
    remote_host: "freya",
    remote_base_path: "incoming",
  });
  assert.deepEqual(destinationKeys("ftps://obs@archive.example.org:2121/up%20load"), {
    transfer_method: "ftp",
    remote_host: "archive.example.org",
    remote_user: "obs",
    remote_base_path: "/up load",
    ftp_tls: "required",
    ftp_port: 2121,
  });
  assert.deepEqual(destinationKeys("ftp://archive/"), {
    transfer_method: "ftp",
    remote_host: "archive",
    remote_base_path: "/",
    ftp_tls: "off",
  });
  assert.deepEqual(destinationKeys("/mnt/archive"), {
    transfer_method: "local",
    remote_base_path: "/mnt/archive",
  });
  assert.throws(() => destinationKeys("ftp://obs:secret@archive/x"), UsageError);
  // A % that starts no %XX escape is a usage error naming the option, not "URI malformed".
  for (const to of ["ftp://archive/runs/100%", "ftps://o%ZZ@archive/x"]) {
    assert.throws(
      () => destinationKeys(to),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message === `--to ${to}: a "%" that starts no %XX escape; write a % of the user ` +
            "or the folder as %25",
      to,
    );
  }
  assert.throws(() => destinationKeys("ftp://archive/x", "rsync"), /does not fit/);
  assert.throws(() => destinationKeys("/mnt/archive", "scp"), /needs a remote --to/);
  // Addresses it does not understand are refused, never read as a host or a folder.
  assert.throws(
    () => destinationKeys("sftp://obs@archive:2222/data/in"),
    /sftp:\/\/ addresses are not understood.*here: --to obs@archive:\/data\/in --set ssh_port=2222/,
  );
  for (const to of ["ssh://archive/x", "rsync://archive/x", "https://archive/x", "file:///x"]) {
    assert.throws(() => destinationKeys(to), /addresses are not understood/, to);
  }
  assert.throws(() => destinationKeys("obs@archive"), /a login without a path.*\.\/obs@archive/);
  // A colon or a slash missing: refused, never a local folder or a host named "ftp".
  assert.throws(
    () => destinationKeys("obs@archive/data/in"),
    /without ":" before the path; .*write obs@archive:\/data\/in, for a local folder .*\.\/obs@archive\/data\/in/,
  );
  for (const to of ["ftp:/archive/x", "ftps:/archive/x", "sftp:/archive/x"]) {
    assert.throws(() => destinationKeys(to), /an address takes two slashes/, to);
  }
  assert.equal(destinationKeys("obs@ftp:/in").remote_host, "ftp");
  assert.deepEqual(destinationKeys("./obs@archive"), {
    transfer_method: "local",
    remote_base_path: resolve("obs@archive"),
  });
});

Deno.test("--to h:/x is the host h off Windows, as scp reads it; on Windows C:/x, C:\\x and C:x are a drive's folders", async () => {
  for (const os of ["linux", "darwin"]) {
    // Before: refused on Linux and macOS as a Windows path (drive H:), h:x taken for a local folder.
    assert.deepEqual(destinationKeys("h:/x", undefined, os), {
      transfer_method: "scp",
      remote_host: "h",
      remote_base_path: "/x",
    });
    assert.deepEqual(destinationKeys("h:x", "rsync", os), {
      transfer_method: "rsync",
      remote_host: "h",
      remote_base_path: "x",
    });
    assert.throws(() => destinationKeys("h:", undefined, os), /has no folder after the colon/);
    // A backslash is no scp path: a Windows folder, refused there as before.
    assert.throws(() => destinationKeys("D:\\archive", undefined, os), /is a Windows path/);
  }
  for (const to of ["C:/x", "C:\\x", "C:x"]) {
    assert.equal(destinationKeys(to, undefined, "windows").transfer_method, "local", to);
  }
  assert.throws(() => destinationKeys("C:/x", "scp", "windows"), /needs a remote --to/);
  // On Windows a host of one letter takes its login; longer hosts are hosts everywhere.
  assert.equal(destinationKeys("obs@h:/x", undefined, "windows").remote_host, "h");
  assert.equal(destinationKeys("archive:/in", undefined, "windows").remote_host, "archive");
  if (Deno.build.os === "windows") return;
  // Through the CLI: the files are planned for the host h, not refused as a Windows folder.
  await using q = await quickSandbox();
  const out = await runCli(["run", "--dry-run", "--watch", q.watch, "--to", "h:/x"], {
    env: q.env,
  });
  // The host h cannot be asked what it holds: the files are listed as planned, and it says so.
  assert.equal(out.code, 1, out.stderr);
  assert.match(out.stderr, /The dry run could not ask the destination what it holds/);
  assert.match(out.stdout, /would transfer .*cmos_iso_2024\.fits -> h:\/x\/20240701\/sub\//);
  assert.match(out.stdout, /3 file\(s\) would be transferred \(scp\)/);
});

Deno.test("--watch, --to and --set: empty values, Windows folders off Windows and keys of --watch or --to are refused", async () => {
  assert.deepEqual(destinationKeys("o@h:/data"), {
    transfer_method: "scp",
    remote_host: "h",
    remote_user: "o",
    remote_base_path: "/data",
  });
  assert.equal(destinationKeys("obs@[::1]:/in").remote_host, "::1");
  for (const to of ["@:", "@archive:/in", "obs@:/in", ":/in"]) {
    assert.throws(() => destinationKeys(to), /not a destination; a remote one is user@host/, to);
  }
  for (const to of ["archive:", "obs@archive:"]) {
    assert.throws(
      () => destinationKeys(to),
      new RegExp(`--to ${to} has no folder after the colon.*\\(${to}/data/incoming, or ${to}\\. `),
      to,
    );
  }
  assert.equal(destinationKeys("obs@archive:.").remote_base_path, ".");
  assert.throws(() => destinationKeys("archive: "), /has no folder after the colon/);
  assert.throws(() => destinationKeys("ftp:///in"), /--to ftp:\/\/\/in has no host/);
  assert.throws(
    () => destinationKeys("ftps://obs@archive:2121"),
    /has no folder; give the folder on the server \(ftps:\/\/obs@archive:2121\/incoming, or/,
  );
  assert.throws(() => destinationKeys("archive::module/in"), /rsync's own daemon protocol/);
  assert.throws(() => destinationKeys("archive:/in", "sftp"), /--method sftp is not a method/);
  assert.throws(() => destinationKeys("/x", "ftp"), /--method ftp needs an FTP --to: ftp:/);
  const quick = (watch: string, to: string, set: string[] = []) => () =>
    quickStartConfig({ watch, to, set });
  assert.throws(quick("", "/mnt/archive"), /--watch is empty/);
  assert.throws(quick("/data/camera", " "), /--to is empty/);
  // Else each would be the current folder ("… is a folder, not a file").
  assert.throws(
    () =>
      quickStartConfig({ watch: "/data/camera", to: "ftp://obs@archive/in", ftpPasswordFile: "" }),
    /^UsageError: --ftp-password-file is empty: give it a file$/,
  );
  assert.throws(
    () => quickStartConfig({ watch: "/data/camera", to: "/mnt/archive", saveConfig: " " }),
    /^UsageError: --save-config is empty: give it a file$/,
  );
  if (Deno.build.os !== "windows") {
    assert.throws(quick("C:/data", "/mnt/archive"), /--watch: "C:\/data" is a Windows path/);
    assert.throws(quick("/data/camera", "D:\\archive"), /--to: "D:\\archive" is a Windows path/);
    assert.throws(quick("/data/camera", "\\\\nas\\archive"), /--to: .* is a Windows network path/);
    await assert.rejects(
      checkQuickStart(quick("/data/camera", "/mnt/archive", ["state_dir=\\\\nas\\state"])().config),
      /--set state_dir=…: .* is a Windows network path, .*mount the share/,
    );
  }
  assert.throws(
    quick("/data/camera", "/mnt/archive", ["watch_path=/etc"]),
    /would overrule --watch/,
  );
  assert.throws(
    quick("/data/camera", "obs@archive:/in", ["remote_host=other"]),
    /--set remote_host=… would overrule --to/,
  );
  // Each names how the options give it: plain FTP is the ftp:// address, not an scp one.
  assert.throws(
    quick("/data/camera", "ftp://obs@archive:2121/in", ["ftp_tls=off"]),
    /--set ftp_tls=… would overrule --to: give it there \(--to ftp:\/\/user@host\/path is plain FTP, ftps:\/\/user@host\/path FTPS\)/,
  );
  assert.throws(
    quick("/data/camera", "ftps://obs@archive:990/in", ["ftp_port=2121"]),
    /give it there \(--to ftp:\/\/user@host:PORT\/path\)/,
  );
  assert.throws(
    quick("/data/camera", "ftp://obs@archive/in", ["remote_user=other"]),
    /give it there \(--to ftp:\/\/user@host\/path, or ftps:\/\/\)/,
  );
  assert.throws(
    quick("/data/camera", "obs@archive:/in", ["transfer_method=rsync"]),
    /give it there \(--method scp or --method rsync with --to user@host:\/path;/,
  );
  // Keys --to did not set stay free.
  const { config } = quickStartConfig({
    watch: "/data/camera",
    to: "archive:/in",
    set: ["remote_user=obs"],
  });
  assert.equal(config.jobs[0].remote_user, "obs");
});

Deno.test("a --set of a key the method of --to does not use is refused, as it would do nothing (run and doctor)", async () => {
  await using q = await quickSandbox();
  for (
    const [to, set, method] of [
      [join(q.root, "out"), 'ssh_options=["Port=2222"]', "local"],
      ["ftp://archive.invalid/in", "ssh_port=2121", "ftp"],
      ["obs@archive.invalid:/in", "rsync_options=[--bwlimit=100]", "scp"],
    ]
  ) {
    for (const command of [["run", "--dry-run"], ["doctor"]]) {
      const out = await runCli([...command, "--watch", q.watch, "--to", to, "--set", set], {
        env: q.env,
      });
      // Before: taken without a word, and ignored.
      assert.equal(out.code, 2, out.stdout + out.stderr);
      const key = set.slice(0, set.indexOf("="));
      assert.match(
        out.stderr,
        new RegExp(
          `^error: --set ${key}=\u2026 would be ignored: only .* uses? it, and --to ${to} sends by ` +
            `${method}: (give --method rsync to send by rsync, or )?leave it out$`,
          "m",
        ),
      );
      assert.equal(out.stdout, "");
    }
  }
  // One that is empty says nothing, and one the method uses is taken.
  const empty = await runCli(
    [
      "run",
      "--dry-run",
      "--watch",
      q.watch,
      "--to",
      join(q.root, "out"),
      "--set",
      "ssh_options=[]",
    ],
    { env: q.env },
  );
  assert.equal(empty.code, 0, empty.stderr);
  assert.equal(
    quickStartConfig({ watch: q.watch, to: "o@h:/in", set: ["ssh_port=2222"] }).config.jobs[0]
      .ssh_port,
    2222,
  );
});

Deno.test("--set rsync_options with a user@host:/path --to says --method rsync, which takes it", () => {
  const set = ["rsync_options=[--bwlimit=100]"];
  for (const method of [undefined, "scp"]) {
    // Before: only "leave it out", as for a key no method of that --to uses.
    assert.throws(
      () => quickStartConfig({ watch: "/data/camera", to: "obs@archive:/in", method, set }),
      (error: Error) =>
        error instanceof UsageError && error.message.endsWith(
          "sends by scp: give --method rsync to send by rsync, or leave it out",
        ),
    );
  }
  // The advice, followed, is taken.
  const { config } = quickStartConfig({
    watch: "/data/camera",
    to: "obs@archive:/in",
    method: "rsync",
    set,
  });
  assert.equal(config.jobs[0].transfer_method, "rsync");
  assert.deepEqual(config.jobs[0].rsync_options, ["--bwlimit=100"]);
  // A local or FTP --to is no rsync destination: only "leave it out".
  for (const to of ["/mnt/archive", "ftp://archive/in"]) {
    assert.throws(
      () => quickStartConfig({ watch: "/data/camera", to, set }),
      /sends by (local|ftp): leave it out$/,
    );
  }
});

Deno.test("a --set value quoted as in the file is the text inside the quotes, as the messages' advice writes it", () => {
  const { config } = quickStartConfig({
    watch: "/data/camera",
    to: "/mnt/archive",
    set: [
      'bandwidth_limit="10MB/s"',
      'status_listen=""',
      'log_file=""',
      "night_timezone='America/Santiago'",
    ],
  });
  // Before: taken with their quotes, so "10MB/s" was not a bandwidth, "" not off, and the log
  // file named `""` in the current folder.
  assert.equal(config.jobs[0].bandwidth_limit, "10MB/s");
  assert.equal(config.status_listen, "");
  assert.equal(config.log_file, "");
  assert.equal(config.jobs[0].night_timezone, "America/Santiago");
  // Unquoted text, numbers and lists read as before; a quote inside is the text as typed.
  const plain = quickStartConfig({
    watch: "/data/camera",
    to: "/mnt/archive",
    set: ["night_timezone=UTC", "retry_attempts=5", "file_patterns=[*.fit, *.fts]"],
  }).config.jobs[0];
  assert.deepEqual([plain.night_timezone, plain.retry_attempts, plain.file_patterns], [
    "UTC",
    5,
    ["*.fit", "*.fts"],
  ]);
  assert.throws(
    () =>
      quickStartConfig({ watch: "/data/camera", to: "/mnt/archive", set: ['log_format="a" "b"'] }),
    /--set log_format=…: .*"\\"a\\" \\"b\\""/,
  );
});

Deno.test("a --set list whose items are quoted as in the file holds the text inside the quotes", () => {
  const job = quickStartConfig({
    watch: "/data/camera",
    to: "/mnt/archive",
    set: [`exclude_patterns=['tmp/**', "a b/*"]`, "file_patterns=['*.fit', *.fts]"],
  }).config.jobs[0];
  // Before: the quotes were kept, so 'tmp/**' left out nothing and '*.fit' matched no file.
  assert.deepEqual(job.exclude_patterns, ["tmp/**", "a b/*"]);
  assert.deepEqual(job.file_patterns, ["*.fit", "*.fts"]);
});

Deno.test("a wrong --set names the key and the options, not a line of a file never written", () => {
  for (const saveConfig of [undefined, "/nonexistent/saved.yaml"]) {
    let error: unknown;
    try {
      quickStartConfig({
        watch: "/data/camera",
        to: "/mnt/archive",
        set: ["retry_atempts=3", "retry_delay_seconds=soon"],
        saveConfig,
      });
    } catch (thrown) {
      error = thrown;
    }
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(
      error.message,
      'in the options (--watch, --to, --set): unknown key "retry_atempts"; did you mean ' +
        '"retry_attempts"?\nin the options (--watch, --to, --set): --set retry_delay_seconds=…: ' +
        'expected a number from 0 to 86400, got "soon"',
    );
  }
});

Deno.test("what run refuses before it starts is said of the options too (run and doctor)", async () => {
  const home = await Deno.makeTempDir({ prefix: "itx-quick-guarded-" });
  try {
    const guarded = "/dev/shm/itx-no-such-camera";
    for (const command of ["run", "doctor"]) {
      const result = await runCli([command, "--watch", guarded, "--to", join(home, "dest")], {
        env: { HOME: home },
      });
      assert.equal(result.code, 2, result.stderr);
      assert.ok(
        result.stderr.includes(
          `error: in the options (--watch, --to, --set): --watch: ${guarded} ` +
            "is under /dev, where image-transfer cannot open files",
        ),
        result.stderr,
      );
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a --watch folder that does not exist, or a file, is said of --watch as typed, never of watch_path (run --once, --dry-run, doctor)", async () => {
  const home = await Deno.makeTempDir({ prefix: "itx-quick-nowhere-" });
  try {
    const dest = join(home, "dest");
    await Deno.mkdir(dest);
    await Deno.writeTextFile(join(home, "notes.txt"), "not a folder\n");
    const typed = (watch: string, ...args: string[]) =>
      runCli([...args, "--watch", watch, "--to", dest], { env: { HOME: home }, cwd: home });
    for (const args of [["run", "--once"], ["run", "--dry-run"]]) {
      const missing = await typed("nowhere", ...args);
      assert.equal(missing.code, 4, missing.stderr);
      assert.equal(
        missing.stderr,
        `error: Cannot watch ${join(home, "nowhere")} (--watch nowhere): the folder does not ` +
          "exist; create it, or give --watch the folder your instrument writes into\n",
      );
      const file = await typed("notes.txt", ...args);
      assert.equal(file.code, 2, file.stderr);
      assert.match(file.stderr, /^error: in the options \(--watch, --to, --set\): --watch: /);
      for (const said of [missing.stderr, file.stderr]) assert.doesNotMatch(said, /watch_path/);
    }
    const doctor = await typed("no where", "doctor");
    assert.equal(doctor.code, 1, doctor.stderr);
    assert.ok(
      doctor.stdout.includes(
        `FAIL  watch folder: ${join(home, "no where")}: does not exist; fix --watch 'no where'`,
      ),
      doctor.stdout,
    );
    assert.doesNotMatch(doctor.stdout + doctor.stderr, /watch_path/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("an FTP login's password is asked for, and its file judged, in the words of the --ftp-password-* options, never of the keys (run and doctor)", async () => {
  const home = await Deno.makeTempDir({ prefix: "itx-quick-password-" });
  try {
    const watch = join(home, "camera");
    await Deno.mkdir(watch);
    const open = join(home, "ftp-password");
    await Deno.writeTextFile(open, "secret\n", { mode: 0o644 });
    await Deno.chmod(open, 0o644);
    const to = "ftps://obs@archive.invalid/incoming";
    const said = async (...options: string[]) => {
      const outs = [];
      for (const command of [["run", "--once"], ["doctor"]]) {
        const out = await runCli([...command, "--watch", watch, "--to", to, ...options], {
          env: { HOME: home },
          cwd: home,
        });
        assert.equal(out.code, 2, out.stderr + out.stdout);
        assert.doesNotMatch(out.stderr + out.stdout, /ftp_password|transfer_method|remote_user/);
        outs.push(out.stderr);
      }
      assert.equal(outs[0], outs[1]);
      return outs[0];
    };
    assert.ok(
      (await said()).startsWith(
        `error: --to ${to} logs in as obs, who needs a password: give --ftp-password-file FILE ` +
          "(a file holding it) or --ftp-password-env NAME (a variable holding it)\n",
      ),
    );
    assert.ok(
      (await said("--ftp-password-file", open, "--ftp-password-env", "FTP_PASSWORD")).startsWith(
        "error: give either --ftp-password-file or --ftp-password-env, not both\n",
      ),
    );
    // Not its name: it may be the password itself, given where its file belongs.
    assert.equal(
      await said("--ftp-password-file", "nowhere"),
      "error: in the options (--watch, --to, --set): --ftp-password-file: the file it names " +
        "does not exist (its name is not shown: it may be the password itself); give the path " +
        "of a file that holds the password, or its variable with --ftp-password-env\n",
    );
    assert.match(
      await said("--ftp-password-file", open),
      new RegExp(
        "^error: in the options \\(--watch, --to, --set\\): --ftp-password-file: " +
          `${open} can be read or written by others \\(mode 0644\\); run: chmod 600 ${open}`,
      ),
    );
    // A password variable that is not set here: warned of in the words of the option too.
    const unset = await runCli(
      ["doctor", "--watch", watch, "--to", to, "--ftp-password-env", "ITX_UNSET_FTP_PASSWORD"],
      { env: { HOME: home }, cwd: home },
    );
    // Before: "WARN  (command line): ftp_password_env of job default: … give ftp_password_file".
    assert.match(
      unset.stdout,
      /^WARN {2}--ftp-password-env ITX_UNSET_FTP_PASSWORD: the variable ITX_UNSET_FTP_PASSWORD is not set here, .* or give --ftp-password-file instead$/m,
    );
    assert.doesNotMatch(unset.stdout + unset.stderr, /ftp_password|command line/);
    // Given for a destination that is not FTP, where it would be ignored without a word.
    for (
      const [other, what] of [["obs@archive.invalid:/in", "logs in over SSH"], [
        watch,
        "is a local folder",
      ]]
    ) {
      const out = await runCli(
        ["run", "--once", "--watch", watch, "--to", other, "--ftp-password-env", "PW"],
        { env: { HOME: home }, cwd: home },
      );
      assert.equal(out.code, 2, out.stderr);
      assert.ok(
        out.stderr.startsWith(
          "error: --ftp-password-env is for an FTP --to (ftp://user@host/path or " +
            `ftps://user@host/path); --to ${other} ${what}: leave it out\n`,
        ),
        out.stderr,
      );
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a --to the config refuses is said of --to and --watch, never of remote_base_path, remote_host or watch_path (run and doctor)", async () => {
  const home = await Deno.makeTempDir({ prefix: "itx-quick-to-" });
  try {
    const watch = join(home, "camera");
    await Deno.mkdir(join(watch, "sub"), { recursive: true });
    const cases: Array<[string, string]> = [
      [
        "camera/sub",
        `--to: ${join(watch, "sub")} is inside --watch ${watch}, so every copy would be found ` +
        "there and sent again, without end",
      ],
      ["host name:/x", "--to: expected a host name, address or ~/.ssh/config alias\n"],
    ];
    for (const [to, message] of cases) {
      for (const command of [["run", "--once"], ["doctor"]]) {
        const out = await runCli([...command, "--watch", watch, "--to", to], {
          env: { HOME: home },
          cwd: home,
        });
        assert.equal(out.code, 2, out.stderr + out.stdout);
        assert.ok(
          out.stderr.startsWith(`error: in the options (--watch, --to, --set): ${message}`),
          out.stderr,
        );
        assert.doesNotMatch(out.stderr + out.stdout, /remote_|watch_path/);
      }
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a --to inside --watch is answered with the --set that leaves it out, which, pasted, is taken", async () => {
  await using q = await quickSandbox();
  const args = ["run", "--dry-run", "--watch", q.watch, "--to", join(q.watch, "sub")];
  const refused = await runCli(args, { env: q.env });
  assert.equal(refused.code, 2, refused.stderr);
  // Before: "(or leave it out with exclude_patterns: ["sub/**"])", the file's words.
  const advice = `--set 'exclude_patterns=["sub/**"]'`;
  assert.ok(refused.stderr.includes(`(or leave it out with ${advice})\n`), refused.stderr);
  const pasted = await runCli([...args, "--set", 'exclude_patterns=["sub/**"]'], { env: q.env });
  assert.equal(pasted.code, 0, pasted.stderr);
  assert.match(pasted.stdout, /^skipped .*\/sub\/: folder matches exclude pattern sub\/\*\*$/m);
});

Deno.test("a --to inside --watch with [ ] and quotes in its name: the --set of the advice, pasted, leaves it out", async () => {
  await using q = await quickSandbox();
  const to = join(q.watch, 'out[1] "x"');
  const refused = await runOnceTo(q, to, []);
  assert.equal(refused.code, 2, refused.stderr);
  // Before: --set 'exclude_patterns=["out[1]'/**"]) ... (cut at the first ]), and [1] a glob.
  const value = refused.stderr.match(/\(or leave it out with --set '([^']*)'\)\n/)?.[1];
  assert.equal(value, String.raw`exclude_patterns=["out\\[1\\] \"x\"/**"]`, refused.stderr);
  const pasted = await runOnceTo(q, to, ["--set", value]);
  assert.equal(pasted.code, 0, pasted.stderr + pasted.stdout);
  await assertDelivered(to, q.files);
});

Deno.test("cli: a port after the host in --to, with or without a folder after it, is refused by run and doctor with the --to and --set ssh_port to give, which, pasted, deliver the bytes", async () => {
  const sshd = await startSshd();
  await using q = await quickSandbox();
  try {
    const dest = await sshd.makeRemoteDir();
    const login = `${sshd.user}@127.0.0.1`;
    // The key and host key, not the port: that is what the --to below tried to give.
    const sets = loginSets(sshd).slice(2);
    let advice: string[] = [];
    // Before: read as the folder "PORT:/tmp/..." (or "PORT/tmp/...") in the login's home, on port 22.
    for (const to of [`${login}:${sshd.port}:${dest}`, `${login}:${sshd.port}${dest}`]) {
      for (const command of [["run", "--once"], ["doctor"]]) {
        const out = await runCli([...command, "--watch", q.watch, "--to", to, ...sets], {
          env: q.env,
        });
        assert.equal(out.code, 2, out.stderr + out.stdout);
        const folder = to.slice(login.length + 1);
        assert.ok(
          out.stderr.startsWith(
            `error: --to ${to}: ${sshd.port} is read as a folder, not a port; write --to ` +
              `${login}:${dest} --set ssh_port=${sshd.port} (for a folder of that name in the ` +
              `login's home, ${login}:./${folder})\n`,
          ),
          out.stderr,
        );
        advice = ["--to", `${login}:${dest}`, "--set", `ssh_port=${sshd.port}`];
      }
    }
    // A port and no folder: before, read as the folder "PORT" in the login's home, on port 22.
    const portOnly = await runCli(
      ["run", "--once", "--watch", q.watch, "--to", `${login}:${sshd.port}`, ...sets],
      { env: q.env },
    );
    assert.equal(portOnly.code, 2, portOnly.stderr + portOnly.stdout);
    assert.ok(
      portOnly.stderr.startsWith(
        `error: --to ${login}:${sshd.port}: ${sshd.port} is read as a folder, not a port; write ` +
          `--to ${login}:/the/folder/on/the/server --set ssh_port=${sshd.port} (for a folder of ` +
          `that name in the login's home, ${login}:./${sshd.port})\n`,
      ),
      portOnly.stderr,
    );
    assert.equal(await sshd.logins(), 0, "nothing logged in for a refused --to");
    const pasted = await runCli(["run", "--once", "--watch", q.watch, ...advice, ...sets], {
      env: q.env,
    });
    assert.equal(pasted.code, 0, pasted.stderr);
    await assertDelivered(dest, q.files);
  } finally {
    await sshd.stop();
  }
});

/** A watch folder with real FITS files and a hostile name, dated into night 20240701. */
async function watchFolder(root: string): Promise<Map<string, string>> {
  const watch = join(root, "watch");
  await Deno.mkdir(join(watch, "sub"), { recursive: true });
  const night = new Date("2024-07-01T20:00:00Z");
  const files = new Map<string, string>();
  for (const name of ["cmos_iso_2024.fits", "fpack_style.fits"]) {
    await Deno.copyFile(join(FITS_DIR, name), join(watch, "sub", name));
    files.set(`20240701/sub/${name}`, join(watch, "sub", name));
  }
  await Deno.writeFile(join(watch, "a 'b' $(c).fits"), randomBytes(50_000));
  files.set("20240701/a 'b' $(c).fits", join(watch, "a 'b' $(c).fits"));
  for (const path of files.values()) await Deno.utime(path, night, night);
  return files;
}

/**
 * A folder for one config-free run, removed when disposed: `watch` as {@linkcode watchFolder}
 * makes it (`files`), and `env` with HOME in the folder and the clock in UTC.
 */
async function quickSandbox() {
  const root = await Deno.makeTempDir({ prefix: "itx-quick-" });
  const dispose = () => Deno.remove(root, { recursive: true });
  try {
    const files = await watchFolder(root);
    const env = { HOME: root, TZ: "UTC" };
    return { root, watch: join(root, "watch"), files, env, [Symbol.asyncDispose]: dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** `run --once --watch <watch> --to <to> …more` in `q`, with `env` over its own. */
function runOnceTo(
  q: { watch: string; env: Record<string, string> },
  to: string,
  more: string[],
  env: Record<string, string> = {},
) {
  return runCli(["run", "--once", "--watch", q.watch, "--to", to, ...more], {
    env: { ...q.env, ...env },
  });
}

async function assertDelivered(dest: string, files: Map<string, string>): Promise<void> {
  assert.deepEqual(await listFiles(dest), [...files.keys()].sort());
  for (const [rel, path] of files) {
    assert.equal(await sha256OfFile(join(dest, rel)), await sha256OfFile(path), rel);
  }
}

Deno.test("cli: a config-free run to a local folder delivers, status shows it, and --save-config writes its config", async () => {
  await using q = await quickSandbox();
  const { root, files, env } = q;
  const dest = join(root, "dest");
  const saved = join(root, "saved.yaml");
  const args = ["run", "--once", "--watch", join(root, "watch"), "--to", dest];
  const out = await runCli([...args, "--save-config", saved], { env });
  assert.equal(out.code, 0, out.stderr);
  await assertDelivered(dest, files);
  // `status` without a config file reads the default state folder the run used.
  const status = await runCli(["status"], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.match(
    status.stdout,
    new RegExp(`Job default: pending 0, interrupted 0, done ${files.size},`),
  );
  assert.equal((await Deno.stat(saved)).mode! & 0o777, 0o644);
  const text = await Deno.readTextFile(saved);
  assert.match(text, /^transfer_method: local$/m);
  const valid = await runCli(["config", "validate", "-c", saved], { env });
  assert.equal(valid.code, 0, valid.stderr);
  assert.match(valid.stdout, new RegExp(`-> ${dest} \\(local\\)`));

  const again = await runCli([...args, "--save-config", saved], { env });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists; add --force to replace it/);
  assert.equal(await Deno.readTextFile(saved), text);
  const forced = await runCli([...args, "--save-config", saved, "--force"], { env });
  assert.equal(forced.code, 0, forced.stderr);

  const half = await runCli(["run", "--watch", join(root, "watch")], { env });
  assert.equal(half.code, 2);
  assert.match(half.stderr, /needs both --watch DIR and --to DEST/);
});

Deno.test("cli: quick runs to another --to than the last say once what went to the other destination, not at every start", async () => {
  await using q = await quickSandbox();
  const [first, second] = [join(q.root, "first"), join(q.root, "second")];
  const once = await runOnceTo(q, first, []);
  assert.equal(once.code, 0, once.stderr);
  await assertDelivered(first, q.files);
  // Sent to the first destination and gone from the watch folder: the second never gets it.
  const gone = "20240701/a 'b' $(c).fits";
  await Deno.remove(q.files.get(gone)!);
  q.files.delete(gone);
  const said = /(\d+) file\(s\) of job default went to another destination before/g;
  const switched = await runOnceTo(q, second, []);
  assert.equal(switched.code, 0, switched.stderr);
  await assertDelivered(second, q.files);
  assert.deepEqual([...switched.stderr.matchAll(said)].map((m) => m[1]), ["3"]);
  for (const to of [second, second]) {
    const again = await runOnceTo(q, to, []);
    assert.equal(again.code, 0, again.stderr);
    // Before: "1 file(s) ... went to another destination before" at each start to the second.
    assert.doesNotMatch(again.stderr, said, again.stderr);
  }
  // Back to the first: that change is said (nothing it lacks: no count), and the next is new too.
  const back = await runOnceTo(q, first, []);
  assert.equal(back.code, 0, back.stderr);
  const third = await runOnceTo(q, second, []);
  assert.deepEqual([...third.stderr.matchAll(said)].map((m) => m[1]), ["1"]);
});

Deno.test("cli: run and doctor without the default config file say how they go without one, and that command, pasted, delivers", async () => {
  await using q = await quickSandbox();
  const { root, files, env } = q;
  const noFile = `Cannot read config file ${
    join(root, ".config", "image-transfer", "config.yaml")
  }: it does not exist; create it with \`image-transfer init\`, or pass another file with -c <file>`;
  for (
    const [args, hint] of [
      [["run"], "run"],
      [["run", "--once"], "run --once"],
      [["run", "--dry-run"], "run --dry-run"],
      [["doctor"], "doctor"],
    ] as const
  ) {
    const out = await runCli([...args], { env });
    assert.equal(out.code, 2, out.stderr);
    // Before: not a word of the config-free run, which the README offers for a first run.
    assert.equal(
      out.stderr,
      `error: ${noFile}; or, without a config file: \`image-transfer ${hint} --watch DIR --to DEST\`\n`,
    );
  }
  // Where a file is given (and so meant), or for commands that take no --watch: no such hint.
  for (const args of [["-c", join(root, "other.yaml"), "run"], ["config", "validate"]]) {
    const out = await runCli(args, { env });
    assert.equal(out.code, 2, out.stderr);
    assert.doesNotMatch(out.stderr, /--watch/);
  }
  const dest = join(root, "dest");
  const pasted = await runCli(["run", "--once", "--watch", q.watch, "--to", dest], { env });
  assert.equal(pasted.code, 0, pasted.stderr);
  await assertDelivered(dest, files);
});

Deno.test("cli: a config-free daemon is shown as started from the command line; restart and a reload refuse it and leave it running", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  const args = ["run", "--watch", join(root, "watch"), "--to", join(root, "dest")];
  const daemon = startCli([...args, "--set", "status_listen="], { env, cwd: root });
  try {
    await daemon.waitForOutput("Watching");
    const status = await runCli(["status"], { env, cwd: root });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Daemon: running, pid \d+, .*config \(command line\)/m);
    const restart = await runCli(["restart"], { env, cwd: root });
    assert.equal(restart.code, 2, restart.stderr);
    assert.ok(
      restart.stderr.includes(
        "was started without a config file, so restart cannot start it again: stop it with " +
          `\`image-transfer stop\`, then start it with \`image-transfer ${args.join(" ")} ` +
          "--set status_listen=`",
      ),
      restart.stderr,
    );
    daemon.process.kill("SIGHUP");
    await daemon.waitForOutput(/there is none to read again: stop it and start it with the new/);
    const after = await runCli(["status"], { env, cwd: root });
    assert.match(after.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
});

Deno.test("cli: a config-free run given --set state_dir=DIR is found by status and stop with that --set, or with its options as typed; without them they say so", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  const state = "state 'b'"; // relative to where it is typed, as run takes it
  const run = ["--watch", "watch", "--to", "dest", "--set", `state_dir=${state}`];
  const daemon = startCli(["run", ...run, "--set", "status_listen="], { env, cwd: root });
  try {
    await daemon.waitForOutput("Watching");
    // The start says how to find it.
    const find = `--set 'state_dir=${join(root, "state '\\''b'\\''")}'`;
    assert.match(
      daemon.stderr(),
      new RegExp(
        `state_dir is not the default one: image-transfer status ${RegExp.escape(find)} and ` +
          `image-transfer stop ${RegExp.escape(find)} find it`,
      ),
    );
    // Before: the default state folder's, "not running", and stop stopped nothing (exit 0).
    // Status said "Daemon: not running" without saying it looked in the default state folder
    // only, nor how a daemon of a config file is found.
    const plain = await runCli(["status"], { env, cwd: root });
    assert.match(
      plain.stdout,
      /^Daemon: not running with state_dir \S+image-transfer\n {2}\(a daemon started with a config file is found with `image-transfer -c FILE status`, a run without one given --set state_dir=DIR with `image-transfer status --set state_dir=DIR`\)$/m,
    );
    const none = await runCli(["stop"], { env, cwd: root });
    assert.match(
      none.stdout,
      /No daemon is running with state_dir \S+image-transfer \(a daemon started with a config file is found with `image-transfer -c FILE stop`, a run without one given --set state_dir=DIR with `image-transfer stop --set state_dir=DIR`\)/,
    );
    for (const args of [["--set", `state_dir=${state}`], run]) {
      const status = await runCli(["status", ...args], { env, cwd: root });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`^Daemon: running, pid ${daemon.process.pid},`, "m"));
      assert.match(status.stdout, new RegExp(`^Ledger: ${RegExp.escape(join(root, state))}`, "m"));
    }
    const both = await runCli(
      ["status", "-c", join(root, "x.yaml"), "--set", `state_dir=${state}`],
      { env, cwd: root },
    );
    assert.equal(both.code, 2);
    assert.match(
      both.stderr,
      /give either --config or the --watch\/--to\/--set of a run without one/,
    );
    // restart takes them too (before: "unknown option '--set'"), and its refusal names the stop
    // that finds this run (before: "image-transfer stop", which looks in the default state_dir),
    // then the run that starts it again, as the daemon said it, its paths absolute (before: "run
    // that command again", which only the shell's history knew).
    const again = [
      "--watch",
      q.watch,
      "--to",
      join(root, "dest"),
      "--set",
      `state_dir=${join(root, state)}`,
      "--set",
      "status_listen=",
    ];
    const said = `image-transfer run --watch ${q.watch} --to ${join(root, "dest")} ${find} ` +
      "--set status_listen=";
    for (const args of [["--set", `state_dir=${state}`], run]) {
      const restart = await runCli(["restart", ...args], { env, cwd: root });
      assert.equal(restart.code, 2, restart.stderr);
      assert.ok(
        restart.stderr.includes(
          "was started without a config file, so restart cannot start it again: stop it with " +
            `\`image-transfer stop ${find}\`, then start it with \`${said}\`\n`,
        ),
        restart.stderr,
      );
    }
    const stop = await runCli(["stop", "--set", `state_dir=${state}`], { env, cwd: root });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(
      stop.stdout,
      new RegExp(`^Stopped the daemon \\(pid ${daemon.process.pid}\\)`, "m"),
    );
    assert.equal((await daemon.process.status).code, 0, daemon.stderr());
    // Nothing runs there: restart says it has nothing to start, and how a run starts.
    const idle = await runCli(["restart", "--set", `state_dir=${state}`], { env, cwd: root });
    assert.equal(idle.code, 2, idle.stderr);
    assert.match(
      idle.stderr,
      /No daemon is running with state_dir .*: restart has nothing to start/,
    );
    // The run named, typed in another folder, starts it again with its state_dir.
    const started = startCli(["run", ...again], { env, cwd: q.watch });
    try {
      await started.waitForOutput("Watching");
      const status = await runCli(["status", "--set", `state_dir=${state}`], { env, cwd: root });
      assert.match(status.stdout, new RegExp(`^Daemon: running, pid ${started.process.pid},`, "m"));
    } finally {
      assert.equal((await started.stop()).code, 0, started.stderr());
    }
  } finally {
    try {
      daemon.process.kill("SIGTERM");
    } catch { /* stopped by the test */ }
    await daemon.process.status;
  }
});

Deno.test("cli: status, stop and restart refuse a --set key that is neither a daemon's nor a job's in run's words, with the key meant; a job's key or an old name they take", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  const typos = ["--set", "statedir=st", "--set", "colour=1"];
  const run = await runCli(["run", "--once", "--watch", "watch", "--to", "dest", ...typos], {
    env,
    cwd: root,
  });
  assert.equal(run.code, 2, run.stderr);
  assert.equal(
    run.stderr,
    'error: in the options (--watch, --to, --set): unknown key "statedir"; did you mean ' +
      '"state_dir"?\nin the options (--watch, --to, --set): unknown key "colour"; see the key ' +
      "list in the README\n",
  );
  // Before: skipped, so the default state folder was looked in ("not running", exit 0; stop
  // stopped nothing).
  for (const command of ["status", "stop", "restart"]) {
    const refused = await runCli([command, ...typos], { env, cwd: root });
    assert.equal(refused.code, 2, `${command}: ${refused.stdout}`);
    assert.equal(refused.stdout, "", command);
    assert.equal(refused.stderr, run.stderr, command);
  }
  // A job's key (the run's own), its old name and an x- key do not find the daemon, but are not
  // refused: run takes them.
  const sets = ["--set", "state_dir=st", "--set", "retry_attempts=3", "--set", "retry_delay=5"];
  const status = await runCli(["status", ...sets, "--set", "x-note=1"], { env, cwd: root });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^Daemon: not running with state_dir \S+\/st$/m);
  assert.match(
    status.stdout,
    new RegExp(`^No ledger yet in ${RegExp.escape(join(root, "st"))}`, "m"),
  );
});

Deno.test("cli: status, stop and restart refuse a --set key no run without a config file takes (jobs, what --watch and --to give), as run does, saying how such a run is found", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  const found = "such a run is found by its --set state_dir=DIR (or by all its --watch, --to and " +
    "--set); leave it out";
  const refusals: [string, string][] = [
    [
      "jobs=1",
      "is a config file's list of jobs, which a run without one has not (its one job is " +
      "its --watch and --to)",
    ],
    ["watch_path=watch", "is given to a run without a config file by --watch, never by --set"],
    ["remote_host=archive", "is given to a run without a config file by --to, never by --set"],
  ];
  for (const [pair, said] of refusals) {
    // run refuses it too (its own words: the key is the --watch's or --to's, or not a list).
    const run = await runCli(["run", "--once", "--watch", "watch", "--to", "dest", "--set", pair], {
      env,
      cwd: root,
    });
    assert.equal(run.code, 2, run.stderr);
    // Before: not a typo, so taken without a word, and the default state folder looked in
    // (status: "not running", exit 0; stop: stopped nothing).
    for (const command of ["status", "stop", "restart"]) {
      const refused = await runCli([command, "--set", "state_dir=st", "--set", pair], {
        env,
        cwd: root,
      });
      assert.equal(refused.code, 2, `${command} ${pair}: ${refused.stdout}`);
      assert.equal(refused.stdout, "", command);
      const key = pair.slice(0, pair.indexOf("="));
      assert.equal(
        refused.stderr,
        `error: in the options (--watch, --to, --set): --set ${key}=… ${said}: ${found}\n`,
        `${command} ${pair}`,
      );
    }
  }
});

Deno.test("cli: what the patterns of a config-free run leave out is said of the default patterns or --set file_patterns, and listed by the status given its options", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  await Deno.writeTextFile(join(q.watch, "notes.txt"), "not an image");
  const defaults = "the default patterns (*.fits, *.fit, *.fts, *.fits.fz, *.fits.gz; others " +
    "are sent with --set file_patterns=…)";
  const noKey = /(?<!--set '?)\b(file|exclude)_patterns\b/;
  // Before: "matches none of file_patterns", a key of a config file there is none of.
  const dry = await runCli(["run", "--dry-run", "--watch", "watch", "--to", "dest"], {
    env,
    cwd: root,
  });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(
    dry.stdout,
    new RegExp(`notes\\.txt: matches none of ${RegExp.escape(defaults)}$`, "m"),
  );
  const mine = ["--set", "file_patterns=[*.fits, '*.fz']", "--set", "exclude_patterns=[sub/]"];
  const given = await runCli(["run", "--dry-run", "--watch", "watch", "--to", "dest", ...mine], {
    env,
    cwd: root,
  });
  assert.match(
    given.stdout,
    /notes\.txt: matches none of --set file_patterns=… \(\*\.fits, \*\.fz\)$/m,
  );
  for (const out of [dry.stdout, given.stdout]) assert.doesNotMatch(out, noKey);
  // The start's line: the same words, and the status that lists them finds this run's state_dir
  // (before: `image-transfer status`, which looks in the default one and knows no job to list),
  // from any folder: its paths absolute (before: `--watch watch`, as typed, which is another
  // folder, or none, once the user has moved on).
  const run = ["--watch", "watch", "--to", "dest", "--set", "state_dir=my state", ...mine];
  const once = await runCli(["run", "--once", ...run], { env, cwd: root });
  assert.equal(once.code, 0, once.stderr);
  const absolute = ["--watch", q.watch, "--to", join(root, "dest")];
  const stateDir = `state_dir=${join(root, "my state")}`;
  const status = `image-transfer status ${absolute.join(" ")} --set '${stateDir}' ` +
    `--set 'file_patterns=[*.fits, '\\''*.fz'\\'']' --set 'exclude_patterns=[sub/]'`;
  assert.match(
    once.stderr,
    new RegExp(
      "Skipped 2 name\\(s\\) of job default that --set file_patterns=… \\(\\*\\.fits, \\*\\.fz\\) " +
        `or --set exclude_patterns=… leave out, .*notes\\.txt among them \\(\`${
          RegExp.escape(status)
        }\` lists them, -v logs each\\)`,
    ),
  );
  assert.doesNotMatch(once.stderr, noKey);
  await Deno.mkdir(join(root, "elsewhere"));
  const pasted = await runCli(["status", ...absolute, "--set", stateDir, ...mine], {
    env,
    cwd: join(root, "elsewhere"),
  });
  assert.equal(pasted.code, 0, pasted.stderr);
  assert.match(pasted.stdout, new RegExp(`^Ledger: ${RegExp.escape(join(root, "my state"))}`, "m"));
  assert.match(pasted.stdout, /^ {2}.*notes\.txt: matches none of --set file_patterns=… /m);
});

Deno.test("cli: --save-config keeps what relative --set paths meant, and writes nothing for options run refuses", async () => {
  await using q = await quickSandbox();
  const { root, env } = q;
  await Deno.mkdir(join(root, "conf"));
  const args = ["run", "--once", "--watch", "watch", "--to", "dest"];
  const sets = ["--set", "state_dir=st", "--set", "log_file=logs/run.log"];
  const out = await runCli([...args, ...sets, "--save-config", "conf/saved.yaml"], {
    env,
    cwd: root,
  });
  assert.equal(out.code, 0, out.stderr);
  const shown = await runCli(["config", "show", "--json", "-c", join(root, "conf/saved.yaml")], {
    env,
  });
  assert.equal(shown.code, 0, shown.stderr);
  const config = JSON.parse(shown.stdout);
  assert.equal(config.state_dir, join(root, "st"), "as typed, relative to where it was typed");
  assert.equal(config.log_file, join(root, "logs/run.log"));
  // A hook others may change is refused by run: no config is left behind.
  const hook = join(root, "hook.sh");
  await Deno.writeTextFile(hook, "#!/bin/sh\n");
  await Deno.chmod(hook, 0o777);
  const refused = await runCli(
    [...args, "--set", `on_transfer=["${hook}"]`, "--save-config", "conf/refused.yaml"],
    { env, cwd: root },
  );
  assert.equal(refused.code, 2, refused.stderr);
  assert.ok(!existsSync(join(root, "conf/refused.yaml")), refused.stderr);
  // Where it is written, as init writes: its folders made; a folder or a .toml name refused.
  const nested = await runCli([...args, "--save-config", "new/deeper/s.yaml"], {
    env,
    cwd: root,
  });
  assert.equal(nested.code, 0, nested.stderr);
  assert.match(await Deno.readTextFile(join(root, "new/deeper/s.yaml")), /^watch_path: /m);
  for (
    const [target, words] of [
      ["conf", /it is a folder; give a file name in it \(--save-config .*conf\/config\.yaml\)/],
      [
        "conf/saved.yaml/s.yaml",
        /conf\/saved\.yaml on its path is a file, not a folder; give a file in a folder \(--save-config FILE\)/,
      ],
      [
        "s.toml",
        /a \.toml name is read as TOML; give a \.yaml name \(--save-config .*s\.yaml\)/,
      ],
    ] as const
  ) {
    const bad = await runCli([...args, "--save-config", target, "--force"], { env, cwd: root });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, words);
  }
  // A dry run writes nothing; --force replaces only the file --save-config names.
  const dry = await runCli([...args, "--dry-run", "--save-config", "d.yaml"], { env, cwd: root });
  assert.equal(dry.code, 2, dry.stderr);
  assert.match(dry.stderr, /a dry run writes nothing/);
  assert.ok(!existsSync(join(root, "d.yaml")));
  const force = await runCli([...args, "--force"], { env, cwd: root });
  assert.equal(force.code, 2, force.stderr);
  assert.match(force.stderr, /--force goes with --save-config FILE/);
});

Deno.test("cli: config-free runs to ftp:// and ftps:// addresses deliver the bytes", async () => {
  const plain = await startVsftpd({ tls: false });
  const secure = await startVsftpd();
  await using q = await quickSandbox();
  const { root, files } = q;
  try {
    const plainDest = await plain.makeRemoteDir();
    const out = await runOnceTo(q, `ftp://itx-ftp@127.0.0.1:${plain.port}${plainDest}`, [
      "--ftp-password-file",
      plain.passwordFile,
    ]);
    assert.equal(out.code, 0, out.stderr);
    await assertDelivered(plainDest, files);

    const secureDest = await secure.makeRemoteDir();
    const tls = await runOnceTo(q, `ftps://itx-ftp@127.0.0.1:${secure.port}${secureDest}`, [
      "--ftp-password-env",
      "ITX_PW",
      "--set",
      `ftp_ca_file=${secure.certFile}`,
      "--set",
      `state_dir=${join(root, "state2")}`,
    ], { ITX_PW: (await Deno.readTextFile(secure.passwordFile)).trimEnd() });
    assert.equal(tls.code, 0, tls.stderr);
    await assertDelivered(secureDest, files);
  } finally {
    await plain.stop();
    await secure.stop();
  }
});

Deno.test("cli: a config-free run to user@host:/path with --method rsync delivers the bytes", async () => {
  const sshd = await startSshd();
  await using q = await quickSandbox();
  const { files } = q;
  try {
    const dest = await sshd.makeRemoteDir();
    const out = await runOnceTo(q, `${sshd.user}@127.0.0.1:${dest}`, [
      "--method",
      "rsync",
      ...loginSets(sshd),
    ]);
    assert.equal(out.code, 0, out.stderr);
    await assertDelivered(dest, files);
  } finally {
    await sshd.stop();
  }
});

Deno.test("an ssh option refused or warned of is said of --set ssh_options, never of the key or its index (run --dry-run and doctor)", async () => {
  await using q = await quickSandbox();
  const to = "obs@archive.invalid:/in";
  for (const command of [["run", "--dry-run"], ["doctor"]]) {
    const set = 'ssh_options=["RemoteCommand=ls"]';
    const out = await runCli([...command, "--watch", q.watch, "--to", to, "--set", set], {
      env: q.env,
    });
    assert.equal(out.code, 2, out.stdout + out.stderr);
    // Before: "in the options (--watch, --to, --set): ssh_options[0]: RemoteCommand=ls ..."
    assert.match(
      out.stderr,
      /^error: in the options \(--watch, --to, --set\): --set ssh_options=…: RemoteCommand=ls runs a command of its own/,
    );
    assert.doesNotMatch(out.stderr, /(?<!--set )ssh_options/);
  }
  const unchecked = 'ssh_options=["StrictHostKeyChecking=no"]';
  const dry = await runCli(
    ["run", "--dry-run", "--watch", q.watch, "--to", to, "--set", unchecked],
    { env: q.env },
  );
  // Before: "warning: (command line): ssh_options of job default: StrictHostKeyChecking=no ..."
  assert.match(
    dry.stderr,
    /^warning: in the options \(--watch, --to, --set\): --set ssh_options=…: StrictHostKeyChecking=no sends the files/m,
  );
  assert.doesNotMatch(dry.stderr, /\(command line\)|(?<!--set )ssh_options/);
});

Deno.test(
  "a local --to the daemon's user may not write into is said of --to, never of remote_base_path",
  {
    ignore: Deno.build.os === "windows",
  },
  async () => {
    await using q = await quickSandbox();
    const dest = join(q.root, "locked");
    await Deno.mkdir(dest, { mode: 0o555 });
    await Deno.chmod(dest, 0o555);
    const out = await runCli(
      ["run", "--once", "--watch", q.watch, "--to", dest, "--set", "retry_attempts=0"],
      { env: q.env, honourFileModes: true },
    );
    assert.equal(out.code, 1, out.stderr);
    // Before: "... (or lift an immutable attribute: chattr -i), or change remote_base_path".
    assert.match(
      out.stderr,
      new RegExp(
        `may not write into the destination folder ${
          RegExp.escape(dest)
        } \\(Permission denied\\), ` +
          "where every file's folder is made: .*, or give --to another folder",
      ),
    );
    assert.doesNotMatch(out.stderr, /remote_base_path/);
    assert.deepEqual(await listFiles(dest), []);
  },
);

Deno.test("doctor: a --to path on the server that is a file is said of --to, never of remote_base_path", async () => {
  const sshd = await startSshd();
  await using q = await quickSandbox();
  try {
    const dest = await sshd.makeRemoteDir();
    await Deno.writeTextFile(join(dest, "a file"), "x");
    const to = `${sshd.user}@127.0.0.1:${dest}/a file`;
    const out = await runCli(["doctor", "--watch", q.watch, "--to", to, ...loginSets(sshd)], {
      env: q.env,
    });
    assert.equal(out.code, 1, out.stdout + out.stderr);
    // Before: "... rename or remove it there, or change remote_base_path".
    assert.match(
      out.stdout,
      /^ {2}FAIL {2}destination folder: .*a file is a file, not a folder: rename or remove it there, or give --to another folder$/m,
    );
    assert.doesNotMatch(out.stdout, /remote_base_path/);
  } finally {
    await sshd.stop();
  }
});

Deno.test("an SSH login that fails is said of --to, never of remote_host or remote_user (run and doctor); with a config file, of the keys", async () => {
  const sshd = await startSshd();
  await using q = await quickSandbox();
  try {
    const dest = await sshd.makeRemoteDir();
    const more = [
      ...loginSets(sshd),
      "--set",
      "retry_attempts=0",
    ];
    const refused =
      /authentication was refused for nobody-here@127\.0\.0\.1: .* check the user in --to and --set ssh_identity_file=… /;
    const unknown =
      /cannot resolve the host name nonexistent\.invalid: check the host in --to \(or the HostName /;
    for (
      const [to, said] of [
        [`nobody-here@127.0.0.1:${dest}`, refused],
        [`${sshd.user}@nonexistent.invalid:${dest}`, unknown],
      ] as const
    ) {
      const once = await runOnceTo(q, to, more);
      assert.equal(once.code, 1, once.stderr);
      assert.match(once.stderr, said);
      const doctor = await runCli(["doctor", "--watch", q.watch, "--to", to, ...more], {
        env: q.env,
      });
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(doctor.stdout, new RegExp(`^ {2}FAIL {2}login: .*${said.source}`, "m"));
      for (const out of [once.stderr, doctor.stdout]) {
        assert.doesNotMatch(out, /remote_host|remote_user|(?<!--set )ssh_identity_file/);
      }
    }
    assert.deepEqual(await listFiles(dest), [], "nothing sent");
    // The same login from a config file: said of the keys written there.
    const config = join(q.root, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(q.watch)}`,
        "remote_host: nonexistent.invalid",
        `remote_base_path: ${JSON.stringify(dest)}`,
        "",
      ].join("\n"),
    );
    const doctor = await runCli(["doctor", "-c", config], { env: q.env });
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.match(
      doctor.stdout,
      /login: .*nonexistent\.invalid: check remote_host \(or the HostName /,
    );
  } finally {
    await sshd.stop();
  }
});

Deno.test("an FTP certificate, login or greeting that fails says how the --to options give the fix, never the keys (run and doctor)", async () => {
  const server = await startVsftpd();
  await using q = await quickSandbox();
  try {
    const to = `ftps://itx-ftp@127.0.0.1:${server.port}${await server.makeRemoteDir()}`;
    const wrong = join(q.root, "wrong-password");
    await Deno.writeTextFile(wrong, "not the password\n", { mode: 0o600 });
    const more = ["--ftp-password-file", wrong, "--set", "retry_attempts=0"];
    const trust = ["--set", `ftp_ca_file=${server.certFile}`];
    for (
      const [options, said] of [
        // Before: "give … in ftp_ca_file (with --to: --set ftp_ca_file=FILE)", the key first.
        [more, /certificate is not trusted \(.*\); give .* with --set ftp_ca_file=FILE\b/m],
        // Before: "check remote_user and the password (ftp_password_file or …; with --to: …)".
        [
          [...more, ...trust],
          /refused the login .*check the user in --to and the password \(--ftp-password-file or --ftp-password-env\)/m,
        ],
      ] as const
    ) {
      const once = await runOnceTo(q, to, [...options]);
      assert.equal(once.code, 1, once.stderr);
      assert.match(once.stderr, said);
      const doctor = await runCli(["doctor", "--watch", q.watch, "--to", to, ...options], {
        env: q.env,
      });
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(doctor.stdout, new RegExp(`^ {2}FAIL {2}(TLS|login): .*${said.source}`, "m"));
      for (const out of [once.stderr, doctor.stdout]) assert.doesNotMatch(out, FTP_KEYS);
    }
  } finally {
    await server.stop();
  }
  // A port that answers as SSH, not FTP: said of --to, not of transfer_method or ftp_port.
  using ssh = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const greet = (async () => {
    for await (const conn of ssh) {
      await conn.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.6\r\n")).catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  const to = `ftp://127.0.0.1:${ssh.addr.port}/in`;
  const doctor = await runCli(["doctor", "--watch", q.watch, "--to", to], { env: q.env });
  assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
  assert.match(
    doctor.stdout,
    /answers as an SSH server .*: for SFTP or SSH give --to user@host:\/path \(scp, or rsync with --method rsync\); else check the port in --to$/m,
  );
  assert.doesNotMatch(doctor.stdout, FTP_KEYS);
  ssh.close();
  await greet;
});

/** The keys an FTP --to and the --ftp-password-* options give, and ftp_ca_file but as its --set. */
const FTP_KEYS =
  /remote_host|remote_user|ftp_port|ftp_tls|transfer_method|ftp_password_(file|env)|(?<!--set )ftp_ca_file/;

Deno.test("cli: through `deno task image-transfer`, relative paths are taken from where it was typed", async () => {
  const here = await Deno.makeTempDir({ prefix: "itx-task-cwd-" });
  try {
    await Deno.mkdir(join(here, "cam"));
    const bytes = randomBytes(2880 * 2);
    await Deno.writeFile(join(here, "cam", "a.dat"), bytes);
    const out = await runTask([
      "run",
      "--once",
      "--watch",
      "cam",
      "--to",
      "./out",
      "--set",
      `state_dir=${join(here, "state")}`,
      "--set",
      "log_file=",
      "--set",
      "file_patterns=[*.dat]",
      "--set",
      "night_date_source=now",
    ], { cwd: here, env: { HOME: here } });
    const stderr = out.stderr;
    assert.equal(out.code, 0, stderr);
    const sent = await listFiles(join(here, "out"));
    assert.equal(sent.length, 1, stderr);
    assert.deepEqual(await Deno.readFile(join(here, "out", sent[0])), bytes);
    assert.equal(existsSync(join(REPO_ROOT, "out")), false, "nothing in the project's folder");
  } finally {
    await Deno.remove(here, { recursive: true });
  }
});
