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
import { captureLogs } from "../../helpers/log_capture.ts";
import { uploadFolderPrefix } from "../../../src/transfer/temp_name.ts";
import { TEMP_SUFFIX } from "../../../src/layout/destination.ts";
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
  "sha256sum",
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
        // The script read, the night folder and the upload folder made, the copy unpacked with
        // its mode and times, its hash (by sha256sum, quicker to start than OpenSSL for a few
        // small copies; the hash covers the size), its data flushed, the rename, the rename
        // flushed, the clean-up (of the work files too, kept in the upload folder): no trial of
        // a tool, no free space asked, no xargs, no work folder of its own. Being the first call
        // of the run, it also asks whether the base path is a mount point (df, awk).
        assert.deepEqual(
          single.map((run) => run.split(" ")[0]).sort(),
          ["awk", "dd", "df", "mkdir", "mkdir", "mv", "rm", "sha256sum", "sync", "sync", "tar"],
          `${method}: ${single.join("; ")}`,
        );
        assert.ok(single.includes("sha256sum -b ./one.fits"), single.join("; "));

        const batch = await Promise.all(
          ["a", "b", "c"].map((name) => makeItem(ctx.src, `20240602/${name}.fits`, data)),
        );
        const outcomes = await ctx.transport.send(batch, never);
        assert.deepEqual(outcomes.map((o) => o.error), [null, null, null], method);
        const several = await runs();
        // The same, with one xargs for the three renames.
        assert.deepEqual(
          several.map((run) => run.split(" ")[0]).sort(),
          ["dd", "mkdir", "mkdir", "mv", "rm", "sha256sum", "sync", "sync", "tar", "xargs"],
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

Deno.test("leftover upload folders are swept and searched with a program per folder, not per copy", async () => {
  const tools = await recordingTools(["date", "ls", "rm", "stat"]);
  const sshd = await startSshd({ sessionEnv: { PATH: `${tools.dir}:/usr/bin:/bin` } });
  const logs = await captureLogs();
  try {
    await withTransport("rsync", sshd, { verify_transfer: "size" }, async (ctx) => {
      // An interrupted run left 8 upload folders in the night folder, each with 25 copies written
      // now (appended to in place) and 25 written two days ago (past resume_partial_hours), and
      // a folder inside; the folders themselves last written two days ago.
      const night = join(ctx.dst, "20240601");
      await Deno.mkdir(night);
      await ctx.own(night);
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      const leftovers: string[] = [];
      for (let folder = 0; folder < 8; folder++) {
        const leftover = join(night, `${uploadFolderPrefix(ctx.owner)}left${folder}${TEMP_SUFFIX}`);
        leftovers.push(leftover);
        await Deno.mkdir(join(leftover, "inner"), { recursive: true, mode: 0o700 });
        for (let copy = 0; copy < 50; copy++) {
          const path = join(
            leftover,
            `${copy < 25 ? "fresh" : "old"}-${folder}-${copy} $(x)\n.fits`,
          );
          await Deno.writeFile(path, randomBytes(10));
          if (copy >= 25) await Deno.utime(path, twoDaysAgo, twoDaysAgo);
          await ctx.own(path);
        }
        await ctx.own(join(leftover, "inner"));
        await ctx.own(leftover);
      }
      // One file of the batch has its earlier copy (its first half) in the last of them; it is
      // too large for the one call of small files, so the batch goes by rsync.
      const data = randomBytes(9 * 1024 * 1024);
      const resumed = await makeItem(ctx.src, "20240601/resumed $(x)\n.fits", data);
      const [last] = leftovers.slice(-1);
      await Deno.writeFile(join(last, "resumed $(x)\n.fits"), data.subarray(0, 1_000_000));
      await ctx.own(join(last, "resumed $(x)\n.fits"));
      for (const leftover of leftovers) await Deno.utime(leftover, twoDaysAgo, twoDaysAgo);
      const others = await Promise.all(
        ["a", "b", "c"].map((name) => makeItem(ctx.src, `20240601/${name}.fits`, data)),
      );
      await tools.runs();

      const outcomes = await ctx.transport.send([resumed, ...others], never);
      assert.deepEqual(outcomes.map((o) => o.error), [null, null, null, null]);
      const runs = await tools.runs();
      const count = (tool: string) => runs.filter((run) => run.startsWith(`${tool} `)).length;
      // A stat per leftover folder for the ages of all its copies, one for the earlier copy
      // found, one for the sizes at the end; an ls per leftover folder (whose it is); the
      // time once, an rm per leftover folder for what expired. Per copy this would be hundreds.
      const counts = Object.fromEntries(
        ["stat", "ls", "date", "rm"].map((tool) => [tool, count(tool)]),
      );
      assert.ok(
        counts.stat <= 8 + 2 && counts.ls <= 8 * 2 && counts.date <= 1 && counts.rm <= 8 + 1,
        JSON.stringify(counts),
      );

      for (const name of ["resumed $(x)\n.fits", "a.fits", "b.fits", "c.fits"]) {
        assert.deepEqual(await Deno.readFile(join(night, name)), data, name);
      }
      const resuming = logs.records.filter((r) => String(r.rawMessage).startsWith("Resuming"));
      assert.deepEqual(resuming.map((r) => r.properties.from), [1_000_000]);
      // What expired and the folders inside are gone; the fresh copies are kept to be resumed.
      for (const leftover of leftovers) {
        const names = (await Array.fromAsync(Deno.readDir(leftover))).map((e) => e.name).sort();
        const folder = leftovers.indexOf(leftover);
        const fresh = Array.from(
          { length: 25 },
          (_, copy) => `fresh-${folder}-${copy} $(x)\n.fits`,
        );
        assert.deepEqual(names, fresh.sort(), leftover);
      }
    });
  } finally {
    await logs.stop();
    await sshd.stop();
    await tools.remove();
  }
});
