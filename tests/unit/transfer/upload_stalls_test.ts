/**
 * What a job is told of its FTP uploads' stalls (`UploadStalls`): a stalled upload's words only
 * while no batch's uploads move, a batch moving from its first upload to its end.
 */
import assert from "node:assert/strict";
import { UploadStalls } from "../../../src/transfer/ftp/no_answer.ts";

/** An `UploadStalls` and everything its watcher was told, in order. */
function watched() {
  const stalls = new UploadStalls();
  const told: (string | null)[] = [];
  stalls.watch((why) => told.push(why));
  return { stalls, told };
}

Deno.test("upload stalls: one batch's stall is told as it begins and ends, once each", () => {
  const { stalls, told } = watched();
  const batch = {};
  const onStall = stalls.uploading(batch);
  assert.deepEqual(told, [], "an upload that moves changes nothing");
  onStall("a stalled");
  onStall("a stalled");
  assert.deepEqual(told, ["a stalled"]);
  onStall(null);
  assert.deepEqual(told, ["a stalled", null]);
  stalls.ended(batch);
  assert.deepEqual(told, ["a stalled", null], "nothing more to tell");
});

Deno.test("upload stalls: a stall is not told while another batch moves, also between its files; it is once that batch ends", () => {
  const { stalls, told } = watched();
  const stalled = {};
  const moving = {};
  stalls.uploading(moving);
  stalls.uploading(stalled)("a stalled");
  assert.deepEqual(told, [], "the other batch moves");
  // The moving batch's first upload ended (its copy is checked and renamed), its next begins.
  stalls.uploading(moving);
  assert.deepEqual(told, []);
  stalls.ended(moving);
  assert.deepEqual(told, ["a stalled"], "only the stalled one is left");
  // A batch that begins uploading moves: the job is not told of the stall while it does.
  const next = {};
  stalls.uploading(next);
  assert.deepEqual(told, ["a stalled", null]);
  stalls.uploading(next)("b stalled");
  assert.deepEqual(told, ["a stalled", null, "a stalled"], "the first stalled one is named");
  stalls.ended(stalled);
  assert.deepEqual(told, ["a stalled", null, "a stalled", "b stalled"]);
  stalls.ended(next);
  assert.deepEqual(told, ["a stalled", null, "a stalled", "b stalled", null]);
});
