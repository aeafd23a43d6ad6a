/**
 * `remote_sync` against a real OpenSSH server whose `sync` records each call:
 * a large batch has its destination flushed while it uploads, every batch
 * before and after its renames, and nothing is flushed without `remote_sync`.
 */
import assert from "node:assert/strict";
import { listFiles, randomBytes } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { recordingTools } from "../../helpers/recording_tools.ts";
import { makeItem, withTransport } from "../../helpers/transports.ts";

const never = new AbortController().signal;

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
