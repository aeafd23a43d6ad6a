/**
 * The status page's live updates (Server-Sent Events) keep their pace after
 * the wall clock was set back (NTP correcting a fast clock).
 */
import assert from "node:assert/strict";
import { Pusher } from "../../../src/status/pusher.ts";
import { stepDateNow } from "../../helpers/fake_clock.ts";

Deno.test("Pusher: a wall clock set back an hour does not hold the next update back", async () => {
  let built = 0;
  const pusher = new Pusher(() => JSON.stringify({ built: ++built }), () => false);
  const reader = pusher.stream().body!.getReader();
  const decoder = new TextDecoder();
  try {
    assert.match(decoder.decode((await reader.read()).value), /"built":1/);
    pusher.changed();
    assert.match(decoder.decode((await reader.read()).value), /"built":2/);
    // The wall clock steps back an hour; then something changes.
    using _step = stepDateNow(-3_600_000);
    pusher.changed();
    let next: string | undefined;
    reader.read().then((chunk) => next = decoder.decode(chunk.value));
    // An update is due within half a second; timers fire in the order they are due, so it
    // comes before this one (the heartbeat comes 15 s after the page came).
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // Before the fix the update waited until the clock came back to the last one (an hour).
    assert.match(next ?? "(none)", /"built":3/);
  } finally {
    pusher.close();
    await reader.cancel().catch(() => {});
  }
});
