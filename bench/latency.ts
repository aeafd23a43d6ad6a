/**
 * Latency: one 200 KiB file at a time into a running daemon (default
 * settings, scp), timed from its close to its `Successfully transferred` line.
 *
 * @module
 */
import { join } from "node:path";
import { DaemonProcess } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import {
  type BenchContext,
  daemonSandbox,
  listSizes,
  sleep,
  SMALL_FILE_BYTES,
  sync,
} from "./setup.ts";
import { formatMs, percentile } from "./stats.ts";

/** Pause between two trials. */
const PAUSE_MS = 250;

/** Write one file and return the time from its close to its success line. */
async function oneFile(daemon: DaemonProcess, path: string, bytes: Uint8Array): Promise<number> {
  const done = daemon.waitForLine(`Successfully transferred ${path} ->`, { timeoutMs: 30_000 });
  done.catch(() => {});
  await Deno.writeFile(path, bytes);
  const closed = performance.now();
  return (await done).atMs - closed;
}

/** Run `trials` sequential single-file transfers (after one warm-up file). */
export async function runLatency(ctx: BenchContext, trials: number): Promise<Section> {
  const { watch, remote, config, remove } = await daemonSandbox(ctx, "latency", {
    method: "scp",
  });
  const daemon = DaemonProcess.start(config);
  const times: number[] = [];
  let warmUpMs: number;
  let arrived: number;
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    warmUpMs = await oneFile(daemon, join(watch, "warm-up.fits"), ctx.data.burstBytes[0]);
    ctx.progress(`latency warm-up (opens the shared connection): ${formatMs(warmUpMs)}`);
    for (let i = 0; i < trials; i++) {
      await sleep(PAUSE_MS);
      const name = `latency_${String(i).padStart(2, "0")}.fits`;
      times.push(await oneFile(daemon, join(watch, name), ctx.data.burstBytes[i + 1]));
    }
    const sizes = await listSizes(remote);
    arrived = [...sizes.values()].filter((size) => size === SMALL_FILE_BYTES).length;
    if (arrived !== trials + 1) {
      throw new Error(`Cannot accept the latency run: ${arrived} of ${trials + 1} files arrived`);
    }
  } finally {
    await daemon.stop();
    await remove();
    await sync();
  }
  const p50 = percentile(times, 50);
  const p95 = percentile(times, 95);
  const spread = `(${formatMs(Math.min(...times))}–${formatMs(Math.max(...times))})`;
  ctx.progress(`latency: p50 ${formatMs(p50)}, p95 ${formatMs(p95)} ${spread}`);
  return {
    title: "Latency",
    rows: [{
      benchmark: `single 200 KiB file, scp: close → verified (${trials} trials)`,
      daemon: `p50 ${formatMs(p50)}, p95 ${formatMs(p95)} ${spread}`,
      baseline: "—",
      ratio: "—",
      target: "p50 < 400 ms",
      met: p50 < 400,
    }],
    measured: [
      "A freshly started daemon with default settings (method scp, stability window 2 s,",
      "0.2 s confirmation after close-after-write, `verify_transfer: checksum`). One warm-up file",
      "first opens the shared SSH connection (not counted); then, one at a time with a",
      `${PAUSE_MS} ms pause between them, ${trials} files of 200 KiB under fresh names are`,
      "written and closed; each is timed from its close to the moment the benchmark read its",
      "`Successfully transferred` line. p50/p95 interpolate between the closest ranks.",
    ].join("\n"),
    details: [
      `per trial: ${times.map(formatMs).join(", ")}`,
      `warm-up file (includes opening the shared connection): ${formatMs(warmUpMs)}`,
      `everything above the 200 ms confirmation interval is the daemon's own work: p50 ${
        formatMs(p50 - 200)
      } (reference: one scp over an existing ControlMaster ≈ 13 ms in the anchors)`,
    ],
  };
}
