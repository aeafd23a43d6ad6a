/**
 * The programs a call starts on the server cost time on every file (several
 * milliseconds each on a slow host): a real OpenSSH server whose tools record
 * each run shows the programs of a file or a batch sent in one call (no trial
 * of a tool, no free space asked, no `xargs` for one copy), and the bytes
 * still arrive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { listFiles, randomBytes } from "../../helpers/files.ts";
import { startSshd } from "../../helpers/sshd.ts";
import { recordingTools } from "../../helpers/recording_tools.ts";
import { makeItem, withTransport } from "../../helpers/transports.ts";

const never = new AbortController().signal;

/** Tools that record each run (program and arguments), then do their work. */
const RECORDED = [
  "awk",
  "cat",
  "chmod",
  "dd",
  "df",
  "mkdir",
  "mktemp",
  "mv",
  "openssl",
  "rm",
  "stat",
  "sync",
  "tar",
  "touch",
  "xargs",
];

Deno.test("a small file's one call runs no tool trial, no df, no xargs", async () => {
  const tools = await recordingTools(RECORDED);
  const runs = tools.runs;
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools.dir}:/usr/bin:/bin` } });
  try {
    for (const method of ["scp", "rsync"] as const) {
      await withTransport(method, sshd, { verify_transfer: "checksum" }, async (ctx) => {
        const data = randomBytes(100_000);
        const one = await makeItem(ctx.src, "20240601/one.fits", data);
        await runs();
        assert.equal((await ctx.transport.send([one], never))[0].error, null, method);
        const single = await runs();
        // The script read, the night folder and the upload folder made, the copy unpacked with its mode and times, its size
        // and its hash, its data flushed, the rename, the rename flushed, the clean-up: no trial
        // of a tool, no free space asked, no xargs.
        assert.deepEqual(
          single.map((run) => run.split(" ")[0]).sort(),
          ["dd", "mkdir", "mkdir", "mktemp", "mv", "openssl", "rm", "stat", "sync", "sync", "tar"],
          `${method}: ${single.join("; ")}`,
        );
        assert.ok(single.some((run) => /^stat -c %s -- .*one\.fits$/.test(run)), single.join("; "));

        const batch = await Promise.all(
          ["a", "b", "c"].map((name) => makeItem(ctx.src, `20240602/${name}.fits`, data)),
        );
        const outcomes = await ctx.transport.send(batch, never);
        assert.deepEqual(outcomes.map((o) => o.error), [null, null, null], method);
        const several = await runs();
        // The same, with one xargs for the three renames.
        assert.deepEqual(
          several.map((run) => run.split(" ")[0]).sort(),
          [
            "dd",
            "mkdir",
            "mkdir",
            "mktemp",
            "mv",
            "openssl",
            "rm",
            "stat",
            "sync",
            "sync",
            "tar",
            "xargs",
          ],
          `${method}: ${several.join("; ")}`,
        );
        assert.deepEqual(await listFiles(ctx.dst), [
          "20240601/one.fits",
          "20240602/a.fits",
          "20240602/b.fits",
          "20240602/c.fits",
        ]);
        for (const rel of await listFiles(ctx.dst)) {
          assert.deepEqual(await Deno.readFile(join(ctx.dst, rel)), data, rel);
        }
      });
    }
  } finally {
    await sshd.stop();
    await tools.remove();
  }
});
