/**
 * What `run` refuses in a config that loaded (its keys and values are valid)
 * before it starts anything, shared by `config validate`, `doctor`,
 * `install-service` and a reload, so that a config they accept starts: the
 * programs it runs of its own (hooks, scheduled commands), the files a job
 * logs in with, folders the daemon cannot use, source clean-up that would
 * remove what another job has not sent, destinations that would lose or
 * repeat copies, and the status page's address and token. Every problem is
 * said at once, each with the file and line of its key. A folder on a share
 * that does not answer is said, and checked as written.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { jobKeyPlace, keyPlace, topKeyPlace } from "../config/key_lines.ts";
import type { Config } from "../config/types.ts";
import { keysNoJobInherits } from "../config/jobs.ts";
import { ignoredJobKeys, retryDelaysAboveMax } from "../config/method_keys.ts";
import { ConfigError } from "../errors.ts";
import { whyUnwritable } from "../ledger/state_files.ts";
import { type ListenSettings, listenSettings } from "../status/listen.ts";
import { relativeTo } from "../layout/watch_folder_paths.ts";
import { excludedEverything } from "../watch/file_filter.ts";
import { checkUserPrograms } from "./user_programs.ts";
import { checkLoginFiles, passphraseKeys, unsetPasswordVariables } from "./login_files.ts";
import { assertCleanupSafe, assertDestinationsApart } from "./destinations_apart.ts";
import { ownFilesWatched } from "./own_files_apart.ts";
import { untrustedOwnFiles } from "./own_files_trust.ts";
import { answerWithin, SHARE_ANSWER_MS } from "../config/file_systems.ts";
import { logger } from "../log/logging.ts";
import { fileInPlaceOfFolder, otherOsPathProblem, unsetVariableProblem } from "../config/paths.ts";
import { LOCAL_PATH_KEYS } from "../config/resolve.ts";
import { reversedSignZones, tzNotFollowed } from "../config/tz_environment.ts";

/**
 * Check `config` as `run` does before it starts.
 *
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @param forAnotherMachine the config may be meant for another machine (`config validate`):
 *   another OS's paths are warned of, not refused; given as an OS (`install-service --os`), only
 *   those that OS does not have
 * @returns the status page's settings (`null` when it is off)
 * @throws {ConfigError} naming every problem, what is wrong and what to do
 */
export async function checkBeforeStart(
  config: Config,
  runsAs?: number | null,
  warn: (message: string) => void = (message) => logger("daemon").warn("{message}", { message }),
  forAnotherMachine: boolean | typeof Deno.build.os = false,
): Promise<ListenSettings | null> {
  if (forAnotherMachine) {
    const os = forAnotherMachine === true ? undefined : forAnotherMachine;
    for (const problem of otherOsPaths(config, os)) {
      warn(os ? problem : `${problem}; \`run\` refuses it on this machine`);
    }
  } else {
    assertThisMachinePaths(config);
  }
  const real = await realFolders(config);
  for (const { key, index, path } of real.silent) {
    const place = index < 0
      ? `${keyPlace(config.file, -1, [key])}: ${key}`
      : jobKeyPlace(config, index, key);
    warn(
      `${place}: ${path} did not answer in ${SHARE_ANSWER_MS / 1000} s (a network share whose ` +
        "server stopped answering?): it is checked as written, without following links",
    );
  }
  const notes = [
    ...unseenCloses(config),
    ...uncheckedServers(config),
    ...ftpTildeBases(config),
    ...ignoredJobKeys(config),
    ...retryDelaysAboveMax(config),
    ...passphraseKeys(config),
    ...(runsAs === undefined ? unsetPasswordVariables(config) : []), // Not a service's env.
    ...(runsAs === undefined ? [tzNotFollowed(config)].filter((note) => note !== null) : []),
    ...reversedSignZones(config),
    ...excludedEverything(config),
    ...keysNoJobInherits(config.file).map((key) =>
      `${keyPlace(config.file, -1, [key])}: ${key} at the top level is inherited by no job, as ` +
      "every entry of jobs sets its own: next to a jobs list, the top-level job keys are " +
      "defaults for its entries, not a job of their own; " + (key === "watch_path"
        ? "to send from that folder too, give it an entry of its own in jobs, else remove the key"
        : "remove it, or set it in the entries that need it")
    ),
  ];
  for (const message of notes) warn(message);
  const realPathSoFar = (path: string) => real.paths.get(path) ?? resolve(path);
  const problems: string[] = [];
  const check = async <T>(run: () => T | Promise<T>): Promise<T | undefined> => {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(error.message);
    }
  };
  await check(() => checkUserPrograms(config.jobs, config.file, runsAs));
  await check(() => checkLoginFiles(config, runsAs));
  await check(() => checkFolders(config, realPathSoFar, (path) => real.files.get(path)));
  await check(() => assertCleanupSafe(config, realPathSoFar, (path) => real.ids.get(path) ?? []));
  await check(() => assertDestinationsApart(config, realPathSoFar));
  problems.push(...ownFilesWatched(config, realPathSoFar));
  problems.push(...await untrustedOwnFiles(config, runsAs));
  const listen = await check(() => listenSettings(config, runsAs));
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
  return listen ?? null;
}

/**
 * Jobs that remove growing files once sent where the daemon cannot see their
 * writers close them (no close events: not Linux, or `watch_mode: poll`): one
 * whose writer pauses longer than the window may go while it is still written.
 */
function unseenCloses(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    if (job.after_transfer === "keep" || job.growing_patterns.length === 0) return [];
    const why = Deno.build.os !== "linux"
      ? "this system does not tell when a writer closes a file"
      : job.watch_mode === "poll"
      ? "watch_mode: poll sees no closes"
      : null;
    if (why === null) return [];
    return [
      `${jobKeyPlace(config, index, "growing_patterns")}: with after_transfer: ` +
      `${job.after_transfer}, ${why}, so a growing file is ${job.after_transfer}d once unchanged ` +
      `for stability_window_seconds (${job.stability_window_seconds} s), even if its writer only ` +
      "paused: set the window above the writer's longest pause, or after_transfer: keep",
    ];
  });
}

/**
 * SSH jobs whose `ssh_options` let the server's key go unchecked (`StrictHostKeyChecking=no`, the
 * first value given being the one ssh takes): a machine that took the server's address, or a key
 * that changed, would receive the files.
 */
function uncheckedServers(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    if (job.transfer_method !== "scp" && job.transfer_method !== "rsync") return [];
    const option = job.ssh_options.find((o) => /^StrictHostKeyChecking=/i.test(o));
    if (option === undefined || !/=(no|off)$/i.test(option)) return [];
    return [
      `${jobKeyPlace(config, index, "ssh_options")}: ${option} sends the files to whatever ` +
      `answers as ${job.remote_host}, its key unchecked (another machine that took its address, ` +
      "or a key that changed): use StrictHostKeyChecking=accept-new (a new server's key is " +
      "remembered at the first login, a changed one refused)",
    ];
  });
}

/**
 * FTP jobs whose `remote_base_path` starts with `~`: the server reads the path, and vsftpd (as
 * many others) takes `~` as a folder name, where scp's shell would mean the home folder.
 */
function ftpTildeBases(config: Config): string[] {
  return config.jobs.flatMap((job, index) => {
    const base = job.remote_base_path;
    if (job.transfer_method !== "ftp" || !/^~(\/|$)/.test(base)) return [];
    const relative = base.replace(/^~\/*/, "");
    return [
      `${jobKeyPlace(config, index, "remote_base_path")}: ${base} goes to an FTP server, which ` +
      "does not expand ~ (vsftpd makes a folder named ~): write " +
      `${relative === "" ? "." : relative} (in the login's folder) or the full path`,
    ];
  });
}

/**
 * Refuse another OS's paths (see {@linkcode checkBeforeStart}); `run` asks before it opens its log
 * file. @throws {ConfigError} naming each with its key's line
 */
export function assertThisMachinePaths(config: Config): void {
  const problems = otherOsPaths(config);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/**
 * The paths of the config's {@linkcode LOCAL_PATH_KEYS} (and a `local` job's `remote_base_path`)
 * that are another machine's: another OS's (`C:/data` on Linux: a folder `C:` below the current
 * one), or holding a `%NAME%` this environment does not set; each said with its key's line.
 */
function otherOsPaths(config: Config, os?: typeof Deno.build.os): string[] {
  const problems: string[] = [];
  const daemon = config as unknown as Record<string, unknown>;
  for (const key of LOCAL_PATH_KEYS) {
    const problem = typeof daemon[key] === "string" && elsewhere(daemon[key] as string, os);
    if (problem) problems.push(`${keyPlace(config.file, -1, [key])}: ${key}: ${problem}`);
  }
  for (const [index, job] of config.jobs.entries()) {
    const values = job as unknown as Record<string, unknown>;
    const keys = job.transfer_method === "local"
      ? [...LOCAL_PATH_KEYS, "remote_base_path"]
      : LOCAL_PATH_KEYS;
    for (const key of keys) {
      const problem = typeof values[key] === "string" && elsewhere(values[key] as string, os);
      if (problem) problems.push(`${jobKeyPlace(config, index, key)}: ${problem}`);
    }
  }
  return [...new Set(problems)];
}

/**
 * Why `path` is another machine's (see {@linkcode otherOsPaths}), or `null`; for the OS `os`
 * where given (a service file made for it here), whose own variables (`%NAME%`) are not known here.
 */
function elsewhere(path: string, os?: typeof Deno.build.os): string | null {
  const variable = os === undefined || os === Deno.build.os ? unsetVariableProblem(path) : null;
  return otherOsPathProblem(path, os) ?? variable;
}

/**
 * The folders under which the runtime this program is built on opens nothing
 * without every permission (it guards devices and kernel files there), and a
 * daemon runs with fewer.
 */
const RUNTIME_GUARDED = ["/dev", "/proc", "/sys"];

/**
 * Refuse folders and files the daemon cannot use: under `/dev`, `/proc` or
 * `/sys` (a RAM disk in `/dev/shm`, also through a link), a `state_dir` that
 * is a file, a `log_file` that is a folder, a folder of a job that is a file,
 * or below one (and a `log_file` below one).
 *
 * @throws {ConfigError} naming each with its key's line, and what to do
 */
function checkFolders(
  config: Config,
  realPathSoFar: RealPath,
  fileOnPath: (path: string) => FileOnPath | undefined,
): void {
  const problems: string[] = [];
  const guarded = (path: string) => {
    if (Deno.build.os === "windows") return null;
    const real = realPathSoFar(path);
    const under = RUNTIME_GUARDED.find((top) => relativeTo(top, real) !== null);
    return under === undefined ? null : `${path} is under ${under}, where image-transfer cannot ` +
      "open files (the runtime it is built on guards devices and kernel files there); choose a " +
      "folder elsewhere (for a RAM disk, mount a tmpfs, e.g. sudo mount -t tmpfs -o size=4g " +
      "tmpfs /mnt/ramdisk)";
  };
  const top = (key: "state_dir" | "log_file", problem: string | null) => {
    if (problem !== null) problems.push(`${topKeyPlace(config, key)}: ${problem}`);
  };
  top("state_dir", guarded(config.state_dir));
  if (config.log_file !== "") top("log_file", guarded(config.log_file));
  const kind = (path: string): "folder" | "file" | null => {
    try {
      return Deno.statSync(path).isDirectory ? "folder" : "file";
    } catch (error) {
      const missing = error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.NotADirectory;
      if (!missing || dirname(path) === path) return null;
      // Missing: it can be made, unless a folder on its path is a file.
      return kind(dirname(path)) === "file" ? "file" : null;
    }
  };
  const stateKind = kind(config.state_dir);
  if (stateKind === "file") {
    top(
      "state_dir",
      `${config.state_dir} (or a folder on its path) is a file; give a folder (made if missing)`,
    );
  } else {
    top("state_dir", unwritableFolder(config.state_dir, stateKind === null));
  }
  if (config.log_file !== "" && kind(config.log_file) === "folder") {
    top("log_file", `${config.log_file} is a folder; give a file in it (made if missing)`);
  }
  if (config.log_file !== "" && fileOnPath(config.log_file) === "above") {
    top(
      "log_file",
      `${fileInPlaceOfFolder(dirname(config.log_file)) ?? "a folder"} on the path of ` +
        `${config.log_file} is a file; give a file in a folder`,
    );
  } else if (config.log_file !== "" && kind(config.log_file) !== "folder") {
    top("log_file", unwritableLog(config.log_file));
  }
  for (const [index, job] of config.jobs.entries()) {
    const paths = {
      watch_path: job.watch_path,
      remote_base_path: job.transfer_method === "local" ? job.remote_base_path : null,
      archive_path: job.after_transfer === "move" ? job.archive_path : null,
    };
    for (const [key, path] of Object.entries(paths)) {
      if (path === null) continue;
      const file = fileOnPath(path);
      // Looked up only where a file is in the way: a share that hangs must not hang this.
      const inTheWay = () =>
        file === "itself"
          ? path
          : `${fileInPlaceOfFolder(path) ?? "a folder"} on the path of ${path}`;
      const problem = file === undefined
        ? guarded(path)
        : `${inTheWay()} is a file, not a folder; give a folder` +
          (key === "watch_path" ? " (the one the instrument writes into)" : " (made if missing)");
      if (problem !== null) problems.push(`${jobKeyPlace(config, index, key)}: ${problem}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/**
 * Why the log file `path` cannot be written (read-only, permission denied): the file itself
 * opened to append to (nothing written), or the folder it is to be made in; `null` when it can.
 */
function unwritableLog(path: string): string | null {
  try {
    // Opened to append, a pipe would wait for a reader for ever.
    if (!Deno.statSync(path).isFile) {
      return `${path} is not a regular file (a device, a pipe?); give a file this user can ` +
        'write (made if missing), or "" to log to stderr only';
    }
  } catch { /* not there yet: made below */ }
  try {
    Deno.openSync(path, { append: true }).close();
    return null;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      const why = whyUnwritable(error);
      if (!/read-only|permission denied/.test(why)) return null;
      return `${path} cannot be written (${why}); give a file this user can write, or "" to ` +
        "log to stderr only";
    }
  }
  const folder = unwritableFolder(dirname(path), true);
  return folder === null ? null : `${folder.replace(/; give a folder .*$/, "")}, so the log ` +
    `file ${path} cannot be made there; give a file this user can write, or "" to log to ` +
    "stderr only";
}

/**
 * Why the folder `path` cannot be written (read-only, permission denied), by
 * making a file in it and removing it; `null` when it can. `missing`: it is
 * to be made, in the nearest folder on its path that exists.
 */
function unwritableFolder(path: string, missing = false): string | null {
  let folder = path;
  while (missing && !existsAsFolder(folder) && dirname(folder) !== folder) folder = dirname(folder);
  const probe = join(folder, `.image-transfer-write-test-${Deno.pid}`);
  try {
    Deno.openSync(probe, { write: true, createNew: true }).close();
    Deno.removeSync(probe);
    return null;
  } catch (error) {
    const why = whyUnwritable(error);
    if (!/read-only|permission denied/.test(why)) return null;
    const what = folder === path ? "cannot be written" : `cannot be made in ${folder}`;
    return `${path} ${what} (${why}); give a folder this user can write (made if missing)`;
  }
}

function existsAsFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** `path` made absolute with the links of the part of it that exists resolved. */
export type RealPath = (path: string) => string;

/**
 * The identities (`dev:ino`) of a folder that exists and of each folder above it, itself first:
 * a folder mounted at another path too (`mount --bind`) has the same; none where not known.
 */
export type FolderIds = (path: string) => string[];

/** A folder of the config, by its key in the job at `index` (-1: a top-level key). */
type Folder = { key: string; index: number; path: string };

/**
 * The real paths of the folders the checks compare (each made absolute, the
 * links of the part of it that exists resolved: a folder may not exist yet),
 * looked up on the runtime's thread pool, so that one on a share that stopped
 * answering is given {@linkcode SHARE_ANSWER_MS} and then compared as written
 * (`silent`), instead of holding the start (or `config validate`) for good.
 */
async function realFolders(config: Config): Promise<
  { paths: Map<string, string>; files: Map<string, FileOnPath>; silent: Folder[]; ids: Ids }
> {
  const folders: Folder[] = [{ key: "state_dir", index: -1, path: config.state_dir }];
  if (config.log_file !== "") folders.push({ key: "log_file", index: -1, path: config.log_file });
  for (const [index, job] of config.jobs.entries()) {
    folders.push({ key: "watch_path", index, path: job.watch_path });
    const base = job.transfer_method === "local" ? job.remote_base_path : null;
    const archive = job.after_transfer === "move" ? job.archive_path : null;
    if (base !== null) folders.push({ key: "remote_base_path", index, path: base });
    if (archive !== null) folders.push({ key: "archive_path", index, path: archive });
  }
  const found = await Promise.all(folders.map((f) => answerWithin(realPathSoFar(f.path))));
  const paths = new Map<string, string>();
  const files = new Map<string, FileOnPath>();
  const silent: Folder[] = [];
  for (const [i, folder] of folders.entries()) {
    const answer = found[i];
    if (answer !== null) paths.set(folder.path, answer.real);
    if (answer?.file) files.set(folder.path, answer.file);
    else if (answer === null && !silent.some((s) => s.path === folder.path)) silent.push(folder);
  }
  const ids: Ids = new Map();
  for (const { key, path } of folders) {
    const real = paths.get(path);
    if (real !== undefined && (key === "watch_path" || key === "archive_path")) {
      ids.set(path, await folderIds(real));
    }
  }
  return { paths, files, silent, ids };
}

type Ids = Map<string, string[]>;

/** See {@linkcode FolderIds}: the folder at the real path `real` (none where it is not one). */
async function folderIds(real: string): Promise<string[]> {
  const ids: string[] = [];
  for (let at = real;; at = dirname(at)) {
    const info = await answerWithin(Deno.stat(at)).catch(() => null);
    if (info === null || info.ino === null || (at === real && !info.isDirectory)) return ids;
    ids.push(`${info.dev}:${info.ino}`);
    if (dirname(at) === at) return ids;
  }
}

/** Where a file stands on a folder's path: the path itself, or a folder above it. */
type FileOnPath = "itself" | "above";

/** See {@linkcode RealPath}; and whether a file stands on the path (see {@linkcode FileOnPath}). */
async function realPathSoFar(path: string): Promise<{ real: string; file?: FileOnPath }> {
  const missing: string[] = [];
  let existing = resolve(path);
  for (;;) {
    try {
      const real = await Deno.realPath(existing);
      const isFile = !(await Deno.stat(real)).isDirectory;
      const file = isFile ? (missing.length === 0 ? "itself" : "above") : undefined;
      return { real: join(real, ...missing), file };
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return { real: resolve(path) };
      missing.unshift(basename(existing));
      existing = parent;
    }
  }
}
