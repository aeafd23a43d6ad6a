/**
 * Why no file can go to a destination whose base folder (`remote_base_path`) refuses the login,
 * or is gone: words every method uses, in the form `failureScope` (`errors.ts`) takes for the
 * whole destination failing, never one file's.
 *
 * @module
 */

/** How another base folder is given: `remote_base_path`, or `--to` without a config file. */
export const otherBase = (fromTo?: boolean) =>
  fromTo ? "give --to another folder" : "change remote_base_path";

/**
 * Why no file can be sent where the login on `host` may not write into the base path `base`
 * (`remote_base_path`): no folder can be made there, a night folder the first. In the words
 * `failureScope` (`errors.ts`) takes for the whole destination failing, not one file. `said`:
 * what showed it (no parentheses in it).
 */
export function baseRefusedReason(
  host: string,
  base: string,
  fromTo?: boolean,
  said = "permission denied",
): string {
  return `the remote user on ${host} may not write into the destination folder ${base} ` +
    `(${said}), where every file's folder is made: fix the owner or permissions of ` +
    `the destination folder, or ${otherBase(fromTo)}`;
}

/**
 * Why no file can be sent where the base path `base` is not there and the login on `host` may not
 * make it in `above`, the nearest folder there above it: no file's folder can be there either. In
 * the words `failureScope` (`errors.ts`) takes for the whole destination failing, never one file's.
 */
export function aboveRefusedReason(
  host: string,
  base: string,
  above: string,
  fromTo?: boolean,
): string {
  return `the remote user on ${host} may not make the destination folder ${base}: it is not ` +
    `there, and ${above} refuses it (permission denied): make the destination folder, or fix ` +
    `the owner or permissions of ${above}, or ${otherBase(fromTo)}`;
}

/**
 * Why no file can be sent into the base path `base`, a symbolic link to `target`, which is not
 * there: no folder is made through the link (`run` and `doctor`, every method). Once files
 * `arrived` there, as any base folder gone ({@linkcode baseGoneReason}), the link named. `there`:
 * where `target` is to be made, for a host that is not this one (` there`). In the words
 * `failureScope` (`errors.ts`) takes for the whole destination failing, never one file's.
 */
export function danglingBaseReason(
  base: string,
  target: string,
  arrived: boolean,
  fromTo?: boolean,
  there = "",
): string {
  const link = `is a symbolic link to ${target}, which does not exist`;
  return arrived
    ? `${baseGoneReason(base)} (it ${link})`
    : `the destination folder ${base} ${link}, and no folder is made through it: make ` +
      `${target}${there}, or ${otherBase(fromTo)}`;
}

/**
 * Why nothing is sent into a destination base folder that is gone although
 * files arrived there before (a `retry-later` error of every method): it is
 * not made again, since a share that did not mount would get the copies on
 * the disk below its mount point. `seen`: what shows the share is not
 * mounted, where the folder is there (`local`: an empty folder on another
 * file system).
 */
export function baseGoneReason(base: string, seen?: string): string {
  const gone = `the destination folder ${base} is gone (a share that is not mounted?)`;
  return seen
    ? `${gone}: ${seen}; nothing is written below its mount point, and nothing is sent until ` +
      "the share or disk is back; mount it"
    : `${gone}: files arrived there before, so it is not made again, and nothing is sent ` +
      "until it is back; mount it, or make the folder if it is meant to be new";
}
