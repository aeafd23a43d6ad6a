/**
 * The `local` transport: a copy on this machine (or onto a mounted share).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import type { JobConfig } from "../config/types.ts";
import { TransferError } from "../errors.ts";
import { assertSourceUnchanged } from "./source_check.ts";
import { tempNameFor } from "./temp_name.ts";
import type { TransferItem, TransferOutcome, Transport } from "./transport.ts";
import { sha256File } from "./sha256.ts";

/** Copies into `remote_base_path` on this machine: temp name, verify, rename. */
export class LocalTransport implements Transport {
  readonly method = "local" as const;
  readonly maxBatchFiles = 1;
  #job: JobConfig;

  constructor(job: JobConfig) {
    this.#job = job;
  }

  describeTarget(destination: string): string {
    return join(this.#job.remote_base_path, ...destination.split("/"));
  }

  async send(items: TransferItem[], signal: AbortSignal): Promise<TransferOutcome[]> {
    const outcomes: TransferOutcome[] = [];
    for (const item of items) {
      signal.throwIfAborted();
      try {
        await this.#copy(item, signal);
        outcomes.push({ item, error: null });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        outcomes.push({ item, error: toTransferError(item, error) });
      }
    }
    return outcomes;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  async #copy(item: TransferItem, signal: AbortSignal): Promise<void> {
    const finalPath = this.describeTarget(item.destination);
    const folder = dirname(finalPath);
    const tempPath = join(folder, tempNameFor(basename(finalPath)));
    await Deno.mkdir(folder, { recursive: true });
    const wantChecksum = this.#job.verify_transfer === "checksum";
    const hash = wantChecksum ? createHash("sha256") : null;
    let written = 0;
    try {
      using source = await Deno.open(item.source, { read: true });
      using target = await Deno.open(tempPath, {
        write: true,
        create: true,
        truncate: true,
      });
      const buffer = new Uint8Array(1024 * 1024);
      while (true) {
        signal.throwIfAborted();
        const n = await source.read(buffer);
        if (n === null) break;
        const chunk = buffer.subarray(0, n);
        hash?.update(chunk);
        let offset = 0;
        while (offset < n) offset += await target.write(chunk.subarray(offset));
        written += n;
      }
      await target.syncData();
    } catch (error) {
      await Deno.remove(tempPath).catch(() => {});
      throw error;
    }
    try {
      await this.#verify(item, tempPath, written, hash?.digest("hex"));
      await assertSourceUnchanged(item);
      await Deno.rename(tempPath, finalPath);
      await syncFolder(folder);
    } catch (error) {
      await Deno.remove(tempPath).catch(() => {});
      throw error;
    }
  }

  async #verify(
    item: TransferItem,
    tempPath: string,
    written: number,
    sourceSha256: string | undefined,
  ): Promise<void> {
    if (written !== item.size) {
      throw new TransferError(
        `Cannot send ${item.source}: read ${written} bytes, expected ${item.size} (source changed)`,
        "retry",
      );
    }
    if (this.#job.verify_transfer === "none") return;
    const info = await Deno.stat(tempPath);
    if (info.size !== item.size) {
      throw new TransferError(
        `Verification failed for ${item.source}: destination has ${info.size} bytes, expected ${item.size}`,
        "retry",
      );
    }
    if (sourceSha256 !== undefined) {
      const targetSha256 = await sha256File(tempPath);
      if (targetSha256 !== sourceSha256) {
        throw new TransferError(
          `Verification failed for ${item.source}: SHA-256 differs at the destination`,
          "retry",
        );
      }
    }
  }
}

/**
 * Flush a folder's entries to disk, so a rename that the ledger records as
 * done survives a power cut. Not possible on Windows (folders cannot be
 * opened), where NTFS journals the rename itself.
 */
async function syncFolder(folder: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using dir = await Deno.open(folder, { read: true });
  await dir.sync();
}

/** Classify a local copy error. */
function toTransferError(item: TransferItem, error: unknown): TransferError {
  if (error instanceof TransferError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  if (error instanceof Deno.errors.NotFound) {
    return new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", { cause: error });
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new TransferError(`Cannot send ${item.source}: permission denied (${reason})`, "fatal", {
      cause: error,
    });
  }
  const code = (error as { code?: string }).code;
  if (code === "ENOSPC" || code === "EDQUOT" || /No space left|quota/i.test(reason)) {
    return new TransferError(
      `Cannot send ${item.source}: destination is full (${reason})`,
      "retry-later",
      {
        cause: error,
      },
    );
  }
  if (code === "EROFS" || /read-only file system/i.test(reason)) {
    return new TransferError(
      `Cannot send ${item.source}: destination is read-only (${reason})`,
      "retry-later",
      {
        cause: error,
      },
    );
  }
  return new TransferError(`Cannot send ${item.source}: ${reason}`, "retry", { cause: error });
}
