/**
 * The file table of one job: the one owner of every file's state, from the moment a file is seen
 * until it is done. It has two halves and keeps them in step itself; no other code writes either:
 * - **on disk**, the ledger's rows of this job and destination (`ledger/file_rows.ts`): size,
 *   mtime, destination, `pending`/`transferring`/`done`/`failed`, attempts, next try, last error;
 * - **in memory**, an index of the files in motion (`work_queue.ts`): one record per file with its
 *   phase (observing, planning, queued, waiting, sending), attempts and next attempt on the
 *   monotonic clock, the stability checker's observation while the file is not complete yet
 *   ({@linkcode FileTable.observations}), the one retry timer, and the one count of the files
 *   every report reads ({@linkcode FileTable.counts}: a file that used up its fast retries counts
 *   as failed, and its row stays `failed`, until it arrives, changes or goes, or Retry restarts).
 *
 * Every transition writes the row first and then moves the record. A row that cannot be written
 * ({@linkcode LedgerWriteError}: the ledger's problem state says why, once) leaves the record where
 * the job can take it up again when the ledger can be written: a file found complete is remembered
 * as found (and looked at again), a batch stays queued, arrivals stay `sending` (counted
 * `unrecorded`: they arrived) until {@linkcode FileTable.arrived} succeeds. Whether a file is done is asked of the rows, by key, never
 * copied into memory. At start the table takes over what the last run left through its own
 * start-up code (`ledger_takeover.ts`).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import {
  type FailureRecord,
  FileRows,
  type PendingFile,
  writeIfWritable,
} from "../ledger/file_rows.ts";
import { destinationIdentity } from "../ledger/destination_identity.ts";
import { type DueHook, DueHooks } from "../ledger/due_hooks.ts";
import { type Ledger, LedgerWriteError } from "../ledger/ledger.ts";
import { logger } from "../log/logging.ts";
import type { QueuePhase } from "../status/job_status.ts";
import type { FileFilter } from "../watch/file_filter.ts";
import type { Activity, ObservationStore } from "../watch/stability.ts";
import { absolutePath, type FileVersion, sameVersion, statVersion } from "../watch/file_version.ts";
import { type Clock, onWallClock, systemClock } from "./retry_timer.ts";
import { failingAfter } from "./file_counts.ts";
import { type LeftByLastRun, resumeUnfinished, takeOverLedger } from "./ledger_takeover.ts";
import { InterruptedAttempts } from "./ledger_takeover.ts";
import { UnconfirmedCopies } from "../ledger/unconfirmed_copies.ts";
import { UnrecordedFiles } from "./unrecorded_files.ts";
import {
  type AfterAttempt,
  type Phase,
  type ReadyDecision,
  WorkQueue,
  type WorkRecord,
} from "./work_queue.ts";

export type { AfterAttempt, Phase, ReadyDecision, WorkRecord } from "./work_queue.ts";
export type { LeftByLastRun } from "./ledger_takeover.ts";

/** What a {@linkcode FileTable} works with. */
export interface FileTableOptions {
  job: JobConfig;
  ledger: Ledger;
  /** The job's filter: an unfinished row that no longer matches is dropped at start. */
  filter: FileFilter;
  /** Have the stability checker observe the file at `path` (again); `found`: as it was left. */
  observe(path: string, activity?: Activity): void;
  /** Retries whose time has come (recorded due already). */
  onDue(relPaths: string[]): void;
  clock?: Clock;
}

/** What became of a file whose destination is known (see {@linkcode FileTable.plannedAll}). */
export type PlannedDecision = "observe" | "queued" | "stale" | "unrecorded";

/** The file table of one job; see the module doc. */
export class FileTable {
  /** The ledger's rows of this job and destination (reports read them; only the table writes). */
  readonly rows: FileRows;
  #job: JobConfig;
  #filter: FileFilter;
  #observe: (path: string, activity?: Activity) => void;
  #index: WorkQueue;
  /** Files found complete, or arrived, while the ledger could not record them. */
  #unrecorded = new UnrecordedFiles();
  #clock: Clock;

  constructor(options: FileTableOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#job = options.job;
    this.#filter = options.filter;
    this.#observe = options.observe;
    this.rows = new FileRows(options.ledger, options.job.name, destinationIdentity(options.job));
    this.interrupted = new InterruptedAttempts(new UnconfirmedCopies(this.rows));
    const index = this.#index = new WorkQueue((due) => {
      this.#recordDue(due);
      options.onDue(due);
    }, this.#clock);
    this.observations = index.observations;
  }

  /** The ledger under the rows. */
  get ledger(): Ledger {
    return this.rows.ledger;
  }

  /** The identity of the destination (part of each row's key). */
  get target(): string {
    return this.rows.target;
  }

  /** The record of a file in motion (read only). */
  record(relPath: string): Readonly<WorkRecord> | undefined {
    return this.#index.get(relPath);
  }

  /** Files in motion (every phase, `observing` included). */
  get inMotion(): number {
    return this.#index.size;
  }

  /** Where the stability checker keeps its observations, by relative path: in the records. */
  readonly observations: ObservationStore;

  /** Files whose last attempt ended unrecorded: looked for at the destination first. */
  readonly interrupted: InterruptedAttempts;

  /** Files in motion in `phase`. */
  count(phase: Phase): number {
    return this.#index.count(phase);
  }

  /**
   * Every file not arrived yet, counted once (see `file_counts.ts`), and those found complete
   * while the ledger could not be written: the count every report reads.
   */
  counts(): Record<QueuePhase, number> {
    // Arrived, waiting for the ledger: not being sent (a restart finds them at the destination).
    return this.#unrecorded.counted(this.#index.counts(), (rel) => !!this.#index.get(rel)?.failing);
  }

  /**
   * A time of the table's clock (ms since epoch, as a record holds it) as the wall clock reads it
   * now: what the page, the metrics and the ledger compare with `Date.now()`.
   */
  wallTime(ms: number): number {
    return onWallClock(ms, this.#clock);
  }

  /** Since when (ms since epoch, wall clock) the longest-waiting file in motion waits, or `null`. */
  get oldestFoundAt(): number | null {
    const at = this.#index.oldestFoundAt;
    return at === null ? null : this.wallTime(at);
  }

  /** The files being sent, oldest attempt first (what the status page shows in flight). */
  inFlight(): Array<{ relPath: string; bytes: number; startedAt: number }> {
    const sending = this.#index.sending().filter((r) => !this.#unrecorded.arrived.has(r.relPath));
    return sending.map((record) => ({
      relPath: record.relPath,
      bytes: record.version.size,
      startedAt: this.wallTime(record.sendingSince ?? 0),
    }));
  }

  /** Whether a file can be sent now. */
  get hasSendable(): boolean {
    return this.#index.hasSendable;
  }

  /** The size of the smallest file that can be sent now (`Infinity` with none). */
  get smallestSendable(): number {
    return this.#index.smallestSendable;
  }

  /** Whether the table holds `relPath` in motion, or found it while it could not record it. */
  holds(relPath: string): boolean {
    return this.#index.get(relPath) !== undefined || this.#unrecorded.found.has(relPath);
  }

  /** Activity (an event, a scan): whether the checker should observe the file now. */
  activity(relPath: string): boolean {
    return this.#index.activity(relPath);
  }

  /** Note on the record of `relPath` the new name the watcher told (`to`; none: forget it). */
  renamed(relPath: string, to?: string): void {
    this.#index.renamed(relPath, to);
  }

  /** The checker reports `relPath` complete at `version`. */
  ready(relPath: string, version: FileVersion): ReadyDecision {
    const done = this.rows.doneVersion(relPath);
    return this.#index.ready(relPath, version, done !== undefined && sameVersion(done, version));
  }

  /**
   * The destinations of planning files (size and mtime: the version planned) are known, a burst's
   * together: their rows are recorded `pending` in one transaction, all or none, and the files
   * queued. Per file, `"observe"`: a change was seen meanwhile (have the checker look); `"stale"`:
   * no longer planning this version; `"unrecorded"`: the ledger cannot record it now (looked at
   * again when it can).
   */
  plannedAll(plans: PendingFile[]): PlannedDecision[] {
    const current = plans.filter((plan) => {
      const record = this.#index.get(plan.relPath);
      return record?.phase === "planning" && sameVersion(record.version, plan);
    });
    const recording = new Map(current.map((plan, i) => [plan, i]));
    let attempts: number[] = [];
    try {
      if (current.length > 0) attempts = this.rows.enqueueAll(current);
    } catch (error) {
      if (!(error instanceof LedgerWriteError)) throw error;
      for (const plan of current) {
        this.#index.remove(plan.relPath);
        this.#unrecorded.found.set(plan.relPath, plan);
      }
      return plans.map((plan) => recording.has(plan) ? "unrecorded" : "stale");
    }
    return plans.map((plan) => {
      const i = recording.get(plan);
      if (i === undefined) return "stale";
      const recorded = { destination: plan.destination, attempts: attempts[i], nextAttemptAt: 0 };
      return this.#index.planned(plan.relPath, plan, recorded);
    });
  }

  /** Planning `relPath` failed (said already): forgotten until it is seen again. */
  planFailed(relPath: string): void {
    if (this.#index.get(relPath)?.phase === "planning") this.#index.remove(relPath);
  }

  /**
   * A file in motion or failed disappeared: forgotten, unless a plan or an attempt is under way.
   * @returns the destination of the pending or failed row it took out (a copy kept there can go)
   */
  gone(relPath: string): string | null {
    const phase = this.#index.get(relPath)?.phase;
    if (phase === "planning" || phase === "sending") return null;
    this.#index.remove(relPath);
    const row = this.rows.get(relPath);
    const unfinished = row?.state === "pending" || row?.state === "failed";
    if (!unfinished || !writeIfWritable(() => this.rows.remove(relPath, true))) return null;
    return row.destination;
  }

  /**
   * Take up to `max` sendable files (within `maxBytes`, unless the first alone is larger),
   * recorded `transferring` (none, if that cannot be recorded).
   */
  takeBatch(max: number, maxBytes?: number, smallestFirst?: boolean): WorkRecord[] {
    const batch = this.#index.takeBatch(max, maxBytes, smallestFirst);
    if (batch.length === 0) return batch;
    if (!writeIfWritable(() => this.rows.markTransferring(batch.map((r) => r.relPath)))) {
      for (const record of batch) this.#index.finish(record.relPath, { to: "queued" });
      return [];
    }
    return batch;
  }

  /**
   * Files of a batch arrived verified: recorded `done`, all or none, and out of motion. When the
   * ledger cannot record them they stay `sending` and this returns `null` (call again when it can).
   * `hooks`: the `on_transfer` hooks they owe, recorded with them (`due_hooks.ts`).
   * @returns the sources to observe again (a change was seen while they were sent)
   */
  arrived(records: Array<Readonly<WorkRecord>>, hooks: readonly DueHook[] = []): string[] | null {
    if (records.length === 0) return [];
    try {
      this.rows.ledger.write(() => {
        // The attempts it took: the failed ones and the one it arrived in.
        const done = records.map(({ relPath, version, destination, attempts }) => (
          { ...version, relPath, destination, attempts: attempts + 1 }
        ));
        this.rows.markDone(done);
        DueHooks.of(this.rows).add(hooks);
      });
    } catch (error) {
      if (!(error instanceof LedgerWriteError)) throw error;
      for (const record of records) this.#unrecorded.arrived.add(record.relPath);
      return null;
    }
    const again: string[] = [];
    for (const record of records) {
      this.#unrecorded.arrived.delete(record.relPath);
      if (this.#index.finish(record.relPath, { to: "removed" })) {
        again.push(absolutePath(this.#job.watch_path, record.relPath));
      }
    }
    return again;
  }

  /**
   * An attempt of `relPath` failed: the row records it (or is removed), then the record moves on;
   * a file that stays failing (held by the destination, or its batch failed) stays `failed` in
   * its row too. Returns whether the checker should observe the file (a change was seen while it
   * was sent).
   */
  attemptFailed(
    relPath: string,
    row: { kind: "remove" } | { kind: "failure"; failure: FailureRecord },
    next: AfterAttempt,
  ): boolean {
    const record = this.#index.get(relPath);
    if (record?.phase !== "sending") return false;
    const final = row.kind === "failure" && (row.failure.final || failingAfter(record, next));
    // The row says when, on the wall clock, as `status` reads it (0: no time set).
    const due = row.kind === "failure" ? row.failure.nextAttemptAt : 0;
    const atWall = due > 0 ? this.wallTime(due) : 0;
    writeIfWritable(() =>
      row.kind === "remove"
        ? this.rows.remove(relPath, true)
        : this.rows.recordFailure(relPath, { ...row.failure, final, nextAttemptAt: atWall })
    );
    return this.#index.finish(relPath, next);
  }

  /**
   * Try failed files again now: one (`relPath`) or all. Files waiting for their slow retry are
   * queued; with `fresh` (the user's Retry: see `WorkQueue.retryNow`) failed rows go back to
   * pending, else only those no failing file holds; a failed row that nothing holds goes to the
   * checker. @returns how many failed rows went back to pending, and whether any file can go now
   */
  retry(relPath?: string, fresh = true): { count: number; queued: boolean } {
    let count = 0;
    writeIfWritable(() => {
      if (fresh && relPath === undefined) return void (count = this.rows.requeue(["failed"]));
      for (const row of relPath === undefined ? this.rows.inState("failed") : [{ relPath }]) {
        // Not the user's Retry: a file failing in motion stays failed (its row too).
        if (!fresh && this.#index.get(row.relPath)?.failing) continue;
        count += this.rows.requeueFile(row.relPath);
      }
    });
    const queued = this.#index.retryNow(relPath, fresh);
    if (count > queued.length) this.observeStrayPending();
    return { count, queued: queued.length > 0 };
  }

  /** At start, before the job watches: see `ledger_takeover.ts`. */
  takeOverLedger(): LeftByLastRun {
    return takeOverLedger(this.rows, this.interrupted);
  }

  /** At start, after {@linkcode takeOverLedger}: see `ledger_takeover.ts` (`dropped`: there). */
  resumeUnfinished(dropped?: (relPath: string) => void): Promise<string[]> {
    return resumeUnfinished({
      dropped,
      job: this.#job,
      rows: this.rows,
      filter: this.#filter,
      // Found at the start as the last run left it: its mtime may say how long it is unchanged.
      observe: (path) => this.#observe(path, "found"),
      resume: (record, since) => this.#index.resume(record, since),
    });
  }

  /**
   * Before a periodic rescan: failed files get another chance (those in motion still failing,
   * see {@linkcode retry}). Returns whether any can go now.
   */
  beforeRescan(): boolean {
    const { queued } = this.retry(undefined, false);
    this.observeStrayPending();
    return queued;
  }

  /**
   * The ledger can be written again: returns the files found complete meanwhile (as planned) and
   * unchanged since; the checker looks at the others again, unless they are gone.
   */
  ledgerWritable(): PendingFile[] {
    return this.#unrecorded.takeFound().filter((plan) => {
      const path = absolutePath(this.#job.watch_path, plan.relPath), now = statVersion(path);
      const unchanged = typeof now === "object" && sameVersion(now, plan);
      if (!unchanged && now !== "gone") this.#observe(path); // changed, or cannot be looked at now
      return unchanged;
    });
  }

  /**
   * Pending rows that nothing holds (no record, not observed) go to the checker, which finds them
   * complete (queued) or gone (dropped). @returns their relative paths
   */
  observeStrayPending(): string[] {
    const stray: string[] = [];
    for (const row of this.rows.inState("pending")) {
      if (this.#index.get(row.relPath)) continue;
      const path = absolutePath(this.#job.watch_path, row.relPath);
      stray.push(row.relPath);
      this.#observe(path);
    }
    return stray;
  }

  /**
   * Every retry that is due is queued, and every pending row is held in motion or by the checker:
   * files `resend` marked to be sent again are taken up here (anything else found here is a missed
   * wake-up, put right all the same).
   * @returns the files that were due and are queued now
   */
  sweep(): string[] {
    const log = logger("pipeline");
    try {
      const promoted = this.#index.promoteDue();
      if (promoted.length > 0) this.#recordDue(promoted);
      const stray = this.observeStrayPending();
      if (promoted.length + stray.length > 0) {
        log.info(
          "{count} file(s) in the ledger wait to be sent (sent again on request, or due); sending them now",
          {
            job: this.#job.name,
            count: promoted.length + stray.length,
            files: [...promoted, ...stray].slice(0, 10),
          },
        );
      }
      return promoted;
    } catch (error) {
      log.error("Checking the ledger for pending files failed: {error}", {
        job: this.#job.name,
        error: String(error),
      });
      return [];
    }
  }

  /**
   * Forget that a file was sent (its copy at the destination is missing or wrong: the next scan
   * sends it again, over that copy, its own), if it is still done as `sent`. Returns whether it
   * was. @throws {LedgerWriteError}
   */
  forgetDone(relPath: string, sent: FileVersion): boolean {
    const row = this.rows.get(relPath);
    if (row?.state !== "done" || !sameVersion(row, sent) || this.#index.get(relPath)) return false;
    return this.rows.sendAgain([relPath]) > 0;
  }

  /** Stop the retry timer; nothing is reported afterwards. */
  close(): void {
    this.#index.close();
  }

  /** Retries whose time has come: the rows record them due now (not overdue). */
  #recordDue(relPaths: string[]): void {
    try {
      this.rows.markDue(relPaths);
    } catch (error) {
      logger("pipeline").error("Cannot record the retries that are due: {error}", {
        job: this.#job.name,
        error: String(error),
      });
    }
  }
}
