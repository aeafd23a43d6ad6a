/**
 * End to end through the real CLI over a real OpenSSH server, for scp and
 * rsync: a nested burst and a large file; the daemon is SIGKILLed in the
 * middle of the large transfer; the restart finishes everything, and no
 * final name ever holds a partial file; a stop mid-upload leaves no copy
 * behind. A shared connection whose master
 * hangs is replaced, and the hung master killed, under the daemon's own
 * permissions. Folders named with glob characters each get their own files.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import {
  exists,
  listFiles,
  listFolders,
  randomBytes,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { processEnded, runningProcesses } from "../../helpers/processes.ts";
import { isTempName } from "../../../src/layout/destination.ts";

const BIG_MB = 200;

/** A temporary copy: its name, or a folder it is in, is one of the daemon's temporary names. */
function isTemporary(rel: string): boolean {
  return rel.split("/").some(isTempName);
}

/**
 * Not a final name: a hidden file or folder. Besides the daemon's own
 * temporary names this covers rsync's (`.<temporary name>.XXXXXX`) while it
 * writes; no file sent in this test has a hidden name.
 */
function isHidden(rel: string): boolean {
  return rel.split("/").some((segment) => segment.startsWith("."));
}

/**
 * Whether an scp, rsync or streaming ssh (which names its copy in hex) still
 * runs with `path` in its command line (an orphan of a killed daemon).
 */
async function copierRunning(path: string): Promise<boolean> {
  const out = await new Deno.Command("ps", { args: ["-eo", "args"], stdout: "piped" }).output();
  const hex = Buffer.from(path, "utf8").toString("hex");
  return new TextDecoder().decode(out.stdout).split("\n").some((line) =>
    (line.includes(path) && /^\S*(scp|rsync)\s/.test(line)) ||
    (line.includes(hex) && /^\S*ssh\s/.test(line))
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`daemon (${method}): SIGKILL mid-transfer, restart finishes; final names always whole`, async () => {
    const sshd = await startSshd();
    const { root, watch, remote, config, env } = await sshSandbox(sshd, method, {
      verify_transfer: "size",
      stability_window_seconds: 0.5,
      max_concurrent_transfers: 2,
    });
    try {
      const night = new Date("2024-07-01T20:00:00Z"); // -> 20240701

      // Expected final files (relative to the remote base) -> SHA-256.
      const expected = new Map<string, string>();
      const big = join(watch, "deep", "big frame.fits");
      await Deno.mkdir(join(watch, "deep"), { recursive: true });
      {
        const chunk = randomBytes(1 << 20);
        const hash = createHash("sha256");
        using file = await Deno.open(big, { write: true, create: true });
        for (let i = 0; i < BIG_MB; i++) {
          chunk[0] = i; // every MiB differs
          await file.write(chunk);
          hash.update(chunk);
        }
        expected.set("20240701/deep/big frame.fits", hash.digest("hex"));
      }
      await Deno.utime(big, night, night);

      // A burst of small files waits in the folder too.
      for (let i = 0; i < 40; i++) {
        const rel = `night ${i % 4}/sub/f'${i}.fits`;
        await Deno.mkdir(join(watch, `night ${i % 4}`, "sub"), { recursive: true });
        const bytes = randomBytes(20_000 + i);
        await Deno.writeFile(join(watch, rel), bytes);
        await Deno.utime(join(watch, rel), night, night);
        expected.set(`20240701/${rel}`, sha256(bytes));
      }

      const first = startCli(["run", "-c", config], { env });
      let killed: Deno.CommandStatus;
      try {
        // The big file's upload is under way when its temporary name shows up remotely.
        await waitFor(
          async () =>
            (await listFiles(remote).catch(() => [])).some((p) =>
              p.includes("big frame") && isTemporary(p)
            ),
          60_000,
          "the big file's temporary copy",
        );
      } finally {
        killed = await first.stop("SIGKILL");
      }
      const bigSentFirst = /Successfully transferred .*big frame\.fits/.test(first.stderr());
      assert.equal(killed.signal, "SIGKILL");

      // Whatever is under a final name now must be complete.
      for (const rel of await listFiles(remote)) {
        if (isHidden(rel)) continue;
        assert.ok(expected.has(rel), `unexpected file at the destination: ${rel}`);
        assert.equal(await sha256OfFile(join(remote, rel)), expected.get(rel), `partial ${rel}`);
      }

      // The killed daemon's scp/rsync are not killed with it and outlive it
      // (under systemd the whole cgroup goes); let them end before the restart.
      await waitFor(async () => !(await copierRunning(remote)), 60_000, "orphaned copies to end");
      const second = startCli(["run", "-c", config], { env });
      try {
        await waitFor(
          async () => {
            const finals = (await listFiles(remote)).filter((p) => !isHidden(p));
            return finals.length >= expected.size;
          },
          120_000,
          "every file at the destination",
        );
        if (!bigSentFirst) {
          await second.waitForOutput(/Successfully transferred .*big frame\.fits/, 60_000);
        }
      } finally {
        const status = await second.stop("SIGTERM");
        assert.equal(status.code, 0, second.stderr());
      }
      const arrived = (await listFiles(remote)).sort();
      assert.deepEqual(arrived, [...expected.keys()].sort(), "exactly the files, no temporaries");
      const leftFolders = (await listFolders(remote)).filter(isHidden);
      assert.deepEqual(leftFolders, [], "no upload folder is left");
      for (const [rel, hash] of expected) {
        assert.equal(await sha256OfFile(join(remote, rel)), hash, `bytes of ${rel}`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

Deno.test("daemon (scp): a stop mid-upload leaves no upload folder at the destination", async () => {
  const sshd = await startSshd();
  // Slow enough that the stop comes while the copy is written.
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.5,
    bandwidth_limit: "1MiB/s",
  });
  try {
    const bytes = randomBytes(8 << 20);
    await Deno.writeFile(join(watch, "last of the night.fits"), bytes);
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await waitFor(
        async () => (await listFiles(remote).catch(() => [])).some(isTemporary),
        60_000,
        "the copy under way",
      );
    } finally {
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, daemon.stderr());
    }
    // The last file of a night: no later batch comes into its folder to sweep the copy.
    assert.deepEqual(await listFiles(remote), [], "no copy, no final name");
    assert.deepEqual((await listFolders(remote)).filter(isHidden), [], "no upload folder");
    // Sent whole at the next start.
    const again = startCli(["run", "-c", config], { env });
    try {
      await again.waitForOutput(/Successfully transferred .*last of the night\.fits/, 60_000);
    } finally {
      await again.stop("SIGTERM");
    }
    const [sent] = await listFiles(remote);
    assert.equal(await sha256OfFile(join(remote, sent)), sha256(bytes));
  } finally {
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("daemon (scp): Ctrl-C pressed again (or SIGTERM, SIGHUP) while it stops does not cut the stop short", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.5,
    bandwidth_limit: "1MiB/s",
  });
  try {
    const bytes = randomBytes(8 << 20);
    await Deno.writeFile(join(watch, "impatient.fits"), bytes);
    const daemon = startCli(["run", "-c", config], { env });
    let status: Deno.CommandStatus;
    try {
      await waitFor(
        async () => (await listFiles(remote).catch(() => [])).some(isTemporary),
        60_000,
        "the copy under way",
      );
      daemon.process.kill("SIGINT");
      await daemon.waitForOutput("Stopping:");
      for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
        try {
          daemon.process.kill(signal);
        } catch { /* stopped already */ }
      }
    } finally {
      status = await daemon.stop("SIGTERM");
    }
    assert.match(daemon.stderr(), /Stopped: 0 file\(s\) sent/);
    // A signal that lands after the stop has ended (a stop of a few ms, the transfer just begun)
    // meets no listener: the process, already stopped cleanly, ends by it. Any other: exit 0.
    if (status.signal === null) assert.equal(status.code, 0, daemon.stderr());
    await assert.rejects(Deno.stat(join(root, "state", "daemon.pid")), Deno.errors.NotFound);
    assert.deepEqual(await listFiles(remote), [], "no copy, no final name");
    assert.deepEqual((await listFolders(remote)).filter(isHidden), [], "no upload folder");
    const again = startCli(["run", "-c", config], { env });
    try {
      await again.waitForOutput(/Successfully transferred .*impatient\.fits/, 60_000);
      assert.doesNotMatch(again.stderr(), /did not stop cleanly/);
    } finally {
      await again.stop("SIGTERM");
    }
    const [sent] = await listFiles(remote);
    assert.equal(await sha256OfFile(join(remote, sent)), sha256(bytes));
  } finally {
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("daemon (scp): Ctrl-C in its terminal, pressed again while it asks the SSH master to exit (every program of its process group gets it), is a clean stop: no master said to be unresponsive, none left running", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.3,
  });
  // The request to exit waits (once) until the second Ctrl-C, which ends it as it would end ssh:
  // by the signal to the group, or, where that is not delivered in time on a busy machine, by
  // its own SIGINT once the test lets it go.
  const asked = join(root, "exit asked");
  const hold = join(root, "hold");
  await Deno.writeTextFile(hold, "");
  const tools = await standInPrograms(join(root, "tools"), {
    ssh: `case " $* " in *" -O exit "*) [ -e '${asked}' ] || { : >'${asked}'
  while [ -e '${hold}' ]; do sleep 0.1; done; kill -INT $$; } ;; esac
exec /usr/bin/ssh "$@"
`,
  });
  const path = `${tools}:${Deno.env.get("PATH") ?? ""}`;
  try {
    const daemon = startCli(["run", "-v", "-c", config], {
      env: { ...env, PATH: path },
      ownProcessGroup: true,
    });
    const group = -daemon.process.pid;
    let master = 0;
    let status: Deno.CommandStatus;
    const bytes = randomBytes(300_000);
    try {
      await daemon.waitForOutput("Watching");
      await Deno.writeFile(join(watch, "interrupted.fits"), bytes);
      await daemon.waitForOutput(/Successfully transferred .*interrupted\.fits/);
      const [socket] = await controlSockets(join(root, "state"));
      const masters = await runningProcesses((argv) => argv.join(" ").includes(`${socket} [mux]`));
      assert.equal(masters.length, 1, `the master of ${socket}`);
      master = masters[0].pid;
      Deno.kill(group, "SIGINT");
      await waitFor(() => exists(asked), 60_000, "the master asked to exit");
      Deno.kill(group, "SIGINT");
      await Deno.remove(hold);
    } finally {
      status = await daemon.stop("SIGTERM");
    }
    assert.equal(status.signal, null, daemon.stderr());
    assert.equal(status.code, 0, daemon.stderr());
    assert.match(daemon.stderr(), /Stopped: 1 file\(s\) sent, 0 failed/);
    assert.doesNotMatch(daemon.stderr(), /unresponsive|WARNING|ERROR/);
    await waitFor(() => processEnded(master), 30_000, "the master ended with the daemon");
    const [sent] = await listFiles(remote);
    assert.equal(await sha256OfFile(join(remote, sent)), sha256(bytes));
  } finally {
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});

Deno.test("run (rsync): linker variables in the environment (faketime sets LD_PRELOAD) do not stop transfers", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "rsync");
  try {
    const bytes = randomBytes(300_000);
    await Deno.writeFile(join(watch, "a.fits"), bytes);
    // The runtime refuses to start a listed program with any LD_ or DYLD_ variable set.
    const linker = { LD_LIBRARY_PATH: "/nonexistent", DYLD_INSERT_LIBRARIES: "/nonexistent" };
    const run = await runCli(["run", "--once", "-c", config], { env: { ...env, ...linker } });
    assert.equal(run.code, 0, run.stderr);
    const [sent] = await listFiles(remote);
    assert.equal(await sha256OfFile(join(remote, sent)), sha256(bytes));
  } finally {
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`run (${method}): new files under names sent before arrive beside the earlier copies, also when the tool's own calls carry them`, async () => {
    const sshd = await startSshd();
    // A bandwidth limit sends every batch through the tool's calls (never one ssh call).
    const { root, watch, remote, config, env } = await sshSandbox(sshd, method, {
      after_transfer: "delete",
      bandwidth_limit: "200MB/s",
    });
    try {
      const night = new Date("2024-07-01T20:00:00Z"); // -> 20240701
      const write = async (name: string, bytes: Uint8Array) => {
        await Deno.writeFile(join(watch, name), bytes);
        await Deno.utime(join(watch, name), night, night);
      };
      const names = ["a 1.fits", "-b.fits", "c.fits"];
      const first = names.map(() => randomBytes(50_000));
      for (const [i, name] of names.entries()) await write(name, first[i]);
      const sent = await runCli(["run", "--once", "-c", config], { env });
      assert.equal(sent.code, 0, sent.stderr);
      // The camera's counter starts again: the same names, new images, in one batch.
      const second = names.map(() => randomBytes(60_000));
      for (const [i, name] of names.entries()) await write(name, second[i]);
      const again = await runCli(["run", "--once", "-c", config], { env });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stderr.split("is a new file under a name sent before").length, 4);
      for (const [i, name] of names.entries()) {
        const numbered = name.replace(".fits", "~2.fits");
        assert.equal(
          await sha256OfFile(join(remote, "20240701", name)),
          sha256(first[i]),
          name,
        );
        assert.equal(
          await sha256OfFile(join(remote, "20240701", numbered)),
          sha256(second[i]),
          numbered,
        );
      }
      assert.equal((await listFiles(remote)).length, 6);
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

/** The control sockets of the daemon whose state folder is `stateDir` (see `daemon.json`). */
async function controlSockets(stateDir: string): Promise<string[]> {
  const { runtimeDir } = JSON.parse(await Deno.readTextFile(join(stateDir, "daemon.json")));
  const sockets: string[] = [];
  for await (const entry of Deno.readDir(runtimeDir)) {
    const path = join(runtimeDir, entry.name);
    if (entry.name.startsWith("cm-")) sockets.push(path);
    if (entry.name.startsWith("ctl-")) {
      const folder = await Deno.realPath(path);
      for await (const inner of Deno.readDir(folder)) {
        if (inner.name.startsWith("cm-")) sockets.push(join(folder, inner.name));
      }
    }
  }
  return sockets;
}

Deno.test("daemon (scp): a shared connection whose master hangs is replaced, the hung master killed", async () => {
  const sshd = await startSshd();
  const { root, watch, remote, config, env } = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.5,
    transfer_timeout_seconds: 300,
  });
  let hung = 0;
  try {
    const daemon = startCli(["run", "-c", config], { env });
    try {
      const first = randomBytes(5000);
      await Deno.writeFile(join(watch, "first.fits"), first);
      await daemon.waitForOutput(/Successfully transferred .*first\.fits/);
      const [socket] = await controlSockets(join(root, "state"));
      const masters = await runningProcesses((argv) => argv.join(" ").includes(`${socket} [mux]`));
      assert.equal(masters.length, 1, `the master of ${socket}`);
      hung = masters[0].pid;
      Deno.kill(hung, "SIGSTOP");

      // The daemon runs with its own permissions: it tells the master by its title through `ps`.
      const second = randomBytes(6000);
      await Deno.writeFile(join(watch, "second.fits"), second);
      await daemon.waitForOutput(/Successfully transferred .*second\.fits/);
      const arrived = (await listFiles(remote)).filter((rel) => !isHidden(rel)).sort();
      assert.deepEqual(arrived.map((rel) => rel.split("/").pop()), ["first.fits", "second.fits"]);
      for (const [rel, bytes] of [[arrived[0], first], [arrived[1], second]] as const) {
        assert.deepEqual(await Deno.readFile(join(remote, rel)), bytes, rel);
      }
      await waitFor(() => processEnded(hung), 30_000, "the hung master killed");
      assert.match(daemon.stderr(), /Killing the unresponsive SSH connection master/);
    } finally {
      await daemon.stop();
    }
  } finally {
    if (hung !== 0 && !processEnded(hung)) Deno.kill(hung, "SIGKILL");
    await Deno.remove(root, { recursive: true });
    await sshd.stop();
  }
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`run (${method}): folders named with * ? [ ] each get their own files, in one batch`, async () => {
    const sshd = await startSshd();
    // A bandwidth limit sends every batch through the tool's calls (never one ssh call).
    const { root, watch, remote, config, env } = await sshSandbox(sshd, method, {
      bandwidth_limit: "200MB/s",
    });
    try {
      const night = new Date("2024-07-01T20:00:00Z"); // -> 20240701
      // `*`, `?` and `[ab]` match the other folders as globs; `a\\b*` has a backslash too.
      const folders = ["*", "?", "[ab]", "a", "b", "a\\b*"];
      const bytes = new Map<string, Uint8Array>();
      for (const folder of folders) {
        await Deno.mkdir(join(watch, folder));
        const data = randomBytes(40_000);
        bytes.set(folder, data);
        await Deno.writeFile(join(watch, folder, "f.fits"), data);
        await Deno.utime(join(watch, folder, "f.fits"), night, night);
      }
      const run = await runCli(["run", "--once", "-c", config], { env });
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /Attempt \d+ of .* failed/, run.stderr);
      for (const [folder, data] of bytes) {
        assert.equal(await sha256OfFile(join(remote, "20240701", folder, "f.fits")), sha256(data));
      }
      assert.equal((await listFiles(remote)).length, folders.length, "nothing anywhere else");
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}

/**
 * The ssh client processes of a daemon: its calls (their arguments name `port`) and its shared
 * connections' masters (named after their socket, in the daemon's `runtimeDir`).
 */
const sshClientsOf = (port: number, runtimeDir: string) =>
  runningProcesses((argv) =>
    (argv[0].split("/").at(-1) === "ssh" && argv.some((arg) => arg === String(port))) ||
    (argv[0].startsWith("ssh: ") && argv.join(" ").includes(runtimeDir))
  );

Deno.test("run (scp): after a stop no ssh of the job is left; ssh_options that would take over its shared connection are refused", async () => {
  const sshd = await startSshd();
  const options = [...sshd.sshOptions, "ControlMaster=yes", "ControlPersist=600"];
  const taken = await sshSandbox(sshd, "scp", { ssh_options: options });
  const box = await sshSandbox(sshd, "scp", { stability_window_seconds: 0.2 });
  try {
    // Its master would outlive the daemon by ControlPersist (here 10 minutes), unknown to it.
    await Deno.writeFile(join(taken.watch, "a.fits"), randomBytes(1000));
    const run = startCli(["run", "-c", taken.config], { env: taken.env });
    let ended = false;
    run.process.status.then(() => ended = true);
    await waitFor(() => ended || run.stderr().includes("Watching"), 60_000, "refused or started");
    const refused = await run.stop("SIGTERM");
    assert.notEqual(refused.code, 0, run.stderr());
    for (const [index, option] of options.entries()) {
      if (!/^Control/.test(option)) continue;
      assert.match(
        run.stderr(),
        new RegExp(
          `config\\.yaml:\\d+: ssh_options\\[${index}\\]: ${option}: image-transfer keeps its ` +
            "own shared connection per destination .*; remove it",
        ),
      );
    }
    assert.deepEqual(await listFiles(taken.remote), [], "nothing sent");

    const bytes = randomBytes(1000);
    await Deno.writeFile(join(box.watch, "b.fits"), bytes);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    let runtimeDir: string;
    try {
      await daemon.waitForOutput(/Successfully transferred .*b\.fits/, 60_000);
      const info = JSON.parse(await Deno.readTextFile(join(box.root, "state", "daemon.json")));
      runtimeDir = info.runtimeDir;
      const masters = await sshClientsOf(sshd.port, runtimeDir);
      assert.ok(masters.some((p) => p.argv[0].startsWith("ssh: ")), "its shared connection runs");
    } finally {
      assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    }
    // The master is told to exit as the daemon stops; it may take a moment to go.
    await waitFor(
      async () => (await sshClientsOf(sshd.port, runtimeDir)).length === 0,
      30_000,
      "no ssh left",
    );
    // Nothing at all connected to the server (this test's own).
    await waitFor(async () => (await sshd.sessionPids()).length === 0, 30_000, "no session left");
    const [sent] = await listFiles(box.remote);
    assert.equal(await sha256OfFile(join(box.remote, sent)), sha256(bytes));
  } finally {
    for (const path of [taken.root, box.root]) await Deno.remove(path, { recursive: true });
    await sshd.stop();
  }
});

for (const long of [false, true]) {
  Deno.test(
    `daemon (scp): a crash (a bug no handler caught) ends its shared SSH connection and removes its runtime folder before it exits${
      long ? " (a runtime path too long for sockets)" : ""
    }`,
    async () => {
      const sshd = await startSshd();
      const box = await sshSandbox(sshd, "scp", { stability_window_seconds: 0.3 });
      // Short enough for the control sockets to live in it, or so long that they live in a folder
      // of their own elsewhere.
      const base = await Deno.makeTempDir({ prefix: "itx-run-" });
      const runtime = long ? join(base, "r".repeat(70)) : base;
      await Deno.mkdir(runtime, { recursive: true });
      // See CONTRIBUTING.md: SIGUSR2 then makes an unhandled promise rejection, as a bug would.
      const env = { ...box.env, XDG_RUNTIME_DIR: runtime, IMAGE_TRANSFER_TEST_CRASH_ON: "SIGUSR2" };
      let master = 0;
      let socketDir = "";
      try {
        const daemon = startCli(["run", "-c", box.config], { env });
        let status: Deno.CommandStatus;
        try {
          const bytes = randomBytes(3000);
          await Deno.writeFile(join(box.watch, "a.fits"), bytes);
          await daemon.waitForOutput(/Successfully transferred .*a\.fits/);
          const arrived = (await listFiles(box.remote)).filter((rel) => rel.endsWith("a.fits"));
          assert.equal(arrived.length, 1);
          assert.deepEqual(await Deno.readFile(join(box.remote, arrived[0])), bytes);
          const [socket] = await controlSockets(join(box.root, "state"));
          const masters = await runningProcesses((argv) =>
            argv.join(" ").includes(`${socket} [mux]`)
          );
          assert.equal(masters.length, 1, `the master of ${socket}`);
          master = masters[0].pid;
          socketDir = dirname(socket);
          assert.equal(socketDir.startsWith(runtime), !long, socketDir);
        } finally {
          status = await daemon.stop("SIGUSR2");
        }
        assert.equal(status.code, 1, daemon.stderr());
        assert.match(daemon.stderr(), /error: crash asked for/);
        assert.ok(processEnded(master), "the master ended with the daemon");
        assert.deepEqual([...Deno.readDirSync(runtime)], [], "no runtime folder left");
        await assert.rejects(Deno.stat(socketDir), Deno.errors.NotFound, "no socket folder left");
        // The call started ahead of the next batch ends on its own once its master is gone.
        const left = () => runningProcesses((argv) => argv.join(" ").includes(socketDir));
        await waitFor(async () => (await left()).length === 0, 30_000, "no ssh left");
      } finally {
        if (master !== 0 && !processEnded(master)) Deno.kill(master, "SIGKILL");
        await Deno.remove(base, { recursive: true });
        await Deno.remove(box.root, { recursive: true });
        await sshd.stop();
      }
    },
  );
}
