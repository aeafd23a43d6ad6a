/**
 * The file-system watcher, in its own worker thread. It only reads events
 * and forwards them in small batches, so it keeps up with a burst of
 * thousands of files even while the main thread is busy; a watcher that
 * falls behind loses events.
 *
 * Protocol: the parent posts `{ path }` once; the worker posts `{ ready: true }`
 * once the watch is in place, then `{ events: WatchEvent[] }` messages, or
 * `{ error: string }` if watching fails. Terminating the worker stops watching.
 *
 * @module
 */
/// <reference lib="deno.worker" />

/** One event as forwarded to the parent. */
export interface WatchEvent {
  kind: Deno.FsEvent["kind"];
  paths: string[];
  flag?: Deno.FsEvent["flag"];
}

/** How long events are gathered before they are posted together (ms). */
const BATCH_MS = 2;

self.onmessage = async (message: MessageEvent<{ path: string }>) => {
  let batch: WatchEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    timer = undefined;
    const events = batch;
    batch = [];
    self.postMessage({ events });
  };
  try {
    const watcher = Deno.watchFs(message.data.path, { recursive: true });
    self.postMessage({ ready: true });
    for await (const event of watcher) {
      batch.push({ kind: event.kind, paths: event.paths, flag: event.flag });
      timer ??= setTimeout(flush, BATCH_MS);
    }
  } catch (error) {
    self.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
};
