/**
 * The programs a config makes the daemon start (hooks, scheduled commands)
 * are checked like the config file itself: the permission set lets the
 * daemon start any program, so the guard is the program. Each must be an
 * absolute path (a bare name is looked up on `PATH` once, when the config is
 * checked), a file that can be run, owned by root or by the account the
 * daemon runs as, and neither it nor its folder writable by group or others
 * (a folder with the sticky bit, like `/tmp`, is fine: nobody else can
 * replace a file in it). POSIX modes and owners only; on Windows only the
 * path is checked.
 *
 * @module
 */
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { shellQuote, writableByOthers } from "../config/file_mode.ts";

/** The program `program` names: itself when absolute, else found on `path` (a `PATH` value). */
export function findProgram(program: string, path: string | undefined): string | undefined {
  if (isAbsolute(program)) return program;
  // A relative path with a folder would depend on the daemon's working folder.
  if (program.includes("/") || program.includes("\\")) return undefined;
  const extensions = Deno.build.os === "windows" ? ["", ".exe", ".cmd", ".bat"] : [""];
  for (const dir of (path ?? "").split(delimiter)) {
    if (!isAbsolute(dir)) continue; // "" or "." would mean the working folder.
    for (const extension of extensions) {
      const candidate = join(dir, program + extension);
      try {
        const info = Deno.statSync(candidate);
        if (info.isFile && (info.mode === null || (info.mode & 0o111) !== 0)) return candidate;
      } catch {
        // Not in this folder.
      }
    }
  }
  return undefined;
}

/**
 * Why the daemon must not run the program at absolute path `program`, or
 * `undefined` when it may.
 *
 * @param runsAs user id of the account the daemon runs as (`null`: not checked)
 * @returns what is wrong and the command that fixes it
 */
export async function programProblem(
  program: string,
  runsAs: number | null = Deno.build.os === "windows" ? null : Deno.uid(),
): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(program);
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound ? "does not exist" : String(error);
    return `${program} ${reason}; give the absolute path of the program`;
  }
  if (!info.isFile) return `${program} is not a file; give the absolute path of the program`;
  if (Deno.build.os === "windows") return undefined;
  const quoted = shellQuote(program);
  if (info.mode !== null && (info.mode & 0o111) === 0) {
    return `${program} is not executable; fix it with: chmod +x ${quoted}`;
  }
  const writable = await writableByOthers(program);
  if (writable) {
    return `${program} is ${writable}, and whoever can change it runs commands as the daemon's ` +
      `account; fix it with: chmod go-w ${quoted}`;
  }
  if (runsAs !== null && info.uid !== null && info.uid !== 0 && info.uid !== runsAs) {
    return `${program} belongs to user id ${info.uid}, not to root or to the account the daemon ` +
      `runs as (user id ${runsAs}), and its owner can make the daemon run anything; fix it with: ` +
      `sudo chown ${runsAs} ${quoted}, or install the program somewhere that belongs to root`;
  }
  const folder = dirname(program);
  const folderInfo = await Deno.stat(folder).catch(() => null);
  const sticky = folderInfo?.mode != null && (folderInfo.mode & 0o1000) !== 0;
  const folderWritable = sticky ? undefined : await writableByOthers(folder);
  if (folderWritable) {
    return `its folder ${folder} is ${folderWritable}, and whoever can write there can replace ` +
      `${program}; fix it with: chmod go-w ${shellQuote(folder)}`;
  }
  return undefined;
}
