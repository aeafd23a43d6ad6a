/**
 * The free space the status page and /metrics show is measured again on time
 * after the wall clock was set back (NTP correcting a fast clock).
 */
import assert from "node:assert/strict";
import { FreeSpaceGauge } from "../../../src/status/free_space_gauge.ts";
import { stepDateNow } from "../../helpers/fake_clock.ts";
import { waitFor } from "../../helpers/files.ts";

Deno.test("free space gauge: a wall clock set back an hour does not hold the next measurement", async () => {
  let asked = 0;
  const gauge = new FreeSpaceGauge(() => Promise.resolve(1000 + ++asked), () => {}, 50);
  try {
    assert.equal(gauge.read(), null);
    // The probe's answer comes in a later turn of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(asked, 1);
    // The wall clock steps back an hour.
    using _step = stepDateNow(-3_600_000);
    // Before the fix the next ask waited until the clock came back to its time (an hour).
    await waitFor(
      () => Promise.resolve(gauge.read()?.bytes === 1002),
      30_000,
      "a measurement after the step",
    );
  } finally {
    gauge.close();
  }
});
