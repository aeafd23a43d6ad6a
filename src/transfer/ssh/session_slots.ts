/**
 * A count of the sessions (ssh, scp, rsync calls) one shared SSH connection
 * carries at once. OpenSSH servers refuse sessions beyond `MaxSessions`
 * (10 by default) per connection, so a busy daemon must queue its calls rather
 * than have them fail.
 *
 * @module
 */

/** Gives out a fixed number of slots; callers wait in order for a free one. */
export class SessionSlots {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  /** Slots not taken right now. */
  get free(): number {
    return this.#free;
  }

  /**
   * Wait for a free slot and take it.
   *
   * @returns the function that gives the slot back (safe to call twice)
   * @throws `signal.reason` when aborted while waiting
   */
  async take(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#free > 0) {
      this.#free--;
      return this.#giver();
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      const abort = () => {
        this.#waiting.splice(this.#waiting.indexOf(wake), 1);
        reject(signal!.reason);
      };
      this.#waiting.push(wake);
      signal?.addEventListener("abort", abort, { once: true });
    });
    // The slot was handed over directly by the one who gave it back.
    return this.#giver();
  }

  /**
   * Take a slot only if one is free now and `keep` more stay free after it
   * (for optional work that waits on other calls: it can never hold every
   * slot); `null` otherwise.
   */
  takeIfFree(keep = 0): (() => void) | null {
    if (this.#free <= keep) return null;
    this.#free--;
    return this.#giver();
  }

  #giver(): () => void {
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}
