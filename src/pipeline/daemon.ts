/**
 * The daemon: one {@linkcode JobRunner} per job over a shared ledger, stopped
 * cleanly by SIGINT/SIGTERM, its config reloaded by SIGHUP (not on Windows).
 *
 * A reload validates the file first and keeps the running config if it is
 * wrong. A valid one replaces the jobs it changes: their runners stop
 * (transfers in flight are aborted and resumed by the new runners from the
 * ledger), then the new ones start; a job whose settings are the same goes on
 * untouched. One generation of runners is a {@linkcode RunningJobs}.
 *
 * @module
 */
import { join } from "node:path";
import { COMMAND_LINE_CONFIG, type Config, type JobConfig } from "../config/types.ts";
import { loadConfig } from "../config/load.ts";
import { configCommand, makeRuntimeDir } from "../config/paths.ts";
import { guardedPathReason, WatchFolderError } from "../errors.ts";
import { Ledger, LEDGER_FILE } from "../ledger/ledger.ts";
import { keepStateDirPrivate } from "../ledger/ledger_file.ts";
import { acquireDaemonLock, PID_FILE } from "../ledger/daemon_lock.ts";
import { daemonStillRuns } from "../process/live_daemon.ts";
import { SENDER_ID_FILE } from "../ledger/state_files.ts";
import { daemonRanIn } from "../ledger/ledger_check.ts";
import { logger } from "../log/logging.ts";
import { removeAfterCrash } from "../process/crash_cleanup.ts";
import { createTransport } from "../transfer/transport.ts";
import { endLeftoverMasters } from "../transfer/ssh/master.ts";
import { VERSION, versionInfo } from "../version.ts";
import type { JobSummary } from "../status/job_status.ts";
import { StatusEvents } from "../status/events.ts";
import { LedgerReports } from "../status/ledger_reports.ts";
import { startStatusServer, type StatusServer } from "../status/server.ts";
import { checkBeforeStart } from "./start_checks.ts";
import { answerWithin, unlistable, unreadableForNow } from "../config/file_systems.ts";
import { watchFolderProblem } from "../config/file_systems.ts";
import { RunningJobs } from "./running_jobs.ts";
import { reloadChanges, type SkipsSaid } from "./reload_changes.ts";
import { assertNoTemplateValues } from "../config/template_values.ts";

/** Options of {@linkcode runDaemon}. */
export interface DaemonOptions {
  /** Scan, send what is complete, then return. */
  once: boolean;
  /** Stop when this signal aborts (tests); SIGINT/SIGTERM always stop. */
  signal?: AbortSignal;
  /**
   * Called with a reloaded, valid config before its jobs replace the running ones (the CLI sets
   * up logging again: a changed log file, or a reopened one after rotation). Throwing refuses it.
   */
  onReload?: (config: Config) => Promise<void>;
  /** Called when a reload was refused (the CLI reopens the running config's log file). */
  onReloadRefused?: () => Promise<void>;
  /**
   * Called once the status server listens (or is off, or could not start), before any job
   * starts: the CLI gives up the network permission there unless a job needs it.
   */
  onListening?: () => Promise<void>;
  /** How what the jobs' patterns leave out is said (in the words of the run's options). */
  skipsSaid?: SkipsSaid;
  runCommand?: string; // Started without a config file: the run that starts it again (`restart`).
}

/** How long `run --once` waits for a ledger it cannot write, then fails (the daemon waits on). */
export const ONCE_LEDGER_WAIT_MS = 30_000;

/** The signals that stop the daemon on this OS. */
const STOP_SIGNALS: Deno.Signal[] = Deno.build.os === "windows"
  ? ["SIGINT", "SIGBREAK"]
  : ["SIGINT", "SIGTERM"];
/** The signal that reloads the config; Windows has none. */
const RELOAD_SIGNAL: Deno.Signal | undefined = Deno.build.os === "windows" ? undefined : "SIGHUP";

/**
 * Run every job until stopped (or, with `once`, until all found files are settled).
 *
 * @returns files sent and failed, over all jobs and reloads
 * @throws {DaemonRunningError} when another daemon holds the state folder
 * @throws {WatchFolderError} when a watch folder is not a folder (or, with `once`, missing)
 * @throws when the state folder cannot be used, or (with `once`) the ledger
 *   cannot be written for {@linkcode ONCE_LEDGER_WAIT_MS}
 */
export async function runDaemon(config: Config, options: DaemonOptions): Promise<JobSummary> {
  const log = logger("daemon");
  // A config `validate` would refuse does not start, before anything else (its
  // programs, a non-loopback status page without a token).
  const listenChecked = await checkBeforeStart(config);
  const listen = options.once ? null : listenChecked;
  const service = Deno.env.get("IMAGE_TRANSFER_SERVICE");
  // Looked at before this run takes the lock: a ledger missing beside it was lost.
  const ranBefore = daemonRanIn(config.state_dir);
  // Refused where its PID file names a live daemon, the lock granted all the same (live_daemon.ts).
  const lock = acquireDaemonLock(config.state_dir, {
    version: VERSION,
    config: config.file,
    runCommand: options.runCommand, // Left out of its file where none.
    ...(service ? { service } : {}),
  }, daemonStillRuns);
  let ledger: Ledger | undefined;
  let removeRuntimeDir = () => Promise.resolve(); // And after a crash until then: see below.
  const events = new DaemonEvents();
  // Listened to until the stop has ended: a signal nothing listens to ends the process at once
  // (Ctrl-C pressed again, a log rotation's SIGHUP), its ledger and temporary files unfinished.
  let stopping = false;
  let toldStopping = false;
  const onStop = () => {
    if (stopping && !toldStopping) {
      toldStopping = true;
      log.info("Already stopping: finishing the ledger, removing temporary files", {});
    }
    events.push("stop");
  };
  const onReload = () => {
    if (stopping) log.warn("SIGHUP ignored: the daemon is stopping", {});
    else if (options.once) log.warn("SIGHUP ignored: run --once does not reload its config", {});
    else events.push("reload");
  };
  for (const s of STOP_SIGNALS) Deno.addSignalListener(s, onStop);
  if (RELOAD_SIGNAL) Deno.addSignalListener(RELOAD_SIGNAL, onReload);
  options.signal?.addEventListener("abort", onStop);
  const total: JobSummary = { sent: 0, failed: 0 };
  let jobs: RunningJobs | undefined;
  const statusEvents = new StatusEvents();
  let reports: LedgerReports | undefined;
  /** The last reload, when refused: told to `status` (the lock) and to the status page. */
  let reloadRefused: { at: string; reason: string } | null = null;
  const toldReload = (refused: typeof reloadRefused) => {
    reloadRefused = refused;
    lock.tell({ reloadRefused: refused ?? undefined });
    statusEvents.emit({ type: "daemon", at: Date.now() });
  };
  let statusServer: StatusServer | null = null;
  let stopListening = () => {};
  try {
    if (lock.stalePid !== undefined) {
      log.warn("Replacing the PID file of pid {stalePid}: that daemon did not stop cleanly", {
        stalePid: lock.stalePid,
      });
      await clearLeftovers(lock.stale?.runtimeDir);
    }
    if (lock.pidFileError) {
      log.warn(
        "Cannot write the PID file {pidFile}: {error}; `image-transfer stop` and `status` " +
          "find this daemon only by its lock until the daemon is restarted",
        { pidFile: join(config.state_dir, PID_FILE), error: lock.pidFileError },
      );
    }
    // Before the watch folders are checked: a run that ends there has made its ledger, so the
    // next one does not take it for lost.
    const openLedger = Ledger.open(config.state_dir, { expected: ranBefore });
    lock.ledgerMade();
    ledger = openLedger;
    openLedger.subscribe(() => lock.renew()); // A state_dir removed: its ledger starts anew.
    await checkWatchFolders(config.jobs, options.once);
    await keepStateDirPrivate(config.state_dir);
    const dir = await makeRuntimeDir();
    removeRuntimeDir = removeAfterCrash(dir);
    lock.tell({ runtimeDir: dir });
    log.info(
      "Starting {count} job(s) with ledger {ledger} (pid {pid}, version {version}); log file {log}",
      {
        count: config.jobs.length,
        ledger: openLedger.path,
        log: config.log_file === "" ? "none (stderr only)" : config.log_file,
        pid: Deno.pid,
        version: VERSION,
        pidFile: join(config.state_dir, PID_FILE),
      },
    );
    const start = (c: Config, previous?: RunningJobs) =>
      new RunningJobs(
        c,
        (job) => createTransport(job, dir, openLedger, c.file === COMMAND_LINE_CONFIG),
        openLedger,
        { once: options.once, events: statusEvents, runtimeDir: dir, skipsSaid: options.skipsSaid },
        (paused) => lock.setPaused(paused),
        previous,
      );
    if (listen) {
      const shown = new LedgerReports(
        openLedger.path,
        () =>
          (jobs?.runners ?? []).map((runner) => ({ job: runner.job.name, target: runner.target })),
      );
      reports = shown;
      let rebuilt = openLedger.rebuilt;
      stopListening = openLedger.subscribe(() => {
        if (openLedger.rebuilt === rebuilt) return;
        rebuilt = openLedger.rebuilt;
        shown.reopen();
      });
      const { version, commit, deno } = versionInfo();
      statusServer = await startStatusServer(listen, {
        jobs: () => jobs?.runners ?? [],
        reports,
        build: { version, commit, deno },
        startedAt: Date.now(),
        reloadRefused: () => reloadRefused,
      }, statusEvents);
      if (statusServer) lock.tell({ statusListen: `${listen.hostname}:${statusServer.addr.port}` });
    }
    await options.onListening?.();
    jobs = start(config);
    lock.tell({ jobs: config.jobs.map((job) => job.name) });
    if (options.once) {
      if (await events.race(jobs.started) !== "stop") {
        const stuck = whenLedgerStuck(openLedger, ONCE_LEDGER_WAIT_MS);
        try {
          await events.race(Promise.race([jobs.idle(), stuck.promise]));
        } finally {
          stuck.cancel();
        }
      }
    } else {
      let current = config;
      while (await events.race(jobs.failure()) === "reload") {
        const next = await reloadConfig(
          current,
          config,
          options.onReload,
          async (reason) => {
            toldReload({ at: new Date().toISOString(), reason });
            // A log file moved away (rotated) is opened again all the same.
            await options.onReloadRefused?.().catch(() => {});
          },
          (stateDir) => lock.pointFrom(stateDir),
        );
        if (!next) continue;
        const untouched = await jobs.stop(total, true, next);
        const previous = current;
        current = next;
        jobs = start(next, jobs);
        lock.tell({ jobs: next.jobs.map((job) => job.name) });
        if (reloadRefused !== null) toldReload(null);
        log.info("Reloaded {file}: {count} job(s)", { file: next.file, count: next.jobs.length });
        const changes = reloadChanges(previous, next);
        if (changes.length === 0) log.info("Reload: nothing changed in the config", {});
        for (const change of changes) log.info("Reload: {change}", { change });
        if (untouched.length > 0) {
          log.info("Reload: job(s) {jobs} go on untouched (the settings they use are the same)", {
            jobs: untouched.join(", "),
          });
        }
      }
      log.info("Stopping: finishing the ledger, removing temporary files", {});
    }
  } finally {
    stopping = true;
    options.signal?.removeEventListener("abort", onStop);
    try {
      await statusServer?.close();
      await jobs?.stop(total);
      stopListening();
      reports?.close();
      ledger?.close();
      lock.release();
      await removeRuntimeDir();
    } finally {
      for (const s of STOP_SIGNALS) Deno.removeSignalListener(s, onStop);
      if (RELOAD_SIGNAL) Deno.removeSignalListener(RELOAD_SIGNAL, onReload);
      // Once jobs started, also when the daemon ends on an error (a start-up error: before).
      if (jobs) log.info("Stopped: {sent} file(s) sent, {failed} failed in this run", { ...total });
    }
  }
  return total;
}

/** What a killed daemon left behind: the shared SSH connections in its runtime folder, then it. */
async function clearLeftovers(runtimeDir: string | undefined): Promise<void> {
  if (!runtimeDir || !/(^|[/\\])itx-[^/\\]+$/.test(runtimeDir)) return;
  const masters = await endLeftoverMasters(runtimeDir);
  await Deno.remove(runtimeDir, { recursive: true }).catch(() => {});
  logger("daemon").info(
    "Removed the runtime folder {runtimeDir} of the daemon that did not stop cleanly " +
      "({masters} shared SSH connection(s) ended)",
    { runtimeDir, masters },
  );
}

/**
 * Read and check the config file again after SIGHUP. `started`: the config the daemon started
 * with, whose status page settings hold until a restart; `refused` is told why a config is not
 * taken (before the refusal is logged).
 *
 * @returns the new config, or `undefined` (logged) when the running one is kept
 */
async function reloadConfig(
  current: Config,
  started: Config,
  onReload: DaemonOptions["onReload"],
  refused: (reason: string) => Promise<void>,
  movedTo: (stateDir: string) => void,
): Promise<Config | undefined> {
  const log = logger("daemon");
  log.info("Reloading {file} (SIGHUP)", { file: current.file });
  try {
    if (current.file === COMMAND_LINE_CONFIG) {
      throw new Error(
        "the daemon was started without a config file (run --watch \u2026 --to \u2026), so there is none " +
          "to read again: stop it and start it with the new options",
      );
    }
    const next = await loadConfig(current.file);
    assertNoTemplateValues(next); // `init --force` over it: nothing of the user's.
    if (next.state_dir !== current.state_dir) {
      movedTo(next.state_dir); // So that status, stop and run with the new config find it.
      throw new Error(
        `state_dir changed from ${current.state_dir} to ${next.state_dir}; a reload cannot move ` +
          `the ledger: stop the daemon, move ${join(current.state_dir, LEDGER_FILE)} and ` +
          `${SENDER_ID_FILE} into ${next.state_dir} (without the ledger every file in the watch ` +
          "folders is sent again, without the install's id its unfinished copies are never " +
          "resumed or removed), then start it",
      );
    }
    await checkBeforeStart(next);
    await checkWatchFolders(next.jobs, false);
    await onReload?.(next);
    const statusKeys = ["status_listen", "status_token_file", "status_tls_cert", "status_tls_key"];
    const restart = configCommand(next.file, "restart");
    for (const key of statusKeys as Array<keyof Config & `status_${string}`>) {
      if (next[key] === started[key]) continue;
      log.warn(
        "{key} is {to} in the config, but the status page keeps {from}, as the daemon started, " +
          "until it restarts ({restart}, or through its service manager)",
        { key, from: JSON.stringify(started[key]), to: JSON.stringify(next[key]), restart },
      );
    }
    return next;
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replaceAll("\n", "; ");
    await refused(reason);
    log.error("Reload refused, the running config is kept: {reason}", {
      file: current.file,
      reason,
    });
    return undefined;
  }
}

/**
 * Every watch folder must be a folder; with `once` it must exist and be read, too (the
 * daemon waits for a missing one, and one that cannot be read for now: a share gone).
 *
 * @throws {WatchFolderError} naming the job and the folder
 */
async function checkWatchFolders(jobs: JobConfig[], once: boolean): Promise<void> {
  for (const job of jobs) {
    const path = job.watch_path;
    let info: Deno.FileInfo;
    try {
      // One on a share that does not answer was said by the checks; its watch says more.
      const answered = await answerWithin(Deno.stat(path));
      if (answered === null) continue;
      info = answered;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || (!once && unreadableForNow(error))) {
        if (!once) continue; // Waited for, and said, by the job's watch.
        throw new WatchFolderError(
          `Cannot watch ${path}: the folder does not exist (job ${job.name}); create it or fix watch_path`,
          { cause: error },
        );
      }
      const reason = guardedPathReason(error) ?? watchFolderProblem(path, error);
      throw new WatchFolderError(`Cannot watch ${path} (job ${job.name}): ${reason}`, {
        cause: error,
      });
    }
    if (!info.isDirectory) {
      throw new WatchFolderError(
        `Cannot watch ${path}: it is not a folder (job ${job.name}); fix watch_path`,
      );
    }
    const why = await unlistable(path);
    if (why !== null) throw new WatchFolderError(`Cannot watch ${path} (job ${job.name}): ${why}`);
  }
}

/**
 * A promise that rejects once `ledger` has been unwritable for `waitMs` in all
 * (measured on the monotonic clock); `cancel` ends the watch.
 */
function whenLedgerStuck(
  ledger: Ledger,
  waitMs: number,
): { promise: Promise<never>; cancel: () => void } {
  const everyMs = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let unwritableMs = 0;
  const promise = new Promise<never>((_, reject) => {
    const look = () => {
      const problem = ledger.problem;
      if (problem) unwritableMs += everyMs;
      if (problem && unwritableMs >= waitMs) {
        reject(
          new Error(
            `run --once gave up: the ledger ${ledger.path} could not be written for ` +
              `${waitMs / 1000} s in this run (${problem.error}). Files it could not record ` +
              "were not sent, or arrived: the next run looks for those at the destination and " +
              "records each found there with its bytes, not sending it again; make room on its " +
              "disk and run again",
          ),
        );
        return;
      }
      timer = setTimeout(look, everyMs);
    };
    timer = setTimeout(look, everyMs);
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Stop and reload requests from signals, in the order they came. */
class DaemonEvents {
  #stop = false;
  #reload = false;
  #wake: (() => void) | undefined;

  push(event: "stop" | "reload"): void {
    if (event === "stop") this.#stop = true;
    else this.#reload = true;
    this.#wake?.();
  }

  /**
   * Wait for `work` to settle or for an event, whichever comes first.
   * @returns the event (`stop` wins over `reload`), or `done` when `work` settled first
   * @throws what `work` throws
   */
  async race(work: Promise<unknown>): Promise<"stop" | "reload" | "done"> {
    const settled = work.then(() => "done" as const);
    for (;;) {
      const event = this.#take();
      if (event) return event;
      const woken = new Promise<"woken">((resolve) => (this.#wake = () => resolve("woken")));
      const result = await Promise.race([settled, woken]);
      this.#wake = undefined;
      if (result === "done") return this.#take() ?? "done";
    }
  }

  #take(): "stop" | "reload" | undefined {
    if (this.#stop) return "stop";
    if (this.#reload) {
      this.#reload = false;
      return "reload";
    }
    return undefined;
  }
}
