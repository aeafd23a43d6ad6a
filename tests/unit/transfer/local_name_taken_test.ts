/**
 * A final name taken while the `local` transport copies a file that may replace nothing
 * (`TransferItem.noReplace`: another daemon sending to the same destination, say): the look
 * before the copy saw the name free, a file took it during the copy. The copy goes into a FUSE
 * view whose writes wait while a file exists (`holding_fs.py`): the file is put under the final
 * name, in the folder behind the view, while the copy is held, with no race against its speed.
 * That file is never replaced: other bytes fail the item as occupied (the pipeline sends it
 * beside), the same bytes count as arrived; no temporary copy is left. Where no hard links can
 * be made (a view refusing them, as FAT does), the copy still arrives, and a name taken before it
 * is put in place is still not replaced.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import { TransferError } from "../../../src/errors.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { mountHoldingView, mountNoLinksView, unmountBindfs } from "../../helpers/bindfs.ts";

const NAME = `s1 '$(x)' "a".fits`;

/** A destination `disk` served at `view`, whose writes wait while `hold` exists. */
interface Held {
  src: string;
  disk: string;
  view: string;
  hold: string;
}

/** Run `fn` with such a destination; `links`: whether the view makes hard links. */
async function withHeldView(fn: (held: Held) => Promise<void>, links = true): Promise<void> {
  // No space in the path: the mount table quotes it otherwise.
  const root = await Deno.makeTempDir({ prefix: "itx-taken-" });
  const held = {
    src: join(root, "src"),
    disk: join(root, "disk"),
    view: join(root, "view"),
    hold: join(root, "hold"),
  };
  try {
    await Deno.mkdir(held.src);
    await Deno.mkdir(held.disk);
    const mount = links ? mountHoldingView : mountNoLinksView;
    const server = await mount(held.disk, held.view, held.hold);
    try {
      await fn(held);
    } finally {
      await Deno.remove(held.hold).catch(() => {});
      await unmountBindfs(held.view);
      await server.status;
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(`${held.disk}.attic`, { recursive: true }).catch(() => {});
  }
}

/** A source of `bytes` to `NIGHT/NAME`, replacing nothing there. */
async function noReplaceItem(src: string, bytes: Uint8Array): Promise<TransferItem> {
  const source = join(src, NAME);
  await Deno.writeFile(source, bytes);
  const info = await Deno.stat(source);
  const destination = `NIGHT/${NAME}`;
  return { source, destination, size: info.size, mtimeMs: info.mtime!.getTime(), noReplace: true };
}

/**
 * Send `item` into the view, running `intrude` on the final path behind it while its copy is
 * held (the final name looked at and seen free, the temporary copy made); the outcome.
 */
async function sendWhile(
  { disk, view, hold }: Held,
  item: TransferItem,
  intrude: (finalPath: string) => Promise<void>,
): Promise<TransferOutcome> {
  const transport = new LocalTransport(testJob("test", {
    watch_path: "/unused",
    remote_base_path: view,
    transfer_method: "local",
    verify_transfer: "checksum",
  }));
  try {
    await Deno.writeFile(hold, new Uint8Array());
    const sending = transport.send([item], new AbortController().signal);
    // Looked into behind the view: the view answers nothing while a write waits.
    await waitFor(async () =>
      (await listFiles(disk).catch(() => [])).some((path) => isTempName(basename(path)))
    );
    await intrude(join(disk, "NIGHT", NAME));
    await Deno.remove(hold);
    const [outcome] = await sending;
    return outcome;
  } finally {
    await transport.close();
  }
}

Deno.test("local: a file with other bytes put under the final name while the copy is made is not replaced; the item fails as occupied, no copy left", async () => {
  await withHeldView(async (held) => {
    const ours = randomBytes(1 << 20);
    const theirs = randomBytes(1 << 20); // The same size: only the bytes tell them apart.
    const item = await noReplaceItem(held.src, ours);
    const outcome = await sendWhile(held, item, (final) => Deno.writeFile(final, theirs));
    assert.ok(outcome.error instanceof TransferError, "not sent over their file");
    assert.equal(outcome.occupied, "other", outcome.error.message);
    assert.match(outcome.error.message, /holds another file, not a copy of it sent by this job/);
    assert.equal(await sha256OfFile(join(held.disk, "NIGHT", NAME)), sha256Of(theirs));
    assert.deepEqual(await listFiles(held.disk), [`NIGHT/${NAME}`], "no temporary copy left");
  });
});

Deno.test("local: a file with the same bytes put under the final name while the copy is made is left as it is and counts as arrived", async () => {
  await withHeldView(async (held) => {
    const bytes = randomBytes(1 << 20);
    const item = await noReplaceItem(held.src, bytes);
    let planted: Deno.FileInfo | null = null;
    const outcome = await sendWhile(held, item, async (final) => {
      await Deno.writeFile(final, bytes);
      planted = await Deno.stat(final);
    });
    assert.equal(outcome.error, null);
    assert.equal(outcome.occupied, "same");
    const after = await Deno.stat(join(held.disk, "NIGHT", NAME));
    assert.equal(after.ino, planted!.ino, "their file is not written over");
    assert.equal(after.nlink, 1);
    assert.equal(await sha256OfFile(join(held.disk, "NIGHT", NAME)), sha256Of(bytes));
    assert.deepEqual(await listFiles(held.disk), [`NIGHT/${NAME}`], "no temporary copy left");
  });
});

Deno.test("local: a folder made under the final name while the copy is made is not replaced; the item fails as occupied", async () => {
  await withHeldView(async (held) => {
    const item = await noReplaceItem(held.src, randomBytes(1 << 20));
    const outcome = await sendWhile(held, item, async (final) => {
      await Deno.mkdir(final);
      await Deno.writeFile(join(final, "theirs"), randomBytes(10));
    });
    assert.ok(outcome.error instanceof TransferError);
    assert.equal(outcome.occupied, "other", outcome.error.message);
    assert.deepEqual(await listFiles(held.disk), [`NIGHT/${NAME}/theirs`], "no copy left");
  });
});

Deno.test("local, no hard links (a view refusing them, as FAT): a file that may replace nothing arrives; a name taken while it is copied is still not replaced", async () => {
  await withHeldView(async (held) => {
    // Free all along: renamed into place.
    const bytes = randomBytes(1 << 20);
    const free = await sendWhile(held, await noReplaceItem(held.src, bytes), async () => {});
    assert.equal(free.error, null, free.error?.message);
    assert.equal(free.occupied, undefined);
    assert.equal(await sha256OfFile(join(held.disk, "NIGHT", NAME)), sha256Of(bytes));
    await Deno.remove(join(held.view, "NIGHT", NAME));
    // Taken while copied: the last look before the rename sees it.
    const theirs = randomBytes(1 << 20);
    const item = await noReplaceItem(held.src, randomBytes(1 << 20));
    const outcome = await sendWhile(held, item, (final) => Deno.writeFile(final, theirs));
    assert.ok(outcome.error instanceof TransferError);
    assert.equal(outcome.occupied, "other", outcome.error.message);
    assert.equal(await sha256OfFile(join(held.disk, "NIGHT", NAME)), sha256Of(theirs));
    assert.deepEqual(await listFiles(held.disk), [`NIGHT/${NAME}`], "no temporary copy left");
  }, false);
});
