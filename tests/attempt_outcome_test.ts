/**
 * What a failed attempt means: ledger update and next step, decided from the
 * error, the file as sent and the file as it is now.
 */
import assert from "node:assert/strict";
import { TransferError } from "../src/errors.ts";
import { attemptOutcome, type FailedAttempt } from "../src/pipeline/attempt_outcome.ts";

const SENT = { size: 1000, mtimeMs: 42_000 };
const POLICY = { retry_attempts: 3, retry_delay: 5, retry_max_delay_seconds: 300 };
const NOW = 1_700_000_000_000;

function attempt(overrides: Partial<FailedAttempt> = {}): FailedAttempt {
  return {
    error: new TransferError("Cannot send a.fits: connection reset", "retry"),
    sent: SENT,
    attempts: 0,
    current: SENT,
    policy: POLICY,
    now: NOW,
    random: () => 0.5,
    ...overrides,
  };
}

Deno.test("attemptOutcome: a source that is gone is forgotten", () => {
  assert.deepEqual(attemptOutcome(attempt({ current: null })), {
    ledger: { kind: "remove" },
    next: { kind: "drop" },
  });
});

Deno.test("attemptOutcome: a source that changed waits to be complete again; no attempt counted", () => {
  const outcome = attemptOutcome(attempt({ attempts: 2, current: { ...SENT, size: 1500 } }));
  assert.deepEqual(outcome.next, { kind: "observe" });
  assert.deepEqual(outcome.ledger, {
    kind: "failure",
    failure: {
      error: "Cannot send a.fits: connection reset",
      attempts: 2,
      nextAttemptAt: 0,
      final: false,
    },
  });
});

Deno.test("attemptOutcome: a retryable failure waits with backoff, then gives up after retry_attempts", () => {
  const first = attemptOutcome(attempt());
  assert.deepEqual(first.next, {
    kind: "retry",
    attempts: 1,
    nextAttemptAt: NOW + 5000,
    delayMs: 5000,
  });
  assert.equal(first.ledger.kind === "failure" && first.ledger.failure.nextAttemptAt, NOW + 5000);
  const third = attemptOutcome(attempt({ attempts: 2 }));
  assert.equal(third.next.kind === "retry" && third.next.delayMs, 20_000);
  const last = attemptOutcome(attempt({ attempts: 3 }));
  assert.deepEqual(last.next, { kind: "give-up", attempts: 4 });
  assert.equal(last.ledger.kind === "failure" && last.ledger.failure.final, true);
});

Deno.test("attemptOutcome: a fatal error gives up at once", () => {
  const error = new TransferError("Cannot send: authentication was refused", "fatal");
  const outcome = attemptOutcome(attempt({ error }));
  assert.deepEqual(outcome.next, { kind: "give-up", attempts: 1 });
  assert.deepEqual(outcome.ledger, {
    kind: "failure",
    failure: { error: error.message, attempts: 1, nextAttemptAt: 0, final: true },
  });
});
