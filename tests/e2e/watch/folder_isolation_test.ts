/**
 * Watch folders are watched apart: a runtime watcher that stalls opening a
 * FIFO in one folder (no guard to release it) holds up no other folder.
 *
 * All `Deno.watchFs` calls of one thread share one watcher thread of the
 * runtime, which opens the path of every event it reports; this test fails
 * if two folders are ever watched from the same thread.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FolderWatcher, type WatchEvent } from "../../../src/watch/folder_watcher.ts";
import { waitFor } from "../../helpers/files.ts";

async function mkfifo(path: string): Promise<void> {
  const out = await new Deno.Command("mkfifo", { args: [path] }).output();
  assert.ok(out.success);
}

/** A watcher of `path` without the FIFO guard, and the paths its events named. */
async function watchUnguarded(
  path: string,
): Promise<{ watcher: FolderWatcher; seen: Set<string> }> {
  const seen = new Set<string>();
  const onEvents = (events: WatchEvent[]) => {
    for (const event of events) for (const p of event.paths) seen.add(p);
  };
  const onError = (message: string) => assert.fail(`watching ${path} failed: ${message}`);
  const watcher = new FolderWatcher(path, onEvents, onError, { fifoGuard: false });
  await watcher.ready;
  return { watcher, seen };
}

Deno.test("FolderWatcher: a watcher stalled on a FIFO in one folder holds up no other folder", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-apart-" });
  const stalled = join(root, "stalled");
  const other = join(root, "other");
  await Deno.mkdir(stalled);
  await Deno.mkdir(other);
  const first = await watchUnguarded(stalled);
  const second = await watchUnguarded(other);
  const fifo = join(stalled, "pipe.fits");
  try {
    await Deno.writeTextFile(join(stalled, "before.fits"), "a");
    await waitFor(() => first.seen.has(join(stalled, "before.fits")), 5_000, "the first event");
    // The runtime opens the FIFO to report its creation, and waits there for a writer.
    await mkfifo(fifo);
    await Deno.writeTextFile(join(stalled, "after.fits"), "b");
    await Deno.writeTextFile(join(other, "meanwhile.fits"), "c");
    await waitFor(
      () => second.seen.has(join(other, "meanwhile.fits")),
      5_000,
      "the other folder's event while the first folder's watcher waits on its FIFO",
    );
    assert.ok(!first.seen.has(join(stalled, "after.fits")), "the first folder's watcher stalled");
  } finally {
    // A writer's open (read-write never waits) lets the stalled open return.
    try {
      (await Deno.open(fifo, { read: true, write: true })).close();
    } catch { /* never made */ }
    first.watcher.close();
    second.watcher.close();
    await Deno.remove(root, { recursive: true });
  }
});
