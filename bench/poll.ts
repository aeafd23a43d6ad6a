/**
 * Poll: what polling a watch folder costs when nothing changes (a network
 * share with `watch_mode: auto`, or `watch_mode: poll`). The same tree as the
 * scale benchmark (100,000 files, all done in the ledger): the CPU time of one
 * idle poll, measured in this process with the daemon's own poller, and the
 * CPU use of the daemon over a minute of idle polling every 2 s. In a run of
 * both, the scale benchmark builds the tree once and its daemon and this one
 * idle through the same minute (see `runScale`).
 *
 * @module
 */
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { createFileFilter } from "../src/watch/file_filter.ts";
import { FolderPoller } from "../src/watch/poll_loop.ts";
import { localTestJob } from "../tests/helpers/jobs.ts";
import { DaemonProcess, type ProcessSample } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import { buildTree, markTreeDone } from "./tree.ts";
import { loadConfig } from "../src/config/load.ts";
import { type BenchContext, sleep, sync, writeDaemonConfig } from "./setup.ts";
import { formatMs, summarize } from "./stats.ts";

/** Options of {@linkcode runPoll}. */
export interface PollOptions {
  /** Files in the tree. @default 100000 */
  files?: number;
  /** Folders they are spread over. @default 100 */
  folders?: number;
  /** How long the daemon is left idle. @default 60000 */
  idleMs?: number;
  /** Polls timed in this process. @default 20 */
  polls?: number;
}

/** Seconds between two polls of the daemon (the default of `poll_interval_seconds`). */
const INTERVAL_SECONDS = 2;

/** CPU time (user + system) of this process, in ms. */
function cpuMs(): number {
  const { user, system } = cpuUsage();
  return (user + system) / 1000;
}

/** What the poller in this process measured on the tree. */
interface PollerCost {
  learnMs: number;
  perPoll: number[];
  known: { folders: number; files: number };
}

/** The polling daemon of the benchmark, on a tree made elsewhere; measure with {@linkcode PollBench.start}. */
export class PollBench {
  private daemon: DaemonProcess | null = null;
  private idleFrom: ProcessSample | null = null;

  private constructor(
    private readonly ctx: BenchContext,
    private readonly config: string,
    private readonly watch: string,
    private readonly stateDir: string,
    private readonly dir: string,
    readonly files: number,
    readonly folders: number,
    readonly polls: number,
  ) {}

  private poller: PollerCost | null = null;

  /** A config for a `local` job polling `watch` (a tree of `files`), its state in `dir`. */
  static async prepare(
    ctx: BenchContext,
    dir: string,
    watch: string,
    files: number,
    folders: number,
    polls = 20,
  ): Promise<{ bench: PollBench; stateDir: string; config: string }> {
    const stateDir = join(dir, "poll-state");
    await Deno.mkdir(join(dir, "poll"), { recursive: true });
    const config = await writeDaemonConfig(ctx, join(dir, "poll"), {
      watchPath: watch,
      remoteBasePath: join(dir, "poll-dest"),
      stateDir,
      logFile: join(dir, "poll", "image_transfer.log"),
      method: "local",
    });
    const bench = new PollBench(ctx, config, watch, stateDir, dir, files, folders, polls);
    return { bench, stateDir, config };
  }

  /** The job of the config, whose ledger must hold the tree's files as done. */
  async job() {
    return (await loadConfig(this.config)).jobs[0];
  }

  /** One idle poll, with the daemon's poller, in this process (before any daemon runs). */
  async measurePoller(): Promise<void> {
    const poller = new FolderPoller({
      root: this.watch,
      filter: createFileFilter(localTestJob(this.dir, { watch_path: this.watch })),
      onError: (path, error) => this.ctx.progress(`poll: cannot read ${path}: ${error}`),
    });
    const learnStart = cpuMs();
    await poller.learn();
    const learnMs = cpuMs() - learnStart;
    const perPoll: number[] = [];
    for (let i = 0; i < this.polls; i++) {
      const start = cpuMs();
      const changed = await poller.poll();
      perPoll.push(cpuMs() - start);
      if (changed.length > 0) throw new Error(`an idle poll found ${changed.length} file(s)`);
    }
    this.poller = { learnMs, perPoll, known: poller.size };
    this.ctx.progress(`poll: one idle poll ${formatMs(summarize(perPoll).median)} CPU`);
  }

  /** Start the daemon polling the tree; resolves once its idle period can be measured. */
  async startDaemon(): Promise<void> {
    await Deno.writeTextFile(
      this.config,
      `watch_mode: poll\npoll_interval_seconds: ${INTERVAL_SECONDS}\n`,
      { append: true },
    );
    this.daemon = DaemonProcess.start(this.config);
    await this.daemon.waitForLine("Watching", { timeoutMs: 120_000 });
    // The first polls may still meet the start-up's garbage; measure from the next one on.
    await sleep(INTERVAL_SECONDS * 1000 + 500);
    this.idleFrom = await this.daemon.sample();
    this.ctx.progress(`poll: the daemon polls every ${INTERVAL_SECONDS} s`);
  }

  /** End the idle period (`idleMs` after it began), stop the daemon and say what was measured. */
  async finish(idleMs: number): Promise<Section> {
    const daemon = this.daemon!;
    let idleCpuMs: number;
    let reported: string[];
    try {
      const after = await daemon.sample();
      idleCpuMs = after.cpuMs - this.idleFrom!.cpuMs;
      reported = daemon.lines.map((l) => l.text).filter((t) =>
        /Found|Successfully|WARN|ERROR/.test(t)
      );
    } finally {
      await daemon.stop();
      await Deno.remove(this.stateDir, { recursive: true }).catch(() => {});
    }
    const idleCpuPercent = (idleCpuMs / idleMs) * 100;
    this.ctx.progress(`poll: daemon idle CPU ${idleCpuPercent.toFixed(2)} %`);
    return this.section(idleMs, idleCpuMs, reported);
  }

  private section(idleMs: number, idleCpuMs: number, reported: string[]): Section {
    const { learnMs, perPoll, known } = this.poller!;
    const { files, folders, polls } = this;
    const poll = summarize(perPoll);
    const idleCpuPercent = (idleCpuMs / idleMs) * 100;
    const label = `${files.toLocaleString("en-US")} files done in the ledger, polled`;
    return {
      title: "Poll",
      rows: [
        {
          benchmark: `${label}: CPU of one idle poll`,
          daemon: `${formatMs(poll.median)} (${formatMs(poll.min)}–${formatMs(poll.max)})`,
          baseline: "—",
          ratio: "—",
          target: "< 50 ms",
          met: poll.median < 50,
        },
        {
          benchmark: `${label} every ${INTERVAL_SECONDS} s: CPU while idle for ${idleMs / 1000} s`,
          daemon: `${idleCpuPercent.toFixed(2)} % (${formatMs(idleCpuMs)})`,
          baseline: "—",
          ratio: "—",
          target: "< 2 %",
          met: idleCpuPercent < 2,
        },
      ],
      measured: [
        `The scale benchmark's tree (${files.toLocaleString("en-US")} files of 1 KiB in ${folders}`,
        "folders, all done in this job's ledger). One idle poll: the daemon's `FolderPoller` in",
        `the benchmark's own process learns the tree, then polls it ${polls} times with nothing`,
        "changing, before any daemon runs; CPU = user + system time of the process",
        "(`process.cpuUsage()`) per poll (median, min–max). A poll `stat`s every folder and lists",
        "none (no mtime moved). Idle daemon: `watch_mode: poll`,",
        `\`poll_interval_seconds: ${INTERVAL_SECONDS}\`; from one poll after \`Watching\`, the utime +`,
        `stime the daemon used during ${idleMs / 1000} s, divided by the wall time. In a full run`,
        "the scale benchmark's daemon, on the same tree and as idle, spends the same minute beside",
        "it.",
      ].join("\n"),
      details: [
        `Known after learning: ${known.folders} folders, ${known.files} files; a walk that learns ` +
        `the tree took ${formatMs(learnMs)} CPU (the daemon learns it from its start-up scan)`,
        `Idle polls: ${perPoll.map((ms) => formatMs(ms)).join(", ")}`,
        `Daemon log lines about files during the idle minute (expected none): ${
          reported.length === 0 ? "none" : reported.join(" | ")
        }`,
      ],
    };
  }
}

/** Run the poll benchmark alone, on a tree of its own. */
export async function runPoll(ctx: BenchContext, options: PollOptions = {}): Promise<Section> {
  const files = options.files ?? 100_000;
  const folders = options.folders ?? 100;
  const idleMs = options.idleMs ?? 60_000;
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "poll-" });
  const watch = join(dir, "watch");
  try {
    const { bench, stateDir } = await PollBench.prepare(
      ctx,
      dir,
      watch,
      files,
      folders,
      options.polls,
    );
    const tree = buildTree(watch, files, folders);
    const buildMs = tree.ms + markTreeDone(stateDir, tree.rows, await bench.job());
    await sync();
    ctx.progress(`poll: ${files} files and their ledger rows built in ${formatMs(buildMs)}`);
    await bench.measurePoller();
    await bench.startDaemon();
    ctx.progress(`poll: idling ${idleMs / 1000} s`);
    await sleep(idleMs);
    return await bench.finish(idleMs);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
}
