/**
 * Retry delays: exponential from `retry_delay_seconds`, capped at
 * `retry_max_delay_seconds`, with ±20 % jitter.
 */
import assert from "node:assert/strict";
import { retryDelayMs } from "../../../src/pipeline/backoff.ts";

const MIDDLE = () => 0.5; // jitter factor exactly 1.0

Deno.test("retryDelayMs: doubles with each attempt from the base delay", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((attempt) => retryDelayMs(attempt, 5, 10_000, MIDDLE)),
    [5_000, 10_000, 20_000, 40_000, 80_000],
  );
});

Deno.test("retryDelayMs: never exceeds the cap", () => {
  assert.equal(retryDelayMs(4, 5, 30, MIDDLE), 30_000);
  assert.equal(retryDelayMs(100, 5, 300, MIDDLE), 300_000);
  // A huge attempt number must not overflow into Infinity or NaN.
  assert.equal(retryDelayMs(5000, 5, 300, MIDDLE), 300_000);
});

Deno.test("retryDelayMs: attempt 0 or below counts as the first failure", () => {
  assert.equal(retryDelayMs(0, 2, 60, MIDDLE), 2_000);
  assert.equal(retryDelayMs(-3, 2, 60, MIDDLE), 2_000);
});

Deno.test("retryDelayMs: jitter stays within ±20 %", () => {
  assert.equal(retryDelayMs(1, 10, 300, () => 0), 8_000);
  assert.equal(retryDelayMs(1, 10, 300, () => 0.999999), 12_000);
  assert.equal(retryDelayMs(3, 10, 300, () => 0.25), 36_000);
  // A capped delay still varies downwards, but never waits longer than the cap.
  assert.equal(retryDelayMs(20, 10, 300, () => 0), 240_000);
  assert.equal(retryDelayMs(20, 10, 300, () => 0.999999), 300_000);
  assert.equal(retryDelayMs(5, 10, 100, () => 0.999999), 100_000);
  for (let i = 0; i < 1000; i++) {
    const delay = retryDelayMs(2, 1.5, 300);
    assert.ok(delay >= 2_400 && delay <= 3_600, `delay ${delay} outside ±20 % of 3000`);
    const capped = retryDelayMs(30, 1.5, 60);
    assert.ok(capped >= 48_000 && capped <= 60_000, `capped delay ${capped} outside [48 s, 60 s]`);
  }
});

Deno.test("retryDelayMs: sub-second and zero delays", () => {
  assert.equal(retryDelayMs(1, 0.05, 300, MIDDLE), 50);
  assert.equal(retryDelayMs(3, 0.05, 300, MIDDLE), 200);
  assert.equal(retryDelayMs(3, 0, 300, () => 0.9), 0);
  assert.equal(retryDelayMs(3, 5, 0, () => 0.9), 0);
});
