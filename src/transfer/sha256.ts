/**
 * Streaming SHA-256 of a local file (never holds the file in memory).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The SHA-256 of the file at `path`, as lowercase hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1024 * 1024);
  while (true) {
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}
