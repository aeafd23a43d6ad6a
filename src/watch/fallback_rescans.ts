/**
 * The rescans every minute of a job whose folder cannot be watched: no
 * inotify watch was left, or the watcher got stuck on something it cannot
 * release (a device whose open blocks). Before each rescan it tries to watch
 * again, unless the watcher got stuck (its thread may never come back), and
 * once that works the rescans stop. The failure is said once, at ERROR.
 *
 * @module
 */
import { logger } from "../log/logging.ts";

/** Time between the rescans (each also tries to watch again). */
export const FALLBACK_RESCAN_MS = 60_000;

/** Options of {@linkcode FallbackRescans}. */
export interface FallbackRescansOptions {
  /** Job name and watch folder, for the log lines. */
  job: string;
  root: string;
  /** Try to watch the folder again; resolves whether the watch is in place. */
  watchAgain(): Promise<boolean>;
  /** A full rescan. */
  rescan(): Promise<void>;
}

/** See the module doc. */
export class FallbackRescans {
  #options: FallbackRescansOptions;
  #log = logger("watch");
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Whether the rescans also try to watch again (not after a stuck watcher). */
  #watchAgain = false;

  constructor(options: FallbackRescansOptions) {
    this.#options = options;
  }

  /**
   * Watching failed (`stuck`: the watcher hangs). The first failure is
   * logged and starts the rescans; those of the tries to watch again are not.
   */
  failed(error: string, stuck: boolean): void {
    const { job, root } = this.#options;
    if (stuck) this.#watchAgain = false;
    if (this.#timer !== undefined) {
      this.#log.debug("Watching {path} still fails: {error}", { job, path: root, error });
      return;
    }
    this.#log.error(
      stuck
        ? "Watching {path} failed: {error}; rescanning every minute instead"
        : "Watching {path} failed: {error}; rescanning every minute instead, and trying to watch it again each time",
      { job, path: root, error },
    );
    this.#watchAgain = !stuck;
    this.#timer = setInterval(() => void this.#tick(), FALLBACK_RESCAN_MS);
  }

  /** Stop the rescans. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    const { job, root } = this.#options;
    if (this.#watchAgain && await this.#options.watchAgain()) {
      this.close();
      this.#log.info("Watching {path} again; the rescans every minute stop", { job, path: root });
    }
    await this.#options.rescan();
  }
}
