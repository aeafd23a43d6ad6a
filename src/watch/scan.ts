/**
 * The walk of a tree ({@linkcode walkFolders}, depth first, one folder read
 * at a time), and what walks it: the job's scan (the files a job would send,
 * and why the others are not sent: {@linkcode scanFolderBatches}) and the
 * plain walk below the job's filter ({@linkcode walkEntries}: counting
 * folders, looking for FIFOs and names the runtime cannot give back).
 *
 * @module
 */
import { join } from "node:path";
import { isDescriptorShortage } from "../errors.ts";
import { hasUndecodableBytes } from "./entry_check.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import type { FileFilter } from "./file_filter.ts";
import type { Skip } from "./skip_log.ts";
import { bytesOf, isNameTooLong, PATH_MAX_BYTES } from "../config/path_limits.ts";

/** A file found in the watch folder. */
export interface FoundFile {
  /** Absolute path. */
  path: string;
  /** Path relative to the watch folder, `/` separators. */
  relPath: string;
}

/** An entry the scan does not send (a folder it does not enter counts as one). */
export interface SkippedEntry extends FoundFile {
  skip: Skip;
  /** Whether the entry is a folder that was not entered. */
  folder: boolean;
}

/** Options of {@linkcode scanFolder} and {@linkcode scanFolderBatches}. */
export interface ScanOptions {
  /** Start below this folder (relative to the root, `/` separators). */
  startRel?: string;
  /** Called for every folder that cannot be read; the scan goes on. */
  onError?: (path: string, error: unknown) => void;
  /**
   * Called for every entry that is not sent and not entered, with why (besides
   * the filter's own once-per-path report). Entries that vanished and plain
   * folders are not listed.
   */
  onSkipped?: (entry: SkippedEntry) => void;
  /**
   * Called with every folder listed, and its mtime read just before the
   * listing (what a poller learns the tree from: see `poll_loop.ts`).
   */
  onListed?: (rel: string, mtimeMs: number, listing: FolderListing) => void;
}

/**
 * Yield, one folder at a time, the files below `root` (or below
 * `root/startRel`) that the filter includes. Skips hidden and excluded folders
 * without entering them. Symbolic links follow the filter's `symlinks`
 * policy: folders reached through a link are entered only under `follow`,
 * and never twice or into a folder that holds the watch folder (no loops).
 * FIFOs, sockets and devices are never sent; nothing is opened. Unreadable
 * folders are reported through `onError` (and, below the root, as skipped
 * entries that need the user) and not entered. Each folder is read in
 * one go, so a tree of 100,000 files takes well under a second; the event
 * loop runs between folders.
 */
export async function* scanFolderBatches(
  root: string,
  filter: FileFilter,
  options: ScanOptions = {},
): AsyncGenerator<FoundFile[]> {
  const startRel = options.startRel ?? "";
  const lister = new FolderLister(root, filter, options);
  if (startRel !== "" && !lister.mayStartAt(startRel)) return;
  const folders = walkFolders(startRel, (rel) => {
    const mtimeMs = options.onListed
      ? Deno.statSync(absoluteOf(root, rel)).mtime?.getTime() ?? 0
      : 0;
    const listing = lister.list(rel);
    return { found: { rel, mtimeMs, listing }, enter: listing.folders };
  }, (rel, error) => {
    const path = absoluteOf(root, rel);
    // A folder below the root too long to read is said once, as an entry not sent (an ERROR).
    if (!isNameTooLong(error)) options.onError?.(path, error);
    else if (rel === "") options.onError?.(path, new Error(pathTooLong(path), { cause: error }));
    if (rel !== "") lister.unreadable(rel, error);
  });
  for (const { rel, mtimeMs, listing } of folders) {
    options.onListed?.(rel, mtimeMs, listing);
    if (listing.files.length > 0) yield listing.files;
    else await Promise.resolve();
  }
}

/** What one folder holds for a walk. */
export interface FolderListing {
  /** The files the filter includes. */
  files: FoundFile[];
  /** The subfolders to enter (relative paths). */
  folders: string[];
}

/**
 * Lists one folder at a time the way {@linkcode scanFolderBatches} walks: what
 * the filter includes, the subfolders it enters, and why the rest is skipped
 * (reported as the walk does). One lister per walk: a folder reached through
 * symbolic links is entered once per lister.
 */
export class FolderLister {
  #root: string;
  #filter: FileFilter;
  #options: ScanOptions;
  #links: LinkedFolders;

  constructor(root: string, filter: FileFilter, options: ScanOptions = {}) {
    this.#root = root;
    this.#filter = filter;
    this.#options = options;
    this.#links = new LinkedFolders(root, filter.symlinks === "follow");
  }

  /** Whether a walk may start at `startRel` (not through a link it may not follow; reported). */
  mayStartAt(startRel: string): boolean {
    const refused = this.#links.refuseStart(startRel);
    if (refused) this.#skipped(startRel, join(this.#root, startRel), refused, true);
    return !refused;
  }

  /**
   * List the folder `rel` (`""`: the root).
   *
   * @throws when it cannot be read
   */
  list(rel: string): FolderListing {
    const filter = this.#filter;
    const links = this.#links;
    const dir = absoluteOf(this.#root, rel);
    // A listed name holds no separator: `join(dir, name)` is this prefix and the name.
    const prefix = join(dir, "x").slice(0, -1);
    const plainPaths = !hasUndecodableBytes(dir);
    const listing: FolderListing = { files: [], folders: [] };
    for (const entry of Deno.readDirSync(dir)) {
      const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
      const path = prefix + entry.name;
      const decodable = !hasUndecodableBytes(entry.name);
      if (!decodable) {
        // The runtime could not decode the name: the entry cannot be opened by it.
        const verdict = filter.classify(childRel);
        if (!verdict.ok) {
          this.#skipped(childRel, path, verdict, entry.isDirectory);
          continue;
        }
      }
      let isDirectory = entry.isDirectory;
      if (entry.isSymlink) isDirectory = links.pointsToFolder(path);
      if (isDirectory) {
        const why = filter.dirSkip(childRel) ??
          (entry.isSymlink ? links.refuse(path) : null);
        if (why) {
          this.#skipped(childRel, path, why, true);
          continue;
        }
        if (entry.isSymlink) filter.reportFollowed(childRel, links.targetOf(path));
        listing.folders.push(childRel);
        continue;
      }
      const why = filter.nameSkip(childRel, true);
      if (why) {
        this.#skipped(childRel, path, why, false);
        continue;
      }
      // The listing says what the entry is; its folders were checked on the way in. A regular file
      // with a name the runtime gave back whole is sendable (classifyEntry's first rule).
      if (entry.isFile && decodable && plainPaths) {
        listing.files.push({ path, relPath: childRel });
        continue;
      }
      const verdict = filter.classify(childRel, entry);
      if (verdict.ok) listing.files.push({ path, relPath: childRel });
      else this.#skipped(childRel, path, verdict, false);
    }
    return listing;
  }

  /**
   * The folder `rel` cannot be read (not one that vanished meanwhile): the
   * files in it cannot be seen, which needs the user (an ERROR once, `--once`
   * fails, `status` and a dry run list it).
   */
  unreadable(rel: string, error: unknown): void {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return;
    // Out of open files: the machine's shortage, not the folder's (the session reads it again).
    if (isDescriptorShortage(error)) return;
    const why = error instanceof Error ? error.message : String(error);
    const path = absoluteOf(this.#root, rel);
    this.#skipped(rel, path, {
      code: "unreadable",
      level: "error",
      reason: isNameTooLong(error)
        ? pathTooLong(path)
        : `the folder cannot be read (${why}): the files in it cannot be seen; give the ` +
          "account the daemon runs as read and search access to it",
    }, true);
  }

  #skipped(relPath: string, path: string, skip: Skip, folder: boolean): void {
    this.#filter.report(relPath, skip);
    if (skip.level !== "none") this.#options.onSkipped?.({ path, relPath, skip, folder });
  }
}

/**
 * Why the folder `path` cannot be read, its path being longer than the system takes (a tree made
 * deeper than PATH_MAX, one folder at a time), and what to do: permissions are not the cause.
 */
export function pathTooLong(path: string): string {
  return `its path is too long for the system (${bytesOf(path)} bytes, where a path may have ` +
    `${PATH_MAX_BYTES} at most), so the files in it cannot be seen: move them to a folder ` +
    "with a shorter path, or shorten the names of the folders on the way";
}

function absoluteOf(root: string, rel: string): string {
  return rel === "" ? root : join(root, rel);
}

/**
 * The walk every scan of a tree makes: folders depth first from `start`, each
 * read once by `read`, which returns what it found there (yielded) and the
 * folders to enter next. A folder `read` throws for (it cannot be read) goes
 * to `onError` and is not entered; `read` must not throw otherwise.
 */
export function* walkFolders<T>(
  start: string,
  read: (folder: string) => { found: T; enter: string[] },
  onError?: (folder: string, error: unknown) => void,
): Generator<T> {
  const stack = [start];
  while (stack.length > 0) {
    const folder = stack.pop()!;
    let result: { found: T; enter: string[] };
    try {
      result = read(folder);
    } catch (error) {
      onError?.(folder, error);
      continue;
    }
    stack.push(...result.enter);
    yield result.found;
  }
}

/**
 * Visit every entry below `root`, depth first, without the job's filter:
 * `visit` gets each entry with its path and says whether to go into it
 * (`true`: it is read as a folder; a folder that cannot be read is passed
 * over) or to stop the walk (`"stop"`). Nothing is opened but folders.
 */
export function walkEntries(
  root: string,
  visit: (path: string, entry: Deno.DirEntry) => boolean | "stop",
): void {
  let stopped = false;
  const folders = walkFolders(root, (dir) => {
    const enter: string[] = [];
    for (const entry of [...Deno.readDirSync(dir)]) {
      const path = join(dir, entry.name);
      const verdict = visit(path, entry);
      if (verdict === "stop") {
        stopped = true;
        break;
      }
      if (verdict) enter.push(path);
    }
    return { found: null, enter };
  });
  for (const _ of folders) if (stopped) return;
}

/** Like {@linkcode scanFolderBatches}, one file at a time. */
export async function* scanFolder(
  root: string,
  filter: FileFilter,
  options: ScanOptions = {},
): AsyncGenerator<FoundFile> {
  for await (const batch of scanFolderBatches(root, filter, options)) yield* batch;
}

/**
 * The folders one scan enters through symbolic links (only with `follow`):
 * each real folder at most once, never one that holds the watch folder.
 */
class LinkedFolders {
  #root: string;
  #follow: boolean;
  #entered = new Set<string>();

  constructor(root: string, follow: boolean) {
    this.#root = root;
    this.#follow = follow;
  }

  /** Whether the link at `path` points to a folder (stat, no open). */
  pointsToFolder(path: string): boolean {
    try {
      return Deno.statSync(path).isDirectory;
    } catch {
      return false;
    }
  }

  /** What the link at `path` points to, as stored in it (`?` when it cannot be read). */
  targetOf(path: string): string {
    try {
      return Deno.readLinkSync(path);
    } catch {
      return "?";
    }
  }

  /** Why the folder link at `relPath` is not entered, or `null` (then it is entered). */
  refuse(path: string): Skip | null {
    const skip = (reason: string): Skip => ({ code: "link", reason, level: "info" });
    const target = this.targetOf(path);
    if (!this.#follow) {
      return {
        ...skip(`symbolic link to the folder ${target}; linked folders are not entered`),
        target,
      };
    }
    let real: string;
    let realRoot: string;
    try {
      real = Deno.realPathSync(path);
      realRoot = Deno.realPathSync(this.#root);
    } catch (error) {
      return skip(`symbolic link to ${target} that cannot be resolved (${error})`);
    }
    if (relativeTo(real, realRoot) !== null) {
      return {
        ...skip(`symbolic link to ${target}, which holds the watch folder (a loop)`),
        target,
      };
    }
    if (this.#entered.has(real)) {
      return { ...skip(`symbolic link to ${target}, a folder this scan already entered`), target };
    }
    this.#entered.add(real);
    return null;
  }

  /** Why a scan may not start at `startRel` (a link, or below one, without `follow`). */
  refuseStart(startRel: string): Skip | null {
    const parts = startRel.split("/");
    let rel = "";
    for (const part of parts) {
      rel = rel === "" ? part : `${rel}/${part}`;
      const path = join(this.#root, rel);
      let isLink: boolean;
      try {
        isLink = Deno.lstatSync(path).isSymlink;
      } catch {
        return null; // reported as unreadable by the scan itself
      }
      if (isLink && this.pointsToFolder(path)) {
        const why = this.refuse(path);
        if (why) return why;
      }
    }
    return null;
  }
}
