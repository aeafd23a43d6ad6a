/**
 * Intake: from a file the watch session reports to a queued record. Events and scans put files
 * under observation (unless they are done as they are, or busy): the intake runs the job's
 * stability checker, which keeps each observation in the file's record of the file table (the
 * `observing` phase), nowhere else. A file found complete gets its destination planned, is recorded
 * `pending` in the file table, and is queued. Files that grow (`growing_patterns`) have their parts
 * sent while they grow (`growing_files.ts`). A file gone with its share (unmounted) is said so.
 *
 * @module
 */
import { join } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { freeDestination, planDestination } from "../layout/destination.ts";
import {
  birthTimeOf,
  changedBeforeCleanup,
  type Observation,
  observationOf,
  placeBeside,
} from "../layout/sent_before.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { LedgerRow, PendingFile } from "../ledger/file_rows.ts";
import { fromWatchFolder } from "../ledger/job_names.ts";
import type { Activity, StabilityChecker, StableFile } from "../watch/stability.ts";
import {
  type FileVersion,
  isFileAt,
  isGoneError,
  sameVersion,
  versionOf,
} from "../watch/file_version.ts";
import type { FoundFile } from "../watch/scan.ts";
import type { ScanFound } from "../watch/watch_session.ts";
import { linkRefused } from "../watch/entry_check.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import type { Transport } from "../transfer/transport.ts";
import type { FileTable, PlannedDecision } from "./file_table.ts";
import { GrowingSender } from "./growing_files.ts";
import { closesLost, intakeChecker } from "./intake_checker.ts";
import { sayIfAppended, sayPlaced } from "./placed_lines.ts";

/** What {@linkcode Intake} works with. */
export interface IntakeContext {
  job: JobConfig;
  table: FileTable;
  /** `run --once`: an incomplete FITS file is left for the next run instead of waited for. */
  once: boolean;
  /** Quiet time after a close-after-write for `close_shortcut_patterns` (ms). */
  closedForMs: number;
  /** Where the parts of growing files go. */
  transport: Transport;
  /** Aborted when the job stops. */
  signal: AbortSignal;
  /** A path that turned out to be no file: scan it if it is a folder; whether it was. */
  scanIfFolder(path: string): Promise<boolean>;
  /** Whether the job is stopping (nothing new starts). */
  stopping(): boolean;
  /** A record of `bytes` became sendable. */
  onQueued(bytes: number): void;
  /** Something settled (the job may be idle now). */
  onSettled(): void;
  /** A file that gave up is gone from the watch folder: it is no longer failed. */
  onFailedGone(rel: string): void;
  /** Why the watch folder cannot be read now (a share unmounted under it), or `null`. */
  watchProblem?(): Promise<string | null>;
}

/** Where a file goes, and why (see `Intake.#placeOf`). */
interface Placement {
  /** Where its name and the night rule lead. */
  planned: string;
  /** The ledger's row of its name. */
  row: LedgerRow | undefined;
  /** What its FITS header said of it (`observationOf`). */
  header: Observation;
  /** Where it goes (`placeBeside`), before another file's copy is looked for there. */
  placed: string;
  /** What planning found to say: DATE-OBS not used, a date ahead of the clock. */
  said: { fellBack: string[]; ahead?: { folder: string; message: string } };
  /** Incomplete, it goes beside the copy it would have gone over (see `placeBeside`). */
  keptOff: boolean;
}

/** The intake of one job; see the module doc. */
export class Intake {
  #context: IntakeContext;
  #log: Logger;
  /** Decides when the files under observation are complete. */
  #checker: StabilityChecker;
  /** Parts of files that are still growing (`growing_patterns`). */
  #growing: GrowingSender;
  /** Files whose destinations are known, to be recorded at the next turn (see `#plan`). */
  #planned: Array<PendingFile & { path: string }> = [];
  /** Night folders said to be named by a date ahead of the clock (once each a run). */
  #saidAhead = new Set<string>();
  /** Whether a FITS file grown by appended HDUs was said (once a run). */
  #saidAppended = false;
  #recordTimer: ReturnType<typeof setTimeout> | undefined;
  /** The places of growing files decided at their first part, by path (see `#plan`). */
  #decided = new Map<string, Promise<Placement | null>>();

  constructor(context: IntakeContext) {
    const { job } = context;
    this.#log = jobLogger("pipeline", job.name);
    this.#context = context;
    this.#checker = intakeChecker(context, this.#log, {
      onReady: (file) => this.#ready(file),
      onGone: (path) => void this.#gone(path),
    });
    const { ledger, target } = context.table, kept = `growing_parts\n${target}\n${job.name}`;
    this.#growing = new GrowingSender({
      job,
      transport: context.transport,
      signal: context.signal,
      growing: (rel) => context.table.observations.get(rel) !== undefined,
      // Kept for the next start (a stop, a crash): the copies there are continued or removed.
      kept: { read: () => ledger.meta(kept), write: (value) => ledger.setMeta(kept, value) },
      // Decided once, as for the complete file, which goes there too (see `#plan`).
      place: async (rel, path, version) => {
        const placement = await this.#decide(rel, path, version);
        return placement && this.#free(rel, placement.placed);
      },
    });
  }

  /**
   * Observe the file at `path` (again): it changed, or its attempt found it changed (`found`: the
   * start found it as the last run left it).
   */
  observe(path: string, activity: Activity = "changed"): void {
    this.#checker.touch(path, activity);
  }

  /** Events were lost before `beforeMs` (performance.now() ms): see `closesLost`. */
  closesLost = (beforeMs: number): void => closesLost(this.#checker, this.#log, beforeMs);

  /** Stop observing at once (the job stops); resolves when a growing file's part in flight ends. */
  close(): Promise<void> {
    this.#checker.close();
    return this.#growing.close();
  }

  /**
   * A watched file was created, written, closed, renamed (to `renamedTo`) or removed. Removed,
   * one in motion is looked at (the checker tells if it is gone), one that failed dropped if so.
   */
  activity(path: string, rel: string, activity: Activity | "removed", renamedTo?: string): void {
    const { table } = this.#context;
    if (activity !== "removed") this.#growing.touched(path, rel);
    else if (!table.holds(rel)) return void this.#failedGone(rel);
    if (!table.activity(rel)) return;
    // The new name is on its record while the checker looks (its drop says it); then forgotten.
    table.renamed(rel, renamedTo);
    this.#checker.touch(path, activity === "removed" ? "changed" : activity);
    table.renamed(rel);
  }

  /** Removed, nothing in motion there: the failed files it was or held are dropped once gone. */
  async #failedGone(rel: string): Promise<void> {
    const { table, job } = this.#context;
    // A path with a row is a file (a source cleaned up once it arrived: done): the one look.
    const row = table.rows.get(rel);
    const failed = row
      ? (row.state === "failed" ? [rel] : [])
      : table.rows.inState("failed").map((row) => row.relPath).filter((r) =>
        r.startsWith(`${rel}/`)
      );
    for (const gone of failed) {
      const goneAt = join(job.watch_path, gone);
      // Gone only if nothing is there: a look that fails otherwise (a share's hiccup) says nothing.
      if (await Deno.lstat(goneAt).then(() => false, isGoneError)) await this.#gone(goneAt);
    }
  }

  /**
   * Files found by a scan: observe those that are new or changed, and return
   * them. `quick`: a file sent before counts as unchanged without a stat; `how`: "moved" for the
   * files of a folder moved in (see `WatchSessionOptions.onFound`).
   */
  found(files: FoundFile[], quick = false, how: ScanFound = "found"): FoundFile[] {
    const { table } = this.#context, checker = this.#checker;
    const found: FoundFile[] = [];
    // Held: in motion (under observation too) or found while it could not be recorded.
    const free = files.filter((file) => {
      if (!table.holds(file.relPath)) return true;
      // A file of a folder moved in that another scan found first (the re-read of the folder it
      // came into, say): under observation still, it is told how it came.
      if (how === "moved" && checker.has(file.path)) checker.touch(file.path, "moved");
      else checker.lookAgainNow(file.path); // Listed: one that could not be looked at may be now.
      return false;
    });
    const relPaths = free.map((file) => file.relPath);
    const done = quick ? table.rows.doneAmong(relPaths) : table.rows.doneVersions(relPaths);
    for (let index = 0; index < free.length; index++) {
      const file = free[index];
      const entry = done[index];
      if (entry === true) continue; // Quick: a file sent before is taken as unchanged.
      if (entry) {
        // Synchronous stat: ~4 µs, against ~20 µs for a promise per file at 100,000 files.
        let info: Deno.FileInfo;
        try {
          info = Deno.statSync(file.path);
          if (sameVersion(versionOf(info), entry)) continue;
        } catch (error) {
          // Gone since the scan; one that cannot be looked at now is observed (looked at again).
          if (isGoneError(error)) continue;
        }
      }
      found.push(file);
      checker.touch(file.path, how);
      this.#growing.touched(file.path, file.relPath);
    }
    return found;
  }

  /** The stability checker found a file complete. */
  #ready(file: StableFile): void {
    const { job, table } = this.#context;
    if (this.#context.stopping()) return;
    if (file.truncated) {
      const { path, truncated: { reason } } = file;
      this.#log.warn(
        "Sending {path} although its FITS structure is incomplete ({reason}); it has not changed for {seconds} s or more",
        { path, reason, seconds: job.fits_incomplete_grace_seconds },
      );
    }
    const rel = relativeTo(job.watch_path, file.path);
    if (rel === null) return;
    // A link took its name while it was observed (or queued, then changed): what a scan skips.
    const refused = linkRefused(file.path, job);
    if (refused !== null) return void this.#gone(file.path, refused);
    if (file.hduStarts && !job.fits_appends_extensions && !this.#saidAppended) {
      const [sent] = table.rows.doneVersions([rel]);
      this.#saidAppended = sayIfAppended(this.#log, { ...file, hduStarts: file.hduStarts }, sent);
    }
    const version = { size: file.size, mtimeMs: file.mtimeMs };
    const decision = table.ready(rel, version);
    if (decision === "plan") this.#plan(rel, file.path, version, file.truncated !== undefined);
    else if (decision === "keep") this.#context.onQueued(version.size);
    this.#context.onSettled();
  }

  /**
   * A file under observation disappeared, a folder took its name (scanned as new), or a link the
   * job does not send (`refused`: why): its pending row goes, and the copy kept to continue it; a
   * file under its name again by then (not a refused link) is observed instead.
   */
  async #gone(path: string, refused?: string): Promise<void> {
    const { job, table, transport } = this.#context;
    const rel = relativeTo(job.watch_path, path);
    // Read at once (the checker tells a file gone before its record goes): this file's record.
    const seen = rel === null ? undefined : table.record(rel);
    const { renamedTo } = seen ?? {}, complete = seen !== undefined && seen.phase !== "observing";
    if (this.#context.stopping()) return;
    const folder = await this.#context.scanIfFolder(path);
    // Gone with its share (unmounted: the empty mount point left), not deleted: found once back.
    const away = folder || refused ? null : await this.#context.watchProblem?.();
    // A file under its name again (written anew, or moved in, meanwhile) is not dropped: observed,
    // as is one that cannot be looked at now (the checker looks again, and says so).
    if (refused === undefined && rel !== null && isFileAt(path) !== false) {
      if (!this.#checker.has(path)) this.activity(path, rel, "changed");
      return this.#context.onSettled();
    }
    // What it had sent while it grew will not be continued.
    this.#decided.delete(path);
    this.#growing.gone(path);
    const row = rel === null ? undefined : table.rows.get(rel);
    const failed = rel !== null && row?.state === "failed";
    // Gone after it arrived (a local copy reads on from the file it opened): not before it was.
    const arrived = !complete && row?.state === "done";
    const dropped = rel === null ? null : table.gone(rel);
    if (dropped !== null) transport.dropKeptCopies?.([dropped]);
    if (failed) this.#context.onFailedGone(rel);
    const why = folder
      ? "a folder took its name"
      : away
      ? `its watch folder cannot be read (${away}); it is found again once the folder can be read`
      : refused !== undefined
      ? `what has its name now is not sent (${refused})`
      : failed
      ? "it is gone from the watch folder (its attempts had failed)"
      : complete
      ? "it is gone from the watch folder"
      : arrived
      ? "it is gone from the watch folder (it had arrived)"
      : renamedTo === undefined
      ? "it was deleted or moved away before it was complete"
      : "it was renamed to {renamedTo} before it was complete";
    if (!folder || dropped !== null) this.#log.info(`Dropped {path}: ${why}`, { path, renamedTo });
    this.#context.onSettled();
  }

  /**
   * Plan the destination of a file found complete, record it pending, and queue it. A growing
   * file goes where its parts went: its place was decided once, for both, as they went.
   */
  #plan(rel: string, path: string, version: FileVersion, incomplete = false): void {
    const decided = this.#decided.get(path);
    this.#decided.delete(path);
    const placeOf = () => this.#placeOf(rel, path, version, incomplete);
    const placing = decided?.then((placement) => placement ?? placeOf());
    (placing ?? placeOf()).then((placement) => {
      if (placement === null || this.#context.stopping()) return null;
      const { planned, said } = placement;
      for (const reason of said.fellBack) this.#log.warn("{reason}", { path, reason });
      if (said.ahead !== undefined && !this.#saidAhead.has(said.ahead.folder)) {
        this.#saidAhead.add(said.ahead.folder);
        const { message } = said.ahead;
        this.#log.warn("{message} (said once per night folder)", { path, message });
      }
      const { row, header, placed } = placement;
      const changed = row !== undefined && changedBeforeCleanup(this.#context.job, row, path);
      if (row) {
        const { keptOff } = placement;
        const where = { earlier: row.destination, planned, placed, header, changed, keptOff };
        sayPlaced(this.#log, path, where);
      }
      const destination = this.#free(rel, placed);
      if (destination !== placed && destination !== row?.destination) {
        this.#log.info(
          "{path} would go to {taken}, where another file's copy is (a file sent is never replaced by another): it goes to {destination}, beside it",
          { path, taken: placed, destination },
        );
      }
      // Parts of it sent elsewhere (a copy taken meanwhile, a part's place not decided) go.
      this.#growing.planned(path, destination);
      return destination;
    }).then((destination) => {
      if (destination === null) return this.#context.onSettled();
      // Its birth time tells it from a new file under its name later, whatever the clocks do.
      const bornMs = birthTimeOf(path);
      this.#planned.push({ relPath: rel, path, ...version, destination, bornMs });
      // The files of a burst planned meanwhile are recorded with it, in one transaction.
      this.#recordTimer ??= setTimeout(() => this.#recordPlanned(), 0);
    }, (error) => this.#planFailed(rel, path, error));
  }

  /** The place of the growing file at `path`, decided at its first part (see `#plan`). */
  #decide(rel: string, path: string, version: FileVersion): Promise<Placement | null> {
    let decided = this.#decided.get(path);
    if (decided === undefined) {
      this.#decided.set(path, decided = this.#placeOf(rel, path, version).catch(() => null));
    }
    return decided;
  }

  /**
   * Where the file `rel` at `path`, at `version`, goes: its night folder and name, or, under a
   * name sent before, over its own copy or a new one beside the earlier one (see `placeBeside`),
   * what is to be said of it kept for the plan; `null` when the job stops meanwhile.
   */
  async #placeOf(
    rel: string,
    path: string,
    version: FileVersion,
    incomplete = false,
  ): Promise<Placement | null> {
    const { job } = this.#context;
    const said: Placement["said"] = { fellBack: [] };
    const planned = await planDestination(
      job,
      { path, relPath: rel, mtimeMs: version.mtimeMs },
      new Date(),
      (reason) => said.fellBack.push(reason),
      (folder, message) => said.ahead = { folder, message },
    );
    if (this.#context.stopping()) return null;
    const row = this.#rowOf(rel);
    // Its header is read only where the rule now names another night than its copy's.
    const header = row === undefined
      ? null
      : await observationOf(job, { path, ...version }, planned, row);
    if (this.#context.stopping()) return null;
    // A version planned beside an earlier file and changed before it arrived keeps its place.
    const placed = placeBeside(job, planned, row, path, header, incomplete);
    // Said where only its being incomplete keeps it off the copy it would go over.
    const keptOff = incomplete && placed !== placeBeside(job, planned, row, path, header);
    return { planned, row, header, placed, said, keptOff };
  }

  /** `placed`, or the name beside it that no other file's copy holds (see `freeDestination`). */
  #free(rel: string, placed: string): string {
    return freeDestination(placed, rel, (prefix) => {
      let sent: Array<{ relPath: string; destination: string }> = [];
      try {
        sent = this.#context.table.rows.destinationsFrom(prefix);
      } catch { /* Unreadable: recording the file fails too; it is planned again once it can. */ }
      return [...this.#planned.filter((plan) => plan.relPath.startsWith(prefix)), ...sent];
    });
  }

  /** The ledger's row of `rel`; unreadable: none (recording the file fails too, planned again). */
  #rowOf(rel: string): LedgerRow | undefined {
    try {
      return fromWatchFolder(this.#context.table.rows, this.#context.table.rows.get(rel));
    } catch {
      return undefined;
    }
  }

  /** The ledger can be written again: files found complete meanwhile, unchanged, go on as found. */
  replan(plans: PendingFile[]): void {
    for (const plan of plans) {
      const version = { size: plan.size, mtimeMs: plan.mtimeMs };
      if (this.#context.table.ready(plan.relPath, version) !== "plan") continue;
      this.#planned.push({ ...plan, path: join(this.#context.job.watch_path, plan.relPath) });
      this.#recordTimer ??= setTimeout(() => this.#recordPlanned(), 0);
    }
  }

  /** Record the files planned since the last turn pending, and queue them. */
  #recordPlanned(): void {
    this.#recordTimer = undefined;
    const plans = this.#planned;
    this.#planned = [];
    if (this.#context.stopping()) return this.#context.onSettled();
    let decisions: PlannedDecision[];
    try {
      decisions = this.#context.table.plannedAll(plans);
    } catch (error) {
      for (const { relPath, path } of plans) this.#planFailed(relPath, path, error);
      return;
    }
    for (const [i, decision] of decisions.entries()) {
      const { path, destination } = plans[i];
      if (decision === "observe") this.#checker.touch(path);
      if (decision !== "queued") continue;
      this.#log.debug("Ready: {path} -> {destination}", { path, destination });
      this.#context.onQueued(plans[i].size);
    }
    this.#context.onSettled();
  }

  #planFailed(rel: string, path: string, error: unknown): void {
    if (!this.#context.stopping()) {
      this.#context.table.planFailed(rel);
      this.#log.error("Cannot plan the destination of {path}: {error}", {
        path,
        error: String(error),
      });
    }
    this.#context.onSettled();
  }
}
