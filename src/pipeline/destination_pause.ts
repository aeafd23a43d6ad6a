/**
 * A job paused because its destination is full, or cannot take files now: it cannot be reached
 * (the host, the connection), or takes no file (a share that is not mounted, a read-only disk, a
 * destination folder the login may not write into). While paused, files wait in
 * the queue without counting attempts; every `probeEveryMs` one file is sent
 * as a probe (the first to a destination that cannot be reached sooner, after
 * `firstProbeMs`). When it arrives the job recovers step by step: 2, 4, 8 ... files
 * may be on their way at once (a destination with room for a few files only
 * must not take a whole batch), and the pause ends when the job is back to
 * full speed, never on the probe alone while other files wait. A probe that
 * fails as no other file would (a folder below the destination folder the login may not
 * write, a name the server refuses) says nothing of the destination: another file is the probe
 * at once, and with none left the pause ends: a host back up whose waiting
 * files all fail so is not held as unreachable until a new file arrives (nor
 * said to take files again where the probe failed as the whole destination, a
 * login refused: the first file that arrives says so). A
 * file that becomes ready while the job waits for room, smaller than every file
 * refused for room in this pause, is the probe at once ({@linkcode DestinationPause.offer}).
 * Running out of space again meanwhile goes back to probing, within the same
 * pause: a full destination is said once, not per file or per probe. A probe that finds the
 * destination still unreachable (or taking no file) is said at WARN: the first, then one whose
 * reason changed, else one every {@linkcode PROBE_REMINDER_MS} (a user watching the log sees the
 * job is still trying, and why it fails now, without a line per probe).
 *
 * It also says, once per recovery, that the destination takes files again
 * (the one line that says so): a paused job as its pause ends; one the whole
 * destination failed for without a pause (a login refused, `run --once`) at
 * the end of the first batch that files arrived in since, unless the pause
 * that ended since said it.
 *
 * ```
 *  running --full--> probe scheduled --time--> probe due --taken--> probing --arrived--> recovering
 *     ^                    ^    ^                                     |                    |   |
 *     |                    |    +------- full or unreachable ---------+                    |   |
 *     |                    +--------------------------- full ------------------------------+   |
 *     +----------------------------------- full speed reached ---------------------------------+
 * ```
 *
 * @module
 */
import { failureScope, type TransferError } from "../errors.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import type { JobPause } from "../ledger/daemon_lock.ts";
import { type Clock, systemClock } from "./retry_timer.ts";

/** How often a paused job tries one file. */
export const FULL_PROBE_MS = 15_000;

/** How often failed probes are said while their reason stays the same (see the module doc). */
export const PROBE_REMINDER_MS = 10 * 60_000;

/**
 * What holds a destination that is not full: the host or the connection fails (`unreachable`), or
 * it answers and takes no file (`failing`: its folder is gone, read-only, or a share did not
 * answer). The job's state on the status page says the same.
 */
export type DownKind = "unreachable" | "failing";

/** What holds a destination that `error` failed as a whole (not full). */
export function downKind(error: TransferError): DownKind {
  return failureScope(error) === "connection" ? "unreachable" : "failing";
}

/** How long an outage has lasted, in the line of a failed probe: `12 min on`, `for under a minute`. */
function lasting(ms: number): string {
  const minutes = Math.floor(ms / 60_000);
  return minutes < 1 ? "for under a minute" : `${minutes} min on`;
}

/** What `status` shows of a pause (`daemon.json`), as the job's state on the page. */
const PAUSE_STATES = {
  full: "destination full",
  unreachable: "destination unreachable",
  failing: "destination failing",
} as const;

type State = "running" | "scheduled" | "due" | "probing" | "recovering";

/** Options of {@linkcode DestinationPause}. */
export interface DestinationPauseOptions {
  /** Job name and destination, for the log lines. */
  job: string;
  target: string;
  /** The pause this one goes on from (a reload rebuilt the job, same destination: `continueFrom`). */
  continues?: DestinationPause;
  /** Files on their way at full speed (transfers × batch size). */
  fullSpeed: number;
  /** Called when a probe may start. */
  onProbeDue: () => void;
  /**
   * Called when the pause begins (as `daemon.json` reports it), when its
   * reason changes, and when it ends (`null`).
   */
  onChange?: (pause: JobPause | null) => void;
  /** Called as the destination is said to take files again (it is reachable: shown so). */
  onBack?: () => void;
  /** @default FULL_PROBE_MS */
  probeEveryMs?: number;
  /**
   * When a destination that cannot be reached gets its first probe, if
   * sooner than `probeEveryMs` (the job's `retry_delay_seconds`: a short
   * hiccup does not hold the job for a whole interval).
   */
  firstProbeMs?: number;
  clock?: Clock;
}

/** The pause of one job; see the module doc. */
export class DestinationPause {
  #state: State = "running";
  /** While recovering: how many files may be on their way. */
  #window = 1;
  #options:
    & Required<Omit<DestinationPauseOptions, "onChange" | "onBack" | "continues">>
    & Pick<DestinationPauseOptions, "onChange" | "onBack" | "continues">;
  /** Whether the pause is for a full destination (else one that cannot be reached). */
  #full = false;
  /** The pause as last reported (see `onChange`). */
  #reported: JobPause | null = null;
  /** The whole destination failed, and no line said since that it takes files again. */
  #down = false;
  /** The probe under way failed as the whole destination (see {@linkcode stillDown}). */
  #probeDown = false;
  /** The smallest file refused for room in this pause (see {@linkcode offer}). */
  #refusedBytes = Infinity;
  /** This pause's failed probes: since when, how many, the reason last said and when. */
  #probes = { since: 0, failed: 0, said: null as string | null, saidAt: 0 };
  /** Whether this pause said it is full (said once a pause). */
  #saidFull = false;
  #cancelTimer: (() => void) | undefined;
  /** When the scheduled probe is due (the clock's ms). */
  #dueAt = 0;
  #log: Logger;

  constructor(options: DestinationPauseOptions) {
    this.#log = jobLogger("pipeline", options.job);
    const probeEveryMs = options.probeEveryMs ?? FULL_PROBE_MS;
    this.#options = {
      ...options,
      probeEveryMs,
      firstProbeMs: Math.min(options.firstProbeMs ?? probeEveryMs, probeEveryMs),
      clock: options.clock ?? systemClock,
    };
    if (options.continues) this.continueFrom(options.continues);
  }

  /**
   * Go on from `former`'s pause: the pause of the runner a reload replaced with this one, sending
   * to the same destination. The outage holds here as it was (since when, its failed probes and
   * the reason last said, whether its return is still to be said); the next probe comes when
   * `former`'s was due (one under way, stopped by the reload, is tried again at once), and nothing
   * is said again: no file tries the destination meanwhile, none says the outage anew.
   */
  continueFrom(former: DestinationPause): void {
    if (former.#state === "running") return;
    this.#full = former.#full;
    this.#down = former.#down;
    this.#reported = former.#reported;
    this.#refusedBytes = former.#refusedBytes;
    this.#probes = { ...former.#probes };
    this.#saidFull = former.#saidFull;
    // Reported as this runner's once it is made (`daemon.json`: the pause and its since go on).
    queueMicrotask(() => this.#reported && this.#options.onChange?.(this.#reported));
    if (former.#state === "recovering") {
      this.#state = "recovering";
      this.#window = former.#window;
    } else {
      const wait = former.#state === "scheduled" ? former.#dueAt - this.#options.clock.now() : 0;
      this.#schedule(Math.max(0, wait));
    }
  }

  /** Whether the job is paused (probing or recovering). */
  get paused(): boolean {
    return this.#state !== "running";
  }

  /** The pause as last reported (`daemon.json`, what `status` says), `null` when running. */
  get reported(): JobPause | null {
    return this.#reported;
  }

  /** Whether the job is paused because its destination is full. */
  get full(): boolean {
    return this.paused && this.#full;
  }

  /**
   * How many more files may start now, with `inFlight` on their way
   * (`Infinity` when running). A due probe counts 1: start it with
   * {@linkcode started}.
   */
  room(inFlight: number): number {
    switch (this.#state) {
      case "running":
        return Infinity;
      case "due":
        return 1;
      case "recovering":
        return Math.max(0, this.#window - inFlight);
      default:
        return 0;
    }
  }

  /** A batch starts. Returns whether it is the probe. */
  started(): boolean {
    if (this.#state !== "due") return false;
    this.#state = "probing";
    this.#probeDown = false;
    return true;
  }

  /**
   * The destination is full (`full`: a file of `bytes` found no room), or
   * cannot take files now (`reason`: the transport's words; `kind`: why). Returns whether
   * this began the pause (or, for one that cannot be reached, one anew while
   * recovering), which is logged once, at ERROR. `relPath`: the file that failed, left out
   * where a failed probe's reason is compared with the last one said.
   */
  pause(
    reason: string,
    full: boolean,
    bytes = 0,
    kind: DownKind = "unreachable",
    relPath?: string,
  ): boolean {
    // Unreachable again while recovering, after files arrived ("back"): a pause of its own.
    const began = this.#state === "running" || (this.#state === "recovering" && !full);
    if (!began && !full && this.#state === "probing") this.#probeFailed(reason, kind, relPath);
    if (this.#state === "running") this.#refusedBytes = Infinity;
    if (full) this.#refusedBytes = Math.min(this.#refusedBytes, bytes);
    const { job, target, probeEveryMs, firstProbeMs } = this.#options;
    if (began || this.#state === "probing" || this.#state === "recovering") {
      this.#schedule(began && !full ? firstProbeMs : probeEveryMs);
    }
    this.#full = full;
    this.#down = true;
    const state = PAUSE_STATES[full ? "full" : kind];
    // A pause that turns full (a host back up, but its disk full) says so as one that begins full.
    const turnedFull = !began && full && !this.#saidFull && this.#reported !== null &&
      this.#reported.state !== state;
    if (!began) this.#stillDown(reason, state);
    if (began) this.#saidFull = false;
    if (began || turnedFull) {
      this.#saidFull ||= full;
      const down = kind === "failing" ? "takes no file" : "cannot be reached";
      this.#log.error(
        full
          ? "The destination {target} is full: {reason}. Job {job} pauses; one file is tried every {seconds} s, and sending resumes as soon as one arrives"
          : `The destination {target} ${down}: {reason}. Job {job} pauses (no file uses up its retries meanwhile); one file is tried in {first} s, then every {seconds} s, and sending resumes as soon as one arrives`,
        { job, target, reason, seconds: probeEveryMs / 1000, first: firstProbeMs / 1000 },
      );
    }
    if (began) {
      const now = this.#options.clock.now();
      this.#probes = { since: now, failed: 0, said: null, saidAt: now };
      this.#report({ state, since: new Date(now).toISOString(), reason });
    }
    return began;
  }

  /** The probe failed as the whole destination, not full: said as the module doc says. */
  #probeFailed(reason: string, kind: DownKind, relPath?: string): void {
    const now = this.#options.clock.now();
    const probes = this.#probes;
    probes.failed++;
    // Another file may be the next probe: its names (and its night folder) are no new reason.
    const tail = relPath ? reason.lastIndexOf(`${relPath}: `) : -1;
    const said = tail >= 0
      ? reason.slice(tail + relPath!.length)
      : relPath
      ? reason.replaceAll(relPath, "\u2026")
      : reason;
    if (said === probes.said && now - probes.saidAt < PROBE_REMINDER_MS) return;
    probes.said = said;
    probes.saidAt = now;
    const { job, target, probeEveryMs } = this.#options;
    this.#log.warn(
      `The destination {target} still ${
        kind === "failing" ? "takes no file" : "cannot be reached"
      }, {lasting} ({probes} probe(s) failed): {reason}. Job {job} stays paused; one file is tried every {seconds} s (said again when the reason changes, else every {every} min)`,
      {
        job,
        target,
        reason,
        lasting: lasting(now - probes.since),
        probes: probes.failed,
        seconds: probeEveryMs / 1000,
        every: PROBE_REMINDER_MS / 60_000,
      },
    );
  }

  /**
   * A file of `bytes` became sendable. While the job waits for room, one
   * smaller than every file refused for room in this pause may fit: it is
   * tried at once, not at the next probe (a file too large for the room left
   * does not hold up smaller ones); `bytes` is asked only then. Returns whether a probe is due
   * now.
   */
  offer(bytes: number | (() => number)): boolean {
    if (this.#state !== "scheduled" || !this.#full) return false;
    if ((typeof bytes === "number" ? bytes : bytes()) >= this.#refusedBytes) return false;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#state = "due";
    return true;
  }

  /**
   * A file failed as no one file would (see `failureScope`): the whole destination is down
   * (its return is said once: see the module doc). While paused, if for another reason than
   * the pause says (a host back up that refuses the login), the pause says that now, and, while
   * not full, `kind` (when given) too.
   */
  stillDown(reason: string, kind?: DownKind): void {
    this.#down = true;
    if (this.#state === "probing") this.#probeDown = true;
    const state = this.#full || kind === undefined
      ? this.#reported?.state ?? PAUSE_STATES.unreachable
      : PAUSE_STATES[kind];
    this.#stillDown(reason, state);
  }

  #stillDown(reason: string, state: JobPause["state"]): void {
    const was = this.#reported;
    if (!was || (was.state === state && was.reason === reason)) return;
    // Another kind (reachable again but full, say): since now, as the job's state on the page.
    const since = was.state === state
      ? was.since
      : new Date(this.#options.clock.now()).toISOString();
    this.#report({ state, since, reason });
  }

  #report(pause: JobPause | null): void {
    this.#reported = pause;
    this.#options.onChange?.(pause);
  }

  /**
   * A batch ended with `arrived` files at the destination (`null`: it failed in a way that tells
   * nothing of the destination, a fault of this program); `caughtUp`: nothing else waits to be
   * sent. Returns whether this ended the pause (back to full speed, or nothing else waits), which
   * is logged.
   */
  ended(probe: boolean, sent: number | null, caughtUp = false): boolean {
    const arrived = sent ?? 0;
    // Back without a pause (a login refused, `run --once`): said now; a pause says it as it ends.
    if (arrived > 0 && this.#state === "running") this.#sayBack();
    if (probe && this.#state === "probing") {
      // A fault of this program tells nothing of the destination: the pause holds, and the next
      // probe comes after the usual wait (the file itself waits for its retry).
      if (sent === null) {
        this.#schedule();
        return false;
      }
      if (arrived === 0) {
        // Failed as no other file would (a full or unreachable destination paused it again,
        // ending the probing): it tells nothing of the destination. Another file is the probe
        // now; with none left, the pause ends and that file waits for its own retry (failed as
        // the whole destination, a login refused: not said to take files, none arrived).
        if (caughtUp) return this.#resume(!this.#probeDown);
        this.#state = "due";
        return false;
      }
      // The probe alone does not end the pause (unless nothing else waits): a file that fits
      // in the room a removed copy left says little; the batch after it has to arrive too.
      this.#state = "recovering";
      this.#window = 2;
      return caughtUp ? this.#resume() : false;
    }
    if (this.#state !== "recovering") return false;
    // Caught up: what is left waits for its own retry (a file that fails as no other would).
    if (arrived === 0) return caughtUp ? this.#resume() : false;
    this.#window *= 2;
    if (this.#window < this.#options.fullSpeed && !caughtUp) return false;
    return this.#resume();
  }

  /** Back to full speed: the pause is over (said as the destination's return where `back`). */
  #resume(back = true): true {
    this.#state = "running";
    if (back) this.#sayBack("; job {job} resumes");
    this.#report(null);
    return true;
  }

  /** The destination takes files again: said once per recovery. */
  #sayBack(more = ""): void {
    if (!this.#down) return;
    this.#down = false;
    this.#log.info(`The destination {target} takes files again${more}`, {
      target: this.#options.target,
    });
    this.#options.onBack?.();
  }

  /** Stop the timer. */
  close(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #schedule(inMs = this.#options.probeEveryMs): void {
    this.#state = "scheduled";
    this.#dueAt = this.#options.clock.now() + inMs;
    this.#cancelTimer?.();
    this.#cancelTimer = this.#options.clock.setTimer(() => {
      this.#cancelTimer = undefined;
      this.#state = "due";
      this.#options.onProbeDue();
    }, inMs);
  }
}
