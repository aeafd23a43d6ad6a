/**
 * One event, one text log line: control characters in file names are
 * escaped in text logs, and kept exact in JSON logs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";
import type { LogRecord } from "@logtape/logtape";
import {
  escapeControlChars,
  formatJson,
  formatText,
  logFileSink,
  quoteIfUnsafe,
} from "../../../src/log/logging.ts";

const FORGED = "a\nSuccessfully transferred forged.fits\r\x1b[2Jb.fits";
const noon = new Date("2024-05-02T12:00:00Z");

async function sendOne(box: Awaited<ReturnType<typeof cliSandbox>>): Promise<Uint8Array> {
  const bytes = randomBytes(4321);
  const source = join(box.watch, FORGED);
  await Deno.writeFile(source, bytes);
  await Deno.utime(source, noon, noon);
  const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(await listFiles(box.dest), [`20240502/${FORGED}`]);
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240502", FORGED)), bytes);
  return bytes;
}

Deno.test("a file name with a newline gives one text log line per event", async () => {
  await using box = await cliSandbox();
  await sendOne(box);
  const log = await Deno.readTextFile(box.logFile);
  const sent = log.split("\n").filter((line) => line.includes("Successfully transferred"));
  assert.equal(sent.length, 1, log);
  const escaped = "a\\nSuccessfully transferred forged.fits\\r\\x1b[2Jb.fits";
  assert.ok(
    sent[0].includes(
      `"${join(box.watch, escaped)}" -> "${join(box.dest, "20240502", escaped)}"`,
    ),
    sent[0],
  );
  // Every line starts with a timestamp: nothing was split.
  for (const line of log.trimEnd().split("\n")) {
    assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, line);
  }
  assert.ok(!log.includes("\r") && !log.includes("\x1b"), "raw control characters in the log");
});

Deno.test("a log file that cannot be opened again after its rotation (no inode left) drops lines without shifting the older files, and is opened once it can be", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-log-" });
  try {
    await withTmpfs(join(dir, "disk"), "1m", async (disk) => {
      const file = join(disk, "image_transfer.log");
      await Deno.writeTextFile(`${file}.1`, "older\n");
      await Deno.writeTextFile(`${file}.2`, "oldest\n");
      const sink = logFileSink(file, (r) => `${r.message.join("")}\n`, 40, 3);
      const line = (n: number) =>
        sink(record("info", ["image-transfer"], [`line ${String(n).padStart(2, "0")} ......`]));
      line(1);
      line(2);
      // Every inode taken: a rotation renames, but cannot create the new file.
      const filler: string[] = [];
      for (let n = 0;; n++) {
        try {
          await Deno.writeTextFile(join(disk, `filler-${n}`), "");
          filler.push(join(disk, `filler-${n}`));
        } catch {
          break;
        }
      }
      for (let n = 3; n <= 6; n++) line(n);
      // Before: each dropped line shifted the rotated files once more, the oldest lost.
      assert.equal(await Deno.readTextFile(`${file}.1`), "line 01 ......\nline 02 ......\n");
      assert.equal(await Deno.readTextFile(`${file}.2`), "older\n");
      assert.equal(await Deno.readTextFile(`${file}.3`), "oldest\n");
      await assert.rejects(Deno.stat(file), Deno.errors.NotFound);
      await Deno.remove(filler.pop()!);
      line(7);
      sink[Symbol.dispose]();
      // The new file first says how many lines were lost meanwhile.
      const [said, seventh, end] = (await Deno.readTextFile(file)).split("\n");
      assert.match(said, /^The log file .*image_transfer\.log is written again: 4 line\(s\) lost /);
      assert.deepEqual([seventh, end], ["line 07 ......", ""]);
      assert.equal(await Deno.readTextFile(`${file}.2`), "older\n");
    }, { inodes: 16 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("JSON log lines keep a file name with a newline exact", async () => {
  await using box = await cliSandbox({ log_format: "json" });
  await sendOne(box);
  const lines = (await Deno.readTextFile(box.logFile)).trimEnd().split("\n");
  const records = lines.map((line) => JSON.parse(line));
  const sent = records.filter((r) => r.message.startsWith("Successfully transferred"));
  assert.equal(sent.length, 1, lines.join("\n"));
  assert.equal(sent[0].source, join(box.watch, FORGED));
  assert.ok(sent[0].message.includes(FORGED));
});

Deno.test("a daemon killed (SIGKILL) leaves in its log file every line it logged before", async () => {
  await using box = await cliSandbox();
  const bytes = randomBytes(2345);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "m31 $(x).fits"), bytes);
    await Deno.utime(join(box.watch, "m31 $(x).fits"), noon, noon);
    // On stderr first, in the same moment in the file; killed at once after it.
    await daemon.waitForOutput(/Successfully transferred .*m31 \$\(x\)\.fits/);
  } finally {
    assert.equal((await daemon.stop("SIGKILL")).signal, "SIGKILL");
  }
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240502", "m31 $(x).fits")), bytes);
  // Before, lines were written out once a second: the last second's were lost with the process.
  const log = await Deno.readTextFile(box.logFile);
  const seen = `the daemon's stderr:\n${daemon.stderr()}\nits log file:\n${log}`;
  assert.match(log, /Watching/, seen);
  assert.match(log, /Successfully transferred .*m31 \$\(x\)\.fits/, seen);
  // Each line it showed on stderr was in the file before (the file is written first).
  const held = log.split("\n");
  const shown = daemon.stderr().split("\n").filter((line) => /^\d{4}-\d\d-\d\d /.test(line));
  assert.deepEqual(shown.filter((line) => !held.includes(line)), [], seen);
});

Deno.test("the log file is rotated past its size: the older files move up, the oldest beyond the count is dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-log-" });
  try {
    const file = join(dir, "image_transfer.log");
    await Deno.writeTextFile(file, "left by an earlier run\n");
    const sink = logFileSink(file, (r) => `${r.message.join("")}\n`, 40, 2);
    const line = (n: number) =>
      sink(record("info", ["image-transfer"], [`line ${String(n).padStart(2, "0")} ......`]));
    // 15 bytes a line: the earlier run's line and one new fit in 40, two new ones in a new file.
    for (let n = 1; n <= 7; n++) line(n);
    sink[Symbol.dispose]();
    const two = (a: number) => `line 0${a} ......\nline 0${a + 1} ......\n`;
    assert.equal(await Deno.readTextFile(file), two(6));
    assert.equal(await Deno.readTextFile(`${file}.1`), two(4));
    assert.equal(
      await Deno.readTextFile(`${file}.2`),
      two(2),
      "the oldest, with the earlier line, dropped",
    );
    await assert.rejects(Deno.stat(`${file}.3`), Deno.errors.NotFound, "two old files kept");
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    // A line after the file is closed (a reload replaced the sink) is dropped, and throws nothing.
    line(8);
    assert.equal(await Deno.readTextFile(file), two(6));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the old Python tool's log and its rotated files are rotated on as one series: its lines move to .1, its oldest dropped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-log-" });
  try {
    const file = join(dir, "image_transfer.log");
    const old = (n: number) => `2026-11-2${n} 22:01:13,512 - image_transfer - INFO - night ${n}\n`;
    await Deno.writeTextFile(file, old(0));
    for (let n = 1; n <= 5; n++) await Deno.writeTextFile(`${file}.${n}`, old(n));
    const sink = logFileSink(file, (r) => `${r.message.join("")}\n`, old(0).length + 10, 5);
    sink(record("info", ["image-transfer"], ["a new line past the size"]));
    sink[Symbol.dispose]();
    assert.equal(await Deno.readTextFile(file), "a new line past the size\n");
    assert.equal(await Deno.readTextFile(`${file}.1`), old(0), "the old log, rotated");
    for (let n = 2; n <= 5; n++) assert.equal(await Deno.readTextFile(`${file}.${n}`), old(n - 1));
    await assert.rejects(Deno.stat(`${file}.6`), Deno.errors.NotFound, "five old files kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("quoteIfUnsafe: a name with a real line break is quoted, one with a backslash and an n is not", () => {
  assert.equal(quoteIfUnsafe("C:\\data\\n1.fits"), "C:\\data\\n1.fits");
  assert.equal(quoteIfUnsafe("a\nb"), '"a\\nb"');
  assert.equal(quoteIfUnsafe('say "\\n"\n'), '"say \\"\\\\n\\"\\n"');
  assert.equal(quoteIfUnsafe("bidi\u202e"), '"bidi\\u202e"');
  // Characters that show nothing: a name holding one would look like another.
  assert.equal(quoteIfUnsafe("m42\u200b.fits"), '"m42\\u200b.fits"');
  assert.equal(quoteIfUnsafe("m42\ufeff.fits"), '"m42\\ufeff.fits"');
  assert.equal(quoteIfUnsafe("m42\u061c.fits"), '"m42\\u061c.fits"');
});

Deno.test("escapeControlChars: C0, DEL, C1, line separators and bidi overrides", () => {
  assert.equal(escapeControlChars("plain C:\\data\\ü.fits"), "plain C:\\data\\ü.fits");
  assert.equal(escapeControlChars("a\tb\nc\rd"), "a\\tb\\nc\\rd");
  assert.equal(escapeControlChars("\x00\x1b\x7f\x85"), "\\x00\\x1b\\x7f\\x85");
  assert.equal(
    escapeControlChars("x\u2028y\u2029z\u202ew\u2066"),
    "x\\u2028y\\u2029z\\u202ew\\u2066",
  );
});

/** A record as LogTape makes it for `logger(stage).<level>(template, properties)`. */
function record(
  level: LogRecord["level"],
  category: string[],
  message: unknown[],
  properties: Record<string, unknown> = {},
): LogRecord {
  return { level, category, message, rawMessage: "", timestamp: noon.getTime() + 45, properties };
}

/** `noon` in local time as a text line starts: `YYYY-MM-DD HH:MM:SS.mmm`. */
function localNoon(): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${noon.getFullYear()}-${two(noon.getMonth() + 1)}-${two(noon.getDate())} ` +
    `${two(noon.getHours())}:${two(noon.getMinutes())}:${two(noon.getSeconds())}.045`;
}

Deno.test("text lines: local time, level padded to 7, [stage], values filled in", () => {
  const sent = record("info", ["image-transfer", "pipeline"], [
    "Successfully transferred ",
    "/data/m42 001.fits",
    " -> ",
    "freya:/data/20240502/m42 001.fits",
    " (",
    4321,
    " bytes)",
  ], { job: "north" });
  assert.equal(
    formatText(sent),
    `${localNoon()} INFO    [pipeline] Successfully transferred /data/m42 001.fits -> ` +
      "freya:/data/20240502/m42 001.fits (4321 bytes)\n",
  );
  assert.equal(
    formatText(record("warning", ["image-transfer", "transfer", "ssh"], ["slow"])),
    `${localNoon()} WARNING [transfer.ssh] slow\n`,
  );
  assert.equal(
    formatText(record("error", ["image-transfer"], ["at the root"])),
    `${localNoon()} ERROR   [main] at the root\n`,
  );
  assert.equal(
    formatText(record("debug", ["image-transfer", "watch"], ["values: ", { a: 1 }, " ", null])),
    `${localNoon()} DEBUG   [watch] values: {"a":1} null\n`,
  );
});

Deno.test("text lines: control characters in values and in the template stay on one line", () => {
  const line = formatText(record("info", ["image-transfer", "watch"], ["found\n", FORGED, "\tok"]));
  assert.equal(
    line,
    `${localNoon()} INFO    [watch] found\\n` +
      '"a\\nSuccessfully transferred forged.fits\\r\\x1b[2Jb.fits"\tok\n',
  );
  assert.equal(line.split("\n").length, 2);
});

Deno.test("JSON lines: time, level, category, message with exact values, properties", () => {
  const line = formatJson(
    record("warning", ["image-transfer", "pipeline"], ["Sent ", FORGED, " (", 12, " bytes)"], {
      job: "north",
      source: FORGED,
      bytes: 12,
    }),
  );
  assert.ok(line.endsWith("}\n") && line.split("\n").length === 2, line);
  assert.deepEqual(JSON.parse(line), {
    time: "2024-05-02T12:00:00.045Z",
    level: "warning",
    category: "image-transfer.pipeline",
    message: `Sent ${FORGED} (12 bytes)`,
    job: "north",
    source: FORGED,
    bytes: 12,
  });
});

Deno.test("run --dry-run and status list a file name with a newline on one line, escaped", async () => {
  await using box = await cliSandbox();
  const source = join(box.watch, FORGED);
  await Deno.writeFile(source, randomBytes(100));
  await Deno.utime(source, noon, noon);
  const escaped = "a\\nSuccessfully transferred forged.fits\\r\\x1b[2Jb.fits";
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(
    dry.stdout.split("\n").includes(
      `would transfer "${join(box.watch, escaped)}" -> "${join(box.dest, "20240502", escaped)}"`,
    ),
    dry.stdout,
  );
  assert.ok(
    !dry.stdout.includes("\r") && !dry.stdout.includes("\x1b"),
    "raw control characters in the dry-run listing",
  );

  await sendOne(box);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.equal(status.code, 0, status.stderr);
  const recent = status.stdout.split("\n").filter((line) => line.includes("[default]"));
  assert.equal(recent.length, 1, status.stdout);
  assert.ok(recent[0].endsWith(`] "${escaped}" -> "20240502/${escaped}"`), recent[0]);
  assert.ok(
    !status.stdout.includes("\r") && !status.stdout.includes("\x1b"),
    "raw control characters in status",
  );
});
