/**
 * Burst: 2,000 × 200 KiB written into the watch folder of a running daemon,
 * timed from the last close to the last `Successfully transferred` line,
 * against one `rsync -a` of the same files over a fresh SSH connection.
 *
 * @module
 */
import { join } from "node:path";
import { DaemonProcess } from "./daemon_process.ts";
import { PageViewer } from "./page_viewer.ts";
import { type SiegeCount, SiegeProcess } from "./siege.ts";
import type { ResultRow, Section } from "./report.ts";
import {
  type BenchContext,
  BURST_FILES,
  daemonSandbox,
  freshRemoteDir,
  listSizes,
  rawRsyncRsh,
  remoteSpec,
  SMALL_FILE_BYTES,
  sync,
  timeCommand,
} from "./setup.ts";
import { freePort } from "../tests/helpers/net.ts";
import { formatMs, formatSummaryMs, summarize } from "./stats.ts";

/** One daemon burst. */
interface DaemonBurst {
  /** Last close → last verified. */
  ms: number;
  /** First close → first verified. */
  firstMs: number;
  /** Time the writer took for all files. */
  writeMs: number;
  /** First write started → last verified. */
  totalMs: number;
  /** WARN/ERROR lines in the daemon's log. */
  problems: string[];
  /** Files the daemon found by scanning (after the watcher reported lost events). */
  foundByScan: number;
  /** Updates the open status page received (with `page`). */
  pageUpdates?: number;
  /** What the siege of the status page saw (with `siege`). */
  siege?: SiegeCount;
}

const SUCCESS = "Successfully transferred";

/** Connection attempts a siege of the status page keeps in flight. */
const SIEGE_IN_FLIGHT = 1_000;

/**
 * Pairs of runs (without, then with the siege) added after the rounds when
 * there are more than one: on two cores one run's spread is larger than the
 * siege's effect, so its row compares more runs.
 */
const SIEGE_EXTRA_PAIRS = 2;

/** Check that `dir` holds every burst file, complete, and nothing else. */
async function checkArrived(dir: string, what: string): Promise<void> {
  const sizes = await listSizes(dir);
  const complete = [...sizes.values()].filter((size) => size === SMALL_FILE_BYTES).length;
  if (complete !== BURST_FILES || sizes.size !== BURST_FILES) {
    throw new Error(
      `Cannot accept the ${what} run: ${complete} complete file(s) of ${BURST_FILES} ` +
        `(${sizes.size} entries) at the destination`,
    );
  }
}

/** Write every burst file into `folder`, one after another; returns the close times. */
async function writeBurst(
  ctx: BenchContext,
  folder: string,
): Promise<{ startMs: number; firstClosedMs: number; lastClosedMs: number }> {
  const startMs = performance.now();
  let firstClosedMs = 0;
  for (const [i, name] of ctx.data.burstNames.entries()) {
    await Deno.writeFile(join(folder, name), ctx.data.burstBytes[i]);
    if (i === 0) firstClosedMs = performance.now();
  }
  return { startMs, firstClosedMs, lastClosedMs: performance.now() };
}

/** One baseline run: the writer's time, then the rsync's. */
interface BaselineBurst {
  writeMs: number;
  rsyncMs: number;
}

async function baselineBurst(ctx: BenchContext): Promise<BaselineBurst> {
  const dir = await Deno.makeTempDir({ dir: ctx.workDir, prefix: "burst-baseline-" });
  const remote = await freshRemoteDir(ctx, "itx-bench-rsync-");
  try {
    // Written just before, like the daemon's sources: both read files the kernel is writing back.
    const written = await writeBurst(ctx, dir);
    const rsyncMs = await timeCommand([
      "rsync",
      "-a",
      "-e",
      rawRsyncRsh(ctx.sshd),
      `${dir}/`,
      remoteSpec(ctx.sshd, `${remote.path}/`),
    ]);
    await checkArrived(remote.path, "one-shot rsync");
    return { writeMs: written.lastClosedMs - written.startMs, rsyncMs };
  } finally {
    await remote.remove();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await sync();
  }
}

/** The methods a burst is sent with. */
type BurstMethod = "rsync" | "scp" | "local";

/** Each method's target, as a fraction of the same round's one-shot `rsync -a`. */
const BURST_TARGET: Record<BurstMethod, number> = { rsync: 0.6, scp: 0.6, local: 0.5 };

/** Extras of a daemon burst: the page open in Chromium, or a siege of the page. */
interface BurstExtras {
  page?: boolean;
  /** Connection attempts kept in flight against the status page. */
  siege?: number;
}

async function daemonBurst(
  ctx: BenchContext,
  method: BurstMethod,
  { page = false, siege: inFlight = 0 }: BurstExtras = {},
): Promise<DaemonBurst> {
  const withPage = page || inFlight > 0;
  const port = withPage ? freePort() : 0;
  const { watch, remote, config, remove } = await daemonSandbox(ctx, `burst-${method}`, {
    method,
    statusListen: withPage ? `127.0.0.1:${port}` : "",
  });
  const daemon = DaemonProcess.start(config);
  let viewer: PageViewer | undefined;
  let siege: SiegeProcess | undefined;
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    if (page) viewer = await PageViewer.open(`http://127.0.0.1:${port}/`);
    if (inFlight > 0) {
      siege = SiegeProcess.start(port, inFlight);
      // The attempts are in flight before the first file is written, and the first 256 (held
      // since the start) are closed by the daemon's 10 s request time during the burst.
      await new Promise((resolve) => setTimeout(resolve, 9_000));
    }
    const first = daemon.waitForLine(SUCCESS, { timeoutMs: 60_000 });
    const last = daemon.waitForLine(SUCCESS, { nth: BURST_FILES, timeoutMs: 240_000 });
    first.catch(() => {});
    last.catch(() => {});
    const written = await writeBurst(ctx, watch);
    const lastLine = await last;
    const firstLine = await first;
    await checkArrived(remote, `daemon ${method}`);
    const pageUpdates = await viewer?.updates();
    const sieged = await siege?.stop();
    siege = undefined;
    return {
      pageUpdates,
      siege: sieged,
      ms: lastLine.atMs - written.lastClosedMs,
      firstMs: firstLine.atMs - written.firstClosedMs,
      writeMs: written.lastClosedMs - written.startMs,
      totalMs: lastLine.atMs - written.startMs,
      problems: daemon.lines.map((l) => l.text).filter((t) => / (WARNING|ERROR|FATAL) /.test(t)),
      foundByScan: daemon.lines.reduce(
        (sum, l) => sum + Number(/(?:Found|The watcher missed) (\d+) new/.exec(l.text)?.[1] ?? 0),
        0,
      ),
    };
  } finally {
    await viewer?.close();
    await siege?.stop();
    await daemon.stop();
    await remove();
    await sync();
  }
}

/**
 * Run `rounds` rounds of: one-shot rsync, then a daemon burst per method.
 */
export async function runBurst(
  ctx: BenchContext,
  methods: BurstMethod[],
  rounds: number,
): Promise<Section> {
  const baselineRuns: BaselineBurst[] = [];
  const runs = new Map<string, DaemonBurst[]>(methods.map((m) => [m, []]));
  const pageRuns: DaemonBurst[] = [];
  const siegeRuns: DaemonBurst[] = [];
  for (let round = 1; round <= rounds; round++) {
    const run = await baselineBurst(ctx);
    baselineRuns.push(run);
    ctx.progress(
      `burst round ${round}/${rounds}: one-shot rsync ${formatMs(run.rsyncMs)} ` +
        `(writer took ${formatMs(run.writeMs)})`,
    );
    for (const method of methods) {
      const run = await daemonBurst(ctx, method);
      runs.get(method)!.push(run);
      ctx.progress(
        `burst round ${round}/${rounds}: daemon ${method} ${formatMs(run.ms)} after the last ` +
          `close (writer took ${formatMs(run.writeMs)}, first file ${formatMs(run.firstMs)})`,
      );
    }
    const paged = await daemonBurst(ctx, methods[0], { page: true });
    pageRuns.push(paged);
    ctx.progress(
      `burst round ${round}/${rounds}: daemon ${methods[0]} with the status page open ` +
        `${formatMs(paged.ms)} after the last close (writer took ${formatMs(paged.writeMs)}, ` +
        `${paged.pageUpdates} pushed updates)`,
    );
    const sieged = await daemonBurst(ctx, methods[0], { siege: SIEGE_IN_FLIGHT });
    siegeRuns.push(sieged);
    ctx.progress(
      `burst round ${round}/${rounds}: daemon ${methods[0]} with ${SIEGE_IN_FLIGHT} connection ` +
        `attempts at the page ${formatMs(sieged.ms)} after the last close ` +
        `(${sieged.siege?.opened} opened, ${sieged.siege?.closedByServer} closed by the daemon)`,
    );
  }
  // More runs without and with the siege, alternating.
  const extraPlain: DaemonBurst[] = [];
  for (let pair = 1; rounds > 1 && pair <= SIEGE_EXTRA_PAIRS; pair++) {
    extraPlain.push(await daemonBurst(ctx, methods[0]));
    siegeRuns.push(await daemonBurst(ctx, methods[0], { siege: SIEGE_IN_FLIGHT }));
    ctx.progress(
      `burst, extra pair ${pair}/${SIEGE_EXTRA_PAIRS}: daemon ${methods[0]} ` +
        `${formatMs(extraPlain.at(-1)!.ms)}, under the siege ${formatMs(siegeRuns.at(-1)!.ms)}`,
    );
  }
  const baseline = baselineRuns.map((r) => r.rsyncMs);
  const base = summarize(baseline);
  const rows: ResultRow[] = [];
  const details = [
    `one-shot rsync per round: ${baseline.map(formatMs).join(", ")}; writer took ${
      baselineRuns.map((r) => formatMs(r.writeMs)).join(", ")
    }; writer + rsync: ${baselineRuns.map((r) => formatMs(r.writeMs + r.rsyncMs)).join(", ")}`,
  ];
  for (const method of methods) {
    const list = runs.get(method)!;
    const daemon = summarize(list.map((r) => r.ms));
    const factor = BURST_TARGET[method];
    const limitMs = factor * base.median;
    rows.push({
      benchmark: `burst 2,000 × 200 KiB, ${method}: last close → last verified`,
      daemon: formatSummaryMs(daemon),
      baseline: `${formatSummaryMs(base)} (one-shot \`rsync -a\`)`,
      ratio: `${(daemon.median / base.median).toFixed(2)}×`,
      target: `≤ ${factor} × rsync = ${formatMs(limitMs)}`,
      met: daemon.median <= limitMs,
    });
    const paired = list.map((r, i) => (r.ms / baseline[i]).toFixed(2));
    details.push(
      `daemon ${method} per round: ${list.map((r) => formatMs(r.ms)).join(", ")} ` +
        `(ratio to the same round's rsync: ${paired.join(", ")}); ` +
        `writer took ${list.map((r) => formatMs(r.writeMs)).join(", ")}; ` +
        `first write → last verified ${list.map((r) => formatMs(r.totalMs)).join(", ")}; ` +
        `first close → first verified ${list.map((r) => formatMs(r.firstMs)).join(", ")}; ` +
        `files found by a scan instead of their own events (\`Found N new or changed\`, ` +
        `\`The watcher missed N new file(s)\`): ` +
        list.map((r) => r.foundByScan).join(", "),
    );
    const problems = list.flatMap((r) => r.problems);
    if (problems.length > 0) {
      details.push(
        `daemon ${method}: ${problems.length} warning/error line(s), first: \`${problems[0]}\``,
      );
    }
  }
  const plainRuns = [...runs.get(methods[0])!, ...extraPlain];
  const plain = summarize(plainRuns.map((r) => r.ms));
  /** A row comparing `list` with the runs without the page, against `factor` × those. */
  const againstPlain = (what: string, list: DaemonBurst[], factor: number): ResultRow => {
    const summary = summarize(list.map((r) => r.ms));
    return {
      benchmark: `burst, ${methods[0]}, ${what}: last close → last verified`,
      daemon: formatSummaryMs(summary),
      baseline: `${formatSummaryMs(plain)} (the same without the page)`,
      ratio: `${(summary.median / plain.median).toFixed(2)}×`,
      target: `≤ ${factor} × without the page`,
      met: summary.median <= factor * plain.median,
    };
  };
  rows.push(againstPlain("status page open in Chromium", pageRuns, 1.05));
  details.push(
    `daemon ${methods[0]} with the page open per round: ${
      pageRuns.map((r) => formatMs(r.ms)).join(", ")
    }; updates the page received: ${pageRuns.map((r) => r.pageUpdates).join(", ")}`,
  );
  rows.push(
    againstPlain(
      `${SIEGE_IN_FLIGHT} connection attempts at the status page in flight`,
      siegeRuns,
      1.1,
    ),
  );
  details.push(
    `daemon ${methods[0]} without the page, the rounds' runs and the extra ones: ${
      plainRuns.map((r) => formatMs(r.ms)).join(", ")
    }`,
  );
  details.push(
    `daemon ${methods[0]} under the siege per round (then the extra pairs): ${
      siegeRuns.map((r) => formatMs(r.ms)).join(", ")
    }; writer took ${siegeRuns.map((r) => formatMs(r.writeMs)).join(", ")}; first write → last ` +
      `verified ${
        siegeRuns.map((r) => formatMs(r.totalMs)).join(", ")
      }; connections the siege opened: ${
        siegeRuns.map((r) => r.siege?.opened).join(", ")
      }; closed by the daemon: ${
        siegeRuns.map((r) => r.siege?.closedByServer).join(", ")
      }; answered: ${siegeRuns.map((r) => r.siege?.answered).join(", ")}`,
  );
  return {
    title: "Burst",
    rows,
    measured: [
      `${BURST_FILES} FITS files of 200 KiB (one header block, random pixels) are written one`,
      "after another (write + close each, from memory) into the watch folder of a freshly",
      "started daemon (default settings: a closed FITS file whose structure is complete goes at",
      "once, `max_concurrent_transfers: 4`, `verify_transfer: checksum`, default cipher). The daemon",
      "figure runs from the moment the last file was closed to the moment the benchmark read",
      `the ${BURST_FILES}th \`Successfully transferred\` line on the daemon's stderr (logged`,
      "after the verification and the rename into place); the destination is then checked",
      "for all files at full size. The daemon opens its shared SSH connection during the",
      "burst, like the baseline. Baseline: the same files written the same way into a plain",
      "folder, then at once one `rsync -a` of that folder over a fresh ssh connection to the",
      "same server (whole process wall time), so both read files the kernel is still writing",
      "back. Rounds alternate baseline and daemon runs; each run uses a fresh destination,",
      "watch folder and ledger, followed by `sync`. Each round ends with one more daemon run",
      "(the first method) with the status page open in headless Chromium, rendering every",
      "pushed update, and one with the status page under a siege: " +
      `${SIEGE_IN_FLIGHT} connection attempts`,
      "from a process of their own kept in flight, each sending its request head one line",
      "a second and never ending it, and opened again as soon as the daemon closes it (started",
      "9 s before the burst, so the daemon's 10 s request time closes the first ones during it).",
      `After the rounds, ${SIEGE_EXTRA_PAIRS} more pairs of runs without and with the siege.`,
      "Both are compared with all daemon runs of that method without the page.",
    ].join("\n"),
    details,
  };
}
