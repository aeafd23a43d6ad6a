/**
 * The kernel's event queue overflowing (inotify's `max_queued_events`), for
 * real: the daemon is stopped (SIGSTOP) while more files land than the queue
 * holds, so the kernel drops events (and the runtime's watcher mostly reports
 * no overflow). Once the watcher is quiet the daemon reads the folders that had
 * events again, says what it found that way (or, when the overflow is
 * reported, watches and rescans again), and every file arrives byte for byte,
 * long before the periodic rescan (an hour here).
 *
 * With `after_transfer: delete`, a file whose write was told but whose close was lost in the
 * overflow does not wait for that close for ever: once the loss is found it goes by the window.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { existsSync, randomBytes, waitFor } from "../../helpers/files.ts";
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

Deno.test("daemon: after_transfer: delete, a file whose close the overflow lost goes once the loss is found (no rescan), and is deleted", async () => {
  const queued = Number(await Deno.readTextFile("/proc/sys/fs/inotify/max_queued_events"));
  // Files not sent (no match) fill the queue: at least two events each (created, closed).
  const fillers = Math.ceil(queued / 2) + 500;
  await using box = await cliSandbox({
    after_transfer: "delete",
    file_patterns: ["*.dat"],
    rescan_interval_seconds: 0, // No rescan: the loss found must free the file.
  });
  const daemon = startCli(["-v", "run", "-c", box.config], { env: box.env });
  const held = "held -$(x) 'q'.dat";
  const heldBytes = randomBytes(64);
  // Written after the queue is full: no event tells of them (how the loss is found).
  const late = new Map([1, 2, 3].map((i) => [`late ${i}.dat`, randomBytes(64)]));
  try {
    await daemon.waitForOutput("Checked the files in");
    const file = await Deno.open(join(box.watch, held), { write: true, createNew: true });
    let stopped = false;
    try {
      assert.equal(await file.write(heldBytes), heldBytes.length);
      // Its write was told, its close not yet: it waits for the close.
      await daemon.waitForOutput(
        /held .*has not changed for the stability window, but its writer still has it open/,
      );
      daemon.process.kill("SIGSTOP");
      stopped = true;
      for (let i = 0; i < fillers; i++) {
        await Deno.writeFile(join(box.watch, `filler ${i}.tmp`), new Uint8Array(1));
      }
      for (const [name, bytes] of late) await Deno.writeFile(join(box.watch, name), bytes);
    } finally {
      // Closed while the queue is full (and the daemon stopped): the kernel drops its close event.
      file.close();
      if (stopped) daemon.process.kill("SIGCONT");
    }
    const night = async () => {
      for await (const entry of Deno.readDir(box.dest)) if (entry.isDirectory) return entry.name;
      return null;
    };
    const arrived = async (names: string[]) => {
      const folder = await night().catch(() => null);
      return folder !== null &&
        names.every((name) =>
          existsSync(join(box.dest, folder, name)) && !existsSync(join(box.watch, name))
        );
    };
    // The loss is found (files no event told of, or the kernel's overflow notice), and they go.
    await waitFor(() => arrived([...late.keys()]), 600_000, "the late files to arrive");
    await daemon.waitForOutput(
      /The watcher missed \d+ new file|The watcher lost events; watching .* again and rescanning/,
    );
    // Before, the held file waited for a close that never came (status: 1 not complete yet) until
    // the daemon was restarted. A ceiling, not a speed.
    await waitFor(() => arrived([held]), 600_000, "the held file to arrive and be deleted");
    assert.match(daemon.stderr(), /Events were lost: 1 file\(s\) job default saw written/);
    const folder = (await night())!;
    assert.deepEqual(await Deno.readFile(join(box.dest, folder, held)), heldBytes);
    for (const [name, bytes] of late) {
      assert.deepEqual(await Deno.readFile(join(box.dest, folder, name)), bytes, name);
    }
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});
