/**
 * `min_free_space`: a destination that gets down to the room the job keeps
 * pauses the job before it is full (one ERROR, nothing given up, no partial
 * file under a final name), and the rest arrives once space is freed; for
 * `local`, and for `scp` and `rsync` through a real OpenSSH server (`df` over
 * the shared connection), each on a real tmpfs. `status` shows the paused job
 * of a real daemon. The watch folder's disk running low is warned about once.
 */
import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { parseFreeSpace } from "../../../src/config/free_space.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { SpaceGuard } from "../../../src/pipeline/space_guard.ts";
import { createTransport } from "../../../src/transfer/transport.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import {
  assertCopiesIntact,
  listArrived,
  randomBytes,
  waitFor,
  writeRandomFiles,
} from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { stepDateNow } from "../../helpers/fake_clock.ts";
import { sshPipelineJob, startSshd } from "../../helpers/sshd.ts";
import { withTmpfs, withTmpfsRun } from "../../helpers/tmpfs.ts";

const MIB = 1024 * 1024;
const FILES = 16;
const FILE_BYTES = 128 * 1024;
const PROBE_MS = 400;

Deno.test("min_free_space: bytes in human units or a percent; 0 is off", () => {
  assert.deepEqual(parseFreeSpace("5 GiB"), { bytes: 5 * 1024 ** 3 });
  assert.deepEqual(parseFreeSpace("500MB"), { bytes: 500e6 });
  assert.deepEqual(parseFreeSpace("1.5 kib"), { bytes: 1536 });
  assert.deepEqual(parseFreeSpace("4096"), { bytes: 4096 });
  assert.deepEqual(parseFreeSpace(1_000_000), { bytes: 1_000_000 });
  assert.deepEqual(parseFreeSpace("5%"), { percent: 5 });
  assert.deepEqual(parseFreeSpace("2.5 %"), { percent: 2.5 });
  for (const off of ["0", "", "0%", "0 GiB", 0]) assert.equal(parseFreeSpace(off), null, `${off}`);
  for (const bad of ["5 parsecs", "100%", "-1GB", "5 GiB free", "1e9", -5, "G"]) {
    assert.equal(parseFreeSpace(bad), undefined, `${bad}`);
  }
});

Deno.test("min_free_space: a wrong value is refused with its line and what to write", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-space-config-" });
  try {
    const config = join(root, "config.yaml");
    await Deno.writeTextFile(
      config,
      `watch_path: ${JSON.stringify(root)}\nremote_base_path: /tmp/x\ntransfer_method: local\n` +
        'min_free_space: "150%"\n',
    );
    const out = await runCli(["config", "validate", "-c", config], { env: { HOME: root } });
    assert.equal(out.code, 2);
    assert.match(
      out.stderr,
      /config\.yaml:4: min_free_space: not an amount of free space: "150%"; .*"5 GiB".*"5%"/,
    );
    assert.doesNotMatch(out.stderr, /at .*\.ts:\d+/, "no stack trace");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** Bytes free on the file system at `path`. */
async function freeBytes(path: string): Promise<number> {
  const info = await statfs(path);
  return info.bavail * info.bsize;
}

/**
 * `job` sends {@linkcode FILES} files into a 4 MiB tmpfs (mounted at
 * `mount`, its `remote_base_path` a folder inside that does not exist yet)
 * that a 2.5 MiB ballast file leaves 1.5 MiB of, keeping 1 MiB free. Then the
 * ballast is removed.
 */
async function pauseAndResume(
  job: JobConfig,
  mount: string,
  owner: { uid?: number; gid?: number },
) {
  await withTmpfsRun(mount, "4m", async ({ runtime, logs }) => {
    await Deno.writeFile(join(mount, "ballast.bin"), randomBytes(2.5 * MIB));
    const files = await writeRandomFiles(
      job.watch_path,
      Array.from({ length: FILES }, (_, i) => `night/space ${String(i).padStart(2, "0")}.fits`),
      FILE_BYTES,
    );
    const dest = job.remote_base_path;
    const ledger = Ledger.open(join(job.watch_path, "..", "state"));
    const runner = new JobRunner(job, ledger, createTransport(job, runtime), {
      once: false,
      closedForMs: 50,
      fullProbeMs: PROBE_MS,
    });
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 30_000, "the pause");
      // What fits arrives; then nothing does (the copies on their way when the pause began
      // end first: nothing new for 5 s, room for a busy machine).
      let arrived = -1;
      for (let now = 0; now !== arrived;) {
        arrived = now;
        await new Promise((r) => setTimeout(r, 5000));
        now = (await listArrived(dest)).length;
      }
      assert.ok(
        arrived >= 1 && arrived < FILES,
        `${arrived} of ${FILES} arrived before the pause`,
      );
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal((await listArrived(dest)).length, arrived, "nothing arrives while paused");
      // Paused before the disk filled up: the room kept is still there.
      assert.ok((await freeBytes(mount)) >= MIB, `${await freeBytes(mount)} bytes free`);
      const pause = logs.records.filter((r) => r.level === "error");
      assert.equal(pause.length, 1, pause.map((r) => String(r.rawMessage)).join("\n"));
      assert.match(String(pause[0].properties.reason), /min_free_space keeps 1\.0 MiB free/);
      assert.equal(logs.count("error", "Failed to transfer"), 0);
      const states = [...files.keys()].map((rel) => FileRows.of(ledger, job).get(rel)?.state);
      assert.ok(!states.includes("failed"), `no file gives up: ${states}`);
      await assertCopiesIntact(dest, files);

      await Deno.remove(join(mount, "ballast.bin"));
      await waitFor(
        () => [...files.keys()].every((rel) => FileRows.of(ledger, job).get(rel)?.state === "done"),
        30_000,
        "every file done once space was freed",
      );
      assert.equal(logs.count("info", "takes files again"), 1);
      assert.equal(logs.count("error", "is full"), 1, "said once");
      assert.equal(runner.summary.sent, FILES);
      assert.equal(runner.summary.failed, 0);
    } finally {
      await runner.stop();
      ledger.close();
    }
    assert.equal((await listArrived(dest)).length, FILES);
    await assertCopiesIntact(dest, files);
    // Nothing left behind: no temporary copies, no upload folders.
    await assertCopiesIntact(dest, files, true);
  }, owner);
}

Deno.test("min_free_space (local): the job pauses before the destination fills, and resumes when space is freed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-space-local-" });
  try {
    const mount = join(root, "dest");
    await pauseAndResume(
      localTestJob(root, {
        remote_base_path: join(mount, "in coming $(x)"),
        min_free_space: "1 MiB",
        max_concurrent_transfers: 2,
        verify_transfer: "size",
      }),
      mount,
      {},
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`min_free_space (${method}): df over the shared connection pauses the job, which resumes when space is freed`, async () => {
    const sshd = await startSshd();
    const root = await Deno.makeTempDir({ prefix: `itx-space-${method}-` });
    // The login user reaches the destination through it.
    await Deno.chmod(root, 0o755);
    try {
      const mount = join(root, "dest");
      await pauseAndResume(
        sshPipelineJob(sshd, method, root, {
          name: "space",
          remote_base_path: join(mount, "-in 'coming' $(x)"),
          min_free_space: "1MiB",
        }),
        mount,
        { uid: sshd.uid, gid: sshd.gid },
      );
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

Deno.test("min_free_space (daemon): one ERROR, status shows the job paused as destination full, all arrive once space is freed", async () => {
  await using box = await cliSandbox({
    verify_transfer: "size",
    min_free_space: "25%",
    log_file: "",
  });
  const { dest, config, env } = box;
  await withTmpfs(dest, "4m", async () => {
    await Deno.writeFile(join(dest, "ballast.bin"), randomBytes(3 * MIB));
    const files = await writeRandomFiles(
      box.watch,
      Array.from({ length: 8 }, (_, i) => `night/f${i}.fits`),
      FILE_BYTES,
    );
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput(
        /The destination .* is full: .*min_free_space keeps 1\.0 MiB \(25% of the file system\) free/,
      );
      const status = await runCli(["status", "-c", config], { env });
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /Job default: .*; paused: destination full since .*min_free_space/,
      );
      const json = JSON.parse(
        (await runCli(["status", "--json", "-c", config], { env })).stdout,
      );
      assert.equal(json.daemon.paused.default.state, "destination full");
      assert.ok((await listArrived(dest)).length < files.size, "paused before all arrived");
      assert.ok((await freeBytes(dest)) >= MIB, "the room kept is there");

      await Deno.remove(join(dest, "ballast.bin"));
      // The next probe (every 15 s) finds the room.
      await daemon.waitForOutput(/takes files again/, 40_000);
      await waitFor(async () => (await listArrived(dest)).length === files.size, 30_000);
      const after = await runCli(["status", "-c", config], { env });
      assert.doesNotMatch(after.stdout, /paused/);
      assert.equal(daemon.stderr().match(/ERROR/g)?.length, 1, daemon.stderr());
      assert.doesNotMatch(daemon.stderr(), /Failed to transfer/);
    } finally {
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, daemon.stderr());
    }
    await assertCopiesIntact(dest, files, true);
  });
});

Deno.test("min_free_space: a watch folder whose disk runs low is warned about once, and its recovery said once", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-space-watch-" });
  const logs = await captureLogs();
  try {
    const watch = join(root, "watch");
    await withTmpfs(watch, "2m", async () => {
      await Deno.writeFile(join(watch, "ballast.bin"), randomBytes(1.75 * MIB));
      const job = localTestJob(root, { min_free_space: "25%", file_patterns: ["*.fits"] });
      const ledger = Ledger.open(join(root, "state"));
      const runner = new JobRunner(job, ledger, createTransport(job, root), {
        once: false,
        watchDiskCheckMs: 100,
      });
      try {
        await runner.start();
        await waitFor(() => logs.count("warning", "is running low") > 0, 10_000, "the warning");
        // Ten more checks: not said again.
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(logs.count("warning", "is running low"), 1);
        await Deno.remove(join(watch, "ballast.bin"));
        await waitFor(() => logs.count("info", "has room again") > 0, 10_000, "the recovery");
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(logs.count("info", "has room again"), 1);
        assert.equal(logs.count("warning", "is running low"), 1);
      } finally {
        await runner.stop();
        ledger.close();
      }
    });
  } finally {
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("min_free_space with a method that cannot measure (ftp): said once at the start, batches go", async () => {
  const logs = await captureLogs();
  const root = await Deno.makeTempDir({ prefix: "itx-space-ftp-" });
  try {
    const job = localTestJob(root, { transfer_method: "ftp", min_free_space: "5 GiB" });
    const guard = new SpaceGuard({
      job,
      target: "ftps://server/incoming",
      signal: new AbortController().signal,
      repeatWatchCheck: false,
    });
    guard.start();
    assert.equal(await guard.admit(10 * MIB), null);
    assert.equal(await guard.admit(10 * MIB), null);
    guard.close();
    assert.equal(logs.count("warning", "is not checked at the destination"), 1);
  } finally {
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a full destination's probe that cannot fit is refused unsent (no min_free_space); running, nothing is measured", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-space-probe-" });
  try {
    let measured = 0;
    const guard = new SpaceGuard({
      job: localTestJob(root),
      target: "/dest",
      measure: () => {
        measured++;
        return Promise.resolve({ availableBytes: 4 * MIB, totalBytes: 100 * MIB });
      },
      signal: new AbortController().signal,
      repeatWatchCheck: false,
    });
    guard.start();
    // Running: batches go without a measurement (no round trip per batch).
    assert.equal(await guard.admit(10 * MIB), null);
    assert.equal(measured, 0);
    // Paused as full: a probe larger than the room is refused in the words of a full disk.
    const refused = await guard.admit(10 * MIB, true);
    assert.match(refused ?? "", /^no space left: 4.0 MiB free and 10.0 MiB to send$/);
    assert.ok(measured >= 1);
    // One that fits goes, and counts against the room measured.
    assert.equal(await guard.admit(3 * MIB, true), null);
    assert.match(
      (await guard.admit(2 * MIB, true, 2)) ?? "",
      /^no space left: 1.0 MiB free and 2.0 MiB to send in 2 files$/,
    );
    guard.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a full destination made room while the wall clock was set back an hour: its probe is measured again and goes", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-space-step-" });
  try {
    let available = 4 * MIB;
    const guard = new SpaceGuard({
      job: localTestJob(root),
      target: "/dest",
      measure: () => Promise.resolve({ availableBytes: available, totalBytes: 100 * MIB }),
      signal: new AbortController().signal,
      repeatWatchCheck: false,
    });
    guard.start();
    assert.match((await guard.admit(10 * MIB, true)) ?? "", /^no space left: 4.0 MiB free/);
    // NTP sets the wall clock back an hour; room is made there.
    using _step = stepDateNow(-3_600_000);
    available = 50 * MIB;
    // Before the fix the measurement before the step was used until the clock came back to it.
    await waitFor(
      async () => await guard.admit(10 * MIB, true) === null,
      30_000,
      "the probe admitted",
    );
    guard.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
