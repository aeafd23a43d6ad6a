/**
 * How many files of a job stand where: the one count the status page, `/api/status`, `/metrics`
 * and `status` read (through the job's snapshot), kept by the work queue at every transition
 * (`work_queue.ts`), never worked out again from the ledger or from events.
 *
 * Each file in motion counts once, in one category: its phase, or `failed` once its fast retries
 * are used up, whatever it does meanwhile (waits for its slow retry, is queued or sent again, or
 * is held while the destination is full or cannot be reached), until it arrives, changes, is
 * gone, or gets fresh retries from Retry.
 *
 * @module
 */
import type { AfterAttempt, Phase } from "./work_queue.ts";

/** Where a file in motion counts: its phase, or `failed` (fast retries used up). */
export type FileCategory = Phase | "failed";

const PHASES: readonly Phase[] = ["observing", "planning", "queued", "waiting", "sending"];

/** What a record is counted by. */
interface Counted {
  phase: Phase;
  failing?: boolean;
}

/**
 * Whether a record being sent is failing once its attempt ends as `next`: a failing file stays
 * failing (held by the destination, or its batch failed) until it arrives or leaves.
 */
export function failingAfter(record: Readonly<Counted>, next: AfterAttempt): boolean {
  if (next.to === "removed") return false;
  return (next.to === "waiting" && next.failing === true) || record.failing === true;
}

/** The counts of one work queue, by phase and by whether the file is failing. */
export class FileCounts {
  #plain = zeros();
  #failing = zeros();

  /** Count `record` as it is now (`by` -1: no longer as it was). */
  add(record: Counted, by = 1): void {
    (record.failing ? this.#failing : this.#plain)[record.phase] += by;
  }

  /** Stop counting `record` as it is now (before a change, or as it leaves). */
  remove(record: Counted): void {
    this.add(record, -1);
  }

  /** Records in `phase`, failing ones included. */
  phase(phase: Phase): number {
    return this.#plain[phase] + this.#failing[phase];
  }

  /** Every record once: by phase, failing ones only under `failed`. */
  byCategory(): Record<FileCategory, number> {
    const failed = PHASES.reduce((sum, phase) => sum + this.#failing[phase], 0);
    return { ...this.#plain, failed };
  }
}

function zeros(): Record<Phase, number> {
  return { observing: 0, planning: 0, queued: 0, waiting: 0, sending: 0 };
}
