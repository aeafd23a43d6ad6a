/**
 * Sizes of files already delivered (for the catch-up: a file the ledger calls
 * done but missing or of another size at the destination is sent again).
 * Only regular files count; a link, a folder or nothing is `null`.
 *
 * @module
 */
import { join, posix } from "node:path";
import { shellQuote } from "./ssh.ts";

/** Most paths one remote script asks about. */
export const SIZES_PER_SCRIPT = 500;

/** Sizes of `destinations` (relative to `base`) on this machine. */
export async function localDestinationSizes(
  base: string,
  destinations: string[],
): Promise<Map<string, number | null>> {
  const sizes = new Map<string, number | null>();
  for (const destination of destinations) {
    const info = await Deno.lstat(join(base, ...destination.split("/"))).catch(() => null);
    sizes.set(destination, info?.isFile ? info.size : null);
  }
  return sizes;
}

/**
 * A POSIX `sh` script that prints one line per path of `destinations`
 * (relative to `base`): its size, or `-` when it is not a regular file.
 * GNU `stat -c`, else BSD `stat -f`.
 */
export function remoteSizesScript(base: string, destinations: string[]): string {
  const lines = [
    "set -u",
    "size() {",
    '  if [ -f "$1" ] && [ ! -h "$1" ]; then',
    '    s=$(stat -c %s -- "$1" 2>/dev/null || stat -f %z -- "$1" 2>/dev/null) || s=-',
    "  else s=-; fi",
    '  printf "%s\\n" "${s:--}"',
    "}",
  ];
  for (const destination of destinations) {
    lines.push(`size ${shellQuote(posix.join(base, destination))}`);
  }
  return lines.join("\n") + "\n";
}

/** The sizes a {@linkcode remoteSizesScript} printed for `destinations`. */
export function parseRemoteSizes(
  destinations: string[],
  stdout: string,
): Map<string, number | null> {
  const lines = stdout.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines.length !== destinations.length) {
    throw new Error(
      `asked for ${destinations.length} size(s), the destination answered ${lines.length}`,
    );
  }
  const sizes = new Map<string, number | null>();
  for (const [index, destination] of destinations.entries()) {
    const text = lines[index].trim();
    sizes.set(destination, /^\d+$/.test(text) ? Number(text) : null);
  }
  return sizes;
}
