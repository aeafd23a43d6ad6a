/**
 * Source clean-up (`after_transfer: delete | move`, `keep_days`): a source is
 * removed from the watch folder only when the ledger holds it as arrived
 * verified and the file on disk is still a regular file with the size and
 * mtime it was sent with; one kept `keep_days` also only while its copy is
 * still at the destination (asked again right before: `arrived_copies.ts`).
 * Nothing else is ever touched, but for the job's own copies that an
 * interrupted move left in the archive (`archive_move.ts`).
 *
 * @module
 */
import { linkedFolder } from "../layout/watch_folder_paths.ts";
import { relative, resolve } from "node:path";
import { FolderFileSystem } from "../config/file_systems.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { JobConfig } from "../config/types.ts";
import type { FileRows } from "../ledger/file_rows.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { absolutePath, type FileVersion, sameVersion, versionOf } from "../watch/file_version.ts";
import { jobOwners } from "../transfer/temp_name.ts";
import { ArchiveMover } from "./archive_move.ts";
import type { ArrivedFile } from "./arrived_copies.ts";

/** How often sources kept for `keep_days` are looked at. */
export const CLEANUP_INTERVAL_MS = 3_600_000;

const DAY_MS = 86_400_000;

/** One source to remove, and how. */
export interface CleanupStep {
  relPath: string;
  source: string;
  /** `null` to delete; else the path the source is moved to. */
  moveTo: string | null;
}

/** The step for a source whose ledger version is `sent`, or `null` when it must stay. */
export async function cleanupStep(
  job: JobConfig,
  relPath: string,
  sent: FileVersion,
): Promise<CleanupStep | null> {
  if (job.after_transfer === "keep") return null;
  const source = absolutePath(job.watch_path, relPath);
  const info = await Deno.lstat(source).catch(() => null);
  // Never a link, never a file that changed after it was sent.
  if (!info?.isFile || !sameVersion(versionOf(info), sent)) return null;
  // Nor a file reached through a folder swapped for a link since (the lstat follows it), unless
  // the job follows links.
  if (job.symlinks !== "follow" && linkedFolder(job.watch_path, source) !== null) return null;
  const moveTo = job.after_transfer === "move"
    ? absolutePath(resolve(job.archive_path), relPath)
    : null;
  return { relPath, source, moveTo };
}

/** A step due by the ledger, with the file as it arrived. */
export type DueStep = CleanupStep & { arrived: ArrivedFile };

/**
 * Every step due now for `job` by the ledger (files that arrived at least
 * `keep_days` ago), in arrival order; for `run --dry-run` and the periodic pass.
 */
export async function dueSteps(
  job: JobConfig,
  table: FileRows,
  now: number,
): Promise<DueStep[]> {
  if (job.after_transfer === "keep") return [];
  const steps: DueStep[] = [];
  for (const row of table.doneArrivedBy(now - job.keep_days * DAY_MS)) {
    const step = await cleanupStep(job, row.relPath, row);
    if (step) steps.push({ ...step, arrived: row });
  }
  return steps;
}

/** Removes one job's sources as configured; see the module doc. */
export class SourceCleaner {
  #job: JobConfig;
  #table: FileRows;
  #log: Logger;
  #mover: ArchiveMover;
  /** The archive's file system, to tell a share not mounted there (`null`: no archive). */
  #archivedOn: FolderFileSystem | null;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** One step at a time, in order. */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Sources whose delete or move into the archive failed (each logged), reloads included. */
  #failures: number;
  /** Told of each source whose delete or move failed, as it is counted (see `JobExtras`). */
  onFailure: () => void = () => {};
  /** Without `keep_days`: the steps that failed, tried again on the job's retry delays. */
  #retrying = new Map<string, CleanupStep>();
  /**
   * The sources whose last delete or move failed, with its error: each counted in `#failures`
   * once, and said at ERROR once while it fails as before.
   */
  #failing: Map<string, string>;
  /** The sources of the task under way that failed again as before: said in one line at its end. */
  #repeats: { source: string; error: string; again: string }[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** The delay of the round of retries pending (doubled each round that fails again), and its time. */
  #retryDelayMs = 0;
  #retryAtMs = 0;

  /** Tasks called for and not done yet (see {@linkcode settled}). */
  #pending = 0;
  /** `run --once`: what fails is tried again at the next run, not later in this one. */
  #once: boolean;
  /** Which of the files due after `keep_days` still have their copy at the destination. */
  #copiesThere: ((files: ArrivedFile[]) => Promise<Set<string>>) | null;

  /**
   * @param options.replaces the job's cleaner a reload replaced: its failures go on counting here
   * @param options.ledger where the archive's file system is kept, beside this install's id
   * @param options.copiesThere which of the files due after `keep_days` still have their copy at
   *   the destination (it throws where the destination cannot be asked); without it, all
   */
  constructor(
    job: JobConfig,
    table: FileRows,
    options: {
      replaces?: SourceCleaner | null;
      ledger?: Ledger | null;
      once?: boolean;
      copiesThere?: (files: ArrivedFile[]) => Promise<Set<string>>;
    } = {},
  ) {
    const { replaces = null, ledger = null } = options;
    this.#once = options.once ?? false;
    this.#copiesThere = options.copiesThere ?? null;
    this.#failures = replaces === null ? 0 : replaces.#failures;
    this.#failing = new Map(replaces === null ? [] : replaces.#failing);
    this.#archivedOn = job.after_transfer === "move"
      ? new FolderFileSystem(resolve(job.archive_path), ledger, "archived")
      : null;
    this.#log = jobLogger("cleanup", job.name);
    this.#job = job;
    this.#table = table;
    this.#mover = new ArchiveMover(jobOwners(job, ledger), (path) => {
      this.#log.info("Removed {path}: a copy left unfinished by an interrupted move", { path });
    });
  }

  /** Sources whose delete or move into the archive failed since the daemon started (each logged). */
  get failures(): number {
    return this.#failures;
  }

  /** Look for due sources now and (with `keep_days`) every hour. */
  start(): void {
    if (this.#job.after_transfer === "keep") return;
    this.#pass();
    if (this.#job.keep_days > 0) this.#timer = setInterval(() => this.#pass(), CLEANUP_INTERVAL_MS);
  }

  /** A file arrived verified with `version`: without `keep_days`, it goes now. */
  arrived(relPath: string, version: FileVersion): void {
    if (this.#job.after_transfer === "keep" || this.#job.keep_days > 0) return;
    this.#then(async () => {
      const step = await cleanupStep(this.#job, relPath, version);
      if (step) await this.#apply(step);
    });
  }

  /**
   * Resolves when the work called for so far (a look for due sources included) is done: whether
   * there was any (`run --once` waits for it before it stops, then for what it found to send).
   */
  async settled(): Promise<boolean> {
    if (this.#pending === 0) return false;
    while (this.#pending > 0) await this.#chain;
    return true;
  }

  /** Stop; with `drain` (`run --once`) the steps already called for run first. */
  async close(drain: boolean): Promise<void> {
    clearInterval(this.#timer);
    clearTimeout(this.#retryTimer);
    if (!drain) this.#closed = true;
    await this.#chain;
    this.#closed = true;
  }

  #pass(): void {
    this.#then(async () => {
      const steps = await dueSteps(this.#job, this.#table, Date.now());
      if (steps.length === 0) return;
      // Kept for days, a copy may have gone meanwhile (removed there, a disk replaced): the source
      // goes only while its copy is still there.
      let there: Set<string> | null = null;
      try {
        there = await this.#copiesThere?.(steps.map((step) => step.arrived)) ?? null;
      } catch (error) {
        if (this.#closed) return; // Stopped while it asked.
        this.#log.warn(
          "Cannot look at the destination for the {count} source(s) due for clean-up ({error}): " +
            `they stay in the watch folder until the next look, ${
              this.#once ? "at the next run" : "within the hour"
            }`,
          { count: steps.length, error: error instanceof Error ? error.message : String(error) },
        );
        return;
      }
      for (const step of steps) {
        if (this.#closed) return;
        if (there === null || there.has(step.relPath)) await this.#apply(step);
      }
    });
  }

  /**
   * Try `step` again after the job's retry delay (`retry_delay_seconds`, doubled each round that
   * fails again, up to `retry_max_delay_seconds`); @returns when, for the log
   */
  #retryLater(step: CleanupStep): string {
    this.#retrying.set(step.relPath, step);
    if (this.#retryTimer === undefined) {
      const [first, most] = [this.#job.retry_delay_seconds, this.#job.retry_max_delay_seconds];
      const delayMs = Math.min(Math.max(this.#retryDelayMs * 2, first * 1000), most * 1000);
      this.#retryDelayMs = Math.max(delayMs, 1000);
      this.#retryAtMs = Date.now() + this.#retryDelayMs;
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        const steps = [...this.#retrying.values()];
        this.#retrying.clear();
        this.#then(async () => {
          for (const again of steps) {
            if (this.#closed) return;
            await this.#apply(again);
          }
          if (this.#retrying.size === 0) this.#retryDelayMs = 0;
        });
      }, this.#retryDelayMs);
    }
    return `in ${Math.max(1, Math.round((this.#retryAtMs - Date.now()) / 1000))} s`;
  }

  #then(task: () => Promise<void>): void {
    this.#pending++;
    this.#chain = this.#chain.then(() => this.#closed ? undefined : task()).catch((error) => {
      this.#log.error("Source clean-up failed: {error}", {
        error: error instanceof Error ? error.message : String(error),
      });
    }).finally(() => {
      this.#pending--;
      this.#sayRepeats();
    });
  }

  /**
   * One line for the sources of the task just done that failed again as they failed before (a
   * watch share mounted read-only): not a line each at every round of retries.
   */
  #sayRepeats(): void {
    const repeats = this.#repeats;
    if (repeats.length === 0) return;
    this.#repeats = [];
    const [first, last] = [repeats[0], repeats[repeats.length - 1]];
    const what = this.#job.after_transfer === "move" ? "moved into the archive" : "deleted";
    this.#log.error(
      `{count} source(s) still cannot be ${what} after their transfer ({source}: {error}); ` +
        `they stay in the watch folder and are tried again ${last.again}`,
      { count: repeats.length, source: first.source, error: first.error },
    );
  }

  /** Delete or move the source, checking it once more right before. */
  async #apply(step: CleanupStep): Promise<void> {
    const job = this.#job;
    const row = this.#table.get(step.relPath);
    if (row?.state !== "done") return;
    // The ledger's version, checked again right before the source goes.
    if (!(await cleanupStep(job, step.relPath, row))) return;
    const fields = { source: step.source, archive: step.moveTo };
    const before = this.#failing.get(step.relPath);
    this.#failing.delete(step.relPath); // Back below if it fails again.
    try {
      if (step.moveTo === null) {
        await Deno.remove(step.source);
        this.#log.info("Deleted {source}: it arrived verified", fields);
      } else {
        // Not into the mount point of an archive share that is not mounted: onto the disk below.
        const unmounted = await this.#archivedOn?.unmountedShare();
        if (unmounted) throw new Error(`${unmounted} (a share that is not mounted): mount it`);
        const moved = await this.#mover.move(step.source, step.moveTo, row);
        if (moved.archive === null) {
          this.#log.warn(
            "{source} changed while it was copied into the archive ({reason}): that copy is " +
              "removed and the source stays (sent again if its size or mtime changed)",
            { ...fields, reason: moved.changed },
          );
          return;
        }
        const archive = moved.archive;
        await this.#archivedOn?.remember(relative(resolve(job.archive_path), archive));
        const beside = archive === step.moveTo ? "" : " (a file of that name is there: beside it)";
        this.#log.info(`Moved {source} to {archive}: it arrived verified${beside}`, {
          ...fields,
          archive,
        });
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (before === undefined) {
        this.#failures++;
        this.onFailure();
      }
      this.#failing.set(step.relPath, message);
      // Tried again at the next pass with keep_days (hourly), else on the job's retry delays.
      const again = this.#once
        ? "at the next run"
        : job.keep_days > 0
        ? "within the hour"
        : this.#retryLater(step);
      const what = step.moveTo === null
        ? "Cannot delete {source} after its transfer"
        : "Cannot move {source} into the archive ({archive}) after its transfer";
      const line = `${what}: {error}; it stays in the watch folder and is tried again ${again}`;
      if (before !== message) return this.#log.error(line, { ...fields, error: message });
      // Failing as it did: said with the others of this round (`#sayRepeats`).
      this.#log.debug(line, { ...fields, error: message });
      this.#repeats.push({ source: step.source, error: message, again });
    }
  }
}
