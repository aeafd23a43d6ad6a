/**
 * One generation of job runners: the jobs of one config, started together
 * and stopped together. A reload (SIGHUP) stops one generation and starts
 * the next; a job that keeps its name goes on in the next one with what its
 * picture showed (this run's counts, the rate, a pause from the page: see
 * `JobStatus.continueFrom`), counted once in the daemon's totals; a job renamed
 * in the config takes over its former name's rows first (`job_names.ts`).
 *
 * @module
 */
import type { Config, JobConfig } from "../config/types.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { carryOverRenamedJobs } from "../ledger/job_names.ts";
import { logger } from "../log/logging.ts";
import type { StatusEvents } from "../status/events.ts";
import type { JobSummary } from "../status/job_status.ts";
import type { createTransport } from "../transfer/transport.ts";
import type { FinishingHooks } from "./hooks.ts";
import { JobRunner } from "./job_runner.ts";

/** One generation of job runners: the jobs of one config. */
export class RunningJobs {
  readonly runners: JobRunner[];
  /** Resolves when every runner has started; rejects when one could not. */
  readonly started: Promise<void>;
  #stopped = false;

  /** Jobs paused because their destination is full. */
  #paused: Record<string, JobPause> = {};

  /**
   * Create a runner per job of `config` and start them.
   * @param onPaused told the jobs paused because their destination is full, at every change
   * @param previous the generation these runners replace (stopped with `config`'s job names)
   */
  constructor(
    config: Config,
    transport: (job: JobConfig) => ReturnType<typeof createTransport>,
    ledger: Ledger,
    options: { once: boolean; events: StatusEvents; runtimeDir?: string },
    onPaused: (paused: Record<string, JobPause>) => void,
    previous?: RunningJobs,
  ) {
    onPaused(this.#paused);
    // A pause the last generation reported: one of the same kind goes on since it began.
    const before: Record<string, JobPause> = previous ? { ...previous.#paused } : {};
    for (const { from, to, rows } of carryOverRenamedJobs(ledger, config.jobs)) {
      logger("daemon").info(
        "Job {to} was named {from} before (same watch folder and destination): its {rows} " +
          "file(s) in the ledger are its own, nothing is sent again",
        { from, to, rows },
      );
    }
    this.runners = config.jobs.map((job) =>
      new JobRunner(job, ledger, transport(job), {
        ...options,
        replaces: previous?.runners.find((runner) => runner.job.name === job.name),
        onPauseChange: (pause) => {
          // Only the runner's first report can go on from the last generation's pause.
          const was = before[job.name];
          delete before[job.name];
          if (pause) {
            this.#paused[job.name] = was?.state === pause.state
              ? { ...pause, since: was.since }
              : pause;
          } else delete this.#paused[job.name];
          if (!this.#stopped) onPaused(this.#paused);
        },
      })
    );
    this.started = Promise.all(this.runners.map((r) => r.start())).then(() => {}, (error) => {
      // A runner stopped by a reload may fail on its way out: not a reason to exit.
      if (this.#stopped) return new Promise<never>(() => {});
      throw error;
    });
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
   * Stop every runner, add what they did to `total` (once); `reloading`: see
   * `JobRunner.stop`, and `next` is the config that replaces them: its jobs go
   * on from these runners' counts, so they are added to `total` by the next
   * generation.
   */
  async stop(total: JobSummary, reloading = false, next?: Config): Promise<FinishingHooks[]> {
    if (this.#stopped) return [];
    this.#stopped = true;
    const finishing = await Promise.all(this.runners.map((r) => r.stop(reloading)));
    const goOn = new Set(next?.jobs.map((job) => job.name));
    for (const r of this.runners) {
      if (goOn.has(r.job.name)) continue;
      total.sent += r.summary.sent;
      total.failed += r.summary.failed;
    }
    return finishing.filter((hooks) => hooks !== null);
  }
}
