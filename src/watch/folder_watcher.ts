/**
 * Watch a folder recursively from a worker thread (see `watch_worker.ts`).
 *
 * @module
 */
import type { WatchEvent } from "./watch_worker.ts";

export type { WatchEvent };

/** A running watch; {@linkcode FolderWatcher.close} stops it. */
export class FolderWatcher {
  #worker: Worker;
  #ready: () => void;
  /** Resolves once the watch is in place (or watching failed): scan after this. */
  readonly ready: Promise<void>;

  /**
   * Start watching `path` (recursively).
   *
   * @param onEvents called with every batch of events, in order
   * @param onError called once if watching fails (e.g. the folder vanished)
   */
  constructor(
    path: string,
    onEvents: (events: WatchEvent[]) => void,
    onError: (message: string) => void,
  ) {
    const ready = Promise.withResolvers<void>();
    this.ready = ready.promise;
    this.#ready = ready.resolve;
    this.#worker = new Worker(new URL("./watch_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (
      message: MessageEvent<{ ready?: true; events?: WatchEvent[]; error?: string }>,
    ) => {
      if (message.data.events) onEvents(message.data.events);
      else if (message.data.ready) ready.resolve();
      else if (message.data.error !== undefined) {
        ready.resolve();
        onError(message.data.error);
      }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      ready.resolve();
      onError(event.message);
    };
    this.#worker.postMessage({ path });
  }

  /** Stop watching (`ready` resolves, if it has not yet). */
  close(): void {
    this.#worker.terminate();
    this.#ready();
  }
}
