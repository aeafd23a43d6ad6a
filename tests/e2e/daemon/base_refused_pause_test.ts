/**
 * A destination folder (`remote_base_path`) the login may not write into fails every file of the
 * job alike (no night folder can be made there): the job pauses, as for a destination that cannot
 * be reached, says so once, and probes it; once it can be written, the files waiting go at the
 * next probe, not after their slow retry. A real daemon sends with scp and rsync to a real sshd,
 * and with FTP over TLS to a real vsftpd, whose login user is not root, so the folder's mode holds.
 * Over FTP, too, where files arrived in that folder before (a run earlier) and their night folder
 * was moved away since: tonight's folder cannot be made again, and the job pauses alike.
 */
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import type { JobPause } from "../../../src/ledger/daemon_lock.ts";
import { startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, listArrived, randomBytes, waitFor } from "../../helpers/files.ts";
import { ONE_RETRY_THEN_AN_HOUR } from "../../helpers/jobs.ts";
import { freePort } from "../../helpers/net.ts";
import { getJson, pausedJob } from "../../helpers/status.ts";
import { REMOTE_METHODS, type RemoteSandbox, remoteSandbox } from "../../helpers/remote_daemon.ts";

for (const method of REMOTE_METHODS) {
  Deno.test(`${method}: a destination folder the login may not write into pauses the job; once writable, the waiting files go at the next probe`, async () => {
    const port = freePort();
    const page = `http://127.0.0.1:${port}`;
    const box = await remoteSandbox(method, {
      stability_window_seconds: 0.3,
      // A file failing on its own would give up at its second attempt and wait an hour for its
      // next: far beyond what this test waits for anything.
      ...ONE_RETRY_THEN_AN_HOUR,
      rescan_interval_seconds: 0,
      status_listen: `127.0.0.1:${port}`,
    });
    await Deno.chmod(box.remote, 0o555);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      await pausedAndFixed(box, daemon, await written(box, ["a.fits", "b.fits", "c.fits"]), page);
    } finally {
      await daemon.stop();
      await Deno.chmod(box.remote, 0o755).catch(() => {});
      await box.stop();
    }
  });
}

Deno.test("ftp: a destination folder that took files in a run before, its night folder moved away and the folder made unwritable since, pauses the job; once writable, the waiting files go at the next probe", async () => {
  const port = freePort();
  const page = `http://127.0.0.1:${port}`;
  const box = await remoteSandbox("ftp", {
    stability_window_seconds: 0.3,
    ...ONE_RETRY_THEN_AN_HOUR,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  let daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "first.fits"), randomBytes(2000));
    await waitFor(
      async () => (await listArrived(box.remote)).length === 1,
      LEAST_CEILING_MS,
      "the first file to arrive",
    );
    await daemon.stop();
    // Tonight's folder moved away (by hand, an archive), the destination folder closed.
    const [arrived] = await listArrived(box.remote);
    await Deno.rename(join(box.remote, dirname(arrived)), join(box.root, "moved"));
    await Deno.chmod(box.remote, 0o555);

    daemon = startCli(["run", "-c", box.config], { env: box.env });
    await daemon.waitForOutput("Watching");
    await pausedAndFixed(box, daemon, await written(box, ["a.fits", "b.fits"]), page);
  } finally {
    await daemon.stop();
    await Deno.chmod(box.remote, 0o755).catch(() => {});
    await box.stop();
  }
});

/** Files of these `names` written into `box`'s watch folder, each its own bytes. */
async function written(box: RemoteSandbox, names: string[]): Promise<Map<string, Uint8Array>> {
  const sent = new Map<string, Uint8Array>();
  for (const name of names) {
    sent.set(name, randomBytes(3000 + sent.size));
    await Deno.writeFile(join(box.watch, name), sent.get(name)!);
  }
  return sent;
}

/**
 * With the files `sent` waiting for `box`'s unwritable destination folder: the job is paused and
 * says so once, no file uses up its retries; once the folder is writable, every file arrives whole
 * at the next probe and the job resumes.
 */
async function pausedAndFixed(
  box: RemoteSandbox,
  daemon: ReturnType<typeof startCli>,
  sent: Map<string, Uint8Array>,
  page: string,
): Promise<void> {
  const paused = () => pausedJob(box.config, box.env);
  let pause: JobPause | undefined;
  await waitFor(
    async () => (pause = await paused())?.state === "destination failing",
    LEAST_CEILING_MS,
    "status to say the job is paused",
  );
  assert.match(pause!.reason, /may not write into the destination folder/);
  const [job] = (await getJson<{
    jobs: Array<{ state: string; held: boolean; queue: { failed: number } }>;
  }>(page, "/api/status")).jobs;
  assert.equal(job.state, "failing");
  assert.equal(job.held, true);
  assert.equal(job.queue.failed, 0, "no file used up its retries");
  const metrics = await (await fetch(`${page}/metrics`)).text();
  assert.match(metrics, /^image_transfer_job_paused\{job="default",method="\w+"\} 1$/m);
  // Said once, as the pause begins; no file gives up on its own, nor counts an attempt.
  await waitFor(
    async () => (await listQueued(page)) === sent.size,
    LEAST_CEILING_MS,
    "every file to wait for the destination",
  );
  const log = daemon.stderr();
  assert.equal(log.split("takes no file:").length - 1, 1, log);
  assert.doesNotMatch(log, /Failed to transfer|Attempt \d+ of/, log);

  // The folder is fixed: every file arrives at the next probe, whole.
  await Deno.chmod(box.remote, 0o755);
  const arrivedNow = async () =>
    (await listArrived(box.remote)).filter((copy) => sent.has(basename(copy)));
  await waitFor(
    async () => (await arrivedNow()).length === sent.size,
    LEAST_CEILING_MS,
    "every file to arrive",
  );
  for (const copy of await arrivedNow()) {
    assert.deepEqual(await Deno.readFile(join(box.remote, copy)), sent.get(basename(copy)));
  }
  await daemon.waitForOutput("takes files again; job default resumes");
  assert.equal(await paused(), undefined);
}

/** How many files of the job wait to be sent (queued, not failed), as `/api/status` counts. */
async function listQueued(page: string): Promise<number> {
  const [job] = (await getJson<{ jobs: Array<{ queue: Record<string, number> }> }>(
    page,
    "/api/status",
  )).jobs;
  return job.queue.queued + job.queue.waiting + job.queue.sending;
}
