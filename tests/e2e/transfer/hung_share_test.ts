/**
 * A `local` destination on a share that stops answering, through the real
 * CLI: a FUSE view (`bindfs`) whose process is stopped (`SIGSTOP`) stands for
 * a hard NFS mount whose server died, or a frozen FUSE daemon: every call on
 * it waits. The daemon goes on (its status page answers), the job waits for
 * the destination and says why, and once the share answers again the file
 * arrives whole, with no temporary copy left beside it. A daemon stopped
 * while a copy waits on such a share ends all the same.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isMounted, mountBindfsProcess, unmountBindfs } from "../../helpers/bindfs.ts";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

interface JobView {
  state: string;
  reason: string | null;
  inFlight: unknown[];
}

/** A bindfs view of a new `server` folder at `share`, its process handed to `fn`. */
async function withShare(
  fn: (server: string, share: string, view: Deno.ChildProcess) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-hung-share-" });
  const server = join(root, "server");
  const share = join(root, "share");
  await Deno.mkdir(server);
  const view = await mountBindfsProcess(server, share);
  try {
    await fn(server, share, view);
  } finally {
    // A stopped view answers again (a second SIGCONT changes nothing); unmounted, it ends.
    view.kill("SIGCONT");
    if (await isMounted(share)) await unmountBindfs(share);
    await view.status;
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("a local destination on a share that stops answering: the daemon goes on, the job waits and says why, the file arrives once it answers", async () => {
  await withShare(async (server, share, view) => {
    await using status = await startStatusDaemon({
      remote_base_path: share,
      transfer_timeout_seconds: 2,
      retry_delay_seconds: 1,
    });
    const job = async () =>
      (await getJson<{ jobs: JobView[] }>(status.base, "/api/status")).jobs[0];
    const first = randomBytes(300_000);
    await Deno.writeFile(join(status.watch, "first.fits"), first);
    await waitFor(async () => (await listFiles(server)).some((rel) => rel.endsWith("/first.fits")));

    view.kill("SIGSTOP");
    const second = randomBytes(300_000);
    await Deno.writeFile(join(status.watch, "second.fits"), second);
    // Every answer below comes from a daemon whose copy waits on the stopped share.
    await waitFor(async () => {
      const now = await job();
      return now.state === "failing" && /did not answer for 2 s/.test(now.reason ?? "");
    });
    assert.match(
      status.daemon.stderr(),
      /second\.fits .*the destination .*share did not answer for 2 s \(a share whose server stopped answering\?\)/,
    );

    view.kill("SIGCONT");
    await waitFor(async () =>
      (await listFiles(server)).some((rel) => rel.endsWith("/second.fits"))
    );
    const night = (await listFiles(server)).find((rel) => rel.endsWith("/second.fits"))!;
    assert.deepEqual(await Deno.readFile(join(server, night)), second);
    await waitFor(async () => (await job()).state === "watching");
    // The copy that waited is removed once its calls return; only the two files stay.
    await waitFor(async () => (await listFiles(server)).length === 2);
    assert.deepEqual(
      (await listFiles(server)).map((rel) => rel.split("/").pop()).sort(),
      ["first.fits", "second.fits"],
    );
  });
});

Deno.test("a daemon stopped while a copy waits on a share that stopped answering ends", async () => {
  await withShare(async (_server, share, view) => {
    const status = await startStatusDaemon({ remote_base_path: share });
    try {
      view.kill("SIGSTOP");
      await Deno.writeFile(join(status.watch, "waiting.fits"), randomBytes(300_000));
      await waitFor(async () =>
        (await getJson<{ jobs: JobView[] }>(status.base, "/api/status")).jobs[0].inFlight.length > 0
      );
      const stopped = await status.daemon.stop();
      assert.equal(stopped.code, 0, status.daemon.stderr());
      assert.match(status.daemon.stderr(), /Stopped/);
    } finally {
      await status[Symbol.asyncDispose]();
    }
  });
});
