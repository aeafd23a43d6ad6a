/**
 * Free space at a destination: how it is measured (on this machine with
 * `statfs`, on an SSH destination with `df -Pk` in a remote script, an FTP
 * server's `AVBL` answer), and `doctor`'s one verdict on it against
 * `min_free_space` for every method. A folder that does not exist yet is
 * measured at its nearest existing parent (the file system it will be
 * created on). The pause of a job whose destination is full is
 * `pipeline/space_guard.ts`.
 *
 * @module
 */
import { statfs } from "node:fs/promises";
import { dirname, posix } from "node:path";
import { bytesToKeep, formatBytes, parseFreeSpace } from "../config/sizes.ts";
import { buildScript, call, parseResults, type RemoteScript } from "./ssh/remote_script.ts";
import type { ProbeCheck } from "./transport.ts";

/** Room on one file system. */
export interface DiskSpace {
  /** Bytes an unprivileged writer may still use. */
  availableBytes: number;
  /** Size of the file system in bytes. */
  totalBytes: number;
}

/**
 * The space of the file system holding `path` (or its nearest existing
 * parent), or `null` when the system cannot tell (no `statfs` there).
 */
export async function localDiskSpace(path: string): Promise<DiskSpace | null> {
  let folder = path;
  for (;;) {
    try {
      const info = await statfs(folder);
      return { availableBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize };
    } catch (error) {
      const parent = dirname(folder);
      if ((error as { code?: string }).code !== "ENOENT" || parent === folder) return null;
      folder = parent;
    }
  }
}

/**
 * The remote script (`remote/disk_space.sh`) asking for the space of the file
 * system holding `base` (or its nearest existing parent).
 */
export function remoteDiskSpaceScript(base: string): RemoteScript {
  return buildScript("disk_space", [call("disk_space", posix.normalize(base))]);
}

/** The space a {@linkcode remoteDiskSpaceScript} reported, or `null` for no answer. */
export function parseRemoteDiskSpace(script: RemoteScript, stdout: string): DiskSpace | null {
  const result = parseResults(stdout, script.marker).find((r) => r.word === "disk-space");
  return result ? diskSpaceOfResult(result.detail) : null;
}

/** The space of a `disk-space TOTAL_KIB AVAILABLE_KIB` result's detail, or `null`. */
export function diskSpaceOfResult(detail: string): DiskSpace | null {
  const match = detail.match(/^(\d+) (\d+)$/);
  if (!match) return null;
  return { totalBytes: Number(match[1]) * 1024, availableBytes: Number(match[2]) * 1024 };
}

/** Without `min_free_space`, `doctor` warns below this much free space at a destination. */
const LOW_FREE_BYTES = 1024 ** 3;

/**
 * `doctor`'s check of the free space at a destination (`where`), the same for
 * every method: it fails when there is less than `min_free_space` keeps (the
 * job would send nothing there), and warns below 1 GiB when `min_free_space`
 * cannot judge (not set, or a share of a file system whose size is not told).
 * `space` is `null` when it cannot be measured there (`unknown` says why).
 */
export function freeSpaceCheck(
  where: string,
  space: { availableBytes: number; totalBytes: number | null } | null,
  minFreeSpace: string | number | undefined,
  unknown: string,
): ProbeCheck {
  const check = "free space";
  if (space === null) {
    return { check, verdict: "skip", detail: `${unknown}; min_free_space is not checked there` };
  }
  const free = `${formatBytes(space.availableBytes)} free at ${where}`;
  const rule = parseFreeSpace(minFreeSpace ?? 0) ?? null;
  if (rule !== null && ("bytes" in rule || space.totalBytes !== null)) {
    const keep = bytesToKeep(rule, space.totalBytes ?? 0);
    return space.availableBytes >= keep
      ? { check, verdict: "ok", detail: `${free} (min_free_space keeps ${formatBytes(keep)})` }
      : {
        check,
        verdict: "fail",
        detail: `${free}, less than min_free_space (${formatBytes(keep)}): nothing would be ` +
          "sent there; free space, or lower min_free_space",
      };
  }
  return space.availableBytes >= LOW_FREE_BYTES ? { check, verdict: "ok", detail: free } : {
    check,
    verdict: "warn",
    detail: `${free}: less than 1 GiB; free space there, or set min_free_space so that the job ` +
      "pauses before the disk is full",
  };
}
