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
    // The same folder still there: the copy was removed on its own, said by its final name.
    made.set(night, await makeLocalFolders(base, "20240315/b"));
    const lost = await vanishedAsBaseGone(outcomes, base, arrivedOn, made);
    assert.equal(
      lost[1].error?.message,
      `Cannot send /watch/b: the copy being written to ${join(night, "b")} was removed by ` +
        "something else (not this daemon) before it was finished; the next attempt copies the " +
        "file again",
    );
    assert.equal(lost[1].error?.kind, "retry");
    // A part of a growing file (sent on its own, its copy kept between parts): said as that part.
    const [part] = await vanishedAsBaseGone([outcomes[1]], base, arrivedOn, made, true);
    assert.equal(
      part.error?.message,
      `Cannot send a part of /watch/b: the copy of the growing file's parts being written to ${
        join(night, "b")
      } was removed by something else (not this daemon) before it was finished; the next part, ` +
        "or the complete file, is copied from its start",
    );
    await Deno.remove(night, { recursive: true });
    await Deno.mkdir(night);
    const [partAgain] = await vanishedAsBaseGone([outcomes[1]], base, arrivedOn, made, true);
    assert.equal(
      partAgain.error?.message,
      `Cannot send a part of /watch/b: the destination folder ${night} was removed while this ` +
        "part of the growing file was copied into it (and made again since); the next part, or " +
        "the complete file, is copied from its start",
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("local: a copy whose temporary file was removed by someone else in a folder that stayed is said by its final name, never the hidden file's", async () => {
  const base = await Deno.makeTempDir({ prefix: "itx-unit-folders-" });
  try {
    const arrivedOn = new FolderFileSystem(base, null, "arrived");
    const night = join(base, "20240315");
    const made = new Map([[night, await makeLocalFolders(base, "20240315/a")]]);
    // The rename's own "not found" (removed after the last look at it), in Deno's and Node's words.
    const renameLost = (name: string, message: (temp: string) => string): TransferOutcome => {
      const temp = join(night, `.${name}.0-1.image-transfer-partial`);
      const cause = systemError({ name: "NotFound", message: message(temp), code: "ENOENT" });
      return { item: item(`20240315/${name}`), error: toTransferError(item(name), cause) };
    };
    const outcomes = [
      renameLost(
        "a",
        (t) => `No such file or directory (os error 2): rename '${t}' -> '${night}/a'`,
      ),
      renameLost("b", (t) => `ENOENT: no such file or directory, rename '${t}' -> '${night}/b'`),
      // A source gone is not a copy removed: said as it was.
      {
        item: item("20240315/c"),
        error: new TransferError("Cannot send /watch/c: source vanished before transfer", "retry", {
          cause: new Deno.errors.NotFound(
            "No such file or directory (os error 2): lstat '/watch/c'",
          ),
        }),
      },
    ];
    const said = await vanishedAsBaseGone(outcomes, base, arrivedOn, made);
    for (const [n, name] of ["a", "b"].entries()) {
      assert.equal(
        said[n].error?.message,
        `Cannot send /watch/${name}: the copy being written to ${join(night, name)} was removed ` +
          "by something else (not this daemon) before it was finished; the next attempt copies " +
          "the file again",
      );
      assert.equal(said[n].error?.kind, "retry");
    }
    assert.equal(said[2].error, outcomes[2].error);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
