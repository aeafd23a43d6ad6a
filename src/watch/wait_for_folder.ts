/**
 * Waiting for a watch folder that does not exist yet (a disk not mounted, a
 * folder the instrument creates later).
 *
 * @module
 */
import { logger } from "../log/logging.ts";

/** Options of {@linkcode waitForFolder}. */
export interface WaitForFolderOptions {
  /** Job name, for messages. */
  job: string;
  /** Fail at once instead of waiting. */
  once: boolean;
  /** How often to look again. */
  retryMs: number;
  /** Stops the wait (resolves `false`). */
  signal: AbortSignal;
}

/**
 * Resolve `true` once `path` is a folder, checking every `retryMs` (one
 * warning while it is missing), or `false` when `signal` aborts first.
 *
 * @throws when `path` exists but is no folder, cannot be checked, or (with
 *   `once`) does not exist
 */
export async function waitForFolder(path: string, options: WaitForFolderOptions): Promise<boolean> {
  const { job, once, retryMs, signal } = options;
  let warned = false;
  while (!signal.aborted) {
    try {
      const info = await Deno.stat(path);
      if (info.isDirectory) return true;
      throw new Error(`Cannot watch ${path}: it is not a folder`);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (once) {
      throw new Error(
        `Cannot watch ${path}: the folder does not exist (job ${job}); create it or fix watch_path`,
      );
    }
    if (!warned) {
      logger("watch").warn(
        "Watch folder {path} does not exist yet; checking again every {seconds} s",
        { job, path, seconds: retryMs / 1000 },
      );
      warned = true;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, retryMs);
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }
  return false;
}
