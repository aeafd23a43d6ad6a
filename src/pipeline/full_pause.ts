/**
 * A job paused because its destination is full. While paused, files wait in
 * the queue without counting attempts; every `probeEveryMs` one file is sent
 * as a probe. When it arrives the job recovers step by step: 2, 4, 8 … files
 * may be on their way at once (a destination with room for a few files only
 * must not take a whole batch), and the pause ends when the job is back to
 * full speed, never on the probe alone while other files wait. Running out of
 * space again meanwhile goes back to probing, within the same pause: a full
 * destination is said once, not per file or per probe.
 *
 * ```
 *  running ──full──► probe scheduled ──time──► probe due ──taken──► probing ──arrived──► recovering
 *     ▲                    ▲    ▲                                     │                    │   │
 *     │                    │    └────────────── failed ───────────────┘                    │   │
 *     │                    └─────────────────────────── full ──────────────────────────────┘   │
 *     └─────────────────────────────────── full speed reached ─────────────────────────────────┘
 * ```
 *
 * @module
 */
import { jobLogger, type Logger } from "../log/logging.ts";
import { type Clock, systemClock } from "./clock.ts";

/** How often a paused job tries one file. */
export const FULL_PROBE_MS = 15_000;

type State = "running" | "scheduled" | "due" | "probing" | "recovering";

/** Options of {@linkcode FullDestinationPause}. */
export interface FullPauseOptions {
  /** Job name and destination, for the two log lines. */
  job: string;
  target: string;
  /** Files on their way at full speed (transfers × batch size). */
  fullSpeed: number;
  /** Called when a probe may start. */
  onProbeDue: () => void;
  /** Called when the pause begins (with the reason) and when it ends (`null`). */
  onChange?: (pause: { reason: string; sinceMs: number } | null) => void;
  /** @default FULL_PROBE_MS */
  probeEveryMs?: number;
  clock?: Clock;
}

/** The pause of one job; see the module doc. */
export class FullDestinationPause {
  #state: State = "running";
  /** While recovering: how many files may be on their way. */
  #window = 1;
  #options: Required<Omit<FullPauseOptions, "onChange">> & Pick<FullPauseOptions, "onChange">;
  #cancelTimer: (() => void) | undefined;
  #log: Logger;

  constructor(options: FullPauseOptions) {
    this.#log = jobLogger("pipeline", options.job);
    this.#options = {
      ...options,
      probeEveryMs: options.probeEveryMs ?? FULL_PROBE_MS,
      clock: options.clock ?? systemClock,
    };
  }

  /** Whether the job is paused (probing or recovering). */
  get paused(): boolean {
    return this.#state !== "running";
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
    return true;
  }

  /**
   * The destination is full (`reason`: the transport's words). Returns
   * whether this began the pause, which is logged once, at ERROR.
   */
  full(reason: string): boolean {
    const began = this.#state === "running";
    if (began || this.#state === "probing" || this.#state === "recovering") this.#schedule();
    if (began) {
      const { job, target, probeEveryMs } = this.#options;
      this.#log.error(
        "The destination {target} is full: {reason}. Job {job} pauses; one file is tried every {seconds} s, and sending resumes as soon as one arrives",
        { job, target, reason, seconds: probeEveryMs / 1000 },
      );
      this.#options.onChange?.({ reason, sinceMs: this.#options.clock.now() });
    }
    return began;
  }

  /**
   * A batch ended with `arrived` files at the destination; `caughtUp`:
   * nothing else waits to be sent. Returns whether this ended the pause
   * (back to full speed, or everything got through), which is logged.
   */
  ended(probe: boolean, arrived: number, caughtUp = false): boolean {
    if (probe && this.#state === "probing") {
      if (arrived === 0) {
        this.#schedule();
        return false;
      }
      // The probe alone does not end the pause (unless nothing else waits): a file that fits
      // in the room a removed copy left says little; the batch after it has to arrive too.
      this.#state = "recovering";
      this.#window = 2;
      return caughtUp ? this.#resume() : false;
    }
    if (this.#state !== "recovering" || arrived === 0) return false;
    this.#window *= 2;
    if (this.#window < this.#options.fullSpeed && !caughtUp) return false;
    return this.#resume();
  }

  /** Back to full speed: the pause is over. */
  #resume(): true {
    this.#state = "running";
    this.#log.info("The destination {target} takes files again; job {job} resumes", {
      target: this.#options.target,
    });
    this.#options.onChange?.(null);
    return true;
  }

  /** Stop the timer. */
  close(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #schedule(): void {
    this.#state = "scheduled";
    this.#cancelTimer?.();
    this.#cancelTimer = this.#options.clock.setTimer(() => {
      this.#cancelTimer = undefined;
      this.#state = "due";
      this.#options.onProbeDue();
    }, this.#options.probeEveryMs);
  }
}
