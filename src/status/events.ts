/**
 * What the pipeline tells the status surface (page, API, metrics) while it
 * works: a transfer started, a file arrived, an attempt failed, a job was
 * paused or resumed. Listeners must be quick and must not throw into the
 * pipeline: {@linkcode StatusEvents.emit} swallows what they throw.
 *
 * @module
 */

/** A job's name and transfer method, as the status surface labels its figures. */
export interface JobLabels {
  job: string;
  method: string;
}

/**
 * The key a figure of `labels` is kept under in `keys` after `renamed` (see the `renamed`
 * event): the label set it goes on under now; `null` where a job renamed took over its name (it
 * is no longer the figure of a job that may come back); the same labels otherwise.
 */
export function renamedLabels(
  labels: JobLabels,
  renamed: ReadonlyArray<{ from: JobLabels; to: JobLabels }>,
  same: (a: JobLabels, b: JobLabels) => boolean,
): JobLabels | null {
  const moved = renamed.find(({ from }) => same(from, labels));
  if (moved) return moved.to;
  return renamed.some(({ to }) => same(to, labels)) ? null : labels;
}

/** What a job does beside sending that can fail: its hooks, its schedules, its clean-up. */
export type JobExtra = "hook" | "schedule" | "cleanup";

/** One thing that happened in a job. */
export type TransferEvent =
  | {
    type: "started";
    job: string;
    method: string;
    relPaths: string[];
    /** The batch is a paused job's probe: one file tried, to see whether its destination takes
     * files again. */
    probe: boolean;
    at: number;
  }
  | {
    type: "sent";
    job: string;
    method: string;
    relPath: string;
    destination: string;
    bytes: number;
    durationMs: number;
    at: number;
  }
  | {
    type: "failed";
    job: string;
    method: string;
    relPath: string;
    /** `retry`, `retry-later`, `fatal`, ...: the transport's error class. */
    errorClass: string;
    reason: string;
    /** No more retries until a rescan, a start-up or a retry from the page. */
    final: boolean;
    /** The file was tried; `false`: refused before it was sent (no room at the destination). */
    attempted: boolean;
    at: number;
  }
  | { type: "job"; job: string; at: number }
  /** A hook, a schedule's action or a source's clean-up of the job failed (each is logged). */
  | { type: "extraFailed"; job: string; method: string; extra: JobExtra; at: number }
  /**
   * A reload swapped runners: each job of `renamed` (`from` its name and method before) goes on
   * under another name or method (`to`), as its figures and its ledger's rows do (`formerJob`).
   */
  | {
    type: "renamed";
    renamed: Array<{ from: JobLabels; to: JobLabels }>;
    at: number;
  }
  /** The daemon's own state changed: a reload was refused, or one was taken after that. */
  | { type: "daemon"; at: number };

/** A small synchronous event bus the daemon shares with its job runners. */
export class StatusEvents {
  #listeners = new Set<(event: TransferEvent) => void>();

  /** Call `listener` for every event; returns the function that stops it. */
  listen(listener: (event: TransferEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tell every listener; a listener that throws does not stop the pipeline. */
  emit(event: TransferEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // The status surface must never break a transfer.
      }
    }
  }
}
