/**
 * The stability checker on real files with real timers. Windows are short;
 * assertions are about order and outcome (never reported early, reported
 * with the final size), not tight timings, so a loaded machine only makes
 * the tests slower.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { activityOf, type StabilityChecker } from "../../../src/watch/stability.ts";
import { type Recorder, sleep, withChecker } from "../../helpers/checker.ts";
import {
  ASTROPY_FITS_DATA,
  card,
  fitsFile,
  headerOnlyPrimary,
  imageExtension,
  imageParts,
} from "../../helpers/fits.ts";

/**
 * {@linkcode withChecker} (a short window, a long grace) fed by a real watcher
 * of `<dir>/watched`, wired like the job runner on Linux (see `activityOf`);
 * `dir` itself is outside the watch.
 */
async function withWatchedChecker(
  fn: (checker: StabilityChecker, rec: Recorder, watched: string, dir: string) => Promise<void>,
): Promise<void> {
  await withChecker(
    { stableForMs: 300, closedForMs: 100, incompleteGraceMs: 120_000 },
    async (checker, rec, dir) => {
      const watched = join(dir, "watched");
      await Deno.mkdir(watched);
      const watcher = Deno.watchFs(watched, { recursive: true });
      const pump = (async () => {
        for await (const event of watcher) {
          if (event.kind === "remove") continue;
          for (const path of event.paths) checker.touch(path, activityOf(event.kind, true));
        }
      })();
      try {
        await fn(checker, rec, watched, dir);
      } finally {
        watcher.close();
        await pump;
      }
    },
  );
}

/**
 * `size` bytes that are not FITS, and not zeros either: a file named as FITS whose first bytes are
 * all zeros is one whose header is still to come (its space reserved).
 */
function notFits(size: number): Uint8Array {
  return new Uint8Array(size).fill(0x2a);
}

function fileInfo(path: string) {
  const info = Deno.statSync(path);
  return { size: info.size, mtimeMs: info.mtime!.getTime() };
}

Deno.test("StabilityChecker: a file written once is ready after the window, with its size and mtime", async () => {
  await withChecker({ stableForMs: 300 }, async (checker, rec, dir) => {
    const path = join(dir, "a.fits");
    Deno.writeFileSync(path, notFits(1234));
    const touchedAt = performance.now();
    checker.touch(path);
    assert.equal(checker.has(path), true);
    assert.equal(checker.pendingCount, 1);
    await rec.until(() => rec.ready.length === 1, "ready");
    const [ready] = rec.ready;
    assert.ok(ready.atMs - touchedAt >= 299, `reported after ${ready.atMs - touchedAt} ms`);
    assert.deepEqual({ path: ready.path, size: ready.size, mtimeMs: ready.mtimeMs }, {
      path,
      ...fileInfo(path),
    });
    assert.equal(ready.size, 1234);
    assert.equal(checker.has(path), false);
    assert.equal(checker.pendingCount, 0);
    await sleep(500);
    assert.equal(rec.ready.length, 1, "reported once");
    assert.deepEqual(rec.gone, []);
  });
});

for (const withEvents of [true, false]) {
  Deno.test(`StabilityChecker: a growing file waits until writes stop (${withEvents ? "an event per write" : "no events"})`, async () => {
    // A window far longer than the pauses between writes, which a busy machine may stretch.
    await withChecker({ stableForMs: 3000 }, async (checker, rec, dir) => {
      const path = join(dir, "growing.fits");
      Deno.writeFileSync(path, notFits(100));
      checker.touch(path);
      const start = performance.now();
      let lastWriteAt = start;
      // Synchronous writes: a write due before a check always lands first.
      while (performance.now() - start < 1500) {
        await sleep(100);
        assert.equal(rec.ready.length, 0, "reported while still being written");
        Deno.writeFileSync(path, notFits(100), { append: true });
        lastWriteAt = performance.now();
        if (withEvents) checker.touch(path);
      }
      const final = fileInfo(path);
      await rec.until(() => rec.ready.length > 0, "ready");
      const [ready] = rec.ready;
      assert.ok(ready.atMs >= lastWriteAt, "reported only after the last write");
      if (withEvents) {
        assert.ok(
          ready.atMs - lastWriteAt >= 2999,
          `${ready.atMs - lastWriteAt} ms after the last write`,
        );
      }
      assert.equal(ready.size, final.size);
      assert.equal(ready.mtimeMs, final.mtimeMs);
      await sleep(500);
      assert.equal(rec.ready.length, 1);
    });
  });
}

Deno.test("StabilityChecker: a file deleted before it is ready is gone, never ready", async () => {
  await withChecker({ stableForMs: 300 }, async (checker, rec, dir) => {
    const path = join(dir, "short-lived.fits");
    const never = join(dir, "never existed.fits");
    const folder = join(dir, "a folder.fits");
    Deno.writeFileSync(path, notFits(10));
    Deno.mkdirSync(folder);
    checker.touch(path);
    checker.touch(never);
    checker.touch(folder);
    await sleep(50);
    Deno.removeSync(path);
    await rec.until(() => rec.gone.length === 3, "three gone reports");
    assert.deepEqual(rec.gone.map((g) => g.path).sort(), [path, never, folder].sort());
    assert.equal(checker.pendingCount, 0);
    await sleep(600);
    assert.deepEqual(rec.ready, []);
    assert.equal(rec.gone.length, 3, "reported gone once each");
  });
});

Deno.test("StabilityChecker: a file whose stat fails otherwise than 'not found' for a while is not gone: said once, looked at again, ready once it can be read", async () => {
  await withChecker({ stableForMs: 200 }, async (checker, rec, dir) => {
    const real = join(dir, "real");
    Deno.mkdirSync(real);
    Deno.writeFileSync(join(real, "a.fits"), notFits(10));
    Deno.writeFileSync(join(real, "b.fits"), notFits(20));
    const cam = join(dir, "cam");
    Deno.symlinkSync(real, cam);
    const [a, b] = [join(cam, "a.fits"), join(cam, "b.fits")];
    checker.touch(a); // its first look works, a later one fails
    // A link to itself on the way: stat fails with ELOOP, not "not found", as an I/O error or a
    // stale handle on a share, or a folder's permissions, fail it.
    Deno.removeSync(cam);
    Deno.symlinkSync("cam", cam);
    checker.touch(b); // its first look fails
    await rec.until(() => rec.unreadable.length === 2, "both said");
    for (const said of rec.unreadable) assert.ok(said.error instanceof Deno.errors.FilesystemLoop);
    assert.deepEqual(rec.unreadable.map((said) => said.path).sort(), [a, b]);
    assert.equal(checker.pendingCount, 2);
    await sleep(2500); // Looked at again meanwhile (after 1 s, then 2 s): not said again.
    assert.equal(rec.unreadable.length, 2);
    Deno.removeSync(cam);
    Deno.symlinkSync(real, cam);
    await rec.until(() => rec.ready.length === 2, "both ready");
    assert.deepEqual(rec.ready.map((file) => [file.path, file.size]).sort(), [[a, 10], [b, 20]]);
    assert.deepEqual(rec.gone, []);
    // Said once each while it lasted, and once each when it could be looked at again.
    assert.equal(rec.unreadable.length, 4);
    assert.deepEqual(rec.unreadable.slice(2).map((said) => said.error), [null, null]);
  });
});

Deno.test("StabilityChecker: without waiting for incomplete files (run --once), a file that cannot be looked at is left for a later run, not gone", async () => {
  await withChecker({ stableForMs: 200, waitForIncomplete: false }, async (checker, rec, dir) => {
    // A link to itself on the way: stat fails with ELOOP, as an I/O error on a share would.
    Deno.symlinkSync("loop", join(dir, "loop"));
    const path = join(dir, "loop", "a.fits");
    checker.touch(path);
    await rec.until(() => rec.left.length === 1, "left");
    assert.equal(rec.left[0].path, path);
    assert.match(rec.left[0].reason, /^it cannot be looked at now \(.*\)$/);
    assert.deepEqual(rec.gone, []);
    assert.equal(checker.pendingCount, 0);
  });
});

Deno.test("StabilityChecker: a file replaced by a folder or deleted after a later touch is gone", async () => {
  await withChecker({ stableForMs: 200 }, async (checker, rec, dir) => {
    const path = join(dir, "a.fits");
    Deno.writeFileSync(path, notFits(10));
    checker.touch(path);
    await sleep(100);
    Deno.removeSync(path);
    checker.touch(path); // the remove's event, say
    await rec.until(() => rec.gone.length === 1, "gone");
    assert.deepEqual(rec.ready, []);
  });
});

Deno.test("StabilityChecker: touch() keeps postponing an unchanged file", async () => {
  await withChecker({ stableForMs: 300 }, async (checker, rec, dir) => {
    const path = join(dir, "a.fits");
    Deno.writeFileSync(path, notFits(10));
    checker.touch(path);
    let lastTouchAt = performance.now();
    const start = lastTouchAt;
    while (performance.now() - start < 1200) {
      await sleep(100);
      assert.equal(rec.ready.length, 0, "reported while events kept arriving");
      // Taken before the touch, which starts the quiet time itself.
      lastTouchAt = performance.now();
      checker.touch(path);
    }
    assert.equal(checker.pendingCount, 1, "touching a known file does not add another");
    await rec.until(() => rec.ready.length === 1, "ready");
    assert.ok(rec.ready[0].atMs - lastTouchAt >= 299, "full quiet time after the last event");
  });
});

Deno.test("StabilityChecker: a close event needs only closedForMs where the shortcut is allowed", async () => {
  await withChecker(
    // A window no test waits for: a report at all shows the shortcut.
    { stableForMs: 600_000, closedForMs: 150, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const fresh = join(dir, "closed at once.fits");
      const written = join(dir, "written then closed.fits");
      Deno.writeFileSync(fresh, notFits(10));
      Deno.writeFileSync(written, notFits(20));
      checker.touch(fresh, "closed");
      checker.touch(written, "changed");
      await sleep(100);
      // Taken before the touch, which starts the quiet time itself (a slow stat inside it
      // must not count against the checker).
      const closedAt = performance.now();
      checker.touch(written, "closed");
      await rec.until(() => rec.ready.length === 2, "both ready before the full window");
      const w = rec.readyFor(written)[0];
      assert.ok(w.atMs - closedAt >= 149, "the close's own quiet time");
      assert.equal(w.size, 20);
      assert.equal(rec.readyFor(fresh)[0].size, 10);
    },
  );
});

Deno.test("StabilityChecker: closedForMs longer than the window is capped at the window", async () => {
  await withChecker(
    { stableForMs: 150, closedForMs: 60_000, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const path = join(dir, "a.fits");
      Deno.writeFileSync(path, notFits(1));
      checker.touch(path, "closed");
      await rec.until(() => rec.ready.length === 1, "ready within the window", 10_000);
    },
  );
});

Deno.test("StabilityChecker: closedForMs given as undefined means the window", async () => {
  await withChecker(
    { stableForMs: 200, closedForMs: undefined, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const path = join(dir, "a.fits");
      Deno.writeFileSync(path, notFits(3));
      const touchedAt = performance.now();
      checker.touch(path, "closed");
      await rec.until(() => rec.ready.length === 1, "ready", 10_000);
      assert.ok(rec.ready[0].atMs - touchedAt >= 199);
      assert.equal(rec.ready[0].size, 3);
    },
  );
});

Deno.test("StabilityChecker: a write after the close falls back to the full window", async () => {
  await withChecker(
    // The append lands long before the check at closedForMs, even on a busy machine.
    { stableForMs: 3000, closedForMs: 2000, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const path = join(dir, "a.fits");
      Deno.writeFileSync(path, notFits(10));
      checker.touch(path, "closed");
      await sleep(100);
      // Appended without an event: the check at closedForMs sees the change.
      Deno.writeFileSync(path, notFits(90), { append: true });
      const appendedAt = performance.now();
      await rec.until(() => rec.ready.length === 1, "ready");
      const [ready] = rec.ready;
      assert.ok(
        ready.atMs - appendedAt >= 2999,
        `reported ${ready.atMs - appendedAt} ms after the write, before the full window`,
      );
      assert.equal(ready.size, 100);
    },
  );
});

Deno.test("StabilityChecker: a change event after a close needs the full window again", async () => {
  await withChecker(
    { stableForMs: 700, closedForMs: 100, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const path = join(dir, "a.fits");
      Deno.writeFileSync(path, notFits(10));
      checker.touch(path, "closed");
      const changedAt = performance.now();
      checker.touch(path, "changed");
      await rec.until(() => rec.ready.length === 1, "ready");
      assert.ok(rec.ready[0].atMs - changedAt >= 699);
    },
  );
});

Deno.test("StabilityChecker: a file held open and written in pauses waits for the close (real watcher)", async () => {
  // Wired like the job runner where closes are not told apart from writes: a close-after-write
  // ("access") is "closed", the rest "changed".
  await withChecker(
    // A window far longer than the pauses, which a busy machine may stretch.
    { stableForMs: 10_000, closedForMs: 200, closeShortcut: () => true },
    async (checker, rec, dir) => {
      const watcher = Deno.watchFs(dir, { recursive: true });
      const events: string[] = [];
      const pump = (async () => {
        for await (const event of watcher) {
          if (event.kind === "remove") continue;
          events.push(`${event.kind}`);
          for (const path of event.paths) checker.touch(path, activityOf(event.kind, false));
        }
      })();
      try {
        const path = join(dir, "held open.fits");
        let closedAt = Infinity;
        {
          using file = Deno.openSync(path, { write: true, create: true });
          for (let i = 0; i < 3; i++) {
            file.writeSync(new Uint8Array(1000).fill(i + 1));
            // Longer than closedForMs, shorter than the window.
            await sleep(600);
            assert.equal(rec.ready.length, 0, `reported while held open (pause ${i})`);
          }
          file.writeSync(notFits(500));
          closedAt = performance.now();
        }
        await rec.until(() => rec.ready.length > 0, "ready after the close");
        const ready = rec.readyFor(path);
        assert.equal(ready.length, 1, "reported once");
        assert.ok(ready[0].atMs >= closedAt, "reported only after the close");
        assert.equal(ready[0].size, 3500);
        assert.equal(ready[0].mtimeMs, fileInfo(path).mtimeMs);
        assert.ok(events.length > 0, "the watcher delivered events");
        await sleep(400);
        assert.equal(rec.readyFor(path).length, 1, "not reported again");
      } finally {
        watcher.close();
        await pump;
      }
    },
  );
});

Deno.test("StabilityChecker: a FITS file open to more HDUs, written and still open, waits for its close (real watcher)", async () => {
  // A close-after-write is "closed", a write "written".
  await withWatchedChecker(async (checker, rec, dir) => {
    const path = join(dir, "two hdus.fits");
    const primary = imageParts(16, 16, [card("EXTEND", true)]);
    const extension = imageExtension(16, 16);
    let closedAt = Infinity;
    {
      using file = Deno.openSync(path, { write: true, create: true });
      file.writeSync(primary.header);
      file.writeSync(primary.data);
      // The camera computes the next HDU: far longer than the window, the file held open.
      await rec.until(() => rec.incomplete.length > 0, "said to wait for the close");
      assert.equal(rec.ready.length, 0, "not reported while its writer has it open");
      assert.match(rec.incomplete[0].reason, /its writer still has it open/);
      file.writeSync(extension);
      closedAt = performance.now();
    }
    await rec.until(() => rec.ready.length > 0, "ready after the close");
    const [ready] = rec.readyFor(path);
    assert.ok(ready.atMs >= closedAt, "reported only after the close");
    assert.equal(ready.size, fileInfo(path).size);
    assert.equal(ready.size, 4 * 2880, "both HDUs");
    // Found by a scan instead (a lost close cannot hold it): the window decides, as before.
    const scanned = join(dir, "scanned.fits");
    await Deno.writeFile(scanned, fitsFile(primary.header, primary.data));
    checker.touch(scanned);
    await rec.until(() => rec.readyFor(scanned).length > 0, "a scanned file ready");
  });
});

Deno.test("StabilityChecker: a file that waits for its close goes by the window once events were lost (closesLost); one written after the loss still waits for its close", async () => {
  // As with after_transfer: delete, where every file but a FITS file waits for its close.
  await withChecker({ stableForMs: 300, waitsForClose: () => true }, async (checker, rec, dir) => {
    const held = join(dir, "held -$(x).dat");
    const later = join(dir, "later.dat");
    Deno.writeFileSync(held, notFits(100));
    checker.touch(held, "written");
    const waits = (path: string) => rec.incomplete.some((i) => i.path === path);
    await rec.until(() => waits(held), "held said to wait for its close");
    assert.match(rec.incomplete[0].reason, /its writer still has it open/);
    const lostAt = performance.now();
    Deno.writeFileSync(later, notFits(100));
    checker.touch(later, "written");
    // Its close may have been lost (an overflow): a lost close must not hold it.
    assert.equal(checker.closesLost(lostAt), 1, "only the file seen written before the loss");
    await rec.until(() => rec.readyFor(held).length > 0, "held ready after the window");
    assert.equal(rec.readyFor(held)[0].size, 100);
    await rec.until(() => waits(later), "later still waits for its close");
    assert.equal(rec.readyFor(later).length, 0, "not sent while its writer has it open");
    checker.touch(later, "closed");
    await rec.until(() => rec.readyFor(later).length > 0, "later ready after its close");
    assert.equal(checker.closesLost(performance.now()), 0, "none left open");
  });
});

Deno.test("StabilityChecker: a FITS file open to more HDUs, moved in or renamed, goes after the window without a close (real watcher)", async () => {
  // No close follows a rename.
  await withWatchedChecker(async (_checker, rec, watched, dir) => {
    const primary = imageParts(16, 16, [card("EXTEND", true)]);
    const bytes = fitsFile(primary.header, primary.data);
    // Written elsewhere and moved in (`mv`, rsync's rename of its temporary file).
    await Deno.writeFile(join(dir, "outside.fits"), bytes);
    await Deno.rename(join(dir, "outside.fits"), join(watched, "moved.fits"));
    // Written under another name in the folder and renamed.
    await Deno.writeFile(join(watched, "renamed.fits.part"), bytes);
    await Deno.rename(join(watched, "renamed.fits.part"), join(watched, "renamed.fits"));
    for (const name of ["moved.fits", "renamed.fits"]) {
      const path = join(watched, name);
      await rec.until(() => rec.readyFor(path).length > 0, `${name} ready`);
      assert.equal(rec.readyFor(path)[0].size, bytes.length);
    }
    // Before, each waited for a close that never comes, up to the grace.
    assert.deepEqual(rec.incomplete, []);
  });
});

Deno.test("StabilityChecker: a complete FITS file announcing HDUs it lacks (NEXTEND too large, as in astropy's double_ext.fits), moved in or renamed, goes after the window (real watcher)", async () => {
  // No close follows a rename; before, such files waited out the grace and went as truncated.
  await withWatchedChecker(async (checker, rec, watched, dir) => {
    const counted = imageParts(16, 16, [card("EXTEND", true), card("NEXTEND", 36)]);
    const kinds = {
      "nextend": fitsFile(counted.header, counted.data),
      "double_ext": await Deno.readFile(join(ASTROPY_FITS_DATA, "double_ext.fits")),
    };
    const sizes = new Map<string, number>();
    for (const [kind, bytes] of Object.entries(kinds)) {
      // Written elsewhere and moved in (`mv`, rsync's rename of its temporary file).
      await Deno.writeFile(join(dir, `${kind}.fits`), bytes);
      await Deno.rename(join(dir, `${kind}.fits`), join(watched, `moved ${kind}.fits`));
      sizes.set(join(watched, `moved ${kind}.fits`), bytes.length);
      // Written under another name in the folder and renamed.
      await Deno.writeFile(join(watched, `${kind}.part`), bytes);
      await Deno.rename(join(watched, `${kind}.part`), join(watched, `renamed ${kind}.fits`));
      sizes.set(join(watched, `renamed ${kind}.fits`), bytes.length);
    }
    for (const [path, size] of sizes) {
      await rec.until(() => rec.readyFor(path).length > 0, `${path} ready`);
      assert.equal(rec.readyFor(path)[0].size, size);
      assert.equal(rec.readyFor(path)[0].truncated, undefined, `${path} is whole`);
    }
    assert.equal(rec.incomplete.length, 0, "none waited for the HDUs NEXTEND counts");
    // Found by a scan instead (a daemon started while a camera waits between HDUs): it waits.
    const scanned = join(dir, "scanned.fits");
    await Deno.writeFile(scanned, kinds.nextend);
    checker.touch(scanned, "found");
    await rec.until(() => rec.incomplete.some((i) => i.path === scanned), "the scanned one waits");
    assert.match(rec.incomplete.find((i) => i.path === scanned)!.reason, /NEXTEND = 36/);
    assert.equal(rec.readyFor(scanned).length, 0);
  });
});

Deno.test("StabilityChecker: a FITS file whose primary HDU has no data and announces extensions waits, open, for its close (real watcher)", async () => {
  // The usual shape of a multi-extension camera file: NAXIS = 0, EXTEND = T, then the extensions.
  await withWatchedChecker(async (_checker, rec, dir) => {
    const path = join(dir, "mef.fits");
    const primary = headerOnlyPrimary();
    const extension = imageExtension(16, 16, (x, y) => x * y);
    let closedAt = Infinity;
    {
      using file = Deno.openSync(path, { write: true, create: true });
      file.writeSync(primary);
      await rec.until(() => rec.incomplete.length > 0, "said to wait for the close");
      assert.equal(rec.ready.length, 0, "the header alone is not sent while it is open");
      assert.match(rec.incomplete[0].reason, /its writer still has it open/);
      file.writeSync(extension);
      closedAt = performance.now();
    }
    await rec.until(() => rec.readyFor(path).length > 0, "ready after the close");
    const [ready] = rec.readyFor(path);
    assert.ok(ready.atMs >= closedAt, "reported only after the close");
    assert.equal(ready.size, primary.length + extension.length);
  });
});

Deno.test("StabilityChecker: a primary HDU announcing extensions, found by a scan (no close seen), waits for them; one older than the grace goes, truncated", async () => {
  // A camera that opened the file in a folder made just before (its events missed), or a daemon
  // started while the camera waits between HDUs: only a scan or a poll tells of the file.
  await withChecker(
    { stableForMs: 300, closedForMs: 100, incompleteGraceMs: 120_000 },
    async (checker, rec, dir) => {
      const path = join(dir, "mef.fits");
      const primary = headerOnlyPrimary();
      const extension = imageExtension(16, 16);
      await Deno.writeFile(path, primary);
      checker.touch(path);
      await rec.until(() => rec.incomplete.length > 0, "said to wait for the extensions");
      assert.match(
        rec.incomplete[0].reason,
        /announces extensions \(EXTEND = T\), but none is there/,
      );
      assert.equal(rec.ready.length, 0, "the header alone is not sent");
      await Deno.writeFile(path, extension, { append: true });
      checker.touch(path, "closed");
      await rec.until(() => rec.readyFor(path).length > 0, "ready once complete and closed");
      assert.equal(rec.readyFor(path)[0].size, primary.length + extension.length);
      assert.equal(rec.readyFor(path)[0].truncated, undefined);
      // Unchanged for longer than the grace (by its mtime): it is what it is.
      const old = join(dir, "old.fits");
      await Deno.writeFile(old, primary);
      const longAgo = new Date(Date.now() - 3_600_000);
      await Deno.utime(old, longAgo, longAgo);
      checker.touch(old, "found");
      await rec.until(() => rec.readyFor(old).length > 0, "the old one ready");
      assert.match(rec.readyFor(old)[0].truncated?.reason ?? "", /announces extensions/);
    },
  );
});

Deno.test("StabilityChecker: an incomplete FITS file with an old mtime seen appearing (an event, a poll) waits the whole grace; found by a scan as it was left, it goes", async () => {
  // A writer whose clock is behind the daemon's (a camera PC, a share's server), or a clock
  // stepped forward: the mtime says "long ago" of a file being written now.
  await withChecker(
    { stableForMs: 300, closedForMs: 100, incompleteGraceMs: 600_000 },
    async (checker, rec, dir) => {
      const { header, data } = imageParts(32, 32);
      const full = fitsFile(header, data);
      const longAgo = new Date(Date.now() - 15 * 60_000);
      const seen = join(dir, "seen.fits");
      const left = join(dir, "left.fits");
      for (const path of [seen, left]) {
        await Deno.writeFile(path, header);
        await Deno.utime(path, longAgo, longAgo);
      }
      checker.touch(seen, "changed");
      checker.touch(left, "found");
      await rec.until(() => rec.readyFor(left).length > 0, "the one left long ago goes");
      assert.match(rec.readyFor(left)[0].truncated?.reason ?? "", /./);
      await rec.until(
        () => rec.incomplete.some((i) => i.path === seen),
        "the one seen appearing waits",
      );
      const waiting = rec.incomplete.find((i) => i.path === seen)!;
      assert.ok(waiting.graceLeftMs > 500_000, `grace left ${waiting.graceLeftMs} ms`);
      assert.equal(rec.readyFor(seen).length, 0, "not sent truncated");
      // Its writer goes on: complete, it goes whole.
      await Deno.writeFile(seen, full);
      await Deno.utime(seen, longAgo, longAgo);
      checker.touch(seen, "closed");
      await rec.until(() => rec.readyFor(seen).length > 0, "complete");
      assert.equal(rec.readyFor(seen)[0].size, full.length);
      assert.equal(rec.readyFor(seen)[0].truncated, undefined);
    },
  );
});

Deno.test("StabilityChecker: a chmod after the close, or of a file moved in, is no writer holding it open (real watcher)", async () => {
  await withWatchedChecker(async (_checker, rec, watched, dir) => {
    const primary = imageParts(16, 16, [card("EXTEND", true)]);
    const bytes = fitsFile(primary.header, primary.data);
    // Copied, closed, then its mode set (Python's shutil.copy, `cp` then `chmod`).
    const copied = join(watched, "copied.fits");
    await Deno.writeFile(copied, bytes);
    await Deno.chmod(copied, 0o640);
    // Written earlier elsewhere, moved in, then its mode set.
    await Deno.writeFile(join(dir, "outside.fits"), bytes);
    const earlier = new Date(Date.now() - 3_600_000);
    await Deno.utime(join(dir, "outside.fits"), earlier, earlier);
    await Deno.rename(join(dir, "outside.fits"), join(watched, "moved.fits"));
    await Deno.chmod(join(watched, "moved.fits"), 0o640);
    for (const name of ["copied.fits", "moved.fits"]) {
      const path = join(watched, name);
      await rec.until(() => rec.readyFor(path).length > 0, `${name} ready`);
      assert.equal(rec.readyFor(path)[0].size, bytes.length);
    }
    assert.deepEqual(rec.incomplete, [], "neither waited for a writer's close");
  });
});

Deno.test("StabilityChecker: close() stops everything; later touches are ignored", async () => {
  await withChecker({ stableForMs: 150 }, async (checker, rec, dir) => {
    const paths = ["a.fits", "b.fits", "c.fits"].map((n) => join(dir, n));
    for (const p of paths) Deno.writeFileSync(p, notFits(5));
    for (const p of paths) checker.touch(p);
    checker.touch(join(dir, "missing.fits")); // reported gone at once: nothing to observe
    assert.deepEqual(rec.gone.map((g) => g.path), [join(dir, "missing.fits")]);
    checker.close();
    assert.equal(checker.pendingCount, 0);
    checker.touch(paths[0]);
    assert.equal(checker.has(paths[0]), false);
    assert.equal(checker.pendingCount, 0);
    await sleep(600);
    assert.deepEqual(rec.ready, []);
    assert.deepEqual(rec.gone.map((g) => g.path), [join(dir, "missing.fits")], "no more");
  });
});

Deno.test("StabilityChecker: close() while checks are in flight reports nothing", async () => {
  await withChecker({ stableForMs: 0 }, async (checker, rec, dir) => {
    const paths = Array.from({ length: 20 }, (_, i) => join(dir, `${i}.fits`));
    for (const p of paths) Deno.writeFileSync(p, notFits(5));
    for (const p of paths) checker.touch(p);
    await sleep(0);
    checker.close();
    const seen = rec.ready.length;
    await sleep(300);
    assert.equal(rec.ready.length, seen, "nothing reported after close()");
  });
});

Deno.test("StabilityChecker: pendingCount, has() and forget()", async () => {
  await withChecker({ stableForMs: 250 }, async (checker, rec, dir) => {
    const a = join(dir, "a.fits");
    const b = join(dir, "b.fits");
    Deno.writeFileSync(a, notFits(1));
    Deno.writeFileSync(b, notFits(2));
    assert.equal(checker.pendingCount, 0);
    assert.equal(checker.has(a), false);
    checker.touch(a);
    checker.touch(b);
    checker.touch(b, "closed");
    assert.equal(checker.pendingCount, 2);
    assert.equal(checker.has(a), true);
    assert.equal(checker.has(b), true);
    checker.forget(a);
    checker.forget(join(dir, "unknown.fits"));
    assert.equal(checker.has(a), false);
    assert.equal(checker.pendingCount, 1);
    await rec.until(() => rec.ready.length === 1, "b ready");
    assert.equal(rec.ready[0].path, b);
    assert.equal(checker.pendingCount, 0);
    await sleep(500);
    assert.deepEqual(rec.readyFor(a), [], "a forgotten file is not reported");
    // A ready file touched again is observed (and reported) again.
    checker.touch(b);
    assert.equal(checker.has(b), true);
    await rec.until(() => rec.readyFor(b).length === 2, "b ready again");
  });
});

Deno.test("StabilityChecker: a file touched before it exists is gone; touched again once written, it is observed", async () => {
  await withChecker({ stableForMs: 200 }, async (checker, rec, dir) => {
    const paths = Array.from({ length: 20 }, (_, i) => join(dir, `${i}.fits`));
    for (const [i, path] of paths.entries()) {
      checker.touch(path); // not there yet
      assert.equal(checker.has(path), false);
      checker.forget(path);
      Deno.writeFileSync(path, notFits(i + 1));
      checker.touch(path);
    }
    await rec.until(() => rec.ready.length === 20, "all 20 ready");
    assert.deepEqual(rec.gone.map((g) => g.path), paths, "gone once each, before it existed");
    assert.deepEqual(rec.ready.map((r) => r.size), paths.map((_, i) => i + 1));
  });
});
