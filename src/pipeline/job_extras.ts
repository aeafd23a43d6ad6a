/**
 * What a job does beside sending: hooks after each arrival or give-up,
 * source clean-up, and schedules (with the catch-up of a scheduled rescan).
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import type { Transport } from "../transfer/transport.ts";
import type { FileVersion } from "../watch/file_version.ts";
import type { JobSnapshot } from "../status/job_status.ts";
import type { JobExtra, StatusEvents } from "../status/events.ts";
import { type FinishingHooks, HookRunner } from "./hooks.ts";
import { hookFacts } from "./hook_facts.ts";
import { JobSchedules } from "./schedules.ts";
import { samePauseWindows } from "./pause_windows.ts";
import { SourceCleaner } from "./source_cleanup.ts";
import type { FileTable, WorkRecord } from "./file_table.ts";
import { catchUpOrSay, copiesStillThere } from "./arrived_copies.ts";
import { logger } from "../log/logging.ts";
import { DueHooks } from "../ledger/due_hooks.ts";

/** What {@linkcode JobExtras} works with. */
export interface JobExtrasContext {
  job: JobConfig;
  table: FileTable;
  transport: Transport;
  /** Aborted when the job stops. */
  signal: AbortSignal;
  /** A full rescan of the watch folder. */
  rescan(): Promise<void>;
  /** A transfer window closes: start no new transfers. */
  pause(): void;
  /** Whether a transfer window's pause holds the job now. */
  windowPaused(): boolean;
  /** A transfer window opens; returns `false` when a pause from the status page still holds. */
  resume(): boolean;
  /** `run --once`: no schedules; hooks and clean-up called for finish before the end. */
  once: boolean;
  /** The same job's extras of the config a reload replaced: their hooks go on here. */
  replaces?: JobExtras;
  /** Told each failure of a hook, a schedule's action or a clean-up (`/metrics` counts them). */
  events?: StatusEvents;
}

/** Hooks, source clean-up and schedules of one job; see the module doc. */
export class JobExtras {
  #context: JobExtrasContext;
  #hooks: HookRunner;
  #cleaner: SourceCleaner;
  #schedules: JobSchedules;
  /** The extras that replaced these (a reload changed or renamed the job), else `undefined`. */
  #next: JobExtras | undefined;

  constructor(context: JobExtrasContext) {
    this.#context = context;
    const { job, table } = context;
    if (context.replaces) context.replaces.#next = this;
    const due = DueHooks.of(table.rows);
    this.#hooks = new HookRunner(job, context.replaces && context.replaces.#hooks, {
      started: (facts) => due.started(facts),
      list: (limit) =>
        due.list(limit).map(({ relPath, destination, sha256, ...version }) => ({
          ...hookFacts(job, context.transport, relPath, version, destination),
          sha256,
        })),
      count: () => due.count(),
      notStarted: ({ relPath, destinationPath: destination, size, mtimeMs, sha256 }) =>
        due.add([{ relPath, destination, size, mtimeMs, sha256 }], true),
    });
    this.#cleaner = new SourceCleaner(job, table.rows, {
      replaces: context.replaces ? context.replaces.#cleaner : null,
      ledger: table.ledger,
      once: context.once,
      copiesThere: async (files) => {
        const { there, sendAgain } = await copiesStillThere(context, files);
        // A scan sends them again (its own failures are said where it runs).
        if (sendAgain) context.rescan().catch(() => {});
        return there;
      },
    });
    this.#schedules = new JobSchedules({
      job,
      table: table.rows,
      rescan: (nights) => catchUpOrSay(context, nights).then(() => context.rescan()),
      pause: () => context.pause(),
      windowPaused: () => context.windowPaused(),
      resume: () => context.resume(),
    }, context.replaces && context.replaces.#schedules);
    this.#hooks.onFailure = () => this.#failed("hook");
    this.#schedules.onFailure = () => this.#failed("schedule");
    this.#cleaner.onFailure = () => this.#failed("cleanup");
  }

  /**
   * Tell the status surface that `extra` failed, under the name and method of the job these
   * extras' counts go on in: a hook or a scheduled command still running here after a reload
   * replaced them counts for the job that goes on from them (renamed too), as their tallies do;
   * one of a job the reload removed, for that job (`/metrics` keeps its counts should it come
   * back).
   */
  #failed(extra: JobExtra): void {
    if (this.#next) return this.#next.#failed(extra);
    const { job, events } = this.#context;
    events?.emit({
      type: "extraFailed",
      job: job.name,
      method: job.transfer_method,
      extra,
      at: Date.now(),
    });
  }

  /** Resolves when the source clean-up's work called for so far is done: whether there was any. */
  cleanupSettled(): Promise<boolean> {
    return this.#cleaner.settled();
  }

  /** Deletes and moves of sources that failed since the daemon started (reloads included). */
  get cleanupFailures(): number {
    return this.#cleaner.failures;
  }

  /** Hooks of the job that failed or were not run since the daemon started (reloads included). */
  get hookFailures(): number {
    const { failed, dropped } = this.#hooks.stats;
    return failed + dropped;
  }

  /** The job's failures since the daemon started (reloads included), as its status counts them. */
  get failures(): Pick<JobSnapshot, "hookFailures" | "scheduleFailures" | "cleanupFailures"> {
    return {
      hookFailures: this.hookFailures,
      scheduleFailures: this.#schedules.failures,
      cleanupFailures: this.cleanupFailures,
    };
  }

  /**
   * Before the job's first scan: inside a pause window of its schedules (unless `once`), pause. A
   * reload that keeps the schedules keeps where they left the job (a Resume from the page within
   * a window included).
   */
  beforeStart(): void {
    const before = this.#context.replaces && this.#context.replaces.#context.job;
    if (this.#context.once || (before && samePauseWindows(before, this.#context.job))) return;
    this.#schedules.applyWindow(before !== undefined);
  }

  /**
   * Start the clean-up and (unless `once`) the schedules; at the daemon's start (not a reload),
   * run the `on_transfer` hooks the last run owed.
   */
  start(): void {
    if (!this.#context.replaces) this.#runOwedHooks();
    this.#cleaner.start();
    if (!this.#context.once) this.#schedules.start();
  }

  #runOwedHooks(): void {
    const { job, table } = this.#context;
    const log = logger("hooks");
    const due = DueHooks.of(table.rows);
    try {
      if (job.on_transfer.length === 0) {
        const dropped = due.clear();
        if (dropped > 0) {
          log.warn(
            "Job {job} has no on_transfer hook now: {count} left from the last run not run",
            {
              job: job.name,
              count: dropped,
            },
          );
        }
        return;
      }
      const owed = due.count();
      if (owed === 0) return;
      log.info("Running {count} on_transfer hook(s) of job {job} the last stop kept from running", {
        job: job.name,
        count: owed,
      });
      this.#hooks.runOwed();
    } catch (error) {
      // A ledger that cannot be read or written now: the hooks stay owed until the next start.
      log.warn("Cannot run the on_transfer hooks of job {job} left from the last run: {error}", {
        job: job.name,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** A file arrived verified at `destination`. */
  arrived(relPath: string, version: FileVersion, destination: string, sha256?: string): void {
    const { job, transport } = this.#context;
    this.#hooks.arrived({ ...hookFacts(job, transport, relPath, version, destination), sha256 });
    this.#cleaner.arrived(relPath, version);
  }

  /** A file found at the destination after a rebuilt ledger: no hook (it ran when it arrived). */
  recognised(relPath: string, version: FileVersion): void {
    this.#cleaner.arrived(relPath, version);
  }

  /** A file gave up after `attempts` attempts. */
  gaveUp(record: WorkRecord, error: string, attempts: number): void {
    const { job, transport } = this.#context;
    const { relPath, version, destination } = record;
    this.#hooks.gaveUp({
      ...hookFacts(job, transport, relPath, version, destination),
      error,
      attempts,
    });
  }

  /**
   * Stop the schedules, then the hooks and the clean-up: with `once` what they
   * were called for runs first; a stopping daemon kills running hooks and
   * scheduled commands and drops waiting hooks. With `reloading` (the job is
   * replaced by a reload) the hooks and the scheduled commands still running
   * finish in the background instead: returned, for the daemon to end at its stop; `removed`: the
   * reload removed the job (its hooks waiting are left owed: `HookRunner.close`).
   * `recordWaiting` records the arrivals that waited for the ledger: at a daemon's stop once no
   * hook starts any more, so theirs stay owed, run at the next start (started, they would be
   * killed at once, and lost), and before the clean-up ends, which is told of them.
   */
  async close(
    reloading = false,
    removed = false,
    recordWaiting = () => {},
  ): Promise<FinishingHooks | null> {
    const { once } = this.#context;
    const hooksClosed = reloading || once ? null : this.#hooks.close(false);
    recordWaiting();
    const commands = await this.#schedules.stop(reloading);
    let finishing: FinishingHooks | null = null;
    if (reloading) {
      const hooks = this.#hooks;
      finishing = {
        finished: Promise.all([hooks.close(true, true, removed), commands?.finished]).then(
          () => {},
        ),
        abort: () => {
          hooks.abort();
          commands?.abort();
        },
      };
    } else {
      await (hooksClosed ?? this.#hooks.close(once));
    }
    await this.#cleaner.close(once);
    return finishing;
  }
}
