/**
 * A file queued to be sent (the job paused) whose name a symbolic link takes before it goes: the
 * link is what the `symlinks` policy says of a link found there, never a failure, and under
 * `inside` a link out of the watch folder is never read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exists, waitFor } from "../../helpers/files.ts";
import { getJson, post, startStatusDaemon } from "../../helpers/status.ts";

const FITS = "/usr/lib/python3/dist-packages/astropy/io/fits/tests/data/test0.fits";

interface Status {
  jobs: Array<{ state: string; sent: number; failed: number; queue: { queued: number } }>;
}

for (const symlinks of ["skip", "inside"] as const) {
  Deno.test(`symlinks: ${symlinks}: a queued file replaced by a link out of the watch folder is dropped, not failed, and the link is not read`, async () => {
    await using d = await startStatusDaemon({ symlinks });
    const status = () => getJson<Status>(d.base, "/api/status");
    const outside = join(d.root, "outside");
    await Deno.mkdir(outside);
    await Deno.writeTextFile(join(outside, "secret.fits"), "SECRET, NOT FOR THE ARCHIVE\n");
    await Deno.mkdir(join(d.watch, "night 1"));
    const queued = join(d.watch, "night 1", "-a $(b).fits");

    assert.equal((await post(d.base, "/api/jobs/default/pause")).status, 200);
    await Deno.copyFile(FITS, queued);
    await waitFor(async () => (await status()).jobs[0].queue.queued === 1, 30_000, "queued");
    await Deno.remove(queued);
    await Deno.symlink(join(outside, "secret.fits"), queued);
    assert.equal((await post(d.base, "/api/jobs/default/resume")).status, 200);

    await d.daemon.waitForOutput(/Dropped .*-a \$\(b\)\.fits/);
    // A file sent after it shows the job went on with the link settled.
    await Deno.copyFile(FITS, join(d.watch, "after.fits"));
    await waitFor(async () => (await status()).jobs[0].sent === 1, 30_000, "after.fits sent");
    const job = (await status()).jobs[0];
    assert.equal(job.failed, 0, d.daemon.stderr());
    assert.equal(job.state, "watching");
    const output = d.daemon.stderr() + d.daemon.stdout();
    assert.doesNotMatch(output, /Failed to transfer|Attempt \d/);
    const nights = [...Deno.readDirSync(d.dest)].map((entry) => entry.name);
    assert.equal(nights.length, 1);
    assert.equal(await exists(join(d.dest, nights[0], "night 1", "-a $(b).fits")), false);
    assert.ok(await exists(join(d.dest, nights[0], "after.fits")));
  });
}
