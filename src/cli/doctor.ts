/**
 * `doctor`: check, job by job, everything a transfer needs and say what to
 * fix: the watch folder here, then the transport's own probe of its
 * destination (programs, login, a writable destination, free space, a remote
 * SHA-256 tool; see `Transport.probe`).
 *
 * The kernel limits a watch runs into on Linux (inotify), and whether they
 * suit a watch tree.
 *
 * @module
 */
import { removeAfterCrash } from "../process/crash_cleanup.ts";
import { daemonStillRuns } from "../process/live_daemon.ts";
import { Command } from "commander";
import { globalOptions } from "./options.ts";
import { loadConfig } from "../config/load.ts";
import { configCommand, resolveConfigPath } from "../config/paths.ts";
import type { Config, JobConfig } from "../config/types.ts";
import { answerWithin, SHARE_ANSWER_MS, unreadableForNow } from "../config/file_systems.ts";
import {
  addQuickStartOptions,
  checkQuickStart,
  quickStartConfig,
  type QuickStartOptions,
  wantsQuickStart,
  withoutConfigHint,
} from "./quick_start.ts";
import { OutcomeError, UsageError } from "../errors.ts";
import { pastedWord } from "../shell_words.ts";
import {
  type TemplateValue,
  templateValueLine,
  templateValues,
} from "../config/template_values.ts";
import { checkBeforeStart } from "../pipeline/start_checks.ts";
import {
  closedOnStop,
  createTransport,
  type ProbeCheck,
  type StoppableTransport,
  tellArrivalsBefore,
  type Transport,
} from "../transfer/transport.ts";
import { Ledger, LEDGER_FILE } from "../ledger/ledger.ts";
import { rowsAsStartFinds } from "../ledger/destination_spellings.ts";
import { freeSpaceText, roomToResume } from "../ledger/ledger_file.ts";
import { probeDaemon } from "../ledger/daemon_lock.ts";
import { senderIdTrouble } from "../ledger/state_files.ts";
import { join } from "node:path";
import { readNetworkMounts, watchHow } from "../watch/fs_type.ts";
import { runProcess } from "../process/run.ts";
import { openFileLimitProblem, readOpenFileLimit } from "../process/open_file_limit.ts";
import { walkEntries } from "../watch/scan.ts";

/** How each verdict is printed. */
const VERDICTS: Record<ProbeCheck["verdict"], string> = {
  ok: "ok",
  warn: "WARN",
  fail: "FAIL",
  skip: "skip",
};

/**
 * Run every check for `jobs`, printing one line per check.
 *
 * @param print where lines go (stdout in the CLI)
 * @param ledger what the daemon remembers of the destinations (read only), if there is one
 * @param watchOption `--watch` as typed, for jobs made from the options (`--watch`, `--to`), whose
 *   problems are named as those options, not as the keys they set
 * @param allJobs every job of the config (the ledger's rows of a renamed job are found by them)
 * @returns whether every check passed
 * @throws {Error} when stopped (SIGINT, SIGTERM) while an SSH job was checked
 */
export async function runDoctor(
  jobs: JobConfig[],
  print: (line: string) => void,
  ledger: Ledger | null = null,
  watchOption?: string,
  allJobs: readonly JobConfig[] = jobs,
): Promise<boolean> {
  const watchGiven = watchOption === undefined
    ? "watch_path"
    : `--watch ${pastedWord(watchOption)}`;
  let failed = false;
  await readNetworkMounts();
  // Ctrl-C (SIGTERM) while an SSH job is checked closes its transport (see closedOnStop).
  let held: StoppableTransport | null = null;
  const report = (check: ProbeCheck) => {
    if (held?.stopped()) return; // What the stop cut short is not a finding.
    if (check.verdict === "fail") failed = true;
    print(`  ${VERDICTS[check.verdict].padEnd(4)}  ${check.check}: ${check.detail}`);
  };
  for (const job of jobs) {
    const runtimeDir = await Deno.makeTempDir({ prefix: "itx-doctor-" });
    const removeRuntimeDir = removeAfterCrash(runtimeDir); // Also after a crash.
    let transport: Transport | null = null;
    held = null;
    try {
      transport = createTransport(job, runtimeDir, ledger, watchOption !== undefined);
      held = closedOnStop(transport);
      // A base folder files arrived in is not made again once gone: said as `run` treats it.
      if (ledger !== null) tellArrivalsBefore(transport, rowsAsStartFinds(ledger, job, allJobs));
      print(`job ${job.name} (${job.transfer_method} -> ${transport.describeTarget("")})`);
    } catch (error) {
      print(`job ${job.name} (${job.transfer_method})`);
      report({ check: "config", verdict: "fail", detail: messageOf(error) });
    }
    try {
      const watch = await checkWatchPath(job, watchGiven);
      report(watch);
      if (watch.verdict === "ok") report(checkWatchMode(job));
      if (watch.verdict === "ok" && job.watch_mode !== "poll") {
        await checkInotifyLimits(
          job.watch_path,
          (verdict, check, detail) => report({ verdict, check, detail }),
        );
      }
      for (const check of await transport?.probe?.() ?? []) report(check);
    } finally {
      await held?.close();
      await removeRuntimeDir();
    }
    if (held?.stopped()) break;
  }
  const stopped = held?.stopped();
  if (stopped) throw new Error(`doctor was stopped (${stopped}) before its checks ended`);
  return !failed;
}

async function checkWatchPath(job: JobConfig, given: string): Promise<ProbeCheck> {
  let hung = false; // A share that hangs: its path is right, the share or its server is not.
  try {
    const read = async () => {
      const info = await Deno.stat(job.watch_path);
      if (!info.isDirectory) throw new Error("not a folder");
      for await (const _ of Deno.readDir(job.watch_path)) break;
      return true;
    };
    if (await answerWithin(read()) === null) {
      hung = true;
      throw new Error(
        `did not answer in ${SHARE_ANSWER_MS / 1000} s (a share whose server stopped answering?)`,
      );
    }
    return { check: "watch folder", verdict: "ok", detail: job.watch_path };
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound ? "does not exist" : messageOf(error);
    const todo = hung
      ? "check the share and the server it is on (network, mount); `run` waits until it answers"
      : unreadableForNow(error)
      ? "mount the share again (its client or server gone?); `run` waits until it can be read"
      : `fix ${given}`;
    return {
      check: "watch folder",
      verdict: "fail",
      detail: `${job.watch_path}: ${reason}; ${todo}`,
    };
  }
}

/** How the watch folder is watched; a warning where files written elsewhere raise no events. */
function checkWatchMode(job: JobConfig): ProbeCheck {
  const how = watchHow(job.watch_path, job.watch_mode, job.poll_interval_seconds);
  if (how.remote && how.mode === "events") {
    return {
      check: "watching",
      verdict: "warn",
      detail: `${how.summary}; set watch_mode: auto (or poll) to poll it`,
    };
  }
  return { check: "watching", verdict: "ok", detail: how.summary };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The `doctor` command. */
export function doctorCommand(): Command {
  const command = new Command("doctor")
    .description("check each job's programs, login, destination folder and free space")
    .option("--job <name>", "check only this job");
  return addQuickStartOptions(command)
    .action(async (options: QuickStartOptions & { job?: string }, command: Command) => {
      const global = globalOptions(command);
      let config: Config;
      if (wantsQuickStart(options)) {
        if (global.config !== undefined) {
          throw new UsageError("give either --config or --watch/--to, not both");
        }
        config = quickStartConfig(options).config;
        await checkQuickStart(config);
      } else {
        if (options.method !== undefined || options.set !== undefined) {
          throw new UsageError("--method, --set and --ftp-* go with --watch and --to");
        }
        config = await loadConfig(resolveConfigPath(global.config)).catch((error) => {
          throw withoutConfigHint(error, "doctor");
        });
      }
      // What `run` would refuse before starting fails here too.
      await checkBeforeStart(config, undefined, (message) => console.log(`WARN  ${message}`));
      const jobs = options.job === undefined
        ? config.jobs
        : config.jobs.filter((job) => job.name === options.job);
      if (jobs.length === 0) {
        throw new UsageError(
          `Cannot check job "${options.job}": no such job in ${config.file} ` +
            `(jobs: ${config.jobs.map((job) => job.name).join(", ")})`,
        );
      }
      // A job still the template's fails, as `config validate` says, and is not checked further:
      // its example folder and server are nobody's, and checks of them would only fail.
      const examples = (wantsQuickStart(options) ? [] : templateValues(config))
        .filter((value) => jobs.includes(config.jobs[value.index]));
      if (examples.length > 0) {
        console.log(`${config.file} still holds the example values of the template init writes:`);
      }
      for (const value of examples) {
        console.log(`FAIL  ${templateValueLine(value, config.jobs.length)}`);
      }
      const checked = jobs.filter((job) => !examples.some((v) => config.jobs[v.index] === job));
      const stateDisk = checkStateDisk(config.state_dir);
      const ledger = Ledger.open(config.state_dir, { readOnly: true });
      let ok: boolean;
      try {
        const installId = checkSenderId(config.state_dir, ledger);
        const stateChecks = [stateDisk, installId].filter((check) => check !== null);
        if (stateChecks.length > 0) console.log(`state_dir ${config.state_dir}`);
        for (const { verdict, check, detail } of stateChecks) {
          console.log(`  ${VERDICTS[verdict].padEnd(4)}  ${check}: ${detail}`);
        }
        ok = await runDoctor(
          checked,
          (line) => console.log(line),
          ledger,
          options.watch,
          config.jobs,
        ) &&
          stateDisk === null;
      } finally {
        ledger?.close();
      }
      ok = await checkOpenFiles() && ok;
      if (examples.length > 0) throw fillIn(config, examples, checked.length > 0 && !ok);
      if (!ok) {
        throw new OutcomeError("Cannot confirm every job will work: fix the FAIL lines above");
      }
    });
}

/**
 * Say whether this process's open-file limit (the shell's, which a daemon started from it gets)
 * is enough for the daemon, as `run` checks it; `false` where `run` would refuse to start.
 */
async function checkOpenFiles(): Promise<boolean> {
  const limit = await readOpenFileLimit();
  if (limit === null) return true;
  const problem = openFileLimitProblem(limit);
  const verdict = problem === null ? "ok" : problem.level === "refuse" ? "fail" : "warn";
  const hard = limit.hard === Infinity ? "unlimited" : limit.hard;
  const detail = problem?.message ?? `${limit.soft} (ulimit -n; hard limit ${hard})`;
  console.log(`${VERDICTS[verdict].padEnd(4)}  open-file limit: ${detail}`);
  return verdict !== "fail";
}

/**
 * The error that ends `doctor` on a config still holding the template's examples: each key to
 * fill in with its line (`failed`: other checks failed too), and the command to run then.
 */
function fillIn(config: Config, examples: TemplateValue[], failed: boolean): Error {
  const keys = examples.map((value) => {
    const line = value.place.slice(config.file.length + 1);
    const key = config.jobs.length > 1 ? `${value.key} of job ${value.job}` : value.key;
    return line === "" ? key : `${key} at line ${line}`;
  });
  const list = keys.length > 1 ? `${keys.slice(0, -1).join(", ")} and ${keys.at(-1)}` : keys[0];
  return new Error(
    `Fill in ${list} of ${config.file} (the FAIL lines above say what each takes), then run ` +
      `\`${configCommand(config.file, "doctor")}\` again` +
      (failed ? "; fix the other FAIL lines above too" : ""),
  );
}

/**
 * A `state_dir` whose disk has no room for the ledger (the daemon pauses at this much): `run`
 * could not start there, and a running daemon would pause every job; `null` when there is room.
 */
function checkStateDisk(stateDir: string): ProbeCheck | null {
  const ledgerPath = join(stateDir, LEDGER_FILE);
  if (roomToResume(ledgerPath)) return null;
  return {
    check: "ledger disk",
    verdict: "fail",
    detail: `${freeSpaceText(ledgerPath)}: the daemon could not record what it sends (run ` +
      "stops at its start, a running daemon pauses every job); free space there, or give " +
      "another state_dir",
  };
}

/**
 * A spoilt `sender_id` in `stateDir` (see `senderIdTrouble`), said as a warning (`run` goes on
 * with a new id, or the host name's); `null` when there is nothing to say.
 */
function checkSenderId(stateDir: string, ledger: Ledger | null): ProbeCheck | null {
  let daemonRuns = false;
  try {
    const state = probeDaemon(stateDir, daemonStillRuns);
    daemonRuns = state.running && state.stateDir === undefined;
  } catch { /* its lock cannot be checked: as none runs */ }
  const detail = senderIdTrouble(stateDir, { daemonRuns, ledger });
  return detail === null ? null : { check: "install id", verdict: "warn", detail };
}

/**
 * Report (`ok`, `WARN`, or `skip` when they cannot be read) whether the
 * inotify limits suit the watch tree at `watchPath`; nothing off Linux.
 */
export async function checkInotifyLimits(
  watchPath: string,
  line: (verdict: "ok" | "warn" | "skip", check: string, detail: string) => void,
): Promise<void> {
  if (Deno.build.os !== "linux") return;
  const limits = await runProcess(INOTIFY_LIMITS_COMMAND, { timeoutMs: 10_000 }).then(
    (result) => parseInotifyLimits(new TextDecoder().decode(result.stdout)),
    () => null,
  );
  if (!limits) return line("skip", "watch limits", "cannot read them with sysctl");
  // Only where user namespaces limit watches (Linux 4.9+); without it the system's limit stands.
  const namespace = await runProcess(NAMESPACE_WATCHES_COMMAND, { timeoutMs: 10_000 }).then(
    (result) => Number(new TextDecoder().decode(result.stdout).trim()),
    () => NaN,
  );
  if (Number.isInteger(namespace)) limits.namespaceWatches = namespace;
  const { ok, detail } = checkWatchLimits(watchPath, limits);
  line(ok ? "ok" : "warn", "watch limits", detail);
}

/** The inotify limits (`/proc/sys/fs/inotify/*`). */
export interface InotifyLimits {
  /** Watches per user, one per watched folder, shared by all programs. */
  maxUserWatches: number;
  /** Events queued per watcher before the kernel drops them. */
  maxQueuedEvents: number;
  /**
   * Watches per user in this user namespace (`user.max_inotify_watches`), when
   * known: a container's may be lower than the system's, and the lower one applies.
   */
  namespaceWatches?: number;
}

/** The kernel's default `max_queued_events`. */
const DEFAULT_QUEUED_EVENTS = 16_384;

/** Watches other programs of the same user commonly need besides ours. */
const WATCH_HEADROOM = 8_192;

/**
 * The command that prints the limits (`/proc/sys` itself may only be read
 * with every permission): `max_user_watches`, then `max_queued_events`.
 */
export const INOTIFY_LIMITS_COMMAND = [
  "sysctl",
  "-n",
  "fs.inotify.max_user_watches",
  "fs.inotify.max_queued_events",
];

/** The command that prints the watch limit of the current user namespace. */
export const NAMESPACE_WATCHES_COMMAND = ["sysctl", "-n", "user.max_inotify_watches"];

/** The limits from the output of {@linkcode INOTIFY_LIMITS_COMMAND}, or `null` if it is not that. */
export function parseInotifyLimits(output: string): InotifyLimits | null {
  const [watches, queued] = output.trim().split(/\s+/).map(Number);
  if (!Number.isInteger(watches) || !Number.isInteger(queued)) return null;
  return { maxUserWatches: watches, maxQueuedEvents: queued };
}

/**
 * Number of folders at and below `root` (each needs a watch; hidden and
 * excluded ones too), not following symbolic links; unreadable ones are
 * skipped. Counting stops at `stopAt`.
 */
export function countFolders(root: string, stopAt = 10_000_000): number {
  let count = 1;
  if (count >= stopAt) return count;
  walkEntries(root, (_, entry) => {
    if (!entry.isDirectory) return false;
    // An unreadable folder is counted, and not entered.
    return ++count >= stopAt ? "stop" : true;
  });
  return count;
}

/**
 * Whether `limits` suit a watch tree of `folders` folders: problems with what
 * to do, empty when they do.
 */
export function watchLimitProblems(limits: InotifyLimits, folders: number): string[] {
  const problems: string[] = [];
  const wantWatches = folders * 2 + WATCH_HEADROOM;
  const { key, watches } = watchLimit(limits);
  if (watches < wantWatches) {
    problems.push(
      `${key} is ${watches} for ${folders} folder(s) to watch ` +
        `(and their growth, and other programs): raise it to at least ${wantWatches}, e.g. ` +
        `"sysctl ${key}=${Math.max(524_288, wantWatches)}" ` +
        `(and in /etc/sysctl.d/ to keep it)`,
    );
  }
  if (limits.maxQueuedEvents < DEFAULT_QUEUED_EVENTS) {
    problems.push(
      `fs.inotify.max_queued_events is ${limits.maxQueuedEvents}, below the kernel default ` +
        `${DEFAULT_QUEUED_EVENTS}: bursts lose events (found again by re-reading folders, but ` +
        `later); raise it, e.g. "sysctl fs.inotify.max_queued_events=65536"`,
    );
  }
  return problems;
}

/**
 * Whether the limits suit the watch tree at `root`, in one line for `doctor`.
 */
export function checkWatchLimits(
  root: string,
  limits: InotifyLimits,
): { ok: boolean; detail: string } {
  const folders = countFolders(root);
  const problems = watchLimitProblems(limits, folders);
  if (problems.length > 0) return { ok: false, detail: problems.join("; ") };
  const { key, watches } = watchLimit(limits);
  return {
    ok: true,
    detail: `${folders} folder(s) to watch; ${key} ${watches}, ` +
      `fs.inotify.max_queued_events ${limits.maxQueuedEvents}`,
  };
}

/** The watch limit that applies (the lower of the system's and the user namespace's), by its key. */
function watchLimit(limits: InotifyLimits): { key: string; watches: number } {
  const namespace = limits.namespaceWatches;
  if (namespace !== undefined && namespace < limits.maxUserWatches) {
    return { key: "user.max_inotify_watches", watches: namespace };
  }
  return { key: "fs.inotify.max_user_watches", watches: limits.maxUserWatches };
}
