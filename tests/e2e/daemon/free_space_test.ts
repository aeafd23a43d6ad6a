/**
 * Free space at the destination for the status page: `statfs` for local,
 * `df` over the SSH connection for scp and rsync (a real sshd), measured on a
 * real tmpfs of known size, for a base folder with a hostile name that does
 * not exist yet; and the gauge that asks only while it is read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FreeSpaceGauge } from "../../../src/status/free_space_gauge.ts";
import { createTransport } from "../../../src/transfer/transport.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";
import { METHODS, withTransport } from "../../helpers/transports.ts";

const MIB = 1024 * 1024;

const never = new AbortController().signal;

Deno.test("free space: local, scp and rsync report the bytes free on the destination's file system", async (t) => {
  const sshd = await startSshd();
  const pwned = `/tmp/itx-free-pwned-${crypto.randomUUID()}`;
  try {
    for (const method of METHODS) {
      await t.step(method, async () => {
        await withTransport(method, sshd, {}, async (ctx) => {
          await withTmpfs(ctx.dst, "8m", async () => {
            await ctx.own(ctx.dst);
            // Not created yet, and hostile: the nearest existing parent is measured.
            const base = join(ctx.dst, `-new $(touch ${pwned}) 'q' "d"\nline`, "night");
            const runtime = await Deno.makeTempDir({ prefix: "itx-free-rt-" });
            const transport = createTransport({ ...ctx.job, remote_base_path: base }, runtime);
            const free = async () =>
              (await transport.diskSpace!(never, { onlyIfFree: true }))?.availableBytes;
            try {
              assert.equal(await free(), 8 * MIB);
              await Deno.writeFile(join(ctx.dst, "one MiB.fits"), randomBytes(MIB));
              assert.equal(await free(), 7 * MIB);
              assert.deepEqual(
                (await Array.fromAsync(Deno.readDir(ctx.dst))).map((e) => e.name),
                ["one MiB.fits"],
                "asking created nothing",
              );
              await assert.rejects(Deno.stat(pwned), Deno.errors.NotFound, "the name ran no code");
            } finally {
              await transport.close();
              await Deno.remove(runtime, { recursive: true });
            }
          });
        });
      });
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("free space gauge: asks only when read, at most once per interval, keeps the last answer", async () => {
  const answers: Array<number | null> = [5000, null, 4000];
  let asked = 0;
  let changes = 0;
  const gauge = new FreeSpaceGauge(
    () => Promise.resolve(answers[asked++]),
    () => changes++,
    100,
  );
  assert.equal(asked, 0, "nothing asked before anyone reads");
  assert.equal(gauge.read(), null, "the first read does not wait for the answer");
  assert.equal(gauge.read(), null);
  assert.equal(asked, 1, "one ask at a time");
  await waitFor(() => Promise.resolve(changes === 1), 5000, "the first answer");
  assert.equal(gauge.read()?.bytes, 5000);
  // The next ask (no answer) keeps 5000; the one after brings 4000.
  await waitFor(() => Promise.resolve(gauge.read()?.bytes === 4000), 20_000, "a later answer");
  // A busy machine may have polled once more by now: a fourth ask, with no answer.
  assert.ok(asked >= 3, `${asked} asks`);
  assert.equal(changes, 2, "an ask without an answer changes nothing");
  gauge.close();
  const before = asked;
  await new Promise((r) => setTimeout(r, 200));
  gauge.read();
  assert.equal(asked, before, "a closed gauge asks no more");
});
