/**
 * Scale: a watch tree of 100,000 small files, all recorded as done in the
 * ledger; the daemon's start-up time until `Watching`, its memory, and its
 * CPU use while idle.
 *
 * @module
 */
import { join } from "node:path";
import { loadConfig } from "../src/config/load.ts";
import { DaemonProcess, type ProcessSample } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import { type BenchContext, freshRemoteDir, sleep, sync, writeDaemonConfig } from "./setup.ts";
import { formatMs } from "./stats.ts";
import { buildTree, markTreeDone } from "./tree.ts";
import { PollBench, type PollOptions } from "./poll.ts";

/** Options of {@linkcode runScale}. */
export interface ScaleOptions {
  /** Files in the tree. @default 100000 */
  files?: number;
  /** Folders they are spread over. @default 100 */
  folders?: number;
  /** How long the daemon is left idle. @default 60000 */
  idleMs?: number;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

/** VmRSS of a daemon with an empty watch folder and ledger, right after `Watching`. */
async function emptyDaemonRss(ctx: BenchContext, dir: string, remotePath: string): Promise<number> {
  const root = join(dir, "empty");
  await Deno.mkdir(join(root, "watch"), { recursive: true });
  const config = await writeDaemonConfig(ctx, root, {
    watchPath: join(root, "watch"),
    remoteBasePath: remotePath,
    stateDir: join(root, "state"),
    logFile: join(root, "image_transfer.log"),
    method: "scp",
  });
  const daemon = DaemonProcess.start(config);
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    return (await daemon.sample()).rssBytes;
  } finally {
    await daemon.stop();
  }
}

/**
 * Wait until the daemon uses under 5 % of a CPU over half a second (at most 60 s): the work right
 * after `Watching` is done. Returns how long that took and the sample at its end.
 */
async function untilQuiet(daemon: DaemonProcess): Promise<{ ms: number; sample: ProcessSample }> {
  const startMs = performance.now();
  let last = await daemon.sample();
  while (performance.now() - startMs < 60_000) {
    await sleep(500);
    const now = await daemon.sample();
    if (now.cpuMs - last.cpuMs < 25) return { ms: performance.now() - startMs - 500, sample: now };
    last = now;
  }
  throw new Error("The daemon did not come to rest within 60 s of `Watching`");
}

/**
 * Run the scale benchmark once. With `poll`, the poll benchmark runs on the same tree: its
 * poller is timed before the daemon starts, and its polling daemon idles through the same
 * minute as this one, started once this one has come to rest (see bench/poll.ts).
 */
export async function runScale(
  ctx: BenchContext,
  options: ScaleOptions = {},
  poll?: PollOptions,
): Promise<Section[]> {
  const files = options.files ?? 100_000;
  const folders = options.folders ?? 100;
  const idleMs = options.idleMs ?? 60_000;
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "scale-" });
  const watch = join(dir, "watch");
  const stateDir = join(dir, "state");
  const remote = await freshRemoteDir(ctx, "itx-bench-scale-");
  let startupMs: number;
  let bootMs: number;
  let atWatching: ProcessSample;
  let settled: { ms: number; sample: ProcessSample };
  let idleFrom: ProcessSample;
  let afterIdle: ProcessSample;
  let found: string[];
  let emptyRss: number;
  let pollSection: Section | null = null;
  try {
    emptyRss = await emptyDaemonRss(ctx, dir, remote.path);
    const config = await writeDaemonConfig(ctx, dir, {
      watchPath: watch,
      remoteBasePath: remote.path,
      stateDir,
      logFile: join(dir, "image_transfer.log"),
      method: "scp",
    });
    const job = (await loadConfig(config)).jobs[0];
    const tree = buildTree(watch, files, folders);
    let buildMs = tree.ms + markTreeDone(stateDir, tree.rows, job);
    const polled = poll
      ? await PollBench.prepare(ctx, dir, watch, files, folders, poll.polls)
      : null;
    if (polled) buildMs += markTreeDone(polled.stateDir, tree.rows, await polled.bench.job());
    await sync();
    ctx.progress(`scale: ${files} files and their ledger rows built in ${formatMs(buildMs)}`);
    await polled?.bench.measurePoller();
    const daemon = DaemonProcess.start(config);
    try {
      const starting = await daemon.waitForLine("Starting", { timeoutMs: 60_000 });
      const watching = await daemon.waitForLine("Watching", { timeoutMs: 120_000 });
      atWatching = await daemon.sample();
      startupMs = watching.atMs - daemon.spawnedAtMs;
      bootMs = starting.atMs - daemon.spawnedAtMs;
      settled = await untilQuiet(daemon);
      ctx.progress(
        `scale: watching after ${formatMs(startupMs)}; RSS ${mb(atWatching.rssBytes)}; ` +
          `files sent before checked ${formatMs(settled.ms)} later`,
      );
      try {
        await polled?.bench.startDaemon();
        idleFrom = await daemon.sample();
        ctx.progress(`scale: idling ${idleMs / 1000} s`);
        await sleep(idleMs);
        afterIdle = await daemon.sample();
      } finally {
        if (polled) pollSection = await polled.bench.finish(idleMs);
      }
      found = daemon.lines.map((l) => l.text).filter((t) =>
        /Found|Successfully|WARN|ERROR/.test(t)
      );
    } finally {
      await daemon.stop();
    }
  } finally {
    await remote.remove();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
  const idleCpuPercent = ((afterIdle.cpuMs - idleFrom.cpuMs) / idleMs) * 100;
  const checkCpuMs = settled.sample.cpuMs - atWatching.cpuMs;
  const peak = Math.max(atWatching.peakRssBytes, afterIdle.peakRssBytes);
  const rss = Math.max(atWatching.rssBytes, afterIdle.rssBytes);
  ctx.progress(
    `scale: idle CPU ${idleCpuPercent.toFixed(2)} %, RSS ${mb(afterIdle.rssBytes)}, ` +
      `peak ${mb(peak)}`,
  );
  const label = `${files.toLocaleString("en-US")} files done in the ledger`;
  const scale: Section = {
    title: "Scale",
    rows: [
      {
        benchmark: `${label}: start-up until \`Watching\``,
        daemon: formatMs(startupMs),
        baseline: "—",
        ratio: "—",
        target: "≤ 1.5 s",
        met: startupMs <= 1500,
      },
      {
        benchmark: `${label}: resident memory (VmRSS)`,
        daemon: `${mb(atWatching.rssBytes)} at \`Watching\`, ${
          mb(afterIdle.rssBytes)
        } after the idle period (peak VmHWM ${mb(peak)})`,
        baseline: "—",
        ratio: "—",
        target: "≤ 100 MB",
        met: rss <= 100e6,
      },
      {
        benchmark: `${label}: CPU while idle for ${idleMs / 1000} s`,
        daemon: `${idleCpuPercent.toFixed(2)} %`,
        baseline: "—",
        ratio: "—",
        target: "< 1 %",
        met: idleCpuPercent < 1,
      },
      {
        benchmark: `${label}: after \`Watching\`, the check of the files sent before`,
        daemon: `${formatMs(settled.ms)} (${formatMs(checkCpuMs)} of CPU)`,
        baseline: "—",
        ratio: "—",
        target: "—",
        met: null,
      },
    ],
    measured: [
      `A watch tree of ${files.toLocaleString("en-US")} files of 1 KiB in ${folders} folders`,
      "(default patterns, `*.fits`) is created, and every file is recorded as done in a fresh",
      "ledger with its real size and mtime (built with the `Ledger` class in one transaction),",
      "so the daemon must recognise each one and send nothing. Start-up = from spawning",
      "`deno run -q -P=image-transfer main.ts run -c …` to its `Watching` line (Deno start-up,",
      "ledger load, full scan, recursive watch set-up; the second scan that `stat`s the files sent",
      "before runs after `Watching`, in the idle period). Memory = VmRSS of",
      "the daemon process (`/proc/<pid>/status`) right after `Watching` and after the idle",
      "period; the target is judged on the larger; VmHWM is the peak. The check of the files sent",
      "before ends when the daemon's CPU use falls under 5 % for half a second. Idle CPU = utime +",
      `stime (\`/proc/<pid>/stat\`) consumed during the next ${idleMs / 1000} s, divided by the`,
      "wall time. In a full run the poll benchmark's daemon (same tree, its own ledger) starts",
      "after that check and before this minute, and idles through the same minute.",
    ].join("\n"),
    details: [
      `spawn → \`Starting\` line (runtime and module start-up): ${formatMs(bootMs)}; ` +
      `\`Starting\` → \`Watching\` (ledger + scan + watch): ${formatMs(startupMs - bootMs)}`,
      `VmRSS at \`Watching\` ${mb(atWatching.rssBytes)}, after idle ${mb(afterIdle.rssBytes)} ` +
      `(a daemon with an empty watch folder and ledger: ${mb(emptyRss)} at \`Watching\`); ` +
      `CPU used during start-up ${formatMs(atWatching.cpuMs)}, by the check after it ${
        formatMs(checkCpuMs)
      }, while idle ${formatMs(afterIdle.cpuMs - idleFrom.cpuMs)}`,
      found.length === 0
        ? "no file was re-sent or reported as new (all recognised as done)"
        : `unexpected lines: ${found.length}, first: \`${found[0]}\``,
    ],
  };
  return pollSection ? [scale, pollSection] : [scale];
}
