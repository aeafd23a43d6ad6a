/**
 * When the shared connection's master is asked whether it runs: before a
 * batch, or alongside the calls of a batch that follows a call which ended
 * well. The "master" here answers through a small shell program standing in
 * for `ssh -O check` (it records each run), so the order can be seen.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlArgv, SharedMaster } from "../../../src/transfer/ssh/master.ts";
import { exists, waitFor } from "../../helpers/files.ts";

/**
 * A master whose `check` takes `checkSeconds` (each run recorded), waits
 * while a file `gate` is in its folder, and hangs while a file `hang` is;
 * its openings are counted.
 */
async function fakeMaster(checkSeconds: number) {
  const dir = await Deno.makeTempDir({ prefix: "itx-master-" });
  const socket = join(dir, "cm-socket");
  await Deno.writeTextFile(socket, "");
  const runs = join(dir, "runs");
  const hang = join(dir, "hang");
  const gate = join(dir, "gate");
  const opened: number[] = [];
  const controlArgv: ControlArgv = (operation) =>
    Promise.resolve(
      operation === "check"
        ? [
          "sh",
          "-c",
          `echo check >>'${runs}'; while [ -e '${gate}' ]; do sleep 0.05; done; ` +
          `[ -e '${hang}' ] && sleep 30; sleep ${checkSeconds}; ` +
          "echo 'Master running (pid=999999)' >&2",
        ]
        : ["sh", "-c", `echo exit >>'${runs}'`],
    );
  const master = new SharedMaster({
    controlArgv,
    env: {},
    open: async () => {
      opened.push(1);
      await Deno.writeTextFile(socket, "");
    },
    host: () => "example.org",
    connectTimeoutS: () => 5,
  });
  const checks = async () =>
    (await Deno.readTextFile(runs).catch(() => "")).split("\n").filter((l) => l === "check")
      .length;
  return { dir, socket, hang, gate, master, opened, checks };
}

Deno.test("a batch right after a call that ended well does not wait for the check: it runs alongside", async () => {
  const { dir, socket, gate, master, opened, checks } = await fakeMaster(1);
  try {
    // No call yet: the master is asked first (the check takes a second).
    assert.equal(await master.connect(socket), null);
    assert.equal(await checks(), 1);
    master.served();
    // Right after a call: no check before; one is planned alongside. Every check from now on
    // waits at the gate, so batches that waited for one could not return before it opens.
    await Deno.writeTextFile(gate, "");
    const batches = (async () => {
      assert.equal(await master.connect(socket), null);
      assert.equal(await master.connect(socket), null);
      return "returned";
    })();
    // A ceiling, not a time: batches that do not wait return at once, those that do never.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const held = new Promise((resolve) => timer = setTimeout(() => resolve("held"), 20_000));
    assert.equal(await Promise.race([batches, held]), "returned", "not asked before the batch");
    clearTimeout(timer);
    await Deno.remove(gate);
    await waitFor(async () => await checks() === 2, 30_000, "the check alongside");
    // A call failed while that check runs: the next batch waits for it, then is asked for
    // (and probed) before its calls, and goes on (null: the connection works).
    master.failed();
    assert.equal(await master.connect(socket), null);
    assert.equal(await checks(), 3, "one check alongside both batches, then one before");
    assert.equal(opened.length, 1, "the probe");
  } finally {
    await master.close(socket);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a master found hung alongside the calls is ended, and the next batch opens a new connection first", async () => {
  const { dir, socket, hang, master, opened } = await fakeMaster(0);
  try {
    assert.equal(await master.connect(socket), null);
    master.served();
    // From now on the master does not answer (longer than the 5 s a check may take).
    await Deno.writeTextFile(hang, "");
    assert.equal(await master.connect(socket), null, "the batch does not wait");
    // The check alongside finds it hung and ends it: its socket goes.
    await waitFor(() => exists(socket).then((there) => !there), 30_000, "the socket removed");
    await Deno.remove(hang);
    assert.equal(opened.length, 0);
    // The next batch opens a new connection before its calls.
    assert.equal(await master.connect(socket), null);
    assert.equal(opened.length, 1);
  } finally {
    await master.close(socket);
    await Deno.remove(dir, { recursive: true });
  }
});
