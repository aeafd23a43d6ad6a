/**
 * The file system a watch folder is on, and whether its events can be
 * trusted. The kernel reports events only for changes made through this
 * machine: on a network or FUSE file system (NFS, SMB/CIFS, sshfs, 9p...)
 * a file written by another machine, or below the FUSE layer, raises none.
 *
 * - Linux: `statfs` gives the file system's magic number, hence its kind
 *   (`nfs`, `cifs`, `smb3`, `fuse`, `9p`, `ceph`...). The mount table would
 *   name the share and the FUSE program, but the runtime lets only a program
 *   with every permission read it. Every FUSE file system counts as remote
 *   (sshfs, rclone, glusterfs, virtiofs, and also a local disk through
 *   ntfs-3g: polling it costs little).
 * - Windows: a UNC path (`\\server\share\...`) is a network share, and so is
 *   a drive letter that `net use` lists as mapped to one.
 * - macOS: a folder on a volume that `/sbin/mount` lists as `smbfs`, `nfs`,
 *   `afpfs`, `webdav`, a FUSE file system (macFUSE, FUSE-T) or another network
 *   kind is remote.
 * - Both lists are read once at start-up ({@linkcode readNetworkMounts}), while
 *   the daemon may still start programs. Elsewhere, or when that fails, a
 *   folder counts as local: set `watch_mode: poll` for a network volume.
 * - A share mounted on a folder inside a watch folder (`/data` watched, an NFS
 *   export on `/data/cam1`) raises no events there either: the network and FUSE
 *   mounts (Linux: `findmnt`; macOS: `mount`) read at start-up tell it, and
 *   `auto` polls that watch folder too ({@linkcode sharesInside}).
 *
 * How a watch folder is watched: by the system's file events, by polling, or
 * both, from `watch_mode` and the folder's file system (above).
 * The same words go to the log at start, `status`, the status page and
 * `doctor`.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { runProcess } from "../process/run.ts";
import { fileSystemKind } from "../config/file_systems.ts";

/** What is known of the file system of a folder. */
export interface FileSystemInfo {
  /** Its name, e.g. `ext4`, `nfs`, `cifs`, `fuse`, `smb`; `unknown` when it cannot be told. */
  type: string;
  /** Whether its events may miss changes made elsewhere (network, FUSE). */
  remote: boolean;
  /** The share where known (a UNC path's server and share), else `null`. */
  source: string | null;
  /** The statfs magic number (Linux), for noticing a remount or an unmount; else `null`. */
  magic: number | null;
}

/**
 * The file system of `path` (an existing folder); never throws (an unknown
 * type counts as local).
 */
export function fileSystemOf(path: string): FileSystemInfo {
  if (Deno.build.os === "windows") return windowsFileSystem(path);
  if (Deno.build.os !== "linux") {
    const mount = networkMountOf(path, networkMounts, Deno.build.os);
    if (mount !== null) {
      return { type: mount.type, remote: true, source: mount.source, magic: null };
    }
    // Not among the network mounts read at start: a local disk (unknown when they were not read).
    return {
      type: networkMounts === null ? "unknown" : "local",
      remote: false,
      source: null,
      magic: null,
    };
  }
  let magic: number;
  try {
    magic = Number(statfsSync(path).type);
  } catch {
    return { type: "unknown", remote: false, source: null, magic: null };
  }
  return { ...fileSystemKind(magic), source: null, magic };
}

/** The statfs magic number of `path` now (Linux), or `null`; rejects when it cannot be read. */
export async function magicOf(path: string): Promise<number | null> {
  if (Deno.build.os !== "linux") return null;
  return Number((await statfs(path)).type);
}

/** How often {@linkcode MountWatch} looks. */
const MOUNT_CHECK_MS = 10_000;

/**
 * Looks at the device of a folder every {@linkcode MOUNT_CHECK_MS} (off the
 * daemon's thread, one look at a time: a share may not answer), and calls
 * `onMounted` once when it is another than `dev`: something was mounted there
 * (or what was mounted there is gone).
 */
export class MountWatch {
  #timer: ReturnType<typeof setInterval>;
  #looking: Promise<void> | undefined;

  constructor(path: string, dev: number, onMounted: () => Promise<void>) {
    this.#timer = setInterval(() => {
      this.#looking ??= Deno.stat(path).then((info) => info.dev, () => null).then((now) => {
        if (now === null || now === dev) return;
        this.close();
        return onMounted();
      }).finally(() => this.#looking = undefined);
    }, MOUNT_CHECK_MS);
  }

  /** Stop looking. */
  close(): void {
    clearInterval(this.#timer);
  }
}

/**
 * A UNC path, or a drive `net use` maps to a share, is a network share;
 * anything else is taken as local (see the module doc).
 */
function windowsFileSystem(path: string): FileSystemInfo {
  const share = uncShare(path) ?? networkMountOf(path, networkMounts, "windows")?.source ?? null;
  if (share !== null) return { type: "smb", remote: true, source: share, magic: null };
  return {
    type: networkMounts === null ? "unknown" : "local",
    remote: false,
    source: null,
    magic: null,
  };
}

/** A mounted network file system: where, what kind, and from where. */
export interface NetworkMount {
  /** The mount point (macOS) or the drive (`Z:`, Windows). */
  point: string;
  type: string;
  /** The share, e.g. `//obs@nas/images` or `\\nas\images`. */
  source: string;
}

/** The network mounts read at start-up (Linux: mount points only, no drive); `null`: none read. */
let networkMounts: NetworkMount[] | null = null;

/** File system kinds of macOS `mount` whose events miss changes made elsewhere. */
const MAC_REMOTE =
  /^(smbfs|nfs|afpfs|webdav|cifs|ftp|macfuse|osxfuse|fusefs(\..*)?|fuse-t|ntfs-3g)$/;

/** File system kinds of Linux `findmnt` whose events miss changes made elsewhere (any FUSE). */
const LINUX_REMOTE =
  /^(nfs4?|cifs|smb3|smbfs|9p|ceph|glusterfs|afs|davfs|lustre|gpfs|beegfs|virtiofs|fuse(blk|\..*)?)$/;

/**
 * Read the network mounts (macOS: `/sbin/mount`; Windows: `net use`; Linux: `findmnt`, for the
 * shares inside a watch folder) for {@linkcode fileSystemOf} and {@linkcode sharesInside}. Call
 * it at start-up, while programs may still be started; elsewhere, or when it fails, nothing is
 * known (folders count as local).
 */
export async function readNetworkMounts(): Promise<void> {
  const os = Deno.build.os;
  if (os !== "darwin" && os !== "windows" && os !== "linux") return;
  try {
    const argv = os === "darwin"
      ? ["/sbin/mount"]
      : os === "linux"
      ? ["findmnt", "--raw", "--noheadings", "--output", "TARGET,FSTYPE,SOURCE"]
      : ["net", "use"];
    const result = await runProcess(argv, { timeoutMs: 10_000 });
    const text = new TextDecoder().decode(result.stdout);
    networkMounts = os === "darwin"
      ? parseMacMounts(text)
      : os === "linux"
      ? parseFindmnt(text)
      : parseNetUse(text);
  } catch {
    networkMounts = null;
  }
}

/**
 * The network and FUSE mounts in the output of `findmnt --raw --noheadings --output
 * TARGET,FSTYPE,SOURCE`: lines such as `/data/cam1 nfs4 nas:/images` (a space in a name written
 * `\x20`).
 */
export function parseFindmnt(text: string): NetworkMount[] {
  const unescape = (word: string) =>
    word.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
  const mounts: NetworkMount[] = [];
  for (const line of text.split("\n")) {
    const [point, type, source = ""] = line.split(" ");
    if (point?.startsWith("/") && type && LINUX_REMOTE.test(type)) {
      mounts.push({ point: unescape(point), type, source: unescape(source) });
    }
  }
  return mounts;
}

/**
 * The network and FUSE mounts on folders inside the folder at `path` (not on it), as read at
 * start-up ({@linkcode readNetworkMounts}; Linux and macOS); none where nothing was read.
 */
export function sharesInside(path: string): NetworkMount[] {
  if (networkMounts === null || Deno.build.os === "windows") return [];
  let real: string;
  try {
    real = Deno.realPathSync(path).replace(/\/+$/, "");
  } catch {
    return [];
  }
  return networkMounts.filter((mount) => mount.point.startsWith(`${real}/`));
}

/**
 * The network mounts in the output of macOS `mount`: lines such as
 * `//obs@nas._smb._tcp.local/images on /Volumes/images (smbfs, nodev, nosuid, mounted by obs)`.
 */
export function parseMacMounts(text: string): NetworkMount[] {
  const mounts: NetworkMount[] = [];
  for (const line of text.split("\n")) {
    const match = /^(.+?) on (\/.*) \(([^,)]+)[,)]/.exec(line);
    if (match && MAC_REMOTE.test(match[3].trim())) {
      mounts.push({ source: match[1], point: match[2], type: match[3].trim() });
    }
  }
  return mounts;
}

/**
 * The mapped drives in the output of Windows `net use`: lines such as
 * `OK           Z:        \\nas\images               Microsoft Windows Network`
 * (also `Unavailable` and `Disconnected` ones: the drive is a share all the same).
 */
export function parseNetUse(text: string): NetworkMount[] {
  const mounts: NetworkMount[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /(?:^|\s)([A-Za-z]:)\s+(\\\\\S+)/.exec(line);
    if (match) mounts.push({ point: match[1].toUpperCase(), type: "smb", source: match[2] });
  }
  return mounts;
}

/**
 * The network mount `path` is on, by the longest mount point it lies
 * under (a drive letter on Windows), or `null`.
 */
export function networkMountOf(
  path: string,
  mounts: NetworkMount[] | null,
  os: typeof Deno.build.os,
): NetworkMount | null {
  if (mounts === null) return null;
  if (os === "windows") {
    const drive = /^([A-Za-z]:)/.exec(path)?.[1].toUpperCase();
    return mounts.find((mount) => mount.point === drive) ?? null;
  }
  let best: NetworkMount | null = null;
  for (const mount of mounts) {
    const point = mount.point.replace(/\/+$/, "");
    const under = path === point || path.startsWith(`${point}/`) || point === "";
    if (under && (best === null || point.length > best.point.length)) best = mount;
  }
  return best;
}

/**
 * The share of a UNC path (`\\server\share\...`, `//server/share/...`,
 * `\\?\UNC\server\share\...`) as `\\server\share`, or `null` for any other path
 * (a drive letter, a device path such as `\\?\C:\...` or `\\.\pipe\...`).
 */
export function uncShare(path: string): string | null {
  const long = /^[\\/]{2}\?[\\/]UNC[\\/]+([^\\/]+)[\\/]+([^\\/]+)/i.exec(path);
  const plain = /^[\\/]{2}(?![?.][\\/])([^\\/]+)[\\/]+([^\\/]+)/.exec(path);
  const match = long ?? plain;
  return match ? `\\\\${match[1]}\\${match[2]}` : null;
}

/** The `watch_mode` key. */
export type WatchModeSetting = "auto" | "events" | "poll";

/** How one watch folder is watched. */
export interface WatchHow {
  /**
   * `events`, `poll`, or `events+poll` (events, and polls for what they miss); `rescans` while
   * file events were chosen but watching failed (a rescan every minute: see `folder_watcher.ts`).
   */
  mode: "events" | "poll" | "events+poll" | "rescans";
  /** The file system's name (`ext4`, `nfs4`, `fuse.sshfs`, `unknown`...). */
  fileSystem: string;
  /** Whether that file system's events miss changes made elsewhere. */
  remote: boolean;
  /** The share (`server:/export`), where known. */
  source: string | null;
  /** Seconds between polls, when polled. */
  pollIntervalSeconds: number | null;
  /** One line saying how and why. */
  summary: string;
}

/** Decide how the folder at `path` (which exists) is watched. */
export function watchHow(
  path: string,
  setting: WatchModeSetting,
  pollIntervalSeconds: number,
): WatchHow {
  return decideWatch(fileSystemOf(path), setting, pollIntervalSeconds, sharesInside(path));
}

/** {@linkcode watchHow} for a known file system, and the shares mounted inside the folder. */
export function decideWatch(
  fs: FileSystemInfo,
  setting: WatchModeSetting,
  pollIntervalSeconds: number,
  inside: NetworkMount[] = [],
): WatchHow {
  const on = fs.source === null ? fs.type : `${fs.type}, ${fs.source}`;
  const every = `a poll every ${pollIntervalSeconds} s`;
  const base = { fileSystem: fs.type, remote: fs.remote, source: fs.source };
  if (setting === "poll") {
    return {
      ...base,
      mode: "poll",
      pollIntervalSeconds,
      summary: `${every}, no file events (watch_mode: poll; ${on})`,
    };
  }
  if (setting === "auto" && !fs.remote && inside.length > 0) {
    const shares = inside.map((mount) => `${mount.point} (${mount.type})`);
    return {
      ...base,
      mode: "events+poll",
      pollIntervalSeconds,
      summary: `file events and ${every} (${on}; a network or FUSE file system is mounted ` +
        `inside it, on ${shares.join(", ")}: files written there by other machines raise no ` +
        "events)",
    };
  }
  if (setting === "events" || !fs.remote) {
    const summary = fs.remote
      ? `file events only (watch_mode: events; ${on} is a network or FUSE file system: files written by other machines wait for the rescan)`
      : fs.type === "unknown"
      ? "file events (the file system cannot be told here: for a network share set watch_mode: poll)"
      : `file events (${on})`;
    return { ...base, mode: "events", pollIntervalSeconds: null, summary };
  }
  return {
    ...base,
    mode: "events+poll",
    pollIntervalSeconds,
    summary:
      `file events and ${every} (${on} is a network or FUSE file system: files written by other machines raise no events)`,
  };
}

/** The kind of file system a folder is on, as far as it is known without asking the folder. */
export interface KnownKind {
  /** Its name (`ext4`, `nfs4`, `fuse.sshfs`), or `null` where only local or remote is known. */
  type: string | null;
  remote: boolean;
}

/**
 * What is known of the file system of `path` without a look at it (which a share that stopped
 * answering would hold): the network and FUSE mounts read at start, else the kind remembered
 * from an earlier run (`remembered`), else a local disk where the mounts were read and it lies
 * under none; `null` where nothing is known.
 */
export function knownKindOf(path: string, remembered: KnownKind | null = null): KnownKind | null {
  const mount = networkMountOf(path, networkMounts, Deno.build.os) ??
    (Deno.build.os === "windows" && uncShare(path) !== null
      ? { type: "smb", point: "", source: "" }
      : null);
  if (mount !== null) return { type: mount.type, remote: true };
  if (remembered !== null) return remembered;
  return networkMounts === null ? null : { type: null, remote: false };
}
