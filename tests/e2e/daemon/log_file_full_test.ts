/**
 * A log file on a full disk: the lines it cannot take are said to be lost (stderr, `status`,
 * `/api/status`, `/metrics`), none is left cut short and joined to the next, and once there is
 * room again the file says how many it lost and takes lines again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, runProgram } from "../../helpers/cli.ts";
import { listArrived, randomBytes, waitFor } from "../../helpers/files.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";
import { resizeTmpfs, withTmpfs } from "../../helpers/tmpfs.ts";

/** Every line of a text log starts with its time: none cut short and joined to another. */
const WHOLE_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z]+ +\[[^\]]+\] \S/;

/** The value of the unlabelled metric `name` at `base`. */
async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} missing from /metrics`);
  return Number(line.split(" ")[1]);
}

/** Drop `count` files named `prefix-N.fits` into `watch` and wait until all arrived. */
async function sendFiles(watch: string, dest: string, prefix: string, count: number) {
  for (let n = 0; n < count; n++) {
    await Deno.writeFile(join(watch, `${prefix}-${n}.fits`), randomBytes(1000 + n));
  }
  const arrived = async () =>
    (await listArrived(dest).catch(() => [])).filter((rel) => rel.includes(`/${prefix}-`))
      .length === count;
  await waitFor(arrived, 120_000, `${count} ${prefix} files at the destination`);
}

Deno.test("a log file on a full disk: lost lines are said, none joined to another, and the file is written again once there is room", async () => {
  const logDisk = await Deno.makeTempDir({ prefix: "itx-logfull-" });
  try {
    await withTmpfs(logDisk, "1m", async (disk) => {
      const logFile = join(disk, "it.log");
      await using d = await startStatusDaemon({ log_file: logFile });
      await sendFiles(d.watch, d.dest, "before", 3);
      // The disk filled by another program: what is left of it taken.
      const filler = join(disk, "filler");
      try {
        using out = await Deno.open(filler, { create: true, write: true });
        const block = new Uint8Array(64 * 1024);
        for (;;) await out.write(block);
      } catch (error) {
        assert.ok(/space/i.test(String(error)), String(error));
      }
      // More lines than the room left in the log file's last page (a tmpfs gives whole pages).
      await sendFiles(d.watch, d.dest, "full", 60);
      await d.daemon.waitForOutput("Cannot write the log file");
      const said = d.daemon.stderr().split("\n").filter((l) => l.includes("Cannot write the log"));
      assert.equal(said.length, 1, d.daemon.stderr());
      assert.match(said[0], /^\S+ \S+ ERROR +\[log\] /);
      assert.match(said[0], /it\.log: No space left on device/);
      assert.match(said[0], /\(\d+ bytes free on its disk\)/);
      // Lines to stderr go on meanwhile: every file sent is said there.
      const sentSaid = (prefix: string) =>
        d.daemon.stderr().split("\n").filter((l) =>
          l.includes("Successfully transferred") && l.includes(`${prefix}-`)
        ).length;
      await waitFor(() => sentSaid("full") === 60, 60_000, "60 files said sent on stderr");
      const inFile = (await Deno.readTextFile(logFile)).split("\n").filter((l) =>
        l.includes("Successfully transferred") && l.includes("full-")
      ).length;
      assert.ok(inFile < 60, `${inFile} of 60 lines in the log file of a full disk`);

      const api = await getJson<{ logFileLoss: Record<string, unknown>; logLinesLost: number }>(
        d.base,
        "/api/status",
      );
      assert.equal(api.logFileLoss.file, logFile);
      assert.equal(api.logFileLoss.until, null);
      assert.match(String(api.logFileLoss.reason), /No space left on device/);
      // Every line not in the file is counted (other lines than these were lost too).
      assert.ok(Number(api.logFileLoss.lines) >= 60 - inFile, JSON.stringify(api.logFileLoss));
      assert.ok(api.logLinesLost >= Number(api.logFileLoss.lines), JSON.stringify(api));
      assert.ok(await metric(d.base, "image_transfer_log_lines_lost_total") >= api.logLinesLost);
      const metricsText = await (await fetch(`${d.base}/metrics`)).text();
      const checked = await runProgram("promtool", ["check", "metrics"], { stdin: metricsText });
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      // `status` says it too (told as lines are lost: at least once after the first).
      await waitFor(
        async () => {
          const status = await runCli(["status", "-c", d.config]);
          return /Log file .*it\.log: \d+ line\(s\) lost since .*, and still loses them \(No space left on device/
            .test(status.stdout);
        },
        60_000,
        "status saying the log file loses lines",
      );

      // Room again: the next line written says how many were lost, on a line of its own.
      await Deno.remove(filler);
      await resizeTmpfs(disk, "2m");
      await sendFiles(d.watch, d.dest, "after", 3);
      await d.daemon.waitForOutput(/The log file .*it\.log is written again: \d+ line\(s\) lost/);
      await waitFor(
        async () => {
          const log = await Deno.readTextFile(logFile);
          return log.split("\n").filter((l) =>
            l.includes("after-")
          ).length >= 3;
        },
        60_000,
        "the files sent after said in the log file",
      );
      const log = await Deno.readTextFile(logFile);
      const lines = log.trimEnd().split("\n");
      for (const line of lines) {
        assert.match(line, WHOLE_LINE, line);
        // Cut short by the full disk, a line ends there: the next is not joined to it.
        assert.equal(line.match(/\d\d:\d\d:\d\d\.\d{3} [A-Z]+ +\[/g)?.length, 1, line);
      }
      assert.equal(lines.filter((l) => l.includes("is written again")).length, 1, log);
      assert.match(
        log,
        /WARNING \[log\] The log file .*it\.log is written again: \d+ line\(s\) lost since \S+ \(No space left on device/,
      );
      assert.equal(
        lines.filter((l) => l.includes("Successfully transferred") && l.includes("before-")).length,
        3,
        log,
      );
      await waitFor(
        async () => {
          const after = await getJson<{ logFileLoss: { until: string | null } }>(
            d.base,
            "/api/status",
          );
          return after.logFileLoss.until !== null;
        },
        60_000,
        "/api/status saying the log file is written again",
      );
      const status = await runCli(["status", "-c", d.config]);
      assert.match(status.stdout, /line\(s\) lost from .* to .*; written again since/);
    });
  } finally {
    await Deno.remove(logDisk, { recursive: true });
  }
});
