/**
 * What every transfer method (local, scp and rsync against a real sshd, ftp
 * against a real vsftpd) must
 * hold at the destination and the source: temporary names nobody can
 * prepare, nothing written through a planted link, the source's mode and
 * mtime on the copy, and source links never followed unless allowed.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { tempNameFor, uploadFolderName } from "../../../src/transfer/temp_name.ts";
import { isTempName, TEMP_SUFFIX } from "../../../src/layout/destination.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { exists, listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import {
  itemFor,
  makeItem,
  type Method,
  startDestinations,
  type TransportCase,
  withFixture,
} from "../../helpers/transports.ts";

const never = new AbortController().signal;

/** A file and a folder someone would like the daemon to write to, owned by the transport's account. */
async function plantVictims(ctx: TransportCase): Promise<{ file: string; folder: string }> {
  const root = await Deno.makeTempDir({ prefix: "itx-victim-" });
  await ctx.own(root);
  const file = join(root, "victim");
  await Deno.writeTextFile(file, "precious");
  await Deno.chmod(file, 0o600);
  await ctx.own(file);
  const folder = join(root, "folder");
  await Deno.mkdir(folder, { mode: 0o700 });
  await ctx.own(folder);
  return { file, folder };
}

async function assertUntouched(victims: { file: string; folder: string }): Promise<void> {
  assert.equal(await Deno.readTextFile(victims.file), "precious");
  assert.equal((await Deno.stat(victims.file)).mode! & 0o777, 0o600);
  assert.deepEqual([...Deno.readDirSync(victims.folder)], [], "nothing created in the folder");
}

/** Assert `item` arrived byte-exact as a regular file. */
async function assertArrived(dst: string, item: TransferItem): Promise<void> {
  const path = join(dst, ...item.destination.split("/"));
  assert.ok((await Deno.lstat(path)).isFile, `${item.destination} is a regular file`);
  assert.equal(await sha256OfFile(path), await sha256OfFile(item.source));
}

/** A night folder at the destination, owned by the transport's account. */
async function nightFolder(ctx: TransportCase, name = "20240315"): Promise<string> {
  const night = join(ctx.dst, name);
  await Deno.mkdir(night, { recursive: true });
  await ctx.own(night);
  return night;
}

/** Run `fn` with every random name part all zeros (so the test can predict them). */
async function withZeroRandomness<T>(fn: () => Promise<T>): Promise<T> {
  const original = crypto.getRandomValues;
  crypto.getRandomValues = (<V extends ArrayBufferView | null>(array: V): V => {
    if (array instanceof Uint8Array) array.fill(0);
    return array;
  }) as typeof crypto.getRandomValues;
  try {
    return await fn();
  } finally {
    crypto.getRandomValues = original;
  }
}

/** The temporary names created in `folder` while `fn` runs (at least `expected`). */
async function tempNamesCreatedDuring(
  folder: string,
  expected: number,
  fn: () => Promise<void>,
): Promise<string[]> {
  const names = new Set<string>();
  const watcher = Deno.watchFs(folder, { recursive: false });
  const watching = (async () => {
    for await (const event of watcher) {
      for (const path of event.paths) if (isTempName(basename(path))) names.add(basename(path));
    }
  })();
  try {
    await fn();
    // The watcher's events come late on a busy machine: wait for the names expected, then any
    // others.
    await waitFor(() => names.size >= expected, 60_000, `${expected} temporary names`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    watcher.close();
    await watching;
  }
  return [...names];
}

function caseName(method: Method, what: string): string {
  return `${method}: ${what}`;
}

Deno.test("transfers write nothing through planted links, keep mode and mtime, never follow source links", async (t) => {
  const destinations = await startDestinations();
  try {
    for (const fixture of destinations.fixtures) {
      const method = fixture.method;
      await t.step(
        caseName(method, "links planted at the old temporary names and under the final name"),
        async () => {
          await withFixture(fixture, {}, async (ctx) => {
            const victims = await plantVictims(ctx);
            const night = await nightFolder(ctx);
            // The names earlier versions used, predictable by anyone.
            await Deno.symlink(victims.file, join(night, `.a.fits${TEMP_SUFFIX}`));
            await Deno.symlink(victims.folder, join(night, `.incoming-${ctx.owner}${TEMP_SUFFIX}`));
            await Deno.symlink(victims.file, join(night, "a.fits"));
            const item = await makeItem(ctx.src, "20240315/a.fits", randomBytes(5000));
            const [outcome] = await ctx.transport.send([item], never);
            assert.equal(outcome.error, null, outcome.error?.message);
            await assertArrived(ctx.dst, item);
            await assertUntouched(victims);
          });
        },
      );

      await t.step(
        caseName(method, "a link planted under the next temporary name fails the attempt"),
        async () => {
          await withFixture(fixture, {}, async (ctx) => {
            const victims = await plantVictims(ctx);
            const night = await nightFolder(ctx);
            // A first file sweeps the folder, so the planted name is met, not swept.
            const first = await makeItem(ctx.src, "20240315/first.fits", randomBytes(100));
            assert.equal((await ctx.transport.send([first], never))[0].error, null);
            const item = await makeItem(ctx.src, "20240315/a.fits", randomBytes(5000));
            const planted = await withZeroRandomness(async () => {
              // local writes each copy under a name of its own, the others into an upload folder.
              const perFile = method === "local";
              const name = perFile ? tempNameFor("a.fits", ctx.owner) : uploadFolderName(ctx.owner);
              const target = perFile ? victims.file : victims.folder;
              await Deno.symlink(target, join(night, name));
              return join(night, name);
            });
            const [outcome] = await withZeroRandomness(() => ctx.transport.send([item], never));
            assert.equal(outcome.error?.kind, "retry", String(outcome.error));
            assert.match(outcome.error!.message, /exists/);
            assert.equal(await exists(join(night, "a.fits")), false);
            assert.ok((await Deno.lstat(planted)).isSymlink, "the planted link is left alone");
            await assertUntouched(victims);
            // With unpredictable names again, the next attempt delivers.
            const [retried] = await ctx.transport.send([item], never);
            assert.equal(retried.error, null, retried.error?.message);
            await assertArrived(ctx.dst, item);
          });
        },
      );

      await t.step(caseName(method, "temporary names differ between two attempts"), async () => {
        await withFixture(fixture, {}, async (ctx) => {
          const night = await nightFolder(ctx);
          const item = await makeItem(ctx.src, "20240315/a.fits", randomBytes(5000));
          const names = await tempNamesCreatedDuring(night, 2, async () => {
            for (let attempt = 0; attempt < 2; attempt++) {
              assert.equal((await ctx.transport.send([item], never))[0].error, null);
            }
          });
          assert.equal(names.length, 2, names.join(", "));
          assert.deepEqual(await listFiles(ctx.dst), ["20240315/a.fits"], "no temporary file left");
        });
      });

      for (const verify of ["size", "checksum"] as const) {
        await t.step(
          caseName(method, `mode without group/other write and mtime arrive (verify ${verify})`),
          async () => {
            await withFixture(fixture, { verify_transfer: verify }, async (ctx) => {
              const modes = [[0o600, 0o600], [0o664, 0o644], [0o755, 0o755], [0o666, 0o644], [
                0o640,
                0o640,
              ]];
              const items: TransferItem[] = [];
              for (const [i, [mode]] of modes.entries()) {
                const item = await makeItem(
                  ctx.src,
                  `20240315/m${i}.fits`,
                  randomBytes(3000),
                  mode,
                );
                // An mtime well in the past, with milliseconds.
                const mtime = new Date(Date.UTC(2023, 10, 5, 22, 13, 7, 250 + i));
                await Deno.utime(item.source, mtime, mtime);
                items.push(await itemFor(item.source, item.destination));
              }
              const outcomes = await ctx.transport.send(items, never);
              for (const [i, item] of items.entries()) {
                assert.equal(outcomes[i].error, null, outcomes[i].error?.message);
                const info = await Deno.stat(join(ctx.dst, ...item.destination.split("/")));
                const expected = modes[i][1];
                assert.equal(
                  (info.mode! & 0o777).toString(8),
                  expected.toString(8),
                  `mode of a ${modes[i][0].toString(8)} source`,
                );
                assert.equal(
                  Math.floor(info.mtime!.getTime() / 1000),
                  Math.floor(item.mtimeMs / 1000),
                  "mtime to the second",
                );
                await assertArrived(ctx.dst, item);
              }
            });
          },
        );
      }

      await t.step(
        caseName(method, "a source link is not followed unless the item allows it"),
        async () => {
          await withFixture(fixture, { verify_transfer: "checksum" }, async (ctx) => {
            const secretDir = await Deno.makeTempDir({ prefix: "itx-secret-" });
            try {
              const secret = join(secretDir, "secret");
              await Deno.writeTextFile(secret, "root only");
              await Deno.chmod(secret, 0o600);
              await Deno.symlink(secret, join(ctx.src, "link.fits"));
              await Deno.symlink(secretDir, join(ctx.src, "folder-link.fits"));
              const fine = await makeItem(ctx.src, "20240315/fine.fits", randomBytes(100));
              const linked = await itemFor(join(ctx.src, "link.fits"), "20240315/link.fits");
              const folderLink: TransferItem = {
                source: join(ctx.src, "folder-link.fits"),
                destination: "20240315/folder-link.fits",
                size: 4096,
                mtimeMs: 0,
              };
              const outcomes = await ctx.transport.send([linked, fine, folderLink], never);
              assert.equal(outcomes[0].error?.kind, "fatal");
              assert.match(outcomes[0].error!.message, /symbolic link/);
              assert.equal(outcomes[1].error, null);
              assert.equal(outcomes[2].error?.kind, "fatal");
              assert.deepEqual(await listFiles(ctx.dst), ["20240315/fine.fits"]);
              // Allowed: the content of the file it points to arrives, with that file's mode.
              const [followed] = await ctx.transport.send([{ ...linked, followLink: true }], never);
              assert.equal(followed.error, null, followed.error?.message);
              const arrived = join(ctx.dst, "20240315", "link.fits");
              assert.ok((await Deno.lstat(arrived)).isFile);
              assert.equal(await Deno.readTextFile(arrived), "root only");
              assert.equal((await Deno.stat(arrived)).mode! & 0o777, 0o600);
            } finally {
              await Deno.remove(secretDir, { recursive: true });
            }
          });
        },
      );

      await t.step(caseName(method, "a FIFO source fails at once, nothing blocks"), async () => {
        await withFixture(fixture, {}, async (ctx) => {
          const fifo = join(ctx.src, "pipe.fits");
          const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
          assert.equal(made.code, 0);
          const item: TransferItem = {
            source: fifo,
            destination: "20240315/pipe.fits",
            size: 0,
            mtimeMs: (await Deno.stat(fifo)).mtime!.getTime(),
          };
          const fine = await makeItem(ctx.src, "20240315/fine.fits", randomBytes(100));
          const outcomes = await ctx.transport.send([item, fine], never);
          assert.equal(outcomes[0].error?.kind, "fatal");
          assert.match(outcomes[0].error!.message, /not a regular file/);
          assert.equal(outcomes[1].error, null);
          assert.deepEqual(await listFiles(ctx.dst), ["20240315/fine.fits"]);
        });
      });

      await t.step(
        caseName(method, "a destination folder that is a link is not written through"),
        async () => {
          await withFixture(fixture, {}, async (ctx) => {
            const victims = await plantVictims(ctx);
            await Deno.symlink(victims.folder, join(ctx.dst, "20240315"));
            const item = await makeItem(ctx.src, "20240315/sub/a.fits", randomBytes(100));
            const [outcome] = await ctx.transport.send([item], never);
            assert.equal(outcome.error?.kind, "fatal");
            assert.match(outcome.error!.message, /symbolic link/);
            await assertUntouched(victims);
          });
        },
      );
    }
  } finally {
    await destinations.stop();
  }
});
