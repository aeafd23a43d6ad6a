/**
 * The stability checker: decides when a file is completely written.
 *
 * - A FITS file (by content: `SIMPLE  =` first) is complete when its structure says so
 *   (`layout/fits_structure.ts`). Closed by its writer and complete, it is ready at once; found
 *   without a close (a scan, a poll), it is ready once unchanged for a short confirmation if its
 *   mtime is older than the window. Seen written (Linux tells closes; a write moves the mtime) and
 *   not closed since, one open to more HDUs (or announcing them) waits for its close, up to the
 *   grace. Structurally incomplete (whatever its closes say), or announcing HDUs that are not
 *   there with no close (nor, Linux, a rename into the folder) seen, it waits; unchanged that
 *   way for the grace (from its mtime only if a scan found it as it was left, never if it was
 *   seen changing), it is ready with `truncated` set. Longer than its structure, unreadable as
 *   FITS, or closed and open to more HDUs where writers append them after closing
 *   (`fitsAppended`), it is like any other file. One whose read fails (an I/O error, its
 *   permissions) is not known yet: read again within a second, the window deciding meanwhile.
 * - Any other file is ready when its size and mtime have not changed, and no
 *   event arrived for it, for the stability window. A close-after-write
 *   (Linux) shortens the wait to a short confirmation only for files the
 *   caller allows (`closeShortcut`), and never for an empty file.
 * - A file the caller names (`waitsForClose`, by its path and structure) that its writer still
 *   has open (seen written, Linux, not closed since) waits for its close however long, unless
 *   events were lost since (`closesLost`): its close may have been among them.
 * - A file that disappears is dropped (`onGone`), never reported ready. One whose stat fails
 *   otherwise (an I/O error on a share, a folder's permissions) is not taken as gone: it stays
 *   under observation, is looked at again (see `observation.ts`) and said (`onUnreadable`), and
 *   goes on as before once it can be looked at.
 *
 * Idle cost is zero: one timer per file under observation, none when nothing is pending.
 * A file's version and where a watch-relative path lives on disk are in `file_version.ts`.
 *
 * @module
 */
import { type FitsStructure, readFitsStructure } from "../layout/fits_structure.ts";
import { isGoneError, sameVersion } from "./file_version.ts";
import { type Activity, forgetOpen, lookAt, lookFailed } from "./observation.ts";
import type { Observation, ObservationStore } from "./observation.ts";

export { type Activity, activityOf } from "./observation.ts";
export type { Observation, ObservationStore } from "./observation.ts";

/** What the checker knows of a file that became ready. */
export interface StableFile {
  path: string;
  size: number;
  mtimeMs: number;
  /** Where the HDUs of a complete FITS file with extensions start (bytes). */
  hduStarts?: number[];
  /** Set for a FITS file reported although its structure says it is incomplete. */
  truncated?: {
    /** Bytes its structure needs (at least), when known. */
    expectedBytes: number | null;
    /** What is missing, e.g. "HDU 0 ends at byte 23040, the file has 8640". */
    reason: string;
  };
}

/** Options of {@linkcode StabilityChecker}. */
export interface StabilityOptions {
  /** Quiet time (ms) required after the last change. */
  stableForMs: number;
  /**
   * Quiet time (ms) after a close-after-write for a non-empty file that
   * `closeShortcut` allows, if shorter than `stableForMs`.
   * @default stableForMs
   */
  closedForMs?: number;
  /** Whether the file at `path` may take the `closedForMs` shortcut. @default none may */
  closeShortcut?: (path: string) => boolean;
  /** Whether `path` (its structure now), seen written and not closed since, waits for its close.
   * @default none */
  waitsForClose?: (path: string, structure: FitsStructure) => boolean;
  /**
   * Writers close FITS files and append HDUs later: a complete FITS file to
   * which HDUs may be appended is treated like any other file (the window).
   * @default false
   */
  fitsAppended?: boolean;
  /**
   * How long (ms) a structurally incomplete FITS file must stay unchanged (by
   * our observation or by its mtime) before it is reported as truncated.
   * @default 600000
   */
  incompleteGraceMs?: number;
  /**
   * false: once stable for the window, a structurally incomplete FITS file
   * whose grace has not passed is given up (`onLeft`) instead of waited for,
   * and so is at once a file that cannot be looked at (see `onUnreadable`).
   * @default true
   */
  waitForIncomplete?: boolean;
  /** The version `path` is or was sent with, if any (a "modify" that kept it is no write). */
  sentAs?: (path: string) => { size: number; mtimeMs: number } | undefined;
  /** Called once per file when it is ready. */
  onReady: (file: StableFile) => void;
  /** Called when a file under observation disappears, before its observation is dropped. */
  onGone?: (path: string) => void;
  /** Called when a file is given up without being ready (see `waitForIncomplete`). */
  onLeft?: (path: string, reason: string) => void;
  /**
   * Called once per file when a FITS file stayed unchanged for the window
   * although its structure is incomplete, and waits up to the grace
   * (`graceLeftMs` more) for the rest; or (`graceLeftMs` Infinity) a file
   * that `waitsForClose` is unchanged for the window and still open.
   */
  onIncomplete?: (path: string, reason: string, graceLeftMs: number) => void;
  /**
   * Called when a file under observation cannot be looked at (its stat fails otherwise than "not
   * found"): at the first failure and then at most hourly while it lasts (`error`; `forMs`: how
   * long so far), and once it can be looked at again (`error` null).
   */
  onUnreadable?: (path: string, error: Error | null, forMs: number) => void;
  /**
   * Where the observations are kept, by path (the job's file table keeps
   * them in its records, so a file's state has one holder). @default a Map
   */
  store?: ObservationStore;
}

/** What a check decided. */
type Decision =
  | { ready: true; truncated?: StableFile["truncated"] }
  | { ready: false; waitMs: number; incomplete?: { reason: string; graceLeftMs: number } }
  | { ready: false; left: string };

/** A write event comes within this of the write (the file's mtime), however busy the machine. */
const WRITE_TOLD_MS = 30_000;

/** Shortest pause between two checks of a structurally incomplete FITS file (else the window). */
const MIN_INCOMPLETE_RECHECK_MS = 1000;

/** A file whose structure could not be read is read again this soon (unless its window ends). */
const REREAD_MS = 1000;

/** Tracks files until they are complete; see the module doc. */
export class StabilityChecker {
  #options: StabilityOptions & {
    closedForMs: number;
    closeShortcut: (path: string) => boolean;
    waitsForClose: (path: string, structure: FitsStructure) => boolean;
    fitsAppended: boolean;
    incompleteGraceMs: number;
    waitForIncomplete: boolean;
  };
  #store: ObservationStore;
  #closed = false;

  constructor(options: StabilityOptions) {
    // `??` after the spread: an explicit `undefined` means the default.
    this.#options = {
      ...options,
      closedForMs: Math.min(options.closedForMs ?? options.stableForMs, options.stableForMs),
      closeShortcut: options.closeShortcut ?? (() => false),
      waitsForClose: options.waitsForClose ?? (() => false),
      fitsAppended: options.fitsAppended ?? false,
      incompleteGraceMs: options.incompleteGraceMs ?? 600_000,
      waitForIncomplete: options.waitForIncomplete ?? true,
    };
    this.#store = options.store ?? new Map();
  }

  /** Number of files under observation. */
  get pendingCount(): number {
    return [...this.#store.values()].length;
  }

  /** Whether `path` is under observation. */
  has(path: string): boolean {
    return this.#store.get(path) !== undefined;
  }

  /** Record activity for `path`, starting observation if it is new. */
  touch(path: string, activity: Activity = "changed"): void {
    if (this.#closed) return;
    const now = performance.now();
    let entry = this.#store.get(path);
    if (entry === undefined) {
      entry = {
        size: -1,
        mtimeMs: -1,
        lastActivityMs: now,
        closed: false,
        timer: undefined,
        dueMs: 0,
        structure: undefined,
      };
      this.#store.set(path, entry);
    }
    entry.lastActivityMs = now;
    if (activity !== "found") entry.told = true;
    const was = { ...entry };
    // The event is the activity: re-take the baseline so the check compares
    // against the file as it was at this event.
    const looked = this.#sample(path, entry, "baseline");
    if (looked === "gone") return this.#drop(path, entry);
    // What the event told is lost: once it can be looked at, a change needs the window.
    if (looked instanceof Error) return this.#lookAgain(path, entry, looked);
    // A write moves the mtime to now: a "modify" that did not (a chmod after the close, or of a
    // file moved in, or sent already) says nothing of a writer.
    const wrote = activity === "written" && !(was.closed && sameVersion(was, entry)) &&
      (was.open === true || Date.now() - entry.mtimeMs < WRITE_TOLD_MS) &&
      !(was.size < 0 && sameVersion(this.#options.sentAs?.(path) ?? was, entry));
    entry.closed = activity === "closed" || (was.closed && activity === "written" && !wrote);
    // A scan or a poll cannot tell: a close the watcher lost must not hold the file.
    entry.open = wrote;
    entry.movedIn = activity === "moved" ||
      (was.movedIn === true && !wrote && sameVersion(was, entry));
    // A close is decided at once (a complete FITS file goes, others learn how
    // long they wait); a change needs the window. A pending check re-arms
    // itself, so a timer is only replaced by an earlier one.
    // A change is first looked at after the short confirmation: a complete FITS file
    // whose mtime is older than the window may go then (see #decide).
    const delayMs = entry.closed ? 0 : this.#options.closedForMs;
    if (entry.timer === undefined || entry.dueMs > now + delayMs) {
      this.#schedule(path, entry, delayMs);
    }
  }

  /**
   * Look at `path` at once where it could not be looked at before (a scan listed it again: its
   * share is back), not at the end of its wait of up to a minute.
   */
  lookAgainNow(path: string): void {
    const entry = this.#store.get(path);
    if (entry?.unreadable !== undefined && !this.#closed) this.#schedule(path, entry, 0);
  }

  /** Events were lost before `beforeMs` (performance.now() ms): see `forgetOpen`. */
  closesLost(beforeMs: number): number {
    return this.#closed ? 0 : forgetOpen(this.#store, beforeMs);
  }

  /** Stop observing `path` without a callback. */
  forget(path: string): void {
    const entry = this.#store.get(path);
    if (entry?.timer !== undefined) clearTimeout(entry.timer);
    this.#store.delete(path);
  }

  /** Stop all timers; nothing is reported afterwards. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#store.values()) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
    }
    this.#store.clear();
  }

  #schedule(path: string, entry: Observation, delayMs: number): void {
    if (this.#closed || this.#store.get(path) !== entry) return;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.dueMs = performance.now() + Math.max(0, delayMs);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#check(path, entry);
    }, Math.max(0, delayMs));
  }

  /**
   * Stat the file and update the entry. A `check` sample that differs from the
   * last one counts as activity (written without an event) and needs the full
   * window again. "gone": nothing, or no file, is there; an error: the stat
   * failed otherwise (said, see `onUnreadable`).
   *
   * Synchronous: a stat takes microseconds, where handing it to another thread
   * and back costs several times that, once per event of a burst.
   */
  #sample(path: string, entry: Observation, mode: "baseline" | "check"): "gone" | Error | "ok" {
    const info = lookAt(path);
    if (info === "gone") return info;
    const now = performance.now();
    if (info instanceof Error) {
      if (lookFailed(entry, this.#options.stableForMs, now)) {
        this.#options.onUnreadable?.(path, info, now - entry.unreadable!.sinceMs);
      }
      return info;
    }
    if (entry.unreadable !== undefined) {
      const forMs = now - entry.unreadable.sinceMs;
      entry.unreadable = undefined;
      this.#options.onUnreadable?.(path, null, forMs);
    }
    this.#update(entry, info.size, info.mtime?.getTime() ?? 0, mode);
    return "ok";
  }

  /** A file that cannot be looked at now: looked at again (unless a check comes sooner), or left. */
  #lookAgain(path: string, entry: Observation, error: Error): void {
    const waitMs = entry.unreadable!.waitMs;
    if (!this.#options.waitForIncomplete) {
      this.forget(path);
      return this.#options.onLeft?.(path, `it cannot be looked at now (${error.message})`);
    }
    const sooner = entry.timer !== undefined && entry.dueMs <= performance.now() + waitMs;
    if (!sooner) this.#schedule(path, entry, waitMs);
  }

  #update(entry: Observation, size: number, mtimeMs: number, mode: "baseline" | "check"): void {
    if (size === entry.size && mtimeMs === entry.mtimeMs) return;
    if (mode === "check") {
      entry.lastActivityMs = performance.now();
      entry.told = true;
      // Still being written: a close event no longer counts.
      entry.closed = false;
    }
    entry.size = size;
    entry.mtimeMs = mtimeMs;
  }

  #check(path: string, entry: Observation): void {
    if (this.#closed || this.#store.get(path) !== entry) return;
    const looked = this.#sample(path, entry, "check");
    if (looked === "gone") return this.#drop(path, entry);
    if (looked instanceof Error) return this.#lookAgain(path, entry, looked);
    const structure = this.#structure(path, entry);
    if (structure === null) return this.#drop(path, entry);
    // Written between the stat and the read: that is activity too.
    this.#update(entry, structure.size, structure.mtimeMs, "check");
    const decision = this.#decide(path, entry, structure);
    if (decision.ready) {
      this.#store.delete(path);
      const file: StableFile = { path, size: entry.size, mtimeMs: entry.mtimeMs };
      if (decision.truncated) file.truncated = decision.truncated;
      if (structure.kind === "complete" && structure.hdus.length > 1) {
        file.hduStarts = structure.hdus.map((hdu) => hdu.start);
      }
      this.#options.onReady(file);
    } else if ("left" in decision) {
      this.#store.delete(path);
      this.#options.onLeft?.(path, decision.left);
    } else {
      if (decision.incomplete && !entry.saidIncomplete) {
        entry.saidIncomplete = true;
        const { reason, graceLeftMs } = decision.incomplete;
        this.#options.onIncomplete?.(path, reason, graceLeftMs);
      }
      // One that could not be read now is read again soon: it may be a complete FITS file.
      const waitMs = structure.unread ? Math.min(decision.waitMs, REREAD_MS) : decision.waitMs;
      this.#schedule(path, entry, waitMs);
    }
  }

  /**
   * The file's structure, read again only when its size or mtime moved; null when it is gone.
   * One that cannot be read now (its stat could: an I/O error, its permissions) is not known,
   * so not kept (`unread`): read again at the next check, which comes soon; meanwhile the window
   * decides, and the transfer says why it cannot read it (and tries again).
   */
  #structure(path: string, entry: Observation): FitsStructure & { unread?: true } | null {
    const known = entry.structure;
    if (known && sameVersion(known, entry)) return known;
    try {
      entry.structure = readFitsStructure(path);
    } catch (error) {
      if (isGoneError(error)) return null;
      entry.structure = undefined;
      const { size, mtimeMs } = entry;
      return { kind: "invalid", reason: String(error), size, mtimeMs, unread: true };
    }
    return entry.structure;
  }

  #decide(path: string, entry: Observation, structure: FitsStructure): Decision {
    const { stableForMs, closedForMs } = this.#options;
    const quietForMs = performance.now() - entry.lastActivityMs;
    if (entry.open && !entry.closed && this.#options.waitsForClose(path, structure)) {
      const reason = "its writer still has it open";
      if (quietForMs < stableForMs - 1) return { ready: false, waitMs: stableForMs - quietForMs };
      if (!this.#options.waitForIncomplete) return { ready: false, left: reason };
      return { ready: false, waitMs: stableForMs, incomplete: { reason, graceLeftMs: Infinity } };
    }
    if (structure.kind === "incomplete") {
      return this.#decideIncomplete(entry, structure.reason, structure.expectedBytes, quietForMs);
    }
    // Its writer still has it open, and HDUs may follow (a camera computing the next one, or
    // the extensions its primary HDU announces): it waits for the close, up to the grace.
    const mayGrow = structure.kind === "complete" &&
      (structure.appendable || structure.moreExpected !== null);
    if (mayGrow && entry.open && !entry.closed) {
      const graceLeftMs = this.#options.incompleteGraceMs - quietForMs;
      if (graceLeftMs > 0 && quietForMs >= stableForMs - 1) {
        const reason = "its writer still has it open, and HDUs may follow";
        return { ready: false, waitMs: graceLeftMs, incomplete: { reason, graceLeftMs } };
      }
      if (graceLeftMs > 0) return { ready: false, waitMs: stableForMs - quietForMs };
    }
    // HDUs announced and not there, neither closed nor moved in (found by a scan or a poll, maybe
    // open): it waits for them as an incomplete file does, up to the grace (from its mtime).
    if (
      structure.kind === "complete" && structure.moreExpected !== null && !entry.closed &&
      !entry.movedIn
    ) {
      return this.#decideIncomplete(entry, structure.moreExpected, null, quietForMs);
    }
    const settled = structure.kind === "complete" && structure.moreExpected === null &&
      !(structure.appendable && this.#options.fitsAppended);
    if (settled) {
      if (entry.closed) return { ready: true };
      // Found without a close (a scan, a poll, an OS without close events): its structure is
      // settled, and an mtime older than the window says its writer stopped as surely as
      // watching for the window would, once it stayed unchanged for the confirmation.
      const unchangedForMs = Math.max(quietForMs, Date.now() - entry.mtimeMs);
      if (quietForMs >= closedForMs - 1 && unchangedForMs >= stableForMs - 1) {
        return { ready: true };
      }
      return {
        ready: false,
        waitMs: Math.max(closedForMs - quietForMs, stableForMs - unchangedForMs),
      };
    }
    const shortcut = entry.closed && entry.size > 0 && this.#options.closeShortcut(path);
    const needMs = shortcut ? closedForMs : stableForMs;
    return quietForMs >= needMs - 1
      ? { ready: true }
      : { ready: false, waitMs: needMs - quietForMs };
  }

  /** A structurally incomplete FITS file: wait, report it truncated after the grace, or give up. */
  #decideIncomplete(
    entry: Observation,
    reason: string,
    expectedBytes: number | null,
    quietForMs: number,
  ): Decision {
    const { stableForMs, incompleteGraceMs } = this.#options;
    if (quietForMs < stableForMs - 1) return { ready: false, waitMs: stableForMs - quietForMs };
    const mtimeAgeMs = entry.told ? 0 : Date.now() - entry.mtimeMs; // (the writer's clock)
    const unchangedForMs = Math.max(quietForMs, mtimeAgeMs);
    const graceLeftMs = incompleteGraceMs - unchangedForMs;
    if (graceLeftMs <= 0) return { ready: true, truncated: { expectedBytes, reason } };
    if (!this.#options.waitForIncomplete) {
      return { ready: false, left: `its FITS structure is incomplete (${reason})` };
    }
    // Checked again now and then: a share may deliver writes without events.
    const recheckMs = Math.max(stableForMs, MIN_INCOMPLETE_RECHECK_MS);
    return {
      ready: false,
      waitMs: Math.min(graceLeftMs, recheckMs),
      incomplete: { reason: `its FITS structure is incomplete (${reason})`, graceLeftMs },
    };
  }

  /** Report `entry` gone (if it is still the observation of `path`), then drop it. */
  #drop(path: string, entry: Observation): void {
    if (this.#store.get(path) !== entry) return;
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    this.#options.onGone?.(path);
    if (this.#store.get(path) === entry) this.#store.delete(path);
  }
}
