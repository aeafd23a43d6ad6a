/**
 * A destination that fills up pauses the job instead of burning the files'
 * retries: one ERROR, one probe file now and then, no file marked failed;
 * once the file system is enlarged everything arrives without a restart.
 * For `local`, `scp` and `rsync` (over a real OpenSSH server), with a real
 * tmpfs as the destination; the bytes of every final name are checked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import {
  createTransport,
  type TransferItem,
  type TransferOutcome,
  type Transport,
} from "../../../src/transfer/transport.ts";
import { startCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import {
  assertCopiesIntact,
  existsSync,
  listArrived,
  listFiles,
  randomBytes,
  waitFor,
  writeRandomFiles,
} from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import type { LogCapture } from "../../helpers/log_capture.ts";
import { sshPipelineJob, startSshd } from "../../helpers/sshd.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson } from "../../helpers/status.ts";
import { resizeTmpfs, withTmpfs, withTmpfsRun } from "../../helpers/tmpfs.ts";

const FILES = 24;
/**
 * Six fit in the 1 MiB destination, and the 124 KiB left never takes a seventh: with 128 KiB the
 * eighth would fit exactly, but only once every copy cut short by the full disk was gone, so
 * whether it arrived during the pause depended on the machine's load.
 */
const FILE_BYTES = 150 * 1024;
const PROBE_MS = 400;

/** A transport that counts the files it is given, and keeps a line per call for messages. */
class CountingTransport implements Transport {
  readonly method;
  readonly maxBatchFiles;
  items = 0;
  /** Calls of one file that ended with nothing arrived, since the last call that did otherwise. */
  failedProbesInARow = 0;
  readonly startedAt = Date.now();
  readonly calls: string[] = [];
  /** Called with each call's items before they are sent; the call waits for what it returns. */
  onSend?: (items: TransferItem[]) => void | Promise<void>;
  constructor(readonly inner: Transport) {
    this.method = inner.method;
    this.maxBatchFiles = inner.maxBatchFiles;
  }
  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    await this.onSend?.(items);
    this.items += items.length;
    const call = `${Date.now() - this.startedAt} ms: ${items.length} file(s)`;
    try {
      const outcomes = await this.inner.send(items, signal);
      const arrived = outcomes.filter((o) => o.error === null).length;
      this.failedProbesInARow = items.length === 1 && arrived === 0
        ? this.failedProbesInARow + 1
        : 0;
      this.calls.push(`${call}, ${arrived} arrived, ended at ${Date.now() - this.startedAt} ms`);
      return outcomes;
    } catch (error) {
      this.failedProbesInARow = 0;
      this.calls.push(`${call}, threw ${error}`);
      throw error;
    }
  }
  describeTarget(destination: string): string {
    return this.inner.describeTarget(destination);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * A runner of `job` (its ledger in `stateDir`), sending through a
 * {@linkcode CountingTransport}, probing a full destination every
 * {@linkcode PROBE_MS}; `close` stops it and closes the ledger.
 */
function probingRunner(job: JobConfig, stateDir: string, runtime: string, probeMs = PROBE_MS) {
  const ledger = Ledger.open(stateDir);
  const transport = new CountingTransport(createTransport(job, runtime));
  const runner = new JobRunner(job, ledger, transport, {
    once: false,
    closedForMs: 50,
    fullProbeMs: probeMs,
  });
  return {
    ledger,
    transport,
    runner,
    async close() {
      await runner.stop();
      ledger.close();
    },
  };
}

/**
 * Run the scenario for `job` (its `remote_base_path` is a 1 MiB tmpfs
 * meanwhile, owned by `owner` when given; with `inodes`, a 16 MiB one that
 * holds that many files and folders: full with room left).
 */
async function fillUpAndGrow(
  job: JobConfig,
  owner: { uid?: number; gid?: number } = {},
  inodes?: number,
) {
  const dest = job.remote_base_path;
  await withTmpfsRun(dest, inodes === undefined ? "1m" : "16m", async ({ runtime, logs }) => {
    const files = await writeRandomFiles(
      job.watch_path,
      Array.from({ length: FILES }, (_, i) => `night/full ${String(i).padStart(2, "0")}.fits`),
      FILE_BYTES,
    );
    const probing = probingRunner(job, join(job.watch_path, "..", "state"), runtime);
    const { ledger, transport, runner } = probing;
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 30_000, "the pause");
      // The files that still fit arrive (a probe, then 2, 4 … more files as the job recovers);
      // then nothing does, however many tries follow. A copy cut short by the full disk is
      // removed once its call ends, and a probe may fit in the room it leaves: the pause is
      // steady once two probes ended in a row (no other call ending between) with nothing
      // through. Arrivals seen in the listing cannot tell: they lag behind the calls, which are
      // counted when they start.
      await waitFor(
        () => transport.failedProbesInARow >= 2,
        60_000,
        "arrivals to stop while probes go on",
      );
      const arrived = (await listArrived(dest)).length;
      // Paused: probes go on, one per PROBE_MS at most (and what was on its way); a busy
      // machine may take longer over each.
      const triedBefore = transport.items;
      const since = Date.now();
      await waitFor(() => transport.items - triedBefore >= 2, 20_000, "probes while paused");
      await new Promise((r) => setTimeout(r, 2000));
      const tried = transport.items - triedBefore;
      const most = (Date.now() - since) / PROBE_MS + 2 * job.max_concurrent_transfers;
      assert.ok(
        tried <= most,
        `${tried} tries, at most ${most}; measured from ${
          since - transport.startedAt
        } ms; calls:\n${transport.calls.join("\n")}`,
      );
      assert.equal((await listArrived(dest)).length, arrived, "nothing arrives while full");
      assert.equal(logs.count("error", "is full"), 1, "said once");
      // Copies cut short by the full disk are removed, not kept to be continued: their room
      // goes to whole files.
      assert.equal(logs.count("info", "Kept the interrupted copy"), 0);
      const states = [...files.keys()].map((rel) => FileRows.of(ledger, job).get(rel)?.state);
      assert.ok(!states.includes("failed"), `no file gives up: ${states}`);
      assert.ok(states.includes("pending"), "files wait");
      assert.equal(logs.count("error", "Failed to transfer"), 0);
      await assertCopiesIntact(dest, files);

      await resizeTmpfs(dest, "16m", inodes === undefined ? undefined : 1000);
      await waitFor(
        () => [...files.keys()].every((rel) => FileRows.of(ledger, job).get(rel)?.state === "done"),
        30_000,
        "every file done after the file system grew",
      );
      assert.equal(logs.count("info", "takes files again"), 1);
      assert.equal((await listArrived(dest)).length, FILES);
      await assertCopiesIntact(dest, files);
      assert.equal(runner.summary.sent, FILES);
      assert.equal(runner.summary.failed, 0);
    } finally {
      await probing.close();
    }
    // Nothing left behind: no temporary copies, no upload folders.
    await assertCopiesIntact(dest, files, true);
  }, { ...owner, inodes });
}

Deno.test("disk full (local): the job pauses, probes, and resumes when there is space", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-full-local-" });
  try {
    await fillUpAndGrow(
      localTestJob(root, {
        retry_attempts: 2,
        retry_delay_seconds: 0.1,
        retry_max_delay_seconds: 0.2,
        max_concurrent_transfers: 2,
        verify_transfer: "size",
      }),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

for (const method of ["scp", "rsync"] as const) {
  // scp (SFTP) says only "Failure": the transport asks the server's `df` and reports it full.
  Deno.test(`disk full (${method}): the job pauses, probes, and resumes when there is space`, async () => {
    const sshd = await startSshd();
    const root = await Deno.makeTempDir({ prefix: `itx-full-${method}-` });
    // The login user reaches the destination through it.
    await Deno.chmod(root, 0o755);
    try {
      await fillUpAndGrow(
        sshPipelineJob(sshd, method, root, { name: "full", remote_base_path: join(root, "dest") }),
        { uid: sshd.uid, gid: sshd.gid },
      );
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

// A file system out of inodes has room left, so the room is no sign: the words of the remote
// tool (tar: "Cannot open: No space left on device"; "Wrote only N of M bytes" when a write is
// cut short) or the inodes left (SFTP says only "Failure") tell a full disk. In one call (tar),
// and by scp's upload (a bandwidth limit).
const INODE_CASES: [string, Partial<JobConfig>][] = [
  ["one call", {}],
  ["scp upload", { bandwidth_limit: "500MB/s" }],
];
for (const [how, overrides] of INODE_CASES) {
  Deno.test(`disk full (scp, ${how}, out of inodes): the job pauses, probes, and resumes when there is room`, async () => {
    const sshd = await startSshd();
    const root = await Deno.makeTempDir({ prefix: "itx-full-inodes-" });
    await Deno.chmod(root, 0o755);
    try {
      await fillUpAndGrow(
        sshPipelineJob(sshd, "scp", root, {
          name: "full",
          remote_base_path: join(root, "dest"),
          // One batch at a time: what each try finds is the inodes left, never another's.
          max_concurrent_transfers: 1,
          ...overrides,
        }),
        { uid: sshd.uid, gid: sshd.gid },
        // Files arrive until one inode is left (the last needed two, its upload folder too):
        // from then on each try makes its upload folder, and its copy finds no inode.
        10,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

/**
 * Run `fn` with a local job of one transfer at a time (sizes verified) whose destination is a
 * 1 MiB tmpfs meanwhile, half of it taken by another's file ({@linkcode FILLER_BYTES}: a file of
 * {@linkcode LARGE_BYTES} waits for room, though it would fit the whole file system), its watch
 * folder made, and the log lines captured.
 */
/** What another has at the 1 MiB destination of {@linkcode withFullLocalJob}. */
const FILLER_BYTES = 500 * 1024;
/** Larger than the room {@linkcode FILLER_BYTES} leaves, smaller than the file system. */
const LARGE_BYTES = 800 * 1024;

async function withFullLocalJob(
  prefix: string,
  fn: (box: {
    job: JobConfig;
    dest: string;
    root: string;
    runtime: string;
    logs: LogCapture;
  }) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix });
  const job = localTestJob(root, { max_concurrent_transfers: 1, verify_transfer: "size" });
  const dest = job.remote_base_path;
  try {
    await withTmpfsRun(dest, "1m", async ({ runtime, logs }) => {
      await Deno.mkdir(job.watch_path, { recursive: true });
      await Deno.writeFile(join(dest, ".not the job's"), randomBytes(FILLER_BYTES));
      await fn({ job, dest, root, runtime, logs });
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("disk full (local): while the job waits for room, the smallest files go first; small ones arrive, large ones wait", async () => {
  await withFullLocalJob("itx-full-smallest-", async ({ job, dest, root, runtime, logs }) => {
    const files = new Map<string, Uint8Array>();
    const write = async (name: string, bytes: number) => {
      files.set(name, randomBytes(bytes));
      await Deno.writeFile(join(job.watch_path, name), files.get(name)!);
    };
    // Larger than the room at the destination: they cannot arrive until it grows.
    for (const name of ["large 1.fits", "large 2.fits", "large 3.fits"]) {
      await write(name, LARGE_BYTES);
    }
    // The transport measures no free space here: every probe reaches the destination.
    const probing = probingRunner(job, join(root, "state"), runtime);
    const { ledger, transport, runner } = probing;
    const state = (name: string) => FileRows.of(ledger, job).get(name)?.state;
    const small = ["small 1.fits", "small 2.fits", "small 3.fits"];
    const passedOver: string[] = [];
    transport.onSend = (items) => {
      const waiting = small.filter((name) => state(name) === "pending");
      if (waiting.length > 0 && items.some((item) => item.size >= LARGE_BYTES)) {
        passedOver.push(`${items.map((item) => item.source).join(", ")} before ${waiting}`);
      }
    };
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 30_000, "the pause");
      for (const name of small) await write(name, 100 * 1024);
      await waitFor(() => small.every((name) => state(name) === "done"), 60_000, "the small");
      assert.deepEqual(passedOver, [], "a large file went while a small one waited");
      for (const name of small) {
        const [rel] = (await listArrived(dest)).filter((rel) => rel.endsWith(`/${name}`));
        assert.deepEqual(await Deno.readFile(join(dest, rel)), files.get(name), name);
      }
      // The large ones wait (a probe may be trying one of them right now).
      const arrived = await listArrived(dest);
      for (const name of ["large 1.fits", "large 2.fits", "large 3.fits"]) {
        assert.notEqual(state(name), "done", `${name} waits`);
        assert.ok(!arrived.some((rel) => rel.endsWith(`/${name}`)), `${name} not there`);
      }
      await resizeTmpfs(dest, "16m");
      await waitFor(
        () => [...files.keys()].every((name) => state(name) === "done"),
        30_000,
        "every file done after the file system grew",
      );
      assert.equal((await listArrived(dest)).length, files.size);
    } finally {
      await probing.close();
    }
  });
});

Deno.test("disk full (local): files smaller than every one refused for room go at once, not at the next probe", async () => {
  await withFullLocalJob("itx-full-offer-", async ({ job, dest, root, runtime, logs }) => {
    // Larger than the room at the destination: the job pauses for room and never gets it.
    await Deno.writeFile(join(job.watch_path, "large.fits"), randomBytes(LARGE_BYTES));
    // A probe only every ten minutes: what arrives meanwhile went because it was offered.
    const probing = probingRunner(job, join(root, "state"), runtime, 600_000);
    const { ledger, runner } = probing;
    const state = (name: string) => FileRows.of(ledger, job).get(name)?.state;
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 30_000, "the pause");
      const small = new Map<string, Uint8Array>();
      for (const name of ["small 1.fits", "small 2.fits", "small 3.fits"]) {
        small.set(name, randomBytes(50 * 1024));
        await Deno.writeFile(join(job.watch_path, name), small.get(name)!);
      }
      await waitFor(
        () => [...small.keys()].every((name) => state(name) === "done"),
        60_000,
        "the small files, long before the next probe",
      );
      for (const [name, bytes] of small) {
        const [rel] = (await listArrived(dest)).filter((rel) => rel.endsWith(`/${name}`));
        assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, name);
      }
      assert.notEqual(state("large.fits"), "done");
      assert.equal(logs.count("error", "is full"), 1, "still one pause, said once");
    } finally {
      await probing.close();
    }
  });
});

Deno.test("disk full (local): a small file queued while a large one is tried goes when that one is refused, not at the next probe", async () => {
  await withFullLocalJob("itx-full-queued-", async ({ job, dest, root, runtime, logs }) => {
    await Deno.writeFile(join(job.watch_path, "large.fits"), randomBytes(LARGE_BYTES));
    // A probe only every ten minutes: what arrives meanwhile went because it was offered.
    const probing = probingRunner(job, join(root, "state"), runtime, 600_000);
    const { ledger, transport, runner } = probing;
    const state = (name: string) => FileRows.of(ledger, job).get(name)?.state;
    const small = {
      "small 1.fits": randomBytes(50 * 1024),
      "small 2.fits": randomBytes(50 * 1024),
    };
    let largeTries = 0;
    // The large file's second try (after small 1 arrived) waits until small 2 is queued: small 2
    // was ready while the job was sending and could not be offered then.
    transport.onSend = async (items) => {
      if (!items.some((item) => item.source.endsWith("large.fits")) || ++largeTries !== 2) return;
      await Deno.writeFile(join(job.watch_path, "small 2.fits"), small["small 2.fits"]);
      await waitFor(() => state("small 2.fits") === "pending", 30_000, "small 2 queued");
    };
    try {
      await runner.start();
      await waitFor(() => logs.count("error", "is full") > 0, 30_000, "the pause");
      await Deno.writeFile(join(job.watch_path, "small 1.fits"), small["small 1.fits"]);
      await waitFor(
        () => Object.keys(small).every((name) => state(name) === "done"),
        60_000,
        "both small files, long before the next probe",
      );
      assert.ok(largeTries >= 2, "the large file was tried again between them");
      for (const [name, bytes] of Object.entries(small)) {
        const [rel] = (await listArrived(dest)).filter((rel) => rel.endsWith(`/${name}`));
        assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, name);
      }
      assert.notEqual(state("large.fits"), "done");
    } finally {
      await probing.close();
    }
  });
});

Deno.test("disk full (daemon, local): one ERROR, a probe every 15 s, all arrive after the file system grows", async () => {
  await using box = await cliSandbox({
    verify_transfer: "size",
    retry_attempts: 1,
    retry_delay_seconds: 0.1,
    log_file: "",
  });
  const dest = box.dest;
  await withTmpfs(dest, "1m", async () => {
    const files = await writeRandomFiles(
      box.watch,
      Array.from({ length: 16 }, (_, i) => `night/f${i}.fits`),
      FILE_BYTES,
    );
    // Verbose: every batch is logged ("Sending N file(s) in one batch").
    const daemon = startCli(["run", "-v", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput(/The destination .* is full: /, 30_000);
      const batchesBefore = daemon.stderr().match(/Sending \d+ file/g)?.length ?? 0;
      // Over 16 s (one probe interval and then some): nothing given up, nothing said again.
      await new Promise((r) => setTimeout(r, 16_000));
      const batches = () =>
        (daemon.stderr().match(/Sending \d+ file/g)?.length ?? 0) - batchesBefore;
      // What was on its way when the pause began (2 transfers), then one probe; a busy
      // machine may have sent fewer by now, and the probe is waited for.
      assert.ok(batches() <= 3, `${batches()} batches while paused`);
      await waitFor(() => batches() >= 1, 60_000, "a probe while paused");
      const log = daemon.stderr();
      // Said once (each waiting file's own line is at debug level).
      assert.equal(log.match(/The destination .* is full: /g)?.length, 1, log);
      assert.equal(log.match(/ERROR .* is full/g)?.length, 1, log);
      assert.doesNotMatch(log, /Failed to transfer/);
      assert.ok((await listArrived(dest)).length < files.size, "the destination is full");
      await resizeTmpfs(dest, "16m");
      await daemon.waitForOutput(/takes files again/, 30_000);
      await waitFor(async () => (await listArrived(dest)).length === files.size, 30_000);
    } finally {
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, daemon.stderr());
    }
    await assertCopiesIntact(dest, files, true);
  });
});

Deno.test("destination gone (daemon, local): the job pauses without using up retries or running on_failure, and resumes once it is back", async () => {
  await using box = await cliSandbox();
  const { watch, dest } = box;
  await Deno.mkdir(dest);
  const hookLog = join(box.root, "hook.log");
  const hook = join(box.root, "on_failure.sh");
  await Deno.writeTextFile(hook, `#!/bin/sh\necho "$IMAGE_TRANSFER_SOURCE" >> '${hookLog}'\n`);
  await Deno.chmod(hook, 0o755);
  // Without the pause the file would fail for good within a second and run the hook.
  await box.rewrite({ retry_attempts: 1, retry_delay_seconds: 0.1, on_failure: [hook] });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(/Watching/, 30_000);
    const first = randomBytes(20_000);
    await Deno.writeFile(join(watch, "first.fits"), first);
    // Recorded, not only renamed: until then its folder is flushed, and a base folder no file
    // arrived in yet is made again.
    await daemon.waitForOutput(/Successfully transferred .*first\.fits/, 60_000);
    // The share goes away: its mount point is gone with everything below it.
    await Deno.remove(dest, { recursive: true });
    const second = randomBytes(30_000);
    await Deno.writeFile(join(watch, "second.fits"), second);
    await daemon.waitForOutput(/The destination .* takes no file: .* is gone/, 60_000);
    // Longer than the retries would take: nothing failed for good, no hook ran.
    await new Promise((r) => setTimeout(r, 3_000));
    const log = daemon.stderr();
    assert.equal(log.match(/ takes no file: /g)?.length, 1, log);
    assert.doesNotMatch(log, /gave up|failing after/i);
    assert.ok(!existsSync(hookLog), "on_failure ran for an outage");
    await Deno.mkdir(dest);
    await daemon.waitForOutput(/takes files again/, 60_000);
    await waitFor(async () => (await listArrived(dest)).length === 1, 60_000, "second arrives");
    assert.deepEqual(await Deno.readFile(join(dest, (await listArrived(dest))[0])), second);
    assert.ok(!existsSync(hookLog), "on_failure ran for an outage");
    // The news that it is back is said once, by one line.
    const third = randomBytes(10_000);
    await Deno.writeFile(join(watch, "third.fits"), third);
    await daemon.waitForOutput(/Successfully transferred .*third\.fits/, 60_000);
    const back = daemon.stderr().match(/^.*INFO.*(is back|files again).*$/gm) ?? [];
    assert.equal(back.length, 1, back.join("\n"));
    assert.match(back[0], /INFO.*The destination \S*dest takes files again; job default resumes/);
  } finally {
    const status = await daemon.stop("SIGTERM");
    assert.equal(status.code, 0, daemon.stderr());
  }
});

Deno.test("a destination mounted read-only holds the job, not each file: no file gives up, on_failure does not run; remounted, all arrive", async () => {
  await using box = await cliSandbox();
  const hookLog = join(box.root, "failures.log");
  const hook = join(box.root, "on-failure.sh");
  await Deno.writeTextFile(
    hook,
    `#!/bin/sh\necho "$IMAGE_TRANSFER_RELATIVE_PATH" >> '${hookLog}'\n`,
  );
  await Deno.chmod(hook, 0o755);
  const port = freePort();
  await box.rewrite({
    retry_attempts: 1,
    retry_delay_seconds: 0.2,
    retry_max_delay_seconds: 1,
    on_failure: [hook],
    status_listen: `127.0.0.1:${port}`,
  });
  const remount = async (how: "ro" | "rw") => {
    const out = await new Deno.Command("mount", { args: ["-o", `remount,${how}`, box.dest] })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  };
  await withTmpfs(box.dest, "8m", async () => {
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      const files = new Map<string, Uint8Array>();
      const drop = async (name: string) => {
        files.set(name, randomBytes(5000));
        await Deno.writeFile(join(box.watch, name), files.get(name)!);
      };
      await drop("first.fits");
      await daemon.waitForOutput("Successfully transferred");
      await remount("ro");
      for (const name of ["a.fits", "b.fits", "c.fits"]) await drop(name);
      await daemon.waitForOutput(/read-only file system/i);
      // Many retry delays later, no file has used up its retries: the job waits for its destination.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      assert.doesNotMatch(daemon.stderr(), /gave up after/);
      assert.equal(existsSync(hookLog), false, "on_failure ran");
      const api = await getJson<{ jobs: Array<{ state: string; reason: string }> }>(
        `http://127.0.0.1:${port}`,
        "/api/status",
      );
      assert.equal(api.jobs[0].state, "failing");
      assert.match(api.jobs[0].reason, /read-only file system/i);
      await remount("rw");
      // By name: a temporary copy on its way is a file of the destination too.
      const arrived = async () => {
        const rels = await listFiles(box.dest);
        return [...files.keys()].every((name) => rels.some((rel) => rel.endsWith(`/${name}`)));
      };
      await waitFor(arrived, 60_000, "every file once the destination is writable");
      for (const [name, bytes] of files) {
        const [rel] = (await listFiles(box.dest)).filter((rel) => rel.endsWith(`/${name}`));
        assert.deepEqual(await Deno.readFile(join(box.dest, rel)), bytes, name);
      }
      assert.equal(existsSync(hookLog), false, "on_failure ran");
    } finally {
      await daemon.stop();
    }
  });
});
