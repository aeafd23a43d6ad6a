/**
 * Bandwidth limit: one transfer alone with `bandwidth_limit` set, for each
 * method (the transport's `send`, in this process, the SSH connection opened
 * first), against the same transfer without a limit in the same round (the
 * link must be faster than the limit for the limit to be what is measured).
 * The target: the limit held within 20 %; two transfers at once together
 * at most 20 % over it.
 *
 * @module
 */
import { join } from "node:path";
import {
  ftpFixture,
  makeItem,
  transportFixtures,
  withFixture,
} from "../tests/helpers/transports.ts";
import type { TransportFixture } from "../tests/helpers/transports.ts";
import { startVsftpd } from "../tests/helpers/vsftpd.ts";
import type { ResultRow, Section } from "./report.ts";
import { type BenchContext, randomBytes } from "./setup.ts";
import { formatMs, summarize } from "./stats.ts";

/** The limit set, and its value in bytes per second. */
const LIMIT = "2MiB/s";
const LIMIT_BYTES = 2 * 1024 * 1024;

/** Bytes sent per transfer: four seconds at the limit. */
const FILE_BYTES = 8 * 1024 * 1024;

/** How far the rate may be from the limit. */
const TOLERANCE = 0.2;

/** Milliseconds one send of `data` took with `bandwidth_limit: limit` (`""`: none). */
async function timedSend(fixture: TransportFixture, limit: string, data: Uint8Array) {
  let ms = 0;
  await withFixture(
    fixture,
    { bandwidth_limit: limit, max_concurrent_transfers: 2 },
    async ({ src, dst, transport }) => {
      const item = await makeItem(src, "20240315/limited.fits", data);
      await transport.warmUp?.();
      const started = performance.now();
      const [outcome] = await transport.send([item], new AbortController().signal);
      ms = performance.now() - started;
      if (outcome.error) throw new Error(`${fixture.method}: ${outcome.error.message}`);
      const arrived = await Deno.stat(join(dst, "20240315", "limited.fits"));
      if (arrived.size !== data.length) {
        throw new Error(`${fixture.method}: ${arrived.size} bytes arrived of ${data.length}`);
      }
    },
  );
  return ms;
}

/**
 * Milliseconds two sends, each of one file of `data`'s size into its own
 * night folder, took together when asked for at once (two batches in flight)
 * with the limit.
 */
async function timedPair(fixture: TransportFixture, data: Uint8Array) {
  let ms = 0;
  await withFixture(
    fixture,
    { bandwidth_limit: LIMIT, max_concurrent_transfers: 2 },
    async ({ src, dst, transport }) => {
      const items = [
        await makeItem(src, "20240315/first.fits", data),
        await makeItem(src, "20240316/second.fits", data),
      ];
      await transport.warmUp?.();
      const signal = new AbortController().signal;
      const started = performance.now();
      const outcomes = await Promise.all(items.map((item) => transport.send([item], signal)));
      ms = performance.now() - started;
      for (const [outcome] of outcomes) {
        if (outcome.error) throw new Error(`${fixture.method}: ${outcome.error.message}`);
      }
      for (const path of ["20240315/first.fits", "20240316/second.fits"]) {
        const arrived = await Deno.stat(join(dst, path));
        if (arrived.size !== data.length) {
          throw new Error(`${fixture.method}: ${arrived.size} bytes of ${path} arrived`);
        }
      }
    },
  );
  return ms;
}

/** MiB/s of {@linkcode FILE_BYTES} sent in `ms`. */
function mibPerSecond(ms: number): number {
  return FILE_BYTES / (1024 * 1024) / (ms / 1000);
}

/** `median (min–max) MiB/s` of rates. */
function formatRates(rates: number[]): string {
  const summary = summarize(rates);
  const f = (v: number) => v.toFixed(2);
  return `${f(summary.median)} MiB/s (${f(summary.min)}–${f(summary.max)})`;
}

/** Run `rounds` rounds of each method, unlimited then limited. */
export async function runBandwidth(ctx: BenchContext, rounds: number): Promise<Section> {
  const vsftpd = await startVsftpd({ tls: false });
  try {
    const fixtures = [...transportFixtures(ctx.sshd), ftpFixture(vsftpd)];
    const rows: ResultRow[] = [];
    const details: string[] = [];
    for (const fixture of fixtures) {
      const limited: number[] = [];
      const unlimited: number[] = [];
      const pairs: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const data = randomBytes(FILE_BYTES);
        unlimited.push(await timedSend(fixture, "", data));
        limited.push(await timedSend(fixture, LIMIT, data));
        pairs.push(await timedPair(fixture, data));
        ctx.progress(
          `bandwidth ${fixture.method} round ${round + 1}: ${formatMs(limited.at(-1)!)} limited, ` +
            `${formatMs(unlimited.at(-1)!)} without a limit, two at once ` +
            `${formatMs(pairs.at(-1)!)}`,
        );
      }
      const rates = limited.map(mibPerSecond);
      const ratio = summarize(rates).median / (LIMIT_BYTES / (1024 * 1024));
      rows.push({
        benchmark: `\`bandwidth_limit: ${LIMIT}\`, one 8 MiB transfer alone, ${fixture.method}`,
        daemon: formatRates(rates),
        baseline: `${formatRates(unlimited.map(mibPerSecond))} (no limit)`,
        ratio: `${ratio.toFixed(2)}× the limit`,
        target: `limit ± ${TOLERANCE * 100} %`,
        met: Math.abs(ratio - 1) <= TOLERANCE,
      });
      // Two at once carry twice the bytes: the rate they make together.
      const pairRates = pairs.map((ms) => 2 * mibPerSecond(ms));
      const pairRatio = summarize(pairRates).median / (LIMIT_BYTES / (1024 * 1024));
      rows.push({
        benchmark: `\`bandwidth_limit: ${LIMIT}\`, two 8 MiB transfers at once, ${fixture.method}`,
        daemon: `${formatRates(pairRates)} together`,
        baseline: "—",
        ratio: `${pairRatio.toFixed(2)}× the limit`,
        target: `≤ limit + ${TOLERANCE * 100} %`,
        met: pairRatio <= 1 + TOLERANCE,
      });
      details.push(
        `${fixture.method} per round, limited: ${limited.map(formatMs).join(", ")}; ` +
          `without a limit: ${unlimited.map(formatMs).join(", ")}; two at once: ` +
          `${pairs.map(formatMs).join(", ")}`,
      );
    }
    return {
      title: "Bandwidth limit",
      rows,
      measured: [
        `One random 8 MiB file sent by a fresh transport of each method with \`bandwidth_limit:`,
        `${LIMIT}\` and \`max_concurrent_transfers: 2\` (a transfer alone gets the whole limit),`,
        "timed from the start of `send` to its outcome (the SSH connection or FTP login opened",
        "before, by `warmUp`), the size at the destination checked. rsync gets `--bwlimit`, scp",
        "`-l`; `local` and `ftp` are paced by image-transfer. Baseline: the same file sent the",
        "same way without a limit in the same round, which shows the link is faster than the",
        "limit. Rate = 8 MiB / time, in MiB/s. Two at once: two such files, each into its own",
        "night folder, asked of the same transport at once (two batches in flight); rate =",
        "16 MiB / the time until both arrived.",
      ].join("\n"),
      details,
    };
  } finally {
    await vsftpd.stop();
  }
}
