/**
 * A destination name or path the file system there never takes (`ENAMETOOLONG`, "File name too
 * long"): a name past 255 bytes, or a path past PATH_MAX. Retrying cannot help, so every method
 * says it in these words, with the length and the limit where they are known, and what to do.
 *
 * @module
 */

import { bytesOf, NAME_MAX_BYTES, PATH_MAX_BYTES } from "../config/path_limits.ts";

/** What to shorten: the names, or the base folder (`--to` in a run without a config file). */
const shorter = (fromTo?: boolean) =>
  `use shorter file or folder names, or a shorter ${
    fromTo ? "folder in --to" : "remote_base_path"
  }`;

/**
 * Why `path` (the final path at the destination, when known) cannot be made there: its longest
 * name past {@linkcode NAME_MAX_BYTES}, or the whole past {@linkcode PATH_MAX_BYTES}; else (the
 * temporary copy's path is the longer, or that file system takes less) both lengths.
 */
export function tooLongReason(path: string | undefined, fromTo?: boolean): string {
  const what = "is too long for the destination's file system";
  if (path === undefined) {
    return `a destination name or path ${what} (File name too long: names may have ` +
      `${NAME_MAX_BYTES} bytes, paths ${PATH_MAX_BYTES} on Linux); ${shorter(fromTo)}`;
  }
  const longest = path.split("/").reduce((a, b) => bytesOf(b) > bytesOf(a) ? b : a, "");
  if (bytesOf(longest) > NAME_MAX_BYTES) {
    return `the destination name ${longest} ${what}: ${bytesOf(longest)} bytes, where names ` +
      `may have ${NAME_MAX_BYTES} at most; ${shorter(fromTo)}`;
  }
  if (bytesOf(path) > PATH_MAX_BYTES) {
    return `the destination path ${path} ${what}: ${bytesOf(path)} bytes, where paths may ` +
      `have ${PATH_MAX_BYTES} at most; ${shorter(fromTo)}`;
  }
  return `the destination path ${path} ${what} (File name too long): ${bytesOf(path)} bytes, ` +
    `its longest name ${bytesOf(longest)}, and its copy is written under a longer temporary ` +
    `name first; ${shorter(fromTo)}`;
}
