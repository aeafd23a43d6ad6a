/**
 * The service files rendered for each OS: checked by the tools that read them
 * (`systemd-analyze verify`, `xmllint`), with hostile paths that must round-trip.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderSystemdUnit, systemdUnitPath } from "../src/service/systemd.ts";
import { launchdPlistPath, renderLaunchdPlist } from "../src/service/launchd.ts";
import { encodeUtf16LeBom, renderTaskXml, taskXmlPath } from "../src/service/task_scheduler.ts";
import { daemonArgv, isDenoRuntime } from "../src/service/launch_command.ts";
import { fillTemplate } from "../src/service/template.ts";
import { systemdQuote, windowsQuoteArg } from "../src/service/escape.ts";
import type { DaemonLaunch, ServiceTarget } from "../src/service/plan.ts";

const DTD = fileURLToPath(new URL("./fixtures/service/PropertyList-1.0.dtd", import.meta.url));
const TASK_XSD = fileURLToPath(
  new URL("./fixtures/service/task_scheduler_subset.xsd", import.meta.url),
);

function launch(
  argv: string[],
  folders: { own?: string[]; destinations?: string[] } = {},
): DaemonLaunch {
  return {
    argv,
    configPath: argv[argv.length - 1],
    logFile: "/home/obs/logs/image_transfer.log",
    ownFolders: folders.own ?? ["/home/observer/.local/state/image-transfer", "/home/obs/logs"],
    destinationFolders: folders.destinations ?? [],
  };
}

const linuxSystem: ServiceTarget = {
  os: "linux",
  scope: "system",
  user: "observer",
  uid: 1000,
  home: "/home/observer",
};
const linuxUser: ServiceTarget = { ...linuxSystem, scope: "user" };

async function run(
  program: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Evaluate an XPath expression with xmllint (the value, without xmllint's final newline). */
async function xpath(file: string, expr: string): Promise<string> {
  const out = await run("xmllint", ["--nonet", "--xpath", expr, file]);
  assert.equal(out.code, 0, out.stderr);
  return out.stdout.replace(/\n$/, "");
}

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
    assert.match(unit, /^After=network-online\.target$/m);
    assert.match(unit, /^Wants=network-online\.target$/m);
    assert.match(unit, /^User=observer$/m);
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^RestartSec=\d+$/m);
    assert.match(unit, /^WantedBy=multi-user\.target$/m);
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1] ?? "";
    assert.deepEqual(splitExecStart(execStart), argv);
    const verified = await verifyUnit(dir, unit, false);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hardened system unit: systemd-analyze security --offline exposure ≤ 2.5, verify clean, folders with hostile names writable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-unit-" });
  try {
    const exe = join(dir, "bin", "image-transfer");
    await makeExecutable(exe);
    const own = [
      join(dir, "state 100% $HOME é"),
      join(dir, `logs "q" 'a' back\\slash`),
    ];
    const destinations = [join(dir, "night s"), join(dir, "night s", "inside"), "/data/plain"];
    const unit = renderSystemdUnit(
      linuxSystem,
      launch([exe, "run", "-c", join(dir, "c.yaml")], { own, destinations }),
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
      launch([exe, "run", "-c", join(dir, "c.yaml")], { own, destinations }),
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
    assert.doesNotMatch(unit, /network-online/);
    assert.match(unit, /^WantedBy=default\.target$/m);
    assert.match(unit, /^Restart=on-failure$/m);
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

/** Check a rendered plist with xmllint against Apple's DTD; return an XPath reader for it. */
async function checkedPlist(dir: string, plist: string) {
  assert.ok(!plist.includes("{{"), plist);
  const file = join(dir, "com.image-transfer.daemon.plist");
  await Deno.writeTextFile(file, plist);
  const valid = await run("xmllint", ["--noout", "--nonet", "--dtdvalid", DTD, file]);
  assert.equal(valid.code, 0, valid.stderr);
  const value = (expr: string) => xpath(file, `string(${expr})`);
  const key = (name: string) => `/plist/dict/key[.='${name}']/following-sibling::*[1]`;
  return { file, value, key };
}

Deno.test("launchd agent plist is valid against the plist DTD, and paths round-trip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-plist-" });
  try {
    const target: ServiceTarget = {
      os: "darwin",
      scope: "user",
      user: "obs",
      uid: 501,
      home: "/Users/O'Brien & <Co>",
    };
    const exe = `/Applications/Image "Transfer" & <x>/é 'q'/image-transfer`;
    const config = "/Users/O'Brien & <Co>/.config/image-transfer/config.yaml";
    const argv = [exe, "run", "-c", config];
    const plist = renderLaunchdPlist(target, launch(argv));
    const { file, value, key } = await checkedPlist(dir, plist);
    const broken = join(dir, "broken.plist");
    await Deno.writeTextFile(broken, plist.replace("<key>RunAtLoad</key>", "<bool>x</bool>"));
    const invalid = await run("xmllint", ["--noout", "--nonet", "--dtdvalid", DTD, broken]);
    assert.notEqual(invalid.code, 0, "the DTD check can fail");
    assert.equal(await value(key("Label")), "com.image-transfer.daemon");
    for (const [i, arg] of argv.entries()) {
      assert.equal(await value(`${key("ProgramArguments")}/string[${i + 1}]`), arg);
    }
    assert.equal(await value(`count(${key("ProgramArguments")}/string)`), String(argv.length));
    assert.equal(await xpath(file, `name(${key("RunAtLoad")})`), "true");
    assert.equal(await value(`${key("KeepAlive")}/key`), "SuccessfulExit");
    assert.equal(
      await xpath(file, `name(${key("KeepAlive")}/key[1]/following-sibling::*[1])`),
      "false",
    );
    assert.equal(await value(`count(/plist/dict/key[.='UserName'])`), "0");
    assert.equal(
      await value(`${key("EnvironmentVariables")}/key[.='HOME']/following-sibling::string[1]`),
      "/Users/O'Brien & <Co>",
    );
    assert.equal(
      await value(key("StandardErrorPath")),
      "/Users/O'Brien & <Co>/Library/Logs/image-transfer.err.log",
    );
    assert.equal(
      launchdPlistPath(target),
      "/Users/O'Brien & <Co>/Library/LaunchAgents/com.image-transfer.daemon.plist",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launchd daemon plist (sudo): /Library/LaunchDaemons, UserName, valid against the plist DTD", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-plist-" });
  try {
    const target: ServiceTarget = {
      os: "darwin",
      scope: "system",
      user: "o'bs & co",
      uid: 501,
      gid: 20,
      home: "/Users/o'bs & co",
    };
    const argv = ["/usr/local/bin/image-transfer", "run", "-c", "/Users/o'bs & co/c.yaml"];
    const { value, key } = await checkedPlist(dir, renderLaunchdPlist(target, launch(argv)));
    assert.equal(await value(key("UserName")), "o'bs & co");
    assert.equal(await value(`${key("ProgramArguments")}/string[4]`), argv[3]);
    assert.equal(await value(key("StandardOutPath")), "/Library/Logs/image-transfer.out.log");
    assert.equal(
      await value(`${key("EnvironmentVariables")}/key[.='HOME']/following-sibling::string[1]`),
      "/Users/o'bs & co",
    );
    assert.equal(
      launchdPlistPath(target),
      "/Library/LaunchDaemons/com.image-transfer.daemon.plist",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("launchd plist refuses a newline in a path", () => {
  const target: ServiceTarget = { os: "darwin", scope: "user", user: "o", uid: 501, home: "/U/o" };
  assert.throws(() => renderLaunchdPlist(target, launch(["/a\nb", "run"])), /newline/);
});

/** Split a Windows command line the way CommandLineToArgvW does (for arguments after argv[0]). */
function splitWindowsArgs(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === " " || line[i] === "\t") i++;
    if (i >= line.length) break;
    let arg = "";
    let quoted = false;
    while (i < line.length && (quoted || (line[i] !== " " && line[i] !== "\t"))) {
      if (line[i] === "\\") {
        let n = 0;
        while (line[i] === "\\") (n++, i++);
        if (line[i] === '"') {
          arg += "\\".repeat(Math.floor(n / 2));
          if (n % 2 === 1) (arg += '"', i++);
        } else arg += "\\".repeat(n);
      } else if (line[i] === '"') {
        quoted = !quoted;
        i++;
      } else arg += line[i++];
    }
    args.push(arg);
  }
  return args;
}

/** xmllint against the Task Scheduler schema subset (tests/fixtures/service). */
async function validateTask(file: string): Promise<{ code: number; stderr: string }> {
  return await run("xmllint", ["--noout", "--nonet", "--schema", TASK_XSD, file]);
}

Deno.test("task XML is UTF-16LE with BOM, valid against the Task Scheduler schema, and drive-letter paths round-trip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-task-" });
  try {
    const system: ServiceTarget = {
      os: "windows",
      scope: "system",
      user: "OBSERVATORY\\Observer",
      uid: null,
      home: "C:\\Users\\Observer",
    };
    const argv = daemonArgv(
      "windows",
      "C:/Program Files/image-transfer/image-transfer.exe",
      "C:\\unused",
      'C:/Users/Observer/data/images/O\'Brien & <Co> "x" é/config.yaml',
    );
    for (const target of [system, { ...system, scope: "user" as const }]) {
      const xml = renderTaskXml(target, launch(argv));
      assert.ok(!xml.includes("{{"), xml);
      const bytes = encodeUtf16LeBom(xml);
      assert.deepEqual([...bytes.slice(0, 2)], [0xff, 0xfe]);
      assert.equal(new TextDecoder("utf-16le").decode(bytes.slice(2)), xml);
      assert.equal(bytes[3], 0x00, "ASCII '<' is followed by a zero byte in UTF-16LE");
      const file = join(dir, `${target.scope}.xml`);
      await Deno.writeFile(file, bytes);
      const valid = await validateTask(file);
      assert.equal(valid.code, 0, valid.stderr);
      const element = (name: string) => xpath(file, `string(//*[local-name()='${name}'])`);
      const count = (name: string) => xpath(file, `count(//*[local-name()='${name}'])`);
      assert.equal(
        await element("Command"),
        "C:\\Program Files\\image-transfer\\image-transfer.exe",
      );
      assert.deepEqual(splitWindowsArgs(await element("Arguments")), [
        "run",
        "-c",
        'C:\\Users\\Observer\\data\\images\\O\'Brien & <Co> "x" é\\config.yaml',
      ]);
      assert.equal(await element("ExecutionTimeLimit"), "PT0S");
      assert.equal(await element("MultipleInstancesPolicy"), "IgnoreNew");
      // The repeating trigger that brings a crashed daemon back.
      assert.equal(
        await xpath(
          file,
          "string(//*[local-name()='TimeTrigger']/*[local-name()='Repetition']/*[local-name()='Interval'])",
        ),
        "PT5M",
      );
      assert.equal(
        await xpath(
          file,
          "count(//*[local-name()='TimeTrigger']/*[local-name()='Repetition']/*[local-name()='Duration'])",
        ),
        "0",
        "no Duration: repeated for ever",
      );
      assert.equal(await element("Count"), "255");
      assert.equal(await element("WorkingDirectory"), "C:\\Users\\Observer");
      assert.equal(
        await xpath(file, "string(//*[local-name()='Principal']/*[local-name()='UserId'])"),
        "OBSERVATORY\\Observer",
      );
      assert.equal(await count("Password"), "0");
      if (target.scope === "system") {
        assert.equal(await element("LogonType"), "S4U");
        assert.equal(await count("BootTrigger"), "1");
        assert.equal(await count("LogonTrigger"), "0");
      } else {
        assert.equal(await element("LogonType"), "InteractiveToken");
        assert.equal(await count("LogonTrigger"), "1");
        assert.equal(await count("BootTrigger"), "0");
      }
    }
    assert.equal(
      taskXmlPath(system),
      "C:\\Users\\Observer\\.config\\image-transfer\\ImageTransferDaemon.xml",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the Task Scheduler schema check is real: out-of-range values and a stored password fail", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-task-" });
  try {
    const target: ServiceTarget = {
      os: "windows",
      scope: "system",
      user: "o",
      uid: null,
      home: "C:\\o",
    };
    const xml = renderTaskXml(target, launch(["C:\\x.exe", "run"]));
    for (
      const [from, to] of [
        ["<Count>255</Count>", "<Count>999</Count>"],
        ["<Interval>PT5M</Interval>", "<Interval>PT30S</Interval>"],
        ["<LogonType>S4U</LogonType>", "<LogonType>Password</LogonType>"],
        ["<Priority>7</Priority>", "<Priority>11</Priority>"],
      ]
    ) {
      assert.ok(xml.includes(from), from);
      const file = join(dir, "bad.xml");
      await Deno.writeFile(file, encodeUtf16LeBom(xml.replace(from, to)));
      const out = await validateTask(file);
      assert.notEqual(out.code, 0, `${to} must fail`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("task XML refuses a program path longer than Task Scheduler takes (260)", () => {
  const target: ServiceTarget = {
    os: "windows",
    scope: "system",
    user: "o",
    uid: null,
    home: "C:\\o",
  };
  const long = `C:\\${"d".repeat(255)}\\it.exe`;
  assert.throws(() => renderTaskXml(target, launch([long, "run"])), /longer than 260 characters/);
});

Deno.test("task XML refuses % (Task Scheduler expands it) and newlines", () => {
  const target: ServiceTarget = {
    os: "windows",
    scope: "user",
    user: "o",
    uid: null,
    home: "C:\\o",
  };
  assert.throws(
    () => renderTaskXml(target, launch(["C:\\x.exe", "run", "-c", "C:\\100%\\c"])),
    /%/,
  );
  assert.throws(
    () => renderTaskXml(target, launch(["C:\\x.exe", "run", "-c", "C:\\a\nb"])),
    /newline/,
  );
});

Deno.test("Windows argument quoting survives spaces, quotes and trailing backslashes", () => {
  const args = ["plain", "with space", 'q"uote', "C:\\dir with space\\", "", 'back\\\\slash"'];
  assert.deepEqual(splitWindowsArgs(args.map(windowsQuoteArg).join(" ")), args);
  assert.equal(windowsQuoteArg("C:\\Users\\x"), "C:\\Users\\x");
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
    "--v8-flags=--optimize-for-size",
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
  assert.throws(() => fillTemplate("{{B}}", {}), /no value for \{\{B\}\}/);
  assert.throws(() => fillTemplate("{{?x}}y", {}), /line flag/);
});
