/**
 * A 90 s link cut in the middle of scp and rsync transfers, with the server
 * in a network namespace of its own behind a veth pair that the test takes
 * down and up again. While the link is down every attempt ends with a
 * retryable error in bounded time; once it is back the next attempts deliver
 * every file byte for byte, over a new connection, without a restart; a final
 * name never holds a partial file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createTransport,
  type TransferItem,
  type Transport,
} from "../../../src/transfer/transport.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { createTestLink } from "../../helpers/netns.ts";
import { startSshd } from "../../helpers/sshd.ts";

const CUT_MS = 90_000;
const FILES = 3;
const FILE_BYTES = 50 * 1024 * 1024;
/** Slow enough that the cut falls in the middle of the uploads (both methods share it). */
const LINK_MBIT = 100;
/** Wait between two attempts of the same files, as a short retry_delay_seconds would. */
const RETRY_WAIT_MS = 5_000;
/**
 * Longest an attempt may take while the link is down: keep-alives notice a
 * dead shared connection after 15 s × 4 and a new one gives up after
 * ConnectTimeout (30 s); an attempt that hung would end only at the transfer
 * timeout (300 s). Below that, with all the room a busy machine may need.
 */
const ATTEMPT_MAX_MS = 200_000;
/**
 * All files must have arrived this long after the link is back (~25 s of data
 * at the link rate): less than one transfer timeout, so no attempt hung.
 */
const AFTER_RESTORE_MAX_MS = 240_000;

type Method = "scp" | "rsync";

/** One call of `send`, from the test's clock start. */
interface Attempt {
  startMs: number;
  endMs: number;
  failed: number;
}

/** A path at the destination that is a final name (not in or named as a temporary). */
function isFinalName(rel: string): boolean {
  return !rel.split("/").some((segment) => isTempName(segment) || segment.startsWith("."));
}

/** Call `send` for the files not delivered yet, after a short wait, until none is left. */
async function deliver(
  transport: Transport,
  items: TransferItem[],
  now: () => number,
  deadlineMs: number,
): Promise<Attempt[]> {
  const attempts: Attempt[] = [];
  let pending = items;
  while (pending.length > 0) {
    assert.ok(
      now() < deadlineMs,
      `${transport.method}: not delivered in time: ${JSON.stringify(attempts)}`,
    );
    const startMs = now();
    const outcomes = await transport.send(pending, new AbortController().signal);
    const failed = outcomes.filter((outcome) => outcome.error !== null);
    for (const { error, item } of failed) {
      assert.notEqual(error!.kind, "fatal", `${item.destination}: ${error!.message}`);
    }
    attempts.push({ startMs, endMs: now(), failed: failed.length });
    pending = failed.map((outcome) => outcome.item);
    if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, RETRY_WAIT_MS));
  }
  return attempts;
}

Deno.test("a 90 s link cut mid-transfer: scp and rsync deliver every file once it is back", async () => {
  const link = await createTestLink({ rateMbit: LINK_MBIT });
  const cleanups: (() => Promise<void>)[] = [];
  let watching = true;
  try {
    const sshd = await startSshd({
      listenAddress: link.peerAddress,
      commandPrefix: link.commandPrefix,
    });
    cleanups.push(() => sshd.stop());
    const started = Date.now();
    const now = () => Date.now() - started;

    const runs = await Promise.all((["scp", "rsync"] as Method[]).map(async (method) => {
      const src = await Deno.makeTempDir({ prefix: `itx-cut-${method}-` });
      const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
      const dst = await sshd.makeRemoteDir();
      const transport = createTransport(
        // The product's defaults for what matters here (timeout, checks).
        sshd.job({ transfer_method: method, remote_base_path: dst, transfer_timeout_seconds: 300 }),
        runtime,
      );
      cleanups.push(async () => {
        await transport.close();
        await Deno.remove(src, { recursive: true });
        await Deno.remove(runtime, { recursive: true });
      });
      const items: TransferItem[] = [];
      for (let i = 0; i < FILES; i++) {
        const source = join(src, "frames", `${method} frame ${i}.fits`);
        await Deno.mkdir(join(src, "frames"), { recursive: true });
        await Deno.writeFile(source, randomBytes(FILE_BYTES));
        const info = await Deno.stat(source);
        items.push({
          source,
          destination: `20240801/frames/${method} frame ${i}.fits`,
          size: info.size,
          mtimeMs: info.mtime!.getTime(),
        });
      }
      return { method, dst, transport, items };
    }));

    // A final name must only ever hold the whole file.
    const partial: string[] = [];
    const watcher = (async () => {
      while (watching) {
        for (const { dst, items } of runs) {
          for (const rel of (await listFiles(dst).catch(() => [])).filter(isFinalName)) {
            const size = await Deno.stat(join(dst, rel)).then((s) => s.size, () => FILE_BYTES);
            const item = items.find((item) => item.destination === rel);
            if (!item || size !== item.size) partial.push(`${rel}: ${size} bytes`);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();

    const deadline = 10 * 60_000;
    const deliveries = runs.map(({ transport, items }) => deliver(transport, items, now, deadline));
    deliveries.forEach((delivery) => delivery.catch(() => {}));

    // Cut once both methods have copies on their way.
    const copyBytes = async (dst: string) => {
      let bytes = 0;
      for (const rel of await listFiles(dst).catch(() => [])) {
        if (!isFinalName(rel)) {
          bytes += await Deno.stat(join(dst, rel)).then((s) => s.size, () => 0);
        }
      }
      return bytes;
    };
    await waitFor(
      async () =>
        (await copyBytes(runs[0].dst)) > 4 << 20 && (await copyBytes(runs[1].dst)) > 4 << 20,
      60_000,
      "both uploads under way",
    );
    const cutAt = now();
    await link.cut();
    await new Promise((resolve) => setTimeout(resolve, CUT_MS));
    await link.restore();
    const restoredAt = now();

    const attempts = await Promise.all(deliveries);
    const deliveredAt = now();
    watching = false;
    await watcher;

    runs.forEach(({ method }, i) => {
      const log = JSON.stringify(attempts[i]);
      const cut = attempts[i].find((a) => a.startMs < cutAt && a.endMs > cutAt);
      assert.ok(cut && cut.failed > 0, `${method}: an attempt was under way at the cut: ${log}`);
      assert.ok(cut.endMs < restoredAt, `${method}: it failed while the link was down: ${log}`);
      for (const attempt of attempts[i]) {
        const ms = attempt.endMs - attempt.startMs;
        assert.ok(ms < ATTEMPT_MAX_MS, `${method}: an attempt took ${ms} ms: ${log}`);
      }
    });
    assert.ok(
      deliveredAt - restoredAt < AFTER_RESTORE_MAX_MS,
      `delivered ${deliveredAt - restoredAt} ms after the link came back`,
    );
    for (const { method, dst, items } of runs) {
      assert.deepEqual(await listFiles(dst), items.map((item) => item.destination).sort(), method);
      const temporary = (await listFolders(dst)).filter((rel) => !isFinalName(rel));
      assert.deepEqual(temporary, [], `${method}: no temporary folder is left`);
      for (const item of items) {
        assert.equal(
          await sha256OfFile(join(dst, ...item.destination.split("/"))),
          await sha256OfFile(item.source),
          `bytes of ${item.destination}`,
        );
      }
    }
    assert.deepEqual(partial, [], "a final name held a partial file");
  } finally {
    watching = false;
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await link.remove();
  }
});

Deno.test("while packets vanish silently, an attempt fails after one connection timeout", async () => {
  const link = await createTestLink();
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const sshd = await startSshd({
      listenAddress: link.peerAddress,
      commandPrefix: link.commandPrefix,
    });
    cleanups.push(() => sshd.stop());
    const src = await Deno.makeTempDir({ prefix: "itx-cut-" });
    const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
    const dst = await sshd.makeRemoteDir();
    // transfer_timeout_seconds 300: ConnectTimeout is 30 s.
    const transport = createTransport(
      sshd.job({ transfer_method: "scp", remote_base_path: dst, transfer_timeout_seconds: 300 }),
      runtime,
    );
    cleanups.push(async () => {
      await transport.close();
      await Deno.remove(src, { recursive: true });
      await Deno.remove(runtime, { recursive: true });
    });
    const source = join(src, "frame.fits");
    await Deno.writeFile(source, randomBytes(100_000));
    const info = await Deno.stat(source);
    const item = {
      source,
      destination: "20240802/frame.fits",
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
    };

    await link.cut("silent");
    const started = Date.now();
    const [failed] = await transport.send([item], new AbortController().signal);
    const ms = Date.now() - started;
    assert.equal(failed.error?.kind, "retry", failed.error?.message);
    assert.match(failed.error!.message, /10\.231\./);
    // One ConnectTimeout (30 s), not one for each step of the attempt (two would take 60 s).
    assert.ok(ms >= 25_000 && ms < 60_000, `the attempt took ${ms} ms`);

    await link.restore();
    const [delivered] = await transport.send([item], new AbortController().signal);
    assert.equal(delivered.error, null, delivered.error?.message);
    assert.equal(
      await sha256OfFile(join(dst, "20240802", "frame.fits")),
      await sha256OfFile(source),
    );
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await link.remove();
  }
});
