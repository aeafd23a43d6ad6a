/** `doctor`'s one verdict on the free space at a destination, for every method. */
import assert from "node:assert/strict";
import {
  freeSpaceCheck,
  localDiskSpace,
  localDiskSpaceSync,
} from "../../../src/config/free_space.ts";

const GiB = 1024 ** 3;

Deno.test("freeSpaceCheck: min_free_space in bytes or as a share decides; without it, below 1 GiB warns", () => {
  const roomy = { availableBytes: 50 * GiB, totalBytes: 100 * GiB };
  const ok = freeSpaceCheck("host:/data", roomy, "10 GiB", "unused");
  assert.equal(ok.verdict, "ok");
  assert.equal(ok.detail, "50.0 GiB free at host:/data (min_free_space keeps 10.0 GiB)");

  const full = freeSpaceCheck("host:/data", roomy, "60%", "unused");
  assert.equal(full.verdict, "fail");
  assert.match(
    full.detail,
    /50\.0 GiB free at host:\/data, less than min_free_space \(60\.0 GiB\)/,
  );

  // Without min_free_space: fine above 1 GiB, a warning below (it does not fail doctor).
  assert.equal(freeSpaceCheck("/d", roomy, undefined, "unused").verdict, "ok");
  const low = freeSpaceCheck("/d", { availableBytes: GiB / 2, totalBytes: GiB }, 0, "unused");
  assert.equal(low.verdict, "warn");
  assert.match(low.detail, /512\.0 MiB free at \/d: less than 1 GiB/);

  // A share of a file system whose size is not told (FTP's AVBL) cannot be judged: as if unset.
  const avbl = { availableBytes: GiB / 2, totalBytes: null };
  assert.equal(freeSpaceCheck("/d", avbl, "5%", "unused").verdict, "warn");
  assert.equal(freeSpaceCheck("/d", avbl, "1 GiB", "unused").verdict, "fail");

  const unknown = freeSpaceCheck("/d", null, "5%", "the server does not report it");
  assert.deepEqual(unknown, {
    check: "free space",
    verdict: "skip",
    detail: "the server does not report it; min_free_space is not checked there",
  });
});

Deno.test("localDiskSpace and its sync twin: a folder not made yet is measured at its nearest existing parent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-space-" });
  try {
    const here = await localDiskSpace(dir);
    const below = await localDiskSpace(`${dir}/not/made/yet`);
    assert.ok(here !== null && below !== null);
    assert.equal(below.totalBytes, here.totalBytes);
    assert.ok(here.availableBytes > 0 && here.availableBytes <= here.totalBytes);
    const belowSync = localDiskSpaceSync(`${dir}/not/made/yet`);
    assert.equal(belowSync?.totalBytes, here.totalBytes);
    // Not a missing folder but a file on the way: the system cannot tell.
    await Deno.writeTextFile(`${dir}/file`, "");
    assert.equal(await localDiskSpace(`${dir}/file/below`), null);
    assert.equal(localDiskSpaceSync(`${dir}/file/below`), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
