/**
 * A folder of the watch folder swapped for a symbolic link after its file was found (by someone
 * who may write there): the file it now leads to, outside the watch folder, is never read, sent
 * or removed under the `symlinks` policies `skip` and `inside`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { TransferError } from "../../../src/errors.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { closeSource, openSource } from "../../../src/transfer/source.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { withLinkPolicy } from "../../../src/pipeline/batch_items.ts";
import { cleanupStep } from "../../../src/pipeline/source_cleanup.ts";
import { listFiles } from "../../helpers/files.ts";
import { withTempDir } from "../../helpers/files.ts";

const SECRET = "only the daemon's account may read this\n";

/**
 * A watch folder whose `night/` held `a.fits` (a decoy the size and mtime of the secret) when it
 * was found, and now is a link to a folder outside that holds the secret under the same name; the
 * real folder moved aside. Returns the item as the job was given it and the paths.
 */
async function swappedFolder(root: string): Promise<
  { watch: string; dest: string; item: TransferItem; secret: string }
> {
  const watch = join(root, "watch");
  const outside = join(root, "outside");
  const dest = join(root, "dest");
  await Deno.mkdir(join(watch, "night"), { recursive: true });
  await Deno.mkdir(outside);
  const secret = join(outside, "a.fits");
  await Deno.writeTextFile(secret, SECRET);
  const decoy = join(watch, "night", "a.fits");
  await Deno.writeTextFile(decoy, "x".repeat(SECRET.length));
  const { mtime } = await Deno.stat(secret);
  await Deno.utime(decoy, mtime!, mtime!);
  const item: TransferItem = {
    source: decoy,
    destination: "20240315/night/a.fits",
    size: SECRET.length,
    mtimeMs: mtime!.getTime(),
  };
  await Deno.rename(join(watch, "night"), join(watch, "night.real"));
  await Deno.symlink(outside, join(watch, "night"));
  return { watch, dest, item, secret };
}

function job(watch: string, dest: string, overrides: Partial<JobConfig> = {}): JobConfig {
  return testJob("test", {
    watch_path: watch,
    remote_base_path: dest,
    transfer_method: "local",
    verify_transfer: "size",
  }, overrides);
}

Deno.test("openSource: a file reached through a folder swapped for a link is not read (fatal, names the folder)", async () => {
  await withTempDir(async (root) => {
    const { watch, item } = await swappedFolder(root);
    // Without its watch folder the path alone looks like a regular file of the right version.
    closeSource(openSource(item));
    assert.throws(
      () => openSource({ ...item, watchFolder: watch }),
      (error: unknown) =>
        error instanceof TransferError && error.kind === "fatal" &&
        /inside night, a symbolic link to a folder/.test(error.message),
    );
  });
});

Deno.test("withLinkPolicy: the watch folder goes with the item under skip and inside, not under follow", () => {
  const item: TransferItem = { source: "/w/a.fits", destination: "a.fits", size: 1, mtimeMs: 1 };
  for (const symlinks of ["skip", "inside"] as const) {
    assert.equal(withLinkPolicy(item, job("/w", "/d", { symlinks })).watchFolder, "/w", symlinks);
  }
  assert.equal(
    withLinkPolicy(item, job("/w", "/d", { symlinks: "follow" })).watchFolder,
    undefined,
  );
});

// One file alone is copied on the main thread, two or more by the copier's thread.
for (const others of [0, 2]) {
  Deno.test(`LocalTransport: a source reached through a folder swapped for a link fails and does not arrive (with ${others} other file(s))`, async () => {
    await withTempDir(async (root) => {
      const { watch, dest, item, secret } = await swappedFolder(root);
      const items = [item];
      for (let i = 0; i < others; i++) {
        const source = join(watch, `other${i}.fits`);
        await Deno.writeTextFile(source, `other ${i}`);
        const info = await Deno.stat(source);
        items.push({
          source,
          destination: `20240315/other${i}.fits`,
          size: info.size,
          mtimeMs: info.mtime!.getTime(),
        });
      }
      const transport = new LocalTransport(job(watch, dest));
      try {
        const outcomes = await transport.send(
          items.map((one) => withLinkPolicy(one, job(watch, dest))),
          new AbortController().signal,
        );
        assert.equal(outcomes[0].error?.kind, "fatal", String(outcomes[0].error));
        assert.match(outcomes[0].error!.message, /symbolic link to a folder/);
        for (const outcome of outcomes.slice(1)) assert.equal(outcome.error, null);
      } finally {
        await transport.close();
      }
      const arrived = await listFiles(dest).catch(() => []);
      assert.deepEqual(
        arrived.sort(),
        items.slice(1).map((one) => one.destination).sort(),
        "the others arrived, not the file behind the link",
      );
      assert.equal(await Deno.readTextFile(secret), SECRET);
    });
  });
}

Deno.test("cleanupStep: a sent source now reached through a folder swapped for a link is not deleted or moved", async () => {
  await withTempDir(async (root) => {
    const { watch, dest, item } = await swappedFolder(root);
    const sent = { size: item.size, mtimeMs: item.mtimeMs };
    for (const after_transfer of ["delete", "move"] as const) {
      const settings = { after_transfer, archive_path: join(root, "archive") };
      assert.equal(await cleanupStep(job(watch, dest, settings), "night/a.fits", sent), null);
      // Under `follow` links are the job's to go through.
      const follow = job(watch, dest, { ...settings, symlinks: "follow" });
      assert.notEqual(await cleanupStep(follow, "night/a.fits", sent), null, after_transfer);
    }
    // The folder back in its place: the source goes as usual.
    await Deno.remove(join(watch, "night"));
    await Deno.rename(join(watch, "night.real"), join(watch, "night"));
    const back = job(watch, dest, { after_transfer: "delete" });
    assert.notEqual(await cleanupStep(back, "night/a.fits", sent), null);
  });
});
