/**
 * A `local` destination that refuses copies, as root meets it: a night folder that cannot be
 * written (immutable), a file system mounted read-only, a full one. Each failure says in plain
 * words which folder and what to do, never the system's code or the hidden temporary file, keeps
 * its kind (the job waits, or the file is tried again), and once the destination takes files
 * again every file arrives byte for byte.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { testJob } from "../../helpers/jobs.ts";
import { assertCopiesIntact, randomBytes } from "../../helpers/files.ts";
import { whileImmutable } from "../../helpers/immutable.ts";
import { makeItem } from "../../helpers/transports.ts";
import { remountTmpfs, resizeTmpfs, withTmpfs } from "../../helpers/tmpfs.ts";
import { isDestinationFull } from "../../../src/errors.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";

const never = new AbortController().signal;

/** Sources in `src`: three small ones (the copier's thread) and a larger one (the daemon's). */
async function sources(src: string, bigSize = 5_000_000) {
  const files = new Map<string, Uint8Array>();
  const items: TransferItem[] = [];
  for (const [name, size] of [["a '1'.fits", 3000], ["b $(id).fits", 4000], ["c.fits", 5000]]) {
    files.set(name as string, randomBytes(size as number));
  }
  files.set("big.fits", randomBytes(bigSize));
  for (const [name, data] of files) items.push(await makeItem(src, `20240315/${name}`, data));
  return { files, items };
}

/** Every outcome failed of `kind`, its message plain (`said`), naming no system code or copy. */
function assertSaid(outcomes: TransferOutcome[], kind: string, said: RegExp): void {
  for (const { error } of outcomes) {
    assert.equal(error?.kind, kind, error?.message);
    assert.match(error!.message, said);
    assert.doesNotMatch(error!.message, /os error|image-transfer-partial|\bE[A-Z]{3,}\b/);
  }
}

function transportTo(dest: string): LocalTransport {
  return new LocalTransport(
    testJob("refused", {
      watch_path: "/unused",
      remote_base_path: dest,
      transfer_method: "local",
      verify_transfer: "checksum",
    }),
  );
}

Deno.test("local: a night folder that cannot be written, a read-only and a full destination are said plainly, and every file arrives once fixed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-local-refusals-" });
  try {
    const src = join(root, "src");
    // The night folder cannot be written (immutable: root too is refused).
    const dest = join(root, "dest");
    const night = join(dest, "20240315");
    await Deno.mkdir(night, { recursive: true });
    const { files, items } = await sources(src);
    const transport = transportTo(dest);
    try {
      // Before: "permission denied (EPERM: operation not permitted, open '.../.a '1'.fits....
      // image-transfer-partial')".
      const refused = await whileImmutable(night, () => transport.send(items, never));
      assertSaid(
        refused,
        "fatal",
        new RegExp(
          `: nothing can be written in ${night} \\(operation not permitted\\); give the user ` +
            "the daemon runs as write permission there",
        ),
      );
      for (const outcome of await transport.send(items, never)) assert.equal(outcome.error, null);
      await assertCopiesIntact(dest, files, true);
    } finally {
      await transport.close();
    }
    // Mounted read-only: the job waits for it.
    await withTmpfs(join(root, "ro"), "10m", async (ro) => {
      const transport = transportTo(ro);
      try {
        // Before: "destination is read-only (Read-only file system (os error 30): mkdir '...')".
        assertSaid(
          await transport.send(items, never),
          "retry-later",
          new RegExp(
            `: the destination is on a read-only file system \\(making the folder ` +
              `${ro}/20240315\\): nothing can be written there; files wait until it can ` +
              "\\(mount it read-write\\)",
          ),
        );
        await remountTmpfs(ro, false);
        for (const outcome of await transport.send(items, never)) assert.equal(outcome.error, null);
        await assertCopiesIntact(ro, files, true);
      } finally {
        await transport.close();
      }
    }, { readOnly: true });
    // Full: the job waits for room.
    await withTmpfs(join(root, "full"), "1m", async (full) => {
      const big = await sources(join(root, "src2"), 2_000_000);
      const transport = transportTo(full);
      try {
        const outcomes = await transport.send(big.items, never);
        const refused = outcomes.filter((outcome) => outcome.error !== null);
        assert.ok(refused.length > 0);
        // Before: "destination is full (No space left on device (os error 28))".
        assertSaid(
          refused,
          "retry-later",
          new RegExp(
            `: destination is full: No space left on device in ${full}/20240315; files wait ` +
              "until there is room again",
          ),
        );
        for (const { error } of refused) assert.ok(isDestinationFull(error!));
        await assertCopiesIntact(full, big.files);
        await resizeTmpfs(full, "20m");
        const again = refused.map((outcome) => outcome.item);
        for (const outcome of await transport.send(again, never)) assert.equal(outcome.error, null);
        await assertCopiesIntact(full, big.files, true);
      } finally {
        await transport.close();
      }
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
