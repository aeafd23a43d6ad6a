/**
 * Waiting for a watch folder: one that does not exist yet (a disk not mounted, a folder the
 * instrument creates later), one that cannot be read for now (a share's client gone), and one
 * whose look does not answer, said for the kind of file system it is on: a share whose server
 * stopped answering (ERROR), or a local disk this machine or the disk is too busy to answer for
 * (WARNING, said at ERROR only once it stays silent for a minute more). Its answer is said too.
 *
 * @module
 */
import { logger } from "../log/logging.ts";
import { answerWithin, unreadableForNow } from "../config/file_systems.ts";
import { type KnownKind, knownKindOf, type WatchHow } from "./fs_type.ts";

/** Options of {@linkcode waitForFolder}. */
export interface WaitForFolderOptions {
  /** Job name, for messages. */
  job: string;
  /** Fail at once instead of waiting. */
  once: boolean;
  /** How often to look again while it does not exist. */
  missingFolderRetryMs: number;
  /** Stops the wait (resolves `false`). */
  signal: AbortSignal;
  /**
   * Told why the folder cannot be looked at (it does not exist, or it did not
   * answer within {@linkcode FOLDER_ANSWER_MS}: a share that stopped
   * answering), and `null` once it is there and answered.
   */
  onSilent?: (reason: string | null) => void;
  /** How the folder is watched, once that was decided: a look that does not answer is said
   * for the kind of file system it is on (before: as far as `knownKindOf` knows it). */
  how?: () => WatchHow | undefined;
  /** The file system the folder's files were on, remembered from an earlier run. */
  watchedOn?: { readonly kind: KnownKind | null };
}

/** How long the look at the watch folder may take before it counts as not answering. */
export const FOLDER_ANSWER_MS = 10_000;

/** How much longer a local disk's folder may not answer before it is said at ERROR. */
export const LOCAL_LATE_MS = 60_000;

/**
 * Resolve `true` once `path` is a folder, checking every
 * `missingFolderRetryMs` (one warning while it is missing, one error while it
 * cannot be read: see {@linkcode unreadableForNow}; a look that does not
 * answer is said and waited for), or `false` when `signal` aborts first.
 *
 * @throws when `path` exists but is no folder, cannot be checked, or (with
 *   `once`) does not exist or cannot be read
 */
export async function waitForFolder(path: string, options: WaitForFolderOptions): Promise<boolean> {
  const { job, once, missingFolderRetryMs: retryMs, signal } = options;
  let said: "missing" | "unreadable" | null = null;
  while (!signal.aborted) {
    let info: Deno.FileInfo | null = null;
    let failure: unknown = null;
    try {
      info = await answered(Deno.stat(path), path, options);
      if (info === null) return false;
    } catch (error) {
      failure = error;
    }
    if (info !== null) {
      if (!info.isDirectory) throw new Error(`Cannot watch ${path}: it is not a folder`);
      if (said !== null) options.onSilent?.(null);
      if (said === "unreadable") {
        logger("watch").info("Watch folder {path} can be read now", { job, path });
      }
      return true;
    }
    const missing = failure instanceof Deno.errors.NotFound;
    if (!missing && (once || !unreadableForNow(failure))) throw failure;
    if (once) {
      throw new Error(
        `Cannot watch ${path}: the folder does not exist (job ${job}); create it or fix watch_path`,
      );
    }
    if (missing && said !== "missing") {
      logger("watch").warn(
        "Watch folder {path} does not exist yet; checking again every {seconds} s",
        { job, path, seconds: retryMs / 1000 },
      );
      // Said where the job's state is shown (status, the page, /metrics): nothing is watched.
      options.onSilent?.("it does not exist (a disk or share not mounted yet?)");
    } else if (!missing && said !== "unreadable") {
      const error = failure instanceof Error ? failure.message : String(failure);
      logger("watch").error(
        "Cannot read watch folder {path}: {error} (a share whose server or client is gone?); " +
          "checking it again every {seconds} s",
        { job, path, error, seconds: retryMs / 1000 },
      );
      options.onSilent?.(error);
    }
    said = missing ? "missing" : "unreadable";
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

/**
 * What `look` gives; one that has not answered within {@linkcode FOLDER_ANSWER_MS} is said, for
 * the kind of file system the folder is on (see {@linkcode lateWords}), and waited for (no second
 * look is started) until it answers, or `null` when `signal` aborts first. Its answer is said too.
 */
async function answered<T>(
  look: Promise<T>,
  path: string,
  { job, signal, onSilent, how, watchedOn }: WaitForFolderOptions,
): Promise<T | null> {
  const startedMs = performance.now();
  const quick = await answerWithin(look, FOLDER_ANSWER_MS);
  if (quick !== null) return quick;
  const watched = how?.();
  const words = lateWords(
    watched
      ? { type: watched.fileSystem, remote: watched.remote }
      : knownKindOf(path, watchedOn?.kind ?? null),
  );
  const error = `no answer within ${FOLDER_ANSWER_MS / 1000} s`;
  const log = logger("watch");
  const { local, type, cause } = words;
  if (local) {
    log.warn(
      "Watch folder {path} did not answer within {seconds} s; it is on a local disk ({type}), " +
        "so this machine or the disk is too busy to answer (many files at once?); the job waits " +
        "for it",
      { job, path, seconds: FOLDER_ANSWER_MS / 1000, type },
    );
  } else {
    log.error("Cannot read watch folder {path}: {error} ({cause}); the job waits for it", {
      job,
      path,
      error,
      cause,
      type,
    });
  }
  const reason = `${error} (${cause})`;
  onSilent?.(reason);
  let back = false;
  const answer = new Promise<T | null>((resolve, reject) => {
    look.then(resolve, reject);
    signal.addEventListener("abort", () => resolve(null), { once: true });
  });
  try {
    // A local disk that stays silent a minute more is no busy moment any more: said at ERROR.
    const value = local ? await answerWithin(answer, LOCAL_LATE_MS) : await answer;
    if (value === null && local && !signal.aborted) {
      log.error(
        "Watch folder {path} has still not answered after {seconds} s, on a local disk " +
          "({type}): the disk may be failing or hung (the system log may say); the job waits for it",
        { job, path, seconds: (FOLDER_ANSWER_MS + LOCAL_LATE_MS) / 1000, type },
      );
    }
    const last = value ?? await answer;
    back = last !== null;
    return last;
  } finally {
    onSilent?.(null);
    if (back) {
      // Said as its WARNING or ERROR was: the same words as a polled folder that answers again.
      const after = Math.round((performance.now() - startedMs) / 100) / 10;
      log.info("Watch folder {path} can be read again: it answered after {after} s", {
        job,
        path,
        after,
      });
    }
  }
}

/**
 * Why a watch folder on a file system of this kind (`null`: not known) may not answer, and
 * whether it is on a local disk (a late answer there is a busy moment, said as a warning).
 */
export function lateWords(kind: KnownKind | null): { cause: string; local: boolean; type: string } {
  if (kind === null) {
    const cause = "a share whose server stopped answering, or this machine or its disk too busy?";
    return { cause, local: false, type: "unknown" };
  }
  const type = kind.type ?? (kind.remote ? "a network or FUSE file system" : "local");
  if (kind.remote) return { cause: "a share whose server stopped answering?", local: false, type };
  return {
    cause: `this machine or its local disk (${type}) too busy to answer?`,
    local: true,
    type,
  };
}
