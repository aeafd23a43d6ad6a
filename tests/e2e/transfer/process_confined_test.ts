/**
 * runProcess's timeouts and aborts under the program's own permission set
 * (`deno.json` → `permissions.image-transfer`):
 * the call still ends on time and the program's helpers die with it. And a
 * helper that escaped the process group cannot hold a call open.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT } from "../../helpers/cli.ts";
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

/** Run `code` (a module body) under the program's permission set; returns its stdout. */
async function runConfined(code: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "itx-confined-" });
  try {
    const script = join(dir, "probe.ts");
    await Deno.writeTextFile(script, code);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "-P=image-transfer", "--config", join(REPO_ROOT, "deno.json"), script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr));
    return text.decode(out.stdout);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const RUN_PROCESS_URL = new URL("../../../src/process/run.ts", import.meta.url).href;

Deno.test("under the permission set, a timeout ends the call on time and kills its helpers", async () => {
  const seconds = uniqueSleep();
  const out = await runConfined(`
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
