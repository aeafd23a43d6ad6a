/**
 * Walking a watch folder: nested trees, skipped folders, symbolic links,
 * unreadable folders, and relative paths.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { type FoundFile, scanFolder } from "../../../src/watch/scan.ts";
import { relativeTo } from "../../../src/layout/watch_folder_paths.ts";
import { tempNameFor } from "../../../src/transfer/temp_name.ts";
import { removeDeepTree, treePastPathMax } from "../../helpers/files.ts";

async function write(root: string, rel: string): Promise<void> {
  const path = join(root, ...rel.split("/"));
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, rel);
}

async function scan(
  root: string,
  filter: ReturnType<typeof createFileFilter>,
  options: Parameters<typeof scanFolder>[2] = {},
): Promise<FoundFile[]> {
  const out = await Array.fromAsync(scanFolder(root, filter, options));
  return out.sort((a, b) => a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0);
}

Deno.test("scanFolder: finds matching files in a nested tree with absolute and relative paths", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  try {
    const wanted = [
      "a.fits",
      "night/b.fits",
      "night/flats/c.fits",
      "night/flats/deep/er/d.fits",
      "other night/$(x) -e.fits",
      "other night/a\nb.fits",
      "back\\slash/e.fits",
    ];
    for (const rel of wanted) await write(root, rel);
    for (const rel of ["a.txt", "night/notes.md", "night/flats/c.fit"]) await write(root, rel);
    await Deno.mkdir(join(root, "empty", "deeper"), { recursive: true });

    const found = await scan(
      root,
      createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] }),
    );
    assert.deepEqual(found.map((f) => f.relPath), [...wanted].sort());
    for (const f of found) {
      assert.equal(f.path, join(root, ...f.relPath.split("/")));
      assert.equal(await Deno.readTextFile(f.path), f.relPath, "path points at the file");
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanFolder: skips hidden and excluded folders without entering them", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  try {
    await write(root, "keep/a.fits");
    await write(root, ".hidden/a.fits");
    await write(root, "keep/.cache/a.fits");
    await write(root, "calib/a.fits");
    await write(root, "keep/calib/deep/a.fits");
    await write(root, "keep/.a.fits");
    await write(root, `keep/${tempNameFor("b.fits")}`);
    // Every name the scan looks at passes through the filter: record them.
    const errors: string[] = [];
    const filter = createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: ["calib"] });
    const seen: string[] = [];
    const spy = {
      ...filter,
      nameSkip: (rel: string, parentIncluded?: boolean) => (
        seen.push(rel), filter.nameSkip(rel, parentIncluded)
      ),
      dirSkip: (rel: string) => (seen.push(rel), filter.dirSkip(rel)),
    };
    const found = await scan(root, spy, { onError: (path) => errors.push(path) });
    assert.deepEqual(found.map((f) => f.relPath), ["keep/a.fits"]);
    const inside = seen.filter((rel) => /(^|\/)(\.hidden|\.cache|calib)\//.test(rel));
    assert.deepEqual(inside, [], "hidden and excluded folders are not entered");
    assert.ok(seen.includes("calib") && seen.includes("keep/calib") && seen.includes(".hidden"));
    assert.deepEqual(errors, []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanFolder: does not follow symbolic links to folders (no loop on a cycle)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  const outside = await Deno.makeTempDir({ prefix: "itx-scan-outside-" });
  try {
    await write(root, "night/a.fits");
    await write(outside, "far.fits");
    await Deno.symlink(root, join(root, "night", "loop"));
    await Deno.symlink(join(root, "night"), join(root, "night", "parent.fits"));
    await Deno.symlink(outside, join(root, "outside"));
    const errors: string[] = [];
    const found = await scan(
      root,
      createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] }),
      { onError: (path) => errors.push(path) },
    );
    const rels = found.map((f) => f.relPath);
    assert.ok(rels.includes("night/a.fits"));
    assert.ok(!rels.some((r) => r.startsWith("night/loop/")), `followed the loop: ${rels}`);
    assert.ok(!rels.some((r) => r.startsWith("outside/")), `followed a folder link: ${rels}`);
    assert.ok(rels.length <= 2, `unexpected entries: ${rels}`);
    assert.deepEqual(errors, []);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("scanFolder: an unreadable start folder is reported through onError and skipped", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  try {
    await write(root, "a.fits");
    await Deno.writeTextFile(join(root, "not a folder"), "x");
    const filter = createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] });

    const errors: Array<[string, unknown]> = [];
    const onError = (path: string, error: unknown) => errors.push([path, error]);
    // A start folder that is a regular file.
    assert.deepEqual(await scan(root, filter, { startRel: "not a folder", onError }), []);
    // A start folder that does not exist (it vanished).
    assert.deepEqual(await scan(root, filter, { startRel: "gone", onError }), []);
    // A root that does not exist.
    assert.deepEqual(await scan(join(root, "missing root"), filter, { onError }), []);

    assert.equal(errors.length, 3);
    assert.equal(errors[0][0], join(root, "not a folder"));
    assert.ok(errors[0][1] instanceof Error);
    assert.equal(errors[1][0], join(root, "gone"));
    assert.ok(errors[1][1] instanceof Deno.errors.NotFound);
    assert.equal(errors[2][0], join(root, "missing root"));
    // Without onError, the scan still finishes quietly.
    assert.deepEqual(await scan(root, filter, { startRel: "gone" }), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanFolder: a folder that vanishes mid-scan is reported and the rest still found", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  try {
    for (const d of ["a", "b", "c"]) await write(root, `${d}/x.fits`);
    const filter = createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] });
    // Remove folder "b" the moment the scan decides to enter it.
    const sabotage = {
      ...filter,
      dirSkip: (rel: string) => {
        if (rel === "b") Deno.removeSync(join(root, "b"), { recursive: true });
        return filter.dirSkip(rel);
      },
    };
    const errors: string[] = [];
    const found = await scan(root, sabotage, { onError: (path) => errors.push(path) });
    assert.deepEqual(found.map((f) => f.relPath), ["a/x.fits", "c/x.fits"]);
    assert.deepEqual(errors, [join(root, "b")]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanFolder: startRel limits the scan to one subfolder", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-" });
  try {
    for (const rel of ["a.fits", "n/b.fits", "n/m/c.fits", "o/d.fits"]) await write(root, rel);
    const filter = createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] });
    const found = await scan(root, filter, { startRel: "n" });
    assert.deepEqual(found.map((f) => f.relPath), ["n/b.fits", "n/m/c.fits"]);
    assert.equal(found[1].path, join(root, "n", "m", "c.fits"));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("relativeTo: paths inside, at and outside the root", () => {
  assert.equal(relativeTo("/data/watch", "/data/watch/a.fits"), "a.fits");
  assert.equal(relativeTo("/data/watch", "/data/watch/n/m/a b.fits"), "n/m/a b.fits");
  assert.equal(relativeTo("/data/watch/", "/data/watch/a.fits"), "a.fits");
  assert.equal(relativeTo("/data/watch///", "/data/watch/n/a.fits"), "n/a.fits");
  assert.equal(relativeTo("/data/watch", "/data/watch"), "");
  assert.equal(relativeTo("/data/watch/", "/data/watch"), "");
  assert.equal(relativeTo("/", "/a/b.fits"), "a/b.fits");
  // Outside, including a sibling that shares the prefix.
  assert.equal(relativeTo("/data/watch", "/data/watch2/a.fits"), null);
  assert.equal(relativeTo("/data/watch", "/data/watc"), null);
  assert.equal(relativeTo("/data/watch", "/data/a.fits"), null);
  assert.equal(relativeTo("/data/watch", "/other/watch/a.fits"), null);
  // Spellings of the same folder: "//" and "." segments, as a config may hold them.
  assert.equal(relativeTo("/data//watch", "/data/watch/n/a.fits"), "n/a.fits");
  assert.equal(relativeTo("/data/./watch/", "/data/watch/a.fits"), "a.fits");
  assert.equal(relativeTo("/data/watch", "/data//watch//n/./a.fits"), "n/a.fits");
  assert.equal(relativeTo("/data/x/../watch", "/data/watch/a.fits"), "a.fits");
  assert.equal(relativeTo("/data/watch", "/data/watch/../a.fits"), null);
  // Hostile names stay byte for byte.
  assert.equal(relativeTo("/w", "/w/$(x)/-a\nb.fits"), "$(x)/-a\nb.fits");
  assert.equal(relativeTo("/w", "/w/cafe\u0301.fits"), "cafe\u0301.fits");
  assert.equal(relativeTo("/w", "/w/.../..a.fits"), ".../..a.fits");
});

Deno.test("relativeTo: a backslash is part of the name except on Windows", () => {
  if (Deno.build.os === "windows") {
    assert.equal(relativeTo("C:\\data\\watch", "C:\\data\\watch\\n\\a.fits"), "n/a.fits");
    assert.equal(relativeTo("C:\\data\\watch\\", "C:\\data\\watch\\a.fits"), "a.fits");
  } else {
    assert.equal(relativeTo("/w", "/w/a\\b.fits"), "a\\b.fits");
    assert.equal(relativeTo("/w/x\\y", "/w/x\\y/a.fits"), "a.fits");
    assert.equal(relativeTo("/w/x\\y", "/w/x/y/a.fits"), null);
  }
});

Deno.test("scanFolder: a folder whose path is past PATH_MAX is said once, as too long for the system (not as permissions), and the rest is found", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-scan-long-" });
  try {
    await write(root, "a.fits");
    // As an instrument's software can make it: one folder at a time.
    await treePastPathMax(root, "deep.fits");
    const errors: string[] = [];
    const skipped: { path: string; reason: string }[] = [];
    const found = await scan(
      root,
      createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] }),
      {
        onError: (path, error) => errors.push(`${path}: ${error}`),
        onSkipped: ({ path, skip }) => skipped.push({ path, reason: skip.reason }),
      },
    );
    assert.deepEqual(found.map((f) => f.relPath), ["a.fits"]);
    assert.deepEqual(errors, [], "said once, as the folder not sent, not also as a WARNING");
    assert.equal(skipped.length, 1, JSON.stringify(skipped));
    const bytes = new TextEncoder().encode(skipped[0].path).length;
    assert.ok(bytes > 4095, `${bytes}`);
    assert.equal(
      skipped[0].reason,
      `its path is too long for the system (${bytes} bytes, where a path may have 4095 at ` +
        "most), so the files in it cannot be seen: move them to a folder with a shorter path, " +
        "or shorten the names of the folders on the way",
    );
  } finally {
    await removeDeepTree(root);
  }
});
