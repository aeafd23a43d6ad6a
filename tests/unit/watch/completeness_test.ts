/**
 * The completeness rules of the stability checker on real files: FITS files
 * by their structure, other files by the full window after a close (the short
 * confirmation only where allowed), empty files, deleted files. Assertions are
 * about order and outcome; where a rule is "at once" the window is long, so a
 * loaded machine only makes the tests slower.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Activity } from "../../../src/watch/stability.ts";
import { sleep, withChecker } from "../../helpers/checker.ts";
import { card, fitsFile, headerBytes, imageParts } from "../../helpers/fits.ts";

/** Append `bytes` with one open–write–close. */
function append(path: string, bytes: Uint8Array): void {
  Deno.writeFileSync(path, bytes, { append: true, create: true });
}

Deno.test("completeness: a FITS file written header first, then its data in open-append-close steps, is ready once, complete, at its last close (real watcher)", async () => {
  // A window no test waits for: a report at all shows it came at the close.
  await withChecker({ stableForMs: 600_000 }, async (checker, rec, dir) => {
    // Wired like the job runner: a close-after-write ("access") is "closed", the rest "changed".
    const watcher = Deno.watchFs(dir, { recursive: true });
    const pump = (async () => {
      for await (const event of watcher) {
        if (event.kind === "remove") continue;
        const activity: Activity = event.kind === "access" ? "closed" : "changed";
        for (const path of event.paths) checker.touch(path, activity);
      }
    })();
    try {
      const path = join(dir, "header first.fits");
      const { header, data } = imageParts(200, 150); // 60,000 bytes of data: 21 blocks
      append(path, header);
      const steps = 4;
      const step = Math.ceil(data.length / steps);
      let lastCloseAt = 0;
      for (let i = 0; i < steps; i++) {
        await sleep(300);
        assert.equal(rec.ready.length, 0, `reported before data step ${i}`);
        append(path, data.subarray(i * step, (i + 1) * step));
        lastCloseAt = performance.now();
      }
      await rec.until(() => rec.ready.length > 0, "ready");
      const [ready] = rec.ready;
      assert.equal(ready.size, header.length + data.length);
      assert.equal(ready.truncated, undefined);
      assert.ok(ready.atMs >= lastCloseAt, "reported only after the last close");
      await sleep(500);
      assert.equal(rec.ready.length, 1, "reported once");
    } finally {
      watcher.close();
      await pump;
    }
  });
});

Deno.test("completeness: a complete FITS file without a close (a scan, another OS) waits the window", async () => {
  await withChecker({ stableForMs: 600 }, async (checker, rec, dir) => {
    const path = join(dir, "found by a scan.fits");
    const { header, data } = imageParts(10, 10);
    Deno.writeFileSync(path, fitsFile(header, data));
    const touchedAt = performance.now();
    checker.touch(path, "changed");
    await rec.until(() => rec.ready.length === 1, "ready");
    assert.ok(rec.ready[0].atMs - touchedAt >= 599, "the whole window");
  });
});

Deno.test("completeness: a complete FITS file found without a close, its mtime older than the window, goes after the confirmation", async () => {
  // A window no test waits for: a report at all shows the mtime settled it.
  await withChecker({ stableForMs: 600_000, closedForMs: 100 }, async (checker, rec, dir) => {
    const old = join(dir, "written a while ago.fits");
    const fresh = join(dir, "just written.fits");
    const { header, data } = imageParts(10, 10);
    for (const path of [old, fresh]) Deno.writeFileSync(path, fitsFile(header, data));
    Deno.utimeSync(old, new Date(), new Date(Date.now() - 3_600_000));
    checker.touch(fresh, "changed");
    checker.touch(old, "changed");
    await rec.until(() => rec.ready.length === 1, "ready");
    assert.equal(rec.ready[0].path, old);
    // Not FITS, or FITS still short of its structure: an old mtime does not shorten the wait.
    const text = join(dir, "old notes.fits");
    const cut = join(dir, "old and cut.fits");
    Deno.writeFileSync(text, new TextEncoder().encode("not a FITS file"));
    Deno.writeFileSync(cut, fitsFile(header, data).subarray(0, header.length + 100));
    for (const path of [text, cut]) {
      Deno.utimeSync(path, new Date(), new Date(Date.now() - 3_600_000));
      checker.touch(path, "changed");
    }
    await sleep(1000);
    assert.deepEqual(rec.ready.map((r) => r.path), [old]);
  });
});

Deno.test("completeness: an incomplete FITS file waits whatever its closes say, then goes as truncated after the grace", async () => {
  await withChecker(
    // A grace far longer than the pauses below, which a busy machine may stretch.
    { stableForMs: 200, closedForMs: 50, closeShortcut: () => true, incompleteGraceMs: 8000 },
    async (checker, rec, dir) => {
      const path = join(dir, "cut short.fits");
      const { header, data } = imageParts(100, 100);
      Deno.writeFileSync(path, header);
      checker.touch(path, "closed");
      await sleep(300);
      const lastChangeAt = performance.now();
      append(path, data.subarray(0, 5000));
      checker.touch(path, "closed");
      await sleep(600);
      checker.touch(path, "closed"); // opened for writing and closed, nothing written
      assert.equal(rec.ready.length, 0, "an incomplete file is not ready at its close");
      // Said once, when it stayed unchanged for the window, with what is missing.
      await rec.until(() => rec.incomplete.length > 0, "said incomplete");
      assert.equal(rec.incomplete[0].path, path);
      assert.match(
        rec.incomplete[0].reason,
        /^its FITS structure is incomplete \(HDU 0 ends at byte \d+, the file has \d+\)$/,
      );
      assert.ok(rec.incomplete[0].graceLeftMs > 0 && rec.incomplete[0].graceLeftMs <= 8000);
      await rec.until(() => rec.ready.length === 1, "ready after the grace");
      assert.equal(rec.incomplete.length, 1, "said once");
      const [ready] = rec.ready;
      // The grace also runs from the mtime, whose clock ticks coarsely (a few ms).
      assert.ok(ready.atMs - lastChangeAt >= 7980, `${ready.atMs - lastChangeAt} ms`);
      assert.equal(ready.size, header.length + 5000);
      assert.deepEqual(ready.truncated, {
        expectedBytes: header.length + data.length,
        reason: `HDU 0 ends at byte ${header.length + data.length}, the file has ${ready.size}`,
      });
    },
  );
});

Deno.test("completeness: without waiting (--once) an incomplete FITS file is left; one unchanged for the grace by its mtime goes as truncated", async () => {
  await withChecker(
    { stableForMs: 200, incompleteGraceMs: 60_000, waitForIncomplete: false },
    async (checker, rec, dir) => {
      const { header } = imageParts(100, 100);
      const fresh = join(dir, "being written.fits");
      const old = join(dir, "crashed writer.fits");
      Deno.writeFileSync(fresh, header);
      Deno.writeFileSync(old, header.subarray(0, 300));
      const hourAgo = new Date(Date.now() - 3_600_000);
      Deno.utimeSync(old, hourAgo, hourAgo);
      // As a run's scan finds them.
      checker.touch(fresh, "found");
      checker.touch(old, "found");
      await rec.until(() => rec.left.length === 1 && rec.ready.length === 1, "both decided");
      assert.equal(rec.left[0].path, fresh);
      assert.match(rec.left[0].reason, /structure is incomplete \(HDU 0 ends at byte 23040/);
      assert.equal(rec.ready[0].path, old);
      assert.deepEqual(rec.ready[0].truncated, {
        expectedBytes: null,
        reason: "the header of HDU 0 has no END card yet",
      });
      assert.equal(checker.pendingCount, 0);
    },
  );
});

Deno.test("completeness: a FITS file whose writer leaves out the last block's padding is complete by the window, not waited for as incomplete up to the grace", async () => {
  // As run --once's scan finds it: an incomplete file would be left for a later run.
  await withChecker(
    { stableForMs: 200, incompleteGraceMs: 60_000, waitForIncomplete: false },
    async (checker, rec, dir) => {
      const { header, data } = imageParts(100, 100);
      const unpadded = join(dir, "no padding.fits");
      Deno.writeFileSync(unpadded, fitsFile(header, data.subarray(0, 20_000)));
      const short = join(dir, "one byte short.fits");
      Deno.writeFileSync(short, fitsFile(header, data.subarray(0, 19_999)));
      checker.touch(unpadded, "found");
      checker.touch(short, "found");
      await rec.until(() => rec.left.length === 1 && rec.ready.length === 1, "both decided");
      assert.equal(rec.ready[0].path, unpadded);
      assert.equal(rec.ready[0].truncated, undefined);
      assert.equal(rec.ready[0].size, header.length + 20_000);
      assert.equal(rec.left[0].path, short);
      assert.match(rec.left[0].reason, /structure is incomplete \(HDU 0 ends at byte 23040/);
    },
  );
});

Deno.test("completeness: a FITS file longer than its structure, or announcing more HDUs, waits the window after its close", async () => {
  await withChecker({ stableForMs: 700 }, async (checker, rec, dir) => {
    const { header, data } = imageParts(10, 10);
    const longer = join(dir, "trailing bytes.fits");
    Deno.writeFileSync(longer, fitsFile(header, data, new Uint8Array(512)));
    const primaryOnly = join(dir, "primary only.fits");
    Deno.writeFileSync(
      primaryOnly,
      headerBytes([
        card("SIMPLE", true),
        card("BITPIX", 8),
        card("NAXIS", 0),
        card("EXTEND", true),
      ]),
    );
    const closedAt = performance.now();
    checker.touch(longer, "closed");
    checker.touch(primaryOnly, "closed");
    await rec.until(() => rec.ready.length === 2, "both ready");
    for (const ready of rec.ready) {
      assert.ok(ready.atMs - closedAt >= 699, `${ready.path} waited the window`);
      assert.equal(ready.truncated, undefined);
    }
    assert.equal(rec.readyFor(longer)[0].size, header.length + data.length + 512);
  });
});

/** A header-only image extension (no data). */
function emptyExtension(): Uint8Array {
  return headerBytes([
    card("XTENSION", "IMAGE"),
    card("BITPIX", 8),
    card("NAXIS", 0),
    card("PCOUNT", 0),
    card("GCOUNT", 1),
  ]);
}

Deno.test("completeness: with fitsAppended, a complete FITS file open to more HDUs waits the window after its close; one whose NEXTEND they match goes at once", async () => {
  await withChecker({ stableForMs: 700, fitsAppended: true }, async (checker, rec, dir) => {
    const { header, data } = imageParts(10, 10, [card("EXTEND", true)]);
    const announcing = join(dir, "primary announcing extensions.fits");
    Deno.writeFileSync(announcing, fitsFile(header, data));
    const primary = imageParts(10, 10);
    const withExtension = join(dir, "one extension.fits");
    Deno.writeFileSync(withExtension, fitsFile(primary.header, primary.data, emptyExtension()));
    const counted = imageParts(10, 10, [card("EXTEND", true), card("NEXTEND", 1)]);
    const allThere = join(dir, "all extensions there.fits");
    Deno.writeFileSync(allThere, fitsFile(counted.header, counted.data, emptyExtension()));
    const closedAt = performance.now();
    for (const path of [announcing, withExtension, allThere]) checker.touch(path, "closed");
    await rec.until(() => rec.ready.length === 3, "all ready");
    assert.equal(rec.ready[0].path, allThere, "the file NEXTEND says is whole goes first");
    for (const path of [announcing, withExtension]) {
      assert.ok(rec.readyFor(path)[0].atMs - closedAt >= 699, `${path} waited the window`);
    }
    const starts = primary.header.length + primary.data.length;
    assert.deepEqual(rec.readyFor(withExtension)[0].hduStarts, [0, starts]);
  });
});

Deno.test("completeness: by default a complete FITS file announcing extensions goes at its close", async () => {
  // A window no test waits for: a report at all shows it came at the close.
  await withChecker({ stableForMs: 600_000 }, async (checker, rec, dir) => {
    const { header, data } = imageParts(10, 10, [card("EXTEND", true)]);
    const path = join(dir, "camera image.fits");
    Deno.writeFileSync(path, fitsFile(header, data));
    checker.touch(path, "closed");
    await rec.until(() => rec.ready.length === 1, "ready");
    assert.equal(rec.ready[0].hduStarts, undefined, "no extensions");
  });
});

Deno.test("completeness: a close starts the full window for other files; the shortcut only where allowed, never for empty files", async () => {
  await withChecker(
    // A window far longer than closedForMs, so a busy machine cannot blur the two.
    { stableForMs: 5000, closedForMs: 100, closeShortcut: (path) => path.endsWith(".raw") },
    async (checker, rec, dir) => {
      const plain = join(dir, "plain.dat");
      const allowed = join(dir, "allowed.raw");
      const empty = join(dir, "empty.raw");
      Deno.writeFileSync(plain, new Uint8Array(1000).fill(7));
      Deno.writeFileSync(allowed, new Uint8Array(1000).fill(7));
      Deno.writeFileSync(empty, new Uint8Array(0));
      const closedAt = performance.now();
      for (const path of [plain, allowed, empty]) checker.touch(path, "closed");
      await rec.until(() => rec.ready.length === 3, "all ready");
      const at = (path: string) => rec.readyFor(path)[0].atMs - closedAt;
      assert.ok(at(allowed) >= 99, `shortcut: ${at(allowed)} ms`);
      assert.ok(at(allowed) < at(plain) && at(allowed) < at(empty), "the shortcut came first");
      assert.ok(at(plain) >= 4999, `plain: ${at(plain)} ms`);
      assert.ok(at(empty) >= 4999, `empty: ${at(empty)} ms`);
      assert.equal(rec.readyFor(empty)[0].size, 0);
    },
  );
});

Deno.test("completeness: files deleted 0.5 s after their close are gone, never ready", async () => {
  // A window far longer than the 0.5 s before the delete, which a busy machine may stretch.
  await withChecker({ stableForMs: 10_000, closedForMs: 200 }, async (checker, rec, dir) => {
    const plain = join(dir, "deleted.fits");
    const incomplete = join(dir, "deleted header.fits");
    Deno.writeFileSync(plain, new Uint8Array(20_000).fill(1));
    Deno.writeFileSync(incomplete, imageParts(100, 100).header);
    checker.touch(plain, "closed");
    checker.touch(incomplete, "closed");
    await sleep(500);
    Deno.removeSync(plain);
    Deno.removeSync(incomplete);
    await rec.until(() => rec.gone.length === 2, "both gone");
    assert.deepEqual(rec.gone.map((g) => g.path).sort(), [incomplete, plain].sort());
    await sleep(300);
    assert.deepEqual(rec.ready, []);
  });
});

Deno.test("completeness: an incomplete FITS file completed without any event (a share) is noticed by its rechecks", async () => {
  await withChecker({ stableForMs: 300, incompleteGraceMs: 60_000 }, async (checker, rec, dir) => {
    const path = join(dir, "over a share.fits");
    const { header, data } = imageParts(50, 50);
    Deno.writeFileSync(path, header);
    checker.touch(path, "closed");
    await sleep(800);
    append(path, data); // no touch: the watcher saw nothing
    const appendedAt = performance.now();
    await rec.until(() => rec.ready.length === 1, "ready", 10_000);
    const [ready] = rec.ready;
    assert.equal(ready.size, header.length + data.length);
    assert.equal(ready.truncated, undefined);
    assert.ok(ready.atMs - appendedAt >= 299, "the window after the change was seen");
  });
});
