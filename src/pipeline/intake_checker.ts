/**
 * The stability checker of a job's intake: its settings from the job (the window, the close
 * shortcut, growing files, the FITS grace, `--once`), the observations it keeps in the job's file
 * table, and what it says in the job's log while a file waits (an incomplete FITS file, one its
 * writer still has open, one left for a later run, one it cannot look at for now).
 *
 * @module
 */
import type { Logger } from "../log/logging.ts";
import {
  type ObservationStore,
  StabilityChecker,
  type StabilityOptions,
} from "../watch/stability.ts";
import { createFileFilter } from "../watch/file_filter.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import type { IntakeContext } from "./intake.ts";

/** The checker of the intake of `context`'s job, which says in `log` why a file waits. */
export function intakeChecker(
  context: IntakeContext,
  log: Logger,
  on: Pick<StabilityOptions, "onReady" | "onGone">,
): StabilityChecker {
  const { job } = context;
  const stableForMs = job.stability_window_seconds * 1000;
  // Only asks whether a name matches: what it does not match is not skipped, so it says nothing.
  const matching = (file_patterns: string[]) =>
    createFileFilter({ ...job, watch_path: undefined, file_patterns, exclude_patterns: [] }, {
      skipLog: null,
    });
  const shortcut = matching(job.close_shortcut_patterns);
  // A file whose source goes once it arrived must not go while its writer still writes it (a
  // pause longer than the window): where closes are told, it waits for its close, whatever its
  // kind. A FITS file too, whatever its structure says: a header-only cube whose frames follow
  // (NAXIS3 = 0 until the writer seeks back) is "complete", and one whose data is still to come
  // is "incomplete"; sent then (at once, or at the grace's end) and removed, what its writer
  // wrote after that went into a file no folder holds any more.
  const removesSources = job.after_transfer !== "keep";
  return new StabilityChecker({
    ...on,
    stableForMs,
    closedForMs: Math.min(stableForMs, context.closedForMs),
    closeShortcut: (path) => {
      const rel = relativeTo(job.watch_path, path);
      return rel !== null && shortcut.includesFile(rel);
    },
    waitsForClose: (path) => removesSources && relativeTo(job.watch_path, path) !== null,
    fitsAppended: job.fits_appends_extensions,
    incompleteGraceMs: job.fits_incomplete_grace_seconds * 1000,
    // `--once` sends what is complete now; an incomplete FITS file waits for the next run.
    waitForIncomplete: !context.once,
    sentAs: (path) => {
      const rel = relativeTo(job.watch_path, path) ?? "";
      const sending = context.table.record(rel)?.version; // size -1 while observed anew
      return sending && sending.size >= 0 ? sending : context.table.rows.doneVersions([rel])[0];
    },
    onIncomplete: (path, reason, graceLeftMs) =>
      graceLeftMs === Infinity
        ? log.info(
          "{path} has not changed for the stability window, but {reason}; job {job} sends it " +
            "once its writer closed it, and then {how} the source (after_transfer: {mode})",
          { path, reason, how: `${job.after_transfer}s`, mode: job.after_transfer },
        )
        : log.info(
          "{path} has not changed for the stability window, but {reason}; job {job} waits up to {seconds} s more for the rest, then sends it as it is",
          { path, reason, seconds: Math.ceil(graceLeftMs / 1000) },
        ),
    // `--once` leaves such a file for a later run (`onLeft` says why).
    onUnreadable: context.once
      ? undefined
      : (path, error, forMs) => sayUnreadable(log, path, error, forMs),
    onLeft: (path, reason) => {
      log.info("Left {path} for a later run: {reason}; `run` without --once waits for it", {
        path,
        reason,
      });
      context.onSettled();
    },
    store: observationsByPath(job.watch_path, context.table.observations),
  });
}

/**
 * Events were lost before `beforeMs` (performance.now() ms), maybe closes: the files `checker`
 * saw written and not closed since no longer wait for a close (see `forgetOpen`), said in `log`.
 */
export function closesLost(checker: StabilityChecker, log: Logger, beforeMs: number): void {
  const count = checker.closesLost(beforeMs);
  if (count === 0) return;
  log.info(
    "Events were lost: {count} file(s) job {job} saw written and not closed since may have been closed meanwhile, so they no longer wait for a close and go once unchanged for the stability window (as files a scan found)",
    { count },
  );
}

/**
 * A file under observation cannot be looked at (its stat failed otherwise than "not found"),
 * still cannot after `forMs`, or can again (`error` null): said at first, then at most hourly.
 */
function sayUnreadable(log: Logger, path: string, error: Error | null, forMs: number): void {
  const seconds = Math.round(forMs / 1000);
  if (error === null) {
    return log.info(
      "{path} can be looked at again (after {seconds} s); job {job} goes on with it as before",
      { path, seconds },
    );
  }
  const still = forMs > 0 ? `still, ${Math.round(seconds / 60)} min on, ` : "";
  log.warn(
    `Cannot look at {path} ${still}({error}); it is not taken as gone: job {job} keeps looking at it and sends it once it can be read (said again at most hourly while this lasts)`,
    { path, error: error.message },
  );
}

/**
 * The checker knows files by absolute path, the table by path relative to
 * the watch folder (`root`): `byRel` seen by absolute path (a path outside
 * the watch folder has no observation).
 */
function observationsByPath(root: string, byRel: ObservationStore): ObservationStore {
  const at = (path: string) => relativeTo(root, path);
  return {
    get: (path) => {
      const rel = at(path);
      return rel === null ? undefined : byRel.get(rel);
    },
    set: (path, observation) => {
      const rel = at(path);
      if (rel !== null) byRel.set(rel, observation);
    },
    delete: (path) => {
      const rel = at(path);
      if (rel !== null) byRel.delete(rel);
    },
    values: () => byRel.values(),
    clear: () => byRel.clear(),
  };
}
