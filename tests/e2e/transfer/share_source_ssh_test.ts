/**
 * A watch folder on a share (a bindfs view served by a process of the test) whose client dies
 * while scp or rsync reads a file of it for a real sshd: the failed read is the watch folder's
 * problem, said as the README's "Watching a network share" says, never the destination's (which
 * answers all along); the job shows the watch folder cannot be read, and the file is kept and
 * arrives whole once the share is mounted again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { isMounted, mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { getJson } from "../../helpers/status.ts";
import { isTempName } from "../../../src/layout/destination.ts";

/** Not a final name: one of the daemon's temporary names, or rsync's hidden one while it writes. */
const underWay = (rel: string) =>
  rel.split("/").some((part) => isTempName(part) || part.startsWith("."));

/**
 * A daemon of a `method` job watching a bindfs view served by a process of the test (`share`:
 * kill it to kill the share's client; `remount` serves it again), with its status page at `base`
 * and `fields` added to its config. Disposed: the daemon, the view and the sshd stopped.
 */
async function shareDaemon(method: "scp" | "rsync", fields: Record<string, unknown> = {}) {
  const sshd = await startSshd();
  const root = await Deno.makeTempDir({ prefix: "itx-share-src-" });
  const under = join(root, "under");
  const mount = join(root, "mount");
  await Deno.mkdir(under);
  const share = { client: await mountBindfsProcess(under, mount) };
  const port = freePort();
  // Polled seldom, so that the failed read, not a poll, is what meets the share gone.
  const box = await sshSandbox(sshd, method, {
    watch_path: mount,
    stability_window_seconds: 0.3,
    retry_delay_seconds: 0.2,
    rescan_interval_seconds: 0,
    poll_interval_seconds: 5,
    status_listen: `127.0.0.1:${port}`,
    ...fields,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  return {
    sshd,
    mount,
    share,
    box,
    daemon,
    base: `http://127.0.0.1:${port}`,
    async kill() {
      share.client.kill("SIGKILL");
      await share.client.status;
    },
    async remount() {
      await unmountBindfs(mount);
      share.client = await mountBindfsProcess(under, mount);
    },
    /** The file `name` arrived with `bytes`, and nothing else is at the destination. */
    async arrivedOnce(name: string, bytes: Uint8Array) {
      const arrived = (await listFiles(box.remote)).filter((rel) => !underWay(rel));
      assert.deepEqual(arrived.map((rel) => basename(rel)), [name]);
      assert.equal(await sha256OfFile(join(box.remote, arrived[0])), sha256Of(bytes));
    },
    async [Symbol.asyncDispose]() {
      await daemon.stop();
      try {
        share.client.kill("SIGKILL");
      } catch { /* ended already */ }
      await share.client.status;
      if (await isMounted(mount)) await unmountBindfs(mount);
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    },
  };
}

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: a watch share whose client dies while a file of it is sent is the watch folder's problem, not the destination's; the job says so, and the file arrives whole once the share is back`, async () => {
    // Slow enough that the client dies while the copy is written.
    await using run = await shareDaemon(method, { bandwidth_limit: "2MiB/s" });
    const { mount, box, daemon, base } = run;
    await daemon.waitForOutput(/Watching .* with file events and a poll/);
    const name = "big $(x) 'share.fits";
    const bytes = randomBytes(8 * 1024 * 1024);
    await Deno.writeFile(join(mount, name), bytes);
    await waitFor(
      async () => (await listFiles(box.remote).catch(() => [])).some(underWay),
      60_000,
      "the copy under way",
    );
    await run.kill();
    await daemon.waitForOutput(
      new RegExp(
        `INFO +\\[pipeline\\] .*${
          RegExp.escape(name)
        } was not sent: its watch folder cannot be reached .*; the file is kept, and sent once the folder can be read again`,
      ),
    );
    type Status = { jobs: Array<{ state: string; reason: string | null; failed: number }> };
    const job = (await getJson<Status>(base, "/api/status")).jobs[0];
    assert.equal(job.state, "failing", JSON.stringify(job));
    assert.match(job.reason ?? "", /^the watch folder cannot be read: /);
    assert.equal(job.failed, 0);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /image_transfer_job_state\{[^}]*state="failing"\} 1/);
    assert.doesNotMatch(metrics, /image_transfer_job_state\{[^}]*state="unreachable"\} 1/);
    await run.remount();
    await daemon.waitForOutput(/Successfully transferred .*share\.fits/, 60_000);
    await run.arrivedOnce(name, bytes);
    const output = daemon.stderr() + daemon.stdout();
    assert.doesNotMatch(
      output,
      /cannot be reached: |takes no file|the connection to \S+ failed|Dropped|Failed to transfer|Attempt \d/,
      output,
    );
  });
}

Deno.test("scp: a destination back up (its probe meets the watch share gone) that is said to take files again is not shown unreachable any more; the file arrives once the share is back", async () => {
  await using run = await shareDaemon("scp");
  const { sshd, mount, daemon, base } = run;
  type Status = { jobs: Array<{ state: string; reason: string | null; held: boolean }> };
  await daemon.waitForOutput(/Watching .* with file events and a poll/);
  await sshd.halt();
  const name = "held $(x).fits";
  const bytes = randomBytes(300_000);
  await Deno.writeFile(join(mount, name), bytes);
  await daemon.waitForOutput(/ERROR +\[pipeline\] The destination .* cannot be reached: /);
  assert.equal((await getJson<Status>(base, "/api/status")).jobs[0].state, "unreachable");
  await run.kill();
  await sshd.restart();
  await daemon.waitForOutput(/The destination .* takes files again; job default resumes/, 60_000);
  const job = (await getJson<Status>(base, "/api/status")).jobs[0];
  assert.equal(job.state, "failing", JSON.stringify(job));
  assert.match(job.reason ?? "", /^the watch folder cannot be read: /);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.doesNotMatch(metrics, /image_transfer_job_state\{[^}]*state="unreachable"\} 1/);
  await run.remount();
  await daemon.waitForOutput(/Successfully transferred .*held \$\(x\)\.fits/, 60_000);
  await run.arrivedOnce(name, bytes);
  await daemon.waitForOutput(/Watch folder .* can be read again/);
  assert.equal((await getJson<Status>(base, "/api/status")).jobs[0].state, "watching");
});
