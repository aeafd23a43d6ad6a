/**
 * Files that decide what the daemon runs must not be writable by anyone else,
 * as OpenSSH demands of its own: the config file (its `ssh_options` can hold
 * a `ProxyCommand`, run as the service user) and each job's SSH identity
 * file. The config file must also belong to root or to the account the daemon
 * runs as. POSIX modes and owners only; on Windows this check is skipped.
 *
 * @module
 */
import type { Config } from "./types.ts";
import { ConfigError } from "../errors.ts";
import { posixWord } from "../shell_words.ts";
import { jobKeyPlace } from "./key_lines.ts";

/** Group and others write bits. */
const WRITE_BY_OTHERS = 0o022;

/**
 * Refuse a config file that group or others can write, or that belongs to
 * someone other than root and `runsAs`.
 *
 * @param file the config file
 * @param runsAs user id of the account the daemon runs as (the current one unless told)
 * @throws {ConfigError} naming the file, its mode or owner and the command that fixes it
 */
export async function checkConfigFileMode(file: string, runsAs?: number | null): Promise<void> {
  const problem = await configFileProblem(file, runsAs);
  if (problem) throw new ConfigError(problem, { file });
}

/**
 * Why the config file at `file` cannot be trusted (see
 * {@linkcode checkConfigFileMode}), or `undefined` when it can be or is missing.
 */
export async function configFileProblem(
  file: string,
  runsAs: number | null = Deno.build.os === "windows" ? null : Deno.uid(),
): Promise<string | undefined> {
  const problem = await writableByOthers(file);
  if (problem) {
    return `${file}: refusing this config file: it is ${problem}, and whoever can change it can ` +
      `make the daemon run commands as this user (ssh_options: ProxyCommand); ` +
      `fix it with: chmod go-w ${posixWord(file)}`;
  }
  const owner = await ownerOf(file);
  if (!othersOwn(owner, runsAs)) return undefined;
  return `${file}: refusing this config file: ${ownedByAnother(owner!, runsAs!)}, and its owner ` +
    `can make the daemon run commands as that account (ssh_options: ProxyCommand); fix it with: ` +
    `sudo chown ${runsAs} ${posixWord(file)}, or run as its owner`;
}

/**
 * Whether `owner` (a user id) is another account's than root and `runsAs`, the account the daemon
 * runs as: the rule for every file or folder that decides what the daemon does or where it
 * writes (the config file, the programs it runs, its login files and token, its `state_dir` and
 * log folder). `false` where either is not known (`null`: Windows, or not told).
 */
export function othersOwn(
  owner: number | null | undefined,
  runsAs: number | null | undefined = Deno.build.os === "windows" ? null : Deno.uid(),
): boolean {
  return owner != null && runsAs != null && owner !== 0 && owner !== runsAs;
}

/** `it belongs to user id 1001, not to root or to the account the daemon runs as (user id 0)` */
export function ownedByAnother(owner: number, runsAs: number, it = "it"): string {
  return `${it} belongs to user id ${owner}, not to root or to the account the daemon runs as ` +
    `(user id ${runsAs})`;
}

/**
 * Refuse SSH identity files that group or others can write (folders and
 * missing files are left to the check of the login files).
 *
 * @throws {ConfigError} naming each file, its mode and the `chmod` that fixes it
 */
export async function checkIdentityFileModes(config: Config): Promise<void> {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [index, job] of config.jobs.entries()) {
    const key = job.ssh_identity_file;
    if (key === null || seen.has(key)) continue;
    seen.add(key);
    // A folder (a shared one others can write) is no key at all: the login files' check says so.
    if (!await Deno.stat(key).then((info) => info.isFile, () => false)) continue;
    const problem = await writableByOthers(key);
    if (problem) {
      // 600: ssh refuses a key others may read too (what go-w would leave).
      problems.push(
        `${jobKeyPlace(config, index, "ssh_identity_file")}: refusing ${key}: it is ${problem}, ` +
          `and whoever can change it decides which key the daemon logs in with; ` +
          `fix it with: chmod 600 ${posixWord(key)}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join("\n"), { file: config.file });
}

/** `writable by group or others (mode 0664)`, or `undefined` when it is not (or is missing). */
export async function writableByOthers(file: string): Promise<string | undefined> {
  if (Deno.build.os === "windows") return undefined; // ACLs, not modes
  let mode: number | null;
  try {
    mode = (await Deno.stat(file)).mode;
  } catch {
    return undefined; // Missing or unreadable: reported where it is used.
  }
  if (mode === null || (mode & WRITE_BY_OTHERS) === 0) return undefined;
  const who = (mode & 0o020) && (mode & 0o002)
    ? "group and others"
    : mode & 0o020
    ? "group"
    : "others";
  return `writable by ${who} (mode ${(mode & 0o7777).toString(8).padStart(4, "0")})`;
}

/** The user id owning `file` (`null` on Windows, or when it is missing). */
export async function ownerOf(file: string): Promise<number | null> {
  if (Deno.build.os === "windows") return null;
  try {
    return (await Deno.stat(file)).uid;
  } catch {
    return null; // Missing or unreadable: reported where it is used.
  }
}

/**
 * What to say of a file named by a key that holds a secret (`ftp_password_file`,
 * `status_token_file`) where no such file exists: not its name, which may be the password or
 * token itself typed where its file's path belongs (the message goes to the log file too).
 *
 * @param what what the file holds: "the password", "the token"
 * @param instead another way to give it, e.g. ", or its variable in ftp_password_env"
 */
export function missingSecretFile(what: string, instead = ""): string {
  return `the file it names does not exist (its name is not shown: it may be ${what} itself); ` +
    `give the path of a file that holds ${what}${instead}`;
}
