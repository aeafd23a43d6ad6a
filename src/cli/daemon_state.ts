/**
 * Finding the daemon for `status` and `stop`: the config that names its state folder (a config
 * file, or the options of a run without one), and whether a daemon runs there, read from the
 * state folder's lock and PID file.
 *
 * @module
 */
import { Command, Option } from "commander";
import { dirname, join, resolve } from "node:path";
import { isMap, parseDocument } from "yaml";
import { type DaemonState, type JobPause, PID_FILE, probeDaemon } from "../ledger/daemon_lock.ts";
import { daemonStillRuns } from "../process/live_daemon.ts";
import { loadConfig } from "../config/load.ts";
import {
  configCommand,
  defaultStateDir,
  defaultsWithoutHome,
  expandPath,
  regularFileText,
  resolveConfigPath,
} from "../config/paths.ts";
import { LOCAL_PATH_KEYS, resolveDaemon } from "../config/resolve.ts";
import { daemonSchema, daemonShape } from "../config/schema.ts";
import { COMMAND_LINE_CONFIG, type Config } from "../config/types.ts";
import { ConfigError, UsageError } from "../errors.ts";
import { describeIssue } from "../config/messages.ts";
import { IN_THE_OPTIONS, type Path } from "../config/key_lines.ts";
import { keyProblem } from "../config/jobs.ts";
import { escapeControlChars, quoteIfUnsafe } from "../log/logging.ts";
import type { LogFileLoss } from "../log/file_sink.ts";
import { formatBytes } from "../config/sizes.ts";
import { pastedWord } from "../shell_words.ts";
import { parseSet } from "./options.ts";
import {
  addQuickStartOptions,
  destinationKeys,
  quickStartConfig,
  type QuickStartOptions,
  wantsQuickStart,
} from "./quick_start.ts";

/** The options of a run without a config file, by which `status` and `stop` find it. */
export type FindOptions = QuickStartOptions;

/**
 * Add to `command` (`status`, `stop`) the options of a run without a config file that find it:
 * its `--set state_dir=DIR`, or all its `--watch`, `--to` and `--set` options as typed.
 */
export function addFindOptions(command: Command): Command {
  for (const option of addQuickStartOptions(new Command()).options) {
    if (option.long !== "--set") command.addOption(option.hideHelp());
  }
  return command.addOption(
    new Option(
      "--set <key=value>",
      "a run without a config file given --set state_dir=DIR: that DIR (its --watch, --to and " +
        "--set as typed are taken too)",
    ).argParser((value: string, previous: string[] = []) => [...previous, value]),
  );
}

/**
 * The config `status` and `stop` read: the file `-c` names or the default one; the options of a
 * run without a config file (`find`); without any, and without a default file, the default daemon
 * settings and no jobs: the ledger names them.
 *
 * @throws {UsageError} for `-c` with the options of a run without a config file, or a wrong one
 */
export async function statusConfig(
  option: string | undefined,
  find: FindOptions = {},
): Promise<Config> {
  if (wantsQuickStart(find) || find.set !== undefined) {
    if (option !== undefined) {
      throw new UsageError("give either --config or the --watch/--to/--set of a run without one");
    }
    return wantsQuickStart(find) ? quickStartConfig(find).config : daemonOfSets(find.set ?? []);
  }
  const file = resolveConfigPath(option);
  if (option === undefined && (await Deno.stat(file).catch(() => null)) === null) {
    return { file, ...resolveDaemon(daemonSchema.parse({}), Deno.cwd()), jobs: [] };
  }
  return await loadConfig(file);
}

/**
 * Keys no run without a config file takes from `--set`: a config file's `jobs`, and those `--watch`
 * and `--to` give (run refuses them). Given to `status`, `stop` or `restart` they would find
 * nothing: refused, as a typo is, else the default state folder would be looked in without a word.
 */
const NOT_OF_A_RUN = [
  "jobs",
  "watch_path",
  "transfer_method",
  "remote_host",
  "remote_base_path",
  "ftp_tls",
];

/**
 * The daemon's keys among `--set`s (`state_dir`...; a job's keys are the run's own): its config,
 * with the `status_listen` the running daemon says its page listens at ("" for none) where they
 * give none, and no log file where the default one is in a home folder that cannot be found.
 *
 * @throws {ConfigError} for a key that is neither (a typo), or that no run without a config file
 * takes (`jobs`; see {@linkcode NOT_OF_A_RUN}), in run's words: else the default state folder would
 * be looked in, without a word
 */
function daemonOfSets(sets: string[]): Config {
  const keys: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const pair of sets) {
    const [key, value] = parseSet(pair);
    const problem = keyProblem(key, value) ?? notOfARun(key);
    if (problem !== null) unknown.push(`${IN_THE_OPTIONS}: ${problem}`);
    else if (key in daemonShape) keys[key] = value;
  }
  if (unknown.length > 0) throw new ConfigError(unknown.join("\n"));
  // No home folder: status and stop write no log file, and the run's state folder is its own.
  const homeless = defaultsWithoutHome(keys);
  if (homeless.includes("state_dir")) {
    throw new ConfigError(
      `${IN_THE_OPTIONS}: a run without a config file is found in its state folder, here the ` +
        "default one, in the home folder, which cannot be found (neither HOME nor USERPROFILE " +
        "is set): set HOME, or give the run's --set state_dir=DIR",
    );
  }
  if (homeless.includes("log_file")) keys.log_file = "";
  const parsed = daemonSchema.safeParse(keys);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const said = describeIssue(issue, issue.path as Path, keys[String(issue.path[0])]);
    throw new UsageError(`--set ${String(issue.path[0])}=\u2026: ${said}`);
  }
  const daemon = resolveDaemon(parsed.data, Deno.cwd());
  // The run's page is where the run says it listens, if it does: the default address, or one
  // typed here, may be another program's (its own was taken, or the run was given another).
  if (!givesStatusListen(sets)) {
    daemon.status_listen = daemonStatus(daemon.state_dir).statusListen ?? "";
  }
  return { file: COMMAND_LINE_CONFIG, ...daemon, jobs: [] };
}

/** Whether `sets` (the `--set`s of `status` or `stop`, checked) give `status_listen`. */
function givesStatusListen(sets: string[]): boolean {
  return sets.some((pair) => parseSet(pair)[0] === "status_listen");
}

/** Why `--set key=...` can find no run without a config file; `null` where one may take it. */
function notOfARun(key: string): string | null {
  if (!NOT_OF_A_RUN.includes(key)) return null;
  const given = key === "jobs"
    ? "a config file's list of jobs, which a run without one has not (its one job is its --watch " +
      "and --to)"
    : `given to a run without a config file by ${key === "watch_path" ? "--watch" : "--to"}, ` +
      "never by --set";
  return `--set ${key}=\u2026 is ${given}: such a run is found by its --set state_dir=DIR (or by ` +
    "all its --watch, --to and --set); leave it out";
}

/**
 * `command` (`status`, `stop`) as it finds the daemon of `config`: for a run without a config file
 * with another state folder than the default, with its `--set state_dir=DIR`; for a config file,
 * with its `-c` where it is not the default one.
 */
export function findCommand(config: Config, command: string): string {
  if (config.file !== COMMAND_LINE_CONFIG) return configCommand(config.file, command);
  return `image-transfer ${command}` +
    (config.state_dir === usualStateDir()
      ? ""
      : ` --set ${pastedWord(`state_dir=${config.state_dir}`)}`);
}

/** The default state folder, as a run resolves it; `null` in a home folder not to be found. */
function usualStateDir(): string | null {
  try {
    return resolve(defaultStateDir());
  } catch {
    return null; // No HOME: every run without a config file was given its own (see quick_start).
  }
}

/**
 * `command` given a run's options without a config file, its paths made absolute as the run took
 * them (`--watch`, a folder `--to`, `--ftp-password-file`, a `--set` of a local path), to paste in
 * any folder: with `status`, what finds its daemon and, unlike `--set state_dir=DIR` alone, its
 * job, and so lists what its patterns leave out; with `run`, what starts it again.
 */
export function withRunOptions(command: string, options: QuickStartOptions): string {
  const to = options.to === undefined ? {} : destinationKeys(options.to, options.method);
  const typed: [string, string | undefined][] = [
    ["--watch", options.watch === undefined ? undefined : resolve(expandPath(options.watch))],
    ["--to", to.transfer_method === "local" ? String(to.remote_base_path) : options.to],
    ["--method", options.method],
    [
      "--ftp-password-file",
      options.ftpPasswordFile && resolve(expandPath(options.ftpPasswordFile)),
    ],
    ["--ftp-password-env", options.ftpPasswordEnv],
    ...(options.set ?? []).map((pair): [string, string] => {
      const [key, value] = parseSet(pair); // Checked by the run: a KEY=VALUE.
      const path = (LOCAL_PATH_KEYS as readonly string[]).includes(key) &&
        typeof value === "string" && value !== "";
      return ["--set", path ? `${key}=${expandPath(value)}` : pair];
    }),
  ];
  return `image-transfer ${command}` + typed.filter(([, value]) => value !== undefined)
    .map(([option, value]) => ` ${option} ${pastedWord(value!)}`).join("");
}

/**
 * For `command` (`status`, `stop`) run without a config file or options (only the default state
 * folder is looked in): how a daemon started with another config file, or a run without a config
 * file that was given another state folder, is found.
 */
export function otherStateDirHint(command: string): string {
  return `a daemon started with a config file is found with \`image-transfer -c FILE ${command}\`, ` +
    `a run without one given --set state_dir=DIR with \`image-transfer ${command} --set ` +
    "state_dir=DIR\`";
}

/**
 * {@linkcode statusConfig}, or, for a file that cannot be loaded (an edit the running daemon
 * refused to reload), its `state_dir` alone (where its YAML gives a usable one, else the default)
 * and no jobs, with the reason: enough to find the daemon and its ledger (its `status_listen`
 * where the running daemon says its page listens, "" for none: the file's may say none, as its
 * page may be off). `pageOfDaemon`: for a run found by its `--set state_dir=DIR` alone, whose own
 * `status_listen` is not known here, its `status_listen` is only where the run says its page
 * listens ("" where it says none).
 */
export async function daemonConfig(
  option: string | undefined,
  find: FindOptions = {},
): Promise<{ config: Config; problem: ConfigError | null; pageOfDaemon: boolean }> {
  // A run without a config file: its options are checked as run checks them, no file read.
  if (wantsQuickStart(find) || find.set !== undefined) {
    const config = await statusConfig(option, find);
    const pageOfDaemon = !wantsQuickStart(find) && !givesStatusListen(find.set ?? []);
    return { config, problem: null, pageOfDaemon };
  }
  try {
    return { config: await statusConfig(option), problem: null, pageOfDaemon: false };
  } catch (problem) {
    if (!(problem instanceof ConfigError)) throw problem;
    const file = resolveConfigPath(option);
    // Not a named pipe or a device (which the loader refused): reading one may never end.
    const text = await regularFileText(file);
    // A file named by -c that cannot be read (a typo): the default state_dir is another daemon's,
    // unless the daemon there says it runs with this file (moved away since, or a folder now).
    if (text === null && option !== undefined) {
      return { ...await daemonOfMissingFile(file, problem), pageOfDaemon: false };
    }
    // Read as far as it goes (a duplicate key, a bracket left open): its state_dir, if it says one.
    const doc = parseDocument(text ?? "", { logLevel: "silent", uniqueKeys: false });
    const stateDir = isMap(doc.contents) ? doc.get("state_dir") : undefined;
    let keys: ReturnType<typeof daemonSchema.safeParse>;
    try {
      keys = daemonSchema.safeParse(typeof stateDir === "string" ? { state_dir: stateDir } : {});
    } catch {
      // A default in a home folder that cannot be found (no HOME): the loader's error says so.
      throw problem;
    }
    // A state_dir it names but that cannot be read: the default would be another daemon's.
    if (!keys.success || (typeof stateDir !== "string" && /^state_dir\s*:/m.test(text ?? ""))) {
      throw problem;
    }
    const daemon = resolveDaemon(keys.data, dirname(file));
    // Its status page is where the running daemon says it is (none: it has none, or none yet),
    // not the default address, where another daemon's page may be.
    const statusListen = daemonStatus(daemon.state_dir).statusListen ?? "";
    const config = { file, ...daemon, status_listen: statusListen, jobs: [] };
    return { config, problem, pageOfDaemon: false };
  }
}

/**
 * For `-c file` that is missing or a folder (moved away while its daemon runs): the daemon of the
 * default state folder where it says it runs with `file`, as for a file that cannot be parsed
 * (see {@linkcode daemonConfig}).
 *
 * @throws {ConfigError} `problem` for a file that cannot be read otherwise (permission denied);
 * for one missing or a folder without such a daemon, saying so and how one that still runs with it
 * is found (by the state_dir it named, with `--set state_dir=DIR`)
 */
async function daemonOfMissingFile(
  file: string,
  problem: ConfigError,
): Promise<{ config: Config; problem: ConfigError }> {
  let what = "is a folder";
  try {
    if (!(await Deno.stat(file)).isDirectory) throw problem;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw problem;
    what = "does not exist";
  }
  let daemon: ReturnType<typeof resolveDaemon>;
  try {
    daemon = resolveDaemon(daemonSchema.parse({}), Deno.cwd());
  } catch {
    throw problem; // No home folder: the loader's error says so.
  }
  const status = daemonStatus(daemon.state_dir);
  const said = `Cannot read config file ${file}: it ${what}`;
  if (status.running && status.config !== undefined && resolve(status.config) === resolve(file)) {
    const config = { file, ...daemon, status_listen: status.statusListen ?? "", jobs: [] };
    return {
      config,
      problem: new ConfigError(
        `${said} (the daemon started with it runs with the default state_dir ` +
          `${daemon.state_dir}); ${
            what === "is a folder" ? "give -c the YAML file" : "put it back"
          }` +
          ` before the daemon is reloaded or restarted`,
        { file },
      ),
    };
  }
  throw new ConfigError(
    `${said}, so the state_dir it names is not known, and no daemon started with it runs with ` +
      `the default one (${daemon.state_dir}); a daemon that still runs with it is found by ` +
      "that state_dir: `image-transfer status --set state_dir=DIR` (and `stop --set " +
      "state_dir=DIR`), or give -c the config file itself",
    { file },
  );
}

/** What `status --json` reports about the daemon. */
export interface DaemonStatus {
  running: boolean;
  pid?: number;
  startedAt?: string;
  version?: string;
  config?: string;
  /** PID file left by a daemon that did not stop cleanly. */
  stalePid?: number;
  /** The state_dir it runs with, when not the config's (a reload refused to move it). */
  stateDir?: string;
  /** Jobs the running daemon has paused (a full destination), by name. */
  paused?: Record<string, JobPause>;
  /** The service manager that started it (see `DaemonInfo.service`), if one did. */
  service?: string;
  /** Where its status page listens (see `DaemonInfo.statusListen`), if it said. */
  statusListen?: string;
  /** The jobs it runs, by name, if it said. */
  jobs?: string[];
  /** Its last reload, if refused (see `DaemonInfo.reloadRefused`). */
  reloadRefused?: { at: string; reason: string };
  /** Lines its log file could not take (see `DaemonInfo.logFileLoss`), if any. */
  logFileLoss?: LogFileLoss;
  /** Started without a config file: the `run` that starts it again (see `DaemonInfo`), if said. */
  runCommand?: string;
}

/**
 * Whether a daemon runs on `stateDir`, for `status` (and `stop`, `restart`, `resend`): its lock
 * held, or, on a file system that does not pass locks on, the daemon its PID file names alive.
 */
export function daemonStatus(stateDir: string): DaemonStatus {
  const state: DaemonState = probeDaemon(stateDir, daemonStillRuns);
  if (!state.running) {
    return state.stalePid === undefined
      ? { running: false }
      : { running: false, stalePid: state.stalePid };
  }
  return { running: true, ...state.info, ...(state.stateDir ? { stateDir: state.stateDir } : {}) };
}

/**
 * The daemon's line of the text output of `status` (and one more if its last reload was refused,
 * or, where none runs, to say `hint`: where else one may be found).
 */
export function describeDaemon(status: DaemonStatus, stateDir: string, hint?: string): string {
  if (status.running) {
    if (status.pid === undefined) return `Daemon: running (state_dir ${stateDir})`;
    const since = status.startedAt ? new Date(status.startedAt).toLocaleString("sv-SE") : "?";
    const refused = status.reloadRefused;
    return `Daemon: running, pid ${status.pid}, since ${since}, version ${status.version}` +
      (status.config ? `, config ${status.config}` : "") +
      (refused
        ? `\n  Its last reload (${new Date(refused.at).toLocaleString("sv-SE")}) was refused, so ` +
          `it runs the config it had before: ${refused.reason}`
        : "") +
      describeLogFileLoss(status.logFileLoss) +
      (status.stateDir
        ? `\n  It runs with state_dir ${status.stateDir}, not ${stateDir}: what follows is this ` +
          "config's new state_dir; see its refused reload for how to move the ledger"
        : "");
  }
  const stale = status.stalePid === undefined
    ? ""
    : ` (stale PID file ${
      join(stateDir, PID_FILE)
    } of pid ${status.stalePid}: that daemon did not stop cleanly)`;
  // Which state folder was looked in: a daemon of another config runs on its own.
  return `Daemon: not running with state_dir ${stateDir}${stale}` +
    (hint === undefined ? "" : `\n  (${hint})`);
}

/** The line of `status` on lines the daemon's log file could not take, or "" when none. */
function describeLogFileLoss(loss: LogFileLoss | undefined): string {
  if (!loss) return "";
  const at = (iso: string) => new Date(iso).toLocaleString("sv-SE");
  const free = loss.freeBytes === null ? "" : `, ${formatBytes(loss.freeBytes)} free then`;
  const when = loss.until === null
    ? `since ${at(loss.since)}, and still loses them`
    : `from ${at(loss.since)} to ${at(loss.until)}; written again since`;
  return `\n  Log file ${quoteIfUnsafe(loss.file)}: ${loss.lines} line(s) lost ${when} ` +
    `(${escapeControlChars(loss.reason)}${free}); stderr (the journal) had them`;
}

/**
 * `; paused: destination full since ...: reason` for a job the daemon has paused, what it says of
 * a job of the config `file` it does not run (with the restart that adds it), else "".
 */
export function describePause(status: DaemonStatus, job: string, file: string): string {
  if (status.running && status.jobs && !status.jobs.includes(job)) {
    return status.reloadRefused
      ? "; not run by the daemon: the reload that would add it was refused (see above)"
      : "; not run by the daemon: it is not in the config the daemon loaded (reload it with " +
        `SIGHUP, or ${configCommand(file, "restart")})`;
  }
  const pause = status.running ? status.paused?.[job] : undefined;
  if (!pause) return "";
  const since = new Date(pause.since).toLocaleString("sv-SE");
  // The reason names a file, whose name may hold a line break: one line all the same.
  return `; paused: ${pause.state} since ${since} (${quoteIfUnsafe(pause.reason)})`;
}
