/**
 * The launchd plists (agent and daemon) and the Task Scheduler task (boot
 * and logon), checked by the tools that read them: xmllint against Apple's
 * plist DTD and against the Task Scheduler schema elements and ranges the
 * task uses (both in tests/fixtures/service), with hostile paths that must
 * round-trip.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  launchdPlistPath,
  privacyWarnings,
  renderLaunchdPlist,
} from "../../../src/service/launchd.ts";
import {
  encodeUtf16LeBom,
  renderTaskXml,
  s4uShareWarnings,
  taskXmlPath,
} from "../../../src/service/task_scheduler.ts";
import { daemonArgv } from "../../../src/service/launch.ts";
import { windowsQuoteArg } from "../../../src/service/escape.ts";
import type { ServiceTarget } from "../../../src/service/plan.ts";
import type { Config } from "../../../src/config/types.ts";
import { testJob } from "../../helpers/jobs.ts";
import { launch, run, xpath } from "../../helpers/service_render.ts";

const DTD = fileURLToPath(new URL("../../fixtures/service/PropertyList-1.0.dtd", import.meta.url));
const TASK_XSD = fileURLToPath(
  new URL("../../fixtures/service/task_scheduler_subset.xsd", import.meta.url),
);

/** Check a rendered plist with xmllint against Apple's DTD; return an XPath reader for it. */
async function checkedPlist(dir: string, plist: string) {
  assert.ok(!plist.includes("{{"), plist);
  const file = join(dir, "com.image-transfer.daemon.plist");
  await Deno.writeTextFile(file, plist);
  const valid = await run("xmllint", ["--noout", "--nonet", "--dtdvalid", DTD, file]);
  assert.equal(valid.code, 0, valid.stderr);
  const value = (expr: string) => xpath(file, `string(${expr})`);
  const key = (name: string) => `/plist/dict/key[.='${name}']/following-sibling::*[1]`;
  const env = (name: string) =>
    value(`${key("EnvironmentVariables")}/key[.='${name}']/following-sibling::string[1]`);
  return { file, value, key, env };
}

/** Run `body` with a new temporary folder, removed afterwards. */
async function withTempDir(prefix: string, body: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A Windows service target (no uid) for `user` with home folder `home`. */
function windowsTarget(
  scope: ServiceTarget["scope"],
  user = "o",
  home = "C:\\o",
): ServiceTarget {
  return { os: "windows", scope, user, uid: null, home };
}

/** A service configuration with no status page, with these paths and jobs. */
function serviceConfig(
  paths: Pick<Config, "file" | "state_dir" | "log_file">,
  jobs: Config["jobs"],
): Config {
  return {
    ...paths,
    log_format: "text",
    status_listen: "",
    status_token_file: null,
    status_tls_cert: null,
    status_tls_key: null,
    jobs,
  };
}

Deno.test("launchd agent plist is valid against the plist DTD, and paths round-trip", async () => {
  await withTempDir("it-plist-", async (dir) => {
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
    const { file, value, key, env } = await checkedPlist(dir, plist);
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
    // launchd's own 256 open files run out with transfers side by side.
    assert.equal(await value(`${key("SoftResourceLimits")}/key`), "NumberOfFiles");
    assert.equal(
      await xpath(file, `string(${key("SoftResourceLimits")}/key[1]/following-sibling::*[1])`),
      "8192",
    );
    assert.equal(await env("HOME"), "/Users/O'Brien & <Co>");
    assert.equal(await env("IMAGE_TRANSFER_SERVICE"), "launchd-user");
    assert.equal(
      await value(key("StandardErrorPath")),
      "/Users/O'Brien & <Co>/Library/Logs/image-transfer.err.log",
    );
    assert.equal(
      launchdPlistPath(target),
      "/Users/O'Brien & <Co>/Library/LaunchAgents/com.image-transfer.daemon.plist",
    );
  });
});

Deno.test("launchd daemon plist (sudo): /Library/LaunchDaemons, UserName, valid against the plist DTD", async () => {
  await withTempDir("it-plist-", async (dir) => {
    const target: ServiceTarget = {
      os: "darwin",
      scope: "system",
      user: "o'bs & co",
      uid: 501,
      gid: 20,
      home: "/Users/o'bs & co",
    };
    const argv = ["/usr/local/bin/image-transfer", "run", "-c", "/Users/o'bs & co/c.yaml"];
    const { value, key, env } = await checkedPlist(dir, renderLaunchdPlist(target, launch(argv)));
    assert.equal(await value(key("UserName")), "o'bs & co");
    assert.equal(await value(`${key("ProgramArguments")}/string[4]`), argv[3]);
    assert.equal(await value(key("StandardOutPath")), "/Library/Logs/image-transfer.out.log");
    assert.equal(await env("HOME"), "/Users/o'bs & co");
    assert.equal(await env("IMAGE_TRANSFER_SERVICE"), "launchd-system");
    assert.equal(
      launchdPlistPath(target),
      "/Library/LaunchDaemons/com.image-transfer.daemon.plist",
    );
  });
});

Deno.test("a launchd job warns of each path in ~/Desktop, ~/Documents, ~/Downloads or /Volumes (macOS privacy protection), not of others", () => {
  const home = "/Users/Zo\u00eb Lab";
  const config = serviceConfig({
    file: `${home}/.config/image-transfer/config.yaml`,
    state_dir: `${home}/.local/state/image-transfer`,
    log_file: `${home}/Documents/logs/image_transfer.log`,
  }, [
    testJob("cam", {
      watch_path: `${home}/Desktop/Camera Data`,
      transfer_method: "local",
      remote_base_path: "/Volumes/Archive Disk/nights",
    }),
    testJob("spec", {
      watch_path: `${home}/DocumentsOld/spectra`,
      transfer_method: "scp",
      remote_host: "server",
      remote_base_path: "/Volumes/remote/path",
      ssh_identity_file: `${home}/Downloads`,
    }),
  ]);
  const target: ServiceTarget = { os: "darwin", scope: "system", user: "zoe", uid: 501, home };
  const warnings = privacyWarnings(config, target, "/usr/local/bin/image-transfer");
  assert.deepEqual(warnings.map((w) => w.slice(0, w.indexOf(", which"))), [
    `log_file ${home}/Documents/logs/image_transfer.log is in ${home}/Documents`,
    `watch_path of job cam ${home}/Desktop/Camera Data is in ${home}/Desktop`,
    "remote_base_path of job cam /Volumes/Archive Disk/nights is in /Volumes/Archive Disk",
    `ssh_identity_file of job spec ${home}/Downloads is in ${home}/Downloads`,
  ]);
  assert.match(warnings[0], /give \/usr\/local\/bin\/image-transfer Full Disk Access/);
  assert.deepEqual(privacyWarnings(config, { ...target, os: "linux" }, "/x"), []);
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
  await withTempDir("it-task-", async (dir) => {
    const system = windowsTarget("system", "OBSERVATORY\\Observer", "C:\\Users\\Observer");
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
  });
});

Deno.test("the Task Scheduler schema check is real: out-of-range values and a stored password fail", async () => {
  await withTempDir("it-task-", async (dir) => {
    const xml = renderTaskXml(windowsTarget("system"), launch(["C:\\x.exe", "run"]));
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
  });
});

Deno.test("task XML refuses a program path longer than Task Scheduler takes (260)", () => {
  const target = windowsTarget("system");
  const long = `C:\\${"d".repeat(255)}\\it.exe`;
  assert.throws(() => renderTaskXml(target, launch([long, "run"])), /longer than 260 characters/);
});

Deno.test("task XML refuses % (Task Scheduler expands it) and newlines", () => {
  const target = windowsTarget("user");
  assert.throws(
    () => renderTaskXml(target, launch(["C:\\x.exe", "run", "-c", "C:\\100%\\c"])),
    /%/,
  );
  assert.throws(
    () => renderTaskXml(target, launch(["C:\\x.exe", "run", "-c", "C:\\a\nb"])),
    /newline/,
  );
});

Deno.test("a boot task (S4U) warns of each path on a Windows share it cannot open; --user and local disks do not", () => {
  const onShare = testJob("cam", {
    watch_path: "\\\\nas\\instrument\\Camera Data",
    transfer_method: "local",
    remote_base_path: "//archive/nights",
    after_transfer: "move",
    archive_path: "D:\\done",
  });
  const local = testJob("spec", {
    watch_path: "C:\\Users\\Zo\u00eb\\spectra",
    transfer_method: "scp",
    remote_host: "server",
    remote_base_path: "\\\\not\\a local path on scp",
  });
  const config = serviceConfig({
    file: "C:\\Users\\Zo\u00eb\\.config\\image-transfer\\config.yaml",
    state_dir: "C:\\Users\\Zo\u00eb\\AppData\\Local\\image-transfer",
    log_file: "\\\\nas\\logs\\image_transfer.log",
  }, [onShare, local]);
  const boot = windowsTarget("system", "LAB\\Zo\u00eb", "C:\\Users\\Zo\u00eb");
  const warnings = s4uShareWarnings(config, boot);
  assert.equal(warnings.length, 3, warnings.join("\n"));
  assert.match(
    warnings[0],
    /^log_file \\\\nas\\logs\\image_transfer\.log is on the Windows share \\\\nas\\logs,/,
  );
  assert.match(warnings[1], /^watch_path of job cam .* share \\\\nas\\instrument, .*S4U.*--user/);
  assert.match(
    warnings[2],
    /^remote_base_path of job cam \/\/archive\/nights .* \\\\archive\\nights,/,
  );
  assert.deepEqual(s4uShareWarnings(config, { ...boot, scope: "user" }), []);
  assert.deepEqual(s4uShareWarnings({ ...config, jobs: [local], log_file: "" }, boot), []);
});

Deno.test("Windows argument quoting survives spaces, quotes and trailing backslashes", () => {
  const args = ["plain", "with space", 'q"uote', "C:\\dir with space\\", "", 'back\\\\slash"'];
  assert.deepEqual(splitWindowsArgs(args.map(windowsQuoteArg).join(" ")), args);
  assert.equal(windowsQuoteArg("C:\\Users\\x"), "C:\\Users\\x");
});
