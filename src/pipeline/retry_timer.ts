/**
 * The one retry timer of the file table's index (`work_queue.ts`): it is always armed for the earliest
 * retry time it holds (a min-heap of times), and when it fires it hands over
 * every entry whose time has come. Entries are never updated in place: the
 * owner says which entries are still current, and the others are dropped
 * when they reach the top.
 *
 * Time and timers, replaceable in tests (see `tests/helpers/fake_clock.ts`); also the schedules'
 * timers of long intervals ({@linkcode repeatEvery}) and the look for a wall clock that was
 * stepped ({@linkcode onClockStep}).
 *
 * @module
 */

/** The longest delay a timer takes (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The retry timer; see the module doc. */
export class RetryTimer {
  #heap = new DueHeap();
  #isCurrent: (relPath: string, at: number) => boolean;
  #onFire: () => void;
  #clock: Clock;
  #cancel: (() => void) | undefined;
  #armedAt = Infinity;
  #closed = false;

  /**
   * @param isCurrent whether an entry still stands (its record still waits for that time)
   * @param onFire called when the timer fires (then take what is due with {@linkcode takeDue})
   */
  constructor(
    isCurrent: (relPath: string, at: number) => boolean,
    onFire: () => void,
    clock: Clock = systemClock,
  ) {
    this.#isCurrent = isCurrent;
    this.#onFire = onFire;
    this.#clock = clock;
  }

  /** When the timer fires next (ms since epoch), or `Infinity`. */
  get armedAt(): number {
    return this.#armedAt;
  }

  /** Hold `relPath` until `at`; re-arms when it is the earliest now. */
  add(relPath: string, at: number): void {
    this.#heap.push({ at, relPath });
    if (at < this.#armedAt) this.arm();
  }

  /** The current entries whose time has come (taken out); call {@linkcode arm} after. */
  takeDue(): string[] {
    const now = this.#clock.now();
    // A record can have several entries for the same time (it waited, was re-checked, waits).
    const due = new Set<string>();
    for (let top = this.#heap.peek(); top && top.at <= now; top = this.#heap.peek()) {
      this.#heap.pop();
      if (this.#isCurrent(top.relPath, top.at)) due.add(top.relPath);
    }
    return [...due];
  }

  /** Arm the timer for the earliest current entry (none: no timer). */
  arm(): void {
    for (let top = this.#heap.peek(); top; top = this.#heap.peek()) {
      if (this.#isCurrent(top.relPath, top.at)) break;
      this.#heap.pop();
    }
    const at = this.#heap.peek()?.at ?? Infinity;
    if (at === this.#armedAt && this.#cancel !== undefined) return;
    this.#cancel?.();
    this.#cancel = undefined;
    this.#armedAt = at;
    if (at === Infinity || this.#closed) return;
    // A delay longer than a timer holds fires early, finds nothing due and re-arms.
    this.#cancel = this.#clock.setTimer(() => {
      this.#cancel = undefined;
      this.#armedAt = Infinity;
      this.#onFire();
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - this.#clock.now())));
  }

  /** Stop for good. */
  close(): void {
    this.#closed = true;
    this.#cancel?.();
    this.#cancel = undefined;
    this.#armedAt = Infinity;
  }
}

/** A binary min-heap of retry times. */
/** One retry time. */
interface DueEntry {
  at: number;
  relPath: string;
}

/** A min-heap of {@linkcode DueEntry} by `at`. */
class DueHeap {
  #items: DueEntry[] = [];

  /** The earliest entry. */
  peek(): DueEntry | undefined {
    return this.#items[0];
  }

  /** Add an entry. */
  push(item: DueEntry): void {
    const items = this.#items;
    items.push(item);
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (items[parent].at <= items[i].at) break;
      [items[parent], items[i]] = [items[i], items[parent]];
      i = parent;
    }
  }

  /** Remove the earliest entry. */
  pop(): void {
    const items = this.#items;
    const last = items.pop()!;
    if (items.length === 0) return;
    items[0] = last;
    for (let i = 0;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && items[left].at < items[smallest].at) smallest = left;
      if (right < items.length && items[right].at < items[smallest].at) smallest = right;
      if (smallest === i) break;
      [items[smallest], items[i]] = [items[i], items[smallest]];
      i = smallest;
    }
  }
}

/** Time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `fn` in `ms`; returns what cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
  /**
   * How far the wall clock (`Date.now()`) is ahead of `now` (it was stepped since the start);
   * none means 0.
   */
  wallOffset?(): number;
}

/**
 * A time of `clock` (ms since the epoch) as the wall clock reads it: what people are shown, and
 * what the ledger keeps, is compared with `Date.now()`, so a wall clock stepped since the start
 * (NTP, a GPS fix, a clock set by hand) must move it too. Whole milliseconds, as `Date.now()`
 * gives them: the monotonic clock's fraction is not shown in `/api/status` nor kept.
 */
export function onWallClock(ms: number, clock: Clock = systemClock): number {
  return Math.round(ms + (clock.wallOffset?.() ?? 0));
}

/**
 * The real clock. `now` is the epoch time when the program started plus the
 * monotonic time since: a wall clock stepped back or ahead (NTP, GPS, a
 * battery-less PC's clock) neither stalls nor hurries a wait.
 */
export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimer: (fn, ms) => {
    const id = setTimeout(fn, ms);
    return () => clearTimeout(id);
  },
  wallOffset: () => Date.now() - (performance.timeOrigin + performance.now()),
};

/** How often {@linkcode onClockStep} looks at the wall clock. */
const STEP_LOOK_MS = 10_000;
/** A change of the wall clock against the monotonic one this large is a step. */
const STEP_MS = 2_000;

/**
 * Call `onStep` with how far the wall clock was stepped (ms, ahead > 0: NTP, a clock set by hand,
 * a machine that slept) when, between two looks, it moved {@linkcode STEP_MS} or more unlike the
 * monotonic clock. Returns what stops it.
 */
export function onClockStep(onStep: (byMs: number) => void): () => void {
  let offset = systemClock.wallOffset!();
  const timer = setInterval(() => {
    const now = systemClock.wallOffset!();
    if (Math.abs(now - offset) >= STEP_MS) onStep(now - offset);
    offset = now;
  }, STEP_LOOK_MS);
  return () => clearInterval(timer);
}

/**
 * Call `fn` when `due.dueAt` comes (`performance.now()` time), then every `ms` milliseconds,
 * moving `due.dueAt` on at each call; also beyond {@linkcode MAX_TIMER_MS} (`every_seconds` may be
 * up to a year): a longer wait is made of several timers. Returns what stops it.
 */
export function repeatEvery(ms: number, fn: () => void, due: { dueAt: number }): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wait = () => {
    const left = Math.max(0, due.dueAt - performance.now());
    timer = setTimeout(() => {
      if (left > MAX_TIMER_MS) return wait();
      // Late by more than a period (a stalled event loop): once now, then a period from now.
      const now = performance.now();
      due.dueAt = due.dueAt + ms > now ? due.dueAt + ms : now + ms;
      wait();
      fn();
    }, Math.min(left, MAX_TIMER_MS));
  };
  wait();
  return () => clearTimeout(timer);
}
