/**
 * Files that grow (`growing_patterns`): while the stability checker waits
 * for such a file to be complete, what was appended to it is sent every
 * {@linkcode PART_INTERVAL_MS} into its temporary copy at the destination
 * ({@linkcode Transport.sendPart}), which is kept there. Once the
 * file is complete it is sent as any file: the transport continues that copy
 * (only the rest travels), verifies it and renames it into place, once.
 *
 * Methods without `sendPart` (scp, ftp) send such files once complete, as
 * any file. A part that fails is only logged: the complete file is sent as
 * usual, continuing what did arrive.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { planDestination } from "../layout/destination.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { createFileFilter, type FileFilter } from "../watch/file_filter.ts";
import type { Transport } from "../transfer/transport.ts";

/** How often what a growing file gained is sent, at most. */
const PART_INTERVAL_MS = 2000;

/** What a {@linkcode GrowingSender} works with. */
export interface GrowingContext {
  job: JobConfig;
  transport: Transport;
  /** Aborted when the job stops. */
  signal: AbortSignal;
  /** Whether the stability checker still waits for `rel` to be complete. */
  growing(rel: string): boolean;
  /**
   * The copy the ledger records of the source `rel` (at `path`) that it goes over when complete
   * (see `ownCopy` in `layout/sent_before.ts`), or `null`: its parts go into that copy's
   * temporary copy, not where its name leads now.
   */
  ownCopy?(rel: string, path: string): string | null;
  /** How often parts go, at most (ms). @default PART_INTERVAL_MS */
  intervalMs?: number;
}

interface GrowingFile {
  rel: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Bytes at the destination after the last part. */
  sentBytes: number;
  sending: Promise<void> | null;
}

/** Sends the parts of one job's growing files; see the module doc. */
export class GrowingSender {
  #context: GrowingContext;
  #filter: FileFilter | null;
  #files = new Map<string, GrowingFile>();
  #log: Logger;
  #closed = false;

  constructor(context: GrowingContext) {
    this.#log = jobLogger("pipeline", context.job.name);
    this.#context = context;
    const { job, transport } = context;
    this.#filter = job.growing_patterns.length > 0 && transport.sendPart !== undefined
      ? createFileFilter({ ...job, file_patterns: job.growing_patterns, exclude_patterns: [] }, {
        // Which files grow is no reason to skip the others: nothing of this filter is logged.
        skipLog: null,
      })
      : null;
  }

  /** Activity for the file at `path` (`rel` to the watch folder): its growth is sent soon. */
  touched(path: string, rel: string): void {
    if (this.#closed || this.#filter === null || !this.#filter.includesFile(rel)) return;
    let file = this.#files.get(path);
    if (file === undefined) {
      file = { rel, timer: undefined, sentBytes: 0, sending: null };
      this.#files.set(path, file);
    }
    this.#arm(path, file);
  }

  /** Stop sending parts; waits for the part under way. */
  async close(): Promise<void> {
    this.#closed = true;
    const sending = [...this.#files.values()].map((file) => {
      clearTimeout(file.timer);
      return file.sending;
    });
    this.#files.clear();
    await Promise.allSettled(sending);
  }

  #arm(path: string, file: GrowingFile): void {
    if (file.timer !== undefined || file.sending !== null) return;
    file.timer = setTimeout(() => {
      file.timer = undefined;
      file.sending = this.#sendPart(path, file).finally(() => {
        file.sending = null;
        if (this.#closed || !this.#context.growing(file.rel)) this.#files.delete(path);
        else this.#arm(path, file);
      });
    }, this.#context.intervalMs ?? PART_INTERVAL_MS);
  }

  /** Send what `path` gained since the last part, while it is still growing. */
  async #sendPart(path: string, file: GrowingFile): Promise<void> {
    const { job, transport, signal } = this.#context;
    if (this.#closed || !this.#context.growing(file.rel)) return;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      return; // Gone: the stability checker drops it.
    }
    if (!info.isFile || info.size <= file.sentBytes) return;
    const mtimeMs = info.mtime?.getTime() ?? Date.now();
    try {
      const destination = this.#context.ownCopy?.(file.rel, path) ?? await planDestination(
        job,
        { path, relPath: file.rel, mtimeMs },
        new Date(),
        () => {},
      );
      const part = await transport.sendPart!(
        { source: path, destination, size: info.size, mtimeMs },
        signal,
      );
      file.sentBytes = part.bytes;
      this.#log.debug("Sent a part of {path}: {appended} bytes, {bytes} at the destination", {
        path,
        appended: part.appended,
        bytes: part.bytes,
      });
    } catch (error) {
      if (signal.aborted) return;
      this.#log.info("Could not send a part of {path} ({reason}); it is sent once complete", {
        path,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
