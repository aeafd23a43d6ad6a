/**
 * History: a year of nights recorded as done in the ledger (1,000,000 files by
 * default) and an empty watch folder (the sources were cleaned up): the
 * daemon's start-up until `Watching`, its memory, and its first
 * `/api/status` answer.
 *
 * @module
 */
import { join } from "node:path";
import { Ledger } from "../src/ledger/ledger.ts";
import { FileRows } from "../src/ledger/file_rows.ts";
import { senderId } from "../src/ledger/state_files.ts";
import { loadConfig } from "../src/config/load.ts";
import { freePort } from "../tests/helpers/net.ts";
import { DaemonProcess } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import { type BenchContext, freshRemoteDir, sync, writeDaemonConfig } from "./setup.ts";
import { formatMs } from "./stats.ts";

const DAY_MS = 86_400_000;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

/** Run the history benchmark once. */
export async function runHistory(
  ctx: BenchContext,
  options: { files?: number; nights?: number } = {},
): Promise<Section> {
  const files = options.files ?? 1_000_000;
  const nights = options.nights ?? 365;
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "history-" });
  const watch = join(dir, "watch");
  const stateDir = join(dir, "state");
  await Deno.mkdir(watch);
  const remote = await freshRemoteDir(ctx, "itx-bench-history-");
  const port = freePort();
  let startupMs: number, bootMs: number, rss: number, peak: number, firstStatusMs: number;
  let secondStatusMs: number, buildMs: number;
  try {
    const config = await writeDaemonConfig(ctx, dir, {
      watchPath: watch,
      remoteBasePath: remote.path,
      stateDir,
      logFile: join(dir, "image_transfer.log"),
      method: "scp",
      statusListen: `127.0.0.1:${port}`,
    });
    const job = (await loadConfig(config)).jobs[0];
    const start = performance.now();
    const ledger = Ledger.open(stateDir);
    try {
      senderId(stateDir, { writable: true, ledger }); // As the runs that sent them left it.
      const table = FileRows.of(ledger, job);
      const perNight = Math.ceil(files / nights);
      const first = Date.now() - nights * DAY_MS;
      for (let n = 0, made = 0; n < nights && made < files; n++) {
        const at = first + n * DAY_MS;
        const night = new Date(at).toISOString().slice(0, 10).replaceAll("-", "");
        const rows = [];
        for (let i = 0; i < perNight && made < files; i++, made++) {
          const rel = `${night}/frame_${String(i).padStart(5, "0")}.fits`;
          rows.push({ relPath: rel, size: 8_640_000, mtimeMs: at, destination: rel });
        }
        table.markDone(rows, at);
      }
    } finally {
      ledger.close();
    }
    buildMs = performance.now() - start;
    await sync();
    ctx.progress(`history: ${files} done rows over ${nights} nights built in ${formatMs(buildMs)}`);
    const daemon = DaemonProcess.start(config);
    try {
      const starting = await daemon.waitForLine("Starting", { timeoutMs: 60_000 });
      const watching = await daemon.waitForLine("Watching", { timeoutMs: 300_000 });
      const sample = await daemon.sample();
      startupMs = watching.atMs - daemon.spawnedAtMs;
      bootMs = starting.atMs - daemon.spawnedAtMs;
      const ask = async () => {
        const t0 = performance.now();
        const response = await fetch(`http://127.0.0.1:${port}/api/status`);
        if (!response.ok) throw new Error(`Cannot read /api/status: HTTP ${response.status}`);
        await response.json();
        return performance.now() - t0;
      };
      firstStatusMs = await ask();
      secondStatusMs = await ask();
      const after = await daemon.sample();
      rss = Math.max(sample.rssBytes, after.rssBytes);
      peak = Math.max(sample.peakRssBytes, after.peakRssBytes);
    } finally {
      await daemon.stop();
    }
  } finally {
    await remote.remove();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
  ctx.progress(
    `history: Watching after ${formatMs(startupMs)}, RSS ${mb(rss)}, first /api/status ` +
      `${formatMs(firstStatusMs)}, second ${formatMs(secondStatusMs)}`,
  );
  const label = `${files.toLocaleString("en-US")} files done in the ledger, empty watch folder`;
  return {
    title: "History",
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
        daemon: `${mb(rss)} (peak VmHWM ${mb(peak)})`,
        baseline: "—",
        ratio: "—",
        target: "≤ 100 MB",
        met: rss <= 100e6,
      },
      {
        benchmark: `${label}: first \`/api/status\` answer`,
        daemon: `${formatMs(firstStatusMs)} (second ${formatMs(secondStatusMs)})`,
        baseline: "—",
        ratio: "—",
        target: "≤ 200 ms",
        met: firstStatusMs <= 200,
      },
    ],
    measured: [
      `${files.toLocaleString("en-US")} files are recorded as done in a fresh ledger with`,
      `\`FileRows.markDone\`, spread over ${nights} nights (one transaction per night, each`,
      "stamped with its night's time); the watch folder is empty. Start-up = from spawning the",
      "daemon to its `Watching` line; memory = the larger VmRSS right after `Watching` and after",
      "the status answers; status = wall time of a `GET /api/status` right after `Watching`",
      "(and a second one).",
    ].join("\n"),
    details: [
      `ledger built in ${formatMs(buildMs)}; spawn → \`Starting\` ${formatMs(bootMs)}, ` +
      `\`Starting\` → \`Watching\` ${formatMs(startupMs - bootMs)}`,
    ],
  };
}
