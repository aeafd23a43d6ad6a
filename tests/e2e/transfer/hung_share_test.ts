/**
 * A `local` destination (or a watch folder) on a share that stops answering, through the real
 * CLI: a FUSE view (`bindfs`) whose process is stopped (`SIGSTOP`) stands for
 * a hard NFS mount whose server died, or a frozen FUSE daemon: every call on
 * it waits. The daemon goes on (its status page answers), the job waits for
 * the destination and says why, and once the share answers again the file
 * arrives whole, with no temporary copy left beside it; also when it stopped
 * in the middle of a copy. A daemon stopped while a copy waits on such a share
 * ends all the same. Started while the share does not answer, `config
 * validate`, `doctor` and `run` say so and end, or go on; also where the
 * share holds the watch folder, or stops answering under a running daemon whose rescans
 * then wait for it. The transport alone: while one call waits there, further
 * batches fail at once instead of adding calls that wait beside it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isMounted, mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { listFiles, randomBytes, waitFor, within, writeConfig } from "../../helpers/files.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { inOwnProcess } from "../../helpers/processes.ts";

interface JobView {
  state: string;
  reason: string | null;
  inFlight: unknown[];
}

/** A bindfs view of a new `server` folder at `share`, its process handed to `fn`. */
async function withShare(
  fn: (server: string, share: string, view: Deno.ChildProcess) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-hung-share-" });
  const server = join(root, "server");
  const share = join(root, "share");
  await Deno.mkdir(server);
  const view = await mountBindfsProcess(server, share);
  try {
    await fn(server, share, view);
  } finally {
    // A stopped view answers again (a second SIGCONT changes nothing); unmounted, it ends.
    view.kill("SIGCONT");
    if (await isMounted(share)) await unmountBindfs(share);
    await view.status;
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a local destination on a share that stops answering: the daemon goes on, the job waits and says why, the file arrives once it answers", async () => {
  await withShare(async (server, share, view) => {
    await using status = await startStatusDaemon({
      remote_base_path: share,
      transfer_timeout_seconds: 2,
      retry_delay_seconds: 1,
    });
    const job = async () =>
      (await getJson<{ jobs: JobView[] }>(status.base, "/api/status")).jobs[0];
    const first = randomBytes(300_000);
    await Deno.writeFile(join(status.watch, "first.fits"), first);
    // Its attempt ended (not only renamed into place: its calls after that could meet the stop).
    await status.daemon.waitForOutput(/Successfully transferred .*first\.fits/);
    assert.ok((await listFiles(server)).some((rel) => rel.endsWith("/first.fits")));

    view.kill("SIGSTOP");
    const second = randomBytes(300_000);
    await Deno.writeFile(join(status.watch, "second.fits"), second);
    // Every answer below comes from a daemon whose copy waits on the stopped share.
    await waitFor(async () => {
      const now = await job();
      return now.state === "failing" && /did not answer for 2 s/.test(now.reason ?? "");
    });
    assert.match(
      status.daemon.stderr(),
      /second\.fits .*the destination .*share did not answer for 2 s \(a share whose server stopped answering\?\)/,
    );

    view.kill("SIGCONT");
    await waitFor(async () =>
      (await listFiles(server)).some((rel) => rel.endsWith("/second.fits"))
    );
    const night = (await listFiles(server)).find((rel) => rel.endsWith("/second.fits"))!;
    assert.deepEqual(await Deno.readFile(join(server, night)), second);
    await waitFor(async () => (await job()).state === "watching");
    // The copy that waited is removed once its calls return; only the two files stay.
    await waitFor(async () => (await listFiles(server)).length === 2);
    assert.deepEqual(
      (await listFiles(server)).map((rel) => rel.split("/").pop()).sort(),
      ["first.fits", "second.fits"],
    );
  });
});

Deno.test("a daemon stopped while a copy waits on a share that stopped answering ends", async () => {
  await withShare(async (_server, share, view) => {
    const status = await startStatusDaemon({ remote_base_path: share });
    try {
      view.kill("SIGSTOP");
      await Deno.writeFile(join(status.watch, "waiting.fits"), randomBytes(300_000));
      await waitFor(async () =>
        (await getJson<{ jobs: JobView[] }>(status.base, "/api/status")).jobs[0].inFlight.length > 0
      );
      const stopped = await status.daemon.stop();
      assert.equal(stopped.code, 0, status.daemon.stderr());
      assert.match(status.daemon.stderr(), /Stopped/);
    } finally {
      await status[Symbol.asyncDispose]();
    }
  });
});

Deno.test("a share that stops answering in the middle of a copy: the daemon goes on, the job waits, the file arrives whole once it answers", async () => {
  await withShare(async (server, share, view) => {
    await using status = await startStatusDaemon({
      remote_base_path: share,
      transfer_timeout_seconds: 2,
      retry_delay_seconds: 1,
      bandwidth_limit: "4MiB/s",
    });
    const job = async () =>
      (await getJson<{ jobs: JobView[] }>(status.base, "/api/status")).jobs[0];
    const large = randomBytes(24 * 1024 * 1024);
    await Deno.writeFile(join(status.watch, "large.fits"), large);
    // Stopped once its temporary copy holds some of it.
    await waitFor(async () => {
      for (const rel of await listFiles(server)) {
        if (
          rel.split("/").pop()!.startsWith(".") && (await Deno.stat(join(server, rel))).size > 0
        ) {
          return true;
        }
      }
      return false;
    });
    view.kill("SIGSTOP");
    await waitFor(async () => {
      const now = await job();
      return now.state === "failing" && /did not answer for 2 s/.test(now.reason ?? "");
    });
    view.kill("SIGCONT");
    await waitFor(async () => (await listFiles(server)).some((rel) => rel.endsWith("/large.fits")));
    const rel = (await listFiles(server)).find((rel) => rel.endsWith("/large.fits"))!;
    assert.deepEqual(await Deno.readFile(join(server, rel)), large);
  });
});

Deno.test("started while the destination share does not answer: validate, doctor and run say so and end or go on; the file arrives once it answers", async () => {
  await withShare(async (server, share, view) => {
    const root = await Deno.makeTempDir({ prefix: "itx-hung-start-" });
    const watch = join(root, "watch");
    const config = join(root, "config.yaml");
    await Deno.mkdir(watch);
    await Deno.mkdir(join(share, "dest"));
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: join(share, "dest"),
      transfer_method: "local",
      stability_window_seconds: 0.3,
      night_timezone: "UTC",
      state_dir: join(root, "state"),
      log_file: "",
      transfer_timeout_seconds: 2,
      retry_delay_seconds: 1,
    });
    const env = { HOME: root };
    view.kill("SIGSTOP");
    // What the kernel remembers of the share's folders runs out (bindfs: after a second).
    await new Promise((done) => setTimeout(done, 2500));
    const said =
      /config\.yaml:\d+: remote_base_path of job default: \S+\/dest did not answer in 5 s/;
    // Before, each waited for the share for good.
    const validate = await within(runCli(["config", "validate", "-c", config], { env }));
    assert.equal(validate.code, 0, validate.stderr);
    assert.match(validate.stderr, said);
    const doctor = await within(runCli(["doctor", "-c", config], { env }));
    assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /FAIL +destination folder: \S+\/dest did not answer in 2 s/);
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      assert.match(daemon.stderr(), said);
      const bytes = randomBytes(100_000);
      await Deno.writeFile(join(watch, "a.fits"), bytes);
      await daemon.waitForOutput(/a\.fits .*did not answer for 2 s/);
      view.kill("SIGCONT");
      await waitFor(async () => (await listFiles(server)).some((rel) => rel.endsWith("/a.fits")));
      const rel = (await listFiles(server)).find((rel) => rel.endsWith("/a.fits"))!;
      assert.deepEqual(await Deno.readFile(join(server, rel)), bytes);
      assert.equal((await daemon.stop()).code, 0);
    } finally {
      view.kill("SIGCONT");
      await daemon.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
});

Deno.test("started while its watch folder's share does not answer: the daemon starts, the job says why it waits, and sends once the share answers", async () => {
  await withShare(async (server, share, view) => {
    const { root, config } = await watchOnShare(share);
    view.kill("SIGSTOP");
    await new Promise((done) => setTimeout(done, 2500));
    const daemon = startCli(["run", "-c", config], { env: { HOME: root } });
    try {
      // Before, the daemon waited for the share before it said anything, and did not stop.
      await daemon.waitForOutput(
        /Cannot read watch folder \S+\/watch: no answer within 10 s \(a share whose server stopped answering\?\); the job waits for it/,
      );
      assert.match(daemon.stderr(), /watch_path of job default: \S+\/watch did not answer in 5 s/);
      view.kill("SIGCONT");
      // Before: no line said it was back.
      await daemon.waitForOutput(/INFO +\[watch\] Watch folder \S+\/watch can be read again/);
      await daemon.waitForOutput("Watching");
      await lateFileArrives(join(server, "watch"), join(root, "dest"));
      assert.equal((await daemon.stop()).code, 0);
    } finally {
      view.kill("SIGCONT");
      await daemon.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
});

Deno.test("doctor on a watch folder whose share stopped answering: FAIL says to look at the share and its server, not to fix watch_path", async () => {
  await withShare(async (_server, share, view) => {
    const { root, config } = await watchOnShare(share);
    try {
      view.kill("SIGSTOP");
      // What the kernel remembers of the share's folders runs out (bindfs: after a second).
      await new Promise((done) => setTimeout(done, 2500));
      const doctor = await within(runCli(["doctor", "-c", config], { env: { HOME: root } }));
      assert.equal(doctor.code, 1, doctor.stdout + doctor.stderr);
      assert.match(
        doctor.stdout,
        /FAIL +watch folder: \S+\/watch: did not answer in 5 s \(a share whose server stopped answering\?\); check the share and the server it is on/,
      );
      assert.doesNotMatch(doctor.stdout + doctor.stderr, /fix watch_path/);
    } finally {
      view.kill("SIGCONT");
      await Deno.remove(root, { recursive: true });
    }
  });
});

Deno.test("a watch folder on a share that stops answering while the daemon runs: its rescans wait for it, the daemon goes on and stops, and what was written meanwhile is sent once it answers", async () => {
  await withShare(async (server, share, view) => {
    const port = freePort();
    const { root, config } = await watchOnShare(share, {
      status_listen: `127.0.0.1:${port}`,
      // The first one long after the share is found not answering.
      schedules: [{ every_seconds: 45, action: "rescan" }],
    });
    let daemon = startCli(["run", "-c", config, "-v"], { env: { HOME: root } });
    try {
      // Once the scans after the start are over (a scan under way waits on it, as any look at a
      // file there).
      await daemon.waitForOutput("Checked the files in");
      view.kill("SIGSTOP");
      await daemon.waitForOutput(/Cannot read watch folder \S+\/watch: no answer within 10 s/);
      // Rescans come while it does not answer; each would have held the daemon for good.
      await daemon.waitForOutput(
        /Rescan of \S+\/watch skipped: it cannot be read \(no answer/,
        120_000,
      );
      const base = `http://127.0.0.1:${port}`;
      const jobs = (await getJson<{ jobs: JobView[] }>(base, "/api/status")).jobs;
      assert.match(jobs[0].reason ?? "", /no answer within 10 s/);
      assert.equal((await within(daemon.stop(), 60_000, "the stop")).code, 0, daemon.stderr());

      daemon = startCli(["run", "-c", config], { env: { HOME: root } });
      view.kill("SIGCONT");
      await daemon.waitForOutput("Watching");
      await lateFileArrives(join(server, "watch"), join(root, "dest"));
      assert.equal((await daemon.stop()).code, 0);
    } finally {
      view.kill("SIGCONT");
      await daemon.stop();
      await Deno.remove(root, { recursive: true });
    }
  });
});

/**
 * A `local` job watching `<share>/watch` and sending into `<root>/dest`, its config in a new
 * temporary `root` (with `fields` added).
 */
async function watchOnShare(
  share: string,
  fields: Record<string, unknown> = {},
): Promise<{ root: string; config: string }> {
  const root = await Deno.makeTempDir({ prefix: "itx-hung-watch-" });
  const config = join(root, "config.yaml");
  await Deno.mkdir(join(share, "watch"));
  await Deno.mkdir(join(root, "dest"));
  await writeConfig(config, {
    watch_path: join(share, "watch"),
    remote_base_path: join(root, "dest"),
    transfer_method: "local",
    stability_window_seconds: 0.3,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    ...fields,
  });
  return { root, config };
}

/** A file written into `watch` once the share answers arrives in `dest` with its bytes. */
async function lateFileArrives(watch: string, dest: string): Promise<void> {
  const bytes = randomBytes(50_000);
  await Deno.writeFile(join(watch, "late.fits"), bytes);
  await waitFor(async () => (await listFiles(dest)).some((rel) => rel.endsWith("/late.fits")));
  const rel = (await listFiles(dest)).find((rel) => rel.endsWith("/late.fits"))!;
  assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes);
}

/** Threads of this process waiting for an answer of a FUSE file system. */
function threadsWaitingOnFuse(): number {
  let waiting = 0;
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const wchan = Deno.readTextFileSync(`/proc/self/task/${task.name}/wchan`);
    if (wchan === "request_wait_answer") waiting++;
  }
  return waiting;
}

const ONE_WAITING_TEST =
  "while a call waits on a share that stopped answering, further batches fail at once instead of waiting beside it";

Deno.test(ONE_WAITING_TEST, async () => {
  // It counts the process's threads waiting on a share: other test files' are left out.
  if (!await inOwnProcess(ONE_WAITING_TEST, import.meta.url)) return;
  await withShare(async (_server, share, view) => {
    const root = await Deno.makeTempDir({ prefix: "itx-hung-transport-" });
    try {
      const job = localTestJob(root, { remote_base_path: share, transfer_timeout_seconds: 1 });
      await Deno.mkdir(job.watch_path);
      const source = join(job.watch_path, "a.fits");
      await Deno.writeFile(source, randomBytes(1000));
      const item = { source, destination: "20240315/a.fits", size: 1000, mtimeMs: 0 };
      item.mtimeMs = (await Deno.stat(source)).mtime!.getTime();
      const transport = new LocalTransport(job);
      view.kill("SIGSTOP");
      for (let attempt = 0; attempt < 4; attempt++) {
        const [outcome] = await transport.send([item], new AbortController().signal);
        assert.match(outcome.error?.message ?? "", /did not answer for 1 s/);
        await assert.rejects(transport.destinationSizes([item.destination]), /does not answer/);
        await assert.rejects(transport.diskSpace(), /does not answer/);
      }
      // The first call still waits; none was added beside it.
      assert.equal(threadsWaitingOnFuse(), 1);
      view.kill("SIGCONT");
      await waitFor(async () => {
        const [outcome] = await transport.send([item], new AbortController().signal);
        return outcome.error === null;
      });
      assert.deepEqual(
        await transport.destinationSizes([item.destination]),
        new Map([[item.destination, 1000]]),
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
});
