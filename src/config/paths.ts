/**
 * Where things live by default on each OS, and `~` / `%USERPROFILE%` expansion.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { pastedWord } from "../shell_words.ts";

/** The user's home folder (`HOME`, or `USERPROFILE` on Windows). */
export function homeDir(): string {
  const home = Deno.build.os === "windows"
    ? Deno.env.get("USERPROFILE") ?? Deno.env.get("HOME")
    : Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) throw new Error("Cannot find the home folder: neither HOME nor USERPROFILE is set");
  return home;
}

/**
 * Expand a leading `~` (or `~/`, `~\`) and `%USERPROFILE%` / `%NAME%` / `$HOME`
 * (`${HOME}`) references, then make the path absolute relative to `baseDir`.
 */
export function expandPath(path: string, baseDir = Deno.cwd()): string {
  let out = path;
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = homeDir() + out.slice(1);
  }
  out = out.replace(/%([A-Za-z_][A-Za-z0-9_]*)%/g, (whole, name: string) => {
    if (name.toUpperCase() === "USERPROFILE") return homeDir();
    return Deno.env.get(name) ?? whole;
  });
  out = out.replace(/^\$(HOME|\{HOME\})(?=$|[\\/])/, () => homeDir());
  // A Windows drive path (C:/data) or network path (\\server\share) is absolute on Windows;
  // keep it as written elsewhere.
  if (/^[A-Za-z]:[\\/]/.test(out) || UNC_PATH.test(out)) return out;
  return isAbsolute(out) ? out : resolve(baseDir, out);
}

/** A Windows network path: `\\server\share`. */
const UNC_PATH = /^\\\\[^\\]/;

/**
 * `text` in double quotes for a message, as the user wrote it: a backslash stays one
 * (`"C:\data"`, where JSON would show `"C:\\data"`). Text holding a quote or a control
 * character is written as JSON instead, its escapes then telling it apart.
 */
export function quotedAsWritten(text: string): string {
  // deno-lint-ignore no-control-regex
  return /["\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text)
    ? JSON.stringify(text)
    : `"${text}"`;
}

/**
 * Why `text` cannot be a path on this machine: a Windows drive path
 * (`C:/data`, `D:\archive`) or network path (`\\server\share`) on Linux or
 * macOS, where it would name a folder below the current one. `null` when it
 * can.
 */
export function otherOsPathProblem(text: string, os: string = Deno.build.os): string | null {
  if (os === "windows") return null;
  const system = os === "darwin" ? "macOS" : "Linux";
  if (UNC_PATH.test(text)) {
    return `${quotedAsWritten(text)} is a Windows network path, which ${system} does not have; ` +
      "mount the share and give the folder it is mounted on, e.g. /mnt/archive";
  }
  if (!/^[A-Za-z]:([\\/]|$)/.test(text)) return null;
  return `${quotedAsWritten(text)} is a Windows path (drive ${text[0].toUpperCase()}:), ` +
    `which ${system} does not have; give this machine's path, e.g. /data/images or ~/data/images`;
}

/**
 * Why the expanded `path` still holds a `%NAME%`: a variable this environment does not set, kept
 * as written (a service gets only the variables its service file gives). `null` when it holds none.
 */
export function unsetVariableProblem(path: string): string | null {
  const name = /%([A-Za-z_][A-Za-z0-9_]*)%/.exec(path)?.[1];
  if (name === undefined) return null;
  return `%${name}% is not set in this environment, so the path would hold it as written ` +
    `(${quotedAsWritten(path)}); set it where the daemon runs, or write the folder itself`;
}

/** The folder name the program's files go in, under each OS's usual place. */
const APP_FOLDER = "image-transfer";

/** Default ledger folder on Linux and macOS, as a user writes it (docs, `init`). */
export const DEFAULT_STATE_DIR = `~/.local/state/${APP_FOLDER}`;
/** Default log file, as a user writes it (docs, `init`): the old tool's location. */
export const DEFAULT_LOG_FILE = "~/logs/image_transfer.log";

/** Default config file, as a user writes it (`--help`, messages). */
const DEFAULT_CONFIG_FILE = `~/.config/${APP_FOLDER}/config.yaml`;

/** Default config file: {@linkcode DEFAULT_CONFIG_FILE} (same under `%USERPROFILE%`). */
function defaultConfigPath(): string {
  return underHome(DEFAULT_CONFIG_FILE);
}

/** Whether `file` is the default config file (never, where the home folder cannot be found). */
export function isDefaultConfigPath(file: string): boolean {
  try {
    return file === defaultConfigPath();
  } catch {
    return false;
  }
}

/**
 * The first of `folder` and the folders above it that is there as something else than a folder
 * (a file in the way of a path below it), or `null`.
 */
export function fileInPlaceOfFolder(folder: string): string | null {
  for (let path = folder; dirname(path) !== path; path = dirname(path)) {
    try {
      return Deno.statSync(path).isDirectory ? null : path;
    } catch {
      // Not there: look above.
    }
  }
  return null;
}

/**
 * The command line that runs `command` (`init`, `config validate`) on the config `file`, to paste:
 * `-c` left out for the default file.
 *
 * @param os the system the command is for (this one unless told), where `file` is written as that
 *   system's ({@linkcode writtenDefaultConfig})
 */
export function configCommand(file: string, command: string, os = Deno.build.os): string {
  const usual = os === Deno.build.os
    ? isDefaultConfigPath(file)
    : file === writtenDefaultConfig(os);
  return usual
    ? `image-transfer ${command}`
    : `image-transfer -c ${pastedWord(file, os)} ${command}`;
}

/**
 * The default config file of `os` as a user of it writes it (another machine's home is not known
 * here): `~/.config/image-transfer/config.yaml`, on Windows under `%USERPROFILE%`, each expanded by
 * the program itself.
 */
function writtenDefaultConfig(os: typeof Deno.build.os): string {
  return os === "windows"
    ? `%USERPROFILE%\\${DEFAULT_CONFIG_FILE.slice("~/".length).replaceAll("/", "\\")}`
    : DEFAULT_CONFIG_FILE;
}

/**
 * Default ledger folder: {@linkcode DEFAULT_STATE_DIR}, or
 * `$XDG_STATE_HOME/image-transfer` when that is set, or
 * `%LOCALAPPDATA%\image-transfer` on Windows.
 */
export function defaultStateDir(): string {
  if (Deno.build.os === "windows") {
    const local = Deno.env.get("LOCALAPPDATA");
    if (local) return join(local, APP_FOLDER);
  }
  const xdg = Deno.env.get("XDG_STATE_HOME");
  if (xdg && isAbsolute(xdg)) return join(xdg, APP_FOLDER);
  return underHome(DEFAULT_STATE_DIR);
}

/** Default log file: {@linkcode DEFAULT_LOG_FILE} in the home folder. */
export function defaultLogFile(): string {
  return underHome(DEFAULT_LOG_FILE);
}

/**
 * The keys of {@linkcode defaultStateDir} and {@linkcode defaultLogFile} that `given` (the keys
 * written) leaves to a default in a home folder that cannot be found (no `HOME`): none where it
 * can be, nor `state_dir` where `XDG_STATE_HOME` (`%LOCALAPPDATA%`) says where it goes.
 */
export function defaultsWithoutHome(given: object): ("state_dir" | "log_file")[] {
  const defaults = { state_dir: defaultStateDir, log_file: defaultLogFile };
  return (["state_dir", "log_file"] as const).filter((key) => {
    if (key in given) return false;
    try {
      defaults[key]();
      return false;
    } catch {
      return true;
    }
  });
}

/** A `~/a/b` path in the home folder, with this OS's separators. */
function underHome(written: string): string {
  return join(homeDir(), ...written.slice("~/".length).split("/"));
}

/**
 * Create the daemon's private runtime folder (mode 700) for SSH control
 * sockets. It goes to the runtime folder the service manager provides
 * (`$RUNTIME_DIRECTORY` from systemd's `RuntimeDirectory=`, or the login's
 * `$XDG_RUNTIME_DIR`), which is cleaned at shutdown or logout; else the
 * system temp folder. `env`: where those variables are read (default: the environment).
 */
export async function makeRuntimeDir(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<string> {
  const candidates = [env("RUNTIME_DIRECTORY"), env("XDG_RUNTIME_DIR")];
  for (const dir of candidates) {
    if (!dir || !isAbsolute(dir)) continue;
    try {
      return await Deno.makeTempDir({ dir, prefix: "itx-" });
    } catch {
      // Not there or not writable: try the next one.
    }
  }
  return await Deno.makeTempDir({ prefix: "itx-" });
}

/**
 * The config file to use: `-c` if given (with `~` expanded, made absolute),
 * else the default location.
 *
 * @param os the system the file is for (this one unless told): on another one
 *   (`install-service --print --os`), `option` as typed, else its default as its user writes it
 *   ({@linkcode writtenDefaultConfig})
 * @throws {ConfigError} when that path is in a home folder that cannot be found (no HOME)
 */
export function resolveConfigPath(option?: string, os = Deno.build.os): string {
  if (os !== Deno.build.os) return option ?? writtenDefaultConfig(os);
  try {
    return option ? expandPath(option) : defaultConfigPath();
  } catch (error) {
    // Only a path in the home folder can throw: a service or `env -i` without HOME.
    throw new ConfigError(
      `The config file ${option ?? DEFAULT_CONFIG_FILE} is in the home folder, which cannot be ` +
        "found (neither HOME nor USERPROFILE is set): set HOME, or give the config file's full " +
        "path with -c FILE",
      { cause: error },
    );
  }
}

/**
 * The text of `file` where it is a regular file that can be read (through links), else `null`:
 * a named pipe or a device given as the config is never read, as reading one could wait forever.
 */
export async function regularFileText(file: string): Promise<string | null> {
  try {
    if (!(await Deno.stat(file)).isFile) return null;
    return await Deno.readTextFile(file);
  } catch {
    return null;
  }
}

/**
 * Whether anything is at `path` (with `follow` false, a link itself, whatever it points to).
 *
 * @throws what the system said, other than that nothing is there
 */
export async function pathExists(path: string, follow = true): Promise<boolean> {
  try {
    await (follow ? Deno.stat(path) : Deno.lstat(path));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
