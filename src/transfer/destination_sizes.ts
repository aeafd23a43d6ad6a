/**
 * Sizes of files already delivered (for the catch-up: a file the ledger calls
 * done but missing or of another size at the destination is sent again), and
 * their SHA-256 (a rebuilt ledger recognises a file by it with `checksum`).
 * Only regular files count; a link, a folder or nothing is `null`.
 *
 * @module
 */
import { join, posix } from "node:path";
import { hashFile } from "./source.ts";
import {
  buildScript,
  call,
  parseResults,
  type RemoteScript,
  resultsByIndex,
} from "./ssh/remote_script.ts";

/** A file's size and last-written time (whole seconds) at the destination. */
export interface DestinationVersion {
  size: number;
  mtimeS: number;
}

/** Most paths one remote script asks the size of. */
export const SIZES_PER_SCRIPT = 500;

/** Most files one remote script hashes (each call must end within the transfer timeout). */
export const SHA256_PER_SCRIPT = 20;

/** Sizes of `destinations` (relative to `base`) on this machine. */
export function localDestinationSizes(
  base: string,
  destinations: string[],
): Promise<Map<string, number | null>> {
  return localAnswers(base, destinations, (_path, info) => Promise.resolve(info.size));
}

/** Size and mtime (whole seconds) of `destinations` (relative to `base`) on this machine. */
export function localDestinationVersions(
  base: string,
  destinations: string[],
): Promise<Map<string, DestinationVersion | null>> {
  return localAnswers(base, destinations, (_path, info) =>
    Promise.resolve(
      info.mtime === null
        ? null
        : { size: info.size, mtimeS: Math.floor(info.mtime.getTime() / 1000) },
    ));
}

/** SHA-256 of `destinations` (relative to `base`) on this machine; `null` where no regular file is. */
export function localDestinationSha256(
  base: string,
  destinations: string[],
): Promise<Map<string, string | null>> {
  return localAnswers(base, destinations, (path) => hashFile(path).catch(() => null));
}

/** `answer` for each of `destinations` that is a regular file below `base`; `null` for the rest. */
async function localAnswers<T>(
  base: string,
  destinations: string[],
  answer: (path: string, info: Deno.FileInfo) => Promise<T | null>,
): Promise<Map<string, T | null>> {
  const answers = new Map<string, T | null>();
  for (const destination of destinations) {
    const path = join(base, ...destination.split("/"));
    const info = await Deno.lstat(path).catch(() => null);
    answers.set(destination, info?.isFile ? await answer(path, info) : null);
  }
  return answers;
}

/**
 * The remote script (`remote/sizes.sh`) asking for the sizes of `destinations` under `base`;
 * with `flushFound`, it then flushes the folders where it found files (see
 * {@linkcode parseFoundFlush}).
 */
export function remoteSizesScript(
  base: string,
  destinations: string[],
  flushFound = false,
): RemoteScript {
  const paths = destinations.map((destination) => posix.join(base, destination));
  const lines = paths.map((path, index) => call("file_size", index, path));
  if (flushFound && paths.length > 0) {
    // By folder, so each is flushed once.
    const pairs = paths.map((path, index) => [index, posix.dirname(path)] as const)
      .sort(([, a], [, b]) => a < b ? -1 : a > b ? 1 : 0);
    lines.push(call("flush_found", ...pairs.flat()));
  }
  return buildScript("sizes", lines);
}

/**
 * What the flush of a {@linkcode remoteSizesScript} with `flushFound` said: `null` where it
 * confirmed the folders of the files found on disk (or none was found, in `sizes`), else what
 * sync said (or that the server said nothing of it).
 */
export function parseFoundFlush(
  script: RemoteScript,
  stdout: string,
  sizes: Map<string, number | null>,
): string | null {
  if ([...sizes.values()].every((size) => size === null)) return null;
  const results = parseResults(stdout, script.marker);
  if (results.some((result) => result.word === "found-flushed")) return null;
  return results.find((result) => result.word === "flush-failed")?.detail ||
    "no word of the flush of the folders of the files found";
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
  return parseAnswers(
    destinations,
    script,
    stdout,
    "size",
    (word, detail) => word === "size" && /^\d+$/.test(detail) ? Number(detail) : null,
  );
}

/**
 * The remote script (`remote/sizes.sh`) asking for the size and last-written time of
 * `destinations` under `base`.
 */
export function remoteVersionsScript(base: string, destinations: string[]): RemoteScript {
  const paths = destinations.map((destination) => posix.join(base, destination));
  return buildScript("sizes", paths.map((path, index) => call("file_version", index, path)));
}

/**
 * The size and mtime a {@linkcode remoteVersionsScript} reported for `destinations`.
 *
 * @throws {Error} when it did not answer for every path
 */
export function parseRemoteVersions(
  destinations: string[],
  script: RemoteScript,
  stdout: string,
): Map<string, DestinationVersion | null> {
  return parseAnswers(destinations, script, stdout, "version", (word, detail) => {
    const facts = /^(\d+) (\d+)$/.exec(detail);
    return word === "version" && facts
      ? { size: Number(facts[1]), mtimeS: Number(facts[2]) }
      : null;
  });
}

/** Result words of `flush_found`, which say nothing of one path (a message may start with a number). */
const FLUSH_WORDS = new Set(["flush-failed", "found-flushed"]);

/** One answer per destination, read from the results of a `sizes.sh` script. */
function parseAnswers<T>(
  destinations: string[],
  script: RemoteScript,
  stdout: string,
  what: string,
  value: (word: string, detail: string) => T | null,
): Map<string, T | null> {
  const results = resultsByIndex(
    parseResults(stdout, script.marker).filter((result) => !FLUSH_WORDS.has(result.word)),
  );
  const answers = new Map<string, T | null>();
  for (const [index, destination] of destinations.entries()) {
    const result = results.get(index);
    if (result === undefined) {
      throw new Error(
        `asked for ${destinations.length} ${what}(s), the destination answered ${results.size}`,
      );
    }
    answers.set(destination, value(result.word, result.detail));
  }
  return answers;
}

/** The remote script (`remote/sizes.sh`) asking for the SHA-256 of `destinations` under `base`. */
export function remoteSha256Script(base: string, destinations: string[]): RemoteScript {
  return buildScript(
    "sizes",
    destinations.map((destination, index) =>
      call("file_sha256", index, posix.join(base, destination))
    ),
  );
}

/**
 * The SHA-256 a {@linkcode remoteSha256Script} reported for `destinations`:
 * `null` where no regular file is or the server has no hash tool.
 *
 * @throws {Error} when it did not answer for every path
 */
export function parseRemoteSha256(
  destinations: string[],
  script: RemoteScript,
  stdout: string,
): Map<string, string | null> {
  return parseAnswers(destinations, script, stdout, "checksum", (word, detail) => {
    const hex = detail.toLowerCase();
    return word === "checksum" && /^[0-9a-f]{64}$/.test(hex) ? hex : null;
  });
}
