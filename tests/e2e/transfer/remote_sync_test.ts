/**
 * `remote_sync` against a real OpenSSH server whose `sync` records each call:
 * a large batch has its destination flushed while it uploads, every batch
 * before and after its renames, and nothing is flushed without `remote_sync`;
 * a flush that fails while the batch uploads fails it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, listFiles, randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { recordingTools, standInPrograms } from "../../helpers/recording_tools.ts";
import { makeItem, type TransportCase, withTransport } from "../../helpers/transports.ts";

const never = new AbortController().signal;

/**
 * A `sync` whose first run (after `waitS` seconds) fails with GNU sync's words for a write-back
 * error, as a file system tells one once; the others flush (`tools/failed` says it failed).
 */
const failingOnce = (tools: string, waitS = 0) =>
  `if mkdir '${tools}/failed' 2>/dev/null; then\n  sleep ${waitS}\n` +
  `  echo "sync: error syncing '$3': Input/output error" >&2\n  exit 1\nfi\n` +
  'exec /usr/bin/sync "$@"\n';

/**
 * An rsync transport with `remote_sync` (its uploads slowed to 16 MB/s), against a real sshd whose
 * `sync` is {@linkcode failingOnce}'s; `test` runs with it and the stand-in's folder.
 */
async function withSyncFailingOnce(
  waitS: number,
  test: (ctx: TransportCase, tools: string) => Promise<void>,
): Promise<void> {
  const tools = await Deno.makeTempDir({ prefix: "itx-sync-once-" });
  await Deno.chmod(tools, 0o777);
  await standInPrograms(tools, { sync: failingOnce(tools, waitS) });
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools}:/usr/bin:/bin` } });
  try {
    await withTransport("rsync", sshd, {
      remote_sync: true,
      rsync_options: ["--bwlimit=16m"],
    }, (ctx) => test(ctx, tools));
  } finally {
    await sshd.stop();
    await Deno.remove(tools, { recursive: true });
  }
}

Deno.test("remote_sync flushes a large batch while it uploads, and every batch around its renames", async (t) => {
  const tools = await recordingTools(["sync"]);
  const flushes = tools.runs;
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools.dir}:/usr/bin:/bin` } });
  try {
    await t.step("a 64 MiB upload that takes seconds is flushed meanwhile", async () => {
      // rsync's own rate limit makes the upload take about 4 s on any machine.
      await withTransport("rsync", sshd, {
        remote_sync: true,
        rsync_options: ["--bwlimit=16m"],
      }, async (ctx) => {
        const item = await makeItem(ctx.src, "20240601/big.fits", randomBytes(64 << 20));
        await flushes();
        assert.equal((await ctx.transport.send([item], never))[0].error, null);
        const calls = await flushes();
        // Two for the renames (before and after), the rest while the upload ran.
        assert.ok(calls.length >= 4, calls.join("; "));
        assert.ok(
          calls.every((call) => call === `sync -f -- ${ctx.dst}/20240601`),
          calls.join("; "),
        );
        assert.deepEqual(await listFiles(ctx.dst), ["20240601/big.fits"]);
      });
    });

    await t.step("a small batch is flushed before and after its renames only", async () => {
      await withTransport("scp", sshd, { remote_sync: true }, async (ctx) => {
        const item = await makeItem(ctx.src, "20240602/a.fits", randomBytes(100_000));
        await flushes();
        assert.equal((await ctx.transport.send([item], never))[0].error, null);
        assert.equal((await flushes()).length, 2);
      });
    });

    await t.step("without remote_sync nothing is flushed", async () => {
      await withTransport("rsync", sshd, {
        remote_sync: false,
        rsync_options: ["--bwlimit=32m"],
      }, async (ctx) => {
        const item = await makeItem(ctx.src, "20240603/big.fits", randomBytes(64 << 20));
        await flushes();
        assert.equal((await ctx.transport.send([item], never))[0].error, null);
        assert.deepEqual(await flushes(), []);
      });
    });
  } finally {
    await sshd.stop();
    await tools.remove();
  }
});

Deno.test("remote_sync: a flush that fails while a large batch uploads fails the batch, nothing renamed; the next attempt arrives", async () => {
  // The server's sync fails once, with GNU sync's words for a write-back error: the first flush
  // comes a second into the upload. The file system tells such an error once, so the flushes
  // before and after the renames succeed over data that may be lost.
  await withSyncFailingOnce(0, async (ctx, tools) => {
    const bytes = randomBytes(64 << 20);
    const item = await makeItem(ctx.src, "20240604/big.fits", bytes);
    const [failed] = await ctx.transport.send([item], never);
    assert.match(
      failed.error?.message ?? "arrived",
      /^Cannot send \S*big\.fits to \S*20240604\/big\.fits: its copy was not written out: sync: error syncing '\S*20240604': Input\/output error$/,
    );
    assert.equal(failed.error?.kind, "retry");
    assert.ok(await exists(join(tools, "failed")), "the flush while uploading failed");
    assert.deepEqual(await listFiles(ctx.dst), [], "nothing renamed, nothing left");
    assert.equal((await ctx.transport.send([item], never))[0].error, null);
    assert.deepEqual(await listFiles(ctx.dst), ["20240604/big.fits"]);
    assert.equal(await sha256OfFile(join(ctx.dst, "20240604/big.fits")), sha256Of(bytes));
  });
});

Deno.test("remote_sync: a flush still under way when a large batch's upload ends is waited for; its failure fails the batch", async () => {
  // The first flush comes a second into the upload (about 4 s at rsync's rate limit) and answers
  // only after the upload's end, with a write-back error: told once, to that flush alone, so the
  // flush before the renames succeeds. Before, the flush under way was cut off at the upload's end
  // and its answer lost: the copy was renamed and counted as arrived.
  await withSyncFailingOnce(8, async (ctx) => {
    const item = await makeItem(ctx.src, "20240605/big.fits", randomBytes(64 << 20));
    const [failed] = await ctx.transport.send([item], never);
    assert.match(
      failed.error?.message ?? "arrived",
      /its copy was not written out: sync: error syncing '\S*20240605': Input\/output error$/,
    );
    assert.deepEqual(await listFiles(ctx.dst), [], "nothing renamed, nothing left");
  });
});
