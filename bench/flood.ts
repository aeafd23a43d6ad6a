/**
 * Flood: 50,000 × 4 KiB written as fast as possible into the watch folder of
 * a freshly started daemon, far more events than the kernel's inotify queue
 * holds. Every file must arrive complete; measured: last close → last
 * `Successfully transferred`, how many files a scan found instead of their
 * own events, and the daemon's peak memory.
 *
 * @module
 */
import { DaemonProcess } from "./daemon_process.ts";
import type { ResultRow, Section } from "./report.ts";
import { type BenchContext, daemonSandbox, listSizes, randomBytes, sync } from "./setup.ts";
import { formatMs } from "./stats.ts";
import type { FloodWriteRequest, FloodWriteResult } from "./flood_writer.ts";

/** Options of {@linkcode runFlood}. */
export interface FloodOptions {
  /** Files in the flood. @default 50000 */
  files?: number;
  /** Methods, one run each, in this order. @default ["rsync"] (local: the `small` phase) */
  methods?: Array<"rsync" | "local">;
  /**
   * Goals for last close → last verified and for the daemon's CPU time over
   * the flood (from `Watching` to the last file); without them the row only
   * asks that every file arrive once.
   */
  goals?: { ms: number; cpuMs: number };
  /** The section's title. @default "Flood" */
  title?: string;
}

/** Size of each file, in bytes. */
const FLOOD_FILE_BYTES = 4096;
/** Folders the files are spread over (round-robin). */
const FLOOD_FOLDERS = 4;
/** How long the writer and the daemon may take for the whole flood before the run fails. */
const DEADLINE_MS = 300_000;

const SUCCESS = "Successfully transferred";
const METHOD_TEXT = {
  rsync: "rsync to the private sshd",
  local: "local into a folder on the same disk",
};
const LOCAL_LEFT_OUT = " `local` has a phase of its own with 20,000 files (`small`), with " +
  "goals for its time and its CPU.";
const LOST_EVENTS = "The watcher lost events";

/** One daemon run. */
interface FloodRun {
  method: "rsync" | "local";
  /** Last close → last verified. */
  ms: number;
  /** Time the writer took for all files. */
  writeMs: number;
  /** `Successfully transferred` lines (each file once: equals the file count). */
  sent: number;
  /** Files the daemon found by a scan instead of their own events. */
  foundByScan: number;
  /** Times the watcher reported lost events (kernel queue overflow) and the folder was watched again. */
  lostEvents: number;
  /** Peak resident set size (VmHWM), in bytes. */
  peakRssBytes: number;
  /** CPU time (user + system) the daemon used from `Watching` to the last arrival. */
  cpuMs: number;
  /** Exit code after SIGTERM (0: a clean stop). */
  exitCode: number;
  /** WARN/ERROR lines in the daemon's log. */
  problems: string[];
}

/** Relative path of file `i`: `night_<f>/flood_<i>.dat`. */
function relOf(i: number): string {
  return `night_${i % FLOOD_FOLDERS}/flood_${String(i).padStart(5, "0")}.dat`;
}

/** Check that `dir` holds every flood file, complete, and nothing else. */
async function checkArrived(dir: string, files: number, what: string): Promise<void> {
  const sizes = await listSizes(dir);
  const complete = [...sizes.values()].filter((size) => size === FLOOD_FILE_BYTES).length;
  if (complete !== files || sizes.size !== files) {
    throw new Error(
      `Cannot accept the ${what} flood: ${complete} complete file(s) of ${files} ` +
        `(${sizes.size} entries) at the destination`,
    );
  }
}

/**
 * Create the folders and write every file as fast as possible (synchronous
 * writes in a worker thread, round-robin over the folders, each file from
 * memory in one go); returns when the writer started and the last close
 * (`performance.now()` of this thread).
 */
async function writeFlood(
  watch: string,
  files: number,
): Promise<{ startMs: number; lastClosedMs: number }> {
  const worker = new Worker(new URL("./flood_writer.ts", import.meta.url), { type: "module" });
  const done = Promise.withResolvers<FloodWriteResult>();
  worker.onmessage = ({ data }: MessageEvent<FloodWriteResult>) => done.resolve(data);
  worker.onerror = (event) => {
    event.preventDefault();
    done.reject(new Error(`Cannot write the flood: ${event.message}`));
  };
  const request: FloodWriteRequest = {
    watch,
    rels: Array.from({ length: files }, (_, i) => relOf(i)),
    template: randomBytes(FLOOD_FILE_BYTES),
  };
  worker.postMessage(request);
  try {
    const result = await done.promise;
    const toLocal = (epochMs: number) => epochMs - performance.timeOrigin;
    return {
      startMs: toLocal(result.startEpochMs),
      lastClosedMs: toLocal(result.lastClosedEpochMs),
    };
  } finally {
    worker.terminate();
  }
}

async function daemonFlood(
  ctx: BenchContext,
  files: number,
  method: "rsync" | "local",
): Promise<FloodRun> {
  const { watch, remote, config, remove } = await daemonSandbox(ctx, `flood-${method}`, {
    method,
    filePatterns: ["*.dat"],
    closeShortcutPatterns: ["*.dat"],
  });
  const daemon = DaemonProcess.start(config);
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    const atWatching = await daemon.sample();
    const last = daemon.waitForLine(SUCCESS, { nth: files, timeoutMs: DEADLINE_MS });
    last.catch(() => {});
    const written = await writeFlood(watch, files);
    ctx.progress(
      `flood ${method}: ${files} files written in ${
        formatMs(written.lastClosedMs - written.startMs)
      }; waiting for the daemon`,
    );
    let lastLine;
    try {
      lastLine = await last;
    } catch (error) {
      // Say how many arrived rather than only that a line is missing.
      await checkArrived(remote, files, `daemon ${method}`);
      throw error;
    }
    await checkArrived(remote, files, `daemon ${method}`);
    const { peakRssBytes, cpuMs } = await daemon.sample();
    const status = await daemon.stop();
    const texts = daemon.lines.map((l) => l.text);
    return {
      method,
      ms: lastLine.atMs - written.lastClosedMs,
      writeMs: written.lastClosedMs - written.startMs,
      sent: daemon.count(SUCCESS),
      foundByScan: texts.reduce(
        (sum, t) => sum + Number(/(?:Found|The watcher missed) (\d+) new/.exec(t)?.[1] ?? 0),
        0,
      ),
      lostEvents: daemon.count(LOST_EVENTS),
      peakRssBytes,
      cpuMs: cpuMs - atWatching.cpuMs,
      exitCode: status.code,
      problems: texts.filter((t) => / (WARNING|ERROR|FATAL) /.test(t)),
    };
  } finally {
    await daemon.stop();
    await remove();
    await sync();
  }
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const count = (n: number) => n.toLocaleString("en-US");

/** Run the flood once per method (by default rsync over the private sshd only). */
export async function runFlood(ctx: BenchContext, options: FloodOptions = {}): Promise<Section> {
  const files = options.files ?? 50_000;
  const methods = options.methods ?? ["rsync"];
  const queue = await Deno.readTextFile("/proc/sys/fs/inotify/max_queued_events")
    .then((text) => count(Number(text.trim())), () => "unknown");
  const runs: FloodRun[] = [];
  for (const method of methods) {
    const run = await daemonFlood(ctx, files, method);
    runs.push(run);
    ctx.progress(
      `flood ${method}: all ${files} arrived ${formatMs(run.ms)} after the last close ` +
        `(writer took ${formatMs(run.writeMs)}); ${run.foundByScan} found by scans, ` +
        `${run.lostEvents} overflow(s); peak ${mb(run.peakRssBytes)}`,
    );
  }
  const goals = options.goals;
  const rows: ResultRow[] = runs.map((run) => ({
    benchmark: `flood ${count(files)} × 4 KiB, ${run.method}: delivered complete`,
    daemon: `${count(files)} of ${count(files)}, last close → last verified ` +
      `${formatMs(run.ms)}; daemon CPU ${formatMs(run.cpuMs)}; ` +
      `${count(run.foundByScan)} found by scans; peak VmHWM ${mb(run.peakRssBytes)}`,
    baseline: "—",
    ratio: "—",
    target: `all ${count(files)} delivered, each once, no restart` +
      (goals ? `; ≤ ${formatMs(goals.ms)} and ≤ ${formatMs(goals.cpuMs)} of daemon CPU` : ""),
    met: run.sent === files && run.exitCode === 0 &&
      (!goals || (run.ms <= goals.ms && run.cpuMs <= goals.cpuMs)),
  }));
  const details = runs.map((run) =>
    `daemon ${run.method}: writer took ${formatMs(run.writeMs)} ` +
    `(${count(Math.round(files / (run.writeMs / 1000)))} files/s); ` +
    `\`Successfully transferred\` lines: ${count(run.sent)}; ` +
    `the watcher reported lost events (\`${LOST_EVENTS}\`) ${run.lostEvents} time(s); ` +
    `files found by a scan instead of their own events (\`Found N new or changed\`, ` +
    `\`The watcher missed N new file(s)\`): ${count(run.foundByScan)}; ` +
    `exit code after SIGTERM: ${run.exitCode}; ${run.problems.length} warning/error line(s)` +
    (run.problems.length > 0 ? `, first: \`${run.problems[0]}\`` : "")
  );
  return {
    title: options.title ?? "Flood",
    rows,
    measured: [
      `${count(files)} files of 4 KiB (random bytes, each with its index in the first four)`,
      `are written round-robin into ${FLOOD_FOLDERS} new folders of the watch folder of a freshly`,
      "started daemon, one after another as fast as a thread of the benchmark goes (synchronous",
      "write + close each, from memory): about three inotify events a file, many times the kernel's",
      `queue of ${queue} events (\`fs.inotify.max_queued_events\` here), so the queue may overflow`,
      "and the daemon must find the files whose events were dropped by reading folders again,",
      "long before its hourly rescan. Settings: the defaults (`max_concurrent_transfers: 2`,",
      "`verify_transfer: checksum`) with `file_patterns: [*.dat]` and",
      "`close_shortcut_patterns: [*.dat]` (a closed file goes after 0.2 s, like a closed FITS",
      "file; one found by a scan waits the 2 s stability window). One run (it is long) per",
      `method: ${methods.map((m) => METHOD_TEXT[m]).join(", then ")}.${
        methods.includes("local") ? "" : LOCAL_LEFT_OUT
      } The phase fails unless the destination then holds every file at full size and nothing`,
      "else. Measured:",
      `last close → the ${count(files)}th \`Successfully transferred\` line; the files`,
      "found by scans (the counts of the daemon's `Found N new or changed` and `The watcher",
      "missed N new file(s)` lines); the daemon's peak resident memory (VmHWM) after the last",
      "file; the daemon's CPU time (user + system, `/proc/<pid>/stat`) from its `Watching` line",
      "to the last arrival. The target also asks for exactly one `Successfully transferred` per",
      "file and a clean exit on SIGTERM (the same daemon process throughout: no restart).",
    ].join("\n"),
    details,
  };
}
