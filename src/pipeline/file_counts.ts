/**
 * How many files of a job stand where: the one count the status page, `/api/status`, `/metrics`
 * and `status` read (through the job's snapshot), kept by the work queue at every transition
 * (`work_queue.ts`), never worked out again from the ledger or from events.
 *
 * Each file in motion counts once, in one category: its phase, or `failed` once its fast retries
 * are used up, whatever it does meanwhile (waits for its slow retry, is queued or sent again, or
 * is held while the destination is full or cannot be reached), until it arrives, changes, is
 * gone, or gets fresh retries from Retry. A queued or waiting file that changed is `observing`
 * until the stability checker reports it complete again: it is not sent meanwhile, and it may
 * stay incomplete for as long as a FITS file's grace.
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
  recheck?: boolean;
}

/** Whether a queued or waiting record is held for the stability checker (a change was seen). */
function held(record: Readonly<Counted>): boolean {
  return record.recheck === true && (record.phase === "queued" || record.phase === "waiting");
}

/** Whether `record` is a file found complete that waits for the daemon (not failing, not held). */
export function waitsForDaemon(record: Readonly<Counted>): boolean {
  return record.phase !== "observing" && !record.failing && !held(record);
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
  /** Held for the stability checker (see {@linkcode held}), not failing. */
  #held = zeros();

  /** Count `record` as it is now (`by` -1: no longer as it was). */
  add(record: Counted, by = 1): void {
    const table = record.failing ? this.#failing : held(record) ? this.#held : this.#plain;
    table[record.phase] += by;
  }

  /** Stop counting `record` as it is now (before a change, or as it leaves). */
  remove(record: Counted): void {
    this.add(record, -1);
  }

  /** Records in `phase`, failing ones included. */
  phase(phase: Phase): number {
    return this.#plain[phase] + this.#failing[phase] + this.#held[phase];
  }

  /** Every record once: by phase, held ones under `observing`, failing ones only under `failed`. */
  byCategory(): Record<FileCategory, number> {
    const sum = (table: Record<Phase, number>) => PHASES.reduce((n, phase) => n + table[phase], 0);
    return {
      ...this.#plain,
      observing: this.#plain.observing + sum(this.#held),
      failed: sum(this.#failing),
    };
  }
}

function zeros(): Record<Phase, number> {
  return { observing: 0, planning: 0, queued: 0, waiting: 0, sending: 0 };
}
