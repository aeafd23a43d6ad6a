/**
 * Where a file under a name sent before goes (`layout/sent_before.ts`), with real files: their
 * birth times and FITS headers decide.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type NameRow,
  observationOf,
  ownCopy,
  placeBeside,
} from "../../../src/layout/sent_before.ts";
import { card, fitsFile, headerBytes, imageCards, int16Data } from "../../helpers/fits.ts";

const NIGHT_RULE = { night_rollover_hour: 12, night_timezone: "UTC" };
const KEEP = { after_transfer: "keep" as const, ...NIGHT_RULE };
const DELETE = { after_transfer: "delete" as const, ...NIGHT_RULE };

/** A row whose copy of the version `size` / `mtimeMs` arrived at `destination`, now (`state`). */
function sent(destination: string, state = "done", size = 100, mtimeMs = 0): NameRow {
  const at = Date.now() + 60_000; // After every file made here: none is made after it arrived.
  return { state, destination, transferredAt: at, createdAt: at, size, mtimeMs };
}

function image(dateObs: string): Uint8Array {
  return fitsFile(
    headerBytes([...imageCards(4, 4), card("DATE-OBS", dateObs)]),
    int16Data(4, 4, () => 1),
  );
}

Deno.test("placeBeside: the file sent goes over its own copy in any night; a file never sent where its name leads", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sent-before-" });
  try {
    const path = join(dir, "f.fits");
    await Deno.writeFile(path, new Uint8Array(100));
    const copy = "20240701/f.fits";
    assert.equal(placeBeside(KEEP, "20240702/f.fits", sent(copy), path), copy);
    assert.equal(ownCopy(KEEP, sent(copy), path), copy);
    // A numbered copy is its own too.
    assert.equal(
      placeBeside(KEEP, "20240702/f.fits", sent("20240701/f~2.fits"), path),
      "20240701/f~2.fits",
    );
    // Planned before, never arrived: where its name leads now.
    const planned = { ...sent(copy, "pending"), transferredAt: null };
    assert.equal(placeBeside(KEEP, "20240702/f.fits", planned, path), "20240702/f.fits");
    assert.equal(placeBeside(DELETE, "20240702/f.fits", planned, path), "20240702/f.fits");
    // delete: sent again on request, over its copy; changed before its clean-up, beside it there.
    assert.equal(placeBeside(DELETE, "20240702/f.fits", sent(copy, "pending"), path), copy);
    assert.equal(placeBeside(DELETE, "20240702/f.fits", sent(copy), path), "20240701/f~2.fits");
    // A file made after its copy arrived is new: where its name leads, or beside in one night.
    const before = { ...sent(copy), transferredAt: 0, createdAt: 0 };
    assert.equal(ownCopy(KEEP, before, path), null);
    assert.equal(placeBeside(KEEP, "20240702/f.fits", before, path), "20240702/f.fits");
    assert.equal(placeBeside(KEEP, "20240701/f.fits", before, path), "20240701/f~2.fits");
    assert.equal(placeBeside(DELETE, "20240702/f.fits", before, path), "20240702/f.fits");
    // Incomplete (sent as it is after its grace): never over a copy that arrived, beside it.
    assert.equal(
      placeBeside(KEEP, "20240702/f.fits", sent(copy), path, null, true),
      "20240701/f~2.fits",
    );
    assert.equal(
      placeBeside(DELETE, "20240702/f.fits", sent(copy, "pending"), path, null, true),
      "20240701/f~2.fits",
    );
    assert.equal(
      placeBeside(KEEP, "20240702/f.fits", planned, path, null, true),
      "20240702/f.fits",
    );
    // Told to be a new observation: as a new file.
    assert.equal(placeBeside(KEEP, "20240702/f.fits", sent(copy), path, "new"), "20240702/f.fits");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("observationOf: a changed FITS file's DATE-OBS tells a new observation from the copy's saved again, only where the rule names another night than its copy's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-sent-before-" });
  try {
    const path = join(dir, "sky.fits");
    const sentAt = Date.parse("2024-07-01T22:00:00Z");
    const copy = "20240701/sky.fits";
    const ask = async (bytes: Uint8Array, planned = "20240702/sky.fits", row = sent(copy)) => {
      await Deno.writeFile(path, bytes);
      const file = { path, size: bytes.length, mtimeMs: Date.parse("2024-07-02T22:00:00Z") };
      return await observationOf(KEEP, file, planned, { ...row, mtimeMs: sentAt });
    };
    // The file here is not made after its copy arrived: it would go over its copy.
    assert.equal(await ask(image("2024-07-02T21:55:00")), "new", "the next night's image");
    assert.equal(await ask(image("2024-07-01T21:55:00")), null, "its header fixed");
    assert.equal(await ask(image("2024-07-02T08:00:00")), null, "begun in its copy's night");
    assert.equal(await ask(new Uint8Array(5760)), null, "not FITS");
    assert.equal(await ask(image("2024-07-02T21:55:00"), copy), null, "the rule names its night");
    const pending = sent(copy, "pending", 0, 0);
    assert.equal(await ask(image("2024-07-02T21:55:00"), undefined, pending), "new");
    // Made after its copy arrived (saved as a new file, renamed over the name): a new file, unless
    // its header says it is the copy's observation.
    const before = { ...sent(copy), transferredAt: 0, createdAt: 0 };
    assert.equal(await ask(image("2024-07-01T21:55:00"), undefined, before), "same");
    assert.equal(await ask(image("2024-07-02T21:55:00"), undefined, before), null);
    assert.equal(await ask(new Uint8Array(5760), undefined, before), null);
    assert.equal(
      placeBeside(KEEP, "20240702/sky.fits", before, path, "same"),
      "20240701/sky~2.fits",
    );
    assert.equal(
      placeBeside(DELETE, "20240702/sky.fits", before, path, "same"),
      "20240701/sky~2.fits",
    );
    // Unchanged since the version recorded (sent again on request): nothing is read.
    const bytes = image("2024-07-02T21:55:00");
    await Deno.writeFile(path, bytes);
    const unchanged = { path, size: bytes.length, mtimeMs: sentAt };
    const row = { ...sent(copy), size: bytes.length, mtimeMs: sentAt };
    assert.equal(await observationOf(KEEP, unchanged, "20240702/sky.fits", row), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
