/**
 * A name holding a line break cannot travel over FTP (its commands are lines). A real daemon
 * sending to a real vsftpd sets such files aside as skipped (a file, and a folder with the files
 * in it): each said once, at ERROR, with why and what to do, counted as a file that cannot be sent
 * and listed under NEEDS ATTENTION by `status`, never tried. The job's other files arrive with
 * their bytes, and the job is `watching` with nothing failed, not `failing` for files that can
 * never be sent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

interface Status {
  jobs: Array<{ state: string; reason: string | null; failed: number; cannotSend: number }>;
  problems: unknown[];
}

/** The reason the daemon, `status` and a dry run give for a name with a line break. */
const REASON = "its name holds a line break, which FTP cannot carry (its commands end there), " +
  "so the file is never sent; rename it (`ls -b` shows the exact name) and it is sent";
/** The same of a folder: its files are skipped with it. */
const FOLDER_REASON = REASON.replace("the file is", "the files in it are")
  .replace("it is sent", "they are sent");

Deno.test("ftp: a name with a line break is skipped once with why; the other files arrive and the job is not failing", () =>
  withVsftpdAndRoot({}, "itx-ftp-linebreak-", async ({ server, root }) => {
    const port = freePort();
    const box = await ftpDaemonSandbox(server, root, {
      status_listen: `127.0.0.1:${port}`,
      // Before the fix, each such file failed again every second: the job soon said `failing`.
      retry_attempts: 1,
      retry_delay_seconds: 0.2,
      retry_max_delay_seconds: 1,
    });
    const good = new Map([["a.fits", randomBytes(40_000)], ["deep/b.fits", randomBytes(3_000)]]);
    const bad = ["bad\nname.fits", "cr\r.fits", "night\nfolder/c.fits"];
    await Deno.mkdir(join(box.watch, "deep"));
    await Deno.mkdir(join(box.watch, "night\nfolder"));
    for (
      const [name, bytes] of [
        ...good,
        ...bad.map((name) => [name, randomBytes(2_000)] as const),
      ]
    ) {
      await Deno.writeFile(join(box.watch, name), bytes);
      await Deno.utime(join(box.watch, name), NIGHT, NIGHT);
    }
    const env = { HOME: root };
    const daemon = startCli(["run", "-c", box.config], { env });
    try {
      await daemon.waitForOutput("Watching ");
      const arrived = [...good.keys()].map((name) => `20240701/${name}`).sort();
      await waitFor(
        async () => (await listFiles(box.dest)).sort().join() === arrived.join(),
        60_000,
        "the files with plain names",
      );
      for (const [name, bytes] of good) {
        assert.equal(await sha256OfFile(join(box.dest, "20240701", name)), sha256Of(bytes), name);
      }
      const said = (path: string, reason = REASON) =>
        new RegExp(
          `ERROR +\\[watch\\] Cannot send "${box.watch}/${path}" of job default: ` +
            reason.replace(/[()`.]/g, "\\$&"),
          "g",
        );
      await daemon.waitForOutput(said("bad\\\\nname\\.fits"));
      await daemon.waitForOutput(said("cr\\\\r\\.fits"));
      await daemon.waitForOutput(said("night\\\\nfolder", FOLDER_REASON));

      const status = await getJson<Status>(`http://127.0.0.1:${port}`, "/api/status");
      const [job] = status.jobs;
      assert.equal(job.state, "watching", JSON.stringify(job));
      assert.equal(job.failed, 0, JSON.stringify(job));
      assert.equal(job.cannotSend, 3, JSON.stringify(job));
      assert.deepEqual(status.problems, []);

      const listing = await runCli(["status", "-c", box.config], { env });
      assert.equal(listing.code, 0, listing.stderr);
      assert.ok(
        listing.stdout.includes(`NEEDS ATTENTION: ${box.watch}/bad\\nname.fits: ${REASON}`),
        listing.stdout,
      );
      assert.ok(
        listing.stdout.includes(`NEEDS ATTENTION: ${box.watch}/night\\nfolder/: ${FOLDER_REASON}`),
        listing.stdout,
      );
      // Said once each, never tried: no attempt of them failed, nothing of them reached the server.
      const log = daemon.stderr();
      assert.equal(log.match(said("bad\\\\nname\\.fits"))?.length, 1, log);
      assert.doesNotMatch(log, /Failed to transfer|Attempt \d+ of/);
      assert.deepEqual((await listFiles(box.dest)).sort(), arrived);
    } finally {
      const stopped = await daemon.stop();
      assert.equal(stopped.code, 0, daemon.stderr());
    }
    // A run --once ends failed, for the names it could not send (not "could not be opened").
    const once = await runCli(["run", "--once", "-c", box.config], { env });
    assert.equal(once.code, 1, once.stderr);
    assert.match(
      once.stderr,
      /Not every file was transferred: 3 matching file\(s\) or folder\(s\) cannot be sent by their names or read/,
    );
  }));
