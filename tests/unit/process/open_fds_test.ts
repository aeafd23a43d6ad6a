/**
 * The descriptor counter behind `process_open_fds` follows files opened and
 * closed. (That it keeps counting in a daemon that gave up starting programs
 * is shown by `tests/e2e/status/monitoring_test.ts`.) Other tests run in this
 * process at the same time and open and close files too: the counts are
 * compared with a margin far below the files this test opens.
 */
import assert from "node:assert/strict";
import { OpenFdCounter } from "../../../src/process/open_fds.ts";

const OPENED = 200;
const MARGIN = 100;

Deno.test("OpenFdCounter: follows files opened and closed; each question gets its answer", async () => {
  const counter = OpenFdCounter.start();
  assert.ok(counter, "started on Linux");
  try {
    const before = await counter.count();
    assert.ok(before !== null && before >= 3, `${before}`);
    const files = Array.from({ length: OPENED }, () => Deno.openSync("/dev/null"));
    const opened = await counter.count();
    for (const file of files) file.close();
    const closed = await counter.count();
    assert.ok(opened !== null && opened >= before + OPENED - MARGIN, `${before} then ${opened}`);
    assert.ok(closed !== null && closed <= opened - OPENED + MARGIN, `${opened} then ${closed}`);
    // Asked at once, each question gets its own answer.
    const answers = await Promise.all([counter.count(), counter.count(), counter.count()]);
    assert.ok(answers.every((n) => n !== null && Math.abs(n - closed) < MARGIN), `${answers}`);
  } finally {
    counter.close();
  }
  assert.equal(await counter.count(), null, "closed: unknown");
});
