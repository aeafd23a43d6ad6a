/**
 * `deno task bench`: the daemon against the raw tools, in the same run, on a
 * private sshd on loopback. Writes bench/RESULTS.md (after a full run) and
 * prints the table to stdout; progress goes to stderr. The file's session log
 * (from `## Session log` on, written by hand) is kept below the new report.
 *
 * Usage: `deno task bench [--quick] [scale] [poll] [latency] [burst] [big] [flood] [bandwidth]
 * [wan] [history]`
 * (all by default). RESULTS.md is written only when every benchmark ran at
 * full size; otherwise the whole report goes to stdout. `--quick` runs one
 * round of each with a smaller tree, a short idle period and a smaller flood,
 * to check the harness.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { startSshd, type TestSshd } from "../tests/helpers/sshd.ts";
import { runBandwidth } from "./bandwidth.ts";
import { runBigFile } from "./big_file.ts";
import { runBurst } from "./burst.ts";
import { runFlood } from "./flood.ts";
import { runLatency } from "./latency.ts";
import { describeMachine, loadAverage } from "./machine.ts";
import { renderReport, renderTable, type Section } from "./report.ts";
import { runPoll } from "./poll.ts";
import { runScale } from "./scale.ts";
import { runHistory } from "./history.ts";
import { runWan } from "./wan.ts";
import { type BenchContext, generateData, progress } from "./setup.ts";

const PHASES = [
  "scale",
  "poll",
  "latency",
  "burst",
  "big",
  "flood",
  "small",
  "bandwidth",
  "wan",
  "history",
] as const;
type Phase = typeof PHASES[number];

const RESULTS_FILE = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
/** The heading of RESULTS.md's part written by hand, which a full run keeps below its report. */
const SESSION_LOG = "## Session log";
const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

function parsePhases(args: string[]): Phase[] {
  args = args.filter((arg) => arg !== "--quick");
  if (args.length === 0) return [...PHASES];
  for (const arg of args) {
    if (!(PHASES as readonly string[]).includes(arg)) {
      throw new Error(`Cannot run benchmark ${JSON.stringify(arg)}: expected ${PHASES.join(", ")}`);
    }
  }
  return PHASES.filter((phase) => args.includes(phase));
}

/** The session log of the RESULTS.md there is (from its heading on), or "" without one. */
async function sessionLog(): Promise<string> {
  const text = await Deno.readTextFile(RESULTS_FILE).catch(() => "");
  const at = text.indexOf(`\n${SESSION_LOG}\n`);
  return at < 0 ? "" : text.slice(at);
}

async function main(): Promise<void> {
  const phases = parsePhases(Deno.args);
  const quick = Deno.args.includes("--quick");
  const rounds = quick ? 1 : 3;
  const startedMs = performance.now();
  const workDir = await Deno.makeTempDir({ prefix: "itx-bench-" });
  let sshd: TestSshd | null = null;
  const cleanup = async () => {
    await sshd?.stop();
    sshd = null;
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
  };
  // Ctrl-C: the running daemon gets the same SIGINT from the terminal; remove what we made.
  const onInterrupt = () => {
    progress("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    progress(`starting a private sshd; running ${phases.join(", ")}`);
    sshd = await startSshd();
    const machine = await describeMachine(sshd, REPO_ROOT);
    progress(`${machine.ssh}; ${machine.rsync}; ${machine.cipher}; ${machine.code}`);
    progress("generating data (2,000 FITS files of 200 KiB and 1 GiB, random)");
    const data = await generateData(`${workDir}/data`);
    const ctx: BenchContext = { sshd, workDir, data, progress };

    const sections: Section[] = [];
    const treeOptions = quick ? { files: 10_000, idleMs: 5_000 } : {};
    for (const phase of phases) {
      progress(`--- ${phase}`);
      switch (phase) {
        case "scale":
          // With poll asked too, both run on one tree through one idle minute.
          sections.push(
            ...await runScale(ctx, treeOptions, phases.includes("poll") ? treeOptions : undefined),
          );
          break;
        case "poll":
          if (!phases.includes("scale")) sections.push(await runPoll(ctx, treeOptions));
          break;
        case "latency":
          sections.push(await runLatency(ctx, quick ? 5 : 20, quick ? 3 : 5));
          break;
        case "burst":
          sections.push(await runBurst(ctx, ["rsync", "scp", "local"], rounds));
          break;
        case "big":
          sections.push(await runBigFile(ctx, rounds));
          break;
        case "flood":
          sections.push(await runFlood(ctx, quick ? { files: 5_000 } : {}));
          break;
        case "small":
          // 20,000 small files with the local method: ≤ 30 s, ≤ 20 s of daemon CPU.
          sections.push(
            await runFlood(ctx, {
              files: quick ? 5_000 : 20_000,
              methods: ["local"],
              goals: { ms: 30_000, cpuMs: 20_000 },
              title: "Small files, local",
            }),
          );
          break;
        case "bandwidth":
          // The limit paces the transfer: rounds differ by under 1 %, so one is enough.
          sections.push(await runBandwidth(ctx, 1));
          break;
        case "wan":
          sections.push(await runWan(ctx, quick ? { trials: 3, burstFiles: 100 } : {}));
          break;
        case "history":
          sections.push(await runHistory(ctx, quick ? { files: 100_000 } : {}));
          break;
      }
    }
    const elapsedS = (performance.now() - startedMs) / 1000;
    const notes: string[] = [];
    if (elapsedS > 600) {
      notes.push(`The run took ${elapsedS.toFixed(0)} s, over the 10 min budget.`);
    }
    const report = renderReport(machine, sections, {
      elapsedS,
      loadAtEnd: loadAverage(),
      notes,
    });
    if (phases.length === PHASES.length && !quick) {
      await Deno.writeTextFile(RESULTS_FILE, report + await sessionLog());
      progress(`wrote ${RESULTS_FILE}`);
      console.log(renderTable(sections));
    } else {
      console.log(report);
    }
    progress(`done in ${elapsedS.toFixed(0)} s`);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
    await cleanup();
  }
}

if (import.meta.main) await main();
