/**
 * Calls started ahead of need (`ssh/standby_call.ts`) against a real OpenSSH
 * server on loopback: after a batch sent in one call, the next batch's call
 * already waits; the next batch goes over it; one that died is replaced by a
 * call of its own; none is left once the transport closes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { STREAMED_SCRIPT_COMMAND } from "../../../src/transfer/ssh/connection.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { makeItem, withTransport } from "../../helpers/transports.ts";

const never = new AbortController().signal;

/** Local `ssh` processes running the streamed-script command to the server on `port`. */
async function waitingCalls(port: number): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const argv = (await Deno.readTextFile(`/proc/${entry.name}/cmdline`).catch(() => ""))
      .split("\0");
    const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`).catch(() => "");
    if (/^\d+ \(.*\) Z/.test(stat) || !argv[0].endsWith("ssh")) continue;
    if (argv.includes(String(port)) && argv.includes(STREAMED_SCRIPT_COMMAND[2])) {
      pids.push(Number(entry.name));
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

Deno.test("the next small batch's call is started ahead of need and carries it; one that died is replaced; none is left at the end", async () => {
  const sshd = await startSshd();
  try {
    for (const method of ["scp", "rsync"] as const) {
      await withTransport(method, sshd, { verify_transfer: "checksum" }, async (ctx) => {
        const send = async (name: string) => {
          const data = randomBytes(50_000);
          const item = await makeItem(ctx.src, `20240601/${name}`, data);
          const [outcome] = await ctx.transport.send([item], never);
          assert.equal(outcome.error, null, `${method} ${name}: ${outcome.error?.message}`);
          assert.deepEqual(await Deno.readFile(join(ctx.dst, "20240601", name)), data, name);
        };
        assert.deepEqual(await waitingCalls(sshd.port), [], "none before the first call");
        await send("first.fits");
        // The next call waits, its remote shell ready for a script.
        const [waiting] = await waitingCalls(sshd.port);
        assert.ok(waiting !== undefined, `${method}: a call waits after the first batch`);
        await send("second.fits");
        // It carried the second batch (and ended with it); the next one waits in its place.
        await waitFor(() => !alive(waiting), 10_000, "the waiting call ended");
        const [next] = await waitingCalls(sshd.port);
        assert.ok(next !== undefined && next !== waiting, `${method}: the next call waits`);
        // A waiting call that died (killed, or its connection lost) is not used: the batch goes
        // by a call of its own.
        Deno.kill(next, "SIGKILL");
        await waitFor(() => !alive(next), 10_000, "the killed call gone");
        await send("third.fits");
        assert.deepEqual(
          (await Array.fromAsync(Deno.readDir(join(ctx.dst, "20240601")))).map((e) => e.name)
            .sort(),
          ["first.fits", "second.fits", "third.fits"],
        );
      });
      // Closing the transport ends the call that waited.
      assert.deepEqual(await waitingCalls(sshd.port), [], `${method}: none left`);
    }
  } finally {
    await sshd.stop();
  }
});
