/**
 * A destination that fills up (a 30 MiB tmpfs) while files are sent, with
 * every method: every file under a final name holds exactly its source's
 * bytes, the others fail as "destination full" (retry-later), and once the
 * file system is enlarged a retry delivers them. Sent as the daemon sends:
 * batches of the transport's size, two at a time.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { VerifyMode } from "../../../src/config/types.ts";
import { isDestinationFull } from "../../../src/errors.ts";
import type { TransferItem, TransferOutcome, Transport } from "../../../src/transfer/transport.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { makeItem, startDestinations, withFixture } from "../../helpers/transports.ts";

const never = new AbortController().signal;

async function run(argv: string[]): Promise<void> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Unmount `path`, waiting up to a minute for processes that still use it to end. */
async function unmount(path: string): Promise<void> {
  for (let tries = 1;; tries++) {
    try {
      return await run(["umount", path]);
    } catch (error) {
      if (tries >= 300) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Send `items` in batches of the transport's size, two batches at a time. */
async function sendLikeTheDaemon(
  transport: Transport,
  items: TransferItem[],
): Promise<TransferOutcome[]> {
  const batches: TransferItem[][] = [];
  for (let i = 0; i < items.length; i += transport.maxBatchFiles) {
    batches.push(items.slice(i, i + transport.maxBatchFiles));
  }
  const outcomes: TransferOutcome[] = [];
  const worker = async () => {
    for (let batch = batches.shift(); batch; batch = batches.shift()) {
      outcomes.push(...await transport.send(batch, never));
    }
  };
  await Promise.all([worker(), worker()]);
  return outcomes;
}

/** Every final name at `dst` holds its source's exact bytes; no other file exists but temps. */
async function assertFinalsExact(dst: string, items: TransferItem[]): Promise<string[]> {
  const byDestination = new Map(items.map((item) => [item.destination, item]));
  const finals = (await listFiles(dst)).filter((rel) => !rel.split("/").some(isTempName));
  for (const rel of finals) {
    const item = byDestination.get(rel);
    assert.ok(item, `unexpected file ${rel}`);
    assert.equal(
      await sha256OfFile(join(dst, rel)),
      await sha256OfFile(item.source),
      `${rel} under its final name holds other bytes than its source`,
    );
  }
  return finals;
}

Deno.test("a destination that fills up: no wrong bytes under a final name, disk-full errors, a retry after enlarging delivers", async (t) => {
  const destinations = await startDestinations();
  try {
    for (const fixture of destinations.fixtures) {
      for (const verify of ["size", "checksum"] as VerifyMode[]) {
        await t.step(`${fixture.method}, verify_transfer ${verify}`, async () => {
          await withFixture(fixture, { verify_transfer: verify }, async (ctx) => {
            await run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", ctx.dst]);
            try {
              await ctx.own(ctx.dst);
              const items: TransferItem[] = [];
              // 64 MiB in all: 11 files of 4 MiB and one of 20 MiB.
              for (let i = 0; i < 11; i++) {
                items.push(
                  await makeItem(ctx.src, `20240401/df${i}_4096k.fits`, randomBytes(4 << 20)),
                );
              }
              items.push(await makeItem(ctx.src, "20240401/big.fits", randomBytes(20 << 20)));
              const outcomes = await sendLikeTheDaemon(ctx.transport, items);
              const finals = await assertFinalsExact(ctx.dst, items);
              const failed = outcomes.filter((outcome) => outcome.error !== null);
              assert.ok(failed.length > 0, "the file system filled up");
              assert.equal(finals.length, items.length - failed.length);
              for (const { item, error } of failed) {
                const said = `${item.destination}: ${error!.message}`;
                if (fixture.method === "ftp" && !/full/.test(error!.message)) {
                  // The server may close the data connection before it says why: such a
                  // file is retried like any other failure.
                  assert.equal(error!.kind, "retry", said);
                  continue;
                }
                assert.equal(error!.kind, "retry-later", said);
                assert.match(error!.message, /full/, said);
              }

              await run(["mount", "-o", "remount,size=200m", ctx.dst]);
              const retried = await sendLikeTheDaemon(ctx.transport, failed.map((o) => o.item));
              for (const outcome of retried) {
                assert.equal(outcome.error, null, outcome.error?.message);
              }
              await assertFinalsExact(ctx.dst, items);
              assert.deepEqual(
                await listFiles(ctx.dst),
                items.map((item) => item.destination).sort(),
                "every file under its final name, no temporary file left",
              );
              assert.deepEqual(
                (await listFolders(ctx.dst)).filter((rel) => rel.split("/").some(isTempName)),
                [],
                "no temporary folder left",
              );
            } finally {
              // An FTP server's session process may still sit in the folder: close, then unmount.
              await ctx.transport.close();
              await unmount(ctx.dst);
            }
          });
        });
      }
    }
  } finally {
    await destinations.stop();
  }
});

Deno.test("a destination out of inodes, with room left: scp and rsync say it is full, in one call and by their upload", async (t) => {
  const destinations = await startDestinations();
  try {
    for (const fixture of destinations.fixtures) {
      if (fixture.method !== "scp" && fixture.method !== "rsync") continue;
      await t.step(fixture.method, async () => {
        await withFixture(fixture, {}, async (ctx) => {
          // Its root, the night folder and an upload folder: a copy finds no inode.
          await run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=3", "tmpfs", ctx.dst]);
          try {
            await ctx.own(ctx.dst);
            const items = [
              // Small: in one call (tar); large: by the upload program (scp's SFTP, rsync).
              await makeItem(ctx.src, "20240401/small.fits", randomBytes(64 << 10)),
              await makeItem(ctx.src, "20240401/large.fits", randomBytes(9 << 20)),
            ];
            for (const item of items) {
              const [outcome] = await ctx.transport.send([item], never);
              const said = `${item.destination}: ${outcome.error?.message}`;
              assert.ok(outcome.error !== null, said);
              assert.equal(outcome.error.kind, "retry-later", said);
              assert.ok(isDestinationFull(outcome.error), said);
            }
            await run(["mount", "-o", "remount,nr_inodes=1000", ctx.dst]);
            for (const outcome of await ctx.transport.send(items, never)) {
              assert.equal(outcome.error, null, outcome.error?.message);
            }
            await assertFinalsExact(ctx.dst, items);
            assert.deepEqual(
              await listFiles(ctx.dst),
              items.map((item) => item.destination).sort(),
              "every file under its final name, no temporary file left",
            );
          } finally {
            await ctx.transport.close();
            await unmount(ctx.dst);
          }
        });
      });
    }
  } finally {
    await destinations.stop();
  }
});
