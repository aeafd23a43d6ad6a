/** The queue that keeps calls over one shared SSH connection within the server's MaxSessions. */
import assert from "node:assert/strict";
import { SessionSlots } from "../../../src/transfer/ssh/connection.ts";

Deno.test("slots are handed out in order and never beyond the size", async () => {
  const slots = new SessionSlots(2);
  const a = await slots.take();
  const b = await slots.take();
  assert.equal(slots.free, 0);
  const order: string[] = [];
  const c = slots.take().then((give) => (order.push("c"), give));
  const d = slots.take().then((give) => (order.push("d"), give));
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(order, [], "both wait while every slot is taken");
  a();
  a(); // Giving back twice frees only one slot.
  const giveC = await c;
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.deepEqual(order, ["c"]);
  b();
  const giveD = await d;
  assert.deepEqual(order, ["c", "d"]);
  giveC();
  giveD();
  assert.equal(slots.free, 2);
});

Deno.test("a wait can be aborted, and its place goes to the next", async () => {
  const slots = new SessionSlots(1);
  const held = await slots.take();
  const stop = new AbortController();
  const aborted = slots.take(stop.signal);
  const next = slots.take();
  stop.abort(new Error("stopped"));
  await assert.rejects(aborted, /stopped/);
  held();
  const give = await next;
  assert.equal(slots.free, 0);
  give();
  assert.equal(slots.free, 1);
});

Deno.test("optional work takes a slot only when enough stay free", () => {
  const slots = new SessionSlots(2);
  const first = slots.takeIfFree(1);
  assert.notEqual(first, null);
  assert.equal(slots.takeIfFree(1), null, "the last slot is kept for work that must run");
  const last = slots.takeIfFree();
  assert.notEqual(last, null);
  assert.equal(slots.takeIfFree(), null);
  first!();
  last!();
  assert.equal(slots.free, 2);
});
