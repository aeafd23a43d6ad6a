/**
 * A stop is clean with the status page open: SIGINT or SIGTERM with three
 * live-update clients (and one that keeps reconnecting, as a browser does)
 * ends with `Stopped`, exit 0 and no PID file, and no warning of the runtime
 * reaches the log.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startStatusDaemon } from "../../helpers/status.ts";

/** Open `/api/events` and wait for its first event; returns the reader. */
async function openEvents(base: string): Promise<ReadableStreamDefaultReader<string>> {
  const response = await fetch(`${base}/api/events`);
  assert.equal(response.status, 200);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the stream ended before its first event");
    text += value;
  }
  return reader;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal} with three live-update clients open ends with Stopped and removes the PID file`, async () => {
    const d = await startStatusDaemon();
    try {
      const readers = await Promise.all([1, 2, 3].map(() => openEvents(d.base)));
      const page = await fetch(`${d.base}/`);
      assert.equal(page.status, 200);
      await page.body?.cancel();
      const pidFile = join(d.state, "daemon.pid");
      assert.ok((await Deno.stat(pidFile)).isFile);
      // A page that reconnects at once whenever its stream ends, during the stop too.
      let reconnecting = true;
      const reconnects = (async () => {
        while (reconnecting) {
          try {
            const r = await openEvents(d.base);
            while (reconnecting && !(await r.read()).done) { /* read on */ }
          } catch { /* refused or ended: try again */ }
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      // Every stream ends when the daemon stops.
      const ended = readers.map(async (reader) => {
        while (!(await reader.read()).done) { /* read on */ }
      });
      const status = await d.daemon.stop(signal);
      reconnecting = false;
      await reconnects;
      await Promise.all(ended);
      assert.equal(status.code, 0, d.daemon.stderr());
      assert.match(d.daemon.stderr(), /Stopped: \d+ file\(s\) sent/);
      await assert.rejects(Deno.stat(pidFile), Deno.errors.NotFound);
      assert.doesNotMatch(d.daemon.stderr(), /Deno\.serve|legacy behavior|request\.signal/);
    } finally {
      await d.daemon.stop();
      await Deno.remove(d.root, { recursive: true });
    }
  });
}
