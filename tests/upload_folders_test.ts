/**
 * The book-keeping that lets concurrent batches share remote upload folders:
 * the first user may sweep, the last may remove, and nobody else runs meanwhile.
 */
import assert from "node:assert/strict";
import { UploadFolders } from "../src/transfer/upload_folders.ts";

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
  assert.deepEqual(first.fresh, ["/n/a", "/n/b"]);
  const second = folders.claim(["/n/b", "/n/c"]);
  assert.equal(await settlesSoon(second), false, "waits while /n/b is being prepared");
  first.prepared();
  const claim = await second;
  assert.deepEqual(claim.fresh, ["/n/c"], "/n/b is already in use, so not swept again");
  assert.deepEqual(first.takeLast(), ["/n/a"], "/n/b has another user");
  claim.prepared();
  assert.deepEqual(claim.takeLast(), ["/n/c"]);
  first.release();
  claim.release();
  const again = await folders.claim(["/n/a"]);
  assert.deepEqual(again.fresh, ["/n/a"], "unused folders start over");
  again.release();
});

Deno.test("a folder being removed is not used until the removal ends", async () => {
  const folders = new UploadFolders();
  const first = await folders.claim(["/n/a"]);
  first.prepared();
  assert.deepEqual(first.takeLast(), ["/n/a"]);
  const next = folders.claim(["/n/a"]);
  assert.equal(await settlesSoon(next), false, "waits for the removal");
  first.release();
  first.release(); // A second release changes nothing.
  const claim = await next;
  assert.deepEqual(claim.fresh, ["/n/a"], "made again after the removal");
  claim.release();
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
  assert.deepEqual([...first.fresh].sort(), ["/x", "/y"]);
  first.prepared();
  const [cc, dd] = await Promise.all([c, d]);
  const second = cc === first ? dd : cc;
  assert.deepEqual(second.fresh, []);
  cc.release();
  dd.release();
});
