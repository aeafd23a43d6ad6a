/**
 * The check after a rename into place (`transfer/local/renamed.ts`): a
 * temporary file that someone else replaced between the check before the
 * rename and the rename itself must not stay under the final name (seen on a
 * burst with such an intruder: their bytes arrived under a final name, the
 * file counted as sent). A copy that may replace nothing is linked into place: never over a
 * file that took its final name. Both forms: the copier thread's and the pool's.
 */
import assert from "node:assert/strict";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import {
  type FileIdentity,
  place,
  placeSync,
  renamedForeign,
  renamedForeignSync,
} from "../../../src/transfer/local/renamed.ts";
import { NameTaken } from "../../../src/transfer/keep_others.ts";
import { exists, randomBytes } from "../../helpers/files.ts";

const FORMS = {
  "copier thread": (temp: string, final: string, copy: FileIdentity) =>
    Promise.resolve(renamedForeignSync(temp, final, copy)),
  "thread pool": (temp: string, final: string, copy: FileIdentity) =>
    renamedForeign(temp, final, copy, (path) => lstat(path)),
};

/** A copy open under `temp` (a hostile name), and its identity. */
async function openCopy(temp: string): Promise<{ file: Deno.FsFile; copy: FileIdentity }> {
  const file = await Deno.open(temp, { createNew: true, write: true, read: true });
  await file.write(randomBytes(1000));
  const info = await file.stat();
  return { file, copy: { ino: info.ino!, dev: info.dev } };
}

for (const [form, check] of Object.entries(FORMS)) {
  Deno.test(`renamed (${form}): a temporary file replaced just before the rename goes back under its temporary name; the final name is left without it`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "itx-renamed- $(id) '" });
    try {
      const temp = join(dir, '.-frame "1".fits.x-1.image-transfer-partial');
      const final = join(dir, '-frame "1".fits');
      const { file, copy } = await openCopy(temp);
      file.close();
      // The intruder's file takes the temporary name after the check, before the rename.
      const theirs = new TextEncoder().encode("not the source");
      await Deno.writeFile(`${temp}.x`, theirs);
      await Deno.rename(`${temp}.x`, temp);
      await Deno.rename(temp, final);
      assert.equal(await check(temp, final, copy), true);
      assert.equal(await exists(final), false, "their file is not left under the final name");
      assert.deepEqual(await Deno.readFile(temp), theirs, "their file is back where they put it");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`renamed (${form}): the copy itself under the final name, or already moved on, passes`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "itx-renamed-" });
    try {
      const temp = join(dir, ".a.fits.x-1.image-transfer-partial");
      const final = join(dir, "a.fits");
      const { file, copy } = await openCopy(temp);
      file.close();
      await Deno.rename(temp, final);
      assert.equal(await check(temp, final, copy), false);
      assert.equal(await exists(final), true);
      assert.equal(await exists(temp), false);
      // An archiver that moves each delivered file on at once.
      await Deno.rename(final, join(dir, "archived.fits"));
      assert.equal(await check(temp, final, copy), false);
      assert.equal(await exists(temp), false);
      // A link under the final name is never the copy.
      await Deno.symlink(join(dir, "archived.fits"), final);
      assert.equal(await check(temp, final, copy), true);
      assert.equal(await exists(final), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const PLACES = {
  // Its throw as a rejection, as the other form's.
  "copier thread": (temp: string, final: string, copy: FileIdentity) =>
    Promise.resolve().then(() => placeSync(temp, final, copy, true)),
  "thread pool": (temp: string, final: string, copy: FileIdentity) =>
    place(temp, final, copy, true, (path) => lstat(path), (path) => Deno.remove(path)),
};

for (const [form, put] of Object.entries(PLACES)) {
  Deno.test(`place (${form}): a copy that may replace nothing is linked under a free final name, its temporary name removed; a taken name is left as it is, the copy removed`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "itx-place- $(id) '" });
    try {
      const temp = join(dir, '.-frame "1".fits.x-1.image-transfer-partial');
      const final = join(dir, '-frame "1".fits');
      const { file, copy } = await openCopy(temp);
      const bytes = await Deno.readFile(temp);
      file.close();
      assert.equal(await put(temp, final, copy), false);
      assert.deepEqual(await Deno.readFile(final), bytes);
      assert.equal((await Deno.stat(final)).nlink, 1);
      assert.equal(await exists(temp), false);
      // Another's file under the next copy's name.
      const next = await openCopy(temp);
      next.file.close();
      const theirs = new TextEncoder().encode("another daemon's");
      await Deno.writeFile(final, theirs);
      await assert.rejects(() => put(temp, final, next.copy), (error) => {
        assert.ok(error instanceof NameTaken);
        assert.equal(error.file, true);
        return true;
      });
      assert.deepEqual(await Deno.readFile(final), theirs, "their file is not replaced");
      assert.equal(await exists(temp), false, "the copy is removed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`place (${form}): a temporary file replaced just before it is linked is not left under the final name`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "itx-place-" });
    try {
      const temp = join(dir, ".a.fits.x-1.image-transfer-partial");
      const final = join(dir, "a.fits");
      const { file, copy } = await openCopy(temp);
      file.close();
      const theirs = new TextEncoder().encode("not the source");
      await Deno.writeFile(`${temp}.x`, theirs);
      await Deno.rename(`${temp}.x`, temp);
      assert.equal(await put(temp, final, copy), true);
      assert.equal(await exists(final), false, "their file is not left under the final name");
      assert.deepEqual(await Deno.readFile(temp), theirs, "their file is where they put it");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
