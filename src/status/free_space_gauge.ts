/**
 * The free space at a job's destination as the status page and `/metrics`
 * show it: asked only while someone reads it (the page, the API, a scrape),
 * at most once a minute, in the background, so a read never waits and an
 * unwatched daemon never asks.
 *
 * @module
 */

/** How often the destination is asked for its free space at most. */
export const FREE_SPACE_EVERY_MS = 60_000;
/** After an unanswered ask (e.g. every SSH session busy), ask again this soon. */
const RETRY_AFTER_MS = 5_000;

/** Free bytes at a destination and when they were measured (ms since epoch). */
export interface FreeSpace {
  bytes: number;
  at: number;
}

/** Caches one destination's free space; see the module doc. */
export class FreeSpaceGauge {
  #probe: () => Promise<number | null>;
  #onChange: () => void;
  #everyMs: number;
  #value: FreeSpace | null = null;
  /** When to ask next, on the monotonic clock (`performance.now()`). */
  #nextAskAt = 0;
  #asking = false;
  #closed = false;

  /**
   * @param probe measures the free bytes, `null` when it cannot now
   * @param onChange called when a new measurement arrived
   */
  constructor(
    probe: () => Promise<number | null>,
    onChange: () => void,
    everyMs = FREE_SPACE_EVERY_MS,
  ) {
    this.#probe = probe;
    this.#onChange = onChange;
    this.#everyMs = everyMs;
  }

  /** The last measurement (or `null`); asks again in the background when it is due. */
  read(): FreeSpace | null {
    // The monotonic clock: a wall clock set back (NTP) must not hold the next ask for as long.
    const now = performance.now();
    if (!this.#asking && !this.#closed && now >= this.#nextAskAt) {
      this.#asking = true;
      this.#nextAskAt = now + this.#everyMs;
      this.#probe().catch(() => null).then((bytes) => {
        this.#asking = false;
        if (this.#closed) return;
        if (bytes === null) {
          this.#nextAskAt = Math.min(this.#nextAskAt, performance.now() + RETRY_AFTER_MS);
          return;
        }
        this.#value = { bytes, at: Date.now() };
        this.#onChange();
      });
    }
    return this.#value;
  }

  /** Ask no more. */
  close(): void {
    this.#closed = true;
  }
}
