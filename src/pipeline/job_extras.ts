/**
 * What a job does beside sending: hooks after each arrival or give-up,
 * source clean-up, and schedules (with the catch-up of a scheduled rescan).
 *
 * What `run` checks in a valid config before it starts anything, shared by
 * `config validate`, `doctor` and `install-service` so that a config they
 * accept starts: the programs it runs of its own (hooks, scheduled
 * commands), the archive folders of source cleanup, and the status page's
 * address and token.
 *
 * @module
 */
import { basename, dirname, join, posix, resolve } from "node:path";
import type { Config, JobConfig } from "../config/types.ts";
import type { Transport } from "../transfer/transport.ts";
import type { FileVersion } from "../watch/stability.ts";
import { checkUserPrograms, type FinishingHooks, hookFacts, HookRunner } from "./hooks.ts";
import { JobSchedules } from "./schedules.ts";
import { assertCleanupSafe, SourceCleaner } from "./source_cleanup.ts";
import type { FileTable, WorkRecord } from "./file_table.ts";
import { logger } from "../log/logging.ts";
import { ConfigError } from "../errors.ts";
import { relativeTo } from "../watch/entry_check.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { type ListenSettings, listenSettings } from "../status/listen.ts";

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
  /** A transfer window opens. */
  resume(): void;
  /** `run --once`: no schedules; hooks and clean-up called for finish before the end. */
  once: boolean;
}

/** Hooks, source clean-up and schedules of one job; see the module doc. */
export class JobExtras {
  #context: JobExtrasContext;
  #hooks: HookRunner;
  #cleaner: SourceCleaner;
  #schedules: JobSchedules;

  constructor(context: JobExtrasContext) {
    this.#context = context;
    const { job, table } = context;
    this.#hooks = new HookRunner(job);
    this.#cleaner = new SourceCleaner(job, table.rows);
    this.#schedules = new JobSchedules({
      job,
      table: table.rows,
      rescan: (nights) => catchUp(context, nights).then(() => context.rescan()),
      pause: () => context.pause(),
      resume: () => context.resume(),
    });
  }

  /** Start the clean-up and (unless `once`) the schedules. */
  start(): void {
    this.#cleaner.start();
    if (!this.#context.once) this.#schedules.start();
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
   * Stop the schedules (killing a scheduled command), then the hooks and the
   * clean-up: with `once` what they were called for runs first; a stopping
   * daemon kills running hooks and drops waiting ones. With `reloading` (the
   * job is replaced by a reload) the hooks finish in the background instead:
   * returned, for the daemon to end at its stop.
   */
  async close(reloading = false): Promise<FinishingHooks | null> {
    await this.#schedules.stop();
    let finishing: FinishingHooks | null = null;
    if (reloading) {
      const hooks = this.#hooks;
      finishing = { finished: hooks.close(true), abort: () => hooks.abort() };
    } else {
      await this.#hooks.close(this.#context.once);
    }
    await this.#cleaner.close(this.#context.once);
    return finishing;
  }
}

/**
 * Check the last `nights` night folders of the job at the destination.
 *
 * @returns the files forgotten as done (to be sent again by the next scan)
 */
async function catchUp(context: JobExtrasContext, nights: number): Promise<string[]> {
  const { job, transport, signal } = context;
  const table = context.table.rows;
  const log = logger("schedule");
  if (!transport.destinationSizes) return [];
  const recent = [...new Set(table.nightTotals().map((t) => t.night))]
    .filter((night) => night !== "").sort().reverse().slice(0, nights);
  const forgotten: string[] = [];
  let lost = 0;
  for (const night of recent) {
    const rows = table.doneInNight(night);
    if (rows.length === 0) continue;
    const sizes = await transport.destinationSizes(rows.map((row) => row.destination), signal);
    for (const row of rows) {
      const size = sizes.get(row.destination);
      if (size === row.size) continue;
      const fields = {
        job: job.name,
        destination: transport.describeTarget(row.destination),
        problem: size === null || size === undefined ? "missing" : `${size} bytes, not ${row.size}`,
        relPath: row.relPath,
      };
      // Without its source it cannot be sent again: it stays recorded as arrived, and is said.
      const source = join(job.watch_path, ...row.relPath.split("/"));
      if (!(await Deno.lstat(source).then(() => true, () => false))) {
        lost++;
        log.error(
          "{destination} is {problem} at the destination, and its source {relPath} is gone: " +
            "it cannot be sent again",
          fields,
        );
        continue;
      }
      if (!context.table.forgetDone(row.relPath, row)) continue;
      forgotten.push(row.relPath);
      log.warn("{destination} is {problem} at the destination; sending {relPath} again", fields);
    }
  }
  log.info(
    "Catch-up of job {job}: {nights} night folder(s) checked, {count} file(s) to send again" +
      (lost > 0 ? ", {lost} missing or damaged that cannot be (their sources are gone)" : ""),
    { job: job.name, nights: recent.length, count: forgotten.length, lost },
  );
  return forgotten;
}

/**
 * Check `config` as `run` does before it starts.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @returns the status page's settings (`null` when it is off)
 * @throws {ConfigError} naming what is wrong and what to do
 */
export async function checkBeforeStart(
  config: Config,
  runsAs?: number | null,
): Promise<ListenSettings | null> {
  await checkUserPrograms(config.jobs, config.file, runsAs);
  assertCleanupSafe(config.jobs);
  assertDestinationsApart(config.jobs);
  return await listenSettings(config);
}

/**
 * Refuse destinations that would lose or endlessly repeat copies: two jobs
 * sending into one folder (a file of one would replace the other's file of
 * the same name there, without a word), and a local destination where the
 * job's own watch finds its copies again (each sent again, without end).
 *
 * @throws {ConfigError} naming the jobs and folders, and what to do
 */
export function assertDestinationsApart(jobs: JobConfig[]): void {
  const places = new Map<string, JobConfig>();
  for (const job of jobs) {
    const place = destinationPlace(job);
    const other = places.get(place);
    if (other !== undefined) {
      throw new ConfigError(
        `remote_base_path of jobs ${other.name} and ${job.name}: both send into ` +
          `${describePlace(job)}, where a file of one would replace the other's file of the same ` +
          "name without a word; give each job a folder of its own (for example " +
          `${job.remote_base_path.replace(/[/\\]+$/, "")}/${job.name})`,
      );
    }
    places.set(place, job);
    if (job.transfer_method === "local") assertCopiesNotWatched(job);
  }
}

/** Where a job's copies go, the same string for every job that sends there. */
function destinationPlace(job: JobConfig): string {
  if (job.transfer_method === "local") return `local:${realPathSoFar(job.remote_base_path)}`;
  const base = posix.normalize(job.remote_base_path.trim()).replace(/(.)\/+$/, "$1");
  const host = job.remote_host.trim().toLowerCase();
  // A base path that is not absolute is one per account (its home, or the FTP account's root).
  const user = job.transfer_method === "ftp" || !base.startsWith("/")
    ? `${job.remote_user.trim()}@`
    : "";
  const port = job.transfer_method === "ftp"
    ? `ftp:${job.ftp_port ?? 21}`
    : `ssh:${job.ssh_port ?? 22}`;
  return `${port}//${user}${host}/${base}`;
}

/** The destination folder of `job` as messages name it. */
function describePlace(job: JobConfig): string {
  return job.transfer_method === "local"
    ? job.remote_base_path
    : `${job.remote_host.trim()}:${job.remote_base_path}`;
}

/**
 * Refuse a local destination inside the watch folder that the watch would
 * enter (every copy would be found and sent again), or a watch folder that
 * is a night folder of the destination (the copies of that night land in it).
 */
function assertCopiesNotWatched(job: JobConfig): void {
  const base = realPathSoFar(job.remote_base_path);
  const watch = realPathSoFar(job.watch_path);
  const baseInWatch = relativeTo(watch, base);
  if (baseInWatch !== null) {
    const filter = createFileFilter(job, { skipLog: null });
    const segments = baseInWatch === "" ? [] : baseInWatch.split("/");
    const entered = segments.every((_, i) =>
      filter.dirSkip(segments.slice(0, i + 1).join("/")) === null
    );
    if (entered) {
      throw new ConfigError(
        `remote_base_path of job ${job.name}: ${base} is inside its watch_path ${watch}, so every ` +
          "copy would be found there and sent again, without end; choose a destination outside " +
          "the watch folder" +
          (baseInWatch === ""
            ? ""
            : ` (or leave it out with exclude_patterns: ["${baseInWatch}/**"])`),
      );
    }
  }
  const watchInBase = relativeTo(base, watch);
  if (watchInBase !== null && /^\d{8}(\/|$)/.test(watchInBase)) {
    throw new ConfigError(
      `watch_path of job ${job.name}: ${watch} is a night folder of its remote_base_path ${base}, ` +
        "where the copies of that night are written, so each would be sent again; choose a watch " +
        "folder outside the destination",
    );
  }
}

/**
 * `path` made absolute with the links of the part of it that exists resolved
 * (a destination or watch folder may not exist yet).
 */
function realPathSoFar(path: string): string {
  const missing: string[] = [];
  let existing = resolve(path);
  for (;;) {
    try {
      return join(Deno.realPathSync(existing), ...missing);
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return resolve(path);
      missing.unshift(basename(existing));
      existing = parent;
    }
  }
}
