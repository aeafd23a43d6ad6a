/**
 * The in-memory half of the job's file table (`file_table.ts`, its only
 * user): every file that was seen and is not done yet, as ONE record per
 * relative path with one phase.
 *
 * ```
 *            touch              ready                planned                takeBatch
 *   (none) -----> observing -----> planning -------------> queued -------------> sending
 *                    |                                    ^   | ^                  |
 *           gone / left: removed        retry is due      |   | +-- held (destination full)
 *                                                         |   v                    |
 *                                                        waiting <---- retry ------+
 *                          done / dropped / changed / given up: record removed
 * ```
 *
 * A file under observation (not complete yet) carries the stability
 * checker's {@linkcode Observation}; the checker keeps it there (through
 * {@linkcode WorkQueue.observations}) and nowhere else. A file seen for the
 * first time is `observing`; the checker's verdict removes the observation
 * (and an `observing` record with it) and, when complete, plans it.
 *
 * A change seen for a file that has a record in a later phase sets its
 * `recheck` flag: the checker observes the file again (at once for queued and
 * waiting records, which then carry an observation too, when the phase ends
 * for planning and sending ones), and the record is not sent until the
 * checker reports the file complete again ({@linkcode WorkQueue.ready}): the
 * same version keeps its place and its backoff, a new version is planned
 * again.
 *
 * One timer covers every waiting record: it is always armed for the
 * earliest retry, and moves every record whose time has come to `queued`.
 * A `failing` record (its quick retries used up) waits for its slow retry (every
 * `retry_max_delay_seconds`), a rescan, or the user's Retry; it counts as failed in every phase
 * (the counts every report reads are kept here: `file_counts.ts`).
 *
 * No I/O here: the file table writes the ledger's row before each transition
 * (an `observing` record has no row).
 *
 * @module
 */
import type { Observation, ObservationStore } from "../watch/stability.ts";
import { type FileVersion, sameVersion } from "../watch/file_version.ts";
import { type Clock, RetryTimer, systemClock } from "./retry_timer.ts";
import { failingAfter, type FileCategory, FileCounts, waitsForDaemon } from "./file_counts.ts";

/** Where a file with a record stands. */
export type Phase = "observing" | "planning" | "queued" | "waiting" | "sending";

/** One file in motion. */
export interface WorkRecord {
  /** Path relative to the watch folder, `/` separators. */
  readonly relPath: string;
  phase: Phase;
  /** The version that was found complete (and is being sent); size -1 while `observing`. */
  version: FileVersion;
  /** Destination relative to the job's base path; `""` while planning. */
  destination: string;
  /** Failed attempts so far. */
  attempts: number;
  /** Earliest start of the next attempt (ms since epoch); 0 = now. */
  nextAttemptAt: number;
  /** A change was seen: not sent until the stability checker reports again. */
  recheck: boolean;
  /** When the record was made (ms since epoch): the file waits since then. */
  readonly foundAt: number;
  /** Fast retries used up: failed, it waits for its slow retry or the user's Retry. */
  failing?: boolean;
  /** When its current attempt started (ms since epoch), while `sending`. */
  sendingSince?: number;
  /** Which take this attempt is (each batch's take counts up): an attempt settles only its own. */
  take?: number;
  /** The stability checker's observation, while the file is under observation. */
  observation?: Observation;
  /** Its new name, while the checker looks whether the rename the watcher told took it away. */
  renamedTo?: string;
}

/** What to do after {@linkcode WorkQueue.ready}. */
export type ReadyDecision =
  /** A new record (or a new version) is planning: plan its destination. */
  | "plan"
  /** The record keeps its place (same version). */
  | "keep"
  /** Nothing to do: the file is done as it is. */
  | "skip"
  /** The record is busy; the checker looks again when its phase ends. */
  | "later";

/** Where an attempt's record goes next. */
export type AfterAttempt =
  | { to: "removed" }
  | { to: "waiting"; attempts: number; nextAttemptAt: number; failing?: boolean }
  /** Back in line without counting an attempt (the job waits for space). */
  | { to: "queued" };

/** The work queue; see the module doc. */
export class WorkQueue {
  /** Takes so far (see {@linkcode WorkRecord.take}). */
  #takes = 0;
  #records = new Map<string, WorkRecord>();
  /** Index: queued records without `recheck`, in arrival order (sendable now). */
  #sendable = new Set<string>();
  /** Index: records being sent, oldest attempt first. */
  #sending = new Set<string>();
  /** The one timer over the waiting records' retry times. */
  #timer: RetryTimer;
  #counts = new FileCounts();
  /** Records that carry an observation (every phase). */
  #observed = 0;
  #clock: Clock;
  #onDue: (relPaths: string[]) => void;

  /** @param onDue called with the records that moved from waiting to queued */
  constructor(onDue: (relPaths: string[]) => void, clock: Clock = systemClock) {
    this.#onDue = onDue;
    this.#clock = clock;
    this.#timer = new RetryTimer(
      (relPath, at) => {
        const record = this.#records.get(relPath);
        return record?.phase === "waiting" && record.nextAttemptAt === at;
      },
      () => {
        // promoteDue re-arms, whatever the callback does afterwards.
        const promoted = this.promoteDue();
        if (promoted.length > 0) this.#onDue(promoted);
      },
      clock,
    );
  }

  /** Number of records (all phases). */
  get size(): number {
    return this.#records.size;
  }

  /** Number of records in `phase` (failing ones included). */
  count(phase: Phase): number {
    return this.#counts.phase(phase);
  }

  /** Every record once, by category (see `file_counts.ts`): what every report shows. */
  counts(): Record<FileCategory, number> {
    return this.#counts.byCategory();
  }

  /**
   * Since when the longest-waiting file found complete waits (ms since epoch), or `null`: records
   * are kept in that order. Files not complete yet (changed ones too), and failing ones (counted as
   * failed), are not waiting for the daemon.
   */
  get oldestFoundAt(): number | null {
    for (const record of this.#records.values()) {
      if (waitsForDaemon(record)) return record.foundAt;
    }
    return null;
  }

  /**
   * The stability checker's observations, by relative path, kept in the
   * records (see the module doc): setting one for a file without a record
   * makes an `observing` record; deleting it removes an `observing` record.
   */
  readonly observations: ObservationStore = {
    get: (relPath: string): Observation | undefined => this.#records.get(relPath)?.observation,
    set: (relPath: string, observation: Observation): void => {
      const record = this.#records.get(relPath);
      if (record === undefined) {
        this.#insertNew(relPath, "observing", { size: -1, mtimeMs: -1 }, observation);
        this.#observed++;
        return;
      }
      if (record.observation === undefined) this.#observed++;
      record.observation = observation;
    },
    delete: (relPath: string): void => {
      const record = this.#records.get(relPath);
      if (record?.observation === undefined) return;
      record.observation = undefined;
      this.#observed--;
      if (record.phase === "observing") this.#delete(record);
    },
    values: (): Observation[] => {
      const all: Observation[] = [];
      if (this.#observed === 0) return all;
      for (const record of this.#records.values()) {
        if (record.observation) all.push(record.observation);
      }
      return all;
    },
    clear: (): void => {
      for (const record of [...this.#records.values()]) this.observations.delete(record.relPath);
    },
  };

  /** The records being sent, oldest attempt first. */
  sending(): Array<Readonly<WorkRecord>> {
    return [...this.#sending].map((relPath) => this.#records.get(relPath)!);
  }

  /** Whether any record is sendable now. */
  get hasSendable(): boolean {
    return this.#sendable.size > 0;
  }

  /** The size of the smallest sendable record (`Infinity` with none). */
  get smallestSendable(): number {
    let least = Infinity;
    for (const path of this.#sendable) {
      least = Math.min(least, this.#records.get(path)!.version.size);
    }
    return least;
  }

  /** The record of `relPath`, if any (read only: change it through transitions). */
  get(relPath: string): Readonly<WorkRecord> | undefined {
    return this.#records.get(relPath);
  }

  /** When the retry timer fires next (ms since epoch), or `Infinity`. */
  get timerAt(): number {
    return this.#timer.armedAt;
  }

  /**
   * Activity (an event, a scan) for `relPath`. Returns whether the stability
   * checker should observe the file now; a busy record remembers it instead.
   */
  activity(relPath: string): boolean {
    const record = this.#records.get(relPath);
    if (!record || record.phase === "observing") return true;
    this.#update(record, () => record.recheck = true);
    return record.phase === "queued" || record.phase === "waiting";
  }

  /** The checker reports `relPath` complete at `version`; `done`: the ledger has it done as is. */
  ready(relPath: string, version: FileVersion, done: boolean): ReadyDecision {
    let record = this.#records.get(relPath);
    // Reported complete while observed again (a touch after the verdict): the verdict stands.
    if (record?.phase === "observing") {
      this.observations.delete(relPath);
      record = undefined;
    }
    if (!record) {
      if (done) return "skip";
      this.#insertNew(relPath, "planning", version);
      return "plan";
    }
    if (record.phase === "planning" || record.phase === "sending") {
      this.#update(record, () => record.recheck = true);
      return "later";
    }
    if (sameVersion(record.version, version)) {
      this.#update(record, () => {
        record.recheck = false;
        // A rescan (or a touch) tries a failing file now, not at its slow retry.
        if (record.phase === "waiting" && record.failing) {
          record.phase = "queued";
          record.nextAttemptAt = 0;
        }
      });
      return "keep";
    }
    this.#update(record, () => {
      Object.assign(record, {
        phase: "planning",
        version,
        attempts: 0,
        nextAttemptAt: 0,
        failing: false,
      });
      record.recheck = false;
    });
    return "plan";
  }

  /**
   * The destination of a planning record is known (and the ledger has it pending). Returns whether
   * the checker should observe the file now (a change was seen while planning), or `"stale"` when
   * the record is no longer planning this version.
   */
  planned(
    relPath: string,
    version: FileVersion,
    plan: { destination: string; attempts: number; nextAttemptAt: number },
  ): "observe" | "queued" | "stale" {
    const record = this.#records.get(relPath);
    if (record?.phase !== "planning" || !sameVersion(record.version, version)) return "stale";
    this.#update(record, () => {
      Object.assign(record, plan);
      record.phase = plan.nextAttemptAt > this.#clock.now() ? "waiting" : "queued";
    });
    return record.recheck ? "observe" : "queued";
  }

  /**
   * Add a file resumed from the ledger (complete, destination known), queued or waiting for its
   * retry time, waiting since `since` (when the ledger recorded it; resume the longest waiting
   * first). Ignored when it has a record.
   */
  resume(record: Omit<WorkRecord, "phase" | "recheck" | "foundAt">, since = Infinity): void {
    if (this.#records.has(record.relPath)) return;
    const now = this.#clock.now();
    const phase = record.nextAttemptAt > now ? "waiting" : "queued";
    this.#insert({ ...record, phase, recheck: false, foundAt: Math.min(since, now) });
  }

  /**
   * Take up to `max` sendable records, in arrival order (`smallestFirst`: the
   * smallest first), holding no more than `maxBytes` in all unless the first
   * alone does; they are `sending` now.
   */
  takeBatch(max: number, maxBytes = Infinity, smallestFirst = false): WorkRecord[] {
    const batch: WorkRecord[] = [];
    let bytes = 0;
    const size = (path: string) => this.#records.get(path)!.version.size;
    const inOrder = smallestFirst
      ? [...this.#sendable].sort((a, b) => size(a) - size(b))
      : this.#sendable;
    for (const relPath of inOrder) {
      const record = this.#records.get(relPath)!;
      if (batch.length >= max) break;
      // The first file goes whatever its size; the others while the batch stays within maxBytes.
      if (batch.length > 0 && bytes + record.version.size > maxBytes) break;
      bytes += record.version.size;
      this.#update(record, () => {
        record.phase = "sending";
        record.sendingSince = this.#clock.now();
        record.take = ++this.#takes;
      });
      batch.push(record);
    }
    return batch;
  }

  /**
   * An attempt of a `sending` record ended. Returns whether the checker
   * should observe the file now (a change was seen while it was sent).
   */
  finish(relPath: string, next: AfterAttempt): boolean {
    const record = this.#records.get(relPath);
    if (record?.phase !== "sending") return false;
    if (next.to === "removed") {
      this.#delete(record);
      return record.recheck;
    }
    this.#update(record, () => {
      if (next.to === "queued") {
        record.phase = "queued";
        record.nextAttemptAt = 0;
      } else {
        record.attempts = next.attempts;
        record.nextAttemptAt = next.nextAttemptAt;
        record.failing = failingAfter(record, next);
        record.phase = next.nextAttemptAt > this.#clock.now() ? "waiting" : "queued";
      }
    });
    return record.recheck;
  }

  /**
   * Queue failing files (one, or all) waiting for their slow retry. The user's Retry (`fresh`)
   * gives fresh fast retries (to failing files queued already, too); a rescan or the
   * destination's return tries them as their slow retry would, still failing, so they are not
   * said to give up again. Returns those queued or given fresh retries.
   */
  retryNow(relPath?: string, fresh = true): string[] {
    const moved: string[] = [];
    for (const record of this.#records.values()) {
      const takes = record.phase === "waiting" || (fresh && record.phase === "queued");
      if (!takes || !record.failing) continue;
      if (relPath !== undefined && record.relPath !== relPath) continue;
      this.#update(record, () => {
        Object.assign(record, { phase: "queued", nextAttemptAt: 0 });
        if (fresh) Object.assign(record, { attempts: 0, failing: false });
      });
      moved.push(record.relPath);
    }
    return moved;
  }

  /** Note the new name the watcher told `relPath` renamed to on its record (none: forget it). */
  renamed(relPath: string, to?: string): void {
    const record = this.#records.get(relPath);
    if (record) record.renamedTo = to;
  }

  /** Forget `relPath` (gone, failed to plan). Returns whether it had a record. */
  remove(relPath: string): boolean {
    const record = this.#records.get(relPath);
    if (record) this.#delete(record);
    return record !== undefined;
  }

  /** Move the waiting records whose time has come to `queued`; re-arm the timer. Any time. */
  promoteDue(): string[] {
    const promoted = this.#timer.takeDue();
    for (const relPath of promoted) {
      const record = this.#records.get(relPath)!;
      this.#update(record, () => record.phase = "queued");
    }
    this.#timer.arm();
    return promoted;
  }

  /** Stop the timer; nothing is reported afterwards. */
  close(): void {
    this.#timer.close();
  }

  /** Insert a record of `relPath` seen for the first time now (no destination, no attempt yet). */
  #insertNew(relPath: string, phase: Phase, version: FileVersion, observation?: Observation): void {
    const unsent = { destination: "", attempts: 0, nextAttemptAt: 0, recheck: false };
    const record: WorkRecord = { relPath, phase, version, ...unsent, foundAt: this.#clock.now() };
    if (observation) record.observation = observation;
    this.#insert(record);
  }

  #insert(record: WorkRecord): void {
    this.#records.set(record.relPath, record);
    this.#counts.add(record);
    this.#index(record);
  }

  #delete(record: WorkRecord): void {
    if (record.observation !== undefined) this.#observed--;
    this.#records.delete(record.relPath);
    this.#counts.remove(record);
    this.#sendable.delete(record.relPath);
    this.#sending.delete(record.relPath);
  }

  /** Apply `change` to `record` and keep the counts and indexes in step: every transition goes here. */
  #update(record: WorkRecord, change: () => void): void {
    this.#counts.remove(record);
    change();
    this.#counts.add(record);
    this.#sendable.delete(record.relPath);
    if (record.phase !== "sending") this.#sending.delete(record.relPath);
    this.#index(record);
  }

  #index(record: WorkRecord): void {
    if (record.phase === "queued" && !record.recheck) this.#sendable.add(record.relPath);
    if (record.phase === "sending") this.#sending.add(record.relPath);
    if (record.phase === "waiting") this.#timer.add(record.relPath, record.nextAttemptAt);
  }
}
