/**
 * Gathering watcher events: only the latest kind per path is kept (and
 * whether the path appeared), and everything gathered is handed over a few
 * milliseconds later in one go, so the watcher is drained quickly even during
 * a burst.
 *
 * @module
 */

/** What happened to one path since the last hand-over. */
export interface GatheredEvent {
  /** The latest kind of event. */
  kind: Deno.FsEvent["kind"];
  /** Whether it was created or renamed in at some point. */
  appeared: boolean;
}

/** How long events are gathered before they are handed over. */
const GATHER_MS = 5;

/** Gathers events per path; see the module doc. */
export class EventGatherer {
  #events = new Map<string, GatheredEvent>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #onEvents: (events: Map<string, GatheredEvent>) => void;

  /** @param onEvents receives the gathered events, in the order their paths were last seen */
  constructor(onEvents: (events: Map<string, GatheredEvent>) => void) {
    this.#onEvents = onEvents;
  }

  /** Add one event of `kind` for `paths`. */
  add(kind: Deno.FsEvent["kind"], paths: string[]): void {
    const appeared = kind === "create" || kind === "rename";
    for (const path of paths) {
      const seen = this.#events.get(path);
      this.#events.delete(path);
      this.#events.set(path, { kind, appeared: appeared || (seen?.appeared ?? false) });
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      const events = this.#events;
      this.#events = new Map();
      this.#onEvents(events);
    }, GATHER_MS);
  }

  /** Drop what is gathered and stop the timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#events.clear();
  }
}
