/**
 * A first run without a config file: `run --watch DIR --to DEST`. DEST is `[user@]host:/path`
 * (scp, or rsync with `--method rsync`), `ftp://[user@]host[:port]/path` (plain FTP),
 * `ftps://...` (FTP with TLS), or a local folder. Every other key keeps its default;
 * `--save-config FILE` writes the equivalent config file.
 *
 * @module
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import { stringify } from "yaml";
import { parseConfig } from "../config/load.ts";
import { expandPath, isDefaultConfigPath, otherOsPathProblem } from "../config/paths.ts";
import { LOCAL_PATH_KEYS } from "../config/resolve.ts";
import { COMMAND_LINE_CONFIG, type Config } from "../config/types.ts";
import { ignoredByMethod } from "../config/method_keys.ts";
import { portBeforeFolder } from "../config/job_rules.ts";
import { homelessOptionsProblem, IN_THE_OPTIONS, optionOfKey } from "../config/key_lines.ts";
import { TOP_LEVEL_KEYS } from "../config/schema.ts";
import { ConfigError, UsageError, WatchFolderError } from "../errors.ts";
import { answerWithin } from "../config/file_systems.ts";
import { pastedWord } from "../shell_words.ts";
import { checkBeforeStart } from "../pipeline/start_checks.ts";
import { parseSet } from "./options.ts";

/** The command-line options that describe a config-free run. */
export interface QuickStartOptions {
  watch?: string;
  to?: string;
  method?: string;
  ftpPasswordFile?: string;
  ftpPasswordEnv?: string;
  /** `KEY=VALUE` pairs (VALUE read as YAML) for any other key. */
  set?: string[];
  saveConfig?: string;
  force?: boolean;
}

/** What a config-free run uses: the config, and its text as a file would hold it. */
export interface QuickStart {
  config: Config;
  text: string;
}

/**
 * Add the options that describe a config-free run (`--watch`, `--to`, `--method`,
 * `--ftp-password-*`, `--set`) to `command` (`run`, `doctor`).
 */
export function addQuickStartOptions(command: Command): Command {
  return command
    .option("--watch <dir>", "without a config file: the folder to watch (needs --to)")
    .option(
      "--to <dest>",
      "without a config file: user@host:/path, ftp://user@host/path, ftps://user@host/path or a folder",
    )
    .option("--method <method>", "with --to user@host:/path: scp (default) or rsync")
    .option("--ftp-password-file <file>", "with --to ftp(s)://: file holding the password")
    .option("--ftp-password-env <name>", "with --to ftp(s)://: variable holding the password")
    .option(
      "--set <key=value>",
      "with --to: any other config key (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    );
}

/** `error`, where it says the default config file does not exist, with how `command` goes on. */
export function withoutConfigHint(error: unknown, command: string): unknown {
  const missing = error instanceof ConfigError && error.cause instanceof Deno.errors.NotFound &&
    isDefaultConfigPath(error.file ?? "");
  if (!missing) return error;
  const hint = `or, without a config file: \`image-transfer ${command} --watch DIR --to DEST\``;
  return new ConfigError(`${error.message}; ${hint}`, { file: error.file, cause: error.cause });
}

/** Whether the options ask for a config-free run. */
export function wantsQuickStart(options: QuickStartOptions): boolean {
  return options.watch !== undefined || options.to !== undefined;
}

/**
 * The config a config-free run uses, validated like a file.
 *
 * @throws {UsageError} when `--watch`, `--to` or `--method` are missing or do not fit
 * @throws {ConfigError} when the resulting config is wrong (e.g. a bad `--set`)
 */
export function quickStartConfig(options: QuickStartOptions): QuickStart {
  if (options.watch === undefined || options.to === undefined) {
    throw new UsageError(
      "a run without a config file needs both --watch DIR and --to DEST " +
        "(DEST: user@host:/path, ftp://user@host/path, ftps://user@host/path or a local folder)",
    );
  }
  // Else "" would stand for the current folder (and a file be said to be a folder).
  const typed = [options.watch, options.to, options.ftpPasswordFile, options.saveConfig];
  ["--watch", "--to", "--ftp-password-file", "--save-config"].forEach((option, i) => {
    const what = i < 2 ? "a folder" : "a file";
    if (typed[i]?.trim() === "") throw new UsageError(`${option} is empty: give it ${what}`);
  });
  const watchProblem = otherOsPathProblem(options.watch);
  if (watchProblem !== null) throw new UsageError(`--watch: ${watchProblem}`);
  const keys: Record<string, unknown> = {
    watch_path: resolve(expandPath(options.watch)),
    ...destinationKeys(options.to, options.method),
  };
  const fromOptions = Object.keys(keys);
  if (options.ftpPasswordFile !== undefined) {
    keys.ftp_password_file = resolve(expandPath(options.ftpPasswordFile));
  }
  if (options.ftpPasswordEnv !== undefined) keys.ftp_password_env = options.ftpPasswordEnv;
  for (const pair of options.set ?? []) {
    const [key, value] = parseSet(pair);
    if (fromOptions.includes(key)) {
      throw new UsageError(
        `--set ${key}=\u2026 would overrule ${key === "watch_path" ? "--watch" : "--to"}: ` +
          `give it there (${whereToGive(key, options.to)})`,
      );
    }
    // A key the method of --to does not use would do nothing, as --ftp-password-* would.
    const ignored = ignoredByMethod(key, value, String(keys.transfer_method));
    if (ignored !== null) {
      // rsync_options with scp: most likely meant for rsync, which --method chooses.
      const rsync = key === "rsync_options" && keys.transfer_method === "scp";
      throw new UsageError(
        `--set ${key}=\u2026 would be ignored: ${ignored}, and --to ${options.to} sends by ` +
          `${keys.transfer_method}: ${
            rsync ? "give --method rsync to send by rsync, or " : ""
          }leave it out`,
      );
    }
    // Typed relative to here: made absolute, so a saved config reads them as meant.
    const local = (LOCAL_PATH_KEYS as readonly string[]).includes(key) &&
      typeof value === "string" && value !== "";
    keys[key] = local ? expandPath(value) : value;
  }
  checkFtpPassword(options, keys);
  const homeless = homelessOptionsProblem(keys);
  if (homeless !== null) throw new ConfigError(homeless);
  const text =
    `# Written by image-transfer run --save-config; every key not here has its default.\n${
      stringify(keys, { lineWidth: 0 })
    }`;
  const file = options.saveConfig === undefined
    ? COMMAND_LINE_CONFIG
    : resolve(expandPath(options.saveConfig));
  try {
    return { config: parseConfig(text, file), text };
  } catch (error) {
    throw error instanceof ConfigError ? aboutTheOptions(error, file) : error;
  }
}

/**
 * The password an FTP login that `--to` names needs, asked for in the words of the options (the
 * config's own rule, `config/job_rules.ts`, speaks of keys nobody typed here).
 *
 * @throws {UsageError} when a login has no password option, or both, or one is given for a
 * destination that is not FTP
 */
function checkFtpPassword(options: QuickStartOptions, keys: Record<string, unknown>): void {
  if (options.ftpPasswordFile !== undefined && options.ftpPasswordEnv !== undefined) {
    throw new UsageError("give either --ftp-password-file or --ftp-password-env, not both");
  }
  const option = options.ftpPasswordFile !== undefined
    ? "--ftp-password-file"
    : (options.ftpPasswordEnv !== undefined ? "--ftp-password-env" : null);
  if (option !== null && keys.transfer_method !== "ftp") {
    throw new UsageError(
      `${option} is for an FTP --to (ftp://user@host/path or ftps://user@host/path); ` +
        `--to ${options.to} ${
          keys.transfer_method === "local" ? "is a local folder" : "logs in over SSH"
        }: leave it out`,
    );
  }
  const user = keys.remote_user; // A password key may come from the options or from --set.
  if (
    keys.transfer_method === "ftp" && typeof user === "string" && user !== "anonymous" &&
    !("ftp_password_file" in keys) && !("ftp_password_env" in keys)
  ) {
    throw new UsageError(
      `--to ${options.to} logs in as ${user}, who needs a password: give --ftp-password-file ` +
        "FILE (a file holding it) or --ftp-password-env NAME (a variable holding it)",
    );
  }
}

/**
 * Check a config made from the options as `run` does before it starts, each problem said of the
 * options (see {@linkcode quickStartConfig}).
 *
 * @throws {ConfigError} naming every problem
 */
export async function checkQuickStart(config: Config): Promise<void> {
  try {
    await checkBeforeStart(config);
  } catch (error) {
    throw error instanceof ConfigError ? aboutTheOptions(error, config.file) : error;
  }
}

/**
 * The folder `--watch` gave (`typed`, at `path` as the config has it), which `run --once` and
 * `--dry-run` cannot wait for: one that does not exist is said of the option typed, not of a key
 * the user never wrote. A file there, no permission, a share that does not answer: said by the
 * checks before the start (see {@linkcode checkQuickStart}) and the watch.
 *
 * @throws {WatchFolderError} naming --watch as typed and the folder it means
 */
export async function checkWatchOption(typed: string, path: string): Promise<void> {
  try {
    await answerWithin(Deno.stat(path));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return;
    throw new WatchFolderError(
      `Cannot watch ${path} (--watch ${pastedWord(typed)}): the folder does not exist; ` +
        "create it, or give --watch the folder your instrument writes into",
      { cause: error },
    );
  }
}

/**
 * A config error as the options' own: the file and lines it names are those of the generated
 * text (which may never be written), not anything typed.
 */
function aboutTheOptions(error: ConfigError, file: string): ConfigError {
  const lines = error.message.split("\n").map((line) => {
    // Said of the file, or of the options already (`jobKeyPlace`): each key as its option.
    const at = [file, IN_THE_OPTIONS].find((start) => line.startsWith(start));
    return at === undefined
      ? line
      : `${IN_THE_OPTIONS}: ${
        line.slice(at.length).replace(/^(:\d+)?: /, "")
          .replace(
            /^(\w+)(?:\[\d+\])?(?: of job \S+)?: /,
            (said, key: string) => TOP_LEVEL_KEYS.includes(key) ? `${optionOfKey(key)}: ` : said,
          )
          .replace(/\bits watch_path\b/g, "--watch")
          .replace(
            /\bexclude_patterns: (\["(?:[^"\\]|\\.)*"\])/g,
            (_, list: string) => `--set ${pastedWord(`exclude_patterns=${list}`)}`,
          )
      }`;
  });
  return new ConfigError(lines.join("\n"), { cause: error });
}

/**
 * Write `text` to `file` (mode 0644), refusing to replace an existing file unless `force`.
 *
 * @throws {UsageError} when the file exists and `force` is not given
 */
export async function saveQuickConfig(file: string, text: string, force: boolean): Promise<void> {
  const path = expandPath(file);
  const { prepareConfigFile, unwritableConfig } = await import("./config.ts");
  await prepareConfigFile(path, "--save-config");
  try {
    await Deno.writeTextFile(path, text, { createNew: !force, mode: 0o644 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(`${path} exists; add --force to replace it`);
    }
    throw unwritableConfig(path, error, "--save-config");
  }
  // The mode given at creation is reduced by the umask, and an existing file keeps its own.
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o644);
}

/** How the options give `key`, which `--watch` or `--to` (of the form of `to`) set. */
function whereToGive(key: string, to: string): string {
  const ftp = /^ftps?:\/\//i.test(to);
  if (key === "watch_path") return "--watch DIR";
  if (key === "ftp_tls") {
    return "--to ftp://user@host/path is plain FTP, ftps://user@host/path FTPS";
  }
  if (key === "ftp_port") return "--to ftp://user@host:PORT/path";
  if (key === "transfer_method" && !ftp) {
    return "--method scp or --method rsync with --to user@host:/path; " +
      "ftp(s)://user@host/path for FTP, a folder for a local copy";
  }
  if (ftp) return "--to ftp://user@host/path, or ftps://";
  return key === "remote_base_path"
    ? "--to user@host:/path, or a local folder"
    : "--to user@host:/path";
}

/** The keys a `--to` destination stands for, read as on `os` (where `C:/x` is a drive or a host). */
export function destinationKeys(to: string, method?: string, os?: string): Record<string, unknown> {
  if (method !== undefined && !["scp", "rsync", "ftp", "local"].includes(method)) {
    throw new UsageError(
      `--method ${method} is not a method: give scp or rsync (an ftp:// or ftps:// --to, or a ` +
        "local folder, needs none)",
    );
  }
  const url = /^(ftps?):\/\//i.exec(to);
  if (url !== null) {
    if (method !== undefined && method !== "ftp") {
      throw new UsageError(`--method ${method} does not fit --to ${to} (an FTP address)`);
    }
    return ftpKeys(to, url[1].toLowerCase() === "ftps");
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to)?.[1];
  if (scheme !== undefined) {
    throw new UsageError(
      `--to ${to}: ${scheme}:// addresses are not understood; give user@host:/path (scp or ` +
        `rsync over SSH; another port: --set ssh_port=N${sshLike(to)}), ftp(s)://user@host/path, ` +
        "or a local folder",
    );
  }
  if (/^[@:]|^[^@/\\]*@:/.test(to)) {
    throw new UsageError(
      `--to ${to}: not a destination; a remote one is user@host:/path, e.g. ` +
        "observer@archive.example.org:/data/incoming",
    );
  }
  if (/^[^@/\\]+@[^@/\\:]+$/.test(to)) {
    throw new UsageError(
      `--to ${to}: a login without a path; for a remote destination add ":" and the path ` +
        `(${to}:/data/incoming), for a local folder of that name write ./${to}`,
    );
  }
  // A login and a host, then a path without the colon: never a local folder by mistake.
  const noColon = /^([^@/\\:]+@[^@/\\:]+)([/\\].*)$/.exec(to);
  if (noColon !== null) {
    throw new UsageError(
      `--to ${to}: a login and a host without ":" before the path; for a remote destination ` +
        `write ${noColon[1]}:${noColon[2]}, for a local folder of that name ./${to}`,
    );
  }
  const found = /^(?:([^@/:]+)@)?(\[[0-9A-Fa-f:.]+\]|[^/:\\]+):(.*)$/.exec(to);
  // C:/x is a drive on Windows (a one-letter host takes a login there), elsewhere scp's host C.
  const drive = found !== null && !found[1] && /^[A-Za-z]$/.test(found[2]) &&
    ((os ?? Deno.build.os) === "windows" || /^\\/.test(found[3])); // C:\x: Windows all the same
  const remote = drive ? null : found;
  if (remote !== null) {
    if (remote[3].startsWith(":")) {
      throw new UsageError(
        `--to ${to}: host::module is rsync's own daemon protocol, which is not used here; give ` +
          "user@host:/path (rsync or scp over SSH)",
      );
    }
    if (remote[3].trim() === "") {
      throw new UsageError(
        `--to ${to} has no folder after the colon; give the folder on the server ` +
          `(${to}/data/incoming, or ${to}. for the login's home folder)`,
      );
    }
    const chosen = method ?? "scp";
    if (chosen !== "scp" && chosen !== "rsync") {
      throw new UsageError(`--method ${chosen} does not fit --to ${to}; use scp or rsync`);
    }
    const [, user, host, path] = remote;
    // "ftp:/host/x": an address with a slash missing, not scp to a host named ftp.
    const word = user ? undefined : /^(ftps?|sftp|ssh|scp|rsync|https?|file)$/i.exec(host)?.[1];
    if (word !== undefined) {
      throw new UsageError(
        `--to ${to}: read as scp to a host named "${word}"; an address takes two slashes ` +
          `(${word}://host/path), scp to a host of that name its login (user@${word}:${path})`,
      );
    }
    const portFirst = portBeforeFolder(path);
    if (portFirst !== null) {
      const login = `${user ? `${user}@` : ""}${host}`;
      throw new UsageError(
        `--to ${to}: ${portFirst.port} is read as a folder, not a port; write --to ` +
          `${login}:${portFirst.folder ?? "/the/folder/on/the/server"} --set ` +
          `ssh_port=${portFirst.port} (for a folder of that name in the login's home, ` +
          `${login}:./${path})`,
      );
    }
    return {
      transfer_method: chosen,
      remote_host: host.replace(/^\[|\]$/g, ""),
      ...(user ? { remote_user: user } : {}),
      remote_base_path: path,
    };
  }
  if (method !== undefined && method !== "local") {
    throw new UsageError(
      method === "ftp"
        ? `--method ftp needs an FTP --to: ftp://user@host/path or ftps://user@host/path`
        : `--method ${method} needs a remote --to: user@host:/path`,
    );
  }
  const problem = otherOsPathProblem(to, os);
  if (problem !== null) throw new UsageError(`--to: ${problem}`);
  return { transfer_method: "local", remote_base_path: resolve(expandPath(to)) };
}

/** `to` written as `--to` takes it, where it is an SSH-like URL (`sftp://u@h:22/p`): ", i.e. ...". */
function sshLike(to: string): string {
  try {
    const url = new URL(to);
    if (!/^(sftp|ssh|scp|rsync):$/.test(url.protocol) || url.hostname === "") return "";
    const user = url.username === "" ? "" : `${decodeURIComponent(url.username)}@`;
    const port = url.port === "" ? "" : ` --set ssh_port=${url.port}`;
    return `; here: --to ${user}${url.hostname}:${decodeURIComponent(url.pathname) || "."}${port}`;
  } catch {
    return "";
  }
}

function ftpKeys(to: string, tls: boolean): Record<string, unknown> {
  let url: URL;
  try {
    url = new URL(to);
  } catch {
    throw new UsageError(`--to ${to}: not a valid address; expected ftp(s)://user@host/path`);
  }
  if (url.password !== "") {
    throw new UsageError(
      "--to: a password in the address would show in the process list and the log; " +
        "give --ftp-password-file FILE or --ftp-password-env NAME instead",
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw new UsageError(`--to ${to}: "?" and "#" are not part of an FTP path; encode them`);
  }
  // The address parser reads ftp:///path as the host "path", and ftp://host as the folder "/".
  if (/^ftps?:\/\/(\/|[^/]*@\/)/i.test(to)) {
    throw new UsageError(`--to ${to} has no host; give ftp(s)://user@host/path`);
  }
  if (/^ftps?:\/\/[^/]*$/i.test(to)) {
    throw new UsageError(
      `--to ${to} has no folder; give the folder on the server (${to}/incoming, or ${to}/ for ` +
        "its top folder)",
    );
  }
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new UsageError(
        `--to ${to}: a "%" that starts no %XX escape; write a % of the user or the folder as %25`,
      );
    }
  };
  const path = decode(url.pathname);
  return {
    transfer_method: "ftp",
    remote_host: url.hostname.replace(/^\[|\]$/g, ""),
    ...(url.username ? { remote_user: decode(url.username) } : {}),
    remote_base_path: path === "" ? "/" : path,
    ftp_tls: tls ? "required" : "off",
    ...(url.port ? { ftp_port: Number(url.port) } : {}),
  };
}
