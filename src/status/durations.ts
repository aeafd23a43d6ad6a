/**
 * How long the latest transfers of this run took, for the status page's
 * recent transfers (the ledger keeps when a file arrived, not how long it
 * took). Only the latest {@linkcode KEPT_DURATIONS} are kept, in memory.
 *
 * @module
 */
import type { TransferEvent } from "./events.ts";

/** How many transfer durations are remembered. */
export const KEPT_DURATIONS = 1000;

/** The durations of the latest transfers, by job and relative path. */
export class RecentDurations {
  #byFile = new Map<string, number>();

  /** Remember the duration of a `sent` event (others are ignored). */
  record(event: TransferEvent): void {
    if (event.type !== "sent") return;
    const key = `${event.job}\0${event.relPath}`;
    this.#byFile.delete(key);
    this.#byFile.set(key, event.durationMs);
    if (this.#byFile.size > KEPT_DURATIONS) {
      this.#byFile.delete(this.#byFile.keys().next().value!);
    }
  }

  /** Milliseconds the last transfer of `relPath` took, if it was sent in this run. */
  get(job: string, relPath: string): number | null {
    return this.#byFile.get(`${job}\0${relPath}`) ?? null;
  }
}
