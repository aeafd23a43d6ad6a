/**
 * What an entry of a watch folder is, and whether it may be sent: a regular
 * file, a symbolic link the `symlinks` policy allows, or something that is
 * never opened (FIFO, socket, device, a name the OS cannot give back); and
 * the names FTP cannot carry.
 *
 * Only `lstat`, `stat`, `readlink` and `realpath` are used: nothing here
 * opens the entry, so nothing here can block on it.
 *
 * @module
 */
import { linkedFolder, relativeTo } from "../layout/watch_folder_paths.ts";
import type { Skip } from "./skip_log.ts";
import { isGoneError } from "./file_version.ts";

/** The `symlinks` key: what to do with symbolic links in the watch folder. */
export type SymlinkPolicy = "skip" | "inside" | "follow";

/** What {@linkcode classifyEntry} needs of a job. */
export interface EntryJob {
  watch_path: string;
  /** @default "skip" */
  symlinks?: SymlinkPolicy;
}

/** The verdict on one entry. */
export type EntryVerdict =
  | {
    ok: true;
    /** The file to read: the entry itself, or for a followed link its real path. */
    source: string;
    /** For a followed link: what the link points to, as stored in it. */
    linkTarget?: string;
  }
  | ({ ok: false } & Skip);

/** What a directory listing already says about an entry (saves an lstat). */
export interface EntryHint {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** U+FFFD: what the runtime puts in place of bytes of a name that are not UTF-8. */
const REPLACEMENT = "\uFFFD";

/**
 * Classify the entry at `path` (inside `job.watch_path`) without opening it.
 *
 * - a regular file: sendable;
 * - a symbolic link: per `job.symlinks`: `skip` never; `inside` when it
 *   points to a regular file whose real path is inside the watch folder;
 *   `follow` when it points to a regular file anywhere. A link to a folder is
 *   never a file (scans decide whether to enter it);
 * - under `skip` and `inside`, a file below a folder that is itself a link is
 *   not sent (the watcher may report such paths);
 * - FIFOs, sockets and devices: never;
 * - a name with U+FFFD that does not exist: the runtime replaced bytes that are
 *   not UTF-8, so the file cannot be opened by this name (ERROR level);
 * - a path that no longer exists: not sendable, not logged.
 *
 * @param hint the directory listing's view of the entry, when the caller has
 *   one and knows the parent folder is not reached through a link
 */
export function classifyEntry(path: string, job: EntryJob, hint?: EntryHint): EntryVerdict {
  const policy = job.symlinks ?? "skip";
  if (hint?.isFile && !path.includes(REPLACEMENT)) return { ok: true, source: path };
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    return missing(path, error);
  }
  if (!hint && policy !== "follow") {
    const viaLink = linkedFolder(job.watch_path, path);
    if (viaLink !== null) {
      return {
        ok: false,
        code: "linked-folder",
        reason: `it is inside ${viaLink}, a symbolic link to a folder (symlinks: ${policy})`,
        level: "info",
      };
    }
  }
  if (info.isFile) return { ok: true, source: path };
  if (info.isDirectory) return { ok: false, code: "folder", reason: "a folder", level: "none" };
  if (info.isSymlink) return classifyLink(path, job.watch_path, policy);
  return { ok: false, code: "special", reason: specialKind(info), level: "info" };
}

/**
 * Whether an entry that is not a folder is at `path` (what the name rules for files speak of): a
 * symbolic link to a folder is not one, a scan says it as a link (`scan.ts`), and so does a
 * watcher's event for it, through the scan of it the event starts. Nothing is opened.
 */
export function isFileThere(path: string): boolean {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return false;
  }
  if (!info.isSymlink) return !info.isDirectory;
  try {
    return !Deno.statSync(path).isDirectory;
  } catch {
    return true; // A broken link.
  }
}

/** `FIFO`, `socket`, `block device`, `character device` (or `not a regular file`). */
export function specialKind(info: Deno.FileInfo): string {
  if (info.isFifo) return "FIFO";
  if (info.isSocket) return "socket";
  if (info.isBlockDevice) return "block device";
  if (info.isCharDevice) return "character device";
  return "not a regular file";
}

/** Whether `name` holds bytes the runtime could not decode (shown as U+FFFD). */
export function hasUndecodableBytes(name: string): boolean {
  return name.includes(REPLACEMENT);
}

/**
 * Why a file or folder whose name is `name` can never be sent by FTP (its commands are lines,
 * ended by CR LF, so a line break in a name would end one), or `null`: skipped, and said at
 * ERROR, as a name that is not UTF-8 is.
 */
export function lineBreakSkip(name: string, what: "file" | "folder"): Skip | null {
  if (!/[\r\n]/.test(name)) return null;
  return {
    code: "ftp-name",
    level: "error",
    reason: "its name holds a line break, which FTP cannot carry (its commands end there), so " +
      (what === "file" ? "the file is" : "the files in it are") + " never sent; rename it " +
      `(\`ls -b\` shows the exact name) and ${what === "file" ? "it is" : "they are"} sent`,
  };
}

/** The verdict for a path that lstat cannot find (or examine). */
function missing(path: string, error: unknown): EntryVerdict {
  if (isGoneError(error)) {
    if (hasUndecodableBytes(path)) {
      return {
        ok: false,
        code: "name",
        reason: "the name is not valid UTF-8, so the file cannot be opened by it " +
          "(\\ufffd stands for the bytes that are not UTF-8); rename it " +
          "(`ls -b` shows the exact name)",
        level: "error",
      };
    }
    return { ok: false, code: "gone", reason: "it no longer exists", level: "none" };
  }
  const why = error instanceof Error ? error.message : String(error);
  return { ok: false, code: "unreadable", reason: `cannot examine it (${why})`, level: "info" };
}

/** The verdict for a symbolic link under `policy`. */
function classifyLink(path: string, root: string, policy: SymlinkPolicy): EntryVerdict {
  let target = "?";
  try {
    target = Deno.readLinkSync(path);
  } catch { /* reported as unresolvable below */ }
  const skip = (reason: string): EntryVerdict => ({
    ok: false,
    code: "link",
    reason: `symbolic link to ${target}: ${reason}`,
    level: "info",
    target,
  });
  if (policy === "skip") return skip("links are not followed (symlinks: skip)");
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = Deno.realPathSync(path);
    info = Deno.statSync(real);
  } catch {
    return skip("it points nowhere (broken link)");
  }
  if (info.isDirectory) {
    return policy === "follow"
      ? { ok: false, code: "folder", reason: "a link to a folder", level: "none" }
      : skip("a folder; only links to files are followed (symlinks: inside)");
  }
  if (!info.isFile) return skip(`a ${specialKind(info)}, which is never read`);
  if (policy === "inside") {
    let realRoot: string;
    try {
      realRoot = Deno.realPathSync(root);
    } catch {
      return skip("the watch folder cannot be resolved");
    }
    const inside = relativeTo(realRoot, real);
    if (inside === null || inside === "") {
      return skip("its real path is outside the watch folder (symlinks: inside)");
    }
  }
  return { ok: true, source: real, linkTarget: target };
}

/**
 * Why the job does not send what has the name `path` now, where a symbolic link its `symlinks`
 * policy refuses took a file's name (the checker's stat reads through links); `null` for a file.
 */
export function linkRefused(path: string, job: EntryJob): string | null {
  try {
    if (!Deno.lstatSync(path).isSymlink) return null;
  } catch {
    return null;
  }
  const verdict = classifyEntry(path, job);
  return verdict.ok ? null : verdict.reason;
}
