/**
 * The folders of one watch folder that a scan could not read. Each is said as a warning; one that
 * could not be read because this machine ran out of open files (EMFILE, ENFILE) is no folder
 * anyone must fix: it is said with what to do, once, and read again soon, until it can be (the
 * shortage passes as transfers end).
 *
 * @module
 */
import { DESCRIPTOR_SHORTAGE_ADVICE, isDescriptorShortage } from "../errors.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { logger } from "../log/logging.ts";

/** How long after a folder could not be read for want of open files it is read again. */
export const SHORTAGE_RESCAN_MS = 5_000;

const UNREADABLE = "Cannot read folder {path}: {error}";
const SHORT = "Cannot read folder {path} now ({error}): {advice}";

/** One watch folder's folders that a scan could not read; see the module doc. */
export class UnreadFolders {
  #job: string;
  #root: string;
  #rescan: (rel: string) => Promise<unknown>;
  /** Folders to read again (paths), and those whose shortage was said. */
  #waiting = new Set<string>();
  #said = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #log = logger("watch");

  /**
   * `rescan`: scan the folder `rel` (relative to `root`, `""`: all) again, its folders that cannot
   * be read reported to {@linkcode report}.
   */
  constructor(
    { job, root }: { job: string; root: string },
    rescan: (rel: string) => Promise<unknown>,
  ) {
    this.#job = job;
    this.#root = root;
    this.#rescan = rescan;
  }

  /** Say that the folder `path` could not be read (`error`); after a shortage, read it again. */
  report = (path: string, error: unknown): void => {
    const job = this.#job;
    if (!isDescriptorShortage(error)) {
      this.#log.warn(UNREADABLE, { job, path, error: String(error) });
      return;
    }
    if (this.#closed) return;
    if (!this.#said.has(path)) {
      this.#said.add(path);
      this.#log.warn(SHORT, {
        job,
        path,
        error: String(error),
        advice: DESCRIPTOR_SHORTAGE_ADVICE,
      });
    }
    this.#waiting.add(path);
    this.#timer ??= setTimeout(() => void this.#again(), SHORTAGE_RESCAN_MS);
  };

  async #again(): Promise<void> {
    this.#timer = undefined;
    const paths = [...this.#waiting];
    this.#waiting.clear();
    for (const path of paths) {
      if (this.#closed) return;
      // A folder inside another one read again is read with it.
      if (paths.some((other) => other !== path && path.startsWith(`${other}/`))) continue;
      try {
        await this.#rescan(relativeTo(this.#root, path) ?? "");
      } catch (error) {
        this.report(path, error);
      }
      if (!this.#waiting.has(path)) this.#said.delete(path);
    }
  }

  /** Stop reading folders again. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
