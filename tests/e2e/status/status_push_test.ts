/**
 * Pushed updates are throttled: a burst of files gives at most two
 * Server-Sent Events per second, and the last one shows every file sent.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes } from "../../helpers/files.ts";
import { startStatusDaemon } from "../../helpers/status.ts";

const FILES = 300;

Deno.test("status events: a 300-file burst is pushed at most twice a second, ending with all sent", async () => {
  await using d = await startStatusDaemon();
  const response = await fetch(`${d.base}/api/events`);
  assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: Array<{ at: number; sent: number }> = [];
  let buffer = "";
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(message)?.[1];
        if (data) events.push({ at: Date.now(), sent: JSON.parse(data).jobs[0].sent });
      }
    }
  })();
  const bytes = randomBytes(512);
  for (let i = 0; i < FILES; i++) {
    await Deno.writeFile(join(d.watch, `burst ${String(i).padStart(3, "0")}.fits`), bytes);
  }
  const deadline = Date.now() + 60_000;
  while (events.at(-1)?.sent !== FILES) {
    assert.ok(Date.now() < deadline, `last event: ${JSON.stringify(events.at(-1))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await reader.cancel();
  await reading.catch(() => {});
  // The first event comes on connecting; later ones at most two a second (counted over the
  // whole burst: a busy reader may take two events at once, so gaps between them prove nothing).
  const pushed = events.slice(1);
  assert.ok(pushed.length >= 2, "the burst was pushed in several updates");
  const seconds = (pushed.at(-1)!.at - events[0].at) / 1000;
  assert.ok(pushed.length <= Math.ceil(seconds * 2) + 1, `${pushed.length} events in ${seconds} s`);
});
