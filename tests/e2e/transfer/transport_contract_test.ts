/**
 * The transport contract (see `Transport` in src/transfer/transport.ts), one
 * suite run against every method of `startDestinations`: local into a folder,
 * scp and rsync against a real OpenSSH server, ftp against a real vsftpd with
 * TLS. A new method passes it by adding its fixture.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import {
  exists,
  listFiles,
  listFolders,
  randomBytes,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import {
  itemFor,
  makeItem,
  startDestinations,
  type TransportCase,
  withFixture,
} from "../../helpers/transports.ts";

const never = new AbortController().signal;
const MiB = 1024 * 1024;

/** The final path of `item` at the destination. */
function finalOf(ctx: TransportCase, item: TransferItem): string {
  return join(ctx.dst, ...item.destination.split("/"));
}

/** `item` arrived byte-exact as a regular file. */
async function assertArrived(ctx: TransportCase, item: TransferItem): Promise<void> {
  const path = finalOf(ctx, item);
  assert.ok((await Deno.lstat(path)).isFile, `${item.destination} is a regular file`);
  assert.equal(await sha256OfFile(path), await sha256OfFile(item.source), item.destination);
}

/** No temporary file or upload folder is left at the destination. */
async function assertNoTemporaries(ctx: TransportCase): Promise<void> {
  const entries = [...await listFiles(ctx.dst), ...await listFolders(ctx.dst)];
  assert.deepEqual(entries.filter((rel) => rel.split("/").some(isTempName)), []);
}

/** A folder at the destination, owned by the transport's account. */
async function destinationFolder(ctx: TransportCase, rel: string): Promise<string> {
  const path = join(ctx.dst, rel);
  await Deno.mkdir(path, { recursive: true });
  await ctx.own(path);
  return path;
}

/** A file under a final name at the destination, owned by the transport's account. */
async function existingFinal(ctx: TransportCase, item: TransferItem, text: string) {
  await destinationFolder(ctx, item.destination.split("/").slice(0, -1).join("/"));
  await Deno.writeTextFile(finalOf(ctx, item), text);
  await ctx.own(finalOf(ctx, item));
}

/** A source of `size` bytes (sparse: zeros), big enough that sending it takes a while. */
async function bigItem(src: string, destination: string, size: number): Promise<TransferItem> {
  const source = join(src, basename(destination));
  await Deno.writeFile(source, new Uint8Array());
  await Deno.truncate(source, size);
  return await itemFor(source, destination);
}

/** Wait until a temporary copy of some file is at the destination. */
async function copyUnderWay(ctx: TransportCase): Promise<void> {
  await waitFor(
    async () =>
      (await listFiles(ctx.dst).catch(() => [])).some((rel) => rel.split("/").some(isTempName)),
    30_000,
    "a temporary copy at the destination",
  );
}

interface ContractCase {
  name: string;
  /** Job keys of this case. @default verify_transfer: checksum */
  overrides?: Partial<JobConfig>;
  /** Whether the case sends into the fixture's corrupting destination. */
  corrupting?: true;
  run(ctx: TransportCase): Promise<void>;
}

/** Random bytes whose first is not the "X" a corrupting destination writes there. */
function notStartingWithX(size: number): Uint8Array {
  const bytes = randomBytes(size);
  bytes[0] = 0;
  return bytes;
}

/** Send `item` while the method's destination corrupts every copy it receives. */
async function sendCorrupted(ctx: TransportCase, item: TransferItem) {
  await ctx.fixture.corrupting!.corrupt(ctx.dst, true);
  try {
    return (await ctx.transport.send([item], never))[0];
  } finally {
    await ctx.fixture.corrupting!.corrupt(ctx.dst, false);
  }
}

const CASES: ContractCase[] = [
  {
    name: "bytes, mode and mtime arrive in new nested folders; existing folders are kept",
    async run(ctx) {
      const night = await destinationFolder(ctx, "20240315");
      await Deno.chmod(night, 0o2775);
      const sizes = [0, 1, 70_000, 17 * MiB + 3];
      const items: TransferItem[] = [];
      for (const [i, size] of sizes.entries()) {
        const item = await makeItem(
          ctx.src,
          `20240315/set ${i % 2}/deep/f${i}.fits`,
          randomBytes(size),
          [0o600, 0o664, 0o755, 0o640][i],
        );
        const mtime = new Date(Date.UTC(2023, 10, 5, 22, 13, 7, 250 + i));
        await Deno.utime(item.source, mtime, mtime);
        items.push(await itemFor(item.source, item.destination));
      }
      const outcomes = await ctx.transport.send(items, never);
      assert.deepEqual(outcomes.map((o) => o.item), items, "one outcome per item, in order");
      assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), items.map(() => null));
      for (const [i, item] of items.entries()) {
        // With checksum the outcome names the hash it verified (rsync checks with its own).
        if (ctx.method !== "rsync") {
          assert.equal(outcomes[i].sha256, await sha256OfFile(item.source), item.destination);
        }
        await assertArrived(ctx, item);
        const info = await Deno.stat(finalOf(ctx, item));
        assert.equal(info.mode! & 0o777, [0o600, 0o644, 0o755, 0o640][i], item.destination);
        assert.equal(Math.floor(info.mtime!.getTime() / 1000), Math.floor(item.mtimeMs / 1000));
      }
      assert.equal((await Deno.stat(night)).mode! & 0o7777, 0o2775, "an existing folder is kept");
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "the final name is only ever made by renaming the finished copy",
    async run(ctx) {
      const night = await destinationFolder(ctx, "20240316");
      const item = await makeItem(ctx.src, "20240316/a.fits", randomBytes(3 * MiB));
      const events: Deno.FsEvent[] = [];
      const watcher = Deno.watchFs(night, { recursive: true });
      const watching = (async () => {
        for await (const event of watcher) events.push(event);
      })();
      try {
        assert.equal((await ctx.transport.send([item], never))[0].error, null);
        // The watcher's events come late on a busy machine: the final name's, then any others.
        await waitFor(
          () => events.some((event) => event.paths.includes(finalOf(ctx, item))),
          60_000,
          "the final name's event",
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        watcher.close();
        await watching;
      }
      const final = finalOf(ctx, item);
      const onFinal = events.filter((event) => event.paths.includes(final));
      assert.ok(onFinal.length > 0, "the final name appeared");
      // `access` (a close or a read) is left out: under load the runtime's watcher can report the
      // temporary copy's last close, which comes before the rename, under the name it got.
      assert.deepEqual(
        [...new Set(onFinal.map((event) => event.kind))].filter((kind) => kind !== "access"),
        ["rename"],
        "never created or written under the final name",
      );
      const written = events.filter((e) => e.kind === "modify").flatMap((e) => e.paths);
      assert.ok(written.some((path) => path.split("/").some(isTempName)), "written elsewhere");
      await assertArrived(ctx, item);
    },
  },
  {
    name: "hostile file and folder names arrive as they are, and run no command",
    async run(ctx) {
      const canary = `itx-canary-${ctx.method}-${crypto.randomUUID().slice(0, 8)}`;
      const names = [
        `$(touch ${canary}).fits`,
        `\`touch ${canary}\` 'q' "d".fits`,
        "-n",
        "--rsync-path=x.fits",
        "#;semi.fits",
        "new\nline\r.fits",
        "back\\slash *.fits",
        "caf\u00e9 cafe\u0301.fits",
        `${"long-".repeat(48)}.fits`,
      ];
      const items: TransferItem[] = [];
      for (const [i, name] of names.entries()) {
        const folder = i % 2 === 0 ? "20240317" : `20240317/$(touch ${canary}) 'x'\n-y`;
        items.push(await makeItem(ctx.src, `${folder}/${name}`, randomBytes(100 + i)));
      }
      const outcomes = await ctx.transport.send(items, never);
      // A name the method cannot carry fails for good, saying why; every other arrives.
      const carried = (item: TransferItem) => !ctx.fixture.cannotCarry?.test(item.destination);
      for (const [i, item] of items.entries()) {
        if (carried(item)) assert.equal(outcomes[i].error, null, item.destination);
        else {
          assert.equal(outcomes[i].error?.kind, "fatal", item.destination);
          assert.match(outcomes[i].error!.message, /rename the file/);
        }
      }
      assert.ok(items.filter(carried).length >= 4, "most names are carried");
      assert.deepEqual(
        await listFiles(ctx.dst),
        items.filter(carried).map((item) => item.destination).sort(),
      );
      for (const item of items.filter(carried)) await assertArrived(ctx, item);
      for (const place of [Deno.cwd(), "/tmp", "/home/itx-test", ctx.dst, ctx.src]) {
        assert.equal(await exists(join(place, canary)), false, `canary in ${place}`);
      }
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "an existing file under the final name is replaced",
    async run(ctx) {
      const item = await makeItem(ctx.src, "20240318/a.fits", randomBytes(5000));
      await existingFinal(ctx, item, "an older version");
      assert.equal((await ctx.transport.send([item], never))[0].error, null);
      await assertArrived(ctx, item);
      await assertNoTemporaries(ctx);
    },
  },
  {
    name:
      "two files of one batch for one final name: the first arrives, the second fails retryably",
    async run(ctx) {
      const first = await makeItem(ctx.src, "20240324/same.fits", randomBytes(4000));
      const other = await makeItem(ctx.src, "elsewhere/same.fits", randomBytes(3000));
      const second = { ...other, destination: first.destination };
      const outcomes = await ctx.transport.send([first, second], never);
      assert.equal(outcomes[0].error, null);
      assert.equal(outcomes[1].error?.kind, "retry");
      assert.match(outcomes[1].error!.message, /another file of the same batch/);
      await assertArrived(ctx, first);
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "a changed or vanished source fails retryably, the others arrive, final names untouched",
    async run(ctx) {
      const good = await makeItem(ctx.src, "20240319/good.fits", randomBytes(5000));
      const changed = await makeItem(ctx.src, "20240319/changed.fits", randomBytes(5000));
      const vanished = await makeItem(ctx.src, "20240319/vanished.fits", randomBytes(5000));
      await existingFinal(ctx, changed, "the version sent before");
      await Deno.writeFile(changed.source, randomBytes(10), { append: true });
      await Deno.remove(vanished.source);
      const outcomes = await ctx.transport.send([changed, good, vanished], never);
      assert.equal(outcomes[0].error?.kind, "retry");
      assert.match(outcomes[0].error!.message, /changed/);
      assert.equal(outcomes[1].error, null);
      assert.equal(outcomes[2].error?.kind, "retry");
      assert.match(outcomes[2].error!.message, /vanished/);
      assert.equal(await Deno.readTextFile(finalOf(ctx, changed)), "the version sent before");
      await assertArrived(ctx, good);
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "a source that changes while it is sent is not renamed into place",
    async run(ctx) {
      const item = await bigItem(ctx.src, "20240320/growing.fits", 256 * MiB);
      await existingFinal(ctx, item, "the version sent before");
      const sending = ctx.transport.send([item], never);
      await copyUnderWay(ctx);
      await Deno.writeFile(item.source, new Uint8Array([1, 2, 3]), { append: true });
      const [outcome] = await sending;
      assert.equal(outcome.error?.kind, "retry", outcome.error?.message);
      assert.match(outcome.error!.message, /changed/);
      assert.equal(await Deno.readTextFile(finalOf(ctx, item)), "the version sent before");
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "an abort throws its reason and leaves no final name; the next send delivers",
    async run(ctx) {
      const item = await bigItem(ctx.src, "20240321/big.fits", 256 * MiB);
      const stop = new AbortController();
      const reason = new Error("stopped by the test");
      const sending = ctx.transport.send([item], stop.signal);
      sending.catch(() => {});
      await copyUnderWay(ctx);
      stop.abort(reason);
      assert.equal(await sending.then(() => null, (error) => error), reason);
      assert.equal(await exists(finalOf(ctx, item)), false);
      const small = await makeItem(ctx.src, "20240321/small.fits", randomBytes(10));
      assert.deepEqual(
        (await ctx.transport.send([small, item], never)).map((o) => o.error?.message ?? null),
        [null, null],
      );
      await assertArrived(ctx, item);
      await assertNoTemporaries(ctx);
    },
  },
  {
    name: "a base folder files arrived in before is not made again once gone (a share not mounted)",
    async run(ctx) {
      const first = await makeItem(ctx.src, "20240324/a.fits", randomBytes(1000));
      assert.equal((await ctx.transport.send([first], never))[0].error, null);
      // As the job runner tells it at an arrival (or at start, from the ledger).
      ctx.transport.deliveredBefore?.();
      await Deno.remove(ctx.dst, { recursive: true });
      // Two folders in one batch, then a small file alone (over SSH: one call for all of it).
      const items = [
        await makeItem(ctx.src, "20240325/b.fits", randomBytes(1000)),
        await makeItem(ctx.src, "20240326/c.fits", randomBytes(2 * MiB)),
      ];
      const alone = await makeItem(ctx.src, "20240325/d.fits", randomBytes(1000));
      for (const batch of [items, [alone]]) {
        for (const outcome of await ctx.transport.send(batch, never)) {
          assert.equal(outcome.error?.kind, "retry-later", outcome.item.destination);
          assert.match(outcome.error!.message, /is gone \(a share that is not mounted\?\)/);
        }
        assert.equal(await exists(ctx.dst), false, "the base is not made again");
      }
      // Back (mounted again): sent.
      await Deno.mkdir(ctx.dst);
      await ctx.own(ctx.dst);
      const outcomes = await ctx.transport.send([...items, alone], never);
      assert.deepEqual(outcomes.map((o) => o.error?.message ?? null), [null, null, null]);
      for (const item of [...items, alone]) await assertArrived(ctx, item);
    },
  },
  {
    name: "a copy whose bytes differ is removed and fails retryably with checksum",
    corrupting: true,
    async run(ctx) {
      const item = await makeItem(ctx.src, "20240322/a.fits", notStartingWithX(2 * MiB));
      const outcome = await sendCorrupted(ctx, item);
      assert.equal(outcome.error?.kind, "retry");
      assert.match(outcome.error!.message, /SHA-256 of the copy differs/);
      assert.deepEqual(await listFiles(ctx.dst), [], "no final name and no copy left");
      assert.equal((await ctx.transport.send([item], never))[0].error, null);
      await assertArrived(ctx, item);
    },
  },
  {
    name: "with verify_transfer: size, a copy of the right size with other bytes passes",
    overrides: { verify_transfer: "size" },
    corrupting: true,
    async run(ctx) {
      // What `size` promises, no more: this is what checksum adds.
      const item = await makeItem(ctx.src, "20240323/a.fits", notStartingWithX(MiB));
      assert.equal((await sendCorrupted(ctx, item)).error, null);
      const copy = await Deno.readFile(finalOf(ctx, item));
      assert.equal(copy.length, item.size);
      assert.equal(copy[0], "X".charCodeAt(0));
    },
  },
];

Deno.test("transport contract, against every method", async (t) => {
  const destinations = await startDestinations();
  try {
    for (const fixture of destinations.fixtures) {
      for (const contractCase of CASES) {
        const overrides = contractCase.overrides ?? { verify_transfer: "checksum" };
        await t.step(`${fixture.method}: ${contractCase.name}`, async () => {
          if (!contractCase.corrupting) {
            await withFixture(fixture, overrides, contractCase.run);
            return;
          }
          assert.ok(fixture.corrupting, `${fixture.method} has a destination that corrupts`);
          const corrupting = { ...fixture, makeDestination: fixture.corrupting.makeDestination };
          await withFixture(corrupting, overrides, contractCase.run);
        });
      }
    }
  } finally {
    await destinations.stop();
  }
});
