/**
 * Big file: 1 GiB through the daemon (verify by size, then by SHA-256) against
 * a raw `scp` of the same file with the same cipher, in the same rounds.
 *
 * @module
 */
import { join } from "node:path";
import { DaemonProcess } from "./daemon_process.ts";
import { machineBusyMs } from "./machine.ts";
import type { ResultRow, Section } from "./report.ts";
import {
  type BenchContext,
  BIG_FILE_BYTES,
  BIG_FILE_CIPHER,
  daemonSandbox,
  freshRemoteDir,
  listSizes,
  rawSshOptions,
  remoteSpec,
  sync,
  timeCommand,
} from "./setup.ts";
import {
  formatMs,
  formatSummaryMs,
  formatSummaryRate,
  megabytesPerSecond,
  summarize,
} from "./stats.ts";

/** One daemon run. */
interface DaemonBig {
  /** Close → verified. */
  closeMs: number;
  /** `Ready:` debug line (queued for transfer) → verified. */
  readyMs: number;
  /** Time the local copy into the watch folder took. */
  writeMs: number;
  /** CPU time the whole machine spent busy from close to verified. */
  busyMs: number;
}

/** One raw scp run. */
interface RawBig {
  ms: number;
  /** CPU time the whole machine spent busy during the scp. */
  busyMs: number;
}

async function checkArrived(dir: string, what: string): Promise<void> {
  const sizes = [...(await listSizes(dir)).values()];
  if (sizes.length !== 1 || sizes[0] !== BIG_FILE_BYTES) {
    throw new Error(`Cannot accept the ${what} run: destination holds ${JSON.stringify(sizes)}`);
  }
}

async function rawScp(ctx: BenchContext): Promise<RawBig> {
  const remote = await freshRemoteDir(ctx, "itx-bench-scp-");
  const source = `${ctx.workDir}/big-baseline.bin`;
  try {
    // Written just before, like the daemon's source: both read a file the kernel is writing back.
    await Deno.copyFile(ctx.data.bigFile, source);
    const busyBefore = machineBusyMs();
    const ms = await timeCommand([
      "scp",
      "-q",
      "-P",
      String(ctx.sshd.port),
      ...rawSshOptions(ctx.sshd, [`Ciphers=${BIG_FILE_CIPHER}`]),
      source,
      remoteSpec(ctx.sshd, `${remote.path}/big.bin`),
    ]);
    const busyMs = machineBusyMs() - busyBefore;
    await checkArrived(remote.path, "raw scp");
    return { ms, busyMs };
  } finally {
    await remote.remove();
    await Deno.remove(source).catch(() => {});
    await sync();
  }
}

/** The daemon settings measured, and the target each is held to (`null`: shown only). */
const VARIANTS = [
  { verify: "size", remoteSync: false, goal: 1.0 },
  { verify: "checksum", remoteSync: false, goal: 0.9 },
  { verify: "size", remoteSync: true, goal: null },
  { verify: "checksum", remoteSync: true, goal: null },
] as const;

type Variant = typeof VARIANTS[number];

/** A short name of a variant for progress lines and details. */
function variantName(variant: Variant): string {
  return `${variant.verify}, remote_sync ${variant.remoteSync ? "on" : "off"}`;
}

async function daemonBig(ctx: BenchContext, variant: Variant): Promise<DaemonBig> {
  const verify = variant.verify;
  const { watch, remote, config, remove } = await daemonSandbox(ctx, `big-${verify}`, {
    method: "scp",
    verify,
    remoteSync: variant.remoteSync,
    sshOptions: [`Ciphers=${BIG_FILE_CIPHER}`],
  });
  const daemon = DaemonProcess.start(config, { verbose: true });
  try {
    await daemon.waitForLine("Watching", { timeoutMs: 30_000 });
    const path = join(watch, "big.fits");
    const ready = daemon.waitForLine((t) => t.includes(`Ready: ${path} ->`), { timeoutMs: 60_000 });
    const done = daemon.waitForLine(`Successfully transferred ${path} ->`, { timeoutMs: 180_000 });
    ready.catch(() => {});
    done.catch(() => {});
    const writeStart = performance.now();
    await Deno.copyFile(ctx.data.bigFile, path);
    const closed = performance.now();
    const busyBefore = machineBusyMs();
    const doneLine = await done;
    const busyMs = machineBusyMs() - busyBefore;
    const readyLine = await ready;
    await checkArrived(remote, `daemon (${verify})`);
    return {
      closeMs: doneLine.atMs - closed,
      readyMs: doneLine.atMs - readyLine.atMs,
      writeMs: closed - writeStart,
      busyMs,
    };
  } finally {
    await daemon.stop();
    await remove();
    await sync();
  }
}

/** Run `rounds` rounds of: raw scp, then the daemon in each of {@linkcode VARIANTS}. */
export async function runBigFile(ctx: BenchContext, rounds: number): Promise<Section> {
  const rawRuns: RawBig[] = [];
  const runs = new Map<Variant, DaemonBig[]>(VARIANTS.map((variant) => [variant, []]));
  for (let round = 1; round <= rounds; round++) {
    const run = await rawScp(ctx);
    rawRuns.push(run);
    ctx.progress(`big round ${round}/${rounds}: raw scp ${formatMs(run.ms)}`);
    for (const variant of VARIANTS) {
      const run = await daemonBig(ctx, variant);
      runs.get(variant)!.push(run);
      ctx.progress(
        `big round ${round}/${rounds}: daemon (${variantName(variant)}) ` +
          `${formatMs(run.readyMs)} from queued, ${formatMs(run.closeMs)} from close`,
      );
    }
  }
  const raw = rawRuns.map((r) => r.ms);
  const rate = (ms: number) => megabytesPerSecond(BIG_FILE_BYTES, ms);
  const cores = (busyMs: number) => `${(busyMs / 1000).toFixed(1)} s`;
  const rawRates = summarize(raw.map(rate));
  const rows: ResultRow[] = [];
  const details = [
    `raw scp per round: ${raw.map(formatMs).join(", ")}; CPU time of the whole machine ` +
    `(all cores, /proc/stat) during it: ${rawRuns.map((r) => cores(r.busyMs)).join(", ")}`,
  ];
  for (const variant of VARIANTS) {
    const list = runs.get(variant)!;
    const goal = variant.goal;
    const rates = summarize(list.map((r) => rate(r.readyMs)));
    const ratio = rates.median / rawRates.median;
    const paired = list.map((r, i) => (raw[i] / r.readyMs).toFixed(2));
    rows.push({
      benchmark: `1 GiB, scp, ${BIG_FILE_CIPHER}, \`verify_transfer: ${variant.verify}\`, ` +
        `\`remote_sync: ${variant.remoteSync}\`${
          variant.remoteSync && variant.verify === "checksum" ? " (the defaults)" : ""
        }: ` +
        "queued → verified",
      daemon: `${formatSummaryRate(rates)}; ${
        formatSummaryMs(summarize(list.map((r) => r.readyMs)))
      }`,
      baseline: `${formatSummaryRate(rawRates)}; ${formatSummaryMs(summarize(raw))} (raw \`scp\`)`,
      ratio: `${ratio.toFixed(2)}× throughput`,
      target: goal === null ? "—" : `≥ ${goal}× raw`,
      met: goal === null ? null : ratio >= goal,
    });
    details.push(
      `daemon (${variantName(variant)}) per round, queued → verified: ${
        list.map((r) => formatMs(r.readyMs)).join(", ")
      } (throughput ratio to the same round's scp: ${paired.join(", ")}); close → verified: ${
        list.map((r) => formatMs(r.closeMs)).join(", ")
      }; ` +
        `local copy into the watch folder took ${
          list.map((r) => formatMs(r.writeMs)).join(", ")
        }; CPU time of the whole machine from close to verified: ${
          list.map((r) => cores(r.busyMs)).join(", ")
        }`,
    );
  }
  return {
    title: "Big file",
    rows,
    measured: [
      "A 1 GiB random file is copied into the watch folder of a freshly started daemon",
      `(method scp, \`ssh_options: ["Ciphers=${BIG_FILE_CIPHER}"]\`, started with \`-v\`). The`,
      "daemon figure runs from its `Ready:` debug line (the file passed the stability check",
      "and is queued; the transfer starts right after) to the moment the benchmark read the",
      "`Successfully transferred` line, so the stability window after close (2 s: the file is",
      "random bytes, not FITS) is not counted (close → verified is listed below). It includes",
      "opening the shared SSH connection, the remote `mkdir`, the upload (`scp -p` into the",
      "batch's upload folder over the shared connection; with checksum the daemon hashes the",
      "source while scp sends it), the verification (remote size, or the copy's SHA-256 read",
      "on the server with `openssl dgst -sha256` after the upload) and the rename. Sender and",
      "receiver share this machine's cores, so the two hashes compete with ssh and sshd for",
      "CPU, as they would not across a real link; the CPU time of the whole machine is listed",
      "to show it. The targets are held by the runs with `remote_sync: false`, which like the",
      "raw scp leave the data to the kernel's writeback; with the default `remote_sync: true`",
      "the copy is flushed to disk (before and after the rename) before it counts as",
      "verified, which the raw scp never waits for. Baseline: the same file copied the same",
      `way to a plain folder, then at once \`scp -o Ciphers=${BIG_FILE_CIPHER}\` of it over`,
      "a fresh connection, whole process wall time (no verification); both read a file the",
      "kernel is still writing back. Throughput = 1 GiB / time, in MB/s (10^6 bytes).",
    ].join("\n"),
    details,
  };
}
