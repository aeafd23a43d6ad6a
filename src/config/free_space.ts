/**
 * Free space, the one module for it: `min_free_space`, the room a job keeps
 * free on its destination's file system, as bytes in human units ("5 GiB",
 * "500MB", a bare number is bytes) or as a percent of the file system ("5%";
 * `0` or `0%` turns the check off); the free space of a folder's disk on this
 * machine (`statfs`; a folder that does not exist yet is measured at its
 * nearest existing parent, the file system it will be created on); and
 * `doctor`'s one verdict on a destination's free space for every method.
 * Each transport measures its destination its own way (local: here; SSH:
 * `df -Pk` in a remote script; FTP: the server's `AVBL`), and
 * `pipeline/destination_pause.ts` pauses a job whose destination is full.
 *
 * @module
 */
import { statfsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { BYTE_UNITS, formatBytes } from "./sizes.ts";

/** How much room to keep free: a number of bytes, or a percent of the file system's size. */
export type FreeSpaceRule = { bytes: number } | { percent: number };

/**
 * The rule `value` describes, `null` when it turns the check off (`0`,
 * `"0"`, `"0%"`, `""`), or `undefined` when it is not an amount of space.
 */
export function parseFreeSpace(value: string | number): FreeSpaceRule | null | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) return undefined;
    return value === 0 ? null : { bytes: value };
  }
  const text = value.trim();
  if (text === "") return null;
  const percent = text.match(/^(\d+(?:\.\d+)?)\s*%$/);
  if (percent) {
    const share = Number(percent[1]);
    if (share >= 100) return undefined;
    return share === 0 ? null : { percent: share };
  }
  const match = text.match(/^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/);
  if (!match) return undefined;
  const factor = match[2] === "" ? 1 : BYTE_UNITS[match[2].toLowerCase()];
  if (factor === undefined) return undefined;
  const bytes = Math.round(Number(match[1]) * factor);
  return bytes === 0 ? null : { bytes };
}

/** The bytes `rule` keeps free on a file system of `totalBytes`. */
export function bytesToKeep(rule: FreeSpaceRule, totalBytes: number): number {
  return "bytes" in rule ? rule.bytes : Math.ceil((rule.percent / 100) * totalBytes);
}

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
  for (const folder of selfAndParents(path)) {
    try {
      return spaceOf(await statfs(folder));
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") return null;
    }
  }
  return null;
}

/** Like {@linkcode localDiskSpace}, without waiting (the ledger's own disk, while it fails). */
export function localDiskSpaceSync(path: string): DiskSpace | null {
  for (const folder of selfAndParents(path)) {
    try {
      return spaceOf(statfsSync(folder));
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") return null;
    }
  }
  return null;
}

/** `path`, then each of its parents up to the root: where a folder not made yet will be. */
function* selfAndParents(path: string): Generator<string> {
  for (let folder = path;; folder = dirname(folder)) {
    yield folder;
    if (dirname(folder) === folder) return;
  }
}

function spaceOf(info: { bavail: number; bsize: number; blocks: number }): DiskSpace {
  return { availableBytes: info.bavail * info.bsize, totalBytes: info.blocks * info.bsize };
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
): { check: string; verdict: "ok" | "warn" | "fail" | "skip"; detail: string } {
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
