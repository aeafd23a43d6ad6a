/**
 * What the `local` transport says of copies lost to a destination folder removed during their
 * batch: the folder by its name, never the hidden temporary file, whichever thread copied them.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { systemError, TransferError } from "../../../src/errors.ts";
import { FolderFileSystem } from "../../../src/config/file_systems.ts";
import { toTransferError } from "../../../src/transfer/local/failures.ts";
import { makeLocalFolders, vanishedAsBaseGone } from "../../../src/transfer/local/folders.ts";
import { CopyVanished } from "../../../src/transfer/local/renamed.ts";
import type { TransferItem, TransferOutcome } from "../../../src/transfer/transport.ts";

const item = (destination: string): TransferItem => ({
  source: `/watch/${destination.split("/").at(-1)}`,
  destination,
  size: 1,
  mtimeMs: 0,
});

/** The outcome of a copy whose temporary file in `folder` was not found (the copier's words). */
function notFound(destination: string, folder: string): TransferOutcome {
  const temp = join(folder, ".x.fits.0-1.image-transfer-partial");
  const cause = systemError({
    name: "Error",
    message: `ENOENT: no such file or directory, open '${temp}'`,
    code: "ENOENT",
  });
  return { item: item(destination), error: toTransferError(item(destination), cause) };
}

Deno.test("local: a copy lost to a night folder removed during its batch names the folder, removed or made again since", async () => {
  const base = await Deno.makeTempDir({ prefix: "itx-unit-folders-" });
  try {
    const arrivedOn = new FolderFileSystem(base, null, "arrived");
    const night = join(base, "20240315");
    const made = new Map([[
      join(night, "flats"),
      await makeLocalFolders(base, "20240315/flats/a"),
    ]]);
    made.set(night, await makeLocalFolders(base, "20240315/b"));
    const vanished = new TransferError("Cannot send /watch/b: lost", "retry", {
      cause: new CopyVanished(join(night, ".b.image-transfer-partial")),
    });
    const outcomes = [
      notFound("20240315/flats/a", join(night, "flats")),
      { item: item("20240315/b"), error: vanished },
      { item: item("20240315/c"), error: null },
    ];
    await Deno.remove(night, { recursive: true });
    const said = await vanishedAsBaseGone(outcomes, base, arrivedOn, made);
    assert.equal(
      said[0].error?.message,
      `Cannot send /watch/a: the destination folder ${night} was removed while the batch was ` +
        "copied into it; the next attempt makes it again",
    );
    assert.equal(said[0].error?.kind, "retry");
    assert.match(said[1].error?.message ?? "", /the destination folder \S+ was removed while/);
    assert.equal(said[2].error, null);
    // Made again meanwhile (by another batch): said so.
    await Deno.mkdir(join(base, "made again"));
    await Deno.rename(join(base, "made again"), night);
    const again = await vanishedAsBaseGone(outcomes, base, arrivedOn, made);
    assert.match(
      again[1].error?.message ?? "",
      /20240315 was removed while the batch was copied into it \(and made again since\); the next attempt copies the file again$/,
    );
    // The same folder still there: a temporary file removed on its own is said as it was.
    made.set(night, await makeLocalFolders(base, "20240315/b"));
    assert.equal((await vanishedAsBaseGone(outcomes, base, arrivedOn, made))[1].error, vanished);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
