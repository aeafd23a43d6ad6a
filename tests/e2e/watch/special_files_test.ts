/**
 * Only regular files are sent: FIFOs, sockets and devices in a watch folder
 * are skipped by scans and by the filter without being opened; names that
 * are not valid UTF-8 are reported as such; the skip log says each once.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { join } from "node:path";
import type { Logger } from "@logtape/logtape";
import { classifyEntry } from "../../../src/watch/entry_check.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { type Skip, SkipLog } from "../../../src/watch/skip_log.ts";
import { escapeName, readablePath } from "../../../src/watch/readable_names.ts";
import { scanFolder, type SkippedEntry } from "../../../src/watch/scan.ts";
import { findUndecodableNames } from "../../../src/watch/watch_worker.ts";

async function run(program: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(program, { args, stderr: "piped" }).output();
  assert.ok(out.success, `${program} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** Create a file whose name is `prefix` + the byte 0xff + `suffix` (not UTF-8), via python3. */
async function writeUndecodable(dir: string, prefix: string, suffix: string): Promise<void> {
  await run("python3", [
    "-c",
    "import os, sys; d = os.fsencode(sys.argv[1]); " +
    "open(os.path.join(d, os.fsencode(sys.argv[2]) + b'\\xff' + os.fsencode(sys.argv[3])), 'wb')" +
    ".write(b'data')",
    dir,
    prefix,
    suffix,
  ]);
}

/** Whether anything has the FIFO at `path` open for reading now (a non-blocking writer finds out). */
function fifoHasReader(path: string): boolean {
  try {
    fs.closeSync(fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === "ENXIO") return false;
    throw error;
  }
}

interface LogLine {
  level: string;
  message: string;
  properties: Record<string, unknown>;
}

/** A logger that records what it is asked to log. */
function recordingLogger(lines: LogLine[]): Logger {
  const at = (level: string) => (message: string, properties: Record<string, unknown>) =>
    void lines.push({ level, message, properties });
  return { debug: at("debug"), info: at("info"), error: at("error") } as unknown as Logger;
}

/** Scan `watch` through a `*.fits` filter: the filter, what it found and what it skipped. */
async function scanFits(watch: string) {
  const filter = createFileFilter(
    { file_patterns: ["*.fits"], exclude_patterns: [], watch_path: watch },
    { skipLog: null },
  );
  const skipped: SkippedEntry[] = [];
  const found = await Array.fromAsync(
    scanFolder(watch, filter, { onSkipped: (e) => skipped.push(e) }),
  );
  return { filter, found, skipped };
}

Deno.test("special files: FIFO, socket and device are skipped by scan and filter, never opened", async () => {
  const watch = await Deno.makeTempDir({ prefix: "itx-special-" });
  const listener = Deno.listen({ transport: "unix", path: join(watch, "sock.fits") });
  try {
    await Deno.writeTextFile(join(watch, "plain.fits"), "x");
    await run("mkfifo", [join(watch, "pipe.fits")]);
    await run("mknod", [join(watch, "null.fits"), "c", "1", "3"]);
    await run("mknod", [join(watch, "loop.fits"), "b", "7", "0"]);
    const { filter, found, skipped } = await scanFits(watch);
    assert.deepEqual(found.map((f) => f.relPath), ["plain.fits"]);
    const reasons = Object.fromEntries(skipped.map((e) => [e.relPath, e.skip.reason]));
    assert.deepEqual(reasons, {
      "pipe.fits": "FIFO",
      "sock.fits": "socket",
      "null.fits": "character device",
      "loop.fits": "block device",
    });
    for (const e of skipped) assert.equal(e.skip.level, "info");
    // The event path: the same verdicts.
    for (const [rel, reason] of Object.entries(reasons)) {
      assert.equal(filter.includesFile(rel), false, rel);
      assert.equal(filter.explain(rel), reason);
    }
    assert.equal(filter.includesFile("plain.fits"), true);
    // Nobody holds the FIFO open: it was never opened (and this test did not hang).
    assert.equal(fifoHasReader(join(watch, "pipe.fits")), false);
  } finally {
    listener.close();
    await Deno.remove(watch, { recursive: true });
  }
});

Deno.test("special files: a name that is not UTF-8 is an error-level skip, not a vanished file", async () => {
  const watch = await Deno.makeTempDir({ prefix: "itx-undecodable-" });
  try {
    await writeUndecodable(watch, "caf", ".fits");
    await Deno.mkdir(join(watch, "night"));
    await writeUndecodable(join(watch, "night"), "b", ".fits");
    // A name with a real U+FFFD is valid UTF-8 and is sent.
    await Deno.writeTextFile(join(watch, "real\uFFFD.fits"), "x");
    const { found, skipped } = await scanFits(watch);
    assert.deepEqual(found.map((f) => f.relPath), ["real\uFFFD.fits"]);
    assert.deepEqual(skipped.map((e) => [e.relPath, e.skip.code, e.skip.level]).sort(), [
      ["caf\uFFFD.fits", "name", "error"],
      ["night/b\uFFFD.fits", "name", "error"],
    ]);
    assert.match(skipped[0].skip.reason, /not valid UTF-8/);
    assert.deepEqual(findUndecodableNames(watch).sort(), [
      join(watch, "caf\uFFFD.fits"),
      join(watch, "night", "b\uFFFD.fits"),
    ]);
    const verdict = classifyEntry(join(watch, "caf\uFFFD.fits"), { watch_path: watch });
    assert.equal(verdict.ok, false);
    // A path that simply vanished is not logged at all.
    const gone = classifyEntry(join(watch, "gone.fits"), { watch_path: watch });
    assert.deepEqual(gone.ok ? null : [gone.code, gone.level], ["gone", "none"]);
  } finally {
    await Deno.remove(watch, { recursive: true });
  }
});

Deno.test("skip log: one line per path and kind, at the skip's level; memory stays bounded", () => {
  const lines: LogLine[] = [];
  const log = new SkipLog({ capacity: 3, log: recordingLogger(lines) });
  const fifo = { code: "special", reason: "FIFO", level: "info" } as const;
  assert.equal(log.skipped("/w/p", fifo, { job: "j" }), true);
  assert.equal(log.skipped("/w/p", fifo), false, "the same skip again is not logged");
  assert.equal(log.skipped("/w/p", { code: "hidden", reason: "hidden", level: "debug" }), true);
  assert.equal(log.skipped("/w/d", { code: "folder", reason: "a folder", level: "none" }), false);
  // The job is named in the line, as its other lines name it (several jobs may skip files).
  assert.deepEqual(lines[0], {
    level: "info",
    message: "Skipped {path} of job {job}: {reason}",
    properties: { job: "j", path: "/w/p", reason: "FIFO" },
  });
  assert.equal(lines[1].level, "debug");
  assert.equal(lines[1].message, "Skipped {path}: {reason}", "no job given: none named");
  // Capacity 3: after three more paths the first is forgotten and logged again.
  for (const p of ["/w/a", "/w/b", "/w/c"]) log.skipped(p, fifo);
  assert.equal(log.size, 3);
  assert.equal(log.skipped("/w/p", fifo), true);
  // An undecodable name: ERROR, with the folder and an escaped name.
  lines.length = 0;
  log.skipped("/w/n/caf\uFFFD\n.fits", {
    code: "name",
    reason: "not UTF-8",
    level: "error",
  }, { job: "j" });
  assert.equal(lines.length, 1);
  const named: LogLine = lines[0];
  assert.equal(named.level, "error");
  assert.equal(named.message, "Cannot send {name} in folder {folder} of job {job}: {reason}");
  assert.equal(named.properties.folder, "/w/n");
  assert.equal(named.properties.name, "caf\\ufffd\\n.fits");
  // Followed links: once per link and target.
  lines.length = 0;
  log.followed("/w/l.fits", "/etc/x", "follow");
  log.followed("/w/l.fits", "/etc/x", "follow");
  assert.equal(lines.length, 1);
  assert.match(lines[0].message, /^Following symbolic link/);
});

Deno.test("skip log: names the patterns leave out, more than it remembers, are not said again at every rescan", () => {
  // Before: 18,000 names in one folder, capacity 10,000: each rescan forgot the next ones before
  // it reached them, and said every name again (54,000 lines in 50 s with 20 s rescans).
  const lines: LogLine[] = [];
  const log = new SkipLog({ capacity: 3, log: recordingLogger(lines) });
  const unmatched: Skip = {
    code: "unmatched",
    reason: "matches none of file_patterns",
    level: "info",
  };
  const names = ["/w/a.dat", "/w/b.dat", "/w/c.dat", "/w/d.dat", "/w/e.dat"];
  for (const name of names) log.skipped(name, unmatched, { job: "j" });
  assert.deepEqual(lines.map((line) => line.properties.path ?? "notice"), [
    "/w/a.dat",
    "/w/b.dat",
    "/w/c.dat",
    "notice",
  ]);
  assert.match(lines[3].message, /not logged one by one/);
  for (let rescan = 0; rescan < 3; rescan++) {
    for (const name of names) log.skipped(name, unmatched, { job: "j" });
  }
  assert.equal(lines.length, 4, "a rescan says nothing again");
  // Other skips still take the oldest place: a FIFO is said.
  assert.equal(log.skipped("/w/p", { code: "special", reason: "FIFO", level: "info" }), true);
});

Deno.test("readablePath: escapes control characters, overrides and undecodable bytes of each part", () => {
  assert.equal(readablePath("/w/a b.fits"), "/w/a b.fits");
  assert.equal(readablePath('/w/a"b.fits'), '/w/a"b.fits');
  assert.equal(readablePath("/w/x/caf\uFFFD.fits"), "/w/x/caf\\ufffd.fits");
  assert.equal(readablePath("/w/a\nb.fits"), "/w/a\\nb.fits");
  // A name with a backslash written in it is escaped too: it never reads like one with a break.
  assert.equal(readablePath("/w/a\\nb.fits"), "/w/a\\\\nb.fits");
  assert.notEqual(readablePath("/w/a\\nb.fits"), readablePath("/w/a\nb.fits"));
  assert.equal(escapeName("a\tb\uFFFD"), "a\\tb\\ufffd");
  // A folder's name reaches the terminal too (status, run --dry-run): an escape sequence in it
  // would act there (clear the screen, recolour what follows).
  assert.equal(
    readablePath('/w/dir\u001b[2J "q"/note.txt'),
    '/w/dir\\u001b[2J \\"q\\"/note.txt',
  );
  // DEL, a C1 control (CSI), a line separator and a right-to-left override, which shows the
  // rest of the line reversed ("photo\u202egnp.exe" reads as photoexe.png).
  assert.equal(
    readablePath("/w/d\u007fe\u009bl/photo\u202egnp.exe\u2028"),
    "/w/d\\u007fe\\u009bl/photo\\u202egnp.exe\\u2028",
  );
  // A character that shows nothing makes a name look like another one.
  assert.equal(readablePath("/w/n1\u200b/m42\u2060.fits"), "/w/n1\\u200b/m42\\u2060.fits");
});

Deno.test("FITS checks never wait on a FIFO that took a file's name: they fail at once, opening nothing blocking", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-fifo-fits-" });
  try {
    const fifo = join(dir, "swapped.fits");
    await run("mkfifo", [fifo]);
    // In a process of its own: a read that blocks would hang it, not this test.
    const script = [
      `import { readFitsStructure } from ${
        JSON.stringify(new URL("../../../src/layout/fits_structure.ts", import.meta.url).href)
      };`,
      `import { readFitsHeader } from ${
        JSON.stringify(new URL("../../../src/layout/fits_header.ts", import.meta.url).href)
      };`,
      "const path = Deno.args[0];",
      "try { readFitsStructure(path); console.log('structure: read'); }",
      "catch (error) { console.log(`structure: ${error.message}`); }",
      "await readFitsHeader(path).then(() => console.log('header: read'),",
      "  (error) => console.log(`header: ${error.message}`));",
    ].join("\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", script, fifo],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = await child.output();
    clearTimeout(timer);
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.signal, null, `blocked on the FIFO: ${stdout}`);
    assert.match(stdout, /^structure: not a regular file/m, stdout);
    assert.match(stdout, /^header: Cannot read FITS header of .*: not a regular file/m, stdout);
    assert.equal(fifoHasReader(fifo), false, "nothing holds it open");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
