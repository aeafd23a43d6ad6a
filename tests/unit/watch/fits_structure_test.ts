/**
 * The FITS structure check on real files: astropy's own test files (Debian
 * python3-astropy) and this repository's fixtures must come out complete
 * with their real size; copies cut anywhere but at an HDU boundary must come
 * out incomplete; extra bytes, unusable headers and non-FITS files are told
 * apart.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readFitsStructure } from "../../../src/layout/fits_structure.ts";
import {
  astropyFitsFiles,
  BLOCK_BYTES,
  card,
  fitsFile,
  headerBytes,
  imageParts,
} from "../../helpers/fits.ts";
import { withTempDir } from "../../helpers/files.ts";

const FIXTURES = fileURLToPath(new URL("../../fixtures/fits/", import.meta.url));

/** HDU counts as astropy reports them (`len(fits.open(path))`). */
const ASTROPY_HDU_COUNTS: Record<string, number> = {
  "o4sp040b0_raw.fits": 7,
  "test0.fits": 5,
  "zerowidth.fits": 6,
  "stddata.fits": 3,
  "random_groups.fits": 1,
  "group.fits": 1,
  "btable.fits": 2,
};

async function allRealFiles(): Promise<string[]> {
  const fixtures: string[] = [];
  for await (const entry of Deno.readDir(FIXTURES)) {
    if (entry.name.endsWith(".fits")) fixtures.push(join(FIXTURES, entry.name));
  }
  return [...await astropyFitsFiles(), ...fixtures.sort()];
}

/** Text as bytes, one byte per character. */
function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

Deno.test("FITS structure: every astropy test file and fixture is complete at its real size", async () => {
  const files = await allRealFiles();
  assert.ok(files.length >= 30, `astropy's test files are there (${files.length})`);
  for (const path of files) {
    const size = (await Deno.stat(path)).size;
    const found = readFitsStructure(path);
    assert.equal(found.kind, "complete", `${path}: ${JSON.stringify(found)}`);
    if (found.kind !== "complete") continue;
    assert.equal(found.size, size, path);
    assert.equal(found.hdus[0].start, 0, path);
    assert.equal(found.hdus.at(-1)!.end, size, `${path}: the last HDU ends at the file's end`);
    for (const [i, hdu] of found.hdus.entries()) {
      assert.equal(hdu.dataStart % BLOCK_BYTES, 0, `${path} HDU ${i}: whole header blocks`);
      assert.equal(hdu.end % BLOCK_BYTES, 0, `${path} HDU ${i}: padded data`);
      if (i > 0) assert.equal(hdu.start, found.hdus[i - 1].end, `${path} HDU ${i}: contiguous`);
    }
    const expectedHdus = ASTROPY_HDU_COUNTS[basename(path)];
    if (expectedHdus !== undefined) assert.equal(found.hdus.length, expectedHdus, path);
  }
});

Deno.test("FITS structure: random groups count GCOUNT × (PCOUNT + NAXIS2×…×NAXISn), not NAXIS1", async () => {
  const files = await astropyFitsFiles();
  const at = (name: string) => files.find((f) => basename(f) === name)!;
  // group.fits: BITPIX -32, NAXIS1..5 = 0 5 3 1 1, PCOUNT 3, GCOUNT 10: 4×10×(3+15) = 720 bytes.
  const group = readFitsStructure(at("group.fits"));
  assert.equal(group.kind, "complete");
  if (group.kind === "complete") {
    assert.equal(group.hdus[0].end - group.hdus[0].dataStart, BLOCK_BYTES);
  }
  // random_groups.fits: BITPIX -32, NAXIS2..6 = 3 1 128 1 1, PCOUNT 5, GCOUNT 3: 4×3×389 = 4668.
  const random = readFitsStructure(at("random_groups.fits"));
  assert.equal(random.kind, "complete");
  if (random.kind === "complete") {
    assert.equal(random.hdus[0].end - random.hdus[0].dataStart, 2 * BLOCK_BYTES);
  }
});

Deno.test("FITS structure: copies cut inside any HDU are incomplete; cut at an HDU boundary, complete", async () => {
  await withTempDir(async (dir) => {
    let cuts = 0;
    for (const path of await allRealFiles()) {
      const bytes = await Deno.readFile(path);
      const full = readFitsStructure(path);
      assert.equal(full.kind, "complete", path);
      if (full.kind !== "complete") continue;
      const copy = join(dir, "cut.fits");
      const cutAt = async (length: number) => {
        await Deno.writeFile(copy, bytes.subarray(0, length));
        cuts++;
        return readFitsStructure(copy);
      };
      for (const [i, hdu] of full.hdus.entries()) {
        const inside = new Set([hdu.start + 1, hdu.start + 100, hdu.dataStart - 1, hdu.end - 1]);
        if (hdu.end > hdu.dataStart) {
          inside.add(hdu.dataStart);
          inside.add(hdu.dataStart + Math.floor((hdu.end - hdu.dataStart) / 2));
        }
        for (const length of inside) {
          const found = await cutAt(length);
          assert.equal(found.kind, "incomplete", `${path} cut at ${length} (HDU ${i})`);
          assert.equal(found.size, length);
        }
        if (i > 0) {
          // An HDU boundary: the HDUs before it form a complete file.
          const found = await cutAt(hdu.start);
          assert.equal(found.kind, "complete", `${path} cut before HDU ${i}`);
          if (found.kind === "complete") assert.equal(found.hdus.length, i);
        }
      }
    }
    assert.ok(cuts > 200, `${cuts} cut copies checked`);
  });
});

Deno.test("FITS structure: a header written before its data says how many bytes are missing", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "header first.fits");
    const { header, data } = imageParts(100, 100);
    await Deno.writeFile(path, header.subarray(0, 200)); // before the END card
    let found = readFitsStructure(path);
    assert.equal(found.kind, "incomplete");
    if (found.kind === "incomplete") {
      assert.equal(found.expectedBytes, null);
      assert.match(found.reason, /HDU 0 has no END card yet/);
    }
    await Deno.writeFile(path, header);
    found = readFitsStructure(path);
    assert.equal(found.kind, "incomplete");
    if (found.kind === "incomplete") {
      // One header block, then 100 × 100 × 2 = 20,000 bytes of data padded to 7 blocks.
      assert.equal(found.expectedBytes, 8 * BLOCK_BYTES);
      assert.equal(found.expectedBytes, header.length + data.length);
      assert.match(found.reason, /ends at byte 23040, the file has 2880/);
    }
    await Deno.writeFile(path, data, { append: true });
    found = readFitsStructure(path);
    assert.equal(found.kind, "complete");
    assert.equal(found.size, 23040);
    // A few bytes of "SIMPLE  =" only: a FITS file being started.
    await Deno.writeFile(path, ascii("SIMP"));
    assert.equal(readFitsStructure(path).kind, "incomplete");
  });
});

Deno.test("FITS structure: extra trailing bytes are 'longer'; a partial extension is 'incomplete'", async () => {
  await withTempDir(async (dir) => {
    const { header, data } = imageParts(10, 10);
    const image = fitsFile(header, data);
    const path = join(dir, "a.fits");
    for (const extra of [ascii("x"), new Uint8Array(100), new Uint8Array(BLOCK_BYTES).fill(32)]) {
      await Deno.writeFile(path, fitsFile(image, extra));
      const found = readFitsStructure(path);
      assert.equal(found.kind, "longer", `${extra.length} extra byte(s)`);
      if (found.kind === "longer") assert.equal(found.expectedBytes, image.length);
    }
    const extension = headerBytes([
      card("XTENSION", "IMAGE"),
      card("BITPIX", 8),
      card("NAXIS", 1),
      card("NAXIS1", 5000),
      card("PCOUNT", 0),
      card("GCOUNT", 1),
    ]);
    for (const cut of [3, 10, 500, BLOCK_BYTES, BLOCK_BYTES + 4999]) {
      await Deno.writeFile(
        path,
        fitsFile(image, extension, new Uint8Array(5000)).subarray(
          0,
          image.length + cut,
        ),
      );
      assert.equal(readFitsStructure(path).kind, "incomplete", `extension cut at ${cut}`);
    }
    await Deno.writeFile(path, fitsFile(image, extension, new Uint8Array(2 * BLOCK_BYTES)));
    const found = readFitsStructure(path);
    assert.equal(found.kind, "complete");
    if (found.kind === "complete") assert.equal(found.hdus.length, 2);
  });
});

Deno.test("FITS structure: not FITS, unusable headers, and files that may still grow", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "x.fits");
    for (const bytes of [ascii("hello world, not FITS"), ascii("SIMPLE =  T")]) {
      await Deno.writeFile(path, bytes);
      assert.equal(readFitsStructure(path).kind, "not-fits", JSON.stringify(bytes.length));
    }
    // Empty: a FITS file not written yet when its name says FITS (a camera that creates it at
    // the exposure's start), else nothing to tell.
    for (const name of ["x.fits", "x.FIT", "x.fts", "x.fits.fz"]) {
      await Deno.writeFile(join(dir, name), new Uint8Array(0));
      const empty = readFitsStructure(join(dir, name));
      assert.equal(empty.kind, "incomplete", name);
      if (empty.kind === "incomplete") assert.match(empty.reason, /^empty so far/);
    }
    for (const name of ["x.raw", "x.fits.gz", "fits"]) {
      await Deno.writeFile(join(dir, name), new Uint8Array(0));
      assert.equal(readFitsStructure(join(dir, name)).kind, "not-fits", name);
    }
    // Space reserved (`fallocate -l`, `truncate -s`), all zeros: its header not written yet
    // when its name says FITS, else nothing to tell.
    for (const size of [1, 2880, 3 * 2880 + 7, 1_000_000]) {
      for (const name of ["r.fits", "r.FIT", "r.fits.fz"]) {
        using file = await Deno.open(join(dir, name), { write: true, create: true });
        await file.truncate(size);
        const reserved = readFitsStructure(join(dir, name));
        assert.equal(reserved.kind, "incomplete", `${name} ${size}`);
        if (reserved.kind === "incomplete") {
          assert.match(reserved.reason, /first bytes are still zeros \(space reserved/);
          assert.equal(reserved.expectedBytes, null);
        }
      }
      await Deno.writeFile(join(dir, "r.raw"), new Uint8Array(size));
      assert.equal(readFitsStructure(join(dir, "r.raw")).kind, "not-fits", `r.raw ${size}`);
    }
    // Its header written over the zeros: what the header says, as any FITS file.
    const image = imageParts(16, 16);
    {
      using file = await Deno.open(join(dir, "r.fits"), { write: true, truncate: true });
      await file.truncate(image.header.length + image.data.length);
      await file.write(image.header);
    }
    assert.equal(readFitsStructure(join(dir, "r.fits")).kind, "complete");
    // A first block with anything but zeros is not taken for reserved space.
    const some = new Uint8Array(2 * 2880);
    some[2879] = 1;
    await Deno.writeFile(join(dir, "s.fits"), some);
    assert.equal(readFitsStructure(join(dir, "s.fits")).kind, "not-fits");
    const bad = [
      [card("SIMPLE", true), card("BITPIX", 12), card("NAXIS", 0)],
      [card("SIMPLE", true), card("BITPIX", 16), card("NAXIS", 1)],
      [card("SIMPLE", true), card("BITPIX", 16), card("NAXIS", 1), card("NAXIS1", -4)],
      [card("SIMPLE", true), card("BITPIX", 16), card("NAXIS", "two")],
    ];
    for (const cards of bad) {
      await Deno.writeFile(path, headerBytes(cards));
      const found = readFitsStructure(path);
      assert.equal(found.kind, "invalid", cards.join("|"));
      if (found.kind === "invalid") assert.match(found.reason, /^HDU 0: (BITPIX|NAXIS)/);
    }
    // A primary header alone that announces extensions: complete, but more may come.
    await Deno.writeFile(
      path,
      headerBytes([
        card("SIMPLE", true),
        card("BITPIX", 8),
        card("NAXIS", 0),
        card("EXTEND", true),
      ]),
    );
    let found = readFitsStructure(path);
    assert.equal(found.kind, "complete");
    if (found.kind === "complete") assert.match(found.moreExpected ?? "", /EXTEND = T/);
    // NEXTEND says two extensions, one is there.
    const { header, data } = imageParts(4, 4, [card("EXTEND", true), card("NEXTEND", 2)]);
    const ext = headerBytes([
      card("XTENSION", "IMAGE"),
      card("BITPIX", 8),
      card("NAXIS", 0),
      card("PCOUNT", 0),
      card("GCOUNT", 1),
    ]);
    await Deno.writeFile(path, fitsFile(header, data, ext));
    found = readFitsStructure(path);
    assert.equal(found.kind, "complete");
    if (found.kind === "complete") assert.match(found.moreExpected ?? "", /NEXTEND = 2/);
    await Deno.writeFile(path, fitsFile(header, data, ext, ext));
    found = readFitsStructure(path);
    assert.equal(found.kind, "complete");
    if (found.kind === "complete") assert.equal(found.moreExpected, null);
    // A plain image: nothing more expected.
    const plain = imageParts(3, 3);
    await Deno.writeFile(path, fitsFile(plain.header, plain.data));
    found = readFitsStructure(path);
    assert.equal(found.kind === "complete" && found.moreExpected, null);
  });
});

Deno.test("FITS structure: a 1 TiB sparse image is complete without reading its data", async () => {
  // Reading the data would take minutes; the structure needs two header blocks.
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.fits");
    const header = headerBytes([
      card("SIMPLE", true),
      card("BITPIX", -64),
      card("NAXIS", 2),
      card("NAXIS1", 1 << 20),
      card("NAXIS2", 1 << 17),
      card("EXTEND", true),
    ]);
    const dataBytes = 2 ** 40;
    const extensionAt = header.length + Math.ceil(dataBytes / BLOCK_BYTES) * BLOCK_BYTES;
    const extension = headerBytes([
      card("XTENSION", "IMAGE"),
      card("BITPIX", 8),
      card("NAXIS", 0),
      card("PCOUNT", 0),
      card("GCOUNT", 1),
    ]);
    {
      using file = await Deno.open(path, { write: true, create: true });
      await file.write(header);
      await file.seek(extensionAt, Deno.SeekMode.Start);
      await file.write(extension);
    }
    const found = readFitsStructure(path);
    assert.equal(found.kind, "complete", JSON.stringify(found));
    if (found.kind === "complete") {
      assert.deepEqual(found.hdus.map((h) => h.start), [0, extensionAt]);
      assert.equal(found.size, extensionAt + BLOCK_BYTES);
    }
    await Deno.truncate(path, extensionAt - 1);
    assert.equal(readFitsStructure(path).kind, "incomplete");
  });
});

Deno.test("FITS structure: a file that ends right after its last data byte, without the padding to a whole block, is 'unpadded'; one byte short, or with extensions still announced, 'incomplete'", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "unpadded.fits");
    const { header, data } = imageParts(100, 100);
    // 100 × 100 × 2 = 20,000 data bytes: 7 blocks once padded, 160 bytes of padding left out.
    const unpadded = fitsFile(header, data.subarray(0, 20_000));
    await Deno.writeFile(path, unpadded);
    const found = readFitsStructure(path);
    assert.equal(found.kind, "unpadded");
    if (found.kind === "unpadded") {
      assert.equal(found.expectedBytes, header.length + data.length);
      assert.equal(found.hdus.length, 1);
    }
    await Deno.writeFile(path, unpadded.subarray(0, unpadded.length - 1));
    assert.equal(readFitsStructure(path).kind, "incomplete");
    await Deno.writeFile(path, fitsFile(header, data));
    assert.equal(readFitsStructure(path).kind, "complete");
    // Extensions announced (NEXTEND) and not there yet: incomplete, padding or not.
    const announcing = imageParts(100, 100, [card("NEXTEND", 2)]);
    await Deno.writeFile(path, fitsFile(announcing.header, announcing.data.subarray(0, 20_000)));
    assert.equal(readFitsStructure(path).kind, "incomplete");
  });
});
