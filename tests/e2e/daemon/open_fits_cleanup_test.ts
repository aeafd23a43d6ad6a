/**
 * FITS files whose writers take their time, through the real daemon (`local`): with
 * `after_transfer: delete` or `move`, a FITS file its writer still has open is never sent, and so
 * never removed, before its close, whatever its structure says (a header-only cube whose frames
 * follow, one whose data is still to come); a `.fits` file whose space its writer reserved first
 * (all zeros) waits for its header, never sent (nor its hook run) while zeros; with `delete` or
 * `move`, the file sent grown by an HDU appended before its clean-up (the same file) replaces its
 * copy, as with `keep`, while a new file under the name still goes beside it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { card, fitsFile, headerBytes, imageExtension, imageParts } from "../../helpers/fits.ts";
import { cliSandbox, countingHook } from "../../helpers/sandbox.ts";

/** The primary header of a 16-bit 100 × 100 × `frames` cube, no EXTEND (as the trial's cube.py). */
function cubeHeader(frames: number): Uint8Array {
  return headerBytes([
    card("SIMPLE", true),
    card("BITPIX", 16),
    card("NAXIS", 3),
    card("NAXIS1", 100),
    card("NAXIS2", 100),
    card("NAXIS3", frames),
  ]);
}

/** `bytes` padded with zeros to whole 2880-byte blocks. */
function padded(bytes: Uint8Array): Uint8Array {
  return fitsFile(bytes, new Uint8Array((2880 - bytes.length % 2880) % 2880));
}

/** The destination copy of `name` (wherever its night folder is), or undefined. */
async function copyOf(dest: string, name: string): Promise<Uint8Array | undefined> {
  const found = (await listFiles(dest)).filter((rel) => rel.endsWith(`/${name}`));
  assert.ok(found.length <= 1, `one copy of ${name}: ${found.join(", ")}`);
  return found.length === 0 ? undefined : await Deno.readFile(join(dest, found[0]));
}

for (
  const { what, after_transfer, write } of [
    {
      what: "a header-only cube (NAXIS3 = 0, complete as it is) whose frames follow",
      after_transfer: "delete",
      // Its writer appends frames, then seeks back to count them in NAXIS3, then closes.
      write: {
        first: cubeHeader(0),
        rest: async (file: Deno.FsFile, frames: Uint8Array) => {
          await file.write(padded(frames));
          await file.seek(0, Deno.SeekMode.Start);
          await file.write(cubeHeader(frames.length / 20_000));
        },
        frames: fitsFile(...Array.from({ length: 4 }, () => randomBytes(20_000))),
        whole: (frames: Uint8Array) => fitsFile(cubeHeader(4), padded(frames)),
      },
    },
    {
      what: "an image whose data is still to come (incomplete), past its grace",
      after_transfer: "move",
      write: {
        first: fitsFile(
          headerBytes([
            card("SIMPLE", true),
            card("BITPIX", 16),
            card("NAXIS", 2),
            card("NAXIS1", 100),
            card("NAXIS2", 100),
          ]),
          new Uint8Array(8_000),
        ),
        rest: async (file: Deno.FsFile, frames: Uint8Array) => {
          await file.write(padded(fitsFile(new Uint8Array(8_000), frames)).slice(8_000));
        },
        frames: randomBytes(12_000),
        whole: (frames: Uint8Array) =>
          fitsFile(
            headerBytes([
              card("SIMPLE", true),
              card("BITPIX", 16),
              card("NAXIS", 2),
              card("NAXIS1", 100),
              card("NAXIS2", 100),
            ]),
            padded(fitsFile(new Uint8Array(8_000), frames)),
          ),
      },
    },
  ] as const
) {
  Deno.test(`after_transfer: ${after_transfer}, ${what}, its writer holding it open longer than the window: it goes only after the close, whole`, async () => {
    await using p = await cliSandbox();
    const archive = join(p.root, "archive");
    // A grace shorter than the writer's pause: an incomplete file still open is not sent at its end.
    await p.rewrite({ after_transfer, archive_path: archive, fits_incomplete_grace_seconds: 1 });
    const daemon = startCli(["run", "-c", p.config], { env: p.env });
    const removed = new RegExp(
      `${after_transfer === "delete" ? "Deleted" : "Moved"} .*cube\\.fits`,
    );
    try {
      await daemon.waitForOutput("Watching");
      const source = join(p.watch, "cube.fits");
      {
        using file = await Deno.open(source, { write: true, createNew: true });
        await file.write(write.first);
        // Its writer pauses (exposing), the file open, longer than the window (0.3 s) and the grace.
        await daemon.waitForOutput(new RegExp(`still has it open|${removed.source}`));
        await new Promise((r) => setTimeout(r, 1_500));
        assert.doesNotMatch(daemon.stderr(), removed, "removed while its writer had it open");
        assert.doesNotMatch(daemon.stderr(), /Successfully transferred/, "sent while open");
        assert.match(
          daemon.stderr(),
          new RegExp(`sends it once its writer closed it, and then ${after_transfer}s the source`),
        );
        await write.rest(file, write.frames);
      }
      await daemon.waitForOutput(removed);
      const whole = write.whole(write.frames);
      assert.deepEqual(await copyOf(p.dest, "cube.fits"), whole, "the whole file arrived");
      assert.ok(!existsSync(source));
      if (after_transfer === "move") {
        assert.deepEqual(await Deno.readFile(join(archive, "cube.fits")), whole);
      }
      assert.doesNotMatch(daemon.stderr(), /truncated|incomplete \(/);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
}

Deno.test("a .fits file whose space its writer reserved first (all zeros, fallocate or truncate -s) waits for its header: sent once, filled, its hook run once", async () => {
  await using p = await cliSandbox();
  const { hook, runs } = await countingHook(p.root);
  await p.rewrite({ on_transfer: [hook] });
  const daemon = startCli(["run", "-c", p.config], { env: p.env });
  try {
    await daemon.waitForOutput("Watching");
    const source = join(p.watch, "reserved.fits");
    const image = imageParts(100, 100);
    const whole = fitsFile(image.header, image.data);
    {
      // Reserved, as `truncate -s SIZE` does, and closed: zeros for longer than the window.
      using file = await Deno.open(source, { write: true, createNew: true });
      await file.truncate(whole.length);
    }
    await daemon.waitForOutput(/reserved\.fits has not changed|Successfully transferred/);
    assert.doesNotMatch(daemon.stderr(), /Successfully transferred/, "sent while all zeros");
    assert.match(daemon.stderr(), /its first bytes are still zeros \(space reserved/);
    {
      // Filled later, in place.
      using file = await Deno.open(source, { write: true });
      await file.write(whole);
    }
    await daemon.waitForOutput(/Successfully transferred \S*reserved\.fits/);
    assert.deepEqual(await copyOf(p.dest, "reserved.fits"), whole);
    await waitFor(async () => (await runs()).length > 0, undefined, "its hook");
    assert.deepEqual(await runs(), ["reserved.fits"], "its hook ran once, on the filled file");
    assert.equal(daemon.stderr().match(/Successfully transferred/g)?.length, 1, "sent once");
    assert.doesNotMatch(daemon.stderr(), /truncated/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
  }
});

for (const after_transfer of ["delete", "move"] as const) {
  Deno.test(`after_transfer: ${after_transfer}, the file sent grown by an HDU appended before its clean-up (astropy's fits.append, the same file) replaces its copy; changed otherwise, or a new file under the name, it goes beside it`, async () => {
    await using p = await cliSandbox();
    const archive = join(p.root, "archive");
    // Clean-up a day after arrival: the append comes before it, whatever the machine's pace.
    await p.rewrite({ after_transfer, archive_path: archive, keep_days: 1 });
    const daemon = startCli(["run", "-c", p.config], { env: p.env });
    try {
      await daemon.waitForOutput("Watching");
      const source = join(p.watch, "race06.fits");
      const image = imageParts(100, 100, [card("EXTEND", true)]);
      const first = fitsFile(image.header, image.data);
      await Deno.writeFile(source, first);
      await daemon.waitForOutput(/Successfully transferred \S*race06\.fits/);
      const [night] = (await listFiles(p.dest)).map((rel) => rel.slice(0, rel.indexOf("/")));
      const copy = (name: string) => join(p.dest, night, name);
      assert.deepEqual(await Deno.readFile(copy("race06.fits")), first);
      // An HDU appended to the same file (its inode), as astropy's fits.append does.
      const extension = imageExtension(50, 50);
      {
        using file = await Deno.open(source, { append: true });
        await file.write(extension);
      }
      const grown = fitsFile(first, extension);
      await daemon.waitForOutput(/grown to \d+ by HDUs appended/);
      // Sent again: over its copy, or (before) beside it.
      await waitFor(
        async () =>
          existsSync(copy("race06~2.fits")) ||
          (await Deno.readFile(copy("race06.fits"))).length === grown.length,
        undefined,
        "the grown file sent",
      );
      assert.deepEqual(await Deno.readFile(copy("race06.fits")), grown);
      assert.deepEqual(await listFiles(p.dest), [`${night}/race06.fits`], "no copy beside it");
      assert.doesNotMatch(daemon.stderr(), /new file under a name sent before/);
      assert.match(daemon.stderr(), /set fits_appends_extensions: true/);

      // Rewritten in place otherwise (the same file, its bytes not grown by HDUs): beside its
      // copy, said as the file sent, changed (before, as a new file under the name).
      const rewritten = fitsFile(image.header, randomBytes(20_160), extension);
      await Deno.writeFile(source, rewritten);
      await daemon.waitForOutput(
        /race06\.fits changed after it was sent to \S*race06\.fits .*it goes to \S*race06~2\.fits, beside that copy/,
      );
      await waitFor(() => existsSync(copy("race06~2.fits")), undefined, "race06~2.fits");
      assert.deepEqual(await Deno.readFile(copy("race06~2.fits")), rewritten);
      assert.doesNotMatch(daemon.stderr(), /new file under a name sent before/);

      // The source gone (cleared by hand), the camera's counter starts again: a new file (another
      // inode) under the name goes beside the copies, never over one.
      await Deno.remove(source);
      const fresh = fitsFile(imageParts(100, 100).header, randomBytes(20_160));
      await Deno.writeFile(source, fresh);
      await daemon.waitForOutput(/is a new file under a name sent before .*race06~3\.fits/);
      await waitFor(() => existsSync(copy("race06~3.fits")), undefined, "race06~3.fits");
      assert.deepEqual(await Deno.readFile(copy("race06~3.fits")), fresh);
      assert.deepEqual(await Deno.readFile(copy("race06~2.fits")), rewritten, "never replaced");
      assert.deepEqual(await Deno.readFile(copy("race06.fits")), grown, "never replaced");
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  });
}
