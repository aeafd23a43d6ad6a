/**
 * Latency: one 200 KiB file at a time into a running daemon (default
 * settings, scp), timed from its close to its arrival under its final name,
 * seen by an inotify watch on the destination; FITS files (complete by their
 * structure at the close) and files that are not FITS (complete after the
 * stability window) apart.
 *
 * @module
 */
import { basename, join } from "node:path";
import { DaemonProcess } from "./daemon_process.ts";
import type { Section } from "./report.ts";
import {
  type BenchContext,
  daemonSandbox,
  DestinationWatch,
  listSizes,
  randomBytes,
  sleep,
  SMALL_FILE_BYTES,
  sync,
} from "./setup.ts";
import { formatMs, percentile } from "./stats.ts";

/** Pause between two trials. */
const PAUSE_MS = 250;

/** The daemon's default `stability_window_seconds`, in ms. */
const WINDOW_MS = 2000;

/** One trial: from the close to the final name at the destination, and to the success line. */
interface Trial {
  arrivedMs: number;
  loggedMs: number;
}

/**
 * Write one file and time it from its close to its arrival under its final
 * name at the destination (seen by `arrivals`) and to its success line.
 */
async function oneFile(
  daemon: DaemonProcess,
  arrivals: DestinationWatch,
  path: string,
  bytes: Uint8Array,
): Promise<Trial> {
  const done = daemon.waitForLine(`Successfully transferred ${path} ->`, { timeoutMs: 30_000 });
  const arrived = arrivals.arrival(basename(path), bytes.length, 30_000);
  done.catch(() => {});
  arrived.catch(() => {});
  await Deno.writeFile(path, bytes);
  const closed = performance.now();
  return { arrivedMs: (await arrived) - closed, loggedMs: (await done).atMs - closed };
}

/** p50, p95 and the range of `times`. */
function describe(times: number[]): { p50: number; text: string } {
  const p50 = percentile(times, 50);
  const p95 = percentile(times, 95);
  const spread = `(${formatMs(Math.min(...times))}–${formatMs(Math.max(...times))})`;
  return { p50, text: `p50 ${formatMs(p50)}, p95 ${formatMs(p95)} ${spread}` };
}

/**
 * Run `fitsTrials` sequential single-file transfers of FITS files (after one
 * warm-up file), then `plainTrials` of files that are not FITS.
 */
export async function runLatency(
  ctx: BenchContext,
  fitsTrials: number,
  plainTrials: number,
): Promise<Section> {
  const { watch, remote, config, remove } = await daemonSandbox(ctx, "latency", {
    method: "scp",
    filePatterns: ["*.fits", "*.dat"],
  });
  const daemon = DaemonProcess.start(config);
  const fitsResults: Trial[] = [];
  const plainResults: Trial[] = [];
  let warmUpMs: number;
  let arrivals: DestinationWatch | undefined;
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    const warm = daemon.waitForLine("Successfully transferred ", { timeoutMs: 60_000 });
    const warmStart = performance.now();
    await Deno.writeFile(join(watch, "warm-up.fits"), ctx.data.burstBytes[0]);
    warmUpMs = (await warm).atMs - warmStart;
    ctx.progress(`latency warm-up (opens the shared connection): ${formatMs(warmUpMs)}`);
    // The night folder exists now: the watch sees the files renamed into it.
    arrivals = new DestinationWatch(remote);
    for (let i = 0; i < fitsTrials; i++) {
      await sleep(PAUSE_MS);
      const name = `latency_${String(i).padStart(2, "0")}.fits`;
      fitsResults.push(
        await oneFile(daemon, arrivals, join(watch, name), ctx.data.burstBytes[i + 1]),
      );
    }
    for (let i = 0; i < plainTrials; i++) {
      await sleep(PAUSE_MS);
      const name = `plain_${String(i).padStart(2, "0")}.dat`;
      plainResults.push(
        await oneFile(daemon, arrivals, join(watch, name), randomBytes(SMALL_FILE_BYTES)),
      );
    }
    const sizes = await listSizes(remote);
    const arrived = [...sizes.values()].filter((size) => size === SMALL_FILE_BYTES).length;
    const sent = fitsTrials + plainTrials + 1;
    if (arrived !== sent) {
      throw new Error(`Cannot accept the latency run: ${arrived} of ${sent} files arrived`);
    }
  } finally {
    await arrivals?.close();
    await daemon.stop();
    await remove();
    await sync();
  }
  const fitsTimes = fitsResults.map((t) => t.arrivedMs);
  const plainTimes = plainResults.map((t) => t.arrivedMs);
  const fits = describe(fitsTimes);
  const plain = describe(plainTimes);
  ctx.progress(`latency FITS: ${fits.text}; not FITS: ${plain.text}`);
  return {
    title: "Latency",
    rows: [{
      benchmark: `single 200 KiB FITS file, scp: close → verified (${fitsTrials} trials)`,
      daemon: fits.text,
      baseline: "—",
      ratio: "—",
      target: "p50 ≤ 100 ms",
      met: fits.p50 <= 100,
    }, {
      benchmark: `single 200 KiB file, not FITS, scp: close → verified (${plainTrials} trials)`,
      daemon: plain.text,
      baseline: "—",
      ratio: "—",
      target: "p50 < 2 s window + 400 ms",
      met: plain.p50 < WINDOW_MS + 400,
    }],
    measured: [
      "A freshly started daemon with default settings (method scp, stability window 2 s,",
      "`verify_transfer: checksum`), `file_patterns` `*.fits` and `*.dat`. One warm-up file first",
      "opens the shared SSH connection (not counted); then, one at a time with a",
      `${PAUSE_MS} ms pause between them, ${fitsTrials} FITS files of 200 KiB (one header block,`,
      "random 16-bit pixels: complete by their structure as soon as the writer closes them),",
      `then ${plainTrials} files of random bytes of the same size (not FITS: complete after the`,
      "2 s window), under fresh names, are written and closed; each is timed from its close to",
      "the moment a recursive watch (`Deno.watchFs`, inotify) on the destination folder shows it",
      "under its final name at full size (the rename comes after the verification; a copy in an",
      "upload folder does not count). The daemon's `Successfully transferred` line, logged once",
      "the rename is flushed too, is given in the details. p50/p95 interpolate between the",
      "closest ranks.",
    ].join("\n"),
    details: [
      `FITS per trial: ${fitsTimes.map(formatMs).join(", ")}; to the success line: ${
        describe(fitsResults.map((t) => t.loggedMs)).text
      }`,
      `not FITS per trial: ${plainTimes.map(formatMs).join(", ")}; to the success line: ${
        describe(plainResults.map((t) => t.loggedMs)).text
      }`,
      `warm-up file (includes opening the shared connection): ${formatMs(warmUpMs)}`,
      `above the 2 s window, the files that are not FITS took p50 ${
        formatMs(plain.p50 - WINDOW_MS)
      } (reference: one scp over an existing ControlMaster ≈ 13 ms in the anchors)`,
    ],
  };
}
