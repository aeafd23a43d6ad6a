/**
 * The daemon: one {@linkcode JobRunner} per job over a shared ledger, stopped
 * cleanly by SIGINT/SIGTERM.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { makeRuntimeDir } from "../config/paths.ts";
import { Ledger } from "../ledger/ledger.ts";
import { acquireDaemonLock } from "../ledger/daemon_lock.ts";
import { logger } from "../log/logging.ts";
import { createTransport } from "../transfer/factory.ts";
import { JobRunner, type JobSummary } from "./job_runner.ts";

/** Options of {@linkcode runDaemon}. */
export interface DaemonOptions {
  /** Scan, send what is complete, then return. */
  once: boolean;
  /** Stop when this signal aborts (tests); SIGINT/SIGTERM always stop. */
  signal?: AbortSignal;
}

/**
 * Run every job until stopped (or, with `once`, until all found files are
 * settled).
 *
 * @returns files sent and failed, over all jobs
 * @throws when the state folder, the lock or a watch folder cannot be used
 */
export async function runDaemon(config: Config, options: DaemonOptions): Promise<JobSummary> {
  const log = logger("daemon");
  const lock = acquireDaemonLock(config.state_dir);
  const ledger = Ledger.open(config.state_dir);
  const runtimeDir = await makeRuntimeDir();
  const runners = config.jobs.map((job) =>
    new JobRunner(job, ledger, createTransport(job, runtimeDir), { once: options.once })
  );

  const stopped = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  const onSignal = () => stopped.resolve();
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  options.signal?.addEventListener("abort", onSignal);

  try {
    log.info("Starting {count} job(s) with ledger {ledger}", {
      count: runners.length,
      ledger: ledger.path,
    });
    await Promise.race([Promise.all(runners.map((r) => r.start())), stopped.promise]);
    if (options.once) {
      await Promise.race([Promise.all(runners.map((r) => r.whenIdle())), stopped.promise]);
    } else {
      await stopped.promise;
      log.info("Stopping: finishing the ledger, removing temporary files", {});
    }
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    await Promise.all(runners.map((r) => r.stop()));
    ledger.close();
    lock.release();
    await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
  }
  const total: JobSummary = { sent: 0, failed: 0 };
  for (const r of runners) {
    total.sent += r.summary.sent;
    total.failed += r.summary.failed;
  }
  log.info("Stopped: {sent} file(s) sent, {failed} failed in this run", { ...total });
  return total;
}
