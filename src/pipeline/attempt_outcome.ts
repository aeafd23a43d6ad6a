/**
 * What a failed attempt means for a file: a pure function from the error,
 * the file as it was sent and the file as it is now to the ledger update and
 * the next step.
 *
 * @module
 */
import { isDestinationFull, type TransferError } from "../errors.ts";
import { type FileVersion, sameVersion } from "../watch/file_version.ts";
import { retryDelayMs } from "./backoff.ts";

/** The retry settings of a job. */
export interface RetryPolicy {
  retry_attempts: number;
  retry_delay_seconds: number;
  retry_max_delay_seconds: number;
}

/** A failed attempt recorded in the ledger. */
export interface FailureRecord {
  error: string;
  attempts: number;
  nextAttemptAt: number;
  final: boolean;
}

/** What the ledger records. */
export type LedgerUpdate =
  /** Forget the file (its source is gone). */
  | { kind: "remove" }
  | { kind: "failure"; failure: FailureRecord };

/** What happens to the file next. */
export type NextStep =
  /** The source is gone: nothing to send. */
  | { kind: "drop" }
  /** The source changed: wait until it is complete again (not a failed attempt). */
  | { kind: "observe" }
  /** The destination is full: wait, with the whole job, until there is space (no attempt counted). */
  | { kind: "hold" }
  /** Try again at `nextAttemptAt`. */
  | { kind: "retry"; attempts: number; nextAttemptAt: number; delayMs: number }
  /** No more retries until the next rescan or start-up. */
  | { kind: "give-up"; attempts: number };

/** The meaning of one failed attempt. */
export interface AttemptOutcome {
  ledger: LedgerUpdate;
  next: NextStep;
}

/** Everything {@linkcode attemptOutcome} decides from. */
export interface FailedAttempt {
  error: TransferError;
  /** The version that was sent. */
  sent: FileVersion;
  /** Failed attempts before this one. */
  attempts: number;
  /** The source now, or `null` when it is gone. */
  current: FileVersion | null;
  policy: RetryPolicy;
  /** Whether a full destination pauses the job (not in a one-shot run, which must end). */
  pauseWhenFull: boolean;
  now: number;
  /** Randomness for the backoff jitter, in [0, 1). */
  random?: () => number;
}

/** Decide what a failed attempt means; see the module doc. */
export function attemptOutcome(attempt: FailedAttempt): AttemptOutcome {
  const { error, sent, current, policy } = attempt;
  if (current === null) return { ledger: { kind: "remove" }, next: { kind: "drop" } };
  const failure = (attempts: number, nextAttemptAt: number, final: boolean): LedgerUpdate => ({
    kind: "failure",
    failure: { error: error.message, attempts, nextAttemptAt, final },
  });
  if (!sameVersion(current, sent)) {
    return { ledger: failure(attempt.attempts, 0, false), next: { kind: "observe" } };
  }
  if (attempt.pauseWhenFull && isDestinationFull(error)) {
    return { ledger: failure(attempt.attempts, 0, false), next: { kind: "hold" } };
  }
  const attempts = attempt.attempts + 1;
  if (error.retryable && attempts <= policy.retry_attempts) {
    const delayMs = retryDelayMs(
      attempts,
      policy.retry_delay_seconds,
      policy.retry_max_delay_seconds,
      attempt.random,
    );
    const nextAttemptAt = attempt.now + delayMs;
    return {
      ledger: failure(attempts, nextAttemptAt, false),
      next: { kind: "retry", attempts, nextAttemptAt, delayMs },
    };
  }
  return { ledger: failure(attempts, 0, true), next: { kind: "give-up", attempts } };
}
