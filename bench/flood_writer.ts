/**
 * The flood's writer, in a worker thread so that its synchronous writes (the
 * fastest way to make files) do not keep the benchmark from reading the
 * daemon's output. Receives a {@linkcode FloodWriteRequest}, creates the
 * folders and files, and answers with a {@linkcode FloodWriteResult}.
 *
 * @module
 */
/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
import { join } from "node:path";

/** What to write. */
export interface FloodWriteRequest {
  watch: string;
  /** Relative paths (`/`-separated), in write order; their folders are created first. */
  rels: string[];
  /** Contents of every file; its index goes into the first four bytes. */
  template: Uint8Array;
}

/** When the writer started and when it closed the last file (epoch milliseconds). */
export interface FloodWriteResult {
  startEpochMs: number;
  lastClosedEpochMs: number;
}

const now = () => performance.timeOrigin + performance.now();

self.onmessage = ({ data }: MessageEvent<FloodWriteRequest>) => {
  const { watch, rels, template } = data;
  const startEpochMs = now();
  const folders = new Set(rels.map((rel) => rel.slice(0, rel.lastIndexOf("/"))));
  for (const folder of folders) Deno.mkdirSync(join(watch, folder), { recursive: true });
  const bytes = template.slice();
  const view = new DataView(bytes.buffer);
  for (const [i, rel] of rels.entries()) {
    view.setUint32(0, i);
    Deno.writeFileSync(join(watch, rel), bytes);
  }
  const result: FloodWriteResult = { startEpochMs, lastClosedEpochMs: now() };
  self.postMessage(result);
  self.close();
};
