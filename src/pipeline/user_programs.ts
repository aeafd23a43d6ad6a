/**
 * The programs a config makes the daemon start of its own (hooks, scheduled
 * commands), checked like the config file itself: the permission set lets the
 * daemon start any program, so the guard is the program. Each must be an
 * absolute path (`~/` is the home folder; a bare name is looked up on `PATH`
 * once, when the config is checked), a file that can be run, owned by root or
 * by the account the daemon runs as, and neither it nor any folder on its way
 * (as named, and where its links lead) writable by group or others or owned
 * by another account, nor a link on its way another account owns (a folder
 * with the sticky bit, like `/tmp`, is fine: nobody else can replace a file in
 * it). POSIX modes and owners only; on Windows only the path is checked.
 *
 * @module
 */
import type { JobConfig } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { othersOwn, ownedByAnother, writableByOthers } from "../config/file_mode.ts";
import { posixWord } from "../shell_words.ts";
import { keyPlace } from "../config/key_lines.ts";
import { fileInPlaceOfFolder, homeDir, quotedAsWritten } from "../config/paths.ts";
import type { Path } from "../config/key_lines.ts";

/**
 * Each program `jobs` start of their own (hooks, scheduled commands), with the
 * key naming it (`path`: the same, as a key path within the job).
 */
export function userPrograms(
  jobs: JobConfig[],
): Array<{ job: JobConfig; key: string; path: Path; argv: string[] }> {
  return jobs.flatMap((job) => [
    { job, key: "on_transfer", path: ["on_transfer"], argv: job.on_transfer },
    { job, key: "on_failure", path: ["on_failure"], argv: job.on_failure },
    ...job.schedules.map((entry, index) => ({
      job,
      key: `schedules[${index}].command`,
      path: ["schedules", index, "command"],
      argv: entry.action === "command" ? entry.command : [],
    })),
  ]).filter((program) => program.argv.length > 0);
}

/**
 * Check every program `jobs` start of their own (hooks, scheduled commands)
 * as the config file is checked (see {@linkcode programProblem} below), and make
 * each bare program name the absolute path `PATH` gives it now, so the
 * daemon always starts the program that was checked.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @throws {ConfigError} naming each key, its job, what is wrong and the command that fixes it
 */
export async function checkUserPrograms(
  jobs: JobConfig[],
  file: string,
  runsAs?: number | null,
): Promise<void> {
  const problems: string[] = [];
  for (const { job, key, path: keyPath, argv } of userPrograms(jobs)) {
    // The file is read again for the line of a key with a problem only.
    const where = () => `${keyPlace(file, jobs.indexOf(job), keyPath)}: ${key} of job ${job.name}`;
    const path = findProgram(argv[0], Deno.env.get("PATH"));
    if (path === undefined) {
      const relative = /[\\/]/.test(argv[0]) && !isAbsolute(argv[0]) && !/^~[\\/]/.test(argv[0]);
      problems.push(
        `${where()}: ` +
          (relative
            ? `${quotedAsWritten(argv[0])} is a relative path, which the daemon would take from ` +
              "whatever folder it runs in (not the config file's): give its absolute path"
            : `cannot find the program ${quotedAsWritten(argv[0])}` +
              (/[\\/]/.test(argv[0])
                ? ": give its absolute path"
                : " on PATH: give its absolute path")),
      );
      continue;
    }
    const problem = await programProblem(path, runsAs);
    if (problem) {
      problems.push(`${where()}: refusing to run ${path}: ${problem}`);
      continue;
    }
    argv[0] = path;
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file });
}

/**
 * The program `program` names: itself when absolute (a leading `~/` is the home folder, as in the
 * config's paths), else found on `path` (a `PATH` value).
 */
export function findProgram(program: string, path: string | undefined): string | undefined {
  if (/^~[\\/]/.test(program)) {
    try {
      return join(homeDir(), program.slice(2));
    } catch {
      return undefined; // No home folder to find it in.
    }
  }
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
    if (error instanceof Deno.errors.NotFound) {
      return `${program} does not exist; check the path, or install the program there`;
    }
    const inTheWay = error instanceof Deno.errors.NotADirectory
      ? fileInPlaceOfFolder(dirname(program))
      : null;
    if (inTheWay !== null) {
      return `${program} cannot be there: ${inTheWay} on its path is a file, not a folder; ` +
        "check the path";
    }
    return `${program} cannot be read (${error}); check the path and its folders' permissions`;
  }
  if (!info.isFile) return `${program} is not a file; give the path of the program itself`;
  if (Deno.build.os === "windows") return undefined;
  const quoted = posixWord(program);
  if (info.mode !== null && (info.mode & 0o111) === 0) {
    return `${program} is not executable; fix it with: chmod +x ${quoted}`;
  }
  const script = await missingInterpreter(program, quoted);
  if (script !== undefined) return script;
  const writable = await writableByOthers(program);
  if (writable) {
    return `${program} is ${writable}, and whoever can change it runs commands as the daemon's ` +
      `account; fix it with: chmod go-w ${quoted}`;
  }
  if (othersOwn(info.uid, runsAs)) {
    return `${ownedByAnother(info.uid!, runsAs!, program)}, and its owner can make the daemon ` +
      `run anything; fix it with: ` +
      `sudo chown ${runsAs} ${quoted}, or install the program somewhere that belongs to root`;
  }
  // A link on the way that another account owns can be pointed elsewhere by that account.
  for (const { path: named, owner } of await linksOnTheWay(program)) {
    if (othersOwn(owner, runsAs)) {
      return `${ownedByAnother(owner!, runsAs!, `${named} is a link that`)}, and its owner can ` +
        "point it at another program; name the program itself, or a link of root's or that " +
        "account's";
    }
  }
  // Every folder on the way to it, as named and as its links lead: any of them could be replaced.
  const real = await Deno.realPath(program).catch(() => program);
  const folders = new Set([...foldersAbove(program), ...foldersAbove(real)]);
  const via = real === program ? "" : ` (which leads to ${real})`;
  for (const folder of folders) {
    const folderInfo = await Deno.stat(folder).catch(() => null);
    if (folderInfo === null) continue;
    const which = folder === dirname(program) ? "its folder" : "the folder";
    const sticky = folderInfo.mode !== null && (folderInfo.mode & 0o1000) !== 0;
    const folderWritable = sticky ? undefined : await writableByOthers(folder);
    if (folderWritable) {
      return `${which} ${folder} is ${folderWritable}, and whoever can write there can replace ` +
        `${program}${via}; fix it with: chmod go-w ${posixWord(folder)}`;
    }
    const owner = folderInfo.uid;
    if (othersOwn(owner, runsAs)) {
      return `${ownedByAnother(owner!, runsAs!, `${which} ${folder}`)}, and its owner can ` +
        `replace ${program}${via}; install ` +
        "the program somewhere that belongs to root or to that account";
    }
  }
  return undefined;
}

/**
 * Every link met on the way to the absolute `path`, as the system follows them (a link's target
 * read, then its own links), with its owner.
 */
async function linksOnTheWay(path: string): Promise<Array<{ path: string; owner: number | null }>> {
  const links: Array<{ path: string; owner: number | null }> = [];
  let done = "/";
  let rest = path.split("/").filter((part) => part !== "");
  while (rest.length > 0 && links.length < 40) {
    const next = join(done, rest[0]);
    const info = await Deno.lstat(next).catch(() => null);
    if (!info?.isSymlink) {
      [done, rest] = [next, rest.slice(1)];
      continue;
    }
    links.push({ path: next, owner: info.uid });
    const target = await Deno.readLink(next);
    if (target.startsWith("/")) done = "/";
    rest = [...target.split("/").filter((part) => part !== ""), ...rest.slice(1)];
  }
  return links;
}

/** The folders that hold `path`, nearest first, up to the root. */
function foldersAbove(path: string): string[] {
  const folders: string[] = [];
  for (let folder = dirname(path); !folders.includes(folder); folder = dirname(folder)) {
    folders.push(folder);
  }
  return folders;
}

/**
 * What is wrong with a script whose first line (`#!`) names a program that does not exist (the
 * system then says only "No such file or directory"), such as `/bin/sh` followed by the carriage
 * return of a file saved with Windows line ends; `undefined` when it exists or is not a script.
 */
async function missingInterpreter(program: string, quoted: string): Promise<string | undefined> {
  let head: Uint8Array;
  try {
    using file = await Deno.open(program);
    const buffer = new Uint8Array(256);
    head = buffer.subarray(0, (await file.read(buffer)) ?? 0);
  } catch {
    return undefined; // Not readable by the daemon: the system judges the script when it runs.
  }
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const line = new TextDecoder().decode(head.subarray(2)).split("\n")[0];
  // The system takes the first word (up to a blank or the line's end) as the program.
  const interpreter = line.replace(/^[ \t]+/, "").split(/[ \t]/)[0];
  if (!interpreter || await Deno.stat(interpreter).then(() => true, () => false)) return undefined;
  if (interpreter.endsWith("\r")) {
    return `${program} starts with #!${interpreter.trimEnd()} followed by a carriage return (the ` +
      "file has Windows line ends), so the system looks for a program whose name ends in it; " +
      `fix it with: sed -i 's/\\r$//' ${quoted}`;
  }
  return `${program} starts with #!${interpreter}, which does not exist; install it there or ` +
    "correct that first line";
}

/**
 * The `PATH` a service manager gives the daemon: systemd's fixed one (with `/sbin` and `/bin` for
 * a system whose `/usr` is not merged), the one the launchd plist sets. Windows' task runs with
 * the account's own.
 */
export const SERVICE_PATH: Partial<Record<typeof Deno.build.os, string>> = {
  linux: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  darwin: "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
};

/** The programs of `jobs` named by a bare name (looked up on `PATH`), with that name. */
export function bareNamedPrograms(jobs: JobConfig[]) {
  return userPrograms(jobs)
    .filter(({ argv }) => !/[\\/]/.test(argv[0]) && !argv[0].startsWith("~"))
    .map((program) => ({ ...program, name: program.argv[0] }));
}

/**
 * Refuse a bare program name (see {@linkcode bareNamedPrograms}, taken before
 * {@linkcode checkUserPrograms} gave it its path) that the service's `PATH` (`servicePath`)
 * does not find as the same file: the service's daemon would refuse to start, or start another.
 *
 * @throws {ConfigError} naming each key, where it was found and what to write instead
 */
export function assertFoundAsService(
  bare: ReturnType<typeof bareNamedPrograms>,
  jobs: JobConfig[],
  file: string,
  servicePath: string,
): void {
  const real = (path: string | undefined) => {
    try {
      return path === undefined ? undefined : Deno.realPathSync(path);
    } catch {
      return undefined;
    }
  };
  const problems: string[] = [];
  for (const { job, key, path: keyPath, argv, name } of bare) {
    const there = findProgram(name, servicePath);
    if (there !== undefined && real(there) === real(argv[0])) continue;
    problems.push(
      `${keyPlace(file, jobs.indexOf(job), keyPath)}: ${key} of job ${job.name}: ` +
        `${JSON.stringify(name)} is ${argv[0]} on your PATH, but the service runs with PATH=` +
        `${servicePath}, where it ${there === undefined ? "is not found" : `is ${there}`}; ` +
        `write the program's absolute path (${argv[0]}) in the config`,
    );
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file });
}
