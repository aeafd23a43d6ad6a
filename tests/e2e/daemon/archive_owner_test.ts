/**
 * Whose unfinished archive copies (`after_transfer: move`) a daemon removes: its own (this
 * install's id, kept in its ledger), those of the earlier naming (by host name) only once nothing
 * was written in them for long (by the later of their mtime and status change time: a copy is
 * dated as its source before its rename), never another install's under the same host name
 * sending from the same watch folder path into the same archive folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { testJob } from "../../helpers/jobs.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { archiveCopyPrefix, ArchiveMover } from "../../../src/pipeline/archive_move.ts";
import { hostJobOwner, jobOwner, jobOwners } from "../../../src/transfer/temp_name.ts";
import { TEMP_SUFFIX } from "../../../src/layout/destination.ts";

Deno.test("after_transfer: move: a daemon removes its own unfinished archive copies, never another install's nor one of the earlier naming written lately (even dated two hours back)", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const archive = join(box.root, "archive");
  const keys = { stability_window_seconds: 0.2, log_file: "", after_transfer: "move" };
  await box.rewrite({ ...keys, archive_path: archive });
  const first = join(box.watch, "b.fits");
  await Deno.writeFile(first, randomBytes(5000));
  const run1 = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run1.code, 0, run1.stderr);
  assert.deepEqual((await Array.fromAsync(Deno.readDir(archive))).map((e) => e.name), ["b.fits"]);

  // The same job as the daemon's: its watch folder and destination.
  const job = testJob("test", {
    watch_path: box.watch,
    remote_base_path: box.dest,
    transfer_method: "local",
  });
  const ledger = Ledger.open(box.stateDir);
  const own = jobOwners(job, ledger).owner;
  ledger.close();
  const copyName = (owner: string) =>
    `${archiveCopyPrefix(owner)}${"0123456789ab".repeat(2)}${TEMP_SUFFIX}`;
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  const plant = async (name: string, at: Date | null) => {
    await Deno.writeFile(join(archive, name), randomBytes(1000));
    if (at !== null) await Deno.utime(join(archive, name), at, at);
    return name;
  };
  const ownLeft = await plant(copyName(own), null);
  const otherInstall = await plant(copyName(jobOwner(job, "cd".repeat(12))), null);
  // Dated two hours back but written now (its status change time): left, as another daemon's
  // copy dated as its source before its rename is (the next test removes one truly idle).
  const earlierDated = await plant(copyName(hostJobOwner(job)), twoHoursAgo);
  const earlierLately = await plant(copyName(hostJobOwner(job)).replace("0123", "4567"), null);

  const bytes = randomBytes(7000);
  await Deno.writeFile(join(box.watch, "c.fits"), bytes);
  const run2 = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run2.code, 0, run2.stderr);
  const names = (await Array.fromAsync(Deno.readDir(archive))).map((e) => e.name).sort();
  const left = ["b.fits", "c.fits", otherInstall, earlierDated, earlierLately];
  assert.deepEqual(names, left.sort(), run2.stderr);
  assert.equal(names.includes(ownLeft), false);
  assert.equal(await sha256OfFile(join(archive, "c.fits")), sha256Of(bytes));
});

Deno.test("after_transfer: move: an unfinished archive copy of the earlier naming dated as an old source but written moments ago is left whole; one nothing wrote into for its idle time is removed", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "itx-archive-olddated-" });
  try {
    const watch = join(root, "watch");
    const folder = join(root, "archive", "20240315");
    await Deno.mkdir(watch);
    await Deno.mkdir(folder, { recursive: true });
    const earlier = "e".repeat(10);
    // Another daemon under this host name (an older version, a cloned PC) moving a file taken two
    // days ago: its copy complete, dated as its source right before the rename, written just now.
    const theirs = join(
      folder,
      `${archiveCopyPrefix(earlier)}${"0123456789ab".repeat(2)}${TEMP_SUFFIX}`,
    );
    await Deno.writeFile(theirs, randomBytes(300_000));
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await Deno.utime(theirs, twoDaysAgo, twoDaysAgo);
    const before = await sha256OfFile(theirs);
    const removed: string[] = [];
    /** Move a new source into `folder` with a mover whose earlier naming idles for `idleSeconds`. */
    const moveOne = async (name: string, idleSeconds: number) => {
      const mover = new ArchiveMover(
        { owner: "a".repeat(10), earlier: { owner: earlier, idleSeconds, own: false, also: [] } },
        (path) => removed.push(path),
      );
      const bytes = randomBytes(5000);
      const source = join(watch, name);
      await Deno.writeFile(source, bytes);
      const info = await Deno.stat(source);
      const moved = await mover.move(source, join(folder, name), {
        size: info.size,
        mtimeMs: info.mtime!.getTime(),
      });
      assert.equal(moved.archive, join(folder, name));
      assert.equal(await sha256OfFile(join(folder, name)), sha256Of(bytes), "byte-exact");
    };

    await t.step("the next move into that folder leaves it whole", async () => {
      // The hour (and three transfer timeouts) a daemon waits.
      await moveOne("a.fits", 3600);
      assert.equal(await sha256OfFile(theirs).catch(() => null), before, "their copy left whole");
      assert.deepEqual(removed, []);
    });

    await t.step("once nothing wrote into it for the idle time, it is removed", async () => {
      // A short idle time, once the copy's status change time is older than that.
      await waitFor(
        async () => Date.now() - (await Deno.stat(theirs)).ctime!.getTime() > 2000,
        60_000,
        "the copy to be idle past its idle time",
      );
      await moveOne("b.fits", 1);
      assert.deepEqual(removed, [theirs]);
      const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name).sort();
      assert.deepEqual(names, ["a.fits", "b.fits"]);
    });
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
