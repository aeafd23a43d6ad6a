/**
 * How the stability checker looks at a file it cannot look at (a stat that fails otherwise than
 * "not found"): when it looks again, and when it says so.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  lookAt,
  lookFailed,
  type Observation,
  UNREADABLE_SAID_EVERY_MS,
} from "../../../src/watch/observation.ts";

function observation(): Observation {
  return {
    size: 10,
    mtimeMs: 0,
    lastActivityMs: 0,
    closed: false,
    timer: undefined,
    dueMs: 0,
    structure: undefined,
  };
}

Deno.test("lookFailed: said at the first failure, then at most hourly while it lasts; looked at again after the window, then twice as long each time, up to a minute", () => {
  const entry = observation();
  assert.equal(lookFailed(entry, 2000, 0), true, "the first failure is said");
  const waits = [entry.unreadable!.waitMs];
  let now = 0, said = 0;
  while (now < 3 * UNREADABLE_SAID_EVERY_MS) {
    now += entry.unreadable!.waitMs;
    if (lookFailed(entry, 2000, now)) said++;
    waits.push(entry.unreadable!.waitMs);
  }
  assert.deepEqual(waits.slice(0, 8), [2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
  assert.equal(said, 3, "once an hour, not once per look");
  assert.equal(entry.unreadable!.sinceMs, 0, "since the first failure");
});

Deno.test("lookFailed: a window longer than a minute is the wait; a short one waits a second at least", () => {
  const long = observation();
  lookFailed(long, 300_000, 0);
  lookFailed(long, 300_000, 300_000);
  assert.equal(long.unreadable!.waitMs, 300_000);
  const short = observation();
  lookFailed(short, 0, 0);
  assert.equal(short.unreadable!.waitMs, 1000);
});

Deno.test("lookAt: a file, gone (not found, not a directory on the way, no file), or an error that says neither", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-look-" });
  try {
    Deno.writeFileSync(join(dir, "a.fits"), new Uint8Array(5));
    Deno.symlinkSync("loop", join(dir, "loop"));
    assert.equal((lookAt(join(dir, "a.fits")) as Deno.FileInfo).size, 5);
    assert.equal(lookAt(join(dir, "none.fits")), "gone");
    assert.equal(lookAt(join(dir, "a.fits", "b.fits")), "gone");
    assert.equal(lookAt(dir), "gone");
    assert.ok(lookAt(join(dir, "loop", "b.fits")) instanceof Deno.errors.FilesystemLoop);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
