/**
 * The tree of the scale and poll benchmarks: small FITS-named files in night
 * folders, and ledger rows that record each as done for a job.
 *
 * @module
 */
import { join } from "node:path";
import { Ledger } from "../src/ledger/ledger.ts";
import { FileRows } from "../src/ledger/file_rows.ts";
import { senderId } from "../src/ledger/state_files.ts";
import type { JobConfig } from "../src/config/types.ts";
import { randomBytes } from "./setup.ts";

/** One file of the tree: its path under the watch folder, size and mtime. */
export interface TreeFile {
  rel: string;
  size: number;
  mtimeMs: number;
}

/** Write the tree of `files` files of 1 KiB in `folders` folders; returns them and how long that took. */
export function buildTree(
  watch: string,
  files: number,
  folders: number,
): { rows: TreeFile[]; ms: number } {
  const start = performance.now();
  const bytes = randomBytes(1024);
  const rows: TreeFile[] = [];
  const perFolder = Math.ceil(files / folders);
  for (let f = 0; f < folders; f++) {
    const folder = `night_${String(f).padStart(3, "0")}`;
    Deno.mkdirSync(join(watch, folder), { recursive: true });
    for (let i = 0; i < perFolder && rows.length < files; i++) {
      const rel = `${folder}/frame_${String(i).padStart(5, "0")}.fits`;
      const path = join(watch, folder, `frame_${String(i).padStart(5, "0")}.fits`);
      Deno.writeFileSync(path, bytes);
      const info = Deno.statSync(path);
      rows.push({ rel, size: info.size, mtimeMs: info.mtime?.getTime() ?? 0 });
    }
  }
  return { rows, ms: performance.now() - start };
}

/** Record every file of the tree as done for `job` in a fresh ledger in `stateDir`; returns the ms it took. */
export function markTreeDone(stateDir: string, rows: TreeFile[], job: JobConfig): number {
  const start = performance.now();
  const ledger = Ledger.open(stateDir);
  try {
    senderId(stateDir, { writable: true, ledger }); // As the earlier run that sent them left it.
    FileRows.of(ledger, job).markDone(rows.map((row) => ({
      relPath: row.rel,
      size: row.size,
      mtimeMs: row.mtimeMs,
      destination: `20240101/${row.rel}`,
    })));
  } finally {
    ledger.close();
  }
  return performance.now() - start;
}
