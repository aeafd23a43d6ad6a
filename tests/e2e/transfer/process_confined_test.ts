/**
 * runProcess's timeouts and aborts under the program's own permission set
 * (`deno.json` → `permissions.image-transfer`):
 * the call still ends on time and the program's helpers die with it. And a
 * helper that escaped the process group cannot hold a call open. And
 * through the program launcher, as the daemon starts programs once it runs:
 * the runtime refuses every program not named when the launcher started.
 */
import assert from "node:assert/strict";
import { runUnderPermissionSet } from "../../helpers/cli.ts";
import { runProcess } from "../../../src/process/run.ts";
import { CommandError } from "../../../src/errors.ts";

/** A `sleep` duration no other process uses, to find its processes by command line. */
function uniqueSleep(): string {
  return `30.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
}

/** Process ids whose command line is exactly `sleep <seconds>`. */
async function sleepers(seconds: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => "");
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    if (cmdline === `sleep\0${seconds}\0` && !/^\d+ \(.*\) Z/.test(stat)) {
      pids.push(Number(entry.name));
    }
  }
  return pids;
}

/** ssh whose connection helper (ProxyCommand) runs `helper` and never answers. */
function hangingSsh(helper: string): string[] {
  return ["ssh", "-o", "BatchMode=yes", "-o", `ProxyCommand=${helper}`, "itx-nowhere", "true"];
}

const RUN_PROCESS_URL = new URL("../../../src/process/run.ts", import.meta.url).href;
const LAUNCHER_URL = new URL("../../../src/process/launcher.ts", import.meta.url).href;

Deno.test("under the permission set, a timeout ends the call on time and kills its helpers", async () => {
  const seconds = uniqueSleep();
  const out = await runUnderPermissionSet(`
    import { runProcess } from ${JSON.stringify(RUN_PROCESS_URL)};
    const argv = ${JSON.stringify(hangingSsh(`sleep ${seconds}`))};
    const report = async (options) => {
      const started = performance.now();
      const error = await runProcess(argv, options).then(() => null, (e) => e);
      return { ms: Math.round(performance.now() - started), timedOut: error?.run?.timedOut ?? null,
        message: String(error?.message ?? error) };
    };
    const timedOut = await report({ timeoutMs: 1500 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopping")), 1500);
    const aborted = await report({ signal: controller.signal });
    const fromFile = await report({ timeoutMs: 1500, stdinFile: "/etc/hostname" });
    console.log(JSON.stringify({ timedOut, aborted, fromFile }));
  `);
  const { timedOut, aborted, fromFile } = JSON.parse(out);
  assert.equal(timedOut.timedOut, true, timedOut.message);
  assert.match(timedOut.message, /timed out after 1\.5 s/);
  assert.equal(aborted.message, "stopping");
  assert.equal(fromFile.timedOut, true, fromFile.message);
  for (const run of [timedOut, aborted, fromFile]) {
    // The helper holds the output pipes for the 30 s it sleeps unless it was killed with ssh
    // (well before: the call ends after 1.5 s, and a busy machine may take many seconds more).
    assert.ok(run.ms < 20_000, `ended ${run.ms} ms after it started`);
  }
  assert.deepEqual(await sleepers(seconds), [], "no helper survived");
});

Deno.test("a helper that left the process group cannot hold a timed-out call open", async () => {
  const seconds = uniqueSleep();
  try {
    // setsid: the helper starts a session of its own, out of reach of the group kill.
    const error = await runProcess(hangingSsh(`setsid sleep ${seconds}`), { timeoutMs: 1000 })
      .then(() => null, (e) => e);
    assert.ok(error instanceof CommandError);
    assert.equal(error.run.timedOut, true);
    // The call ended while the helper, which holds the pipes, still runs.
    assert.equal((await sleepers(seconds)).length, 1, "the escaped helper still runs");
  } finally {
    for (const pid of await sleepers(seconds)) Deno.kill(pid, "SIGKILL");
  }
});

Deno.test("through the program launcher only the programs named at its start run: the same calls, no others", async () => {
  const seconds = uniqueSleep();
  const out = await runUnderPermissionSet(`
    import { killProcess, runProcess, startProgramsThrough } from ${
    JSON.stringify(RUN_PROCESS_URL)
  };
    import { ProgramLauncher } from ${JSON.stringify(LAUNCHER_URL)};
    const launcher = await ProgramLauncher.start(["ssh", "sh", "kill"]);
    startProgramsThrough(launcher);
    await Deno.permissions.revoke({ name: "run" });
    const outcome = (promise) => promise.then(
      (result) => ({ ok: true, stdout: new TextDecoder().decode(result.stdout), stderr: result.stderr }),
      (e) => ({ ok: false, message: String(e?.message ?? e), code: e?.run?.code ?? null,
        timedOut: e?.run?.timedOut ?? null, cause: e?.cause?.name ?? null }),
    );
    const chunks = [];
    const echoed = await outcome(runProcess(
      ["sh", "-c", 'printf "%s|" "$ITX_NAME"; cat; sleep 0.2; printf end; echo oops >&2'],
      { env: { ITX_NAME: "a $(b) 'c'" }, stdin: "from stdin|", cwd: "/",
        onStdout: (chunk) => chunks.push(new TextDecoder().decode(chunk)) },
    ));
    // Started ahead of need: it runs before its input comes, and its time-out counts from then.
    let give;
    const lateChunks = [];
    const late = outcome(runProcess(["sh", "-c", "echo up; cat"], {
      stdinLater: new Promise((resolve) => give = resolve), timeoutMs: 1000,
      onStdout: (chunk) => lateChunks.push(new TextDecoder().decode(chunk)) }));
    while (!lateChunks.join("").includes("up")) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 1500));
    give([new TextEncoder().encode("given "), new TextEncoder().encode("later")]);
    const lateRun = await late;
    const notNeeded = await outcome(runProcess(["sh", "-c", "cat; echo done"], {
      stdinLater: Promise.resolve(null) }));
    const failed = await outcome(runProcess(["sh", "-c", "echo why >&2; exit 3"]));
    const refused = await Promise.all(
      [["systemctl", "--version"], ["/bin/cat", "/etc/hostname"], ["/usr/bin/env"]]
        .map((argv) => outcome(runProcess(argv))),
    );
    let direct;
    try {
      await new Deno.Command("sh", { args: ["-c", "true"] }).output();
      direct = "started";
    } catch (e) {
      direct = e.name;
    }
    const argv = ${JSON.stringify(hangingSsh(`sleep ${seconds}`))};
    const timedOut = await outcome(runProcess(argv, { timeoutMs: 1500 }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopping")), 1500);
    const aborted = await outcome(runProcess(argv, { signal: controller.signal }));
    const sleeper = await runProcess(["sh", "-c", "sleep 60 & echo $!"], { pipesAfterExitMs: 500 });
    const pid = Number(new TextDecoder().decode(sleeper.stdout).trim());
    const killed = await killProcess(pid);
    launcher.close();
    const afterClose = await outcome(runProcess(["sh", "-c", "true"]));
    console.log(JSON.stringify({ echoed, chunks, failed, refused, direct, timedOut, aborted, pid,
      killed, afterClose, lateRun, notNeeded }));
  `);
  const r = JSON.parse(out);
  assert.deepEqual(r.echoed, { ok: true, stdout: "a $(b) 'c'|from stdin|end", stderr: "oops" });
  assert.equal(r.chunks.join(""), "a $(b) 'c'|from stdin|end");
  assert.ok(r.chunks.length >= 2, "output came as it was written, before the end");
  assert.deepEqual(r.lateRun, { ok: true, stdout: "up\ngiven later", stderr: "" });
  assert.deepEqual(r.notNeeded, { ok: true, stdout: "done\n", stderr: "" });
  assert.equal(r.failed.ok, false);
  assert.equal(r.failed.code, 3);
  assert.match(r.failed.message, /exit code 3: why/);
  for (const refused of r.refused) {
    assert.equal(refused.ok, false);
    assert.equal(refused.cause, "NotCapable", refused.message);
    assert.match(refused.message, /^Cannot run /);
  }
  assert.equal(r.direct, "NotCapable", "the daemon's own thread starts nothing");
  assert.equal(r.timedOut.timedOut, true, r.timedOut.message);
  assert.equal(r.aborted.message, "stopping");
  assert.equal(r.killed, true);
  // Gone, or dead and waiting to be reaped (its parent shell exited: init reaps it).
  const stat = await Deno.readTextFile(`/proc/${r.pid}/stat`).catch(() => "");
  assert.ok(stat === "" || /^\d+ \(sleep\) Z/.test(stat), stat);
  assert.match(r.afterClose.message, /program launcher ended/);
  assert.deepEqual(
    await sleepers(seconds),
    [],
    "no helper of a timed-out or aborted call survived",
  );
});
