/**
 * Watch folders whose events miss files written elsewhere, through the real
 * CLI: a FUSE view (`bindfs`) of a folder stands for an NFS or SMB mount
 * (files written into the folder below raise no event on the view, as files
 * written by another machine raise none on a share). Such a folder is polled
 * (`watch_mode: auto`), and what is written below arrives whole and once,
 * without any rescan; `events` leaves such files to the rescan; `poll` works
 * on a local folder; a share unmounted and mounted again while the daemon
 * runs is reported and picked up again, with the file written meanwhile.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  isMounted,
  mountBindfs,
  mountBindfsProcess,
  unmountBindfs,
  withBindfs,
} from "../../helpers/bindfs.ts";
import { runCli, type RunningCli, startCli } from "../../helpers/cli.ts";
import { listArrived, listFiles, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";

/** The files at `dest`, by name (night folders left out), with their bytes. */
async function arrived(dest: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const rel of await listFiles(dest).catch(() => [])) {
    if (rel.split("/").some((part) => part.startsWith("."))) continue;
    files.set(basename(rel), await Deno.readFile(join(dest, rel)));
  }
  return files;
}

/** Wait until every file of `expected` is at `dest` with its bytes, and nothing else. */
async function waitForArrivals(dest: string, expected: Map<string, Uint8Array>, what: string) {
  await waitFor(async () => (await arrived(dest)).size >= expected.size, 60_000, what);
  const got = await arrived(dest);
  assert.deepEqual([...got.keys()].sort(), [...expected.keys()].sort());
  for (const [name, bytes] of expected) assert.deepEqual(got.get(name), bytes, `bytes of ${name}`);
}

/** The line that says `name` was not sent because its watch folder (a share) cannot be reached. */
function keptLine(name: string): RegExp {
  return new RegExp(
    `INFO +\\[pipeline\\] .*${
      RegExp.escape(name)
    } was not sent: its watch folder cannot be reached \\(a share unmounted, or its server or client gone\\?\\): Transport endpoint is not connected.*; the file is kept, and sent once the folder can be read again`,
  );
}

/** How often the daemon's output says `name` was transferred. */
function transfers(output: string, name: string): number {
  return output.split("\n").filter((line) =>
    line.includes("Successfully transferred") && line.includes(name)
  ).length;
}

/**
 * Wait until every file at `dest` has its "Successfully transferred" line: it
 * is logged once the ledger holds the arrival, a moment after the rename.
 */
async function arrivalsLogged(
  daemon: { stderr(): string; stdout(): string },
  dest: string,
): Promise<void> {
  // Under final names: a copy put in place by a hard link is beside its temporary name a moment.
  const names = (await listArrived(dest)).map((rel) => basename(rel));
  const output = () => daemon.stderr() + daemon.stdout();
  await waitFor(
    () => names.every((name) => transfers(output(), name) > 0),
    30_000,
    "the arrivals logged",
  ).catch((error) => {
    throw new Error(`${error.message}: ${names.join(", ")}; the daemon said:\n${output()}`);
  });
}

/** A folder below the share and a mount point for its bindfs view, in a temp folder. */
async function shareFolders(): Promise<{ root: string; under: string; mount: string }> {
  const root = await Deno.makeTempDir({ prefix: "itx-share-" });
  const under = join(root, "under");
  await Deno.mkdir(under);
  return { root, under, mount: join(root, "mount") };
}

/**
 * Run `fn` with a daemon of a `local` job watching `share.mount` (polled every
 * 0.5 s where polled, no rescans) into `dest`, its config and state in a
 * folder of its own; `fields` added to the config. Afterwards the daemon is
 * stopped, the share unmounted and every folder removed.
 */
async function withShareDaemon(
  share: { root: string; mount: string },
  fields: Record<string, unknown>,
  fn: (
    daemon: RunningCli,
    run: { dest: string; config: string; env: { HOME: string } },
  ) => Promise<void>,
): Promise<void> {
  const configDir = await Deno.makeTempDir({ prefix: "itx-share-run-" });
  const dest = join(configDir, "dest");
  const config = join(configDir, "config.yaml");
  const env = { HOME: join(configDir, "home") };
  try {
    await Deno.mkdir(env.HOME);
    await writeConfig(config, {
      watch_path: share.mount,
      remote_base_path: dest,
      transfer_method: "local",
      stability_window_seconds: 0.3,
      night_timezone: "UTC",
      state_dir: join(configDir, "state"),
      log_file: "",
      poll_interval_seconds: 0.5,
      rescan_interval_seconds: 0,
      ...fields,
    });
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await fn(daemon, { dest, config, env });
    } finally {
      await daemon.stop();
    }
  } finally {
    if (await isMounted(share.mount)) await unmountBindfs(share.mount);
    await Deno.remove(share.root, { recursive: true });
    await Deno.remove(configDir, { recursive: true });
  }
}

/** Once every file at `dest` is logged as arrived: each of `names` was sent once, and `said` said once. */
async function assertSentOnce(
  daemon: RunningCli,
  dest: string,
  names: string[],
  said: RegExp,
): Promise<void> {
  await arrivalsLogged(daemon, dest);
  const output = daemon.stderr() + daemon.stdout();
  assert.equal(output.match(new RegExp(said, "g"))?.length, 1, output);
  for (const name of names) assert.equal(transfers(output, name), 1, name);
}

Deno.test("network share (bindfs): polled; files written below arrive whole, once, without a rescan", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    await Deno.mkdir(join(under, "night"));
    await withBindfs(under, mount, async () => {
      const fields = {
        watch_path: mount,
        poll_interval_seconds: 0.5,
        rescan_interval_seconds: 0,
      };
      await using box = await startStatusDaemon(fields);
      const doctor = await runCli(["doctor", "-c", box.config], {
        env: { HOME: join(box.root, "home") },
      });
      assert.match(
        doctor.stdout,
        /ok +watching: file events and a poll every 0\.5 s \(fuse is a network or FUSE file system/,
        doctor.stdout + doctor.stderr,
      );
      await box.daemon.waitForOutput(/Watching .* with file events and a poll every 0\.5 s \(fuse/);
      const status = await getJson<{ jobs: { watch: Record<string, unknown> }[] }>(
        box.base,
        "/api/status",
      );
      assert.equal(status.jobs[0].watch.mode, "events+poll");
      assert.equal(status.jobs[0].watch.fileSystem, "fuse");
      assert.equal(status.jobs[0].watch.remote, true);
      assert.equal(status.jobs[0].watch.pollIntervalSeconds, 0.5);
      assert.equal(status.jobs[0].watch.unavailable, null);
      const statusCli = await runCli(["status", "-c", box.config], {
        env: { HOME: join(box.root, "home") },
      });
      assert.match(statusCli.stdout, /Watched with file events and a poll every 0\.5 s \(fuse/);

      const expected = new Map<string, Uint8Array>();
      // Written below the view: no event reaches the daemon.
      for (
        const [folder, name, size] of [
          ["", "first.fits", 10_000],
          ["night", "second.fits", 200_000],
          ["night/new folder", "third.fits", 3_000],
        ] as const
      ) {
        const bytes = randomBytes(size);
        await Deno.mkdir(join(under, folder), { recursive: true });
        await Deno.writeFile(join(under, folder, name), bytes);
        expected.set(name, bytes);
      }
      // One written in pieces over a while, as a camera writes.
      const slow = randomBytes(6 * 65536);
      expected.set("slow.fits", slow);
      {
        using file = await Deno.open(join(under, "night", "slow.fits"), {
          write: true,
          create: true,
        });
        for (let i = 0; i < 6; i++) {
          await file.write(slow.subarray(i * 65536, (i + 1) * 65536));
          await new Promise((r) => setTimeout(r, 150));
        }
      }
      await waitForArrivals(box.dest, expected, "the files written below the view");
      await arrivalsLogged(box.daemon, box.dest);
      const output = box.daemon.stderr() + box.daemon.stdout();
      for (const name of expected.keys()) assert.equal(transfers(output, name), 1, name);
      // Not found by a scan or by reading folders again: by the polls.
      assert.doesNotMatch(output, /Found \d+ new or changed|The watcher missed/);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("network share (bindfs) mounted on a folder inside the watch folder: auto polls the watch folder too, doctor and the log say so; files written below arrive whole, once", async () => {
  const { root, under } = await shareFolders();
  const watch = join(root, "watch");
  const inside = join(watch, "cam 1");
  try {
    await Deno.mkdir(inside, { recursive: true });
    await withBindfs(under, inside, async () => {
      // The share's own folder is its mount point; the watch folder is on the local disk.
      const share = { root: await Deno.makeTempDir({ prefix: "itx-share-" }), mount: watch };
      await withShareDaemon(share, {}, async (daemon, { dest, config, env }) => {
        const said = new RegExp(
          String.raw`file events and a poll every 0\.5 s \([^;)]+; a network or FUSE file ` +
            `system is mounted inside it, on ${RegExp.escape(inside)} \\(fuse`,
        );
        // Before: "file events (ext4)", and the files below waited for the hourly rescan.
        await daemon.waitForOutput(new RegExp(`Watching .* with ${said.source}`), 60_000);
        const doctor = await runCli(["doctor", "-c", config], { env });
        assert.match(doctor.stdout, new RegExp(`ok +watching: ${said.source}`), doctor.stdout);
        const expected = new Map<string, Uint8Array>();
        for (const [folder, name] of [["", "first.fits"], ["night", "$(x) -second.fits"]]) {
          const bytes = randomBytes(20_000);
          await Deno.mkdir(join(under, folder), { recursive: true });
          await Deno.writeFile(join(under, folder, name), bytes);
          expected.set(name, bytes);
        }
        await waitForArrivals(dest, expected, "the files written below the share inside");
        await assertSentOnce(daemon, dest, [...expected.keys()], /Watching /);
      });
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("network share (bindfs): a file written below beside one written through the view is no missed event", async () => {
  const share = await shareFolders();
  await mountBindfs(share.under, share.mount);
  // The window outlasts the re-read of the folder with an event and the wait for late events
  // after it (3 s): had either file been taken for a missed event, it would be said before. The
  // polls are rare, so the re-read finds the file written below first.
  const fields = {
    file_patterns: ["*.dat"],
    stability_window_seconds: 8,
    poll_interval_seconds: 60,
  };
  await withShareDaemon(share, fields, async (daemon, { dest }) => {
    await daemon.waitForOutput(/Watching .* with file events and a poll every 60 s \(fuse/);
    const expected = new Map([["below.dat", randomBytes(5000)], [
      "through.dat",
      randomBytes(7000),
    ]]);
    // One written on the "server" (no event on the view), one through the view (an event).
    await Deno.writeFile(join(share.under, "below.dat"), expected.get("below.dat")!);
    await Deno.writeFile(join(share.mount, "through.dat"), expected.get("through.dat")!);
    await waitForArrivals(dest, expected, "both files");
    await assertSentOnce(daemon, dest, [...expected.keys()], /Watching /);
    // Before the fix: "The watcher missed 1 new file(s)" at WARNING, as if inotify had failed.
    assert.doesNotMatch(daemon.stderr() + daemon.stdout(), /The watcher missed|watching .* again/);
  });
});

Deno.test("network share (bindfs), watch_mode events: files written below wait for the rescan", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    await withBindfs(under, mount, async () => {
      await using box = await cliSandbox({
        watch_path: mount,
        watch_mode: "events",
        rescan_interval_seconds: 3,
      });
      const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
      assert.match(
        doctor.stdout,
        /WARN +watching: file events only \(watch_mode: events; fuse.*set watch_mode: auto/,
      );
      const daemon = startCli(["run", "-c", box.config], { env: box.env });
      try {
        await daemon.waitForOutput(/Watching .* with file events only \(watch_mode: events; fuse/);
        const bytes = randomBytes(5000);
        await Deno.writeFile(join(under, "waits.fits"), bytes);
        await waitForArrivals(box.dest, new Map([["waits.fits", bytes]]), "the rescan's file");
        // The rescan found it: no event and no poll did.
        assert.match(daemon.stderr() + daemon.stdout(), /Found 1 new or changed file\(s\) in /);
      } finally {
        await daemon.stop();
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("watch_mode poll on a local folder: files arrive whole, once, from the polls alone", async () => {
  await using box = await cliSandbox({
    watch_mode: "poll",
    poll_interval_seconds: 0.5,
    rescan_interval_seconds: 0,
  });
  const daemon = startCli(["-v", "run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(
      /Watching .* with a poll every 0\.5 s, no file events \(watch_mode: poll/,
    );
    // The start's own look at the folder is over: what comes now only a poll can find.
    await daemon.waitForOutput("Checked the files in");
    const expected = new Map<string, Uint8Array>();
    for (const [folder, name] of [["", "a.fits"], ["sub/deeper", "b.fits"]]) {
      const bytes = randomBytes(20_000);
      await Deno.mkdir(join(box.watch, folder), { recursive: true });
      await Deno.writeFile(join(box.watch, folder, name), bytes);
      expected.set(name, bytes);
    }
    await waitForArrivals(box.dest, expected, "the polled files");
    await arrivalsLogged(daemon, box.dest);
    const output = daemon.stderr() + daemon.stdout();
    for (const name of expected.keys()) assert.equal(transfers(output, name), 1, name);
    assert.doesNotMatch(output, /Found \d+ new or changed|The watcher missed/);
  } finally {
    await daemon.stop();
  }
});

Deno.test("watch_mode poll: a file found by the start's scan and sent, then written on in place, is sent again from the polls alone", async () => {
  await using box = await cliSandbox({
    watch_mode: "poll",
    poll_interval_seconds: 0.5,
    rescan_interval_seconds: 0,
  });
  const first = randomBytes(20_000);
  await Deno.writeFile(join(box.watch, "grows.fits"), first);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await waitForArrivals(box.dest, new Map([["grows.fits", first]]), "the file found at start");
    await arrivalsLogged(daemon, box.dest);
    // Written on in place: no name changes in its folder, so its mtime stays.
    const more = randomBytes(30_000);
    using file = await Deno.open(join(box.watch, "grows.fits"), { append: true });
    await file.write(more);
    const whole = new Uint8Array([...first, ...more]);
    await waitFor(
      async () => (await arrived(box.dest)).get("grows.fits")?.length === whole.length,
      60_000,
      "the file written on",
    );
    assert.deepEqual((await arrived(box.dest)).get("grows.fits"), whole);
  } finally {
    await daemon.stop();
  }
});

Deno.test("watch_mode poll: a watch folder removed (ENOENT) is said once at ERROR; made again, its files arrive", async () => {
  await using box = await cliSandbox({
    watch_mode: "poll",
    poll_interval_seconds: 0.5,
    rescan_interval_seconds: 0,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(/Watching .* with a poll every 0\.5 s/);
    await Deno.remove(box.watch, { recursive: true });
    await daemon.waitForOutput(/ERROR +\[watch\] Cannot read watch folder .*: No such file/);
    await Deno.mkdir(join(box.watch, "night"), { recursive: true });
    const bytes = randomBytes(12_000);
    await Deno.writeFile(join(box.watch, "night", "again.fits"), bytes);
    await daemon.waitForOutput(/INFO +\[watch\] Watch folder .* can be read again/);
    await waitForArrivals(box.dest, new Map([["again.fits", bytes]]), "the file in the new folder");
    await arrivalsLogged(daemon, box.dest);
    const output = daemon.stderr() + daemon.stdout();
    assert.equal(output.match(/Cannot read watch folder/g)?.length, 1, output);
    assert.equal(transfers(output, "again.fits"), 1);
  } finally {
    await daemon.stop();
  }
});

Deno.test("a watch folder that does not exist (a disk not mounted yet): status, the API and /metrics say the job is failing, and why; once made, watching", async () => {
  const port = freePort();
  await using box = await cliSandbox({ status_listen: `127.0.0.1:${port}` });
  await Deno.remove(box.watch);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(/Watch folder .* does not exist yet/);
    const base = `http://127.0.0.1:${port}`;
    type Api = { jobs: Array<{ state: string; reason: string | null }> };
    const missing = await getJson<Api>(base, "/api/status");
    assert.equal(missing.jobs[0].state, "failing", JSON.stringify(missing.jobs[0]));
    assert.match(
      missing.jobs[0].reason ?? "",
      /the watch folder cannot be read: it does not exist/,
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(
      metrics,
      /image_transfer_job_state\{job="default",method="local",state="failing"\} 1/,
    );
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, /Job default: failing since .*: the watch folder cannot be read/);
    assert.match(status.stdout, /^ {2}Watch folder .* does not exist/m);

    await Deno.mkdir(box.watch);
    const bytes = randomBytes(12_000);
    await Deno.writeFile(join(box.watch, "late.fits"), bytes);
    await waitForArrivals(box.dest, new Map([["late.fits", bytes]]), "the file in the folder made");
    const back = await getJson<Api>(base, "/api/status");
    assert.equal(back.jobs[0].state, "watching", JSON.stringify(back.jobs[0]));
  } finally {
    await daemon.stop();
  }
});

Deno.test("network share (bindfs) unmounted and mounted again while running: one ERROR, then the file written meanwhile arrives", async () => {
  const share = await shareFolders();
  const { under, mount } = share;
  await mountBindfs(under, mount);
  const port = freePort();
  await withShareDaemon(share, { status_listen: `127.0.0.1:${port}` }, async (daemon, run) => {
    const { dest, config } = run;
    await daemon.waitForOutput(/Watching .* with file events and a poll/);
    const before = randomBytes(30_000);
    await Deno.writeFile(join(under, "before.fits"), before);
    await waitForArrivals(dest, new Map([["before.fits", before]]), "the file before");

    await unmountBindfs(mount);
    await daemon.waitForOutput(
      /ERROR +\[watch\] Cannot read watch folder .*: the share \(fuse\) is not mounted there/,
    );
    // Said on the page's API and by `status` while it lasts, since it began (not since asked).
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const askedAt = Date.now();
    const away = await getJson<
      {
        jobs: {
          state: string;
          since: number;
          reason: string;
          watch: { unavailable: string | null };
        }[];
      }
    >(`http://127.0.0.1:${port}`, "/api/status");
    assert.ok(away.jobs[0].since <= askedAt - 1000, `${away.jobs[0].since} vs ${askedAt}`);
    assert.match(away.jobs[0].watch.unavailable ?? "", /is not mounted there/);
    // No file is seen meanwhile: the job is failing (its alert fires), with the reason.
    assert.equal(away.jobs[0].state, "failing");
    assert.match(away.jobs[0].reason, /the watch folder cannot be read: .*not mounted there/);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /image_transfer_job_state\{[^}]*state="failing"\} 1/);
    const statusCli = await runCli(["status", "-c", config], { env: run.env });
    assert.match(statusCli.stdout, /Watch folder cannot be read: the share \(fuse\)/);
    const meanwhile = randomBytes(40_000);
    await Deno.writeFile(join(under, "meanwhile.fits"), meanwhile);
    await mountBindfs(under, mount);
    await daemon.waitForOutput(/INFO +\[watch\] Watch folder .* can be read again/);
    await waitForArrivals(
      dest,
      new Map([["before.fits", before], ["meanwhile.fits", meanwhile]]),
      "the file written while the share was away",
    );
    await assertSentOnce(
      daemon,
      dest,
      ["before.fits", "meanwhile.fits"],
      /Cannot read watch folder/,
    );
  });
});

Deno.test("network share (bindfs) unmounted while a file of it is under observation: dropped for its watch folder that cannot be read (found again once it can), not said deleted or moved away; it arrives once the share is back", async () => {
  const share = await shareFolders();
  const { under, mount } = share;
  await mountBindfs(under, mount);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  // A long window: the file is still under observation (not complete) when the share goes.
  const fields = { status_listen: `127.0.0.1:${port}`, stability_window_seconds: 10 };
  await withShareDaemon(share, fields, async (daemon, run) => {
    await daemon.waitForOutput(/Watching .* with file events and a poll/);
    const bytes = randomBytes(30_000);
    await Deno.writeFile(join(under, "half $(x).fits"), bytes);
    type Status = { jobs: Array<{ queue: { observing: number } }> };
    await waitFor(
      async () => (await getJson<Status>(base, "/api/status")).jobs[0].queue.observing === 1,
      60_000,
      "the file under observation",
    );
    await unmountBindfs(mount);
    const left =
      /INFO +\[pipeline\] Dropped .*half \$\(x\)\.fits: its watch folder cannot be read \(the share \(fuse\) is not mounted there.*\); it is found again once the folder can be read/;
    await daemon.waitForOutput(left);
    await mountBindfs(under, mount);
    await daemon.waitForOutput(/INFO +\[watch\] Watch folder .* can be read again/);
    await waitForArrivals(run.dest, new Map([["half $(x).fits", bytes]]), "the file");
    await arrivalsLogged(daemon, run.dest);
    const output = daemon.stderr() + daemon.stdout();
    assert.doesNotMatch(output, /deleted or moved away|gone from the watch folder/, output);
    assert.equal(output.match(new RegExp(left, "g"))?.length, 1, output);
    assert.equal(transfers(output, "half $(x).fits"), 1, output);
  });
});

Deno.test("network share (bindfs) whose client dies (ENOTCONN): one ERROR, then back after a new mount", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    const client = await mountBindfsProcess(under, mount);
    try {
      await using box = await cliSandbox({
        watch_path: mount,
        poll_interval_seconds: 0.5,
        rescan_interval_seconds: 0,
      });
      const daemon = startCli(["run", "-c", box.config], { env: box.env });
      try {
        await daemon.waitForOutput(/Watching .* with file events and a poll/);
        client.kill("SIGKILL");
        await client.status;
        await daemon.waitForOutput(
          /ERROR +\[watch\] Cannot read watch folder .*: Transport endpoint is not connected/,
        );
        const meanwhile = randomBytes(25_000);
        await Deno.writeFile(join(under, "meanwhile.fits"), meanwhile);
        await unmountBindfs(mount);
        await mountBindfs(under, mount);
        await daemon.waitForOutput(/INFO +\[watch\] Watch folder .* can be read again/);
        await sentOnceAfterOneError(daemon, box.dest, "meanwhile.fits", meanwhile);
      } finally {
        await daemon.stop();
      }
    } finally {
      try {
        client.kill("SIGKILL");
      } catch { /* exited already */ }
      await client.status;
      if (await isMounted(mount)) await unmountBindfs(mount);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** `name` arrives with `bytes`, sent once, after one "Cannot read watch folder" ERROR in all. */
async function sentOnceAfterOneError(
  daemon: ReturnType<typeof startCli>,
  dest: string,
  name: string,
  bytes: Uint8Array,
): Promise<void> {
  await waitForArrivals(dest, new Map([[name, bytes]]), "the file");
  await arrivalsLogged(daemon, dest);
  const output = daemon.stderr() + daemon.stdout();
  assert.equal(output.match(/Cannot read watch folder/g)?.length, 1, output);
  assert.equal(transfers(output, name), 1);
}

Deno.test("network share (bindfs) whose client died before the daemon starts (ENOTCONN): the daemon runs, says the job cannot read its folder, and sends its files once mounted again", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    const client = await mountBindfsProcess(under, mount);
    client.kill("SIGKILL");
    await client.status;
    const port = freePort();
    await using box = await cliSandbox({
      watch_path: mount,
      poll_interval_seconds: 0.5,
      rescan_interval_seconds: 0,
      status_listen: `127.0.0.1:${port}`,
    });
    const meanwhile = randomBytes(25_000);
    await Deno.writeFile(join(under, "meanwhile.fits"), meanwhile);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput(
        /ERROR +\[watch\] Cannot read watch folder .*: Transport endpoint is not connected.*; checking it again every/,
      );
      const status = await runCli(["status", "-c", box.config], { env: box.env });
      assert.match(
        status.stdout,
        /Job default: failing since .*: the watch folder cannot be read: .*Transport endpoint is not connected/,
      );
      await unmountBindfs(mount);
      await mountBindfs(under, mount);
      await sentOnceAfterOneError(daemon, box.dest, "meanwhile.fits", meanwhile);
    } finally {
      await daemon.stop();
    }
  } finally {
    if (await isMounted(mount)) await unmountBindfs(mount);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("network share (bindfs) whose client died: config validate and doctor say the folder cannot be read now, not that it is missing or to fix watch_path", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    const client = await mountBindfsProcess(under, mount);
    client.kill("SIGKILL");
    await client.status;
    await using box = await cliSandbox({ watch_path: mount });
    const validate = await runCli(["config", "validate", "-c", box.config], { env: box.env });
    assert.equal(validate.code, 0, validate.stderr);
    assert.match(
      validate.stderr,
      /warning: .*watch folder of job default .* cannot be read now \(Transport endpoint is not connected.*\): `run` waits until it can/,
    );
    assert.doesNotMatch(validate.stderr, /not a folder that exists/);
    const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
    assert.match(
      doctor.stdout + doctor.stderr,
      /FAIL +watch folder: .*Transport endpoint is not connected.*; mount the share again/,
    );
    assert.doesNotMatch(doctor.stdout + doctor.stderr, /fix watch_path/);
  } finally {
    if (await isMounted(mount)) await unmountBindfs(mount);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("network share (bindfs) whose client dies while a file of it is copied: said unreachable, not gone; the job shows it; the file is kept and arrives whole once the share is back", async () => {
  const share = await shareFolders();
  const client = await mountBindfsProcess(share.under, share.mount);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  // Slow enough that the client dies while the copy is written; polled seldom, so that the failed
  // copy, not a poll, is what finds the share gone.
  const fields = { status_listen: `127.0.0.1:${port}`, bandwidth_limit: "2MiB/s" };
  try {
    await withShareDaemon(share, { ...fields, poll_interval_seconds: 5 }, async (daemon, run) => {
      await daemon.waitForOutput(/Watching .* with file events and a poll/);
      const name = "big $(x) 'copy.fits";
      const bytes = randomBytes(6 * 1024 * 1024);
      // Written through the view: its events tell the daemon at once.
      await Deno.writeFile(join(share.mount, name), bytes);
      await waitFor(
        async () =>
          (await listFiles(run.dest).catch(() => [])).some((path) =>
            path.endsWith("image-transfer-partial")
          ),
        60_000,
        "the copy under way",
      );
      client.kill("SIGKILL");
      await client.status;
      const kept = keptLine(name);
      await daemon.waitForOutput(kept);
      await daemon.waitForOutput(
        /ERROR +\[watch\] Cannot read watch folder .*: Transport endpoint is not connected/,
      );
      // The job shows the share's problem, as when a poll finds it gone.
      type Status = { jobs: Array<{ state: string; reason: string | null; failed: number }> };
      const job = (await getJson<Status>(base, "/api/status")).jobs[0];
      assert.equal(job.state, "failing");
      assert.match(job.reason ?? "", /^the watch folder cannot be read: Transport endpoint/);
      assert.equal(job.failed, 0);
      await unmountBindfs(share.mount);
      await mountBindfs(share.under, share.mount);
      await daemon.waitForOutput(/Watch folder .* can be read again/);
      await waitForArrivals(run.dest, new Map([[name, bytes]]), "the file");
      await arrivalsLogged(daemon, run.dest);
      const output = daemon.stderr() + daemon.stdout();
      assert.doesNotMatch(
        output,
        /gone from the watch folder|Dropped|Failed to transfer|Attempt \d/,
      );
      assert.equal(output.match(kept)?.length, 1, output);
      assert.equal(output.match(/Cannot read watch folder/g)?.length, 1, output);
      assert.equal(transfers(output, name), 1, output);
      const status = await runCli(["status", "-c", run.config], { env: run.env });
      assert.match(status.stdout, /done 1, failed 0/, status.stdout);
    });
  } finally {
    try {
      client.kill("SIGKILL");
    } catch { /* killed already */ }
    await client.status;
  }
});

/**
 * A daemon watching a bindfs view holds one file queued (paused from the page) when the view's
 * client dies; the job resumes before the poll saw the share go (`noticed` false: the file's
 * attempt finds it gone, said as a poll says it) or after it said so (`noticed`). Either way the
 * file is said to wait for its share, with no failed attempt, and kept; once the share is mounted
 * again it arrives, long before a slow retry, and no failure is left.
 */
async function queuedWhenClientDies(noticed: boolean): Promise<void> {
  const share = await shareFolders();
  const client = await mountBindfsProcess(share.under, share.mount);
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const fields = {
    status_listen: `127.0.0.1:${port}`,
    // Not noticed: the attempt at the resume comes long before the next poll.
    poll_interval_seconds: noticed ? 0.5 : 5,
    retry_attempts: 0,
    retry_delay_seconds: 1,
    retry_max_delay_seconds: 3600,
  };
  try {
    await withShareDaemon(share, fields, async (daemon, { dest, config, env }) => {
      await daemon.waitForOutput(/Watching .* with file events and a poll/);
      const post = (action: string) =>
        fetch(`${base}/api/jobs/default/${action}`, { method: "POST", headers: { origin: base } });
      assert.equal((await post("pause")).status, 200);
      const bytes = randomBytes(25_000);
      await Deno.writeFile(join(share.under, "queued $(x).fits"), bytes);
      type Status = { jobs: Array<{ failed: number; queue: { queued: number } }> };
      await waitFor(
        async () => (await getJson<Status>(base, "/api/status")).jobs[0].queue.queued === 1,
        60_000,
        "the file queued",
      );
      client.kill("SIGKILL");
      await client.status;
      const gone = /ERROR +\[watch\] Cannot read watch folder/;
      if (noticed) await daemon.waitForOutput(gone);
      assert.equal((await post("resume")).status, 200);
      await daemon.waitForOutput(keptLine("queued $(x).fits"));
      if (!noticed) await daemon.waitForOutput(gone);
      await unmountBindfs(share.mount);
      await mountBindfs(share.under, share.mount);
      await daemon.waitForOutput(/Watch folder .* can be read again/);
      await waitForArrivals(dest, new Map([["queued $(x).fits", bytes]]), "the file");
      await arrivalsLogged(daemon, dest);
      const status = await runCli(["status", "-c", config], { env });
      assert.match(status.stdout, /done 1, failed 0/, status.stdout);
      const output = daemon.stderr() + daemon.stdout();
      assert.equal(transfers(output, "queued $(x).fits"), 1, output);
      assert.equal(output.match(new RegExp(gone, "g"))?.length, 1, output);
      assert.doesNotMatch(output, /Failed to transfer|Attempt \d|Dropped/, output);
      assert.equal((await getJson<Status>(base, "/api/status")).jobs[0].failed, 0);
    });
  } finally {
    try {
      client.kill("SIGKILL");
    } catch { /* killed already */ }
    await client.status;
  }
}

Deno.test("network share (bindfs) whose client dies while a file is queued, before a poll saw it: the file's attempt finds the share gone, said once as a poll says it; the file waits for it, fails not, and arrives once it is back", async () => {
  await queuedWhenClientDies(false);
});

Deno.test("network share (bindfs) whose client dies while a file is queued, once the daemon said so: the file waits for the share, fails not, and arrives once it is back", async () => {
  await queuedWhenClientDies(true);
});

Deno.test("network share (bindfs) mounted on the watch folder after the start: said once, watched again as a share; its files arrive once", async () => {
  const share = await shareFolders();
  const { under, mount } = share;
  // The mount point exists, empty, on the local disk: the service started before the share.
  await Deno.mkdir(mount);
  await withShareDaemon(share, {}, async (daemon, { dest }) => {
    await daemon.waitForOutput(/Watching .* with file events \(/);
    const before = randomBytes(30_000);
    await Deno.writeFile(join(under, "before.fits"), before);
    await mountBindfs(under, mount);
    await daemon.waitForOutput(
      /INFO +\[watch\] Watch folder .*mount is on another file system now \(fuse; it was on \w+\): something was mounted there, or unmounted; watching it again/,
    );
    await waitForArrivals(dest, new Map([["before.fits", before]]), "the file on the share");
    // Written below the view, it raises no event there: the polls find it.
    const after = randomBytes(40_000);
    await Deno.writeFile(join(under, "after.fits"), after);
    await waitForArrivals(
      dest,
      new Map([["before.fits", before], ["after.fits", after]]),
      "the file written on the share later",
    );
    await assertSentOnce(
      daemon,
      dest,
      ["before.fits", "after.fits"],
      /something was mounted there/,
    );
  });
});

Deno.test("status with a watch folder on a share that stopped answering (bindfs stopped): it says so and ends", async () => {
  const { root, under, mount } = await shareFolders();
  try {
    const client = await mountBindfsProcess(under, mount);
    try {
      await using box = await cliSandbox({ watch_path: mount });
      await Deno.writeFile(join(under, "a.fits"), randomBytes(5_000));
      client.kill("SIGSTOP");
      const status = await runCli(["status", "-c", box.config], { env: box.env });
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /Job default: the watch folder does not answer within 5 s \(a share whose server stopped answering\?\); what it skips is not known/,
      );
    } finally {
      client.kill("SIGCONT");
      client.kill("SIGKILL");
      await client.status;
      if (await isMounted(mount)) await unmountBindfs(mount);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a watch folder on a share that is not mounted at the start (an empty mount point): said, until the share is there again", async () => {
  const share = await shareFolders();
  await using box = await cliSandbox({ watch_path: share.mount });
  const bytes = randomBytes(2880);
  await Deno.writeFile(join(share.under, "a.fits"), bytes);
  const warning = (why: string) =>
    new RegExp(
      `WARNING +\\[watch\\] The watch folder .*mount looks like the mount point of a share that is not mounted \\(${why}\\): files written to the share are not seen until it is mounted here`,
    );
  try {
    await mountBindfs(share.under, share.mount);
    const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /looks like the mount point/);
    assert.deepEqual([...(await arrived(box.dest)).values()], [bytes]);
    await unmountBindfs(share.mount);

    // The next start finds an empty folder on the local disk where the share was.
    const empty = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stderr, warning("an empty folder on \\S+ stands where files were on fuse"));
    // A marker left in the mount point does not make it the watch folder.
    await Deno.writeTextFile(join(share.mount, "NOT_MOUNTED"), "");
    const marked = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.match(
      marked.stderr,
      warning(
        "a folder on \\S+ without the files that were on fuse stands where they were \\(a\\.fits is not there\\); .*",
      ),
    );
    await Deno.remove(join(share.mount, "NOT_MOUNTED"));

    // Mounted again: not said, and nothing sent twice.
    await mountBindfs(share.under, share.mount);
    const back = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(back.code, 0, back.stderr);
    assert.doesNotMatch(back.stderr, /looks like the mount point/);
    assert.deepEqual([...(await arrived(box.dest)).values()], [bytes]);
  } finally {
    if (await isMounted(share.mount)) await unmountBindfs(share.mount);
    await Deno.remove(share.root, { recursive: true });
  }
});

Deno.test("status with no daemon running: a watch share whose client died cannot be read, with the system's reason; it is not said not to exist", async () => {
  const share = await shareFolders();
  const client = await mountBindfsProcess(share.under, share.mount);
  try {
    const config = join(share.root, "config.yaml");
    await writeConfig(config, {
      watch_path: share.mount,
      remote_base_path: join(share.root, "dest"),
      transfer_method: "local",
      state_dir: join(share.root, "state"),
      log_file: "",
    });
    Ledger.open(join(share.root, "state")).close(); // As a run before this left it.
    client.kill("SIGKILL");
    await client.status;
    const status = await runCli(["status", "-c", config], { env: { HOME: share.root } });
    assert.match(
      status.stdout,
      /Watch folder cannot be read: Transport endpoint is not connected/,
      status.stdout + status.stderr,
    );
    assert.doesNotMatch(status.stdout, /does not exist/);
  } finally {
    try {
      client.kill("SIGKILL");
    } catch { /* exited already */ }
    await client.status;
    if (await isMounted(share.mount)) await unmountBindfs(share.mount);
    await Deno.remove(share.root, { recursive: true });
  }
});
