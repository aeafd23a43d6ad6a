import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import {
  besideEarlier,
  freeDestination,
  planDestination,
  type PlannedFile,
} from "../../../src/layout/destination.ts";
import { gzipSync } from "node:zlib";
import {
  ASTROPY_FITS_DATA,
  card,
  fitsFile,
  headerBytes,
  imageCards,
  int16Data,
} from "../../helpers/fits.ts";
import { withTempDir } from "../../helpers/files.ts";

type NightRule = Pick<JobConfig, "night_date_source" | "night_rollover_hour" | "night_timezone">;

const MTIME_MS = Date.parse("2024-05-20T15:00:00Z"); // afternoon of May 20 in UTC
const NOW = new Date("2024-06-02T01:00:00Z");

function rule(source: NightRule["night_date_source"], rolloverHour = 0, timeZone = "UTC") {
  return {
    night_date_source: source,
    night_rollover_hour: rolloverHour,
    night_timezone: timeZone,
  } satisfies NightRule;
}

/** Run `body` with a fresh temp dir, removed afterwards. */

/** Write a small FITS image with the given extra cards under `dir`. */
async function writeImage(dir: string, name: string, cards: string[]): Promise<PlannedFile> {
  const path = join(dir, name);
  await Deno.writeFile(
    path,
    fitsFile(headerBytes([...imageCards(4, 4), ...cards]), int16Data(4, 4, (x) => x)),
  );
  return { path, relPath: name, mtimeMs: MTIME_MS };
}

Deno.test("mtime: night folder, then the subfolders, then the name", async () => {
  const file = { path: "/data/cam/flats/r/f1.fits", relPath: "flats/r/f1.fits", mtimeMs: MTIME_MS };
  assert.equal(await planDestination(rule("mtime"), file, NOW), "20240520/flats/r/f1.fits");
  assert.equal(await planDestination(rule("mtime", 16), file, NOW), "20240519/flats/r/f1.fits");
  assert.equal(
    await planDestination(rule("mtime", 0, "Asia/Tokyo"), { ...file, relPath: "f1.fits" }, NOW),
    "20240521/f1.fits",
  );
});

Deno.test("hostile names are kept byte for byte", async () => {
  const names = [
    "dir with spaces/M 42 (final) 'best'.fits",
    "-rf/--leading-dash.fits",
    "caf\u00e9/NFC-\u00e9.fits",
    "cafe\u0301/NFD-e\u0301.fits",
    "$(touch x)/`id`;*.fits",
    "line\nbreak/tab\t.fits",
    "\u6f22\u5b57/\u{1f52d} telescope.fits",
  ];
  const encoder = new TextEncoder();
  for (const relPath of names) {
    const file = { path: `/watch/${relPath}`, relPath, mtimeMs: MTIME_MS };
    const planned = await planDestination(rule("mtime"), file, NOW);
    assert.deepEqual(encoder.encode(planned), encoder.encode(`20240520/${relPath}`), relPath);
  }
});

Deno.test("now: the date comes from the now argument, not the file", async () => {
  const file = { path: "/watch/a/b.fits", relPath: "a/b.fits", mtimeMs: MTIME_MS };
  assert.equal(await planDestination(rule("now"), file, NOW), "20240602/a/b.fits");
  assert.equal(await planDestination(rule("now", 12), file, NOW), "20240601/a/b.fits");
  assert.equal(
    await planDestination(rule("now", 0, "America/Santiago"), file, NOW),
    "20240601/a/b.fits",
  );
});

Deno.test("fits: the date comes from DATE-OBS with the night rule applied", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "science"));
    const file = await writeImage(dir, "science/M 42.fits", [
      card("DATE-OBS", "2024-03-15T03:12:45"),
    ]);
    file.relPath = "science/M 42.fits";
    const reasons: string[] = [];
    const collect = (reason: string) => reasons.push(reason);
    assert.equal(
      await planDestination(rule("fits"), file, NOW, collect),
      "20240315/science/M 42.fits",
    );
    // 00:12 in Santiago (-03): with rollover 12 it is the night of Mar 14.
    assert.equal(
      await planDestination(rule("fits", 12, "America/Santiago"), file, NOW, collect),
      "20240314/science/M 42.fits",
    );
    assert.deepEqual(reasons, []);
  });
});

Deno.test("fits: the old dd/mm/yy form with a UT card", async () => {
  await withTempDir(async (dir) => {
    const file = await writeImage(dir, "old.fits", [
      card("DATE-OBS", "15/03/98"),
      card("UT", "23:30:00"),
    ]);
    assert.equal(await planDestination(rule("fits"), file, NOW), "19980315/old.fits");
    assert.equal(
      await planDestination(rule("fits", 0, "Asia/Tokyo"), file, NOW),
      "19980316/old.fits",
    );
  });
});

Deno.test("fits: DATE-OBS of the first extension when the primary HDU only opens the file (.fz, several extensions), and of a .fits.gz", async () => {
  await withTempDir(async (dir) => {
    // As fpack writes it: an empty primary HDU, the image and its cards in a BINTABLE extension.
    const primary = headerBytes([
      card("SIMPLE", true),
      card("BITPIX", 8),
      card("NAXIS", 0),
      card("EXTEND", true),
    ]);
    const extension = headerBytes([
      card("XTENSION", "BINTABLE"),
      card("BITPIX", 8),
      card("NAXIS", 2),
      card("NAXIS1", 8),
      card("NAXIS2", 0),
      card("PCOUNT", 0),
      card("GCOUNT", 1),
      card("TFIELDS", 0),
      card("ZIMAGE", true),
      card("DATE-OBS", "2024-03-15T02:45:00"),
    ]);
    const packed = join(dir, "m42.fits.fz");
    await Deno.writeFile(packed, fitsFile(primary, extension));
    const fz = { path: packed, relPath: "m42.fits.fz", mtimeMs: MTIME_MS };
    // 02:45 UTC is before a noon rollover: the night of March 14.
    assert.equal(await planDestination(rule("fits", 12), fz, NOW), "20240314/m42.fits.fz");

    // The same image gzip-compressed, its DATE-OBS in the primary header: read through gunzip.
    const image = fitsFile(
      headerBytes([...imageCards(4, 4), card("DATE-OBS", "2024-03-15T02:45:00")]),
      int16Data(4, 4, (x) => x),
    );
    await Deno.writeFile(join(dir, "plain.fits.gz"), gzipSync(image));
    const gz = { path: join(dir, "plain.fits.gz"), relPath: "plain.fits.gz", mtimeMs: MTIME_MS };
    const reasons: string[] = [];
    assert.equal(
      await planDestination(rule("fits", 12), gz, NOW, (r) => reasons.push(r)),
      "20240314/plain.fits.gz",
    );
    assert.deepEqual(reasons, []);

    // Neither header has one: said once, naming both.
    await Deno.writeFile(packed, fitsFile(primary, headerBytes([card("XTENSION", "IMAGE")])));
    const none: string[] = [];
    assert.equal(
      await planDestination(rule("fits"), fz, NOW, (r) => none.push(r)),
      "20240520/m42.fits.fz",
    );
    assert.match(none[0], /neither the primary header nor the first extension's has a DATE-OBS/);

    // Real files of other instruments: Hubble's and Chandra's keep DATE-OBS in extension 1.
    const real: [string, string][] = [
      ["o4sp040b0_raw.fits", "19980420"],
      ["chandra_time.fits", "20160126"],
    ];
    for (const [name, night] of real) {
      const file = { path: join(ASTROPY_FITS_DATA, name), relPath: name, mtimeMs: MTIME_MS };
      const why: string[] = [];
      assert.equal(
        await planDestination(rule("fits"), file, NOW, (r) => why.push(r)),
        `${night}/${name}`,
        why.join("; "),
      );
    }
  });
});

Deno.test("fits: falls back to mtime and says why", async () => {
  await withTempDir(async (dir) => {
    const noDate = await writeImage(dir, "no date.fits", [card("OBJECT", "M 42")]);
    const badDate = await writeImage(dir, "bad date.fits", [card("DATE-OBS", "yesterday")]);
    // A name with a bidirectional override is quoted and escaped in the reason, not raw.
    const bidi = await writeImage(dir, "bidi \u202estif.fits", [card("DATE-OBS", "soon")]);
    const text = join(dir, "log.txt");
    await Deno.writeTextFile(text, "not an image\n");
    const cases: [PlannedFile, RegExp][] = [
      [noDate, /^Cannot use DATE-OBS of .+no date\.fits: the primary header has no DATE-OBS/],
      [badDate, /^Cannot use DATE-OBS of .+bad date\.fits: "yesterday" is not a date/],
      [bidi, /^Cannot use DATE-OBS of ".+\/bidi \\u202estif\.fits": "soon" is not a date/],
      [
        { path: text, relPath: "log.txt", mtimeMs: MTIME_MS },
        /^Cannot read FITS header of .+log\.txt: not a FITS file/,
      ],
      [
        { path: join(dir, "vanished.fits"), relPath: "vanished.fits", mtimeMs: MTIME_MS },
        /^Cannot read FITS header of .+vanished\.fits: /,
      ],
    ];
    const fifo = join(dir, "pipe.fits");
    assert.equal((await new Deno.Command("mkfifo", { args: [fifo] }).output()).code, 0);
    cases.push([
      { path: fifo, relPath: "pipe.fits", mtimeMs: MTIME_MS },
      /^Cannot read FITS header of .+pipe\.fits: not a regular file/,
    ]);
    for (const [file, expected] of cases) {
      const reasons: string[] = [];
      const planned = await planDestination(rule("fits"), file, NOW, (r) => reasons.push(r));
      assert.equal(planned, `20240520/${file.relPath}`);
      assert.equal(reasons.length, 1, file.relPath);
      assert.match(reasons[0], expected);
      assert.match(reasons[0], /; using the file mtime instead$/);
    }
    // Without a callback the fallback is silent.
    assert.equal(await planDestination(rule("fits"), noDate, NOW), "20240520/no date.fits");
  });
});

Deno.test("a relative path that leaves the watch folder is refused", async () => {
  for (
    const relPath of ["", "/etc/passwd", "../x.fits", "a/../../x.fits", "a//b.fits", "./a.fits"]
  ) {
    await assert.rejects(
      planDestination(rule("mtime"), { path: "/watch/x", relPath, mtimeMs: MTIME_MS }, NOW),
      /^Error: Cannot plan destination of \/watch\/x: relative path .* must name a file inside/,
      JSON.stringify(relPath),
    );
  }
});

Deno.test("a night named by a date more than a day ahead of the clock is said, with the folder", async () => {
  await withTempDir(async (dir) => {
    const ahead: Array<[string, string]> = [];
    const collect = (folder: string, message: string) => ahead.push([folder, message]);
    const future = await writeImage(dir, "future.fits", [card("DATE-OBS", "2025-06-01T03:00:00")]);
    assert.equal(
      await planDestination(rule("fits"), future, NOW, undefined, collect),
      "20250601/future.fits",
    );
    assert.equal(ahead.length, 1);
    assert.equal(ahead[0][0], "20250601");
    assert.match(
      ahead[0][1],
      /^The DATE-OBS of .*future\.fits \(2025-06-01T03:00:00\.000Z\) is \d+ day\(s\) ahead of this machine's clock, so the night rule gives it night folder 20250601\. Check the clock/,
    );
    // Within a day of the clock (a night in progress), and in the past: nothing to say.
    const tonight = await writeImage(dir, "tonight.fits", [
      card("DATE-OBS", new Date(NOW.getTime() + 6 * 3600_000).toISOString().slice(0, 19)),
    ]);
    await planDestination(rule("fits"), tonight, NOW, undefined, collect);
    const old = await writeImage(dir, "old.fits", [card("DATE-OBS", "2020-01-01T00:00:00")]);
    await planDestination(rule("fits"), old, NOW, undefined, collect);
    assert.equal(ahead.length, 1);
    // An mtime ahead of the clock (no DATE-OBS to use) is said as the mtime.
    const noDate = { ...old, mtimeMs: NOW.getTime() + 3 * 24 * 3600_000 };
    await planDestination(rule("mtime"), noDate, NOW, undefined, collect);
    assert.match(ahead[1][1], /^The mtime of .* is 3 day\(s\) ahead/);
  });
});

Deno.test("fits: a DATE-OBS a fraction of a second before the rollover hour stays in the night before", async () => {
  await withTempDir(async (dir) => {
    const file = await writeImage(dir, "last.fits", [card("DATE-OBS", "2024-03-15T11:59:59.9999")]);
    assert.equal(await planDestination(rule("fits", 12, "UTC"), file, NOW), "20240314/last.fits");
    const next = await writeImage(dir, "next.fits", [card("DATE-OBS", "2024-03-15T12:00:00.000")]);
    assert.equal(await planDestination(rule("fits", 12, "UTC"), next, NOW), "20240315/next.fits");
  });
});

Deno.test("besideEarlier: the next number before the extensions, only where the earlier file is", () => {
  assert.equal(besideEarlier("20240315/flat.fits", "20240315/flat.fits"), "20240315/flat~2.fits");
  assert.equal(besideEarlier("20240315/flat.fits", "20240315/flat~2.fits"), "20240315/flat~3.fits");
  assert.equal(
    besideEarlier("20240315/d/m.fits.fz", "20240315/d/m.fits.fz"),
    "20240315/d/m~2.fits.fz",
  );
  assert.equal(besideEarlier("20240315/notes", "20240315/notes"), "20240315/notes~2");
  // A version not arrived yet keeps the numbered name it was given (or the plain one).
  assert.equal(besideEarlier("20240315/f.fits", "20240315/f~2.fits", false), "20240315/f~2.fits");
  assert.equal(besideEarlier("20240315/f.fits", "20240315/f.fits", false), "20240315/f.fits");
  assert.equal(besideEarlier("20240315/f.fits", "20240314/f~2.fits", false), "20240315/f.fits");
  // The earlier file went to another night folder, or is another name: nothing in the way.
  assert.equal(besideEarlier("20240315/flat.fits", "20240314/flat.fits"), "20240315/flat.fits");
  assert.equal(besideEarlier("20240315/flat.fits", "20240315/flat.fits~2"), "20240315/flat.fits");
});

Deno.test("besideEarlier: a numbered name too long for a file system is shortened, and still found again", () => {
  const stem = "é".repeat(125); // 250 bytes
  const planned = `20240315/${stem}.fits`;
  const second = besideEarlier(planned, planned);
  const name = second.slice("20240315/".length);
  assert.ok(new TextEncoder().encode(name).length <= 255, name);
  assert.match(name, /^é+~2\.fits$/);
  const third = besideEarlier(planned, second);
  assert.match(third, /^20240315\/é+~3\.fits$/);
  assert.ok(new TextEncoder().encode(third).length <= 255 + "20240315/".length);
});

Deno.test("freeDestination: never onto another source's copy, whichever came first", () => {
  /** The ledger of these sources (relative path: latest destination). */
  const ledger = (rows: Record<string, string>) => (prefix: string) =>
    Object.entries(rows).filter(([rel]) => rel.startsWith(prefix))
      .map(([relPath, destination]) => ({ relPath, destination }));
  // d.tif sent twice (the second copy beside the first), then a source named d~2.tif: it goes on
  // along its own numbers, so its copies stay one run the ledger's latest tells.
  let rows = ledger({ "sub/d.tif": "N/sub/d~2.tif" });
  assert.equal(freeDestination("N/sub/d~2.tif", "sub/d~2.tif", rows), "N/sub/d~2~2.tif");
  // Three copies of d.tif: d.tif, d~2 and d~3 are all held.
  rows = ledger({ "sub/d.tif": "N/sub/d~3.tif" });
  assert.equal(freeDestination("N/sub/d~2.tif", "sub/d~2.tif", rows), "N/sub/d~2~2.tif");
  // In another night folder the numbers say nothing of this one.
  rows = ledger({ "sub/d.tif": "M/sub/d~3.tif" });
  assert.equal(freeDestination("N/sub/d~2.tif", "sub/d~2.tif", rows), "N/sub/d~2.tif");
  // e~2.tif sent first, then a new e.tif is given e~2: it goes on to e~3.
  rows = ledger({ "e~2.tif": "N/e~2.tif", "e.tif": "N/e.tif" });
  assert.equal(freeDestination("N/e~2.tif", "e.tif", rows), "N/e~3.tif");
  // A source's own latest copy is its own: a new version of it (given that place) replaces it.
  rows = ledger({ "e~2.tif": "N/e~2.tif" });
  assert.equal(freeDestination("N/e~2.tif", "e~2.tif", rows), "N/e~2.tif");
  // d~2.tif took d~3; a third d.tif, given d~3 by its numbers, goes on to d~4.
  rows = ledger({ "d.tif": "N/d~2.tif", "d~2.tif": "N/d~3.tif" });
  assert.equal(freeDestination("N/d~3.tif", "d.tif", rows), "N/d~4.tif");
  // A source numbered beside itself (d~2~2.tif) holds its copies against d~2~2.tif's source.
  rows = ledger({ "d~2.tif": "N/d~2~3.tif", "d.tif": "N/d~3.tif" });
  assert.equal(freeDestination("N/d~2~2.tif", "d~2~2.tif", rows), "N/d~2~2~2.tif");
  // A source whose copies went along its own numbers holds them all (the ledger keeps the last).
  rows = ledger({ "x.fz": "N/x~2.fz", "x~2.fz": "N/x~2~3.fz" });
  assert.equal(freeDestination("N/x~2~4.fz", "x~2.fz", rows), "N/x~2~4.fz");
  assert.equal(freeDestination("N/x~3.fz", "x.fz", rows), "N/x~3.fz");
  rows = ledger({ "x.fz": "N/x~2.fz", "x~2.fz": "N/x~2~3.fz", "x~2~2.fz": "N/x~2~2~2.fz" });
  assert.equal(freeDestination("N/x~2~2.fz", "x~2~2.fz", rows), "N/x~2~2~3.fz");
  rows = ledger({ "d.tif": "N/d~3.tif", "d~2.tif": "N/d~2.tif" });
  assert.equal(freeDestination("N/d~2~2.tif", "d~2~2.tif", rows), "N/d~2~2.tif");
  // Names shortened to fit 255 bytes: two sources whose numbered names meet.
  const long = "A".repeat(250);
  const x = `${long}X.dat`;
  const shortened = besideEarlier(`N/${x}`, `N/${x}`);
  rows = ledger({ [x]: shortened, [`${long}Y.dat`]: `N/${long}Y.dat` });
  const y = freeDestination(shortened, `${long}Y.dat`, rows);
  assert.notEqual(y, shortened);
  assert.ok(new TextEncoder().encode(y.slice(2)).length <= 255, y);
  // Numbers start at 2: a source named d~1.tif keeps its name beside d.tif.
  rows = ledger({ "d.tif": "N/d.tif" });
  assert.equal(freeDestination("N/d~1.tif", "d~1.tif", rows), "N/d~1.tif");
  // Nothing in the way: the destination as planned.
  assert.equal(freeDestination("N/f.fits", "f.fits", ledger({})), "N/f.fits");
});

Deno.test("besideEarlier: extensions too long for a numbered name take the number after them", () => {
  const name = `x${".abcdefgh".repeat(28)}.a`;
  const second = besideEarlier(`N/${name}`, `N/${name}`);
  assert.ok(new TextEncoder().encode(second.slice(2)).length <= 255, second);
  assert.match(second, /~2$/);
  assert.equal(besideEarlier(`N/${name}`, second), second.replace(/~2$/, "~3"));
});
