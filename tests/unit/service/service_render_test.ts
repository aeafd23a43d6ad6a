/**
 * The systemd units (system and user) checked by the tool that reads them:
 * `systemd-analyze verify` and `systemd-analyze security --offline`, with
 * hostile paths that must round-trip; and the daemon's command line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  daemonFolders,
  hiddenByPrivateTmp,
  planSystemdInstall,
  renderSystemdUnit,
  sshOptionFiles,
  systemdUnitPath,
} from "../../../src/service/systemd.ts";
import { daemonArgv } from "../../../src/service/launch.ts";
import { isDenoRuntime, RUNTIME_FLAGS } from "../../../src/version.ts";
import { fillTemplate, SYSTEMD_UNIT_TEMPLATE } from "../../../src/service/template.ts";
import { fileURLToPath } from "node:url";
import { systemdQuote } from "../../../src/service/escape.ts";
import type { ServiceTarget } from "../../../src/service/plan.ts";
import type { Config } from "../../../src/config/types.ts";
import { testJob } from "../../helpers/jobs.ts";
import { launch, makeTempDirOutsideTmp, run } from "../../helpers/service_render.ts";

const linuxSystem: ServiceTarget = {
  os: "linux",
  scope: "system",
  user: "observer",
  uid: 1000,
  home: "/home/observer",
};
const linuxUser: ServiceTarget = { ...linuxSystem, scope: "user" };

/** `systemd-analyze verify` on a unit file named image-transfer.service. */
async function verifyUnit(dir: string, unit: string, user: boolean) {
  const file = join(dir, "image-transfer.service");
  await Deno.writeTextFile(file, unit);
  const runtime = await Deno.makeTempDir({ prefix: "it-xdg-runtime-" });
  try {
    return await run(
      "systemd-analyze",
      ["verify", "--man=no", ...(user ? ["--user"] : []), file],
      { XDG_RUNTIME_DIR: runtime },
    );
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

/** The overall exposure `systemd-analyze security --offline=true` gives a unit (0 best, 10 worst). */
async function exposure(dir: string, unit: string, user: boolean): Promise<number> {
  const file = join(dir, "image-transfer.service");
  await Deno.writeTextFile(file, unit);
  const runtime = await Deno.makeTempDir({ prefix: "it-xdg-runtime-" });
  try {
    const out = await run(
      "systemd-analyze",
      ["security", "--offline=true", "--no-pager", ...(user ? ["--user"] : []), file],
      { XDG_RUNTIME_DIR: runtime },
    );
    assert.equal(out.code, 0, out.stderr);
    const level = /Overall exposure level for image-transfer\.service: (\d+\.\d+)/.exec(out.stdout);
    assert.ok(level, out.stdout);
    return Number(level[1]);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
}

/** A tiny real executable at `path` (systemd-analyze checks that ExecStart exists). */
async function makeExecutable(path: string): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(path, 0o755);
}

/** Split a unit setting's value into words: double quotes, and backslash escapes inside them. */
function splitWords(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " ") i++;
    if (i >= line.length) break;
    let word = "";
    if (line[i] === '"') {
      i++;
      while (line[i] !== '"') {
        if (line[i] === "\\") i++;
        word += line[i++];
      }
      i++;
    } else {
      while (i < line.length && line[i] !== " ") word += line[i++];
    }
    words.push(word);
  }
  return words;
}

/** Split an ExecStart= value the way systemd documents it (quotes, C escapes, %%, $$). */
function splitExecStart(line: string): string[] {
  return splitWords(line).map((word, n) => {
    const unescaped = word.replaceAll("%%", "%");
    return n === 0 ? unescaped : unescaped.replaceAll("$$", "$");
  });
}

/** Split a path list such as ReadWritePaths= (quotes, C escapes, %%; no $ expansion). */
function splitPathList(line: string): string[] {
  return splitWords(line).map((word) => word.replaceAll("%%", "%"));
}

Deno.test("systemd system unit with a space, %, $ and unicode in the program path passes systemd-analyze verify", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-unit-" });
  try {
    const exe = join(dir, "opt dir $HOME 100% é", "image-transfer");
    await makeExecutable(exe);
    const config = join(dir, `conf "q" 'a' back\\slash $HOME 50%`, "config.yaml");
    const argv = [exe, "run", "-c", config];
    const unit = renderSystemdUnit(linuxSystem, launch(argv));
    assert.ok(!unit.includes("{{"), unit);
    assert.match(unit, /^After=network-online\.target remote-fs\.target$/m);
    assert.match(unit, /^Wants=network-online\.target$/m);
    assert.match(unit, /^User=observer$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^RestartSec=\d+$/m);
    // Enough open files for transfers side by side (the daemon warns below 256).
    assert.match(unit, /^LimitNOFILE=8192$/m);
    assert.match(unit, /^WantedBy=multi-user\.target$/m);
    assert.match(unit, /^Environment=IMAGE_TRANSFER_SERVICE=systemd-system$/m);
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
    assert.deepEqual(splitExecStart(execStart), argv);
    const verified = await verifyUnit(dir, unit, false);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped unit template says it is one, and filled as install-service fills it (system, user, a private or a shared /tmp) passes systemd-analyze verify", async () => {
  const shipped = await Deno.readTextFile(
    fileURLToPath(new URL("../../../service/image-transfer.service", import.meta.url)),
  );
  // What the release ships is what install-service fills.
  assert.equal(shipped, SYSTEMD_UNIT_TEMPLATE);
  // Before: its first lines were the unit's own ("Written by `image-transfer install-service`").
  assert.match(
    shipped,
    /^\{\{#\}\} THE TEMPLATE of the systemd unit that `image-transfer install-service` writes: not a unit\n/,
  );
  for (const name of shipped.matchAll(/\{\{\??([A-Za-z_]+)\}\}/g)) {
    assert.ok(
      shipped.split("\n").some((line) => line.startsWith("{{#}}") && line.includes(name[0])),
      `the note names ${name[0]}`,
    );
  }
  const dir = await makeTempDirOutsideTmp("it-unit-");
  try {
    const exe = join(dir, "bin", "image-transfer");
    await makeExecutable(exe);
    for (const target of [linuxSystem, linuxUser]) {
      // A config in /tmp makes the system unit share /tmp ({{?sharedTmp}}); elsewhere it has its own.
      for (const config of [join(dir, "config.yaml"), "/tmp/it-shared/config.yaml"]) {
        const plan = planSystemdInstall(target, launch([exe, "run", "-c", config]), {
          update: false,
        });
        const written = plan.steps.flatMap((step) => step.kind === "write" ? [step.file] : []);
        assert.equal(written.length, 1);
        const unit = String(written[0].contents);
        assert.doesNotMatch(unit, /\{\{|TEMPLATE/, unit);
        assert.ok(unit.startsWith("# image-transfer: ship completed instrument files"), unit);
        assert.ok(unit.includes("# Written by `image-transfer install-service`"), unit);
        const verified = await verifyUnit(dir, unit, target.scope === "user");
        assert.equal(verified.code, 0, `${target.scope} ${config}: ${verified.stderr}`);
        assert.equal(verified.stderr.trim(), "", `${target.scope} ${config}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hardened system unit: systemd-analyze security --offline exposure ≤ 2.5, verify clean, folders with hostile names writable", async () => {
  const dir = await makeTempDirOutsideTmp("it-unit-");
  try {
    const exe = join(dir, "bin", "image-transfer");
    await makeExecutable(exe);
    const own = [
      join(dir, "state 100% $HOME é"),
      join(dir, `logs "q" 'a' back\\slash`),
    ];
    const written = [join(dir, "night s"), join(dir, "night s", "inside"), "/data/plain"];
    const unit = renderSystemdUnit(
      linuxSystem,
      launch([exe, "run", "-c", join(dir, "c.yaml")], { own, written }),
    );
    for (
      const line of [
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "UMask=0077",
        "SystemCallArchitectures=native",
        "SystemCallErrorNumber=EPERM",
        "RestrictNamespaces=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      ]
    ) {
      assert.ok(unit.split("\n").includes(line), `${line} in\n${unit}`);
    }
    assert.match(unit, /^SystemCallFilter=@system-service( |$)/m);
    assert.match(unit, /^SystemCallFilter=~@privileged @resources$/m);
    // V8 needs writable executable memory.
    assert.doesNotMatch(unit, /^MemoryDenyWriteExecute=/m);
    const readWrite = /^ReadWritePaths=(.*)$/m.exec(unit)?.[1] ?? "";
    // Every folder, with "-" (a missing one does not stop the start); one inside another is left out.
    assert.deepEqual(
      splitPathList(readWrite).sort(),
      [...own, join(dir, "night s"), "/data/plain"].map((path) => `-${path}`).sort(),
    );
    const verified = await verifyUnit(dir, unit, false);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "");
    const level = await exposure(dir, unit, false);
    assert.ok(level <= 2.5, `exposure ${level}`);
    const asRoot = renderSystemdUnit(
      { ...linuxSystem, user: "root" },
      launch([exe, "run", "-c", join(dir, "c.yaml")], { own, written }),
    );
    const rootLevel = await exposure(dir, asRoot, false);
    assert.ok(rootLevel <= 2.5, `exposure as root ${rootLevel}`);
    // The check is real: the same unit without its sandbox is rated far worse.
    const bare = unit.split("\n").filter((line) =>
      !/^(NoNewPrivileges|CapabilityBoundingSet|Protect\w+|Private\w+|SystemCall\w+|Restrict\w+)=/
        .test(line)
    ).join("\n");
    assert.ok((await exposure(dir, bare, false)) > 5, "an unhardened unit scores worse");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a system unit whose program, config or folders lie in /tmp shares /tmp (a private one would hide them), still ≤ 2.5", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "it-unit-tmp-" });
  const home = await makeTempDirOutsideTmp("it-unit-");
  try {
    const exe = join(home, "bin", "image-transfer");
    await makeExecutable(exe);
    const config = join(home, "c.yaml");
    const own = [join(home, "state"), join(home, "logs")];
    const clean = renderSystemdUnit(linuxSystem, launch([exe, "run", "-c", config], { own }));
    assert.ok(clean.split("\n").includes("PrivateTmp=yes"), clean);
    assert.deepEqual(hiddenByPrivateTmp(launch([exe, "run", "-c", config], { own })), []);
    const tmpExe = join(tmp, "bin", "image-transfer");
    await makeExecutable(tmpExe);
    const cases: [string, ReturnType<typeof launch>][] = [
      [tmpExe, launch([tmpExe, "run", "-c", config], { own })],
      [join(tmp, "c.yaml"), launch([exe, "run", "-c", join(tmp, "c.yaml")], { own })],
      [join(tmp, "state"), launch([exe, "run", "-c", config], { own: [join(tmp, "state")] })],
      [
        join(tmp, "dest"),
        launch([exe, "run", "-c", config], { own, written: [join(tmp, "dest")] }),
      ],
      ["/var/tmp/camera", launch([exe, "run", "-c", config], { own, read: ["/var/tmp/camera"] })],
    ];
    for (const [path, daemon] of cases) {
      assert.deepEqual(hiddenByPrivateTmp(daemon), [path]);
      const unit = renderSystemdUnit(linuxSystem, daemon);
      assert.doesNotMatch(unit, /^PrivateTmp=/m, path);
      assert.match(unit, /^# No PrivateTmp=: .* \/tmp or \/var\/tmp,$/m);
      const verified = await verifyUnit(home, unit, false);
      assert.equal(verified.code, 0, verified.stderr);
      assert.equal(verified.stderr.trim(), "");
      const level = await exposure(home, unit, false);
      assert.ok(level <= 2.5, `exposure ${level} with ${path}`);
    }
    // The user unit has no private /tmp either way.
    const user = renderSystemdUnit(linuxUser, cases[3][1]);
    assert.doesNotMatch(user, /PrivateTmp/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("hook, failure and scheduled programs and the files ssh_options name count as read: in /tmp the unit shares /tmp", () => {
  const job = testJob("cam", {
    watch_path: "/data/camera",
    remote_base_path: "/srv/in",
    transfer_method: "scp",
    remote_host: "freya",
    on_transfer: ["/tmp/hooks/s.sh", "--quick", "/tmp/not-a-program"],
    on_failure: ["/var/tmp/alert"],
    ssh_options: [
      "UserKnownHostsFile=/tmp/kh/known_hosts ~/.ssh/known_hosts2",
      "identityfile=/tmp/keys/id_ed25519",
      'CertificateFile="/tmp/keys/id cert.pub"',
      "IdentityFile=~/.ssh/id_other",
      "ServerAliveInterval=30",
      "Ciphers=aes128-gcm@openssh.com",
    ],
    schedules: [
      { every_seconds: 60, action: "command", command: ["/tmp/jobs/nightly", "/tmp/arg"] },
      { every_seconds: 60, action: "rescan" },
    ],
  });
  const config: Config = {
    file: "/etc/image-transfer/config.yaml",
    state_dir: "/var/lib/image-transfer",
    log_file: "",
    log_format: "text",
    status_listen: "",
    status_token_file: null,
    status_tls_cert: null,
    status_tls_key: null,
    jobs: [job],
  };
  const folders = daemonFolders(config);
  const files = [
    "/tmp/kh/known_hosts",
    "/tmp/keys/id_ed25519",
    "/tmp/keys/id cert.pub",
    "/tmp/hooks/s.sh",
    "/var/tmp/alert",
    "/tmp/jobs/nightly",
  ];
  assert.deepEqual(folders.read, ["/data/camera", ...files]);
  const daemon = launch(["/usr/local/bin/image-transfer", "run", "-c", config.file], {
    own: folders.own,
    read: folders.read,
  });
  assert.deepEqual(hiddenByPrivateTmp(daemon), files);
  const unit = renderSystemdUnit(linuxSystem, daemon);
  assert.doesNotMatch(unit, /^PrivateTmp=/m);
  assert.match(unit, /^# No PrivateTmp=: .*hooks.* \/tmp or \/var\/tmp,$/m);
  // Without them the unit keeps its private /tmp.
  assert.deepEqual(sshOptionFiles(["Ciphers=aes128-gcm@openssh.com", "IdentityFile=id"]), []);
  const quiet = testJob("cam", {
    watch_path: "/data/c",
    remote_base_path: "/in",
    remote_host: "h",
  });
  const clean = daemonFolders({ ...config, jobs: [quiet] });
  const plain = launch(["/usr/local/bin/image-transfer", "run", "-c", config.file], {
    own: clean.own,
    read: clean.read,
  });
  assert.ok(renderSystemdUnit(linuxSystem, plain).split("\n").includes("PrivateTmp=yes"));
});

Deno.test("the /tmp note of a system install: one path lies there (move it), several lie there (move them)", () => {
  const argv = ["/usr/local/bin/image-transfer", "run", "-c", "/etc/it/c.yaml"];
  const note = (read: string[]) =>
    planSystemdInstall(linuxSystem, launch(argv, { own: ["/var/lib/it"], read }), {
      update: false,
    }).notes.find((line) => line.includes("/tmp or /var/tmp"));
  assert.equal(
    note(["/tmp/x/id_key"]),
    "Note: /tmp/x/id_key lies in /tmp or /var/tmp, which a private /tmp would hide: the service " +
      "shares the system's /tmp; move it elsewhere for the full sandbox",
  );
  assert.equal(
    note(["/tmp/x/id_key", "/var/tmp/camera"]),
    "Note: /tmp/x/id_key, /var/tmp/camera lie in /tmp or /var/tmp, which a private /tmp would " +
      "hide: the service shares the system's /tmp; move them elsewhere for the full sandbox",
  );
  assert.equal(note(["/home/observer/camera"]), undefined);
});

Deno.test("ReadWritePaths refuses a relative folder and control characters", () => {
  assert.throws(
    () => renderSystemdUnit(linuxSystem, launch(["/x", "run"], { own: ["state"] })),
    /not an absolute path/,
  );
  assert.throws(
    () => renderSystemdUnit(linuxSystem, launch(["/x", "run"], { own: ["/a\nb"] })),
    /newline/,
  );
});

Deno.test("systemd user unit: no User=, no namespace sandbox, the filters a user manager applies; verify --user clean; security reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-unit-" });
  try {
    const exe = join(dir, "with space", "image-transfer");
    await makeExecutable(exe);
    const unit = renderSystemdUnit(linuxUser, launch([exe, "run", "-c", join(dir, "c.yaml")]));
    assert.ok(!unit.includes("{{"), unit);
    assert.doesNotMatch(unit, /^User=/m);
    // Its manager's hard limit may be lower than a LimitNOFILE=: the unit would not start.
    assert.doesNotMatch(unit, /^LimitNOFILE=/m);
    assert.doesNotMatch(unit, /network-online/);
    // Nor a comment saying it waits for them.
    assert.doesNotMatch(unit, /^# After the network/m);
    assert.match(unit, /^# A user's service cannot wait for the network/m);
    assert.match(unit, /^WantedBy=default\.target$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^Environment=IMAGE_TRANSFER_SERVICE=systemd-user$/m);
    // An empty CapabilityBoundingSet= stops a user unit from starting (status 218), and the
    // namespace settings need user namespaces some distributions refuse to users.
    assert.doesNotMatch(
      unit,
      /^(CapabilityBoundingSet|AmbientCapabilities|ProtectSystem|ProtectHome|ReadWritePaths|PrivateTmp|PrivateDevices)=/m,
    );
    for (
      const line of [
        "NoNewPrivileges=yes",
        "UMask=0077",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "SystemCallErrorNumber=EPERM",
      ]
    ) {
      assert.ok(unit.split("\n").includes(line), line);
    }
    const verified = await verifyUnit(dir, unit, true);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "");
    // Offline, systemd-analyze rates a user unit as if it ran as root with every capability
    // (about 4 of these points); it reports 6.2 for this unit, 9.2 before it was hardened.
    const level = await exposure(dir, unit, true);
    assert.ok(level <= 6.5, `user unit exposure ${level}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd-analyze verify rejects a unit whose program is missing (the check is real)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-unit-" });
  try {
    const unit = renderSystemdUnit(linuxSystem, launch([join(dir, "no such", "exe"), "run"]));
    const verified = await verifyUnit(dir, unit, false);
    assert.notEqual(verified.code, 0);
    assert.match(verified.stderr, /not executable|No such file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd unit paths: /etc/systemd/system, or ~/.config/systemd/user", () => {
  assert.equal(systemdUnitPath(linuxSystem), "/etc/systemd/system/image-transfer.service");
  assert.equal(
    systemdUnitPath(linuxUser),
    "/home/observer/.config/systemd/user/image-transfer.service",
  );
  assert.equal(
    systemdUnitPath({ ...linuxUser, configHome: "/xdg" }),
    "/xdg/systemd/user/image-transfer.service",
  );
});

Deno.test("systemd system unit runs as a non-ASCII or directory-service login name, which systemd-analyze verify accepts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-unit-user-" });
  try {
    const exe = join(dir, "image-transfer");
    await makeExecutable(exe);
    for (const user of ["zo\u00eb", "zo\u00eb.m\u00fcller@lab.example.org", "LAB\\zoe"]) {
      const unit = renderSystemdUnit({ ...linuxSystem, user }, launch([exe, "run"]));
      assert.ok(unit.split("\n").includes(`User=${user}`), unit);
      const verified = await verifyUnit(dir, unit, false);
      assert.equal(verified.code, 0, verified.stderr);
      assert.doesNotMatch(
        verified.stderr,
        /Invalid user|fatal error|bad unit file/,
        verified.stderr,
      );
    }
    for (const user of ["x:y", "a/b", "-x", "1000", "50%", "a b", "LAB\\", ".."]) {
      assert.throws(
        () => renderSystemdUnit({ ...linuxSystem, user }, launch([exe, "run"])),
        /not one systemd accepts in User=/,
        user,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("systemd quoting escapes %, $, quotes and backslashes, and refuses what systemd cannot carry", () => {
  assert.equal(systemdQuote("run"), "run");
  assert.equal(systemdQuote("/a b/c"), '"/a b/c"');
  assert.equal(systemdQuote("100%"), "100%%");
  assert.equal(systemdQuote("$HOME/x"), '"$$HOME/x"');
  assert.equal(systemdQuote("/p/$x", { executable: true }), '"/p/$x"');
  assert.equal(systemdQuote(`a"b\\c`), `"a\\"b\\\\c"`);
  assert.throws(() => systemdQuote("/a\nb"), /newline/);
  assert.throws(() => systemdQuote("/it's/exe", { executable: true }), /quote or backslash/);
  assert.throws(
    () => renderSystemdUnit({ ...linuxSystem, user: "bad user" }, launch(["/x", "run"])),
    /User=/,
  );
});

Deno.test("from source the service runs deno with the permission set; a compiled binary runs itself", () => {
  assert.ok(isDenoRuntime("/usr/bin/deno"));
  assert.ok(isDenoRuntime("C:\\Tools\\DENO.EXE"));
  assert.ok(!isDenoRuntime("/usr/local/bin/image-transfer"));
  assert.deepEqual(daemonArgv("linux", "/usr/local/bin/image-transfer", "/repo/", "/c.yaml"), [
    "/usr/local/bin/image-transfer",
    "run",
    "-c",
    "/c.yaml",
  ]);
  assert.deepEqual(daemonArgv("linux", "/usr/bin/deno", "/repo/", "/c.yaml"), [
    "/usr/bin/deno",
    "run",
    "-q",
    "-P=image-transfer",
    ...RUNTIME_FLAGS,
    "--config",
    "/repo/deno.json",
    "/repo/main.ts",
    "run",
    "-c",
    "/c.yaml",
  ]);
});

Deno.test("fillTemplate keeps flagged lines, and refuses unknown placeholders", () => {
  const text = "a={{A}}\n{{?on}}b=1\n{{?off}}c=1\n";
  assert.equal(fillTemplate(text, { A: "x" }, { on: true, off: false }), "a=x\nb=1\n");
  assert.equal(fillTemplate("<a>{{ A }}</a>", { A: "x" }), "<a>x</a>");
  // The template's own note, naming placeholders and flags, is left out before any is filled.
  assert.equal(fillTemplate("{{#}} fills {{B}}, keeps {{?x}}\na={{A}}\n", { A: "x" }), "a=x\n");
  assert.throws(() => fillTemplate("{{B}}", {}), /no value for \{\{B\}\}/);
  assert.throws(() => fillTemplate("{{?x}}y", {}), /line flag/);
});
