/**
 * While a job is paused because its FTP destination failed, the probes that look whether it is
 * back are said in the log when they fail, at a rate a person can follow: the first failed probe
 * with its reason, then only a probe whose reason changed (or a reminder every 10 min, which the
 * unit tests of the pause show on a manual clock). A real vsftpd is stopped, then started again
 * without the destination folder, then given it back; the waiting files arrive with their bytes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { StatusEvents } from "../../../src/status/events.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import { randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

Deno.test("ftp, a job paused because its destination failed: failed probes are said, the first and each new reason, not every probe", () =>
  withVsftpdAndRoot({}, "itx-ftp-probes-", async ({ server, root }) => {
    const watch = join(root, "watch");
    await Deno.mkdir(watch);
    const dest = await server.makeRemoteDir();
    const job = server.job({
      name: "probes",
      watch_path: watch,
      remote_base_path: dest,
      file_patterns: ["*.fits"],
      stability_window_seconds: 0.2,
      night_timezone: "UTC",
      retry_delay_seconds: 0.1,
      retry_max_delay_seconds: 0.2,
    });
    const logs = await captureLogs();
    const ledger = Ledger.open(join(root, "state"));
    const events = new StatusEvents();
    let probes = 0;
    events.listen((event) => void (event.type === "started" && event.probe && probes++));
    const runner = new JobRunner(job, ledger, new FtpTransport(job), {
      once: false,
      closedForMs: 50,
      fullProbeMs: 200,
      events,
    });
    const files = new Map<string, Uint8Array>();
    const write = async (name: string) => {
      files.set(name, randomBytes(5_000));
      await Deno.writeFile(join(watch, name), files.get(name)!);
      await Deno.utime(join(watch, name), NIGHT, NIGHT);
    };
    const row = (name: string) => FileRows.of(ledger, job).get(name);
    const warned = () =>
      logs.records.filter((r) => r.level === "warning").map((r) => r.message.map(String).join(""));
    const probeLines = () => warned().filter((line) => line.includes(" probe(s) failed): "));
    try {
      await runner.start();
      await write("a.fits");
      await waitFor(() => row("a.fits")?.state === "done", 60_000, "a.fits");

      await server.kill();
      await write("b.fits");
      await write("c.fits");
      await waitFor(() => logs.count("error", "cannot be reached") === 1, 60_000, "the pause");
      await waitFor(() => probeLines().length > 0, 60_000, "the first failed probe said");
      const refused = new RegExp(
        `^The destination ftps://itx-ftp@127\\.0\\.0\\.1:${server.port}${dest}/ still cannot be ` +
          "reached, for under a minute \\(1 probe\\(s\\) failed\\): Cannot send .*/[bc]\\.fits: FTP server " +
          `itx-ftp@127\\.0\\.0\\.1:${server.port}: connect: connection lost or refused .*\\. ` +
          "Job probes stays paused; one file is tried every 0\\.2 s \\(said again when the reason " +
          "changes, else every 10 min\\)$",
      );
      assert.match(probeLines()[0], refused);
      // Many more probes, b.fits and c.fits in turn, the same reason: nothing more said.
      const before = probes;
      await waitFor(() => probes >= before + 10, 60_000, "ten more probes");
      assert.equal(probeLines().length, 1, probeLines().join("\n"));

      // The server is back, the destination folder is not: a new reason, said once.
      await Deno.remove(dest, { recursive: true });
      await server.restart();
      await waitFor(() => probeLines().length > 1, 60_000, "the new reason said");
      assert.match(
        probeLines()[1],
        /still takes no file, (?:for under a minute|\d+ min on) \(\d+ probe\(s\) failed\): .*is gone/,
      );
      const gone = probes;
      await waitFor(() => probes >= gone + 10, 60_000, "ten more probes");
      assert.equal(probeLines().length, 2, probeLines().join("\n"));

      // The folder is back: the waiting files arrive, with their bytes.
      await Deno.mkdir(dest);
      await Deno.chown(dest, server.uid, server.gid);
      await waitFor(
        () => ["b.fits", "c.fits"].every((name) => row(name)?.state === "done"),
        60_000,
        "b.fits and c.fits",
      );
      for (const name of ["b.fits", "c.fits"]) {
        assert.equal(await sha256OfFile(join(dest, "20240701", name)), sha256Of(files.get(name)!));
      }
      assert.equal(logs.count("info", "takes files again"), 1);
      // The attempt it arrived in, and none for the probes while paused.
      assert.equal(row("b.fits")?.attempts, 1, "no probe counted as an attempt");
      assert.equal(probeLines().length, 2);
    } finally {
      await runner.stop();
      ledger.close();
      await logs.stop();
    }
  }));
