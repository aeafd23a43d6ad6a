/**
 * The files of one job the ledger could not record (its disk full, say), kept by the file table
 * until it can: files found complete (known, not taken for new by a scan; looked at again once the
 * ledger can be written) and files that arrived at the destination (their records stay `sending`
 * until their arrival is recorded). Both count as `unrecorded`, never as being sent: a restart
 * finds the arrived ones at the destination and records them, not sending them again.
 *
 * @module
 */
import type { PendingFile } from "../ledger/file_rows.ts";
import type { FileCategory } from "./file_counts.ts";

/** The files the ledger could not record; see the module doc. */
export class UnrecordedFiles {
  /** Found complete, by relative path: the plan that could not be recorded. */
  readonly found = new Map<string, PendingFile>();
  /** Arrived at the destination, by relative path. */
  readonly arrived = new Set<string>();

  /** How many there are (the `unrecorded` count). */
  get size(): number {
    return this.found.size + this.arrived.size;
  }

  /**
   * The counts of the files in motion (`counts`), the arrived ones taken out of the category their
   * records are counted in (`sending`, or `failed` where `failing` says their file used up its fast
   * retries), with the `unrecorded` count.
   */
  counted<T extends Record<FileCategory, number>>(
    counts: T,
    failing: (relPath: string) => boolean,
  ): T & { unrecorded: number } {
    const out = { ...counts };
    for (const relPath of this.arrived) out[failing(relPath) ? "failed" : "sending"]--;
    return { ...out, unrecorded: this.size };
  }

  /** The found ones, forgotten here (the ledger can be written again). */
  takeFound(): PendingFile[] {
    const found = [...this.found.values()];
    this.found.clear();
    return found;
  }
}
