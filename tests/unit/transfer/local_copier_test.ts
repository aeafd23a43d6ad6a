/**
 * The local copier (small files copied on a thread of their own) against real
 * folders: bytes, mode and mtime of each copy, the source checks made on that
 * thread, a temporary name replaced or removed before the rename, copies
 * dropped, and the thread stopped and started again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { TransferError } from "../../../src/errors.ts";
import { LocalCopier } from "../../../src/transfer/local/copier.ts";
import { type LocalDelivery, partDelivery } from "../../../src/transfer/local/temp_copies.ts";
import { toTransferError } from "../../../src/transfer/local/failures.ts";
import { NameTaken } from "../../../src/transfer/keep_others.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { exists, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

/** A source of `bytes` at `src/name`, to be copied to `dest/night/name` under a temporary name of its own. */
async function delivery(
  src: string,
  dest: string,
  name: string,
  bytes: Uint8Array,
  index = 0,
): Promise<LocalDelivery> {
  const path = join(src, name);
  await Deno.writeFile(path, bytes, { mode: 0o664 });
  await Deno.chmod(path, 0o664);
  const when = new Date("2024-03-15T22:10:00Z");
  await Deno.utime(path, when, when);
  const info = await Deno.stat(path);
  const item: TransferItem = {
    source: path,
    destination: `20240315/${name}`,
    size: info.size,
    mtimeMs: info.mtime!.getTime(),
  };
  await Deno.mkdir(join(dest, "20240315"), { recursive: true });
  // As a part's delivery, but the copy removed when not renamed.
  return { ...partDelivery(item, join(dest, "20240315", name), "test"), index, keep: false };
}

async function withDirs(fn: (src: string, dest: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-copier-" });
  try {
    await Deno.mkdir(join(root, "src"));
    await fn(join(root, "src"), join(root, "dest"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Failures by delivery, as the transport records them. */
function failures(): {
  errors: Map<LocalDelivery, TransferError>;
  fail: (delivery: LocalDelivery, error: unknown) => void;
} {
  const errors = new Map<LocalDelivery, TransferError>();
  return {
    errors,
    fail: (delivery, error) => {
      delivery.error = toTransferError(delivery.item, error);
      errors.set(delivery, delivery.error);
    },
  };
}

const CHECKSUM = { verify: "checksum", setMode: true } as const;

Deno.test("LocalCopier: copies arrive byte for byte with the source's mode (no group write) and mtime, hashed on both sides, their folder flushed", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const sizes = [0, 1, 2880 * 71, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 7];
      const deliveries = await Promise.all(
        sizes.map((size, i) => delivery(src, dest, `f ${i} '$(x)'.fits`, randomBytes(size), i)),
      );
      const { errors, fail } = failures();
      await copier.put(deliveries, CHECKSUM, fail);
      assert.deepEqual([...errors.values()].map((e) => e.message), []);
      for (const d of deliveries) {
        assert.equal(d.written!.bytes, d.item.size);
        assert.equal(d.checkedAfterRead, true);
        assert.equal(d.source!.size, d.item.size);
        const expected = new Uint8Array(
          await crypto.subtle.digest("SHA-256", await Deno.readFile(d.item.source)),
        );
        assert.equal(
          d.written!.sha256,
          Array.from(expected, (b) => b.toString(16).padStart(2, "0")).join(""),
        );
        assert.equal(await exists(d.finalPath), false, "no final name before finish");
        assert.equal(await exists(d.tempPath), true);
      }
      const finished = await copier.finish(deliveries);
      assert.deepEqual([...finished.renamed.values()], deliveries.map(() => null));
      assert.deepEqual([...finished.folders], [[join(dest, "20240315"), null]]);
      for (const d of deliveries) {
        assert.deepEqual(await Deno.readFile(d.finalPath), await Deno.readFile(d.item.source));
        const info = await Deno.stat(d.finalPath);
        assert.equal(info.mode! & 0o777, 0o644);
        assert.equal(info.mtime!.getTime(), d.item.mtimeMs);
        assert.equal(d.copierKey, null);
      }
      assert.equal((await listFiles(dest)).length, sizes.length, "no temporary file left");
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: the sources are checked on its thread: missing, a link, changed since queued", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const missing = await delivery(src, dest, "missing.fits", randomBytes(100), 0);
      await Deno.remove(missing.item.source);
      const link = await delivery(src, dest, "link.fits", randomBytes(100), 1);
      await Deno.remove(link.item.source);
      await Deno.writeFile(join(src, "target.fits"), randomBytes(100));
      await Deno.symlink(join(src, "target.fits"), link.item.source);
      const changed = await delivery(src, dest, "changed.fits", randomBytes(100), 2);
      await Deno.writeFile(changed.item.source, randomBytes(150));
      const fine = await delivery(src, dest, "fine.fits", randomBytes(100), 3);
      const { errors, fail } = failures();
      await copier.put([missing, link, changed, fine], CHECKSUM, fail);
      assert.equal(errors.get(missing)?.kind, "retry");
      assert.ok(errors.get(missing)?.cause instanceof Deno.errors.NotFound);
      assert.equal(errors.get(link)?.kind, "fatal");
      assert.match(errors.get(link)!.message, /symbolic link/);
      assert.equal(errors.get(changed)?.kind, "retry");
      assert.match(errors.get(changed)!.message, /changed/);
      assert.equal(errors.has(fine), false);
      for (const d of [missing, link, changed]) assert.equal(await exists(d.tempPath), false);
      await copier.finish([missing, link, changed, fine]);
      assert.deepEqual(await listFiles(dest), ["20240315/fine.fits"]);
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: a temporary name replaced or removed before the rename is not delivered; the other copies are", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const replaced = await delivery(src, dest, "replaced.fits", randomBytes(500), 0);
      const removed = await delivery(src, dest, "removed.fits", randomBytes(500), 1);
      const fine = await delivery(src, dest, "fine.fits", randomBytes(500), 2);
      const { errors, fail } = failures();
      await copier.put([replaced, removed, fine], CHECKSUM, fail);
      assert.equal(errors.size, 0);
      // Someone who may write the folder puts their own file (a link) in place of one copy.
      await Deno.remove(replaced.tempPath);
      await Deno.symlink("/etc/hostname", replaced.tempPath);
      await Deno.remove(removed.tempPath);
      const finished = await copier.finish([replaced, removed, fine]);
      assert.match(finished.renamed.get(replaced)!.message, /replaced by someone else/);
      assert.match(finished.renamed.get(removed)!.message, /disappeared before the rename/);
      assert.equal(finished.renamed.get(fine), null);
      assert.deepEqual(finished.lost, [replaced, removed]);
      assert.equal(await exists(replaced.finalPath), false);
      assert.equal(
        (await Deno.lstat(replaced.tempPath)).isSymlink,
        true,
        "their file is left alone",
      );
      assert.equal(await exists(removed.finalPath), false);
      assert.deepEqual(await Deno.readFile(fine.finalPath), await Deno.readFile(fine.item.source));
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: a copy that may replace nothing is not put over a file or folder that took its final name after it was copied; one whose name is still free arrives, under one name only", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const noReplace = async (name: string, index: number) => {
        const made = await delivery(src, dest, name, randomBytes(500), index);
        return { ...made, item: { ...made.item, noReplace: true } };
      };
      const byFile = await noReplace("s1 '$(x)'.fits", 0);
      const byFolder = await noReplace("s2.fits", 1);
      const free = await noReplace("s3.fits", 2);
      const { errors, fail } = failures();
      await copier.put([byFile, byFolder, free], CHECKSUM, fail);
      assert.equal(errors.size, 0);
      // Another daemon's files arrive under two of the names.
      const theirs = randomBytes(500);
      await Deno.writeFile(byFile.finalPath, theirs);
      await Deno.mkdir(byFolder.finalPath);
      const finished = await copier.finish([byFile, byFolder, free]);
      const taken = finished.renamed.get(byFile);
      assert.ok(taken instanceof NameTaken, String(taken));
      assert.equal(taken.file, true);
      assert.equal(taken.path, byFile.finalPath);
      const folder = finished.renamed.get(byFolder);
      assert.ok(folder instanceof NameTaken && !folder.file, String(folder));
      assert.equal(finished.renamed.get(free), null);
      assert.deepEqual(finished.lost, []);
      assert.deepEqual(await Deno.readFile(byFile.finalPath), theirs, "their file is left alone");
      assert.equal((await Deno.lstat(byFolder.finalPath)).isDirectory, true);
      assert.deepEqual(await Deno.readFile(free.finalPath), await Deno.readFile(free.item.source));
      assert.equal((await Deno.stat(free.finalPath)).nlink, 1, "no second name left");
      assert.deepEqual(
        (await listFiles(dest)).sort(),
        ["20240315/s1 '$(x)'.fits", "20240315/s3.fits"],
        "no temporary copy left",
      );
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: dropped copies leave no temporary file; a folder that is missing fails its copies; a stopped copier starts again", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const a = await delivery(src, dest, "a.fits", randomBytes(300), 0);
      const b = await delivery(src, dest, "b.fits", randomBytes(300), 1);
      const { errors, fail } = failures();
      await copier.put([a, b], { verify: "size", setMode: true }, fail);
      assert.equal(errors.size, 0);
      await copier.drop([a, b]);
      assert.deepEqual(await listFiles(dest), []);
      assert.equal(a.copierKey, null);
      copier.close();
      const gone = await delivery(src, dest, "gone.fits", randomBytes(300), 2);
      await Deno.remove(join(dest, "20240315"));
      await copier.put([gone], { verify: "size", setMode: true }, fail);
      assert.equal(errors.get(gone)?.kind, "retry");
      assert.match(errors.get(gone)!.message, /No such file|ENOENT/);
      const again = await delivery(src, dest, "again.fits", randomBytes(300), 3);
      await copier.put([again], { verify: "none", setMode: true }, fail);
      assert.equal(errors.has(again), false);
      await copier.finish([again]);
      assert.deepEqual(
        await Deno.readFile(again.finalPath),
        await Deno.readFile(again.item.source),
      );
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: a copier whose thread cannot start gives every copy back untouched, says why once, and takes no more", async () => {
  await withDirs(async (src, dest) => {
    const logs = await captureLogs();
    const copier = new LocalCopier(
      new URL(
        "data:application/javascript,throw new Error('a copier thread that fails to load, on purpose')",
      ),
    );
    try {
      const a = await delivery(src, dest, "a.fits", randomBytes(300), 0);
      const b = await delivery(src, dest, "b.fits", randomBytes(300), 1);
      assert.equal(copier.welcomes(2), true);
      const { errors, fail } = failures();
      assert.deepEqual(await copier.put([a, b], CHECKSUM, fail), [a, b]);
      assert.equal(errors.size, 0, "nothing failed: to be copied the usual way");
      assert.deepEqual(await listFiles(dest), [], "nothing written");
      assert.equal(copier.welcomes(2), false);
      assert.equal(logs.count("warning", "without their own thread"), 1);
    } finally {
      copier.close();
      await logs.stop();
    }
  });
});

Deno.test("LocalCopier: a thread holding copies is not stopped as idle, however long the rest of the batch takes; once they are renamed it stops when idle", async () => {
  await withDirs(async (src, dest) => {
    // A thread kept 50 ms once idle (a minute in the daemon).
    const copier = new LocalCopier(undefined, 50);
    try {
      const a = await delivery(src, dest, "a $(id).fits", randomBytes(3000), 0);
      const b = await delivery(src, dest, "-b\n'.fits", randomBytes(3000), 1);
      const { errors, fail } = failures();
      await copier.put([a, b], CHECKSUM, fail);
      assert.equal(errors.size, 0);
      // The larger files of the batch are copied on the daemon's thread meanwhile (a slow disk).
      await new Promise((resolve) => setTimeout(resolve, 500));
      const finished = await copier.finish([a, b]);
      assert.equal(finished.renamed.get(a), null);
      assert.equal(finished.renamed.get(b), null);
      assert.deepEqual(await Deno.readFile(a.finalPath), await Deno.readFile(a.item.source));
      assert.deepEqual(await Deno.readFile(b.finalPath), await Deno.readFile(b.item.source));
      assert.deepEqual(
        (await listFiles(dest)).sort(),
        ["20240315/-b\n'.fits", "20240315/a $(id).fits"].sort(),
      );
      await waitFor(() => !copier.welcomes(1), 30_000, "the idle thread stopped");
    } finally {
      copier.close();
    }
  });
});

Deno.test("LocalCopier: a batch that ends while its copies are still being made (the daemon stopping) has them dropped once made: no temporary file is left", async () => {
  await withDirs(async (src, dest) => {
    const copier = new LocalCopier();
    try {
      const deliveries = [];
      for (let i = 0; i < 20; i++) {
        deliveries.push(await delivery(src, dest, `-f ${i} $(id)\n.fits`, randomBytes(50_000), i));
      }
      const { fail } = failures();
      // The batch's other copy was aborted: its end drops the copier's copies at once.
      const putting = copier.put(deliveries, CHECKSUM, fail);
      await copier.drop(deliveries);
      await putting;
      assert.deepEqual(await listFiles(dest), []);
      for (const each of deliveries) assert.equal(each.copierKey ?? null, null);
    } finally {
      copier.close();
    }
  });
});
