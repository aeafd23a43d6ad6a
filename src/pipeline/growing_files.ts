/**
 * Files that grow (`growing_patterns`): while the stability checker waits
 * for such a file to be complete, what was appended to it is sent every
 * {@linkcode PART_INTERVAL_MS} into its temporary copy at the destination
 * ({@linkcode Transport.sendPart}), which is kept there. Once the
 * file is complete it is sent as any file: the transport continues that copy
 * (only the rest travels), verifies it and renames it into place, once.
 *
 * Where the parts go is decided once, at the first part, as the complete file's place is (the
 * intake's `place`), and the complete file goes there too: one that grows past the night's
 * rollover stays in the night it began. Where it goes elsewhere all the same (another file's copy
 * took the name meanwhile), or it is gone, the copies its parts made are removed
 * ({@linkcode GrowingSender.planned}, {@linkcode GrowingSender.gone}): none is left behind.
 *
 * Methods without `sendPart` (scp, ftp) send such files once complete, as
 * any file. A part that fails is only logged: the complete file is sent as
 * usual, continuing what did arrive.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { jobLogger, type Logger } from "../log/logging.ts";
import { createFileFilter, type FileFilter } from "../watch/file_filter.ts";
import type { Transport } from "../transfer/transport.ts";
import { isGoneError } from "../watch/file_version.ts";
import { join } from "node:path";
import { withLinkPolicy } from "./batch_items.ts";

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
   * Where the file `rel` (at `path`, at `version`) goes, decided once for its parts and the
   * complete file (the same way as any file's place), or `null` (the job stops).
   */
  place(rel: string, path: string, version: { size: number; mtimeMs: number }): Promise<
    string | null
  >;
  /**
   * Where the places parts went are kept for the next start (the ledger), so that one after a
   * stop or a crash removes the copies that will not be continued (see {@linkcode GrowingSender}).
   */
  kept?: { read(): string | null; write(value: string): void };
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
  /** By path: where its parts went (each place may hold a copy), until it is planned or gone. */
  #partsAt = new Map<string, { rel: string; places: Set<string> }>();
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
    this.#takeUpKept();
  }

  /**
   * The places parts went before this start (a stop, a crash): they stay known, so the copies
   * there go once the file is planned elsewhere, or now where its source is gone.
   */
  #takeUpKept(): void {
    let kept: unknown = null;
    try {
      kept = JSON.parse(this.#context.kept?.read() ?? "null");
    } catch { /* Unreadable: none known. */ }
    if (kept === null || typeof kept !== "object") return;
    for (const [rel, places] of Object.entries(kept)) {
      if (!Array.isArray(places)) continue;
      const path = join(this.#context.job.watch_path, ...rel.split("/"));
      const known = places.filter((place): place is string => typeof place === "string");
      this.#partsAt.set(path, { rel, places: new Set(known) });
      Deno.lstat(path).catch((error) => isGoneError(error) && this.gone(path));
    }
  }

  /** Keep the places parts went for the next start (see `GrowingContext.kept`). */
  #keep(): void {
    const parts = [...this.#partsAt.values()].map(({ rel, places }) => [rel, [...places]]);
    try {
      this.#context.kept?.write(JSON.stringify(Object.fromEntries(parts)));
    } catch { /* Not writable now: kept with the next change. */ }
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

  /**
   * The file at `path` goes to `destination` once complete: the copies its parts made elsewhere
   * are removed, once the part under way has ended.
   */
  planned(path: string, destination: string | null): void {
    const places = this.#partsAt.get(path)?.places;
    if (places === undefined) return;
    this.#partsAt.delete(path);
    this.#keep();
    Promise.resolve(this.#files.get(path)?.sending).then(() => {
      const others = [...places].filter((place) => place !== destination);
      if (others.length === 0) return;
      this.#log.debug(
        "Removing the copies {path} had sent into {places}: it goes to {destination}",
        {
          path,
          places: others.join(", "),
          destination,
        },
      );
      this.#context.transport.dropKeptCopies?.(others);
    });
  }

  /** The file at `path` is gone: the copies its parts made go (see {@linkcode planned}). */
  gone(path: string): void {
    this.planned(path, null);
  }

  /** Send what `path` gained since the last part, while it is still growing. */
  async #sendPart(path: string, file: GrowingFile): Promise<void> {
    const { transport, signal } = this.#context;
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
      const destination = await this.#context.place(file.rel, path, { size: info.size, mtimeMs });
      if (destination === null || this.#closed || !this.#context.growing(file.rel)) return;
      // Noted before it goes: a part cut off leaves a copy too.
      const parts = this.#partsAt.get(path) ?? { rel: file.rel, places: new Set() };
      if (!parts.places.has(destination)) {
        this.#partsAt.set(path, { rel: file.rel, places: parts.places.add(destination) });
        this.#keep();
      }
      const part = await transport.sendPart!(
        withLinkPolicy({ source: path, destination, size: info.size, mtimeMs }, this.#context.job),
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
