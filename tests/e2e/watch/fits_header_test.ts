import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type FitsValue,
  observationDate,
  observationDateProblem,
  parseFitsHeader,
  readFitsHeader,
} from "../../../src/layout/fits_header.ts";
import { readFitsStructure } from "../../../src/layout/fits_structure.ts";
import { planDestination } from "../../../src/layout/destination.ts";
import {
  BLOCK_BYTES,
  card,
  fitsFile,
  headerBytes,
  imageCards,
  int16Data,
  longStringCards,
} from "../../helpers/fits.ts";
import { withTempDir } from "../../helpers/files.ts";

const FIXTURES = fileURLToPath(new URL("../../fixtures/fits/", import.meta.url));
const LONG_NOTE = "Guiding lost twice near the meridian; operator's note: 'flip' done at 01:10, " +
  "then refocused on HD 12345 with the ''blue'' filter.";

/** Run `body` with a fresh temp dir, removed afterwards. */

/** A 16-bit image whose header has more than 36 cards, so it spans two blocks. */
function twoBlockImage(): Uint8Array {
  const filler = Array.from({ length: 30 }, (_, i) => card(`FILL${i}`, i, "padding card"));
  const header = headerBytes([
    ...imageCards(40, 30),
    card("DATE-OBS", "2024-03-15T03:12:45.123", "UTC"),
    card("EXPTIME", 120.5, "seconds"),
    card("OBJECT", "Barnard's Loop"),
    card("EMPTY", ""),
    card("UNDEF", undefined, "no value indicator"),
    "UNSET   =                      / undefined value".padEnd(80),
    card("FLIPPED", false),
    card("DEXP", { raw: "1.5D3" }),
    card("NEGEXP", { raw: "-2.5E-2" }),
    card("CPLX", { raw: "(1.0, -2.0)" }),
    card("COMMENT", undefined, "  a comment with DATE-OBS= 'nonsense'"),
    card("HISTORY", undefined, "  processed"),
    "".padEnd(80),
    ...longStringCards("NOTES", LONG_NOTE),
    ...filler,
    card("LAST", "after the first block"),
  ]);
  assert.equal(header.length, 2 * BLOCK_BYTES);
  const data = int16Data(40, 30, (x, y) => x - y * 1000);
  assert.equal(data.length, BLOCK_BYTES);
  return fitsFile(header, data);
}

Deno.test("readFitsHeader reads every kind of value from a two-block header", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "two blocks.fits");
    await Deno.writeFile(path, twoBlockImage());
    const header = await readFitsHeader(path);
    const expected: [string, FitsValue][] = [
      ["SIMPLE", true],
      ["BITPIX", 16],
      ["NAXIS", 2],
      ["NAXIS1", 40],
      ["NAXIS2", 30],
      ["DATE-OBS", "2024-03-15T03:12:45.123"],
      ["EXPTIME", 120.5],
      ["OBJECT", "Barnard's Loop"],
      ["EMPTY", ""],
      ["UNSET", null],
      ["FLIPPED", false],
      ["DEXP", 1500],
      ["NEGEXP", -0.025],
      ["CPLX", "(1.0, -2.0)"],
      ["NOTES", LONG_NOTE],
      ["FILL29", 29],
      ["LAST", "after the first block"],
    ];
    for (const [keyword, value] of expected) assert.deepEqual(header.get(keyword), value, keyword);
    assert.equal(header.has("UNDEF"), false);
    assert.equal(header.has("COMMENT"), false);
    assert.equal(header.has("CONTINUE"), false);
    assert.equal(header.has("END"), false);
    assert.deepEqual(observationDate(header), new Date("2024-03-15T03:12:45.123Z"));
  });
});

Deno.test("parseFitsHeader gives the same result as readFitsHeader", async () => {
  await withTempDir(async (dir) => {
    const bytes = twoBlockImage();
    const path = join(dir, "image.fits");
    await Deno.writeFile(path, bytes);
    assert.deepEqual(parseFitsHeader(bytes), await readFitsHeader(path));
  });
});

Deno.test("a string ending in & without CONTINUE keeps its &", () => {
  const header = parseFitsHeader(
    headerBytes([card("SIMPLE", true), card("A", "rock &"), card("B", "roll")]),
  );
  assert.equal(header.get("A"), "rock &");
  assert.equal(header.get("B"), "roll");
});

Deno.test("leading blanks of a string are kept, trailing blanks dropped", () => {
  const header = parseFitsHeader(headerBytes([card("SIMPLE", true), card("S", "  x  y   ")]));
  assert.equal(header.get("S"), "  x  y");
});

Deno.test("the first card of a repeated keyword wins", () => {
  const header = parseFitsHeader(
    headerBytes([card("SIMPLE", true), card("DATE-OBS", "2024-01-02"), card("DATE-OBS", "1999")]),
  );
  assert.equal(header.get("DATE-OBS"), "2024-01-02");
});

Deno.test("fixture old_ccd_1998.fits: dd/mm/yy DATE-OBS plus UT card", async () => {
  const header = await readFitsHeader(join(FIXTURES, "old_ccd_1998.fits"));
  assert.equal(header.get("DATE-OBS"), "15/03/98");
  assert.equal(header.get("UT"), "03:12:45");
  assert.equal(header.get("OBJECT"), "NGC 2070");
  assert.equal(header.get("BZERO"), 32768);
  assert.equal(header.get("BSCALE"), 1);
  assert.equal(header.get("EXPTIME"), 300);
  assert.equal(header.get("AIRMASS"), 1.234);
  assert.deepEqual(observationDate(header), new Date("1998-03-15T03:12:45Z"));
});

Deno.test("fixture cmos_iso_2024.fits: ISO DATE-OBS with milliseconds", async () => {
  const header = await readFitsHeader(join(FIXTURES, "cmos_iso_2024.fits"));
  assert.equal(header.get("EXPTIME"), 15);
  assert.equal(header.get("CCD-TEMP"), -10.2);
  assert.equal(header.get("OBJECT"), "Barnard's Loop");
  assert.equal(header.get("INSTRUME"), "ZWO ASI6200MM Pro");
  assert.equal(header.get("ESO DET DIT"), 12.5);
  assert.equal(
    header.get("NOTES"),
    "Sky clear after 02:00, seeing 0.8 arcsec at zenith; dome flat 'A' taken, " +
      "focuser re-homed twice because of the wind from the north-west.",
  );
  assert.deepEqual(observationDate(header), new Date("2024-03-15T03:12:45.123Z"));
});

Deno.test("fixture fpack_style.fits: only the primary header counts", async () => {
  const header = await readFitsHeader(join(FIXTURES, "fpack_style.fits"));
  assert.equal(header.get("NAXIS"), 0);
  assert.equal(header.get("DATE-OBS"), "2023-11-02");
  assert.equal(header.has("XTENSION"), false);
  assert.equal(header.has("ZIMAGE"), false);
  assert.equal(header.has("OBJECT"), false);
  assert.deepEqual(observationDate(header), new Date("2023-11-02T22:05:00.500Z"));
});

Deno.test("readFitsHeader rejects files that are not FITS", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, Uint8Array][] = [
      ["notes.txt", new TextEncoder().encode("SIMPLE is not enough\n".repeat(200))],
      ["empty.fits", new Uint8Array()],
      ["image.png", new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
      ["extension-first.fits", headerBytes([card("XTENSION", "IMAGE")])],
    ];
    for (const [name, bytes] of cases) {
      const path = join(dir, name);
      await Deno.writeFile(path, bytes);
      await assert.rejects(readFitsHeader(path), (error: Error) => {
        assert.match(error.message, /^Cannot read FITS header of .+: not a FITS file/);
        assert.ok(error.message.includes(path), error.message);
        return true;
      });
    }
    assert.throws(() => parseFitsHeader(cases[0][1]), /^Error: Cannot parse FITS header: not a/);
  });
});

Deno.test("readFitsHeader rejects a header truncated before END", async () => {
  await withTempDir(async (dir) => {
    const full = twoBlockImage();
    for (const length of [80, 2000, BLOCK_BYTES, BLOCK_BYTES + 400]) {
      const path = join(dir, `cut-${length}.fits`);
      await Deno.writeFile(path, full.subarray(0, length));
      await assert.rejects(
        readFitsHeader(path),
        /^Error: Cannot read FITS header of .+: truncated before the END card$/,
      );
      assert.throws(() => parseFitsHeader(full.subarray(0, length)), /truncated before the END/);
    }
  });
});

Deno.test("readFitsHeader stops after maxBlocks header blocks", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "long.fits");
    await Deno.writeFile(path, twoBlockImage());
    await assert.rejects(
      readFitsHeader(path, { maxBlocks: 1 }),
      /Cannot read FITS header of .+: no END card in the first 1 blocks/,
    );
    assert.equal(
      (await readFitsHeader(path, { maxBlocks: 2 })).get("LAST"),
      "after the first block",
    );
  });
});

Deno.test("a header of thousands of cards (ESO's HIERARCH) that the completeness check takes for whole names the night by its DATE-OBS", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "muse_raw.fits");
    const hierarch = Array.from(
      { length: 3700 },
      (_, i) => `HIERARCH ESO INS TEMP${i} VAL = ${i}`.padEnd(80),
    );
    const header = headerBytes([
      ...imageCards(4, 4),
      card("DATE-OBS", "2024-03-15T03:12:45"),
      ...hierarch,
    ]);
    assert.ok(header.length / BLOCK_BYTES > 100, "a header of more than 100 blocks");
    await Deno.writeFile(path, fitsFile(header, int16Data(4, 4, (x, y) => x + y)));
    assert.equal(readFitsStructure(path).kind, "complete");
    assert.equal((await readFitsHeader(path)).get("DATE-OBS"), "2024-03-15T03:12:45");
    const fallbacks: string[] = [];
    const planned = await planDestination(
      { night_date_source: "fits", night_rollover_hour: 12, night_timezone: "UTC" },
      { path, relPath: "muse_raw.fits", mtimeMs: Date.parse("2024-06-01T15:00:00Z") },
      new Date("2024-06-01T15:00:00Z"),
      (reason) => fallbacks.push(reason),
    );
    assert.deepEqual(fallbacks, []);
    assert.equal(planned, "20240314/muse_raw.fits");
  });
});

Deno.test("a header with no END in its blocks is said as not FITS, naming no setting", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "endless.fits");
    await Deno.writeFile(path, twoBlockImage());
    await assert.rejects(readFitsHeader(path, { maxBlocks: 1 }), (error: Error) => {
      assert.match(
        error.message,
        /no END card in the first 1 blocks \(36 cards\): not a FITS header$/,
      );
      return true;
    });
  });
});

Deno.test("readFitsHeader reports a missing file with its path", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "gone.fits");
    await assert.rejects(readFitsHeader(path), (error: Error) => {
      assert.ok(error.message.startsWith(`Cannot read FITS header of ${path}: `), error.message);
      assert.ok(error.cause instanceof Deno.errors.NotFound);
      return true;
    });
  });
});

Deno.test("readFitsHeader reads a 2 GiB sparse image by its header alone", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.fits");
    await Deno.writeFile(
      path,
      headerBytes([...imageCards(32768, 32768), card("DATE-OBS", "2024-06-01T23:59:59")]),
    );
    await Deno.truncate(path, BLOCK_BYTES + 2 ** 31);
    const header = await readFitsHeader(path);
    assert.equal(header.get("NAXIS1"), 32768);
    assert.deepEqual(observationDate(header), new Date("2024-06-01T23:59:59Z"));
  });
});

Deno.test("readFitsHeader never reads past the header block holding END", async () => {
  // The header, then a data part of 1 TiB (sparse: it takes no room): a reader
  // that went on past END, with no block limit to stop it, would take minutes.
  await withTempDir(async (dir) => {
    const path = join(dir, "huge.fits");
    const image = twoBlockImage();
    await Deno.writeFile(path, image.subarray(0, 2 * BLOCK_BYTES));
    await Deno.truncate(path, 2 ** 40);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const outcome = await Promise.race([
        readFitsHeader(path, { maxBlocks: Number.MAX_SAFE_INTEGER }),
        new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), 5000)),
      ]);
      assert.notEqual(outcome, "timeout");
      assert.equal((outcome as Map<string, FitsValue>).get("LAST"), "after the first block");
    } finally {
      clearTimeout(timer);
    }
  });
});

Deno.test("readFitsHeader refuses a FIFO at once instead of waiting for a writer", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "pipe.fits");
    const mkfifo = await new Deno.Command("mkfifo", { args: [path] }).output();
    assert.equal(mkfifo.code, 0);
    await assert.rejects(readFitsHeader(path), /pipe\.fits: not a regular file/);
  });
});

Deno.test("observationDate accepts the documented DATE-OBS forms", () => {
  const cases: [Record<string, FitsValue>, string | null][] = [
    [{ "DATE-OBS": "2024-03-15T03:12:45.123" }, "2024-03-15T03:12:45.123Z"],
    [{ "DATE-OBS": "2024-03-15T03:12:45" }, "2024-03-15T03:12:45.000Z"],
    [{ "DATE-OBS": "2024-03-15T03:12:45.5Z" }, "2024-03-15T03:12:45.500Z"],
    [{ "DATE-OBS": "2024-03-15" }, "2024-03-15T00:00:00.000Z"],
    [{ "DATE-OBS": "2024-03-15", "TIME-OBS": "03:12:45" }, "2024-03-15T03:12:45.000Z"],
    [{ "DATE-OBS": "2024-03-15", UT: "23:59:59.25" }, "2024-03-15T23:59:59.250Z"],
    [{ "DATE-OBS": "2024-03-15", UTC: "01:02:03" }, "2024-03-15T01:02:03.000Z"],
    [{ "DATE-OBS": "2024-03-15", UTC: 3723 }, "2024-03-15T00:00:00.000Z"],
    [{ "DATE-OBS": "2024-03-15T01:00:00", UT: "05:00:00" }, "2024-03-15T01:00:00.000Z"],
    [{ "DATE-OBS": "15/03/98", UT: "03:12:45" }, "1998-03-15T03:12:45.000Z"],
    [{ "DATE-OBS": "31/12/99" }, "1999-12-31T00:00:00.000Z"],
    [{ "DATE-OBS": "01/01/00" }, "1900-01-01T00:00:00.000Z"],
    [{ "DATE-OBS": "2024-02-29" }, "2024-02-29T00:00:00.000Z"],
    [{ "DATE-OBS": "2023-02-29" }, null],
    [{ "DATE-OBS": "2024-13-01" }, null],
    [{ "DATE-OBS": "32/01/98" }, null],
    [{ "DATE-OBS": "2024-03-15T24:00:00" }, null],
    // A leap second stays in its own day.
    [{ "DATE-OBS": "2016-12-31T23:59:60.5" }, "2016-12-31T23:59:59.999Z"],
    [{ "DATE-OBS": "2024-03-15T03:60:00" }, null],
    [{ "DATE-OBS": "yesterday" }, null],
    [{ "DATE-OBS": "" }, null],
    [{ "DATE-OBS": 20240315 }, null],
    [{ "DATE-OBS": null }, null],
    [{ OBJECT: "M 42" }, null],
  ];
  for (const [cards, expected] of cases) {
    const actual = observationDate(new Map(Object.entries(cards)));
    assert.equal(actual?.toISOString() ?? null, expected, JSON.stringify(cards));
  }
});

Deno.test("a DATE-OBS that names no instant is said as out of range, or as not in a known form", () => {
  for (const raw of ["2023-02-29", "2024-13-01", "32/01/98", "2024-03-15T24:00:00"]) {
    assert.equal(
      observationDateProblem(raw),
      `"${raw}" is not a real date (a day, month or time out of range)`,
    );
  }
  for (const raw of ["yesterday", "", "2024/03/15", 20240315]) {
    assert.match(
      observationDateProblem(raw),
      /^.* is not a date in a known form \(YYYY-MM-DDThh:mm:ss or DD\/MM\/YY\)$/,
    );
  }
});

Deno.test("a DATE-OBS with a space instead of the T (some camera software) is read; other forms are not", () => {
  const dateOf = (value: string) =>
    observationDate(parseFitsHeader(headerBytes([card("SIMPLE", true), card("DATE-OBS", value)])));
  assert.deepEqual(dateOf("2024-03-15 03:12:45"), new Date("2024-03-15T03:12:45Z"));
  assert.deepEqual(dateOf("2024-03-15 03:12:45.5"), new Date("2024-03-15T03:12:45.500Z"));
  // A final Z (UTC, as ISO 8601 writes it) is read as the same time.
  assert.deepEqual(dateOf("2024-03-15T03:12:45Z"), new Date("2024-03-15T03:12:45Z"));
  assert.equal(dateOf("2024-03-15  03:12:45"), null);
  assert.equal(dateOf("2024-03-15_03:12:45"), null);
});
