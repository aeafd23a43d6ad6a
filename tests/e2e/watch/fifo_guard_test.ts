/**
 * The FIFO guard on its own (short timings): it releases a real `Deno.watchFs`
 * stuck opening a FIFO, holds the FIFO only while it is there, and reports a
 * watcher that stays stuck with nothing to release.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FifoGuard } from "../../../src/watch/watch_worker.ts";
import { waitFor } from "../../helpers/files.ts";

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(out.success);
}

const FAST = { heartbeatMs: 50, stallMs: 150, giveUpMs: 600 };
/**
 * Short timings for a watcher that works: a stall of the whole process (a busy
 * machine) must not pass for a stuck watcher, so a stall counts after a second
 * and is reported only after a minute.
 */
const WORKING = { heartbeatMs: 50, stallMs: 1000, giveUpMs: 60_000 };

Deno.test("FifoGuard: a watcher stuck opening a new FIFO is released; later events arrive", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-guard-" });
  const watch = join(root, "watch");
  const beat = join(root, "beat");
  await Deno.mkdir(watch);
  await Deno.mkdir(beat);
  const heartbeat = join(beat, "heartbeat");
  await Deno.writeFile(heartbeat, new Uint8Array());
  const held: string[] = [];
  const stuck: string[] = [];
  const guard = new FifoGuard(watch, heartbeat, {
    onHeld: (path) => held.push(path),
    onStuck: (message) => stuck.push(message),
  }, WORKING);
  const watcher = Deno.watchFs([watch, beat], { recursive: true });
  const seen = new Set<string>();
  const reading = (async () => {
    for await (const event of watcher) {
      if (event.paths.every((p) => guard.isHeartbeat(p))) guard.echo();
      else for (const p of event.paths) seen.add(p);
    }
  })();
  try {
    guard.start();
    await new Promise((r) => setTimeout(r, 200));
    await mkfifo(join(watch, "pipe.fits"));
    await new Promise((r) => setTimeout(r, 100));
    await Deno.writeTextFile(join(watch, "after.fits"), "x");
    await waitFor(() => seen.has(join(watch, "after.fits")), 5_000, "the event after the FIFO");
    assert.deepEqual(held, [join(watch, "pipe.fits")]);
    assert.deepEqual(guard.held, [join(watch, "pipe.fits")]);
    // Held: more events on the FIFO do not stall the watcher again.
    await Deno.chmod(join(watch, "pipe.fits"), 0o600);
    await Deno.writeTextFile(join(watch, "later.fits"), "y");
    await waitFor(() => seen.has(join(watch, "later.fits")), 1_000, "an event after a chmod");
    assert.deepEqual(held.length, 1, "held once");
    // Renamed: let go at the old path (whose close makes the watcher wait again), held at the new.
    await Deno.rename(join(watch, "pipe.fits"), join(watch, "moved.fits"));
    await waitFor(() => held.length === 2, 5_000, "the renamed FIFO to be held");
    assert.deepEqual(guard.held, [join(watch, "moved.fits")]);
    await Deno.writeTextFile(join(watch, "last.fits"), "z");
    await waitFor(() => seen.has(join(watch, "last.fits")), 5_000, "an event after the rename");
    assert.deepEqual(stuck, []);
  } finally {
    // Watcher first: letting go of the FIFO makes a close event the watcher would open it for.
    watcher.close();
    await reading;
    guard.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("FifoGuard: lets go of a removed FIFO; reports a watcher that stays stuck", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-guard-" });
  // No watcher at all: every heartbeat goes unanswered, as with a stuck watcher.
  const heartbeat = join(root, "heartbeat");
  await Deno.mkdir(join(root, "deep", "er"), { recursive: true });
  const fifo = join(root, "deep", "er", "pipe");
  await mkfifo(fifo);
  const held: string[] = [];
  const stuck: string[] = [];
  const guard = new FifoGuard(root, heartbeat, {
    onHeld: (path) => held.push(path),
    onStuck: (message) => stuck.push(message),
  }, FAST);
  try {
    guard.start();
    await waitFor(() => held.length === 1, 3_000, "the FIFO to be held");
    assert.deepEqual(held, [fifo]);
    await Deno.remove(fifo);
    await waitFor(() => guard.held.length === 0, 1_000, "the removed FIFO to be let go");
    await waitFor(() => stuck.length === 1, 5_000, "the stuck report");
    assert.match(stuck[0], /no FIFO explains it/);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(stuck.length, 1, "reported once per stall");
    assert.deepEqual(held, [fifo], "nothing else held");
  } finally {
    guard.stop();
    await Deno.remove(root, { recursive: true });
  }
});
