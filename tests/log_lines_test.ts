/**
 * One event, one text log line: control characters in file names are
 * escaped in text logs, and kept exact in JSON logs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { listFiles, randomBytes } from "./helpers/files.ts";
import { cliSandbox } from "./helpers/sandbox.ts";
import { escapeControlChars } from "../src/log/logging.ts";

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
    sent[0].includes(`${join(box.watch, escaped)} -> ${join(box.dest, "20240502", escaped)}`),
    sent[0],
  );
  // Every line starts with a timestamp: nothing was split.
  for (const line of log.trimEnd().split("\n")) {
    assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, line);
  }
  assert.ok(!log.includes("\r") && !log.includes("\x1b"), "raw control characters in the log");
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

Deno.test("escapeControlChars: C0, DEL, C1, line separators and bidi overrides", () => {
  assert.equal(escapeControlChars("plain C:\\data\\ü.fits"), "plain C:\\data\\ü.fits");
  assert.equal(escapeControlChars("a\tb\nc\rd"), "a\\tb\\nc\\rd");
  assert.equal(escapeControlChars("\x00\x1b\x7f\x85"), "\\x00\\x1b\\x7f\\x85");
  assert.equal(
    escapeControlChars("x\u2028y\u2029z\u202ew\u2066"),
    "x\\u2028y\\u2029z\\u202ew\\u2066",
  );
});
