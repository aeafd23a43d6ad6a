/**
 * Poll: what polling a watch folder costs when nothing changes (a network
 * share with `watch_mode: auto`, or `watch_mode: poll`). The same tree as the
 * scale benchmark (100,000 files, all done in the ledger): the CPU time of one
 * idle poll, measured in this process with the daemon's own poller, and the
 * CPU use of the daemon over a minute of idle polling every 2 s.
 *
 * @module
 */
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { createFileFilter } from "../src/watch/file_filter.ts";
import { FolderPoller } from "../src/watch/poll_loop.ts";
import { localTestJob } from "../tests/helpers/jobs.ts";
import { DaemonProcess } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import { buildTree } from "./scale.ts";
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

/** Run the poll benchmark once. */
export async function runPoll(ctx: BenchContext, options: PollOptions = {}): Promise<Section> {
  const files = options.files ?? 100_000;
  const folders = options.folders ?? 100;
  const idleMs = options.idleMs ?? 60_000;
  const polls = options.polls ?? 20;
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "poll-" });
  const watch = join(dir, "watch");
  const stateDir = join(dir, "state");
  let learnMs: number;
  let perPoll: number[];
  let idleCpuMs: number;
  let known: { folders: number; files: number };
  let reported: string[];
  try {
    const config = await writeDaemonConfig(ctx, dir, {
      watchPath: watch,
      remoteBasePath: join(dir, "dest"),
      stateDir,
      logFile: join(dir, "image_transfer.log"),
      method: "local",
    });
    const job = (await loadConfig(config)).jobs[0];
    const buildMs = buildTree(watch, stateDir, files, folders, job);
    await sync();
    ctx.progress(`poll: ${files} files and their ledger rows built in ${formatMs(buildMs)}`);

    // One idle poll, with the daemon's poller, in this process.
    const poller = new FolderPoller({
      root: watch,
      filter: createFileFilter(localTestJob(dir, { watch_path: watch })),
      onError: (path, error) => ctx.progress(`poll: cannot read ${path}: ${error}`),
    });
    const learnStart = cpuMs();
    await poller.learn();
    learnMs = cpuMs() - learnStart;
    known = poller.size;
    perPoll = [];
    for (let i = 0; i < polls; i++) {
      const start = cpuMs();
      const changed = await poller.poll();
      perPoll.push(cpuMs() - start);
      if (changed.length > 0) throw new Error(`an idle poll found ${changed.length} file(s)`);
    }
    ctx.progress(`poll: one idle poll ${formatMs(summarize(perPoll).median)} CPU`);

    // The daemon polling the tree for a minute.
    await Deno.writeTextFile(
      config,
      `watch_mode: poll\npoll_interval_seconds: ${INTERVAL_SECONDS}\n`,
      { append: true },
    );
    const daemon = DaemonProcess.start(config);
    try {
      await daemon.waitForLine("Watching", { timeoutMs: 120_000 });
      // The first polls may still meet the start-up's garbage; measure from the next one on.
      await sleep(INTERVAL_SECONDS * 1000 + 500);
      const before = await daemon.sample();
      ctx.progress(`poll: the daemon polls every ${INTERVAL_SECONDS} s; idling ${idleMs / 1000} s`);
      await sleep(idleMs);
      const after = await daemon.sample();
      idleCpuMs = after.cpuMs - before.cpuMs;
      reported = daemon.lines.map((l) => l.text).filter((t) =>
        /Found|Successfully|WARN|ERROR/.test(t)
      );
    } finally {
      await daemon.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
  const poll = summarize(perPoll);
  const idleCpuPercent = (idleCpuMs / idleMs) * 100;
  ctx.progress(`poll: daemon idle CPU ${idleCpuPercent.toFixed(2)} %`);
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
      "folders, all done in the ledger). One idle poll: the daemon's `FolderPoller` in the",
      `benchmark's own process learns the tree, then polls it ${polls} times with nothing`,
      "changing; CPU = user + system time of the process (`process.cpuUsage()`) per poll",
      "(median, min–max). A poll `stat`s every folder and lists none (no mtime moved). Idle",
      `daemon: \`watch_mode: poll\`, \`poll_interval_seconds: ${INTERVAL_SECONDS}\`; from one poll`,
      `after \`Watching\`, the utime + stime the daemon used during ${idleMs / 1000} s, divided`,
      "by the wall time (as in the scale benchmark, whose daemon does not poll).",
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
