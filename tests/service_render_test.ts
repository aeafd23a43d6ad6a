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

function launch(argv: string[]): DaemonLaunch {
  return { argv, configPath: argv[argv.length - 1], logFile: "/home/obs/logs/image_transfer.log" };
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

/** A tiny real executable at `path` (systemd-analyze checks that ExecStart exists). */
async function makeExecutable(path: string): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(path, 0o755);
}

/** Split an ExecStart= value the way systemd documents it (quotes, C escapes, %%, $$). */
function splitExecStart(line: string): string[] {
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
  return words.map((word, n) => {
    const unescaped = word.replaceAll("%%", "%");
    return n === 0 ? unescaped : unescaped.replaceAll("$$", "$");
  });
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

Deno.test("systemd user unit has no User= or network-online.target and passes verify --user", async () => {
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
    const verified = await verifyUnit(dir, unit, true);
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal(verified.stderr.trim(), "");
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

Deno.test("launchd plist is well-formed, valid against the plist DTD, and paths round-trip", async () => {
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
    assert.ok(!plist.includes("{{"), plist);
    const file = join(dir, "com.image-transfer.daemon.plist");
    await Deno.writeTextFile(file, plist);
    const valid = await run("xmllint", ["--noout", "--nonet", "--dtdvalid", DTD, file]);
    assert.equal(valid.code, 0, valid.stderr);
    const broken = join(dir, "broken.plist");
    await Deno.writeTextFile(broken, plist.replace("<key>RunAtLoad</key>", "<bool>x</bool>"));
    const invalid = await run("xmllint", ["--noout", "--nonet", "--dtdvalid", DTD, broken]);
    assert.notEqual(invalid.code, 0, "the DTD check can fail");
    const value = (expr: string) => xpath(file, `string(${expr})`);
    const key = (name: string) => `/plist/dict/key[.='${name}']/following-sibling::*[1]`;
    assert.equal(await value(key("Label")), "com.image-transfer.daemon");
    for (const [i, arg] of argv.entries()) {
      assert.equal(await value(`${key("ProgramArguments")}/string[${i + 1}]`), arg);
    }
    assert.equal(await value(`count(${key("ProgramArguments")}/string)`), String(argv.length));
    assert.equal(await xpath(file, `name(${key("RunAtLoad")})`), "true");
    assert.equal(await value(`${key("KeepAlive")}/key`), "SuccessfulExit");
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

Deno.test("task XML is UTF-16LE with BOM, well-formed, and drive-letter paths round-trip", async () => {
  const dir = await Deno.makeTempDir({ prefix: "it-task-" });
  try {
    const target: ServiceTarget = {
      os: "windows",
      scope: "user",
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
    const xml = renderTaskXml(target, launch(argv));
    assert.ok(!xml.includes("{{"), xml);
    const bytes = encodeUtf16LeBom(xml);
    assert.deepEqual([...bytes.slice(0, 2)], [0xff, 0xfe]);
    assert.equal(new TextDecoder("utf-16le").decode(bytes.slice(2)), xml);
    assert.equal(bytes[3], 0x00, "ASCII '<' is followed by a zero byte in UTF-16LE");
    const file = join(dir, "ImageTransferDaemon.xml");
    await Deno.writeFile(file, bytes);
    const wellFormed = await run("xmllint", ["--noout", "--nonet", file]);
    assert.equal(wellFormed.code, 0, wellFormed.stderr);
    const element = (name: string) => xpath(file, `string(//*[local-name()='${name}'])`);
    assert.equal(await element("Command"), "C:\\Program Files\\image-transfer\\image-transfer.exe");
    assert.deepEqual(splitWindowsArgs(await element("Arguments")), [
      "run",
      "-c",
      'C:\\Users\\Observer\\data\\images\\O\'Brien & <Co> "x" é\\config.yaml',
    ]);
    assert.equal(await element("LogonType"), "InteractiveToken");
    assert.equal(await element("ExecutionTimeLimit"), "PT0S");
    assert.equal(await element("Interval"), "PT1M");
    assert.match(await element("Count"), /^\d+$/);
    assert.equal(await element("UserId"), "OBSERVATORY\\Observer");
    assert.equal(await element("WorkingDirectory"), "C:\\Users\\Observer");
    assert.equal(
      taskXmlPath(target),
      "C:\\Users\\Observer\\.config\\image-transfer\\ImageTransferDaemon.xml",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
