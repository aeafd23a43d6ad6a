/**
 * Names of the temporary files and upload folders transports write before
 * renaming into place. The watcher ignores them, and they are hidden (leading
 * dot) on every side.
 *
 * Every name holds a random part, so nobody can guess it ahead and plant a
 * link or a file under it; transports create them exclusively (failing when
 * the name exists) and remove their own leftovers by the daemon's
 * {@linkcode uploadOwner} id, which every name also holds.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { JobConfig } from "../config/types.ts";
import { destinationIdentity } from "../ledger/destination_identity.ts";
import type { Ledger } from "../ledger/ledger.ts";
import { EARLIER_NAMES_KEY, senderId } from "../ledger/state_files.ts";
import { TEMP_SUFFIX } from "../layout/destination.ts";

/** Longest file name (in UTF-8 bytes) most file systems accept. */
const NAME_MAX_BYTES = 255;

/** Random bytes in each name: 96 bits, as 24 hex digits. */
const RANDOM_BYTES = 12;

/** A fresh random part for a name (lowercase hex). */
export function randomPart(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(RANDOM_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A new temporary name for a final file name (a base name, not a path):
 * `.<final name>.<owner>-<random>.image-transfer-partial`, with the final name
 * replaced by its SHA-256 when the result would be too long. Each call gives
 * another name.
 */
export function tempNameFor(finalName: string, owner = "0"): string {
  return `${tempNameStem(finalName, owner)}${randomPart()}${TEMP_SUFFIX}`;
}

/**
 * What every {@linkcode tempNameFor} name of `finalName` and `owner` starts
 * with, up to the random part: `.<final name>.<owner>-` (or the SHA-256 form).
 */
export function tempNameStem(finalName: string, owner = "0"): string {
  const longest = `.${finalName}.${owner}-${"0".repeat(RANDOM_BYTES * 2)}${TEMP_SUFFIX}`;
  if (new TextEncoder().encode(longest).length <= NAME_MAX_BYTES) return `.${finalName}.${owner}-`;
  const digest = createHash("sha256").update(finalName).digest("hex").slice(0, 32);
  return `.${digest}.${owner}-`;
}

/**
 * Whether `name` is a temporary name {@linkcode tempNameFor} made for
 * `finalName` and `owner` (an earlier copy of that file that may be resumed).
 */
export function isOwnTempNameFor(name: string, finalName: string, owner: string): boolean {
  const stem = tempNameStem(finalName, owner);
  if (!name.startsWith(stem) || !name.endsWith(TEMP_SUFFIX)) return false;
  const random = name.slice(stem.length, name.length - TEMP_SUFFIX.length);
  return new RegExp(`^[0-9a-f]{${RANDOM_BYTES * 2}}$`).test(random);
}

/** Whether `name` is a temporary file name made by {@linkcode tempNameFor} for `owner`. */
export function isOwnTempName(name: string, owner: string): boolean {
  return name.startsWith(".") &&
    new RegExp(`\\.${owner}-[0-9a-f]{${RANDOM_BYTES * 2}}${escapeDots(TEMP_SUFFIX)}$`).test(name);
}

/**
 * A new name for the hidden folder, inside a destination folder, that one
 * batch uploads into before renaming each verified copy out of it (scp and
 * rsync): `.incoming-<owner>-<random>.image-transfer-partial`.
 */
export function uploadFolderName(owner: string): string {
  return `${uploadFolderPrefix(owner)}${randomPart()}${TEMP_SUFFIX}`;
}

/** What every upload folder name of `owner` starts with (for sweeping leftovers). */
export function uploadFolderPrefix(owner: string): string {
  return `.incoming-${owner}-`;
}

/**
 * A short stable id for the daemon that sends `parts` (host name, job, ...), so
 * two daemons sending to the same folder never take each other's temporary
 * files for leftovers.
 */
export function uploadOwner(parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 10);
}

/**
 * The {@linkcode uploadOwner} id of the daemon running `job`: by its watch folder and destination,
 * not its name, so a job renamed in the config continues its own copies. `sender` is this
 * install's own id ({@linkcode senderId}, kept in its state_dir): two daemons sending from the same
 * watch folder path to the same folder (two acquisition PCs cloned from one image, under one host
 * name) never take each other's upload folders for leftovers. Without it (no ledger: a dry run, a
 * test), the id of the earlier naming, by this machine's host name ({@linkcode hostJobOwner}).
 */
export function jobOwner(job: JobConfig, sender: string | null = null): string {
  if (sender === null) return hostJobOwner(job);
  return uploadOwner([sender, job.watch_path, destinationIdentity(job)]);
}

/**
 * The id the names of `job`'s temporary files and upload folders held before each install had
 * its own ({@linkcode senderId}): by this machine's host name, which two machines may share, so
 * only such leftovers nothing was written in for long are swept.
 */
export function hostJobOwner(job: JobConfig): string {
  return uploadOwner([hostName(), job.watch_path, job.remote_base_path]);
}

/** This machine's host name (`""`: no permission to read it, the job's fields still tell). */
function hostName(): string {
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

/**
 * Seconds at least that nothing was written in a leftover of the earlier naming before it is
 * swept (see {@linkcode jobOwners}).
 */
const IDLE_HOUR_S = 3600;

/** The ids in the names of a job's temporary files and upload folders (see {@linkcode jobOwners}). */
export interface JobOwners {
  /** This install's ({@linkcode jobOwner}): its leftovers are swept as any of its own. */
  owner: string;
  /**
   * The earlier naming's ({@linkcode hostJobOwner}), shared by every daemon under this host name:
   * its leftovers are swept only once nothing was written in them for `idleSeconds` (`null`: the
   * same naming, no ledger). `own`: this install's, whose ledger was upgraded from a version
   * without an id (`EARLIER_NAMES_KEY`): what it left then is resumed (upload folders, renamed as
   * its own) or removed (temporary copies: `idleSeconds` 0) as its own; `also` then holds the id
   * of the naming before that, by the job's name too ({@linkcode namedJobOwner}).
   */
  earlier: { owner: string; idleSeconds: number; own: boolean; also: string[] } | null;
}

/**
 * The ids of the daemon running `job` with `ledger` (`null`: none, a dry run): its own, by this
 * install's {@linkcode senderId} (kept in the ledger's `state_dir`; written there only by a ledger
 * opened for writing), and the earlier one by the host name, whose leftovers may be another
 * daemon's under the same host name: swept once idle for an hour and three transfer timeouts (a
 * copy under way writes at least that often, or is stopped).
 */
export function jobOwners(job: JobConfig, ledger: Ledger | null): JobOwners {
  const sender = ledger && senderId(ledger.stateDir, { writable: !ledger.readOnly, ledger });
  const owner = jobOwner(job, sender);
  const earlier = hostJobOwner(job);
  const own = ledger !== null && ledger.meta(EARLIER_NAMES_KEY) !== null;
  const idleSeconds = own ? 0 : Math.max(IDLE_HOUR_S, 3 * job.transfer_timeout_seconds + 60);
  const also = own ? [namedJobOwner(job)] : [];
  return { owner, earlier: earlier === owner ? null : { owner: earlier, idleSeconds, own, also } };
}

/**
 * The id of the naming before {@linkcode hostJobOwner}'s (up to late November 2026, ledger schema
 * 3): by the host name and the job's name too.
 */
function namedJobOwner(job: JobConfig): string {
  return uploadOwner([hostName(), job.name, job.watch_path, job.remote_base_path]);
}

/**
 * `name`, a temporary name {@linkcode tempNameFor} made for `from`, as it would be for `to` (the
 * same final name and random part): what an install renames the copies of its earlier naming to,
 * once they are its own (see `JobOwners`).
 */
export function adoptedTempName(name: string, from: string, to: string): string {
  const at = name.lastIndexOf(`.${from}-`);
  return `${name.slice(0, at)}.${to}-${name.slice(at + from.length + 2)}`;
}

function escapeDots(text: string): string {
  return text.replaceAll(".", "\\.").replaceAll("-", "\\-");
}
