/**
 * What a failed attempt means for a file: a pure function from the error,
 * the file as it was sent and the file as it is now to the ledger update and
 * the next step (with the backoff of the next attempt); and how that is
 * said in the log.
 *
 * @module
 */
import {
  failureScope,
  isDestinationFull,
  ownFolderRefused,
  type TransferError,
} from "../errors.ts";
import { type FileVersion, sameVersion } from "../watch/file_version.ts";
import type { Logger } from "../log/logging.ts";
import type { FailureRecord } from "../ledger/file_rows.ts";
import { systemClock } from "./retry_timer.ts";
import type { AfterAttempt } from "./file_table.ts";

/**
 * Exponential backoff with jitter: `baseS * 2^(attempt-1)`, capped at `maxS`,
 * then scaled by a random factor in [0.8, 1.2] so many files failing together
 * do not retry in lockstep. The result never exceeds `maxS` (the longest wait
 * `retry_max_delay_seconds` promises).
 *
 * @param attempt the failed attempt just made (1 = the first failure)
 * @param random source of randomness in [0, 1) (for tests)
 * @returns the delay in milliseconds
 */
export function retryDelayMs(
  attempt: number,
  baseS: number,
  maxS: number,
  random: () => number = Math.random,
): number {
  const exponential = baseS * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(exponential, maxS);
  return Math.min(Math.round(capped * 1000 * (0.8 + 0.4 * random())), Math.round(maxS * 1000));
}

/** The retry settings of a job. */
export interface RetryPolicy {
  retry_attempts: number;
  retry_delay_seconds: number;
  retry_max_delay_seconds: number;
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
  /**
   * The source changed: wait until it is complete again (not a failed attempt). Or its watch
   * folder cannot be read (`watchProblem`: why; a share gone, or whose client died): the file is
   * kept under observation, no attempt counted, and goes once it can be read again.
   */
  | { kind: "observe"; watchProblem?: string }
  /**
   * The destination is full, or cannot be reached now (the host, the connection, a share that is
   * not mounted): wait, with the whole job, until it takes files again (no attempt counted).
   */
  | { kind: "hold" }
  /** Try again at `nextAttemptAt`. */
  | { kind: "retry"; attempts: number; nextAttemptAt: number; delayMs: number }
  /**
   * The fast retries are used up (or the error needs a fix first): the file
   * is failed, and tried again at `nextAttemptAt` (every
   * {@linkcode FailedAttempt.slowRetryMs}) until it arrives; `0`: not before
   * the next rescan or start-up (`run --once`). `first`: the file was not
   * failing before this attempt (its `on_failure` hook runs once).
   */
  | { kind: "give-up"; attempts: number; nextAttemptAt: number; first: boolean };

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
  /** Why the watch folder cannot be read now (then `current` is not known), else nothing. */
  watchProblem?: string | null;
  policy: RetryPolicy;
  /**
   * Whether a destination that cannot take files (full, or not reachable now) pauses the job
   * (not in a one-shot run, which must end).
   */
  pauseWhenUnavailable: boolean;
  now: number;
  /** Randomness for the backoff jitter, in [0, 1). */
  random?: () => number;
  /** The file had used up its fast retries before this attempt (it is failing). */
  failing?: boolean;
  /**
   * After the fast retries, try again this often until the file arrives
   * (see {@linkcode slowRetryMs}); 0 or missing: give up until the next
   * rescan or start-up (a one-shot run, which must end).
   */
  slowRetryMs?: number;
}

/** How often a failing file is tried again: every `retry_max_delay_seconds`, at least every second. */
export function slowRetryMs(policy: RetryPolicy): number {
  return Math.max(1, policy.retry_max_delay_seconds, policy.retry_delay_seconds) * 1000;
}

/** Decide what a failed attempt means; see the module doc. */
export function attemptOutcome(attempt: FailedAttempt): AttemptOutcome {
  const { error, sent, current, policy } = attempt;
  const failure = (attempts: number, nextAttemptAt: number, final: boolean): LedgerUpdate => ({
    kind: "failure",
    failure: { error: error.message, attempts, nextAttemptAt, final },
  });
  if (attempt.watchProblem) {
    const next = { kind: "observe", watchProblem: attempt.watchProblem } as const;
    return { ledger: failure(attempt.attempts, 0, false), next };
  }
  if (current === null) return { ledger: { kind: "remove" }, next: { kind: "drop" } };
  if (!sameVersion(current, sent)) {
    return { ledger: failure(attempt.attempts, 0, false), next: { kind: "observe" } };
  }
  if (attempt.pauseWhenUnavailable && holdsTheJob(error)) {
    return { ledger: failure(attempt.attempts, 0, false), next: { kind: "hold" } };
  }
  const attempts = attempt.attempts + 1;
  if (error.retryable && attempts <= policy.retry_attempts && !attempt.failing) {
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
  const slow = attempt.slowRetryMs ?? 0;
  const nextAttemptAt = slow > 0 ? attempt.now + slow : 0;
  return {
    ledger: failure(attempts, nextAttemptAt, true),
    next: { kind: "give-up", attempts, nextAttemptAt, first: !attempt.failing },
  };
}

/**
 * Whether `error` says the destination cannot take any file now, for a while: it is full, or the
 * host, the connection or the share it is on failed in a way that passes (not a refused login or
 * host key, which need a fix and fail each file as they would).
 */
export function holdsTheJob(error: TransferError): boolean {
  return isDestinationFull(error) || (error.retryable && failureScope(error) !== "file");
}

/**
 * Whether a destination folder the login may not write into (`remote_base_path`, where each file's
 * night folder is made) fails the whole destination or one file. It fails every file alike (the
 * job pauses, see `destination_pause.ts`) until a file arrives: that file's folder is there
 * (tonight's, made before), so a file whose folder cannot be made (a file of another night) fails
 * on its own, retrying with its backoff while the others go, as it does on every later try (a file
 * refused on its own counts attempts; a held one does not). A file not failing yet, refused with no
 * arrival since the last refusal, is the whole destination's again (a new night whose folder cannot
 * be made, say). So is any file whose folder files arrived in in this run: that folder went (moved
 * away, a share's folder gone), and an arrival before it went says nothing of the others. A file
 * tried again before any file arrived since the start (`run --once`, where nothing pauses) is its
 * own, said as a destination folder that takes no new folder, never as one files arrive in.
 */
export class BaseRefusals {
  /** A file arrived since the last refusal. */
  #took = false;
  /** A file arrived since the start (what a file's own refusal may say of the others). */
  #tookAny = false;
  /** The folders made in the destination folder (night folders) that files arrived in, this run. */
  #into = new Set<string>();
  /**
   * The batch and the refusal (what it says of the folders) last said as a file's own: the other
   * files of that batch refused alike were refused by the same folder, at the same time (one
   * refusal, a night of old files), and are their own too.
   */
  #lastOwn: { batch: object; refusal: string } | null = null;

  /** Files arrived at the destination, at `destinations` (relative to the destination folder). */
  arrived(destinations: Iterable<string> = []): void {
    this.#took = true;
    this.#tookAny = true;
    for (const destination of destinations) this.#into.add(folderOf(destination));
  }

  /**
   * `error`, failed by a file with `attempts` failed attempts before, in `batch` (the files sent
   * together), going to `destination` (relative to the destination folder), as it counts.
   */
  of(
    error: TransferError,
    attempts: number,
    batch: object = {},
    destination?: string,
  ): TransferError {
    const own = ownFolderRefused(error, this.#tookAny);
    if (own === null) return error;
    // Its folder took files in this run and cannot be made now: it went, the destination changed.
    if (destination !== undefined && this.#into.has(folderOf(destination))) {
      this.#took = false;
      return error;
    }
    const refusal = refusalWords(error);
    const last = this.#lastOwn;
    const sameRefusal = last !== null && last.batch === batch && last.refusal === refusal;
    const took = this.#took;
    this.#took = false;
    if (!took && !sameRefusal && attempts === 0) return error;
    if (took) this.#lastOwn = { batch, refusal };
    return own;
  }
}

/** The folder made in the destination folder for a file going to `destination` (its first part). */
function folderOf(destination: string): string {
  const slash = destination.indexOf("/");
  return slash < 0 ? "" : destination.slice(0, slash);
}

/** What a refusal says of the destination folder and the folder it refused, not of the file. */
function refusalWords({ message }: TransferError): string {
  return /may not write into the destination folder .*/s.exec(message)?.[0] ?? message;
}

/** Say what a failed attempt of `source` means, at the level it deserves. */
export function logFailure(
  log: Logger,
  job: RetryPolicy,
  source: string,
  error: TransferError,
  next: NextStep,
): void {
  switch (next.kind) {
    case "drop":
      log.info("Dropped {path}: it is gone from the watch folder", {
        path: source,
      });
      return;
    case "observe":
      if (next.watchProblem) {
        log.info(
          "{path} was not sent: its watch folder cannot be reached (a share unmounted, or its server or client gone?): {reason}; the file is kept, and sent once the folder can be read again",
          { path: source, reason: next.watchProblem },
        );
      } else {
        log.info("{path} changed while being sent; waiting until it is complete again", {
          path: source,
        });
      }
      return;
    case "hold":
      log.debug("{source} waits for the destination to take files again: {reason}", {
        source,
        reason: error.message,
      });
      return;
    case "retry": {
      const fields = {
        source,
        reason: error.message,
        attempt: next.attempts,
        of: job.retry_attempts,
        seconds: Math.round(next.delayMs / 100) / 10,
      };
      const message =
        "Attempt {attempt} of {source} failed: {reason}; retry {attempt}/{of} in {seconds} s";
      if (error.kind === "retry-later") log.error(message, fields);
      else log.warn(message, fields);
      return;
    }
    case "give-up": {
      const seconds = Math.round((next.nextAttemptAt - systemClock.now()) / 1000);
      const again = next.nextAttemptAt === 0
        ? "it is tried again at the next rescan or start-up"
        : `it is tried again every ${
          Math.round(slowRetryMs(job) / 1000)
        } s (retry_max_delay_seconds) until it arrives, or at once with Retry on the status page`;
      if (!next.first) {
        log.warn(
          "Attempt {attempt} of {source} failed: {reason}; still failing, next try in {seconds} s",
          { source, reason: error.message, attempt: next.attempts, seconds },
        );
        return;
      }
      const hint = error.retryable
        ? `gave up after ${next.attempts} attempt(s); ${again}`
        : `this needs a fix first; ${again}`;
      log.error("Failed to transfer {source}: {reason} ({hint})", {
        source,
        reason: error.message,
        hint,
      });
    }
  }
}

/** Where the file table puts a record after a failed attempt whose next step is `next`. */
export function afterAttempt(next: NextStep): AfterAttempt {
  if (next.kind === "retry") {
    return { to: "waiting", attempts: next.attempts, nextAttemptAt: next.nextAttemptAt };
  }
  if (next.kind === "give-up" && next.nextAttemptAt > 0) {
    return {
      to: "waiting",
      attempts: next.attempts,
      nextAttemptAt: next.nextAttemptAt,
      failing: true,
    };
  }
  return next.kind === "hold" ? { to: "queued" } : { to: "removed" };
}
