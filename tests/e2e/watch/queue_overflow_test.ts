/**
 * The kernel's event queue overflowing (inotify's `max_queued_events`), for
 * real: the daemon is stopped (SIGSTOP) while more files land than the queue
 * holds, so the kernel drops events (and the runtime's watcher mostly reports
 * no overflow). Once the watcher is quiet the daemon reads the folders that had
 * events again, says what it found that way (or, when the overflow is
 * reported, watches and rescans again), and every file arrives byte for byte,
 * long before the periodic rescan (an hour here).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("daemon: the kernel event queue overflows (events lost); the folders are read again and every file arrives without the periodic rescan", async () => {
  const queued = Number(await Deno.readTextFile("/proc/sys/fs/inotify/max_queued_events"));
  // Each new file makes at least two events (created, closed after writing).
  const count = Math.ceil(queued / 2) + 500;
  await using box = await cliSandbox({ rescan_interval_seconds: 3600 });
  const daemon = startCli(["-v", "run", "-c", box.config], { env: box.env });
  const files = new Map<string, Uint8Array>();
  try {
    // After the start's second scan, which would find the files itself.
    await daemon.waitForOutput("Checked the files in");
    daemon.process.kill("SIGSTOP");
    try {
      for (let i = 0; i < count; i++) {
        const name = `burst ${String(i).padStart(5, "0")}.fits`;
        files.set(name, randomBytes(64));
        await Deno.writeFile(join(box.watch, name), files.get(name)!);
      }
    } finally {
      daemon.process.kill("SIGCONT");
    }
    // Said either way: the folders read again found files no event told of, or (when the kernel's
    // overflow notice gets through, which on a busy machine it may) the watcher lost events.
    await daemon.waitForOutput(
      /The watcher missed \d+ new file|The watcher lost events; watching .* again and rescanning/,
      60_000,
    );
    const night = async () => {
      for await (const entry of Deno.readDir(box.dest)) if (entry.isDirectory) return entry.name;
      return null;
    };
    await waitFor(
      async () => {
        const folder = await night().catch(() => null);
        if (folder === null) return false;
        let arrived = 0;
        for await (const entry of Deno.readDir(join(box.dest, folder))) {
          if (files.has(entry.name)) arrived++;
        }
        return arrived === count;
      },
      // A ceiling, not a speed: a quarter of the rescan interval (a busy machine copies these
      // thousands of files slowly).
      900_000,
      `${count} files to arrive`,
    );
    const folder = (await night())!;
    for (const [name, bytes] of files) {
      assert.deepEqual(await Deno.readFile(join(box.dest, folder, name)), bytes, name);
    }
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
