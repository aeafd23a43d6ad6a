/**
 * Sizes of files already delivered (for the catch-up: a file the ledger calls
 * done but missing or of another size at the destination is sent again).
 * Only regular files count; a link, a folder or nothing is `null`.
 *
 * @module
 */
import { join, posix } from "node:path";
import {
  buildScript,
  call,
  parseResults,
  type RemoteScript,
  resultsByIndex,
} from "./ssh/remote_script.ts";

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

/** The remote script (`remote/sizes.sh`) asking for the sizes of `destinations` under `base`. */
export function remoteSizesScript(base: string, destinations: string[]): RemoteScript {
  return buildScript(
    "sizes",
    destinations.map((destination, index) =>
      call("file_size", index, posix.join(base, destination))
    ),
  );
}

/**
 * The sizes a {@linkcode remoteSizesScript} reported for `destinations`.
 *
 * @throws {Error} when it did not answer for every path
 */
export function parseRemoteSizes(
  destinations: string[],
  script: RemoteScript,
  stdout: string,
): Map<string, number | null> {
  const results = resultsByIndex(parseResults(stdout, script.marker));
  const sizes = new Map<string, number | null>();
  for (const [index, destination] of destinations.entries()) {
    const result = results.get(index);
    if (result === undefined) {
      throw new Error(
        `asked for ${destinations.length} size(s), the destination answered ${results.size}`,
      );
    }
    sizes.set(
      destination,
      result.word === "size" && /^\d+$/.test(result.detail) ? Number(result.detail) : null,
    );
  }
  return sizes;
}
