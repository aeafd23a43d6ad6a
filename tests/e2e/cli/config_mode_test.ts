/**
 * A config file, or an SSH identity file, that group or others can write is
 * refused (exit 2) with the chmod that fixes it, and so is a config file that
 * belongs to someone other than root or the account the daemon runs as;
 * through the real CLI.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cliArgv, runCli } from "../../helpers/cli.ts";
import { writeConfig } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { withTempDir } from "../../helpers/files.ts";

const env = (dir: string) => ({ HOME: dir, XDG_STATE_HOME: "" });

/** What a private key file starts with (its body is never read by `config validate`). */
const KEY_SHAPED = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
Deno.test("a config file group or others can write is refused with exit 2 and the chmod", async () => {
  await using box = await cliSandbox({ log_file: "" }, { configName: "my config.yaml" });
  const config = box.config;
  for (const [mode, who] of [[0o664, "group"], [0o646, "others"], [0o666, "group and others"]]) {
    await Deno.chmod(config, mode as number);
    for (const args of [["config", "validate"], ["run", "--once"]]) {
      const result = await runCli(["-c", config, ...args], { env: box.env });
      assert.equal(result.code, 2, result.stderr);
      assert.ok(
        result.stderr.includes(
          `error: ${config}: refusing this config file: it is writable by ${who} (mode 0${
            (mode as number).toString(8)
          })`,
        ),
        result.stderr,
      );
      assert.ok(result.stderr.includes(`chmod go-w '${config}'`), result.stderr);
      assert.match(result.stderr, /ProxyCommand/);
    }
  }
  // Nothing ran: no ledger was created.
  await assert.rejects(Deno.stat(box.stateDir), Deno.errors.NotFound);
  await Deno.chmod(config, 0o644);
  const ok = await runCli(["-c", config, "config", "validate"], { env: box.env });
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("a config file owned by another user is refused with exit 2 and the chown; its log_file is not used", async () => {
  await using box = await cliSandbox({}, { configName: "their config.yaml" });
  const config = box.config;
  // In a folder that exists, where the daemon could have written it.
  const theirLog = join(box.root, "their.log");
  await box.rewrite({ log_file: theirLog });
  await Deno.chmod(config, 0o644);
  const other = 65534;
  await Deno.chown(config, other, other);
  const uid = Deno.uid()!;
  for (const args of [["config", "validate"], ["run", "--once"]]) {
    const result = await runCli(["-c", config, ...args], { env: box.env });
    assert.equal(result.code, 2, result.stderr);
    assert.ok(
      result.stderr.includes(
        `error: ${config}: refusing this config file: it belongs to user id ${other}, not to ` +
          `root or to the account the daemon runs as (user id ${uid})`,
      ),
      result.stderr,
    );
    assert.ok(result.stderr.includes(`sudo chown ${uid} '${config}'`), result.stderr);
  }
  // Nothing ran, and the refused file did not choose where the daemon logs.
  await assert.rejects(Deno.stat(box.stateDir), Deno.errors.NotFound);
  await assert.rejects(Deno.stat(theirLog), Deno.errors.NotFound);

  // install-service through sudo: the service runs as the sudo user, who may own the file.
  const sudo = (sudoUid: number) => ({
    ...box.env,
    USER: "root",
    SUDO_USER: "itx-observer",
    SUDO_UID: String(sudoUid),
    SUDO_GID: String(sudoUid),
  });
  const install = ["-c", config, "install-service", "--os", "linux", "--print"];
  const theirs = await runCli(install, { env: sudo(other) });
  assert.equal(theirs.code, 0, theirs.stderr);
  assert.match(theirs.stdout, /^User=itx-observer$/m);
  const someoneElse = await runCli(install, { env: sudo(other - 1) });
  assert.equal(someoneElse.code, 2, someoneElse.stderr);
  assert.ok(
    someoneElse.stderr.includes(`(user id ${other - 1}), and its owner can`),
    someoneElse.stderr,
  );

  await Deno.chown(config, 0, 0);
  const ok = await runCli(["-c", config, "config", "validate"], { env: box.env });
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("install-service refuses --user with --allow-root, and says --allow-root changes nothing for another account", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const print = ["-c", box.config, "install-service", "--os", "linux", "--print"];
  // Before: accepted without a word, --allow-root silently meaning nothing.
  const both = await runCli([...print, "--user", "--allow-root"], { env: box.env });
  assert.equal(both.code, 2, both.stderr);
  assert.match(
    both.stderr,
    /^error: Cannot use --allow-root with --user: .* leave out one of them$/m,
  );
  assert.equal(both.stdout, "");
  // root's own per-user service runs as root: said. Before: not a word.
  const asRoot = { ...box.env, USER: "root", HOME: box.env.HOME ?? "/root" };
  const rootUser = await runCli([...print, "--user"], { env: asRoot });
  assert.equal(rootUser.code, 0, rootUser.stderr);
  assert.match(
    rootUser.stderr,
    /^warning: this per-user service is root's own, and runs as root \(at boot only with `loginctl enable-linger root`\): prefer a system service/m,
  );
  // Through sudo from another account the service runs as that account, --allow-root or not.
  const uid = String(Deno.uid());
  const sudo = {
    ...box.env,
    USER: "root",
    SUDO_USER: "itx-observer",
    SUDO_UID: uid,
    SUDO_GID: uid,
  };
  const viaSudo = await runCli([...print, "--allow-root"], { env: sudo });
  assert.equal(viaSudo.code, 0, viaSudo.stderr);
  assert.match(
    viaSudo.stderr,
    /^warning: --allow-root changes nothing here: the service runs as itx-observer \(who ran sudo\), not as root$/m,
  );
  assert.match(viaSudo.stdout, /^User=itx-observer$/m);
});

Deno.test("an ssh_identity_file group or others can write is refused with exit 2 and the chmod", async () => {
  await withTempDir(async (dir) => {
    const key = join(dir, "id_ed25519");
    await Deno.writeTextFile(key, KEY_SHAPED, { mode: 0o600 });
    const config = join(dir, "config.yaml");
    await writeConfig(config, {
      watch_path: join(dir, "watch"),
      remote_host: "example.invalid",
      remote_base_path: "/data",
      jobs: [{ name: "north", ssh_identity_file: key }],
    });
    await Deno.chmod(config, 0o600);
    const ok = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(ok.code, 0, ok.stderr);

    await Deno.chmod(key, 0o620);
    const refused = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(
      refused.stderr.includes(
        `${config}:5: ssh_identity_file of job north: refusing ${key}: it is writable by group ` +
          "(mode 0620)",
      ),
      refused.stderr,
    );
    // The mode ssh takes (go-w would leave a key others may read, refused then).
    assert.ok(refused.stderr.includes(`fix it with: chmod 600 ${key}`), refused.stderr);
    assert.equal(refused.stdout, "");
  });
});

Deno.test("an ssh_identity_file that is a folder others can write is refused as a folder with its line, with no chmod", async () => {
  await withTempDir(async (dir) => {
    // A shared folder (group-writable, sticky as /tmp is) named instead of the key in it.
    const keys = join(dir, "keys");
    await Deno.mkdir(keys);
    await Deno.chmod(keys, 0o1777);
    const config = join(dir, "config.yaml");
    await writeConfig(config, {
      watch_path: join(dir, "watch"),
      remote_host: "example.invalid",
      remote_base_path: "/data",
      ssh_identity_file: keys,
    });
    await Deno.chmod(config, 0o600);
    const refused = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /config\.yaml:\d+: ssh_identity_file of job default: .*keys is a folder, not a file/,
    );
    assert.doesNotMatch(refused.stderr, /chmod/);
  });
});

Deno.test("an ssh_identity_file that is no private key (a .pub file, a PuTTY key, text) is refused with its line", async () => {
  await withTempDir(async (dir) => {
    const key = join(dir, "id_ed25519");
    const config = join(dir, "config.yaml");
    await writeConfig(config, {
      watch_path: join(dir, "watch"),
      remote_host: "example.invalid",
      remote_base_path: "/data",
      ssh_identity_file: key,
    });
    await Deno.chmod(config, 0o600);
    const cases: Array<[string, RegExp]> = [
      [
        "ssh-ed25519 AAAAC3Nz obs@camera\n",
        /is a public key; give the private key \(the same name without \.pub\)/,
      ],
      [
        "PuTTY-User-Key-File-3: ssh-ed25519\n",
        /is a PuTTY key, which OpenSSH cannot read; convert it: puttygen/,
      ],
      ["notakey\n", /is not a private key .*give the key file ssh -i would take/],
    ];
    for (const [text, expected] of cases) {
      await Deno.writeTextFile(key, text, { mode: 0o600 });
      const out = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
      assert.equal(out.code, 2, out.stderr);
      assert.match(out.stderr, /config\.yaml:\d+: ssh_identity_file of job default: /);
      assert.match(out.stderr, expected);
    }
    // A .pub file as ssh-keygen leaves it (mode 0644): what to give instead, not a chmod of it.
    await Deno.chmod(key, 0o644);
    await Deno.writeTextFile(key, "ssh-ed25519 AAAAC3Nz obs@camera\n");
    const pub = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(pub.code, 2, pub.stderr);
    assert.match(pub.stderr, /is a public key; give the private key/);
    assert.doesNotMatch(pub.stderr, /chmod/);
    await Deno.chmod(key, 0o600);
    await Deno.writeTextFile(key, KEY_SHAPED, { mode: 0o600 });
    const ok = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(ok.code, 0, ok.stderr);
  });
});

Deno.test("the password typed where ftp_password_file's path belongs is not shown by config validate or run, on stderr or in the log file", async () => {
  await withTempDir(async (dir) => {
    const config = join(dir, "config.yaml");
    const log = join(dir, "it.log");
    await Deno.mkdir(join(dir, "watch"));
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(dir, "watch"))}`,
        `log_file: ${JSON.stringify(log)}`,
        "transfer_method: ftp",
        "remote_host: example.invalid",
        "remote_user: obs",
        "remote_base_path: /data",
        "ftp_password_file: 'Hunter2-S3cret'",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    for (const command of [["config", "validate"], ["run", "--once"]]) {
      const result = await runCli(["-c", config, ...command], { env: env(dir) });
      assert.equal(result.code, 2, result.stderr);
      // Before: ".../Hunter2-S3cret does not exist; create it or fix the path".
      assert.equal(
        result.stderr,
        `error: ${config}:7: ftp_password_file of job default: the file it names does not exist ` +
          "(its name is not shown: it may be the password itself); give the path of a file that " +
          "holds the password, or its variable in ftp_password_env\n",
      );
      const logged = await Deno.readTextFile(log).catch(() => "");
      assert.ok(!logged.includes("Hunter2"), logged);
    }
  });
});

Deno.test("config validate refuses a missing or shared ftp_password_file and a missing ssh_identity_file, with their lines", async () => {
  await withTempDir(async (dir) => {
    const password = join(dir, "ftp password");
    const key = join(dir, "id_ed25519");
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(dir, "watch"))}`,
        "remote_base_path: /data",
        "jobs:",
        "  - name: north",
        "    transfer_method: ftp",
        "    remote_host: example.invalid",
        "    remote_user: obs",
        `    ftp_password_file: ${JSON.stringify(password)}`,
        "  - name: south",
        "    remote_host: example.invalid",
        `    ssh_identity_file: ${JSON.stringify(key)}`,
        "    remote_base_path: /data/south",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const validate = () => runCli(["-c", config, "config", "validate"], { env: env(dir) });
    const missing = await validate();
    assert.equal(missing.code, 2, missing.stderr);
    // Its name is not shown (it may be the password typed where the path belongs).
    assert.ok(
      missing.stderr.includes(
        `${config}:8: ftp_password_file of job north: the file it names does not exist`,
      ),
      missing.stderr,
    );
    assert.ok(!missing.stderr.includes(password), missing.stderr);
    assert.ok(
      missing.stderr.includes(
        `${config}:11: ssh_identity_file of job south: ${key} does not exist`,
      ),
      missing.stderr,
    );
    assert.doesNotMatch(missing.stderr, /\n\s+at /, "no stack trace");

    // A file where a folder of their paths should be: not there either (no login could use them).
    const plain = join(dir, "notes.txt");
    await Deno.writeTextFile(plain, "x");
    const text = await Deno.readTextFile(config);
    await Deno.writeTextFile(
      config,
      text.replaceAll(JSON.stringify(password), JSON.stringify(join(plain, "pw")))
        .replaceAll(JSON.stringify(key), JSON.stringify(join(plain, "id"))),
      { mode: 0o600 },
    );
    const underFile = await validate();
    assert.equal(underFile.code, 2, underFile.stderr);
    for (
      const said of [
        `${config}:8: ftp_password_file of job north: ${plain} on the path of ${plain}/pw is a ` +
        "file, not a folder; fix the path",
        `${config}:11: ssh_identity_file of job south: ${plain} on the path of ${plain}/id is a ` +
        "file, not a folder; fix the path",
      ]
    ) assert.ok(underFile.stderr.includes(said), underFile.stderr);
    await Deno.writeTextFile(config, text, { mode: 0o600 });

    await Deno.writeTextFile(password, "secret\n", { mode: 0o644 });
    await Deno.chmod(password, 0o644);
    await Deno.writeTextFile(key, KEY_SHAPED, { mode: 0o600 });
    const shared = await validate();
    assert.equal(shared.code, 2, shared.stderr);
    assert.ok(
      shared.stderr.includes(
        `${config}:8: ftp_password_file of job north: ${password} can be read or written by ` +
          `others (mode 0644); run: chmod 600 '${password}'`,
      ),
      shared.stderr,
    );
    assert.doesNotMatch(shared.stderr, /ssh_identity_file/);

    await Deno.chmod(password, 0o600);
    const ok = await validate();
    assert.equal(ok.code, 0, ok.stderr);
  });
});

Deno.test("init writes a config that is not group writable even under umask 002", async () => {
  await withTempDir(async (dir) => {
    const config = join(dir, "config.yaml");
    // A fixed script; the program and its arguments are passed as "$@".
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        'umask 002 && exec "$@"',
        "sh",
        Deno.execPath(),
        ...cliArgv(["-c", config, "init"]),
      ],
      env: env(dir),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal((await Deno.stat(config)).mode! & 0o777, 0o644);
    const validate = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.doesNotMatch(validate.stderr, /refusing/);
  });
});

Deno.test("config validate refuses an empty ftp_password_file, and a missing password at remote_user's line", async () => {
  await withTempDir(async (dir) => {
    const password = join(dir, "ftp-password");
    const config = join(dir, "config.yaml");
    const write = (lines: string[]) =>
      Deno.writeTextFile(
        config,
        [
          `watch_path: ${JSON.stringify(join(dir, "watch"))}`,
          "remote_base_path: /data",
          "transfer_method: ftp",
          "remote_host: example.invalid",
          "remote_user: obs",
          ...lines,
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
    const validate = () => runCli(["-c", config, "config", "validate"], { env: env(dir) });
    await write([`ftp_password_file: ${JSON.stringify(password)}`]);
    // Before: accepted, and every login sent an empty password.
    for (const [text, said] of [["", "is empty"], ["\nsecret\n", "has an empty first line"]]) {
      await Deno.writeTextFile(password, text, { mode: 0o600 });
      const refused = await validate();
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(
        refused.stderr,
        `error: ${config}:6: ftp_password_file of job default: ${password} ${said}: write the ` +
          "password on its first line\n",
      );
    }
    await Deno.writeTextFile(password, "secret\n");
    const ok = await validate();
    assert.equal(ok.code, 0, ok.stderr);
    // Before: at line 1, where nothing is about a password; now at the login that needs one.
    await write([]);
    const none = await validate();
    assert.equal(none.code, 2, none.stderr);
    assert.match(
      none.stderr,
      new RegExp(`^error: ${RegExp.escape(config)}:5: remote_user: .*needs a password`),
    );
  });
});

Deno.test("config validate refuses an ftp_password_file that is a folder and an ftp_ca_file with no PEM certificate, with their lines", async () => {
  await withTempDir(async (dir) => {
    const password = join(dir, "secrets");
    const ca = join(dir, "archive-ca.der");
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(dir, "watch"))}`,
        "remote_base_path: /data",
        "transfer_method: ftp",
        "remote_host: example.invalid",
        "remote_user: obs",
        `ftp_password_file: ${JSON.stringify(password)}`,
        `ftp_ca_file: ${JSON.stringify(ca)}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const validate = () => runCli(["-c", config, "config", "validate"], { env: env(dir) });
    // A private folder: not a file others could read, but no file at all.
    for (const mode of [0o755, 0o700]) {
      await Deno.mkdir(password, { mode });
      await Deno.chmod(password, mode);
      await Deno.writeFile(ca, new Uint8Array([0x30, 0x82, 0x03, 0x1a, 0x30, 0x82]));
      const refused = await validate();
      assert.equal(refused.code, 2, refused.stderr);
      assert.ok(
        refused.stderr.includes(
          `${config}:6: ftp_password_file of job default: ${password} is a folder, not a file; ` +
            "give the file holding the password",
        ),
        refused.stderr,
      );
      assert.doesNotMatch(refused.stderr, /chmod/);
      assert.ok(
        refused.stderr.includes(
          `${config}:7: ftp_ca_file of job default: ${ca} holds no PEM certificate ` +
            '(no "-----BEGIN CERTIFICATE-----" line)',
        ),
        refused.stderr,
      );
      assert.match(refused.stderr, /openssl x509 -inform DER/);
      assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");
      await Deno.remove(password);
    }
    await Deno.writeTextFile(password, "secret\n", { mode: 0o600 });
    await Deno.writeTextFile(
      ca,
      "# the archive's authority\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    const ok = await validate();
    assert.equal(ok.code, 0, ok.stderr);
  });
});

/**
 * A writer on the named pipe `path` that gives `text` to every reader that opens it, until
 * `stop` (so a program that reads the pipe is answered instead of waiting for ever).
 */
function pipeWriter(path: string, text: string): { stop(): Promise<void> } {
  let stopped = false;
  let waiting = false;
  const served = (async () => {
    while (!stopped) {
      waiting = true;
      const writer = await Deno.open(path, { write: true });
      waiting = false;
      await writer.write(new TextEncoder().encode(text));
      writer.close();
    }
  })();
  return {
    async stop() {
      stopped = true;
      if (!waiting) return await served;
      // The writer waits for a reader: be that reader, so that it returns.
      using _reader = await Deno.open(path, { read: true });
      await served;
    },
  };
}

Deno.test("config validate refuses an ssh_identity_file, ftp_password_file or status_token_file that is a pipe, with its line, instead of waiting on it", async () => {
  await withTempDir(async (dir) => {
    const pipe = join(dir, "secret.pipe");
    const made = await new Deno.Command("mkfifo", { args: ["-m", "600", pipe] }).output();
    assert.ok(made.success, new TextDecoder().decode(made.stderr));
    const config = join(dir, "config.yaml");
    const base = [`watch_path: ${JSON.stringify(join(dir, "watch"))}`, "remote_base_path: /data"];
    const cases: Array<[string[], string, string]> = [
      [
        ["remote_host: example.invalid", `ssh_identity_file: ${JSON.stringify(pipe)}`],
        `${config}:4: ssh_identity_file of job default: ${pipe} is not a regular file ` +
        "(a device, a pipe?); give the file holding the private key",
        KEY_SHAPED,
      ],
      [
        [
          "transfer_method: ftp",
          "remote_host: example.invalid",
          "remote_user: obs",
          `ftp_password_file: ${JSON.stringify(pipe)}`,
        ],
        `${config}:6: ftp_password_file of job default: ${pipe} is not a regular file ` +
        "(a device, a pipe?); give the file holding the password",
        "secret\n",
      ],
      [
        [
          "transfer_method: local",
          'status_listen: "127.0.0.1:8765"',
          `status_token_file: ${JSON.stringify(pipe)}`,
        ],
        `${config}:5: status_token_file: ${pipe} is not a regular file (a device, a pipe?); ` +
        "give the file itself",
        "0123456789abcdef0123456789abcdef\n",
      ],
    ];
    for (const [keys, expected, written] of cases) {
      await Deno.writeTextFile(config, [...base, ...keys, ""].join("\n"), { mode: 0o600 });
      // Whatever reads the pipe gets a file's worth of text, as a program feeding it would give.
      const writer = pipeWriter(pipe, written);
      const out = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
      await writer.stop();
      assert.equal(out.code, 2, out.stderr);
      assert.ok(out.stderr.includes(expected), out.stderr);
      assert.doesNotMatch(out.stderr, /\n\s+at /, "no stack trace");
    }
  });
});

Deno.test("an ssh_identity_file, ftp_password_file or ftp_ca_file the account cannot read is refused with its line by config validate and run, not taken for a refused login", async () => {
  await withTempDir(async (dir) => {
    const key = join(dir, "id_ed25519");
    const password = join(dir, "ftp-password");
    const locked = join(dir, "locked");
    await Deno.mkdir(locked, { mode: 0o700 });
    const ca = join(locked, "ca.pem");
    await Deno.writeTextFile(key, KEY_SHAPED, { mode: 0o600 });
    await Deno.writeTextFile(password, "secret\n", { mode: 0o600 });
    await Deno.writeTextFile(ca, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    const config = join(dir, "config.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(dir, "watch"))}`,
        "remote_base_path: /data",
        "remote_host: example.invalid",
        "jobs:",
        "  - name: north",
        `    ssh_identity_file: ${JSON.stringify(key)}`,
        "  - name: south",
        "    transfer_method: ftp",
        "    remote_user: obs",
        `    ftp_password_file: ${JSON.stringify(password)}`,
        `    ftp_ca_file: ${JSON.stringify(ca)}`,
        "    remote_base_path: /data/south",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    // As the files' owner, without root's power to read any file.
    const cli = (args: string[]) =>
      runCli(["-c", config, ...args], { env: env(dir), honourFileModes: true });
    const ok = await cli(["config", "validate"]);
    assert.equal(ok.code, 0, ok.stderr);

    await Deno.chmod(key, 0o000);
    await Deno.chmod(password, 0o200);
    await Deno.chmod(locked, 0o600);
    for (const args of [["config", "validate"], ["run", "--once"]]) {
      const refused = await cli(args);
      assert.equal(refused.code, 2, refused.stderr);
      for (
        const expected of [
          `${config}:6: ssh_identity_file of job north: ${key} cannot be read by this account ` +
          "(permission denied by its mode or owner); make it readable by the account the daemon " +
          "runs as (its owner, mode 600)",
          `${config}:10: ftp_password_file of job south: ${password} cannot be read by this ` +
          "account (permission denied by its mode or owner)",
          `${config}:11: ftp_ca_file of job south: ${ca} cannot be read by this account ` +
          "(permission denied by a folder on its way); make it readable by the account the " +
          "daemon runs as (e.g. mode 644)",
        ]
      ) assert.ok(refused.stderr.includes(expected), refused.stderr);
      assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");
    }
  });
});

Deno.test("config validate warns of an ssh_identity_file protected by a passphrase (OpenSSH, PEM and PKCS#8 keys), with its line and the ssh-keygen -p that removes it; not of one without", async () => {
  await withTempDir(async (dir) => {
    const key = join(dir, "id_key");
    const config = join(dir, "config.yaml");
    await writeConfig(config, {
      watch_path: join(dir, "watch"),
      remote_host: "example.invalid",
      remote_base_path: "/data",
      ssh_identity_file: key,
    });
    await Deno.chmod(config, 0o600);
    const keygen = async (passphrase: string, ...args: string[]) => {
      await Deno.remove(key).catch(() => {});
      const made = await new Deno.Command("ssh-keygen", {
        args: ["-q", "-N", passphrase, "-C", "test", "-f", key, ...args],
      }).output();
      assert.ok(made.success, new TextDecoder().decode(made.stderr));
    };
    const warning = `warning: ${config}:5: ssh_identity_file of job default: ${key} is ` +
      "protected by a passphrase, which ssh cannot ask for here: logins are refused unless " +
      "ssh-agent holds the key (a service started at boot has none); remove it with: " +
      `ssh-keygen -p -f ${key}, or give a key without one`;
    for (
      const args of [["-t", "ed25519"], ["-t", "rsa", "-b", "2048", "-m", "PEM"], [
        "-t",
        "ecdsa",
        "-m",
        "PKCS8",
      ]]
    ) {
      await keygen("a passphrase", ...args);
      const warned = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
      assert.equal(warned.code, 0, warned.stderr);
      assert.ok(warned.stderr.includes(warning), `${args.join(" ")}: ${warned.stderr}`);
      await keygen("", ...args);
      const quiet = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
      assert.equal(quiet.code, 0, quiet.stderr);
      assert.doesNotMatch(quiet.stderr, /passphrase/, `${args.join(" ")}: ${quiet.stderr}`);
    }
  });
});

Deno.test("config validate and run warn of an ftp_password_env that is not set, with its line (every login would fail); not of one that is", async () => {
  await withTempDir(async (dir) => {
    const config = join(dir, "config.yaml");
    const variable = "ITX_TEST_FTP_PASSWORD_NOWHERE";
    await Deno.mkdir(join(dir, "watch"));
    await writeConfig(config, {
      watch_path: join(dir, "watch"),
      transfer_method: "ftp",
      remote_host: "archive.invalid",
      remote_user: "obs",
      ftp_password_env: variable,
      remote_base_path: "/in",
      log_file: "",
    });
    await Deno.chmod(config, 0o600);
    const warning = `${config}:6: ftp_password_env of job default: the variable ${variable} is ` +
      "not set here, so a daemon started from here could not log in: set it (export " +
      `${variable}=...) where image-transfer runs, or give ftp_password_file instead`;
    const warned = await runCli(["-c", config, "config", "validate"], { env: env(dir) });
    assert.equal(warned.code, 0, warned.stderr);
    assert.ok(warned.stderr.includes(`warning: ${warning}`), warned.stderr);
    const run = await runCli(["-c", config, "run", "--once"], { env: env(dir) });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`WARNING .*${variable} is not set here`));
    const quiet = await runCli(["-c", config, "config", "validate"], {
      env: { ...env(dir), [variable]: "secret" },
    });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /not set/);
  });
});
