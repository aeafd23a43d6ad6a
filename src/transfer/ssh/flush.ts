/**
 * Flushing the destination file systems while a large batch uploads (with
 * `remote_sync`), so the flush before the renames finds little left to write.
 *
 * @module
 */
import { posix } from "node:path";
import { buildScript, call } from "./remote_script.ts";
import type { SshDelivery } from "./delivery.ts";
import type { SshMethod } from "./method.ts";

/**
 * With `remote_sync`, a batch of at least this many bytes has the destination
 * file systems flushed while it uploads (`SshBatch.put` in `ssh/batch.ts`).
 */
const FLUSH_WHILE_UPLOADING_BYTES = 64 * 1024 * 1024;

/** How often those flushes start, at most. */
const FLUSH_INTERVAL_MS = 1000;

/**
 * With `remote_sync` and a batch of {@linkcode FLUSH_WHILE_UPLOADING_BYTES}
 * or more: flush the destination file systems every
 * {@linkcode FLUSH_INTERVAL_MS} while the upload runs (one small ssh call
 * each, only when a shared session is free), so the flush before the
 * renames finds little left to write. Returns the function that stops it.
 */
export function flushWhileUploading(
  method: Pick<SshMethod, "job" | "session" | "timeoutMs">,
  deliveries: SshDelivery[],
  signal: AbortSignal,
): () => Promise<void> {
  const bytes = deliveries.reduce((sum, delivery) => sum + delivery.item.size, 0);
  if (!method.job.remote_sync || bytes < FLUSH_WHILE_UPLOADING_BYTES) {
    return () => Promise.resolve();
  }
  const folders = [...new Set(deliveries.map((delivery) => posix.dirname(delivery.finalPath)))];
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const flushing = (async () => {
    while (!stop.signal.aborted) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FLUSH_INTERVAL_MS);
        stop.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(undefined);
        }, { once: true });
      });
      if (stop.signal.aborted) break;
      const script = buildScript(null, [call("flush_folders", ...folders)]);
      await method.session.runScript(script.text, {
        timeoutMs: method.timeoutMs,
        signal: stop.signal,
        onlyIfFree: true,
      }).catch(() => {}); // Optional: the flush before the renames does it anyway.
    }
  })();
  return async () => {
    signal.removeEventListener("abort", onAbort);
    stop.abort();
    await flushing;
  };
}
