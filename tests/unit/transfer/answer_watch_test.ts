/**
 * A local destination on a share: a call on it is timed on the monotonic
 * clock, so a wall clock stepped ahead (NTP or a GPS fix after boot) while a
 * copy is written is no destination gone silent.
 */
import assert from "node:assert/strict";
import { AnswerWatch } from "../../../src/transfer/local/copy.ts";
import { stepDateNow } from "../../helpers/fake_clock.ts";

Deno.test("AnswerWatch: a wall clock stepped ahead a day during a call does not end the wait", async () => {
  const watch = new AnswerWatch(60_000);
  let answer!: (value: string) => void;
  const call = watch.on(new Promise<string>((resolve) => answer = resolve));
  try {
    // The wall clock jumps a day ahead.
    using _step = stepDateNow(86_400_000);
    // The watch looks every 1.25 s; timers fire in the order they are due, so two looks come
    // before this one.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // Before the fix the step counted as a day without an answer.
    assert.equal(watch.signal.aborted, false);
    answer("written");
    assert.equal(await call, "written");
  } finally {
    watch.stop();
  }
});
