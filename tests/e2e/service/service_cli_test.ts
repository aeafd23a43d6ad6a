/**
 * `install-service` / `uninstall-service` end to end through the real CLI:
 * `--print` shows the plan, `--root` installs under a temporary prefix (no
 * systemctl), re-installing is idempotent and uninstalling removes exactly
 * what was written.
 */
import assert from "node:assert/strict";
import { join, relative, win32 } from "node:path";
import { cliArgv, runCli, runProgram } from "../../helpers/cli.ts";
import { noSystemdPath } from "../../helpers/no_systemd.ts";
import { makeTempDirOutsideTmp } from "../../helpers/service_render.ts";

const SYSTEM_UNIT = "etc/systemd/system/image-transfer.service";

/** Keep deno's cache where it is when the tests move HOME. */
const DENO_DIR = Deno.env.get("DENO_DIR") ??
  join(Deno.env.get("XDG_CACHE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".cache"), "deno");

/** A temp home with a valid config in a folder whose name has a space. */
async function makeHome(): Promise<{ home: string; config: string; env: Record<string, string> }> {
  const home = await Deno.makeTempDir({ prefix: "it-svc-home-" });
  const dir = join(home, "my configs");
  await Deno.mkdir(join(home, "watch"), { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  const config = join(dir, "config.yaml");
  await Deno.writeTextFile(
    config,
    [
      `watch_path: ${JSON.stringify(join(home, "watch"))}`,
      "transfer_method: local",
      `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
      `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
      "",
    ].join("\n"),
  );
  return {
    home,
    config,
    env: { HOME: home, USER: "observer", SUDO_USER: "", XDG_CONFIG_HOME: "", DENO_DIR },
  };
}

type Home = Awaited<ReturnType<typeof makeHome>>;

/** Run `body` with a home from {@linkcode makeHome}, removed after. */
async function withHome(body: (home: Home) => Promise<void>): Promise<void> {
  const made = await makeHome();
  try {
    await body(made);
  } finally {
    await Deno.remove(made.home, { recursive: true });
  }
}

/** {@linkcode withHome} with an empty `--root` folder too, removed after. */
function withHomeAndRoot(body: (home: Home & { root: string }) => Promise<void>): Promise<void> {
  return withHome(async (made) => {
    const root = await Deno.makeTempDir({ prefix: "it-svc-root-" });
    try {
      await body({ ...made, root });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

/**
 * Run `body` with a home outside /tmp holding watch and dest folders, a folder for hooks in
 * /tmp that comes first on PATH, an empty `--root` folder, the config's base lines and
 * `install` (install-service into the root); all three folders are removed after.
 */
async function withHooksHome(
  body: (setup: {
    home: string;
    hooks: string;
    root: string;
    config: string;
    lines: string[];
    env: Record<string, string>;
    install: () => ReturnType<typeof runCli>;
  }) => Promise<void>,
): Promise<void> {
  const home = await makeTempDirOutsideTmp("it-svc-home-");
  const hooks = await Deno.makeTempDir({ prefix: "it-svc-hooks-" });
  const root = await Deno.makeTempDir({ prefix: "it-svc-root-" });
  try {
    await Deno.mkdir(join(home, "watch"));
    await Deno.mkdir(join(home, "dest"));
    const config = join(home, "config.yaml");
    const lines = [
      `watch_path: ${JSON.stringify(join(home, "watch"))}`,
      "transfer_method: local",
      `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
      `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
    ];
    // A bare program name counts at the path PATH gives it.
    const PATH = `${hooks}:${Deno.env.get("PATH")}`;
    const env = {
      HOME: home,
      USER: "observer",
      SUDO_USER: "",
      XDG_CONFIG_HOME: "",
      DENO_DIR,
      PATH,
    };
    const install = () => runCli(["-c", config, "install-service", "--root", root], { env });
    await body({ home, hooks, root, config, lines, env, install });
  } finally {
    for (const dir of [home, hooks, root]) await Deno.remove(dir, { recursive: true });
  }
}

/** Every folder below `dir`, relative, sorted. */
async function listFolders(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isDirectory) continue;
    const path = join(dir, entry.name);
    out.push(relative(base, path), ...await listFolders(path, base));
  }
  return out.sort();
}

/** Every file below `dir`, relative, sorted. */
async function listFiles(dir: string, base = dir): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await listFiles(path, base));
    else out.push(relative(base, path));
  }
  return out.sort();
}

Deno.test("install-service --print shows the checks, the unit, the folders and the systemctl commands, and writes nothing", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    const out = await runCli(["-c", config, "install-service", "--print", "--root", root], { env });
    assert.equal(out.code, 0, out.stderr);
    const lines = out.stdout.split("\n");
    assert.deepEqual(lines.slice(0, 2), [
      "would check: systemctl show --property=Version succeeds",
      "would check: /run/systemd/system exists",
    ]);
    const state = join(home, ".local", "state", "image-transfer");
    assert.ok(
      lines.some((line) => line.startsWith(`would create ${state} if missing`)),
      out.stdout,
    );
    assert.ok(
      lines.some((line) => line.startsWith(`would create ${join(home, "logs")} if missing`)),
      out.stdout,
    );
    const begin = lines.indexOf("would write /etc/systemd/system/image-transfer.service (UTF-8):");
    assert.ok(begin > 0, out.stdout);
    assert.equal(lines[begin + 1], "-----BEGIN FILE-----");
    assert.ok(lines.includes("User=observer"), out.stdout);
    const execStart = lines.find((line) => line.startsWith("ExecStart="));
    assert.ok(execStart?.endsWith(` run -c "${config}"`), execStart);
    const readWrite = lines.find((line) => line.startsWith("ReadWritePaths="));
    assert.equal(
      readWrite,
      `ReadWritePaths=-${state} -${join(home, "dest")} -${join(home, "logs")}`,
    );
    assert.ok(lines.includes("ProtectSystem=strict"));
    assert.ok(lines.includes("-----END FILE-----"));
    assert.deepEqual(lines.filter((line) => line.startsWith("would run")), [
      "would run: systemctl daemon-reload",
      "would run: systemctl enable --now image-transfer.service",
    ]);
    // Then the notes an install prints, after the plan (the file's block stays only the file).
    const notes = lines.slice(
      lines.indexOf("would run: systemctl enable --now image-transfer.service") + 1,
    )
      .filter((line) => line !== "");
    assert.deepEqual(notes.slice(0, 3), [
      "Status: systemctl status image-transfer",
      "Logs:   journalctl -u image-transfer -f",
      `Log file: ${join(home, "logs", "image_transfer.log")}`,
    ]);
    // The test's home is in /tmp; the destination is not in --root: made where it is installed.
    assert.match(notes[3], /^Note: .*\/config\.yaml.* lie in \/tmp or \/var\/tmp, which a private/);
    const dest = join(home, "dest");
    assert.equal(
      notes[4],
      `Note: the folder ${dest} is not in --root ${root} (${join(root, dest)} does not exist), ` +
        "and the service may write only into folders that exist when it starts: on the system " +
        `installed from ${root}, create ${dest} (writable by observer) before the service starts`,
    );
    assert.equal(notes.length, 5, out.stdout);
    // Without --root the folders are this machine's: one missing here is to be made here.
    const here = await runCli(["-c", config, "install-service", "--print", "--os", "linux"], {
      env,
    });
    assert.equal(here.code, 0, here.stderr);
    assert.ok(
      here.stdout.includes(
        `Note: the folder ${dest} does not exist, and the service may write only into folders ` +
          "that exist when it starts: create it (writable by observer) before the service " +
          "starts, or restart the service once it is there (sudo systemctl restart " +
          "image-transfer)\n",
      ),
      here.stdout,
    );
    assert.ok(
      !lines.slice(begin, lines.indexOf("-----END FILE-----")).some((line) =>
        /^(Note|Status|Logs):/.test(line)
      ),
    );
    assert.deepEqual(await listFiles(root), []);
    assert.deepEqual(await listFiles(home), ["my configs/config.yaml"]);
  }));

Deno.test("install-service --print without HOME (a configuration tool's command) takes the account's home from /etc/passwd", () =>
  withHome(async ({ home, env }) => {
    const config = join(home, "absolute.yaml");
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(home, "watch"))}`,
        "transfer_method: local",
        `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
        `state_dir: ${JSON.stringify(join(home, "state"))}`,
        'log_file: ""',
        "",
      ].join("\n"),
    );
    const { HOME: _, ...withoutHome } = env;
    const out = await runProgram("env", [
      ...["-u", "HOME", "-u", "USERPROFILE", Deno.execPath()],
      ...cliArgv(["-c", config, "install-service", "--print", "--os", "linux"]),
    ], { env: withoutHome });
    // Before: exit 1, "Cannot find the home folder: neither HOME nor USERPROFILE is set".
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^would write \/etc\/systemd\/system\/image-transfer\.service/m);
    assert.match(out.stdout, /^User=observer$/m);
  }));

Deno.test("install-service: source clean-up makes the watch and archive folders writable; paths in /tmp are named", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    await Deno.writeTextFile(
      config,
      [
        "transfer_method: local",
        `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
        "jobs:",
        `  - watch_path: ${JSON.stringify(join(home, "watch"))}`,
        `    remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
        "    after_transfer: move",
        "    archive_path: ../archive",
        `  - watch_path: ${JSON.stringify(join(home, "camera 2"))}`,
        `    remote_base_path: ${JSON.stringify(join(home, "dest 2"))}`,
        "    after_transfer: delete",
        `  - watch_path: ${JSON.stringify(join(home, "kept"))}`,
        `    remote_base_path: ${JSON.stringify(join(home, "dest 3"))}`,
        "",
      ].join("\n"),
    );
    const out = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(out.code, 0, out.stderr);
    const unit = await Deno.readTextFile(join(root, SYSTEM_UNIT));
    const readWrite = /^ReadWritePaths=(.*)$/m.exec(unit)?.[1];
    const state = join(home, ".local", "state", "image-transfer");
    const written = [
      `-${join(home, "archive")}`,
      `"-${join(home, "camera 2")}"`,
      `-${join(home, "dest")}`,
      `"-${join(home, "dest 2")}"`,
      `"-${join(home, "dest 3")}"`,
      `-${join(home, "logs")}`,
      `-${state}`,
      `-${join(home, "watch")}`,
    ];
    assert.deepEqual(
      readWrite?.match(/"-[^"]*"|-\S+/g)?.sort(),
      written.sort(),
    );
    assert.ok(!readWrite?.includes(join(home, "kept")), "a kept source's folder stays read-only");
    // Looked for under --root: the watch folder, there on this machine, is not there either.
    for (const folder of ["archive", "camera 2", "dest", "watch"]) {
      assert.ok(
        out.stdout.includes(
          `Note: the folder ${join(home, folder)} is not in --root ${root} ` +
            `(${join(root, home, folder)} does not exist)`,
        ),
        `${folder}:\n${out.stdout}`,
      );
    }
    // One made under --root is there for the service.
    await Deno.mkdir(join(root, home, "dest"), { recursive: true });
    const again = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!again.stdout.includes(`folder ${join(home, "dest")} is not`), again.stdout);
    assert.match(again.stdout, new RegExp(`folder ${join(home, "archive")} is not in --root`));
    // The test's home is in /tmp: a private /tmp would hide it from the daemon.
    assert.doesNotMatch(unit, /^PrivateTmp=/m);
    assert.match(
      out.stdout,
      /^Note: .*\/config\.yaml.* lie in \/tmp or \/var\/tmp, which a private \/tmp would hide: the service shares the system's \/tmp;/m,
    );
  }));

Deno.test("install-service: a hook or scheduled command in /tmp makes the unit share /tmp, and says so", () =>
  withHooksHome(async ({ hooks, root, config, lines, install }) => {
    const hook = join(hooks, "s.sh");
    const nightly = join(hooks, "nightly");
    for (const program of [hook, nightly]) {
      await Deno.writeTextFile(program, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    }
    // Without hooks nothing of theirs is named (the program itself may lie in /tmp when the
    // checkout does, so the unit may share /tmp already).
    await Deno.writeTextFile(config, [...lines, ""].join("\n"));
    const clean = await install();
    assert.equal(clean.code, 0, clean.stderr);
    assert.ok(!clean.stdout.includes(hooks), clean.stdout);
    for (
      const [keys, shown] of [
        [[`on_transfer: [${JSON.stringify(hook)}, --quick]`], [hook]],
        [[
          "schedules:",
          `  - {every_seconds: 60, action: command, command: [${JSON.stringify(nightly)}]}`,
        ], [nightly]],
        // A bare name (s.sh) found in /tmp only is refused: the service's PATH lacks it.
        [[`on_failure: [${JSON.stringify(hook)}]`], [hook]],
      ] as const
    ) {
      await Deno.writeTextFile(config, [...lines, ...keys, ""].join("\n"));
      const out = await install();
      assert.equal(out.code, 0, out.stderr);
      const unit = await Deno.readTextFile(join(root, SYSTEM_UNIT));
      assert.doesNotMatch(unit, /^PrivateTmp=/m, keys.join("\n"));
      const note = out.stdout.split("\n").find((line) => line.includes("in /tmp or /var/tmp"));
      assert.match(
        note ?? "",
        /^Note: .* in \/tmp or \/var\/tmp, which a private \/tmp would hide/,
      );
      for (const program of shown) assert.ok(note?.includes(program), out.stdout);
    }
  }));

Deno.test("install-service refuses a hook named by a bare name the service's PATH does not find (only the installing shell's PATH has it), naming the key and the path to write", () =>
  withHooksHome(async ({ hooks, root, config, lines, env, install }) => {
    const hook = join(hooks, "notify-observer");
    await Deno.writeTextFile(hook, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    await Deno.writeTextFile(
      config,
      [...lines, "on_failure: [notify-observer, --now]", ""].join("\n"),
    );
    // `run` in this shell finds it: the service, with systemd's PATH, would not.
    const validate = await runCli(["-c", config, "config", "validate"], { env });
    assert.equal(validate.code, 0, validate.stderr);
    const refused = await install();
    assert.equal(refused.code, 2, refused.stdout);
    assert.match(
      refused.stderr,
      new RegExp(
        `config\\.yaml:5: on_failure of job default: "notify-observer" is ${hook} on your PATH, ` +
          "but the service runs with PATH=/usr/local/sbin:/usr/local/bin:.*, where it is not " +
          `found; write the program's absolute path \\(${hook}\\) in the config`,
      ),
    );
    assert.doesNotMatch(refused.stderr, /^\s+at /m);
    assert.equal(await Deno.stat(join(root, SYSTEM_UNIT)).catch(() => null), null);
    // A bare name the service finds as the same program (here: sh) is installed.
    await Deno.writeTextFile(config, [...lines, "on_failure: [sh, -c, 'exit 0']", ""].join("\n"));
    const installed = await install();
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(await Deno.readTextFile(join(root, SYSTEM_UNIT)), /^ExecStart=/m);
  }));

Deno.test("install-service: a job with ftp_password_env is warned of: the service does not get this shell's variable", () =>
  withHome(async ({ home, config, env }) => {
    await Deno.writeTextFile(
      config,
      [
        `watch_path: ${JSON.stringify(join(home, "watch"))}`,
        "transfer_method: ftp",
        "remote_host: archive.example.org",
        "remote_user: obs",
        "ftp_password_env: OBS_FTP_PASSWORD",
        "remote_base_path: /incoming",
        `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
        "",
      ].join("\n"),
    );
    const out = await runCli(["-c", config, "install-service", "--user", "--print"], {
      env: { ...env, OBS_FTP_PASSWORD: "secret" },
    });
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stderr,
      /warning: job default reads its FTP password from the environment variable OBS_FTP_PASSWORD \(ftp_password_env\), but the service starts with the service manager's environment, not this shell's: .*`systemctl --user edit image-transfer`.*OBS_FTP_PASSWORD=<password>.*; or use ftp_password_file/,
    );
    assert.doesNotMatch(out.stdout + out.stderr, /secret/);
    const windows = await runCli(
      ["-c", config, "install-service", "--os", "windows", "--print"],
      { env },
    );
    assert.match(
      windows.stderr,
      /OBS_FTP_PASSWORD .*a user or system environment variable \(`setx`\)/,
    );
  }));

Deno.test("install-service --os windows: a watch folder on a //server/share path is warned of for the boot task (S4U), not for --user", () =>
  withHome(async ({ home, config, env }) => {
    await Deno.writeTextFile(
      config,
      [
        'watch_path: "//nas/instrument/Camera Data"',
        "transfer_method: local",
        `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
        `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
        "",
      ].join("\n"),
    );
    const boot = await runCli(["-c", config, "install-service", "--os", "windows", "--print"], {
      env,
    });
    assert.equal(boot.code, 0, boot.stderr);
    assert.match(
      boot.stderr,
      /^warning: watch_path of job default \/\/nas\/instrument\/Camera Data is on the Windows share \\\\nas\\instrument, which the boot task cannot open: .*--user/m,
    );
    assert.equal(boot.stderr.match(/Windows share/g)?.length, 1, boot.stderr);
    const logon = await runCli(
      ["-c", config, "install-service", "--os", "windows", "--user", "--print"],
      { env },
    );
    assert.equal(logon.code, 0, logon.stderr);
    assert.doesNotMatch(logon.stderr, /Windows share/);
  }));

Deno.test("install-service --os windows --print here: a config written for Windows (drive paths) is planned without a word of its paths; for macOS they are warned of; for this OS refused", () =>
  withHome(async ({ config, env }) => {
    await Deno.writeTextFile(
      config,
      [
        "watch_path: 'C:/Camera/images'",
        "state_dir: 'D:\\image-transfer state'",
        "transfer_method: scp",
        "remote_host: archive.example.org",
        "remote_base_path: /srv/incoming",
        "",
      ].join("\n"),
    );
    const planned = await runCli(["-c", config, "install-service", "--os", "windows", "--print"], {
      env,
    });
    assert.equal(planned.code, 0, planned.stderr);
    assert.match(planned.stdout, /<Task version=/);
    // Windows paths in a Windows task: that machine's, as they should be.
    assert.doesNotMatch(planned.stderr, /Windows path|refuses it/);
    const mac = await runCli(["-c", config, "install-service", "--os", "darwin", "--print"], {
      env,
    });
    assert.equal(mac.code, 0, mac.stderr);
    for (const [line, key] of [[1, "watch_path of job default"], [2, "state_dir"]] as const) {
      assert.match(
        mac.stderr,
        new RegExp(
          `^warning: .*config\\.yaml:${line}: ${key}: .* is a Windows path .*which macOS does not have; .*$`,
          "m",
        ),
      );
    }
    assert.doesNotMatch(mac.stderr, /on this machine$/m);
    const here = await runCli(["-c", config, "install-service", "--print"], { env });
    assert.equal(here.code, 2, here.stdout);
    assert.match(here.stderr, /^error: .*config\.yaml:2: state_dir: .* is a Windows path/);
    assert.match(here.stderr, /config\.yaml:1: watch_path of job default: .* is a Windows path/);
  }));

Deno.test("install-service --os darwin: a watch folder in ~/Documents is warned of (macOS privacy protection keeps launchd jobs out), a folder elsewhere is not", () =>
  withHome(async ({ home, config, env }) => {
    const write = (watch: string) =>
      Deno.writeTextFile(
        config,
        [
          `watch_path: ${JSON.stringify(watch)}`,
          "transfer_method: local",
          `remote_base_path: ${JSON.stringify(join(home, "dest"))}`,
          `log_file: ${JSON.stringify(join(home, "logs", "image_transfer.log"))}`,
          "",
        ].join("\n"),
      );
    await write(join(home, "Documents", "Camera Data"));
    const args = ["-c", config, "install-service", "--os", "darwin", "--user", "--print"];
    const guarded = await runCli(args, { env });
    assert.equal(guarded.code, 0, guarded.stderr);
    const documents = join(home, "Documents");
    assert.ok(
      guarded.stderr.includes(
        `warning: watch_path of job default ${documents}/Camera Data is in ${documents}, which ` +
          "macOS privacy protection keeps a launchd service out of",
      ),
      guarded.stderr,
    );
    assert.match(guarded.stderr, /Full Disk Access/);
    await write(join(home, "watch"));
    const plain = await runCli(args, { env });
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /Full Disk Access/);
  }));

Deno.test("install-service --user --print uses ~/.config/systemd/user and systemctl --user", () =>
  withHome(async ({ home, config, env }) => {
    const out = await runCli(["-c", config, "install-service", "--user", "--print"], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.ok(
      out.stdout.startsWith(
        "would check: systemctl --user show --property=Version succeeds\n" +
          "would check: /run/systemd/system exists\n" +
          `would write ${home}/.config/systemd/user/image-transfer.service (UTF-8):\n`,
      ),
      out.stdout,
    );
    assert.doesNotMatch(out.stdout, /^User=/m);
    assert.doesNotMatch(out.stdout, /^(ReadWritePaths|ProtectSystem|CapabilityBoundingSet)=/m);
    assert.match(out.stdout, /^SystemCallFilter=@system-service/m);
    assert.match(out.stdout, /^WantedBy=default\.target$/m);
    assert.match(out.stdout, /^would run: systemctl --user enable --now image-transfer\.service$/m);
    assert.deepEqual(await listFiles(home), ["my configs/config.yaml"]);
  }));

Deno.test("install-service --root writes exactly the unit; re-running is idempotent; uninstall removes only it", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    const other = join(root, "etc/systemd/system/other.service");
    await Deno.mkdir(join(other, ".."), { recursive: true });
    await Deno.writeTextFile(other, "[Unit]\n");

    const first = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^Installed the service: /m);
    assert.match(first.stdout, /^skipped \(--root\): systemctl daemon-reload$/m);
    assert.match(first.stdout, /^Logs: +journalctl -u image-transfer/m);
    assert.ok(first.stdout.includes(`Log file: ${join(home, "logs", "image_transfer.log")}`));
    assert.deepEqual(await listFiles(root), [SYSTEM_UNIT, "etc/systemd/system/other.service"]);
    const unit = await Deno.readTextFile(join(root, SYSTEM_UNIT));
    assert.match(unit, /^ExecStart=.* run -c ".*my configs\/config\.yaml"$/m);
    assert.ok(!unit.includes("{{"));
    const verified = await new Deno.Command("systemd-analyze", {
      args: ["verify", "--man=no", join(root, SYSTEM_UNIT)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(verified.code, 0, new TextDecoder().decode(verified.stderr));

    const again = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Already installed, up to date: /m);
    // Before: "wrote …" above "Already installed, up to date", as if it had changed.
    assert.match(again.stdout, /^unchanged .*image-transfer\.service$/m);
    assert.doesNotMatch(again.stdout, /^wrote /m);
    assert.equal(await Deno.readTextFile(join(root, SYSTEM_UNIT)), unit);
    assert.deepEqual(await listFiles(root), [SYSTEM_UNIT, "etc/systemd/system/other.service"]);

    const moved = join(home, "moved.yaml");
    await Deno.copyFile(config, moved);
    const updated = await runCli(["-c", moved, "install-service", "--root", root], { env });
    assert.equal(updated.code, 0, updated.stderr);
    assert.match(updated.stdout, /^Already installed, updated: /m);
    assert.match(
      updated.stdout,
      /^skipped \(--root\): systemctl restart image-transfer\.service$/m,
    );
    assert.match(await Deno.readTextFile(join(root, SYSTEM_UNIT)), /run -c \S*moved\.yaml$/m);

    const printed = await runCli(["uninstall-service", "--print", "--root", root], { env });
    assert.equal(printed.code, 0, printed.stderr);
    assert.deepEqual(printed.stdout.trim().split("\n"), [
      "would run: systemctl disable --now image-transfer.service   (a failure is only a warning)",
      "would remove /etc/systemd/system/image-transfer.service",
      "would run: systemctl daemon-reload",
    ]);

    const removed = await runCli(["uninstall-service", "--root", root], { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^Uninstalled the service: removed /m);
    assert.deepEqual(await listFiles(root), ["etc/systemd/system/other.service"]);

    const nothing = await runCli(["uninstall-service", "--root", root], { env });
    assert.equal(nothing.code, 0, nothing.stderr);
    assert.match(nothing.stdout, /^Nothing to uninstall: .* does not exist$/m);
  }));

Deno.test("install-service --user --root and uninstall-service --user --root", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    const out = await runCli(["-c", config, "install-service", "--user", "--root", root], { env });
    assert.equal(out.code, 0, out.stderr);
    const unit = relative(root, join(root, home, ".config/systemd/user/image-transfer.service"));
    assert.deepEqual(await listFiles(root), [unit]);
    assert.match(out.stdout, /journalctl --user -u image-transfer/);
    assert.match(out.stdout, /loginctl enable-linger observer/);
    const removed = await runCli(["uninstall-service", "--user", "--root", root], { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await listFiles(root), []);
  }));

Deno.test("install-service --os windows --root writes a boot task (S4U) as UTF-16LE with a BOM; --user a logon task", () =>
  withHomeAndRoot(async ({ config, env, root }) => {
    const winEnv = { ...env, USERNAME: "Observer", USERDOMAIN: "OBS" };
    const out = await runCli(["-c", config, "install-service", "--os", "windows", "--root", root], {
      env: winEnv,
    });
    assert.equal(out.code, 0, out.stderr);
    const files = await listFiles(root);
    assert.equal(files.length, 1);
    assert.ok(files[0].endsWith(".config/image-transfer/ImageTransferDaemon.xml"), files[0]);
    const read = async () => {
      const bytes = await Deno.readFile(join(root, files[0]));
      assert.deepEqual([...bytes.slice(0, 4)], [0xff, 0xfe, 0x3c, 0x00]);
      return new TextDecoder("utf-16le").decode(bytes.slice(2));
    };
    const xml = await read();
    assert.match(xml, /<UserId>OBS\\Observer<\/UserId>/);
    assert.match(xml, /<LogonType>S4U<\/LogonType>/);
    assert.match(xml, /<BootTrigger>/);
    assert.doesNotMatch(xml, /<LogonTrigger>/);
    assert.match(
      out.stdout,
      /^skipped \(--root\): schtasks \/Create \/TN ImageTransferDaemon \/XML /m,
    );

    const user = await runCli(
      ["-c", config, "install-service", "--os", "windows", "--user", "--root", root],
      { env: winEnv },
    );
    assert.equal(user.code, 0, user.stderr);
    assert.match(user.stdout, /^Already installed, updated: /m);
    const logon = await read();
    assert.match(logon, /<LogonType>InteractiveToken<\/LogonType>/);
    assert.match(logon, /<LogonTrigger>/);
    assert.doesNotMatch(logon, /<BootTrigger>/);
  }));

Deno.test("install-service refuses a missing or invalid config (exit 2) and writes nothing", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    const missing = await runCli(
      ["-c", join(home, "nope.yaml"), "install-service", "--root", root],
      { env },
    );
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /Cannot install the service: config .*nope\.yaml does not exist/);
    // The init that writes that file, not the default one.
    assert.ok(
      missing.stderr.includes(
        `create it with \`image-transfer -c ${join(home, "nope.yaml")} init\``,
      ),
      missing.stderr,
    );
    await Deno.writeTextFile(config, "watch_path: [\n");
    const invalid = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(invalid.code, 2, invalid.stderr);
    assert.match(invalid.stderr, /config\.yaml/);
    assert.deepEqual(await listFiles(root), []);
  }));

Deno.test("install-service --watch/--to names the run --save-config command that writes the config, then install-service; both work as named", () =>
  withHome(async ({ home, env }) => {
    const [watch, dest] = [join(home, "watch"), join(home, "dest")];
    const file = join(home, ".config", "image-transfer", "config.yaml");
    const refused = await runCli(["install-service", "--user", "--watch", watch, "--to", dest], {
      env,
    });
    // Before: "unknown option '--watch'" and nothing more.
    assert.equal(refused.code, 2, refused.stderr);
    const run = `image-transfer run --watch ${watch} --to ${dest} --save-config ${file} --once`;
    assert.ok(
      refused.stderr.includes(
        "error: install-service takes the jobs of a config file, not --watch/--to/--save-config: " +
          `write one with \`${run}\` (it sends what is complete now and exits), then ` +
          "`image-transfer install-service --user`",
      ),
      refused.stderr,
    );
    assert.deepEqual(await listFiles(home), ["my configs/config.yaml"], "nothing written");
    // Every install-service option typed is in the command named, quoted for the shell as typed
    // (before: only --user and --allow-root, so a --print preview was named as a real install).
    const root = join(home, "pack $(root)");
    const typed = ["--print", "--root", root, "--os", "linux", "--user", "--allow-root"];
    const all = await runCli(["install-service", ...typed, "--watch", watch, "--to", dest], {
      env,
    });
    assert.equal(all.code, 2, all.stderr);
    assert.ok(
      all.stderr.includes(
        `then \`image-transfer install-service --user --print --root '${root}' --os linux ` +
          "--allow-root`",
      ),
      all.stderr,
    );
    assert.deepEqual(await listFiles(home), ["my configs/config.yaml"], "nothing written");
    // The commands as named: the config is written, and install-service takes it.
    await Deno.writeTextFile(join(watch, "a.fits"), "frame a");
    const written = await runCli(run.split(" ").slice(1), { env });
    assert.equal(written.code, 0, written.stderr);
    assert.equal(await Deno.readTextFile(join(dest, (await listFiles(dest))[0])), "frame a");
    const install = await runCli(["install-service", "--user", "--print"], { env });
    assert.equal(install.code, 0, install.stderr);
    assert.ok(install.stdout.includes(`run -c ${file}`), install.stdout);
    // With the file there, replacing it takes --force; keeping it, install-service alone.
    const again = await runCli(["install-service", "--watch", watch, "--to", dest], { env });
    assert.equal(again.code, 2, again.stderr);
    assert.ok(again.stderr.includes(`--save-config ${file} --force --once\``), again.stderr);
    assert.ok(
      again.stderr.includes(`; or, to keep ${file} as it is: \`image-transfer install-service\``),
      again.stderr,
    );
  }));

Deno.test("install-service --print --os windows --watch/--to names the run --save-config of that system's config file, in its shell's words", () =>
  withHome(async ({ home, env }) => {
    // A preview from this machine for a Windows one (the tests run on Linux or macOS).
    const watch = "D:\\frames $(x)";
    const args = [
      "install-service",
      "--print",
      "--os",
      "windows",
      "--watch",
      watch,
      "--to",
      "E:\\archive",
    ];
    const refused = await runCli(args, { env });
    assert.equal(refused.code, 2, refused.stderr);
    // Before: --save-config this machine's default file (in its home), which Windows has not, and
    // the words quoted for a POSIX shell.
    assert.ok(
      refused.stderr.includes(
        `write one with \`image-transfer run --watch 'D:\\frames $(x)' --to E:\\archive ` +
          "--save-config '%USERPROFILE%\\.config\\image-transfer\\config.yaml' --once` (it sends " +
          "what is complete now and exits), then `image-transfer install-service --print --os " +
          "windows`",
      ),
      refused.stderr,
    );
    assert.ok(!refused.stderr.includes(home), refused.stderr);
    // A -c typed for that machine is its file: written there, then given to install-service.
    const typed = await runCli(["-c", "C:\\conf\\it.yaml", ...args], { env });
    assert.equal(typed.code, 2, typed.stderr);
    assert.ok(
      typed.stderr.includes(
        "--save-config C:\\conf\\it.yaml --once` (it sends what is complete now and exits), " +
          "then `image-transfer -c C:\\conf\\it.yaml install-service --print --os windows`",
      ),
      typed.stderr,
    );
    // Linux or macOS from the other: that system's default, which its home holds.
    const other = Deno.build.os === "darwin" ? "linux" : "darwin";
    const unix = await runCli([
      "install-service",
      "--print",
      "--os",
      other,
      "--watch",
      "w",
      "--to",
      "d",
    ], {
      env,
    });
    assert.equal(unix.code, 2, unix.stderr);
    assert.ok(
      unix.stderr.includes(
        "run --watch w --to d --save-config '~/.config/image-transfer/config.yaml' --once` (it " +
          `sends what is complete now and exits), then \`image-transfer install-service --print ` +
          `--os ${other}\``,
      ),
      unix.stderr,
    );
    assert.deepEqual(await listFiles(home), ["my configs/config.yaml"], "nothing written");
  }));

Deno.test("install-service --os for another OS only previews", () =>
  withHome(async ({ config, env }) => {
    const other = Deno.build.os === "darwin" ? "windows" : "darwin";
    const out = await runCli(["-c", config, "install-service", "--os", other], { env });
    assert.equal(out.code, 2);
    assert.match(out.stderr, /--os only previews; add --print/);
    const bad = await runCli(["-c", config, "install-service", "--os", "plan9", "--print"], {
      env,
    });
    assert.equal(bad.code, 2);
  }));

Deno.test("install-service --os darwin --print as root shows a LaunchDaemon; --user a LaunchAgent", () =>
  withHome(async ({ home, config, env }) => {
    const out = await runCli(["-c", config, "install-service", "--os", "darwin", "--print"], {
      env,
    });
    assert.equal(out.code, 0, out.stderr);
    // The tests run as root: without --user, macOS gets a daemon that starts at boot.
    const daemon = "/Library/LaunchDaemons/com.image-transfer.daemon.plist";
    assert.ok(out.stdout.startsWith("would check: launchctl print system succeeds\n"), out.stdout);
    assert.ok(out.stdout.includes(`would write ${daemon} (UTF-8):\n`), out.stdout);
    assert.ok(out.stdout.includes("  <key>UserName</key>\n  <string>observer</string>\n"));
    assert.ok(out.stdout.includes(`    <string>${config}</string>\n`));
    assert.match(
      out.stdout,
      /^would run: launchctl bootstrap system .*\(if it fails: launchctl load -w /m,
    );

    const agent = await runCli(
      ["-c", config, "install-service", "--os", "darwin", "--user", "--print"],
      { env },
    );
    assert.equal(agent.code, 0, agent.stderr);
    const plist = `${home}/Library/LaunchAgents/com.image-transfer.daemon.plist`;
    assert.ok(agent.stdout.includes(`would write ${plist} (UTF-8):\n`), agent.stdout);
    assert.doesNotMatch(agent.stdout, /UserName/);
    assert.match(agent.stdout, /^would check: launchctl print gui\/\d+ succeeds$/m);
    assert.match(
      agent.stdout,
      /^would run: launchctl bootstrap gui\/\d+ .*\(if it fails: launchctl load -w /m,
    );
  }));

Deno.test("install-service --os darwin through sudo: a LaunchDaemon for the sudo user; --user is refused", () =>
  withHome(async ({ home, config, env }) => {
    const sudo = { ...env, SUDO_USER: "astro", SUDO_UID: "501", SUDO_GID: "20", USER: "root" };
    const out = await runCli(["-c", config, "install-service", "--os", "darwin", "--print"], {
      env: sudo,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.ok(out.stdout.includes("  <key>UserName</key>\n  <string>astro</string>\n"));
    assert.ok(out.stdout.includes(`    <key>HOME</key>\n    <string>${home}</string>\n`));
    const agent = await runCli(
      ["-c", config, "install-service", "--os", "darwin", "--user", "--print"],
      { env: sudo },
    );
    assert.equal(agent.code, 2);
    assert.match(agent.stderr, /Cannot install a LaunchAgent .* through sudo/);
  }));

Deno.test("install-service refuses to run the daemon as root without --allow-root (--print shows it, saying so), and warns with it", () =>
  withHomeAndRoot(async ({ config, env, root }) => {
    const asRoot = { ...env, USER: "root" };
    for (const os of ["linux", "darwin"]) {
      const refused = await runCli(
        ["-c", config, "install-service", "--os", os, "--root", root],
        { env: asRoot },
      );
      assert.equal(refused.code, 2, `${os}: ${refused.stderr}`);
      assert.match(refused.stderr, /Cannot install the service to run as root: .*--allow-root/);
      // Only shown, it is shown, with what installing it would need.
      const shown = await runCli(["-c", config, "install-service", "--os", os, "--print"], {
        env: asRoot,
      });
      assert.equal(shown.code, 0, `${os}: ${shown.stderr}`);
      assert.match(
        shown.stderr,
        /^warning: this service would run as root: installing it needs --allow-root/m,
      );
      assert.match(
        shown.stdout,
        os === "linux" ? /^User=root$/m : /<string>root<\/string>|UserName/,
      );
    }
    assert.deepEqual(await listFiles(root), []);
    const allowed = await runCli(
      ["-c", config, "install-service", "--allow-root", "--root", root],
      { env: asRoot },
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, /^warning: the service will run as root \(--allow-root\)/m);
    const unit = await Deno.readTextFile(join(root, SYSTEM_UNIT));
    assert.match(unit, /^User=root$/m);
    assert.match(unit, /^CapabilityBoundingSet=$/m, "even as root the unit keeps no capabilities");
    // Removing it needs no --allow-root.
    const removed = await runCli(["uninstall-service", "--root", root], { env: asRoot });
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await listFiles(root), []);
  }));

Deno.test("install-service on a host without a running systemd fails before writing anything", () =>
  withHome(async ({ home, config, env }) => {
    const tools = await Deno.makeTempDir({ prefix: "it-svc-tools-" });
    try {
      const noSystemd = { ...env, PATH: await noSystemdPath(tools) };
      const before = await listFolders(home);
      const system = await runCli(["-c", config, "install-service"], { env: noSystemd });
      assert.equal(system.code, 1, system.stderr);
      assert.match(
        system.stderr,
        /^error: Cannot install the service: systemctl cannot reach systemd; systemd is not running as this machine's init system \(process 1\)/m,
      );
      assert.match(
        system.stderr,
        /\(Cannot complete systemctl show --property=Version: exit code 1: System has not been booted with systemd as init system \(PID 1\)\. Can't operate\.\nFailed to connect to bus: Host is down\)\. Nothing was changed\.$/m,
      );
      assert.doesNotMatch(system.stderr, /^\s+at /m);
      assert.equal(
        await Deno.stat("/etc/systemd/system/image-transfer.service").then(() => true, () => false),
        false,
      );
      const user = await runCli(["-c", config, "install-service", "--user"], { env: noSystemd });
      assert.equal(user.code, 1, user.stderr);
      assert.match(
        user.stderr,
        /^error: Cannot install the service: systemctl --user cannot reach your systemd user manager\./m,
      );
      assert.deepEqual(await listFolders(home), before, "no state, log or unit folder was created");
      assert.deepEqual(await listFiles(home), ["my configs/config.yaml"]);
    } finally {
      await Deno.remove(tools, { recursive: true });
    }
  }));

Deno.test("install-service replaces the old tool's service: its launchd label (macOS), a unit of the same name it wrote (Linux)", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    // macOS: the old agent under its own label is unloaded and removed before ours is loaded.
    const agents = join(home, "Library", "LaunchAgents");
    await Deno.mkdir(agents, { recursive: true });
    const oldPlist = join(agents, "com.observatory.imagetransfer.plist");
    await Deno.writeTextFile(oldPlist, "<plist/>\n");
    const mac = await runCli(
      ["-c", config, "install-service", "--os", "darwin", "--user", "--print"],
      { env },
    );
    assert.equal(mac.code, 0, mac.stderr);
    const lines = mac.stdout.split("\n");
    assert.ok(
      lines.includes(
        `Would replace the old tool's service ${oldPlist} ` +
          "(written by image-transfer-service --install)",
      ),
      mac.stdout,
    );
    const bootout = lines.findIndex((l) =>
      /^would run: launchctl bootout gui\/\d+\/com\.observatory\.imagetransfer /.test(l)
    );
    const removal = lines.indexOf(`would remove ${oldPlist}`);
    const load = lines.findIndex((l) => /^would run: launchctl bootstrap gui\/\d+ /.test(l));
    assert.ok(bootout >= 0 && removal > bootout && load > removal, mac.stdout);

    // Linux: a unit of the same name that this program did not write is replaced, and said so.
    const unit = join(root, SYSTEM_UNIT);
    await Deno.mkdir(join(unit, ".."), { recursive: true });
    await Deno.writeTextFile(unit, "[Service]\nExecStart=/usr/bin/python3 -m image_transfer\n");
    const linux = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(linux.code, 0, linux.stderr);
    assert.match(
      linux.stdout,
      /^Replacing the old tool's service \/etc\/systemd\/system\/image-transfer\.service /m,
    );
    assert.match(await Deno.readTextFile(unit), /written by `image-transfer install-service`/i);
    // Ours, installed again, is not the old tool's.
    const again = await runCli(["-c", config, "install-service", "--root", root], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /old tool/);
  }));

/** Write `text` at `path` (absolute, as on the machine) under `root`, with its folders. */
async function plant(root: string, path: string, text: string): Promise<string> {
  const file = join(root, path);
  await Deno.mkdir(join(file, ".."), { recursive: true });
  await Deno.writeTextFile(file, text);
  return file;
}

const OLD_AGENT = "Library/LaunchAgents/com.observatory.imagetransfer.plist";
const OLD_DAEMON = "/Library/LaunchDaemons/com.observatory.imagetransfer.plist";
const OLD_UNIT = "[Service]\nExecStart=/usr/bin/python3 -m image_transfer\n";

Deno.test("install-service with sudo (a LaunchDaemon) replaces the old tool's LaunchAgent of the same account: in the plan and under --root", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    const agent = join(home, OLD_AGENT);
    const file = await plant(root, agent, "<plist/>\n");
    const args = ["-c", config, "install-service", "--os", "darwin", "--root", root];
    const shown = await runCli([...args, "--print"], { env });
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stdout.split("\n");
    assert.ok(
      lines.includes(
        `Would replace the old tool's service ${agent} (written by image-transfer-service --install)`,
      ),
      shown.stdout,
    );
    // The tests run as root: without --user a LaunchDaemon, and the agent is booted out of
    // the account's login session (through `asuser` if bootout is not there).
    const bootout = lines.findIndex((l) =>
      l.startsWith("would run: launchctl bootout gui/") &&
      l.includes("/com.observatory.imagetransfer   (if it fails: launchctl asuser ")
    );
    const removal = lines.indexOf(`would remove ${agent}`);
    const load = lines.indexOf(
      "would run: launchctl bootstrap system /Library/LaunchDaemons/com.image-transfer.daemon.plist" +
        "   (if it fails: launchctl load -w /Library/LaunchDaemons/com.image-transfer.daemon.plist)",
    );
    assert.ok(bootout >= 0 && removal > bootout && load > removal, shown.stdout);
    assert.ok(await Deno.stat(file).then(() => true), "--print removes nothing");

    const installed = await runCli(args, { env });
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(
      installed.stdout,
      /^Replacing the old tool's service .*com\.observatory\.imagetransfer\.plist /m,
    );
    assert.deepEqual(await listFiles(root), [
      "Library/LaunchDaemons/com.image-transfer.daemon.plist",
    ]);
  }));

Deno.test("install-service --user (a LaunchAgent) run as root replaces the old tool's LaunchDaemon", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    await plant(root, OLD_DAEMON, "<plist/>\n");
    const args = ["-c", config, "install-service", "--os", "darwin", "--user", "--root", root];
    const shown = await runCli([...args, "--print"], { env });
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stdout.split("\n");
    const bootout = lines.indexOf(
      "would run: launchctl bootout system/com.observatory.imagetransfer   (if it fails: " +
        `launchctl unload -w ${OLD_DAEMON})   (a failure is only a warning)`,
    );
    assert.ok(bootout >= 0 && lines[bootout + 1] === `would remove ${OLD_DAEMON}`, shown.stdout);
    assert.match(shown.stdout, /^Would replace the old tool's service \/Library\/LaunchDaemons\//m);

    const installed = await runCli(args, { env });
    assert.equal(installed.code, 0, installed.stderr);
    const agent = relative(
      root,
      join(root, home, "Library/LaunchAgents/com.image-transfer.daemon.plist"),
    );
    assert.deepEqual(await listFiles(root), [agent]);
  }));

Deno.test("install-service refuses (exit 2, nothing written) while another account's old LaunchAgent is there, naming the commands that remove it; --print warns", () =>
  withHomeAndRoot(async ({ config, env, root }) => {
    const theirs = `/Users/astro/${OLD_AGENT}`;
    await plant(root, theirs, "<plist/>\n");
    const args = ["-c", config, "install-service", "--os", "darwin", "--root", root];
    const refused = await runCli(args, { env });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /^error: Cannot install the service: the old tool's service is still installed where this install does not remove it; it and the new service would watch the same folders and send the same files twice/m,
    );
    // The file belongs to root here; on a Mac, to astro, whose uid the command names.
    assert.ok(
      refused.stderr.includes(
        `  ${theirs} (the account astro's): \`sudo launchctl bootout ` +
          `gui/0/com.observatory.imagetransfer\`, then \`sudo rm ${theirs}\`\n`,
      ),
      refused.stderr,
    );
    assert.deepEqual(await listFiles(root), [theirs.slice(1)], "nothing written or removed");
    // The command was typed right: no hint to read the usage.
    assert.doesNotMatch(refused.stderr, /--help for usage/);

    const shown = await runCli([...args, "--print"], { env });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(
      shown.stderr,
      /^warning: installing is refused while the old tool's service is still installed /m,
    );
    assert.ok(shown.stderr.includes(`\`sudo rm ${theirs}\``), shown.stderr);
    assert.doesNotMatch(shown.stdout, /would remove/);
  }));

Deno.test("install-service --user replaces the old tool's system unit (run as root); a system install, the old user unit of its account", () =>
  withHomeAndRoot(async ({ home, config, env, root }) => {
    // --user, the old system unit: stopped and removed through the system manager.
    const system = await plant(root, `/${SYSTEM_UNIT}`, OLD_UNIT);
    const user = ["-c", config, "install-service", "--user", "--root", root];
    const shown = await runCli([...user, "--print"], { env });
    assert.equal(shown.code, 0, shown.stderr);
    const lines = shown.stdout.split("\n");
    const stop = lines.indexOf(
      "would run: systemctl disable --now image-transfer.service   (a failure is only a warning)",
    );
    assert.ok(stop >= 0, shown.stdout);
    assert.equal(lines[stop + 1], `would remove /${SYSTEM_UNIT}`);
    assert.equal(
      lines[stop + 2],
      "would run: systemctl daemon-reload   (a failure is only a warning)",
    );
    assert.ok(
      lines.indexOf(`would write ${home}/.config/systemd/user/image-transfer.service (UTF-8):`) >
        stop,
    );
    const installed = await runCli(user, { env });
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(
      installed.stdout,
      /^Replacing the old tool's service \/etc\/systemd\/system\/image-transfer\.service /m,
    );
    assert.equal(await Deno.stat(system).then(() => true, () => false), false);
    const userUnit = relative(
      root,
      join(root, home, ".config/systemd/user/image-transfer.service"),
    );
    assert.deepEqual(await listFiles(root), [userUnit]);
    assert.ok(await Deno.remove(join(root, userUnit)).then(() => true));

    // System-wide, an old user unit of the same account: through that account's user manager.
    const oldUser = join(home, ".config/systemd/user/image-transfer.service");
    await plant(root, oldUser, OLD_UNIT);
    const wide = ["-c", config, "install-service", "--root", root];
    const plan = await runCli([...wide, "--print"], { env });
    assert.equal(plan.code, 0, plan.stderr);
    assert.ok(
      plan.stdout.includes(
        "\nwould run: systemctl --user --machine=observer@.host disable --now " +
          "image-transfer.service   (if it fails: runuser -u observer -- env " +
          "XDG_RUNTIME_DIR=/run/user/0 systemctl --user disable --now image-transfer.service)" +
          "   (a failure is only a warning)\n" +
          `would remove ${oldUser}\n`,
      ),
      plan.stdout,
    );
    const wideInstalled = await runCli(wide, { env });
    assert.equal(wideInstalled.code, 0, wideInstalled.stderr);
    assert.ok(wideInstalled.stdout.includes(`Replacing the old tool's service ${oldUser} `));
    assert.deepEqual(await listFiles(root), [SYSTEM_UNIT]);
    // Ours in the other scope is no old tool's: installing --user again leaves it alone.
    const again = await runCli(user, { env });
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /old tool/);
  }));

Deno.test("install-service refuses (exit 2) while another account's old user unit is there, with the commands; one this program wrote is not the old tool's", () =>
  withHomeAndRoot(async ({ config, env, root }) => {
    const theirs = "/home/astro/.config/systemd/user/image-transfer.service";
    await plant(root, theirs, OLD_UNIT);
    const args = ["-c", config, "install-service", "--root", root];
    const refused = await runCli(args, { env });
    assert.equal(refused.code, 2, refused.stderr);
    assert.ok(
      refused.stderr.includes(
        `  ${theirs} (the account astro's): \`sudo systemctl --user --machine=astro@.host ` +
          `disable --now image-transfer.service\`, then \`sudo rm ${theirs}\`\n`,
      ),
      refused.stderr,
    );
    assert.deepEqual(await listFiles(root), [theirs.slice(1)], "nothing written or removed");
    // Once it carries this program's mark, it is astro's own new service, not the old tool's.
    await plant(root, theirs, "# Written by `image-transfer install-service`\n" + OLD_UNIT);
    const installed = await runCli(args, { env });
    assert.equal(installed.code, 0, installed.stderr);
    assert.doesNotMatch(installed.stdout + installed.stderr, /old tool/);
  }));

Deno.test("uninstall-service --print --os for another system prints its plan (its file is that machine's, not looked for here); install-service --print --os windows writes the log file in Windows form", () =>
  withHome(async ({ home, config, env }) => {
    const windows = await runCli(["uninstall-service", "--print", "--os", "windows"], { env });
    assert.equal(windows.code, 0, windows.stderr);
    assert.doesNotMatch(windows.stdout, /Nothing to uninstall/);
    const xml = win32.join(
      win32.normalize(home),
      ".config",
      "image-transfer",
      "ImageTransferDaemon.xml",
    );
    assert.deepEqual(windows.stdout.trim().split("\n").slice(1), [
      "would run: schtasks /Change /TN ImageTransferDaemon /Disable   (a failure is only a warning)",
      "would run: schtasks /End /TN ImageTransferDaemon   (a failure is only a warning)",
      "would run: schtasks /Delete /TN ImageTransferDaemon /F   (a failure is only a warning)",
      `would remove ${xml}`,
    ]);
    assert.match(
      windows.stdout,
      /^Plan for windows \(its service file is not looked for on this machine/,
    );
    const other = Deno.build.os === "darwin" ? "linux" : "darwin";
    const there = await runCli(["uninstall-service", "--print", "--os", other, "--user"], { env });
    assert.equal(there.code, 0, there.stderr);
    assert.match(there.stdout, /^would remove \//m, there.stdout);
    // This system's plan still looks for the file here.
    const here = await runCli(["uninstall-service", "--print", "--user"], { env });
    assert.match(here.stdout, /^Nothing to uninstall: .* does not exist$/m, here.stdout);

    const install = await runCli(["-c", config, "install-service", "--os", "windows", "--print"], {
      env,
    });
    assert.equal(install.code, 0, install.stderr);
    assert.ok(
      install.stdout.includes(
        `\nLog file: ${win32.normalize(join(home, "logs", "image_transfer.log"))}\n`,
      ),
      install.stdout,
    );
  }));
