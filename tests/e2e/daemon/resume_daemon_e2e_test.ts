/**
 * Resumed transfers and growing files through the real CLI (local, and rsync
 * over a real OpenSSH server): the daemon is SIGKILLed (with the copiers it
 * started, as a crash or a reboot takes them) at about half of a 200 MiB
 * file, and the restart sends about the other half (measured: for local the
 * bytes the restarted daemon wrote, from /proc; for rsync its own `--stats`),
 * byte-exact; a file growing for 10 s is sent while it grows and arrives
 * complete, once, with about its own size sent in all. A copy cut off whose
 * source is gone by the restart is removed (local, rsync, and scp, which keeps
 * no copy to continue but leaves one when killed).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, type RunningCli, startCli } from "../../helpers/cli.ts";
import {
  listFiles,
  listFolders,
  randomBytes,
  sha256OfFile,
  waitFor,
  writeConfig,
} from "../../helpers/files.ts";
import { processEnded, runningProcesses } from "../../helpers/processes.ts";
import { startSshd, type TestSshd } from "../../helpers/sshd.ts";
import { isTempName } from "../../../src/layout/destination.ts";

const MiB = 1024 * 1024;
const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701
const NAME = "big $(id) 'frame\".fits";

interface Sandbox {
  root: string;
  watch: string;
  dest: string;
  config: string;
  env: Record<string, string>;
}

/** Folders and a config for `method`; `values` win. */
async function sandbox(
  method: "local" | "rsync" | "scp",
  sshd: TestSshd | null,
  values: Record<string, unknown>,
): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: `itx-resume-${method}-` });
  const watch = join(root, "watch");
  await Deno.mkdir(watch);
  await Deno.mkdir(join(root, "home"));
  const dest = method === "local" ? join(root, "dest") : await sshd!.makeRemoteDir();
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    transfer_method: method,
    ...(method === "local" ? {} : sshd!.configKeys()),
    remote_base_path: dest,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    verify_transfer: "checksum",
    ...values,
  });
  return { root, watch, dest, config, env: { HOME: join(root, "home") } };
}

/** Temporary copies at the destination, with their sizes. */
async function temporaries(dest: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const rel of await listFiles(dest).catch(() => [])) {
    if (!rel.split("/").some(isTempName)) continue;
    const size = await Deno.stat(join(dest, rel)).then((info) => info.size, () => null);
    if (size !== null) found.set(rel, size);
  }
  return found;
}

/** `pid` and every process below it. */
async function processTree(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid) parents.set(Number(entry.name), ppid);
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** SIGKILL the daemon and everything it started (as a crash of the machine or its cgroup). */
async function crash(daemon: RunningCli): Promise<void> {
  const tree = await processTree(daemon.process.pid);
  for (const pid of tree) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  assert.equal((await daemon.stop("SIGKILL")).signal, "SIGKILL");
}

/** Bytes the process `pid` has written (all write calls). */
async function bytesWrittenBy(pid: number): Promise<number> {
  const io = await Deno.readTextFile(`/proc/${pid}/io`);
  return Number(io.match(/^wchar: (\d+)$/m)![1]);
}

/** The bytes rsync reported sending, from the daemon's debug lines. */
function rsyncSent(output: string): number {
  return [...output.matchAll(/rsync sent (\d+) bytes/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** Write `size` random bytes to `path` (every MiB differs). */
async function writeRandom(path: string, size: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let done = 0; done < size; done += MiB) await file.write(randomBytes(MiB));
}

/**
 * Write `size` random bytes to the watch folder's file, run the daemon until
 * its copy holds `atLeast` bytes, and crash it there.
 *
 * @returns the source's path
 */
async function crashMidCopy(box: Sandbox, size: number, atLeast: number): Promise<string> {
  const source = join(box.watch, NAME);
  await writeRandom(source, size);
  await Deno.utime(source, NIGHT, NIGHT);
  const first = startCli(["run", "-v", "-c", box.config], { env: box.env });
  try {
    await waitFor(
      async () => [...(await temporaries(box.dest)).values()].some((bytes) => bytes >= atLeast),
      60_000,
      `${atLeast} bytes of the copy`,
    );
  } finally {
    await crash(first);
  }
  return source;
}

for (const method of ["local", "rsync"] as const) {
  Deno.test(`daemon (${method}): killed at half of a 200 MiB file, the restart sends the other half`, async () => {
    const sshd = await startSshd();
    const box = await sandbox(method, sshd, {
      bandwidth_limit: "40MiB/s",
      stability_window_seconds: 0.5,
    });
    try {
      const source = await crashMidCopy(box, 200 * MiB, 90 * MiB);
      const final = join(box.dest, "20240701", NAME);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const kept = [...(await temporaries(box.dest)).values()];
      assert.equal(kept.length, 1, "the interrupted copy is kept");
      assert.ok(kept[0] >= 90 * MiB && kept[0] < 200 * MiB, `kept ${kept[0]} bytes`);
      assert.equal(await Deno.stat(final).then(() => true, () => false), false);
      // With no daemon running, `status` says the file was cut off, not that it is on its way.
      const stopped = await runCli(["status", "-c", box.config], { env: box.env });
      assert.match(stopped.stdout, /Job default: pending 0, interrupted 1, done 0, failed 0/);
      // The job is renamed meanwhile: it continues its copy all the same.
      await Deno.writeTextFile(box.config, "name: renamed\n", { append: true });

      const second = startCli(["run", "-v", "-c", box.config], { env: box.env });
      let sent: number;
      try {
        await second.waitForOutput(/Successfully transferred/, 60_000);
        sent = method === "local"
          ? await bytesWrittenBy(second.process.pid)
          : rsyncSent(second.stderr() + second.stdout());
      } finally {
        assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
      }
      const rest = 200 * MiB - kept[0];
      assert.ok(sent >= rest && sent < rest + 8 * MiB, `sent ${sent}, the rest was ${rest}`);
      assert.match(second.stderr() + second.stdout(), /Resum/);
      assert.match(second.stderr(), /Job renamed was named default before/);
      assert.equal(await sha256OfFile(final), await sha256OfFile(source), "byte-exact");
      assert.deepEqual(await temporaries(box.dest), new Map(), "no temporary copy left");
    } finally {
      await Deno.remove(box.root, { recursive: true });
      await sshd.stop();
    }
  });

  Deno.test(`daemon (${method}): a file growing for 10 s arrives complete once, sent as it grew`, async () => {
    const sshd = await startSshd();
    const box = await sandbox(method, sshd, {
      // Far longer than the pauses between appends (250 ms), which a busy machine may stretch.
      stability_window_seconds: 5,
      growing_patterns: ["*.log"],
      file_patterns: ["*.log"],
    });
    try {
      const source = join(box.watch, "spectrum $(id) 'x'.log");
      await Deno.writeFile(source, new Uint8Array());
      const daemon = startCli(["run", "-v", "-c", box.config], { env: box.env });
      let sent: number;
      let output: string;
      try {
        await daemon.waitForOutput(/Watching/, 30_000);
        // From here on (a fresh HOME: start-up writes Deno's code cache).
        const before = method === "local" ? await bytesWrittenBy(daemon.process.pid) : 0;
        // 40 appends of 1 MiB over 10 s; the final name must not appear meanwhile.
        let earlyFinal: string[] = [];
        for (let i = 0; i < 40; i++) {
          await Deno.writeFile(source, randomBytes(MiB), { append: true });
          await new Promise((resolve) => setTimeout(resolve, 250));
          const finals = (await listFiles(box.dest).catch(() => [])).filter((rel) =>
            !rel.split("/").some(isTempName)
          );
          if (finals.length > 0) earlyFinal = finals;
        }
        assert.deepEqual(earlyFinal, [], "nothing under a final name while the file grows");
        await daemon.waitForOutput(/Successfully transferred/, 60_000);
        output = daemon.stderr() + daemon.stdout();
        sent = method === "local"
          ? await bytesWrittenBy(daemon.process.pid) - before
          : rsyncSent(output);
      } finally {
        assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
      }
      const parts = [...output.matchAll(/Sent a part of/g)].length;
      assert.ok(parts >= 2, `parts sent while it grew: ${parts}`);
      // Parts are debug lines; at INFO at most the complete file's continuation is said (a
      // spectrum growing for hours would otherwise fill the log with a line every 2 s).
      const resumedAtInfo = output.split("\n").filter((line) => /\bINFO\b.*Resum/.test(line));
      assert.ok(resumedAtInfo.length <= 1, `INFO lines per part:\n${resumedAtInfo.join("\n")}`);
      assert.equal([...output.matchAll(/Successfully transferred/g)].length, 1, "arrived once");
      assert.ok(sent >= 40 * MiB && sent < 44 * MiB, `sent ${sent} for ${40 * MiB}`);
      const [rel] = (await listFiles(box.dest)).filter((r) => !r.split("/").some(isTempName));
      assert.equal(await sha256OfFile(join(box.dest, rel)), await sha256OfFile(source));
      assert.deepEqual(await temporaries(box.dest), new Map(), "no temporary copy left");
    } finally {
      await Deno.remove(box.root, { recursive: true });
      await sshd.stop();
    }
  });
}

// scp keeps no copy to continue, but a killed daemon's upload leaves one all the same; rsync
// that keeps none removes its own temporary file as its connection ends, leaving the upload
// folder empty.
for (
  const [method, resume_partial_hours] of [
    ["local", 24],
    ["rsync", 24],
    ["scp", 24],
    ["rsync", 0],
  ] as const
) {
  const keeping = resume_partial_hours > 0 ? "" : ", resume_partial_hours 0";
  Deno.test(`daemon (${method}${keeping}): a copy cut off whose source is gone by the restart is removed, with its upload folder`, async () => {
    const sshd = await startSshd();
    const box = await sandbox(method, sshd, {
      bandwidth_limit: "4MiB/s",
      stability_window_seconds: 0.5,
      resume_partial_hours,
    });
    try {
      const source = await crashMidCopy(box, 40 * MiB, MiB);
      if (resume_partial_hours > 0) {
        assert.equal((await temporaries(box.dest)).size, 1, "the interrupted copy is kept");
      }
      // The file is deleted while the daemon is down: its copy will never be continued.
      await Deno.remove(source);
      const second = startCli(["run", "-c", box.config], { env: box.env });
      try {
        await second.waitForOutput(/Dropped .*: it is not in the watch folder/);
        await waitFor(
          async () =>
            (await listFiles(box.dest)).length === 0 &&
            (await listFolders(box.dest)).every((rel) => !rel.includes("/.")),
          30_000,
          "the kept copy (and its upload folder) removed",
        );
      } finally {
        assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
      }
      assert.deepEqual(await listFiles(box.dest), []);
    } finally {
      await Deno.remove(box.root, { recursive: true });
      await sshd.stop();
    }
  });
}

Deno.test("daemon (rsync): a small growing file (one call's size) continues its kept copy; no copy stays beside it; a file that does not grow is not said skipped", async () => {
  const sshd = await startSshd();
  const box = await sandbox("rsync", sshd, {
    stability_window_seconds: 3,
    growing_patterns: ["*.log"],
    file_patterns: ["*.log", "*.fits"],
  });
  try {
    const source = join(box.watch, "small spectrum.log");
    await Deno.writeFile(source, new Uint8Array());
    const daemon = startCli(["run", "-v", "-c", box.config], { env: box.env });
    let output: string;
    try {
      await daemon.waitForOutput(/Watching/, 30_000);
      // 12 appends of 100 kB: small enough for a batch that goes in one call.
      for (let i = 0; i < 12; i++) {
        await Deno.writeFile(source, randomBytes(100_000), { append: true });
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await daemon.waitForOutput(/Successfully transferred .*small spectrum\.log/, 60_000);
      await Deno.writeFile(join(box.watch, "flat.fits"), randomBytes(5_000));
      await daemon.waitForOutput(/Successfully transferred .*flat\.fits/, 60_000);
      output = daemon.stderr() + daemon.stdout();
    } finally {
      assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    }
    assert.ok(/Sent a part of/.test(output), "parts were sent while it grew");
    assert.doesNotMatch(output, /Skipped .*flat\.fits/);
    const [rel] = (await listFiles(box.dest)).filter((r) =>
      !r.split("/").some(isTempName) && r.endsWith(".log")
    );
    assert.equal(await sha256OfFile(join(box.dest, rel)), await sha256OfFile(source));
    assert.deepEqual(await temporaries(box.dest), new Map(), "no kept copy left beside it");
  } finally {
    await Deno.remove(box.root, { recursive: true });
    await sshd.stop();
  }
});

/** Processes whose command line names `text`. */
async function processesNaming(text: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    if (cmdline.includes(text)) found.push(Number(entry.name));
  }
  return found;
}

for (const { long, frozen } of [{ long: false }, { long: true }, { long: false, frozen: true }]) {
  Deno.test(
    `daemon (rsync): after a SIGKILL the next start ends the shared SSH connection and removes the runtime folder left${
      long ? " (a runtime path too long for sockets)" : ""
    }${frozen ? " (its master frozen: it cannot be asked to exit, nor for its pid)" : ""}`,
    async () => {
      const sshd = await startSshd();
      const box = await sandbox("rsync", sshd, { stability_window_seconds: 0.3 });
      // Short enough for the control sockets to live in it (see CONTROL_PATH_MAX_BYTES), or so
      // long that they live in a folder of their own elsewhere.
      const base = await Deno.makeTempDir({ prefix: "itx-run-" });
      const runtime = long ? join(base, "r".repeat(70)) : base;
      await Deno.mkdir(runtime, { recursive: true });
      const env = { ...box.env, XDG_RUNTIME_DIR: runtime };
      let frozenMaster = 0;
      try {
        const first = startCli(["run", "-c", box.config], { env });
        let leftover: string;
        let socketDir: string;
        try {
          await first.waitForOutput("Watching", 60_000);
          await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(2000));
          await first.waitForOutput("Successfully transferred", 60_000);
          const info = JSON.parse(await Deno.readTextFile(join(box.root, "state", "daemon.json")));
          leftover = info.runtimeDir;
          assert.ok(leftover.startsWith(join(runtime, "itx-")), leftover);
          const links = [...Deno.readDirSync(leftover)].filter((e) => e.name.startsWith("ctl-"));
          assert.equal(links.length, long ? 1 : 0, "a link to the socket folder elsewhere");
          socketDir = long ? await Deno.readLink(join(leftover, links[0].name)) : leftover;
          if (frozen) {
            const title = (argv: string[]) =>
              argv.join(" ").includes(`${socketDir}/cm-`) &&
              argv.join(" ").includes("[mux]");
            const masters = await runningProcesses(title);
            assert.equal(masters.length, 1, "the master");
            frozenMaster = masters[0].pid;
            Deno.kill(frozenMaster, "SIGSTOP");
          }
        } finally {
          // The daemon alone, as the OOM killer or `kill -9` would: its SSH master lives on.
          assert.equal((await first.stop("SIGKILL")).signal, "SIGKILL");
        }
        assert.ok((await processesNaming(socketDir)).length > 0, "a shared connection outlived it");
        assert.ok((await Deno.stat(leftover)).isDirectory);

        const second = startCli(["run", "-c", box.config], { env });
        try {
          await second.waitForOutput("Watching", 60_000);
          assert.match(
            second.stderr() + second.stdout(),
            /Removed the runtime folder .*itx-.* \(1 shared SSH connection\(s\) ended\)/,
          );
          await waitFor(
            async () => (await processesNaming(socketDir)).length === 0,
            30_000,
            "no ssh left",
          );
          if (frozen) assert.ok(processEnded(frozenMaster), "the frozen master killed");
          await assert.rejects(Deno.stat(leftover), Deno.errors.NotFound);
          await assert.rejects(Deno.stat(socketDir), Deno.errors.NotFound);
        } finally {
          assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
        }
        const entries = [...Deno.readDirSync(runtime)].map((e) => e.name);
        assert.deepEqual(entries, [], "a clean stop leaves no runtime folder");
      } finally {
        if (frozenMaster !== 0 && !processEnded(frozenMaster)) Deno.kill(frozenMaster, "SIGKILL");
        await Deno.remove(base, { recursive: true });
        await Deno.remove(box.root, { recursive: true });
        await sshd.stop();
      }
    },
  );
}

Deno.test("daemon (local): killed in the middle of a burst of small files (copied by the copier's threads), the restart delivers every file once, byte for byte, and leaves no temporary file", async () => {
  const box = await sandbox("local", null, { stability_window_seconds: 0.5 });
  try {
    const sources = new Map<string, Uint8Array>();
    for (let i = 0; i < 400; i++) sources.set(`frame ${i} $(id).fits`, randomBytes(20_000 + i));
    const first = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await first.waitForOutput("Watching", 60_000);
      for (const [name, bytes] of sources) {
        await Deno.writeFile(join(box.watch, name), bytes);
        await Deno.utime(join(box.watch, name), NIGHT, NIGHT);
      }
      await waitFor(
        async () => (await listFiles(box.dest).catch(() => [])).length >= 40,
        60_000,
        "some of the burst at the destination",
      );
    } finally {
      await crash(first);
    }
    const second = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await waitFor(
        async () =>
          (await listFiles(box.dest)).filter((rel) => !rel.split("/").some(isTempName))
            .length === sources.size,
        120_000,
        "the whole burst at the destination",
      );
    } finally {
      assert.equal((await second.stop("SIGTERM")).code, 0, second.stderr());
    }
    const arrived = await listFiles(box.dest);
    assert.deepEqual(arrived, [...sources.keys()].map((name) => `20240701/${name}`).sort());
    for (const [name, bytes] of sources) {
      assert.deepEqual(await Deno.readFile(join(box.dest, "20240701", name)), bytes, name);
    }
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});
