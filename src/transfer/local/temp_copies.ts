/**
 * The temporary copies of the `local` transport (see `local.ts`): a new one
 * created exclusively, or an earlier copy of the same file continued (see
 * `local/resume.ts`); which ones are being written now; closing and removing
 * them; and sweeping this daemon's leftovers from a destination folder once.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { closeSync, constants, openSync } from "node:fs";
import { basename, dirname } from "node:path";
import type { JobConfig } from "../../config/types.ts";
import { logger } from "../../log/logging.ts";
import type { Delivery } from "../deliver.ts";
import { removeIfOurs, type Written } from "./copy.ts";
import { sweepLocalLeftovers } from "./folders.ts";
import { discard, samePrefix, takeEarlierCopy } from "./resume.ts";
import type { OpenSource } from "../source.ts";

/** Flags of a new temporary file: created here or not at all, never through a link. */
const CREATE_NEW = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL |
  (constants.O_NOFOLLOW ?? 0);

/** One file of a local batch: the open temporary copy while it is on its way. */
export interface LocalDelivery extends Delivery {
  /** The temporary file: a new name, or an earlier copy's that is continued. */
  tempPath: string;
  /** The temporary file, open for reading and writing, or `null` (not created, or closed). */
  target: number | null;
  /** What the copy step wrote. */
  written: Written | null;
  /** Keep the temporary file when it is not renamed (an interrupted copy, to be resumed). */
  keep: boolean;
}

/** The temporary copies of one local job; see the module doc. */
export class LocalTempCopies {
  #job: JobConfig;
  /** Tells this daemon's temporary files apart (see `uploadOwner`). */
  #owner: string;
  /** Destination folders already swept of this daemon's leftovers, and their sweeps. */
  #swept = new Map<string, Promise<void>>();
  /** By folder: names of this daemon's copies there that may be continued. */
  #resumable = new Map<string, Set<string>>();
  /** Temporary files being written now (never swept nor resumed by another copy). */
  #inUse = new Set<string>();
  #log = logger("transfer");

  constructor(job: JobConfig, owner: string) {
    this.#job = job;
    this.#owner = owner;
  }

  /**
   * Open the temporary file of `delivery`: an earlier copy of this file whose
   * bytes are the source's first bytes (the copy continues from its end), or
   * a new file. Returns where the copy starts and the hash of the source so far.
   */
  async open(
    delivery: LocalDelivery,
    source: OpenSource,
    signal: AbortSignal,
  ): Promise<{ from: number; hash: Hash | null }> {
    const hashIt = this.#wantsChecksum();
    const keepMs = this.keepMs;
    const folder = dirname(delivery.finalPath);
    if (keepMs > 0) await this.sweep(folder);
    const candidates = this.#resumable.get(folder);
    const earlier = keepMs === 0 || candidates === undefined ? null : takeEarlierCopy(
      folder,
      basename(delivery.finalPath),
      this.#owner,
      keepMs,
      this.#inUse,
      candidates,
    );
    if (earlier !== null) {
      const hash = hashIt ? createHash("sha256") : null;
      this.#inUse.add(earlier.path);
      const fits = earlier.size <= delivery.item.size &&
        await samePrefix(source.fd, earlier.fd, earlier.size, hash, signal).catch((error) => {
          this.#inUse.delete(earlier.path);
          closeSync(earlier.fd);
          throw error;
        });
      if (fits) {
        delivery.tempPath = earlier.path;
        delivery.target = earlier.fd;
        return { from: earlier.size, hash };
      }
      this.#log.info(
        "The earlier copy of {source} at the destination does not match the source; sending it whole",
        { job: this.#job.name, source: delivery.item.source, bytes: earlier.size },
      );
      this.#inUse.delete(earlier.path);
      discard(earlier);
    }
    this.#inUse.add(delivery.tempPath);
    delivery.target = openSync(delivery.tempPath, CREATE_NEW, 0o600);
    return { from: 0, hash: hashIt ? createHash("sha256") : null };
  }

  /**
   * Close the temporary file, removing it if it is still there and still ours
   * (unless it is kept to be resumed).
   */
  release(delivery: LocalDelivery): void {
    if (delivery.target !== null) {
      if (!delivery.keep) removeIfOurs(delivery.tempPath, delivery.target);
      else this.#remember(delivery.tempPath);
      delivery.target = closeTarget(delivery.target);
    }
    this.#inUse.delete(delivery.tempPath);
  }

  /** How long an interrupted copy is kept to be resumed (0: not). */
  get keepMs(): number {
    return this.#job.resume_partial_hours * 3_600_000;
  }

  #wantsChecksum(): boolean {
    return this.#job.verify_transfer === "checksum";
  }

  /**
   * Remove this daemon's leftover temporary files from `folder`, once per
   * folder, and note those kept to be continued.
   */
  sweep(folder: string): Promise<void> {
    let sweep = this.#swept.get(folder);
    if (sweep === undefined) {
      sweep = sweepLocalLeftovers(folder, this.#owner, this.#inUse, this.keepMs).then((kept) => {
        const known = this.#resumable.get(folder) ?? new Set();
        for (const name of kept) known.add(name);
        this.#resumable.set(folder, known);
      });
      this.#swept.set(folder, sweep);
    }
    return sweep;
  }

  /** Note a copy left at `path` to be continued by a later attempt. */
  #remember(path: string): void {
    const folder = dirname(path);
    const known = this.#resumable.get(folder) ?? new Set();
    known.add(basename(path));
    this.#resumable.set(folder, known);
  }
}

/** Close `fd`; always `null`. */
export function closeTarget(fd: number): null {
  closeSync(fd);
  return null;
}
