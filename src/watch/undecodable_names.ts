/**
 * Names the runtime cannot give back: on Linux a file name is any bytes, and
 * bytes that are not UTF-8 come back replaced by U+FFFD, so the file cannot
 * be opened (or even stat'ed) by the name a listing shows.
 *
 * @module
 */
import { join } from "node:path";
import { hasUndecodableBytes } from "./entry_check.ts";

/**
 * Every entry below `root` whose listed name holds U+FFFD and that cannot be
 * found by that name (a name with a real U+FFFD is fine). Folders reached
 * through links are not entered; nothing is opened.
 */
export function findUndecodableNames(root: string): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (hasUndecodableBytes(entry.name) && !exists(path)) out.push(path);
      else if (entry.isDirectory) stack.push(path);
    }
  }
  return out;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
