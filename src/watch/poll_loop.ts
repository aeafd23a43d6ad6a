/**
 * The polls of one watch folder, every `poll_interval_seconds` (see
 * `folder_poller.ts` for what one poll does), and a share that goes away:
 * before each poll the watch folder itself is checked; a folder that cannot
 * be read (ENOENT, EIO, ENOTCONN, a stale NFS handle...) or a network share
 * that is no longer mounted (its mount point now shows a local file system)
 * is reported once at ERROR and checked again at every poll; once it is back
 * that is said at INFO and the caller looks for the files written meanwhile.
 *
 * @module
 */
import { logger } from "../log/logging.ts";
import type { FileFilter } from "./file_filter.ts";
import { FolderPoller } from "./folder_poller.ts";
import { type FileSystemInfo, fileSystemOf, magicOf } from "./fs_type.ts";
import type { FoundFile, ScanOptions } from "./scan.ts";

/** What a scan calls for each folder it lists (see `ScanOptions.onListed`). */
type OnListed = NonNullable<ScanOptions["onListed"]>;

/** How long the check of the watch folder may take before it counts as failed. */
const CHECK_TIMEOUT_MS = 10_000;

/** Options of {@linkcode PollLoop}. */
export interface PollLoopOptions {
  job: string;
  root: string;
  filter: FileFilter;
  intervalMs: number;
  /** Files that are new or changed since they were last seen. */
  onChanged(files: FoundFile[]): void;
  /**
   * The watch folder is back after it went away: watch it again and scan it,
   * passing `onListed` to the scan (the polls learn the tree from it).
   */
  onBack(onListed: OnListed): Promise<void>;
  onError(path: string, error: unknown): void;
}

/** See the module doc. */
export class PollLoop {
  #options: PollLoopOptions;
  #log = logger("watch");
  #poller: FolderPoller;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** The file system when the polls started (an unmount shows as another one). */
  #fs: FileSystemInfo | undefined;
  /** Why the watch folder cannot be read, while it cannot. */
  #unavailable: string | null = null;
  /** Whether the last poll failed (said once). */
  #failing = false;
  /** The check of the watch folder under way. */
  #pending: Promise<string | null> | undefined;

  constructor(options: PollLoopOptions) {
    this.#options = options;
    this.#poller = new FolderPoller(options);
  }

  /** Why the watch folder cannot be read now (a share that went away), or `null`. */
  get unavailable(): string | null {
    return this.#unavailable;
  }

  /**
   * Forget the tree, to learn it from the scan about to run: pass the result
   * as that scan's `onListed`. Before the first scan (what the scan misses,
   * the first poll finds).
   */
  learnFromScan(): OnListed {
    this.#fs ??= fileSystemOf(this.#options.root);
    this.#poller.forget();
    return this.#poller.listed;
  }

  /** Start polling (after the first scan). */
  start(): void {
    if (this.#closed) return;
    this.#schedule();
  }

  /** Stop polling. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#tick(), this.#options.intervalMs);
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    const { job, root } = this.#options;
    try {
      const problem = await this.#check();
      if (problem !== null) {
        if (this.#unavailable === null) {
          this.#log.error(
            "Cannot read watch folder {path}: {error}; checking it again every {seconds} s",
            { job, path: root, error: problem, seconds: this.#options.intervalMs / 1000 },
          );
        }
        this.#unavailable = problem;
        return;
      }
      if (this.#unavailable !== null) {
        this.#unavailable = null;
        this.#log.info(
          "Watch folder {path} can be read again; looking for the files written meanwhile",
          { job, path: root },
        );
        await this.#options.onBack(this.learnFromScan());
        return;
      }
      if (!this.#poller.knowsRoot) {
        // The folder vanished between the check and a poll, and is there again.
        await this.#options.onBack(this.learnFromScan());
        return;
      }
      const changed = await this.#poller.poll();
      if (!this.#closed && changed.length > 0) this.#options.onChanged(changed);
      this.#failing = false;
    } catch (error) {
      if (this.#closed || this.#failing) return;
      this.#failing = true;
      this.#log.error("Polling {path} failed: {error}; trying again at every poll", {
        job,
        path: root,
        error: String(error),
      });
    } finally {
      this.#schedule();
    }
  }

  /**
   * Why the watch folder cannot be polled now, or `null` when it can. Asked
   * off the main thread: a dead server behind a hard NFS mount never answers,
   * which counts as a problem after {@linkcode CHECK_TIMEOUT_MS} (the question
   * stays open; no second one is asked meanwhile).
   */
  async #check(): Promise<string | null> {
    this.#pending ??= this.#ask().finally(() => this.#pending = undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(
        () => resolve(`no answer within ${CHECK_TIMEOUT_MS / 1000} s`),
        CHECK_TIMEOUT_MS,
      );
    });
    try {
      return await Promise.race([this.#pending, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #ask(): Promise<string | null> {
    const { root } = this.#options;
    try {
      if (!(await Deno.stat(root)).isDirectory) return "it is not a folder";
      // Readable too (one entry is enough): a poll lists it when it changes.
      for await (const _ of Deno.readDir(root)) break;
      const fs = this.#fs;
      if (fs?.remote && fs.magic !== null && (await magicOf(root)) !== fs.magic) {
        const now = fileSystemOf(root);
        if (!now.remote) {
          const share = fs.source === null ? fs.type : `${fs.type} ${fs.source}`;
          return `the share (${share}) is not mounted there (${now.type} instead)`;
        }
      }
      return null;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
}
