/**
 * A stability checker on a fresh temporary folder, with a recorder of what it
 * reported and when.
 *
 * @module
 */
import {
  StabilityChecker,
  type StabilityOptions,
  type StableFile,
} from "../../src/watch/stability.ts";
import { ceilingMs, LEAST_CEILING_MS } from "./files.ts";

/** Sleep for `ms`. */
export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Everything a checker reported, with the time it happened. */
export class Recorder {
  ready: Array<StableFile & { atMs: number }> = [];
  gone: Array<{ path: string; atMs: number }> = [];
  left: Array<{ path: string; reason: string; atMs: number }> = [];
  incomplete: Array<{ path: string; reason: string; graceLeftMs: number; atMs: number }> = [];
  /** What `onUnreadable` said: the error (null: it can be looked at again). */
  unreadable: Array<{ path: string; error: Error | null; forMs: number }> = [];
  #waiters: Array<() => void> = [];

  onReady = (file: StableFile) => {
    this.ready.push({ ...file, atMs: performance.now() });
    this.#wake();
  };
  onGone = (path: string) => {
    this.gone.push({ path, atMs: performance.now() });
    this.#wake();
  };
  onLeft = (path: string, reason: string) => {
    this.left.push({ path, reason, atMs: performance.now() });
    this.#wake();
  };
  onUnreadable = (path: string, error: Error | null, forMs: number) => {
    this.unreadable.push({ path, error, forMs });
    this.#wake();
  };
  onIncomplete = (path: string, reason: string, graceLeftMs: number) => {
    this.incomplete.push({ path, reason, graceLeftMs, atMs: performance.now() });
    this.#wake();
  };

  /** Wait until `condition` holds (checked after every report; ceiling at least a minute). */
  async until(condition: () => boolean, what: string, timeoutMs = LEAST_CEILING_MS): Promise<void> {
    const deadline = performance.now() + ceilingMs(timeoutMs);
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, Math.min(left, 200));
      });
      clearTimeout(timer);
    }
  }

  /** The ready reports of `path`. */
  readyFor(path: string): Array<StableFile & { atMs: number }> {
    return this.ready.filter((r) => r.path === path);
  }

  #wake() {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }
}

/** Run `fn` with a checker (`options` plus the recorder's callbacks) on a fresh folder; all removed afterwards. */
export async function withChecker(
  options: Omit<
    StabilityOptions,
    "onReady" | "onGone" | "onLeft" | "onIncomplete" | "onUnreadable"
  >,
  fn: (checker: StabilityChecker, rec: Recorder, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "itx-stability-" });
  const rec = new Recorder();
  const checker = new StabilityChecker({
    ...options,
    onReady: rec.onReady,
    onGone: rec.onGone,
    onLeft: rec.onLeft,
    onIncomplete: rec.onIncomplete,
    onUnreadable: rec.onUnreadable,
  });
  try {
    await fn(checker, rec, dir);
  } finally {
    checker.close();
    await Deno.remove(dir, { recursive: true });
  }
}
