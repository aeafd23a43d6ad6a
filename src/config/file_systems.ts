/**
 * File system kinds by their Linux `statfs` magic number: the name said in
 * messages, and whether events on it may miss changes made elsewhere (a
 * network or FUSE file system). The watch (`watch/fs_type.ts`) and the
 * `local` transport's check for an unmounted share both read it; and the file
 * system a folder's files were on, remembered to tell a share not mounted
 * ({@linkcode FolderFileSystem}).
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { bytesOf, isNameTooLong, PATH_MAX_BYTES } from "./path_limits.ts";

/** Linux statfs magic numbers of file systems whose events miss changes made elsewhere. */
const REMOTE_MAGIC = new Map<number, string>([
  [0x6969, "nfs"],
  [0x517b, "smb"],
  [0xff534d42, "cifs"],
  [0xfe534d42, "smb3"],
  [0x65735546, "fuse"],
  [0x01021997, "9p"],
  [0x00c36400, "ceph"],
  [0x5346414f, "afs"],
  [0x6b414653, "afs"],
  [0x73757245, "coda"],
  [0x564c, "ncp"],
  [0x0bd00bd0, "lustre"],
  [0x47504653, "gpfs"],
  [0xaad7aaea, "panfs"],
  [0x786f4256, "vboxsf"],
  [0x20030528, "orangefs"],
  [0x01161970, "gfs2"],
  [0x7461636f, "ocfs2"],
]);

/** Linux statfs magic numbers of common local file systems, for the name said. */
const LOCAL_MAGIC = new Map<number, string>([
  [0xef53, "ext4"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x2fc12fc1, "zfs"],
  [0x01021994, "tmpfs"],
  [0x794c7630, "overlay"],
  [0xf2f52010, "f2fs"],
  [0x4d44, "vfat"],
  [0x2011bab0, "exfat"],
  [0x5346544e, "ntfs"],
  [0x7366746e, "ntfs3"],
  [0x3153464a, "jfs"],
  [0x9660, "iso9660"],
  [0x15013346, "udf"],
  [0x73717368, "squashfs"],
]);

/** The kind of file system whose `statfs` magic number is `magic`. */
export function fileSystemKind(magic: number): { type: string; remote: boolean } {
  const remote = REMOTE_MAGIC.get(magic);
  const type = remote ?? LOCAL_MAGIC.get(magic) ?? `0x${magic.toString(16)}`;
  return { type, remote: remote !== undefined };
}

/** How long a look at a folder may take before it is taken for a share that stopped answering. */
export const SHARE_ANSWER_MS = 5_000;

/**
 * What `call` (a look at a folder, made on the runtime's thread pool) gives,
 * or `null` when it has not answered within `ms`: on a share whose server
 * stopped answering it never does (the call is left waiting).
 */
export async function answerWithin<T>(call: Promise<T>, ms = SHARE_ANSWER_MS): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<null>((done) => timer = setTimeout(() => done(null), ms));
  try {
    return await Promise.race([call, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Where a {@linkcode FolderFileSystem} keeps what it remembers (the ledger's facts about itself). */
export interface FactStore {
  meta(key: string): string | null;
  setMeta(key: string, value: string): void;
}

/** Whose folder a {@linkcode FolderFileSystem} tells of (see its constructor). */
export type FolderRole = "arrived" | "watched" | "archived";

/** How the files of each role's folder were there, and what the folder is, in messages. */
const WORDS: Record<FolderRole, [string, string]> = {
  arrived: ["arrived", "destination"],
  watched: ["were", "watch folder"],
  archived: ["were archived", "archive"],
};

/**
 * The file system a folder's files were on (Linux: its `statfs` type), kept in
 * the ledger so that it holds after a restart too: the mount point of a share
 * that did not mount is an empty folder on the disk below, where copies would
 * never reach the share (a destination or an archive) and files written to the
 * share are never seen (a watch folder). For a destination or an archive it
 * also keeps whether the folder was a mount point (another device than its
 * parent's, any system but Windows): a local disk unplugged or not mounted
 * (a USB disk, a second disk of the same kind as the one below) leaves the
 * same empty folder, whose copies would fill the disk below.
 */
export class FolderFileSystem {
  readonly #folder: string;
  readonly #facts: FactStore | null;
  readonly #key: string;
  readonly #sampleKey: string;
  readonly #role: FolderRole;
  readonly #mountKey: string;
  #was: number | null;
  /** Whether the folder was a mount point when files were there (`null`: not known). */
  #wasMountPoint: boolean | null;
  /** Whether this run's files were looked at (once a run, and again after a move). */
  #known = false;
  /** A file that was there (relative to the folder), the last run's first. */
  #sample: string | null;

  /**
   * @param role whose folder: files `arrived` in it (a local destination), it is `watched`, or
   * sources are `archived` in it (`archive_path`)
   */
  constructor(folder: string, facts: FactStore | null, role: FolderRole) {
    this.#folder = folder;
    this.#facts = facts;
    this.#role = role;
    [this.#key, this.#sampleKey] = [`${role}_on_file_system ${folder}`, `${role}_file ${folder}`];
    this.#mountKey = `${role}_mount_point ${folder}`;
    const kept = Number.parseInt(facts?.meta(this.#key) ?? "", 16);
    this.#was = Number.isSafeInteger(kept) ? kept : null;
    const mounted = facts?.meta(this.#mountKey) ?? null;
    this.#wasMountPoint = mounted === null ? null : mounted === "1";
    this.#sample = facts?.meta(this.#sampleKey) ?? null;
  }

  /** The kind of file system the folder's files were on (remembered), or `null`. */
  get kind(): { type: string; remote: boolean } | null {
    return this.#was === null ? null : fileSystemKind(this.#was);
  }

  /**
   * Files are there (`file`, relative to the folder, one of them): remember
   * the folder's file system, and that file, once a run (not when the folder
   * does not answer).
   */
  async remember(file: string): Promise<void> {
    if (this.#known) return;
    const now = await statfsType(this.#folder);
    const mounted = this.#role === "watched" ? null : await mountPoint(this.#folder);
    if (now === null && mounted === null) return;
    this.#known = true;
    this.#was = now ?? this.#was;
    this.#wasMountPoint = mounted ?? this.#wasMountPoint;
    this.#sample = file;
    try {
      if (now !== null) this.#facts?.setMeta(this.#key, now.toString(16));
      if (mounted !== null) this.#facts?.setMeta(this.#mountKey, mounted ? "1" : "0");
      this.#facts?.setMeta(this.#sampleKey, file);
    } catch {
      // The ledger says why it cannot be written; this run remembers it meanwhile.
    }
  }

  /**
   * Why the folder is the mount point of a share or disk that is not mounted
   * (its files were on a network or FUSE file system, and it is a folder on a
   * local one now; or it was a mount point and is none now), empty or without
   * the file remembered there (a marker file left in a mount point does not
   * make it the folder), or `null`. A local folder that
   * holds that file (the files moved there), or any other change of file
   * system (a new share mounted there), is a folder moved for good, remembered
   * at the next {@linkcode remember}. A folder that does not answer is no
   * share missing.
   */
  async unmountedShare(): Promise<string | null> {
    const before = this.#was;
    const now = before === null ? null : await statfsType(this.#folder);
    let lost: { was: string; is: string } | null = null;
    if (before !== null && now !== null && now !== before) {
      const [was, is] = [fileSystemKind(before), fileSystemKind(now)];
      if (was.remote && !is.remote) lost = { was: was.type, is: `on ${is.type}` };
    }
    // A disk mounted there before, whatever its kind, and none now.
    if (lost === null && this.#wasMountPoint && await mountPoint(this.#folder) === false) {
      const is = now === null ? "" : `on ${fileSystemKind(now).type}`;
      lost = { was: "the disk mounted there", is };
    }
    if (lost === null) {
      if (before !== null && now !== null && now !== before) this.#known = false;
      return null;
    }
    // A local disk, which answers.
    const empty = await isEmpty(this.#folder);
    const [were, folder] = WORDS[this.#role];
    const on = lost.is === "" ? "" : ` ${lost.is}`;
    if (empty) return `an empty folder${on} stands where files ${were} on ${lost.was}`;
    const sample = this.#sample;
    // A ledger from before files were remembered: a folder that holds anything has moved.
    if (sample === null || await exists(join(this.#folder, sample))) {
      this.#known = false;
      return null;
    }
    return `a folder${on} without the files that ${were} on ${lost.was} stands where ` +
      `they ${were} (${sample} is not there); if the ${folder} moved to this disk for good, ` +
      "move those files here too";
  }
}

/**
 * The `statfs` type of `path` (Linux), or `null`, also when it has not answered within
 * {@linkcode SHARE_ANSWER_MS}; asked on the runtime's thread pool.
 */
async function statfsType(path: string): Promise<number | null> {
  if (Deno.build.os !== "linux") return null;
  try {
    const info = await answerWithin(statfs(path));
    return info === null ? null : Number(info.type);
  } catch {
    return null;
  }
}

/**
 * Whether the folder at `path` is a mount point: on another device than its parent folder, or
 * (Linux) listed as mounted there (not on Windows, whose volumes are drive letters); `null` when
 * either cannot be looked at, or has not answered within {@linkcode SHARE_ANSWER_MS}.
 */
async function mountPoint(path: string): Promise<boolean | null> {
  if (Deno.build.os === "windows") return null;
  try {
    const [folder, parent] = await Promise.all([
      answerWithin(Deno.stat(path)),
      answerWithin(Deno.stat(`${path}/..`)), // Through a link, as the kernel goes.
    ]);
    if (folder === null || parent === null || !folder.isDirectory) return null;
    if (folder.dev !== parent.dev || Deno.build.os !== "linux") return folder.dev !== parent.dev;
    // A folder of the same disk mounted there (`mount --bind`) keeps the device: Linux lists it.
    const real = await answerWithin(Deno.realPath(path));
    return real === null ? null : await listedAsMounted(real) ?? false;
  } catch {
    return null;
  }
}

/** Asks the system whether a mount is at a real path (`null`: cannot tell); see below. */
type MountTable = (path: string) => Promise<boolean | null>;

/** The mount table's asker the program gives ({@linkcode askMountTableWith}); none: not asked. */
let listedAsMounted: MountTable = () => Promise.resolve(null);

/**
 * Ask `table` whether a folder of the same device is mounted at a path (Linux, `mount --bind`):
 * the runtime lets no code of its own read the mount table, so the program gives a way to ask.
 */
export function askMountTableWith(table: MountTable): void {
  listedAsMounted = table;
}

/** Whether the folder at `path` holds nothing. */
async function isEmpty(path: string): Promise<boolean> {
  for await (const _ of Deno.readDir(path)) return false;
  return true;
}

/** Whether anything is at `path` now (following links). */
function exists(path: string): Promise<boolean> {
  return Deno.stat(path).then(() => true, () => false);
}

/**
 * Whether `error`, of a look at a watch folder, may pass by itself: an error of the system (with
 * its code) such as an I/O error, a stale handle, a share whose client died (ENOTCONN); not "not
 * found", a folder's permissions, a part of the path that is no folder, a path too long for the
 * system, nor a path the runtime guards (each a problem of the config or the setup).
 */
export function unreadableForNow(error: unknown): boolean {
  return typeof (error as { code?: unknown } | null)?.code === "string" && !isNameTooLong(error) &&
    !(error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied ||
      error instanceof Deno.errors.NotADirectory || error instanceof Deno.errors.NotCapable);
}

/**
 * Why the watch folder `path` cannot be looked at (`error`, of a look that is no "not found"):
 * a path too long for the system said as that, with what to do; else the system's words.
 */
export function watchFolderProblem(path: string, error: unknown): string {
  if (!isNameTooLong(error)) return error instanceof Error ? error.message : String(error);
  return `its path is too long for the system (${bytesOf(path)} bytes, where a path may have ` +
    `${PATH_MAX_BYTES} at most), so no file in it can be read: choose a folder with a shorter ` +
    "path for watch_path";
}

/**
 * Why the folder at `path` cannot be listed (no read permission: not one file in it could be
 * seen), with what to do; `null` when it can, or does not answer (said elsewhere).
 */
export async function unlistable(path: string): Promise<string | null> {
  const first = async () => {
    for await (const _ of Deno.readDir(path)) break;
  };
  try {
    await answerWithin(first());
    return null;
  } catch (error) {
    if (!(error instanceof Deno.errors.PermissionDenied)) return null;
    return "the folder cannot be read (permission denied), so not one file in it can be seen; " +
      "give the account the daemon runs as read and search access to it";
  }
}
