/**
 * A `state_dir` on a file system that does not pass locks on (a FUSE view, `bindfs` by default,
 * standing for a network share): a second daemon started on the same folder through it is
 * granted the lock, and must still be refused by the PID file of the daemon that runs. PID files
 * naming a live process that is not that daemon (its pid reused; another computer's) stay stale.
 * Real daemons through the CLI, a real bindfs mount.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { withBindfs } from "../../helpers/bindfs.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

const noon = new Date("2024-05-02T12:00:00Z");

/** Write a file with a known mtime into `folder`, then wait until `dest` holds its bytes. */
async function sends(folder: string, dest: string, name: string): Promise<void> {
  const bytes = randomBytes(4096);
  await Deno.writeFile(join(folder, name), bytes);
  await Deno.utime(join(folder, name), noon, noon);
  const path = join(dest, "20240502", name);
  await waitFor(
    async () => (await Deno.readFile(path).catch(() => null))?.length === bytes.length,
    30_000,
    path,
  );
  assert.deepEqual(await Deno.readFile(path), bytes);
}

Deno.test({
  name: "a second daemon on the same state_dir through a FUSE view that passes no lock on " +
    "(bindfs) is refused (exit 3, naming the running one); the first keeps its PID file and " +
    "runtime folder, goes on sending, and stop still stops it",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    await using first = await cliSandbox();
    const runtime = join(first.root, "run");
    await Deno.mkdir(runtime);
    // The view of the first daemon's state folder, in a name a shell would mangle (no space:
    // `isMounted` reads /proc/self/mountinfo, which writes it as \040).
    const view = join(first.root, "state-view-$(x)'");
    await using second = await cliSandbox({ state_dir: view });
    const a = startCli(["run", "-c", first.config], {
      env: { ...first.env, RUNTIME_DIRECTORY: runtime },
    });
    try {
      await a.waitForOutput("Watching");
      const pid = a.process.pid;
      const pidFile = join(first.stateDir, "daemon.pid");
      const infoFile = join(first.stateDir, "daemon.json");
      const { runtimeDir } = JSON.parse(await Deno.readTextFile(infoFile));
      assert.ok((await Deno.stat(runtimeDir)).isDirectory, runtimeDir);

      await withBindfs(first.stateDir, view, async () => {
        const b = startCli(["run", "-c", second.config], {
          env: { ...second.env, RUNTIME_DIRECTORY: runtime },
        });
        // Before, it started (replacing the PID file, removing the runtime folder of the first).
        const started = await b.waitForOutput("Watching").then(() => true, () => false);
        const ended = await b.stop();
        assert.equal(started, false, `the second daemon started:\n${b.stderr()}`);
        assert.equal(ended.code, 3, b.stderr());
        assert.match(
          b.stderr(),
          new RegExp(
            `Cannot start: another image-transfer daemon is already running \\(pid ${pid}, ` +
              `config .*config\\.yaml\\) with state_dir .*state-view-\\$\\(x\\)', although its ` +
              "lock was granted: the file system there does not pass locks on",
          ),
        );
        assert.doesNotMatch(b.stderr(), /Replacing the PID file|Removed the runtime folder/);

        // status through the view finds the running daemon as well.
        const seen = await runCli(["-c", second.config, "status"], { env: second.env });
        assert.equal(seen.code, 0, seen.stderr);
        assert.match(seen.stdout, new RegExp(`^Daemon: running, pid ${pid},`, "m"));
      });

      assert.equal(await Deno.readTextFile(pidFile), `${pid}\n`);
      assert.equal(JSON.parse(await Deno.readTextFile(infoFile)).pid, pid);
      assert.ok((await Deno.stat(runtimeDir)).isDirectory, "the running daemon's runtime folder");
      await sends(first.watch, first.dest, "after.fits");

      const stop = await runCli(["-c", first.config, "stop"], { env: first.env });
      assert.equal(stop.code, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`^Stopped the daemon \\(pid ${pid}\\)`, "m"));
      assert.equal((await a.stop()).code, 0, a.stderr());
      await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
      await assert.rejects(Deno.stat(runtimeDir), Deno.errors.NotFound);
    } finally {
      await a.stop();
    }
  },
});

Deno.test({
  name: "a PID file naming a live process that is not its daemon (started after it, its pid " +
    "reused; another program; one of another computer) is stale as before: the next start " +
    "replaces it",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await using box = await cliSandbox();
    await Deno.mkdir(box.stateDir, { recursive: true });
    // A process of the daemon's own program (deno), and another one, alive all along.
    const deno = new Deno.Command(Deno.execPath(), {
      args: ["eval", "setTimeout(() => {}, 120_000)"],
      stdin: "null",
    }).spawn();
    const sleep = new Deno.Command("sleep", { args: ["120"], stdin: "null" }).spawn();
    try {
      const hour = 3_600_000;
      const before = new Date(Date.now() - hour).toISOString();
      const after = new Date(Date.now() + hour).toISOString();
      const cases = [
        { why: "pid reused", pid: deno.pid, startedAt: before },
        { why: "another program", pid: sleep.pid, startedAt: after },
        {
          why: "another computer's",
          pid: deno.pid,
          startedAt: after,
          host: "another-pc-of-the-lab",
        },
      ];
      for (const { why, ...said } of cases) {
        const info = { ...said, version: "0.1.0", config: box.config };
        await Deno.writeTextFile(join(box.stateDir, "daemon.json"), JSON.stringify(info));
        await Deno.writeTextFile(join(box.stateDir, "daemon.pid"), `${said.pid}\n`);
        const daemon = startCli(["run", "-c", box.config], { env: box.env });
        try {
          await daemon.waitForOutput("Watching");
          assert.match(
            daemon.stderr(),
            new RegExp(`Replacing the PID file of pid ${said.pid}: that daemon did not stop`),
            why,
          );
          assert.equal(
            await Deno.readTextFile(join(box.stateDir, "daemon.pid")),
            `${daemon.process.pid}\n`,
          );
        } finally {
          assert.equal((await daemon.stop()).code, 0, daemon.stderr());
        }
      }
    } finally {
      deno.kill("SIGKILL");
      sleep.kill("SIGKILL");
      await Promise.all([deno.status, sleep.status]);
    }
  },
});
