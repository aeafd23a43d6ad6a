/**
 * A full FTP destination (a real vsftpd writing to a small tmpfs) is told as
 * full every time, plain FTP and FTPS: vsftpd closes the data connection
 * (the client sees `ECONNRESET`, `EPIPE` or a premature close) and then says
 * `451 Failure writing to local file` on the control connection, and that
 * reply decides. The job pauses once as full (never as unreachable), no file
 * counts an attempt, and everything arrives once there is room.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isDestinationFull } from "../../../src/errors.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import type { JobPause } from "../../../src/ledger/daemon_lock.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { resizeTmpfs, withExt4, withTmpfs } from "../../helpers/tmpfs.ts";
import { startVsftpd, type TestVsftpd } from "../../helpers/vsftpd.ts";

const MIB = 1024 * 1024;

/**
 * Run `fn` with a vsftpd (`tls` or plain) whose destination folder is a
 * 20 MiB tmpfs, and a private folder for sources and state.
 */
async function withFullServer(
  tls: boolean,
  fn: (server: TestVsftpd, dest: string, root: string) => Promise<void>,
): Promise<void> {
  const server = await startVsftpd({ tls });
  const root = await Deno.makeTempDir({ prefix: "itx-ftp-full-" });
  // The login user reaches the destination through it.
  await Deno.chmod(root, 0o755);
  try {
    await withTmpfs(
      join(root, "dest"),
      "20m",
      (dest) => fn(server, dest, root),
      { uid: server.uid, gid: server.gid },
    );
  } finally {
    await server.stop();
    await Deno.remove(root, { recursive: true });
  }
}

for (const tls of [false, true]) {
  const kind = tls ? "FTPS" : "plain FTP";

  Deno.test(`${kind}: every upload into a full destination fails as full, never as a lost connection`, async () => {
    await withFullServer(tls, async (server, dest, root) => {
      const items: TransferItem[] = [];
      for (let i = 0; i < 3; i++) {
        const source = join(root, `f${i}.fits`);
        await Deno.writeFile(source, randomBytes(8 * MIB));
        const info = await Deno.stat(source);
        items.push({
          source,
          destination: `night/f${i}.fits`,
          size: info.size,
          mtimeMs: info.mtime!.getTime(),
        });
      }
      const transport = new FtpTransport(server.job({ remote_base_path: dest }));
      try {
        const first = await transport.send(items, new AbortController().signal);
        assert.deepEqual(first.slice(0, 2).map((o) => o.error?.message ?? null), [null, null]);
        // The third does not fit, and then no file does (each would replace a copy, or add one):
        // the data connection fails each time, and the server's reply says the disk is full.
        const failures = [first[2].error!];
        for (let round = 0; round < 4; round++) {
          const outcomes = await transport.send(items, new AbortController().signal);
          failures.push(...outcomes.map((o) => o.error!));
        }
        for (const error of failures) {
          assert.ok(error !== null && isDestinationFull(error), `not full: ${error?.message}`);
          assert.match(error.message, /destination is full/);
        }
      } finally {
        await transport.close();
      }
    });
  });
}

Deno.test("plain FTP, a job: a full destination pauses it as full once, no attempts counted; it resumes when there is room", async () => {
  await withFullServer(false, async (server, dest, root) => {
    const watch = join(root, "watch");
    await Deno.mkdir(join(watch, "night"), { recursive: true });
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 3; i++) {
      files.set(`night/f${i}.fits`, randomBytes(8 * MIB));
      await Deno.writeFile(join(watch, `night/f${i}.fits`), files.get(`night/f${i}.fits`)!);
    }
    const job = server.job({
      name: "full",
      watch_path: watch,
      remote_base_path: dest,
      file_patterns: ["*.fits"],
      stability_window_seconds: 0.2,
      night_timezone: "UTC",
      verify_transfer: "size",
      retry_attempts: 3,
      retry_delay_seconds: 0.1,
      retry_max_delay_seconds: 0.2,
      max_concurrent_transfers: 1,
    });
    const logs = await captureLogs();
    const ledger = Ledger.open(join(root, "state"));
    const transport = new FtpTransport(job);
    const pauses: string[] = [];
    const runner = new JobRunner(job, ledger, transport, {
      once: false,
      closedForMs: 50,
      fullProbeMs: 300,
      onPauseChange: (pause: JobPause | null) => pause && pauses.push(pause.state),
    });
    const row = (rel: string) => FileRows.of(ledger, job).get(rel);
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 60_000, "the pause");
      // Several probes fail against the full disk while the job waits.
      const held = () => logs.count("debug", "waits for the destination to take files again");
      await waitFor(() => held() >= 4, 60_000, "probes while paused");
      assert.deepEqual([...new Set(pauses)], ["destination full"]);
      assert.equal(logs.count("error", "is full"), 1, "said once");
      assert.equal(logs.count("error", "cannot be reached"), 0);
      assert.equal(logs.count("warning", "Attempt"), 0);
      assert.equal(logs.count("error", "Failed to transfer"), 0);
      const waiting = [...files.keys()].filter((rel) => row(rel)?.state !== "done");
      assert.equal(waiting.length, 1, "two fit, one waits");
      assert.equal(row(waiting[0])?.attempts, 0, "no attempt counted");

      await resizeTmpfs(dest, "40m");
      await waitFor(
        () => [...files.keys()].every((rel) => row(rel)?.state === "done"),
        60_000,
        "every file once there is room",
      );
      assert.equal(logs.count("info", "takes files again"), 1);
      // Under the night folder the layout puts them in.
      for (const arrived of await listFiles(dest)) {
        const rel = arrived.slice(arrived.indexOf("/") + 1);
        assert.deepEqual(await Deno.readFile(join(dest, arrived)), files.get(rel), arrived);
      }
    } finally {
      await runner.stop();
      ledger.close();
      await logs.stop();
    }
    assert.equal((await listFiles(dest)).length, files.size, "no temporary copy left");
  });
});

Deno.test("FTPS: a full ext4 destination, where a new folder cannot be made (night or upload folder), is told as full", async () => {
  const server = await startVsftpd();
  const root = await Deno.makeTempDir({ prefix: "itx-ftp-full-ext4-" });
  await Deno.chmod(root, 0o755);
  try {
    await withExt4(join(root, "dest"), 8, async (dest) => {
      await Deno.mkdir(join(dest, "old"));
      await Deno.chown(join(dest, "old"), server.uid, server.gid);
      // Filled by the login user: what ext4 keeps for root stays free, and the login gets none.
      const filled = await new Deno.Command("setpriv", {
        args: [`--reuid=${server.uid}`, `--regid=${server.gid}`, "--clear-groups", "dd"]
          .concat(["if=/dev/zero", `of=${join(dest, "old", "filler")}`, "bs=1k"]),
        stderr: "null",
      }).output();
      assert.equal(filled.success, false, "dd ran until the disk was full");
      const items: TransferItem[] = [];
      for (const destination of ["new night/a.fits", "old/b.fits"]) {
        const source = join(root, destination.replace(/\//g, "_"));
        await Deno.writeFile(source, randomBytes(64 * 1024));
        const info = await Deno.stat(source);
        items.push({ source, destination, size: info.size, mtimeMs: info.mtime!.getTime() });
      }
      const transport = new FtpTransport(server.job({ remote_base_path: dest }));
      try {
        const outcomes = await transport.send(items, new AbortController().signal);
        const steps = ["create folder .*new night", "make the upload folder .*old/"];
        for (const [i, outcome] of outcomes.entries()) {
          const error = outcome.error;
          assert.ok(error !== null && isDestinationFull(error), `not full: ${error?.message}`);
          assert.match(
            error.message,
            new RegExp(
              `the destination is full: cannot ${steps[i]}.*\\(550 .*\\), and a test write in ` +
                ".* was refused \\(451 ",
            ),
          );
        }
      } finally {
        await transport.close();
      }
      const left = (await listFiles(dest)).filter((path) => path !== "old/filler");
      assert.deepEqual(left, [], "no test write or copy is left");
    }, { uid: server.uid, gid: server.gid });
  } finally {
    await server.stop();
    await Deno.remove(root, { recursive: true });
  }
});
