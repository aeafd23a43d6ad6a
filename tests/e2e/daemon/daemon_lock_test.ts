/**
 * One daemon per state folder: the lock is checked from a second, real
 * process, released cleanly, and released by the OS when its holder dies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { acquireDaemonLock } from "../../../src/ledger/daemon_lock.ts";

const MODULE_URL = new URL("../../../src/ledger/daemon_lock.ts", import.meta.url).href;

/** Try the lock from another process; report "acquired" or the error message. */
async function tryInOtherProcess(stateDir: string): Promise<string> {
  const code = `
    import { acquireDaemonLock } from ${JSON.stringify(MODULE_URL)};
    try {
      const lock = acquireDaemonLock(Deno.args[0]);
      lock.release();
      console.log("acquired");
    } catch (error) {
      console.log(error.message);
    }
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--allow-all", code, stateDir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `deno eval failed: ${stderr}`);
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("daemon lock: a second process cannot take it while held; can after release", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-lock-" });
  try {
    const stateDir = join(root, "state dir $(x)");
    const lock = acquireDaemonLock(stateDir);
    let released = false;
    try {
      assert.ok(Deno.statSync(stateDir).isDirectory, "the state folder is created");
      const message = await tryInOtherProcess(stateDir);
      assert.match(message, /^Cannot start: another image-transfer daemon is already running/);
      assert.ok(message.includes(stateDir), `message names the state folder: ${message}`);
      // A second daemon in this same process is refused too.
      assert.throws(() => acquireDaemonLock(stateDir), /already running/);
      // Still held after failed attempts.
      assert.match(await tryInOtherProcess(stateDir), /already running/);
      lock.release();
      released = true;
      assert.equal(await tryInOtherProcess(stateDir), "acquired");
    } finally {
      if (!released) lock.release();
    }
    // And again in this process.
    acquireDaemonLock(stateDir).release();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon lock: different state folders do not conflict", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-lock-" });
  try {
    const lock = acquireDaemonLock(join(root, "a"));
    try {
      assert.equal(await tryInOtherProcess(join(root, "b")), "acquired");
    } finally {
      lock.release();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon lock: released by the OS when the holder is killed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-lock-" });
  try {
    const stateDir = join(root, "state");
    const code = `
      import { acquireDaemonLock } from ${JSON.stringify(MODULE_URL)};
      acquireDaemonLock(Deno.args[0]);
      console.log("holding");
      setInterval(() => {}, 1000);
    `;
    const holder = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--allow-all", code, stateDir],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = holder.stdout.getReader();
      const { value } = await reader.read();
      assert.equal(new TextDecoder().decode(value).trim(), "holding");
      reader.releaseLock();
      assert.match(await tryInOtherProcess(stateDir), /already running/);
      assert.throws(() => acquireDaemonLock(stateDir), /already running/);
    } finally {
      holder.kill("SIGKILL");
      const status = await holder.status;
      assert.equal(status.signal, "SIGKILL");
      await holder.stdout.cancel().catch(() => {});
    }
    assert.equal(await tryInOtherProcess(stateDir), "acquired");
    const lock = acquireDaemonLock(stateDir);
    lock.release();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
