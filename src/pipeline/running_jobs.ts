/**
 * One generation of job runners: the jobs of one config, started together,
 * stopped together (at a reload or when the daemon stops), with the jobs
 * paused by a full destination reported as they change.
 *
 * @module
 */
import type { Config, JobConfig } from "../config/types.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { StatusEvents } from "../status/events.ts";
import type { createTransport } from "../transfer/factory.ts";
import { JobRunner, type JobSummary } from "./job_runner.ts";

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
   *
   * @param onPaused told the jobs paused because their destination is full, at every change
   */
  constructor(
    config: Config,
    transport: (job: JobConfig) => ReturnType<typeof createTransport>,
    ledger: Ledger,
    options: { once: boolean; events: StatusEvents },
    onPaused: (paused: Record<string, JobPause>) => void,
  ) {
    onPaused(this.#paused);
    this.runners = config.jobs.map((job) =>
      new JobRunner(job, ledger, transport(job), {
        ...options,
        onPauseChange: (pause) => {
          if (pause) this.#paused[job.name] = pause;
          else delete this.#paused[job.name];
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

  /** Stop every runner and add what they did to `total` (once). */
  async stop(total: JobSummary): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.runners.map((r) => r.stop()));
    for (const r of this.runners) {
      total.sent += r.summary.sent;
      total.failed += r.summary.failed;
    }
  }
}
