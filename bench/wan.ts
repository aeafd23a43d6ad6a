/**
 * Long-haul link: the daemon and the baseline reach the private sshd through
 * a relay that adds 50 ms each way (100 ms of round-trip time). A single
 * FITS file, close → present under its final name at the destination (seen
 * by a watch on the destination folder), for scp and rsync; a burst of small
 * FITS files against one `rsync -a` through the same relay; and what each
 * spends in round trips (turns at the relay) and program runs (`Running`
 * lines of the daemon's `-v` log).
 *
 * @module
 */
import { basename, join } from "node:path";
import { DaemonProcess, type LogLine } from "./daemon_process.ts";
import type { ResultRow, Section } from "./report.ts";
import {
  type BenchContext,
  daemonSandbox,
  DestinationWatch,
  freshRemoteDir,
  listSizes,
  rawRsyncRsh,
  remoteSpec,
  sleep,
  SMALL_FILE_BYTES,
  sync,
  timeCommand,
} from "./setup.ts";
import { formatMs, formatSummaryMs, percentile, summarize } from "./stats.ts";
import { DelayRelay, type RelayCounts } from "./wan_relay.ts";

/** Delay each way. */
const ONE_WAY_MS = 50;
const RTT_MS = 2 * ONE_WAY_MS;
/** Pause between two single-file trials. */
const PAUSE_MS = 300;
const SUCCESS = "Successfully transferred";

/** Options of {@linkcode runWan}. */
export interface WanOptions {
  /** Single-file trials per method. @default 10 */
  trials?: number;
  /** Files in the burst. @default 1000 */
  burstFiles?: number;
}

type Method = "scp" | "rsync";

/** `ssh_options` that keep the sshd's pinned host key valid through the relay's port. */
function aliasOptions(ctx: BenchContext): string[] {
  return [`HostKeyAlias=[127.0.0.1]:${ctx.sshd.port}`];
}

/** The programs (and ssh's remote command word) of the `Running` lines in `lines`. */
function programRuns(lines: LogLine[]): string[] {
  const out: string[] = [];
  for (const { text } of lines) {
    const at = text.indexOf("Running ");
    if (at < 0) continue;
    const argv = text.slice(at + "Running ".length);
    const words = [...argv.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
    const program = basename(words[0] ?? argv.split(/[\s,]/)[0] ?? "?");
    out.push(program);
  }
  return out;
}

/** `scp ×3, ssh ×2` for a list of program names. */
function tally(programs: string[], per = 1): string {
  const counts = new Map<string, number>();
  for (const p of programs) counts.set(p, (counts.get(p) ?? 0) + 1);
  if (counts.size === 0) return "none";
  return [...counts].map(([p, n]) => `${p} ×${+(n / per).toFixed(2)}`).join(", ");
}

/** One single-file trial's figures. */
interface Trial {
  ms: number;
  turns: number;
  programs: string[];
}

function diff(after: RelayCounts, before: RelayCounts): RelayCounts {
  return {
    connections: after.connections - before.connections,
    turns: after.turns - before.turns,
    upBytes: after.upBytes - before.upBytes,
    downBytes: after.downBytes - before.downBytes,
  };
}

/** Single FITS files, one at a time, through the relay with `method`. */
async function singleFiles(
  ctx: BenchContext,
  relay: DelayRelay,
  method: Method,
  trials: number,
): Promise<{ trials: Trial[]; warmUpMs: number }> {
  const box = await daemonSandbox(ctx, `wan-single-${method}`, {
    method,
    sshPort: relay.port,
    sshOptions: aliasOptions(ctx),
  });
  const daemon = DaemonProcess.start(box.config, { verbose: true });
  const out: Trial[] = [];
  let warmUpMs: number;
  let watch: DestinationWatch | undefined;
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    const warm = daemon.waitForLine(`${SUCCESS} `, { timeoutMs: 60_000 });
    const warmStart = performance.now();
    await Deno.writeFile(join(box.watch, "warm-up.fits"), ctx.data.burstBytes[0]);
    warmUpMs = (await warm).atMs - warmStart;
    // The night folder exists now: the watch sees the files renamed into it.
    watch = new DestinationWatch(box.remote);
    for (let i = 0; i < trials; i++) {
      await sleep(PAUSE_MS);
      const name = `wan_${method}_${String(i).padStart(2, "0")}.fits`;
      const path = join(box.watch, name);
      const arrived = watch.arrival(name, SMALL_FILE_BYTES, 60_000);
      const logged = daemon.waitForLine(`${SUCCESS} ${path} ->`, { timeoutMs: 60_000 });
      arrived.catch(() => {});
      logged.catch(() => {});
      const firstLine = daemon.lines.length;
      const before = relay.counts();
      await Deno.writeFile(path, ctx.data.burstBytes[i + 1]);
      const closed = performance.now();
      const atMs = await arrived;
      await logged;
      // Whatever the daemon still does for this file after its success line (none expected).
      await sleep(RTT_MS);
      out.push({
        ms: atMs - closed,
        turns: diff(relay.counts(), before).turns,
        programs: programRuns(daemon.lines.slice(firstLine)),
      });
    }
    const sizes = await listSizes(box.remote);
    const complete = [...sizes.values()].filter((size) => size === SMALL_FILE_BYTES).length;
    if (complete !== trials + 1) {
      throw new Error(`Cannot accept the wan ${method} run: ${complete} of ${trials + 1} arrived`);
    }
  } finally {
    await watch?.close();
    await daemon.stop();
    await box.remove();
    await sync();
  }
  return { trials: out, warmUpMs };
}

/** Write `count` burst files into `folder`; returns the last close. */
async function writeFiles(ctx: BenchContext, folder: string, count: number): Promise<number> {
  for (let i = 0; i < count; i++) {
    await Deno.writeFile(join(folder, ctx.data.burstNames[i]), ctx.data.burstBytes[i]);
  }
  return performance.now();
}

async function checkBurst(dir: string, count: number, what: string): Promise<void> {
  const sizes = await listSizes(dir);
  const complete = [...sizes.values()].filter((size) => size === SMALL_FILE_BYTES).length;
  if (complete !== count || sizes.size !== count) {
    throw new Error(`Cannot accept the wan ${what} burst: ${complete} of ${count} complete`);
  }
}

/** One-shot `rsync -a` of `count` freshly written files through the relay. */
async function baselineBurst(
  ctx: BenchContext,
  relay: DelayRelay,
  count: number,
): Promise<{ ms: number; turns: number }> {
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "wan-baseline-" });
  const remote = await freshRemoteDir(ctx, "itx-bench-wan-rsync-");
  try {
    await writeFiles(ctx, dir, count);
    const before = relay.counts();
    const ms = await timeCommand([
      "rsync",
      "-a",
      "-e",
      rawRsyncRsh(ctx.sshd, relay.port, aliasOptions(ctx)),
      `${dir}/`,
      remoteSpec(ctx.sshd, `${remote.path}/`),
    ]);
    await checkBurst(remote.path, count, "one-shot rsync");
    return { ms, turns: diff(relay.counts(), before).turns };
  } finally {
    await remote.remove();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
}

/** A daemon burst of `count` files through the relay: last close → last success line. */
async function daemonBurst(
  ctx: BenchContext,
  relay: DelayRelay,
  method: Method,
  count: number,
): Promise<{ ms: number; turns: number; programs: string[]; batches: number }> {
  const box = await daemonSandbox(ctx, `wan-burst-${method}`, {
    method,
    sshPort: relay.port,
    sshOptions: aliasOptions(ctx),
  });
  const daemon = DaemonProcess.start(box.config, { verbose: true });
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    const last = daemon.waitForLine(SUCCESS, { nth: count, timeoutMs: 600_000 });
    last.catch(() => {});
    const firstLine = daemon.lines.length;
    const before = relay.counts();
    const lastClosed = await writeFiles(ctx, box.watch, count);
    const lastLine = await last;
    await checkBurst(box.remote, count, `daemon ${method}`);
    const programs = programRuns(daemon.lines.slice(firstLine));
    return {
      ms: lastLine.atMs - lastClosed,
      turns: diff(relay.counts(), before).turns,
      programs,
      batches: programs.filter((p) => p === method).length,
    };
  } finally {
    await daemon.stop();
    await box.remove();
    await sync();
  }
}

/** Run the long-haul benchmark. */
export async function runWan(ctx: BenchContext, options: WanOptions = {}): Promise<Section> {
  const trials = options.trials ?? 10;
  const count = options.burstFiles ?? 1000;
  const relay = DelayRelay.start(ctx.sshd.port, ONE_WAY_MS);
  const rows: ResultRow[] = [];
  const details: string[] = [];
  try {
    const singles = new Map<Method, Trial[]>();
    for (const method of ["scp", "rsync"] as const) {
      const run = await singleFiles(ctx, relay, method, trials);
      singles.set(method, run.trials);
      const p50 = percentile(run.trials.map((t) => t.ms), 50);
      ctx.progress(
        `wan single ${method}: p50 ${formatMs(p50)} (warm-up ${formatMs(run.warmUpMs)})`,
      );
      const turns = summarize(run.trials.map((t) => t.turns));
      rows.push({
        benchmark: `100 ms RTT, single 200 KiB FITS file, ${method}: close → present at the ` +
          `destination (${trials} trials)`,
        daemon: `p50 ${formatMs(p50)}, p95 ${
          formatMs(percentile(run.trials.map((t) => t.ms), 95))
        }; ${turns.median} round trips`,
        baseline: `${formatMs(2 * RTT_MS)} (floor: data + confirmation)`,
        ratio: `${(p50 / RTT_MS).toFixed(1)} RTT`,
        target: "p50 ≤ 350 ms",
        met: p50 <= 350,
      });
      details.push(
        `single file, ${method}, per trial: ${run.trials.map((t) => formatMs(t.ms)).join(", ")}; ` +
          `round trips (turns at the relay) per file: ${
            run.trials.map((t) => t.turns).join(", ")
          }; ` +
          `programs run per file: ${tally(run.trials.flatMap((t) => t.programs), trials)}; ` +
          `warm-up file (opens the shared connection) ${formatMs(run.warmUpMs)}`,
      );
    }
    const base = await baselineBurst(ctx, relay, count);
    ctx.progress(`wan burst: one-shot rsync ${formatMs(base.ms)} (${base.turns} round trips)`);
    details.push(
      `one-shot rsync of the ${count} files through the relay: ${formatMs(base.ms)}, ` +
        `${base.turns} round trips in all (connection set-up included)`,
    );
    for (const method of ["rsync", "scp"] as const) {
      const run = await daemonBurst(ctx, relay, method, count);
      ctx.progress(
        `wan burst ${method}: ${formatMs(run.ms)} after the last close ` +
          `(${run.turns} round trips, ${run.programs.length} program runs)`,
      );
      const limit = 0.6 * base.ms;
      rows.push({
        benchmark: `100 ms RTT, burst ${count} × 200 KiB, ${method}: last close → last verified`,
        daemon: formatSummaryMs(summarize([run.ms])),
        baseline: `${formatMs(base.ms)} (one-shot \`rsync -a\` through the relay)`,
        ratio: `${(run.ms / base.ms).toFixed(2)}×`,
        target: `≤ 0.6 × rsync = ${formatMs(limit)}`,
        met: run.ms <= limit,
      });
      details.push(
        `burst, ${method}: ${run.turns} round trips in all (${
          (run.turns / count).toFixed(2)
        } per file); ${run.batches} ${method} run(s), i.e. ${
          (count / Math.max(1, run.batches)).toFixed(1)
        } files per batch; programs run: ${tally(run.programs)} (per file: ${
          tally(run.programs, count)
        })`,
      );
    }
  } finally {
    await relay.close();
  }
  return {
    title: "Long-haul link (100 ms RTT)",
    rows,
    measured: [
      `Every SSH connection (the daemon's and the baseline's) goes through a TCP relay of the`,
      `benchmark's own that holds each chunk ${ONE_WAY_MS} ms before passing it on, in both`,
      `directions (${RTT_MS} ms round-trip time, bandwidth not limited), to the private sshd.`,
      "Single file: a freshly started daemon (default settings, started with `-v`) sends one",
      "warm-up file (opens the shared connection; not counted), then, one at a time with a",
      `${PAUSE_MS} ms pause, FITS files of 200 KiB; each is timed from its close to the event of`,
      "a recursive watch (`Deno.watchFs`, inotify) on the destination folder that shows it",
      "under its final name at full size. Round trips = turns at the relay (client data after",
      "server data) from the close until the daemon's success line; program runs = the",
      "`Running` lines of the daemon's log in that span. Burst: the files are written one after",
      "another into the watch folder of a fresh daemon, timed from the last close to the last",
      "`Successfully transferred` line; baseline: the same files written into a plain folder,",
      "then one `rsync -a` over a fresh ssh connection through the same relay (wall time).",
    ].join("\n"),
    details,
  };
}
