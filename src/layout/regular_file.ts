/**
 * Opening a file only to look inside it (its FITS headers) without ever
 * blocking: the open does not wait (`O_NONBLOCK`, so a FIFO that took the
 * file's name between a check and the open is no hazard) and anything but a
 * regular file is refused before a byte is read.
 *
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

const READ_NOW = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** What the open file is, from the file itself. */
export interface OpenedInfo {
  size: number;
  mtimeMs: number;
}

/** An open regular file read at given offsets; close it with `using`. */
export class RegularFile implements Disposable {
  readonly #fd: number;
  readonly info: OpenedInfo;

  private constructor(fd: number, info: OpenedInfo) {
    this.#fd = fd;
    this.info = info;
  }

  /**
   * Open `path` for reading.
   *
   * @throws {Deno.errors.NotFound} when it does not exist; an Error when it is
   *   not a regular file or cannot be read
   */
  static open(path: string): RegularFile {
    let fd: number;
    try {
      fd = openSync(path, READ_NOW);
    } catch (error) {
      throw denoError(error);
    }
    try {
      return new RegularFile(fd, checked(fstatSync(fd)));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Up to `length` bytes at `offset` (fewer only at the end of the file). */
  readAt(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const count = readSync(this.#fd, out, filled, length - filled, offset + filled);
      if (count === 0) break;
      filled += count;
    }
    return out.subarray(0, filled);
  }

  [Symbol.dispose](): void {
    closeSync(this.#fd);
  }
}

/** {@linkcode RegularFile}, opened and read without blocking the event loop. */
export class AsyncRegularFile implements AsyncDisposable {
  readonly #handle: FileHandle;
  readonly info: OpenedInfo;

  private constructor(handle: FileHandle, info: OpenedInfo) {
    this.#handle = handle;
    this.info = info;
  }

  /** Open `path` for reading; throws as {@linkcode RegularFile.open}. */
  static async open(path: string): Promise<AsyncRegularFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, READ_NOW);
    } catch (error) {
      throw denoError(error);
    }
    try {
      return new AsyncRegularFile(handle, checked(await handle.stat()));
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Up to `length` bytes at `offset` (fewer only at the end of the file). */
  async readAt(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await this.#handle.read(out, filled, length - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return out.subarray(0, filled);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#handle.close();
  }
}

function checked(stats: { isFile(): boolean; size: number; mtimeMs: number }): OpenedInfo {
  if (!stats.isFile()) throw new Error("not a regular file (never read)");
  return { size: stats.size, mtimeMs: stats.mtimeMs };
}

/** A missing file as Deno reports it, so callers can tell it from other failures. */
function denoError(error: unknown): unknown {
  const code = (error as { code?: string }).code;
  if (code === "ENOENT" || code === "ENOTDIR") {
    return new Deno.errors.NotFound((error as Error).message, { cause: error });
  }
  return error;
}
