/**
 * Whose unfinished archive copies (`after_transfer: move`) a daemon removes: its own (this
 * install's id, kept in its ledger), those of the earlier naming (by host name) only once nothing
 * was written in them for long, never another install's under the same host name sending from
 * the same watch folder path into the same archive folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { randomBytes, sha256Of, sha256OfFile } from "../../helpers/files.ts";
import { testJob } from "../../helpers/jobs.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { archiveCopyPrefix } from "../../../src/pipeline/archive_move.ts";
import { hostJobOwner, jobOwner, jobOwners } from "../../../src/transfer/temp_name.ts";
import { TEMP_SUFFIX } from "../../../src/layout/destination.ts";

Deno.test("after_transfer: move: a daemon removes its own unfinished archive copies and the earlier naming's idle ones, never another install's nor one of the earlier naming written lately", async () => {
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
  const earlierIdle = await plant(copyName(hostJobOwner(job)), twoHoursAgo);
  const earlierLately = await plant(copyName(hostJobOwner(job)).replace("0123", "4567"), null);

  const bytes = randomBytes(7000);
  await Deno.writeFile(join(box.watch, "c.fits"), bytes);
  const run2 = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run2.code, 0, run2.stderr);
  const names = (await Array.fromAsync(Deno.readDir(archive))).map((e) => e.name).sort();
  assert.deepEqual(names, ["b.fits", "c.fits", otherInstall, earlierLately].sort(), run2.stderr);
  assert.equal(names.includes(ownLeft) || names.includes(earlierIdle), false);
  assert.equal(await sha256OfFile(join(archive, "c.fits")), sha256Of(bytes));
});
