/**
 * One generation of job runners: the jobs of one config. A reload (SIGHUP)
 * stops the jobs it changed or removed and starts the next generation: a job
 * whose settings are all the same goes on in it untouched (its transfers in
 * flight, its hooks and scheduled commands run on); a changed job starts again
 * with what the picture of the job it goes on from showed (this run's counts,
 * the rate, a pause from the page: see `JobStatus.continueFrom`), counted once
 * in the daemon's totals: the job that sent from its watch folder to its
 * destination, whatever its name (renamed, or two jobs that swapped names),
 * else the one of its name (`formerJob`); a job renamed in the config takes over its former
 * name's rows first (`job_names.ts`), after the rows recorded for another
 * spelling of a destination are recorded for its identity now
 * (`destination_spellings.ts`). A job whose next runner cannot be made (a setting that fails as
 * it is built) stops the daemon as one that cannot start does, the counts of the job it goes on
 * from still in the totals.
 *
 * @module
 */
import type { Config, JobConfig } from "../config/types.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { carryOverSpellings } from "../ledger/destination_spellings.ts";
import { carryOverRenamedJobs } from "../ledger/job_names.ts";
import { logger } from "../log/logging.ts";
import type { StatusEvents } from "../status/events.ts";
import type { JobSummary } from "../status/job_status.ts";
import type { createTransport } from "../transfer/transport.ts";
import type { FinishingHooks } from "./hooks.ts";
import { JobRunner, type JobRunnerOptions } from "./job_runner.ts";
import { formerJob, sameJobSettings } from "./reload_changes.ts";
import { sharedSkipLog } from "../watch/skip_log.ts";

/** A runner and its start, handed from one generation to the next. */
interface Started {
  runner: JobRunner;
  started: Promise<void>;
}

/** The generation whose runners report their pauses (the latest: they go on across reloads). */
interface PauseRoute {
  current: RunningJobs;
}

/** One generation of job runners: the jobs of one config. */
export class RunningJobs {
  readonly runners: JobRunner[];
  /** Resolves when every runner has started; rejects when one could not. */
  readonly started: Promise<void>;
  #stopped = false;
  #onPaused: (paused: Record<string, JobPause>) => void;
  #route: PauseRoute;
  /** The runners that go on into the next generation untouched, by job name (see `stop`). */
  #goingOn = new Map<string, Started>();
  /** The hooks and scheduled commands of the jobs reloads replaced, until done or the stop. */
  #finishing: FinishingHooks[];
  #starts: Started[];
  /** Runners of the last generation whose job's next runner could not be made (counted here). */
  #notCarried: JobRunner[] = [];

  /** Jobs paused because their destination is full. */
  #paused: Record<string, JobPause> = {};
  /** The pauses of the jobs started again, each until its runner's first report. */
  #before: Record<string, JobPause> = {};
  /** Since when each job's runner said its pause began (a pause anew says another time). */
  #began: Record<string, string> = {};

  /**
   * Create a runner per job of `config` and start them (a runner `previous` hands over as it is).
   * @param onPaused told the jobs paused because their destination is full, at every change
   * @param previous the generation these runners replace (stopped with `config`)
   */
  constructor(
    config: Config,
    transport: (job: JobConfig) => ReturnType<typeof createTransport>,
    ledger: Ledger,
    options: Pick<JobRunnerOptions, "once" | "runtimeDir" | "skipsSaid"> & { events: StatusEvents },
    onPaused: (paused: Record<string, JobPause>) => void,
    previous?: RunningJobs,
  ) {
    this.#onPaused = onPaused;
    this.#route = previous ? previous.#route : { current: this };
    this.#route.current = this;
    this.#finishing = previous ? previous.#finishing : [];
    const kept = previous ? previous.#goingOn : new Map<string, Started>();
    const replaced = (job: JobConfig) => previous && previous.#replaced(job, config);
    for (const [name, pause] of Object.entries(previous ? previous.#paused : {})) {
      if (kept.has(name)) {
        this.#paused[name] = pause;
        this.#began[name] = previous!.#began[name];
      } else {
        const heir = config.jobs.find((job) => replaced(job)?.job.name === name);
        if (heir) this.#before[heir.name] = pause;
      }
    }
    onPaused(this.#paused);
    for (const { job, from, to, rows } of carryOverSpellings(ledger, config.jobs)) {
      logger("daemon").info(
        "Job {job}: its {rows} file(s) in the ledger for {from} are recorded for {to}, the same " +
          "folder spelled another way: nothing is sent again",
        { job, from, to, rows },
      );
    }
    for (const { from, to, rows } of carryOverRenamedJobs(ledger, config.jobs)) {
      logger("daemon").info(
        "Job {to} was named {from} before (same watch folder and destination): its {rows} " +
          "file(s) in the ledger are its own, nothing is sent again",
        { from, to, rows },
      );
    }
    // The status surface's figures kept by job name (durations, /metrics) follow as the rest does.
    const renamed = config.jobs.flatMap((job) => {
      const from = replaced(job)?.job;
      if (!from || (from.name === job.name && from.transfer_method === job.transfer_method)) {
        return [];
      }
      const labels = (j: JobConfig) => ({ job: j.name, method: j.transfer_method });
      return [{ from: labels(from), to: labels(job) }];
    });
    if (renamed.length > 0) options.events.emit({ type: "renamed", renamed, at: Date.now() });
    // Names that cannot be sent are said once per path: their count follows the job's name too.
    sharedSkipLog.renameJobs(renamed.map(({ from, to }) => [from.job, to.job]));
    const route = this.#route;
    let failure: Error | undefined;
    this.runners = [];
    for (const job of config.jobs) {
      const goesOn = kept.get(job.name);
      if (goesOn) {
        goesOn.runner.retry(); // As for a job started again: fresh quick retries for failed files.
        this.runners.push(goesOn.runner);
        continue;
      }
      const former = replaced(job);
      try {
        const made: JobRunner = new JobRunner(job, ledger, transport(job), {
          ...options,
          replaces: former,
          // Told the generation the runner is in now (it may go on through reloads).
          onPauseChange: (pause) => route.current.#pauseChanged(made, pause),
        });
        this.runners.push(made);
      } catch (error) {
        // As a runner that cannot start: the daemon stops, with what the job it goes on from did
        // counted in its totals all the same (no runner goes on from it).
        const reason = error instanceof Error ? error.message : String(error);
        failure ??= new Error(`Cannot start job ${job.name}: ${reason}`, { cause: error });
        if (former) this.#notCarried.push(former);
      }
    }
    // None starts when one cannot be made: the daemon stops them all (a stop, not a reload).
    this.#starts = this.runners.map((r) =>
      kept.get(r.job.name) ?? { runner: r, started: failure ? Promise.resolve() : r.start() }
    );
    const starts = this.#starts.map(({ started }) => started);
    this.started = (failure ? Promise.reject(failure) : Promise.all(starts)).then(
      () => {},
      (error) => {
        // A runner stopped by a reload may fail on its way out: not a reason to exit.
        if (this.#stopped) return new Promise<never>(() => {});
        throw error;
      },
    );
  }

  /** The runner `job` of `next` goes on from (its picture, hooks, schedules): see `formerJob`. */
  #replaced(job: JobConfig, next: Config): JobRunner | undefined {
    const jobs = this.runners.map((runner) => runner.job);
    const former = formerJob(jobs, next.jobs, job);
    return this.runners.find((runner) => runner.job === former);
  }

  /** `runner` reports its job paused (or not) because its destination is full. */
  #pauseChanged(runner: JobRunner, pause: JobPause | null): void {
    if (this.#stopped || !this.runners.includes(runner)) return; // Stopped by a reload.
    const name = runner.job.name;
    // Only a started again runner's first report can go on from the last generation's pause; its
    // later reports of that pause (another file's words) keep the since this one was given, while
    // a pause that began anew (down again while it recovered) says when it began.
    const samePause = pause !== null && this.#began[name] === pause.since;
    const was = this.#before[name] ?? (samePause ? this.#paused[name] : undefined);
    delete this.#before[name];
    if (pause) {
      this.#paused[name] = was?.state === pause.state ? { ...pause, since: was.since } : pause;
      this.#began[name] = pause.since;
    } else {
      delete this.#paused[name];
      delete this.#began[name];
    }
    this.#onPaused(this.#paused);
  }

  /** Never resolves; rejects when a runner could not start. */
  failure(): Promise<never> {
    return this.started.then(() => new Promise<never>(() => {}));
  }

  /** Resolves when every runner is idle. */
  async idle(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.whenIdle()));
  }

  /**
   * Stop the runners, add what they did to `total` (once). With `next` (a reload: see
   * `JobRunner.stop` for `reloading`), the config that replaces them: a job whose settings are
   * all the same there is not stopped but handed to the next generation as it is (the names of
   * those are returned); the others that go on in a job of `next` (`formerJob`) go on from these
   * runners' counts, so they are added to `total` by the next generation, and their hooks and scheduled commands run
   * on until done, or until the stop of the last generation ends them first.
   */
  async stop(total: JobSummary, reloading = false, next?: Config): Promise<string[]> {
    if (this.#stopped) return [];
    this.#stopped = true;
    const after = new Map(next?.jobs.map((job) => [job.name, job]));
    const stopping: JobRunner[] = [];
    for (const started of this.#starts) {
      const job = after.get(started.runner.job.name);
      if (reloading && job && sameJobSettings(started.runner.job, job)) {
        this.#goingOn.set(job.name, started);
      } else stopping.push(started.runner);
    }
    // At the stop, the replaced jobs' hooks end first: a job that went on counts them in its tally.
    const replaced = this.#finishing;
    if (!reloading) { for (const hooks of replaced) hooks.abort(); }
    // A job no job of `next` goes on from is removed: its hooks waiting are left owed at once.
    const goOn = new Set(next?.jobs.map((job) => this.#replaced(job, next!)));
    const removed = (r: JobRunner) => reloading && !goOn.has(r);
    for (const hooks of await Promise.all(stopping.map((r) => r.stop(reloading, removed(r))))) {
      if (hooks === null) continue;
      replaced.push(hooks);
      // Forgotten once done: a daemon reloaded every day for months keeps none of them.
      const forget = () => {
        if (replaced.includes(hooks)) replaced.splice(replaced.indexOf(hooks), 1);
      };
      hooks.finished.then(forget, forget);
    }
    if (!reloading) await Promise.all(replaced.map((hooks) => hooks.finished));
    for (const r of [...stopping, ...this.#notCarried]) {
      if (goOn.has(r)) continue; // Counted by the runner that goes on from it.
      total.sent += r.summary.sent;
      total.failed += r.summary.failed;
    }
    return [...this.#goingOn.keys()];
  }
}
