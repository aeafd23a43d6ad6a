/** The pause of a job whose destination is full, on a manual clock. */
import assert from "node:assert/strict";
import { FullDestinationPause } from "../../../src/pipeline/space_guard.ts";
import { FakeClock } from "../../helpers/fake_clock.ts";

function setup(fullSpeed = 8) {
  const clock = new FakeClock();
  let due = 0;
  const pause = new FullDestinationPause({
    job: "test",
    target: "/dest",
    fullSpeed,
    onProbeDue: () => due++,
    probeEveryMs: 10_000,
    clock,
  });
  return { clock, pause, due: () => due };
}

Deno.test("FullDestinationPause: running until full; then one probe per interval", () => {
  const { clock, pause, due } = setup();
  assert.equal(pause.room(100), Infinity);
  assert.equal(pause.full("no space left"), true, "the pause begins: say so");
  assert.equal(pause.full("no space left"), false, "only once");
  assert.equal(pause.room(0), 0, "nothing goes before the probe");
  clock.advance(9_999);
  assert.equal(due(), 0);
  clock.advance(1);
  assert.equal(due(), 1);
  assert.equal(pause.room(3), 1, "one probe, whatever is still on its way");
  assert.equal(pause.started(), true, "this batch is the probe");
  assert.equal(pause.started(), false, "one probe at a time");
  assert.equal(pause.room(1), 0);
  assert.equal(pause.ended(true, 0), false, "the probe did not arrive");
  assert.equal(pause.room(0), 0);
  clock.advance(10_000);
  assert.equal(due(), 2, "the next probe");
});

Deno.test("FullDestinationPause: a probe that arrives starts a recovery that doubles to full speed", () => {
  const { clock, pause } = setup(8);
  pause.full("no space left");
  clock.advance(10_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "recovering, not running yet");
  assert.equal(pause.paused, true);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.room(1), 1);
  assert.equal(pause.ended(false, 2), false);
  assert.equal(pause.room(0), 4);
  assert.equal(pause.ended(false, 0), false, "a batch without arrivals does not grow it");
  assert.equal(pause.room(0), 4);
  assert.equal(pause.ended(false, 4), true, "full speed: the pause is over");
  assert.equal(pause.room(50), Infinity);
});

Deno.test("FullDestinationPause: full again while recovering goes back to probing, without a new pause", () => {
  const { clock, pause, due } = setup(1000);
  pause.full("no space left");
  clock.advance(10_000);
  pause.started();
  pause.ended(true, 1);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.full("no space left"), false, "same pause, nothing new to say");
  assert.equal(pause.room(0), 0);
  clock.advance(10_000);
  assert.equal(due(), 2);
  // Caught up while recovering (nothing left to send): running again.
  pause.started();
  assert.equal(pause.ended(true, 1), false);
  assert.equal(pause.ended(false, 1, true), true);
  assert.equal(pause.paused, false);
  pause.close();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("FullDestinationPause: the probe alone never ends the pause while files wait, even at full speed 2", () => {
  const { clock, pause } = setup(2);
  pause.full("no space left");
  clock.advance(10_000);
  pause.started();
  assert.equal(pause.ended(true, 1), false, "only the probe arrived");
  assert.equal(pause.paused, true);
  assert.equal(pause.room(0), 2);
  assert.equal(pause.ended(false, 1), true, "the batch after it arrived too");
  assert.equal(pause.paused, false);
  pause.close();
});

Deno.test("FullDestinationPause: a probe every 15 s unless told otherwise", () => {
  const clock = new FakeClock();
  let due = 0;
  const pause = new FullDestinationPause({
    job: "test",
    target: "/dest",
    fullSpeed: 2,
    onProbeDue: () => due++,
    probeEveryMs: undefined,
    clock,
  });
  pause.full("no space left");
  clock.advance(14_999);
  assert.equal(due, 0);
  clock.advance(1);
  assert.equal(due, 1);
  pause.close();
});
