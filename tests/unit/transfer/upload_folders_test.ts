/**
 * The book-keeping that lets concurrent batches share destination folders:
 * the first user sweeps leftovers, once, and nobody else starts meanwhile.
 */
import assert from "node:assert/strict";
import { UploadFolders } from "../../../src/transfer/ssh/upload_folders.ts";

/** Whether `promise` settles within a few event-loop turns. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  return settled;
}

Deno.test("the first batch of a folder sweeps it; others wait until it is prepared", async () => {
  const folders = new UploadFolders();
  const first = await folders.claim(["/n/a", "/n/b"]);
  assert.deepEqual(first.toSweep, ["/n/a", "/n/b"]);
  const second = folders.claim(["/n/b", "/n/c"]);
  assert.equal(await settlesSoon(second), false, "waits while /n/b is being swept");
  first.prepared(true);
  const claim = await second;
  assert.deepEqual(claim.toSweep, ["/n/c"], "/n/b is already in use, so not swept again");
  claim.prepared(true);
  first.release();
  claim.release();
  const again = await folders.claim(["/n/a", "/n/d"]);
  assert.deepEqual(again.toSweep, ["/n/d"], "a folder is swept once");
  again.prepared(true);
  again.release();
});

Deno.test("a sweep that did not run, or an upload folder left behind, sweeps again", async () => {
  const folders = new UploadFolders();
  const first = await folders.claim(["/n/a", "/n/b"]);
  first.prepared(false);
  first.release();
  first.release(); // A second release changes nothing.
  const second = await folders.claim(["/n/a", "/n/b"]);
  assert.deepEqual(second.toSweep, ["/n/a", "/n/b"]);
  second.prepared(true);
  second.leftBehind(["/n/b"]);
  second.release();
  const third = await folders.claim(["/n/a", "/n/b"]);
  assert.deepEqual(third.toSweep, ["/n/b"]);
  third.release();
});

Deno.test("two batches that wait on each other's folders cannot deadlock", async () => {
  const folders = new UploadFolders();
  const a = await folders.claim(["/x"]);
  const b = await folders.claim(["/y"]);
  // Each now wants both; neither holds anything while it waits.
  const c = folders.claim(["/x", "/y"]);
  const d = folders.claim(["/y", "/x"]);
  a.release();
  b.release();
  // The first to wake sweeps both; the other joins once they are prepared.
  const first = await Promise.race([c, d]);
  assert.deepEqual([...first.toSweep].sort(), ["/x", "/y"]);
  first.prepared(true);
  const [cc, dd] = await Promise.all([c, d]);
  const second = cc === first ? dd : cc;
  assert.deepEqual(second.toSweep, []);
  cc.release();
  dd.release();
});
