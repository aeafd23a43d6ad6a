/**
 * "Did you mean": the closest config key or command by edit distance
 * (a swap of neighbouring letters is one edit), only when it is a likely typo.
 */
import assert from "node:assert/strict";
import { closestWord, editDistance } from "../../../src/config/key_lines.ts";
import { JOB_KEYS, TOP_LEVEL_KEYS } from "../../../src/config/schema.ts";

const COMMANDS = [
  "run",
  "init",
  "config",
  "status",
  "doctor",
  "install-service",
  "uninstall-service",
];

Deno.test("the edit distance counts a swap of neighbouring letters as one edit", () => {
  assert.equal(editDistance("status", "statsu"), 1);
  assert.equal(editDistance("jobs", "jbos"), 1);
  assert.equal(editDistance("retry_attempt", "retry_attempts"), 1);
  assert.equal(editDistance("jobs", "oops"), 2);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("abc", "abc"), 0);
});

Deno.test("a mistyped config key gets the key it is closest to", () => {
  assert.equal(closestWord("retry_attempt", JOB_KEYS), "retry_attempts");
  assert.equal(closestWord("retry_max_delay_secs", JOB_KEYS), "retry_max_delay_seconds");
  assert.equal(closestWord("stability_window_secs", JOB_KEYS), "stability_window_seconds");
  assert.equal(closestWord("log_fiel", TOP_LEVEL_KEYS), "log_file");
  assert.equal(closestWord("remote_hots", TOP_LEVEL_KEYS), "remote_host");
});

Deno.test("case, '-' and '_' are not differences", () => {
  assert.equal(closestWord("Watch-Path", JOB_KEYS), "watch_path");
  assert.equal(closestWord("TRANSFER-METHOD", JOB_KEYS), "transfer_method");
  assert.equal(closestWord("install_service", COMMANDS), "install-service");
});

Deno.test("a mistyped command gets the command it is closest to", () => {
  assert.equal(closestWord("statsu", COMMANDS), "status");
  assert.equal(closestWord("instal-service", COMMANDS), "install-service");
  assert.equal(closestWord("docter", COMMANDS), "doctor");
  assert.equal(closestWord("int", COMMANDS), "init");
});

Deno.test("a short word gets a suggestion for one slip, not for two", () => {
  assert.equal(closestWord("jbos", TOP_LEVEL_KEYS), "jobs");
  assert.equal(closestWord("job", TOP_LEVEL_KEYS), "jobs");
  assert.equal(closestWord("watch_pth", JOB_KEYS), "watch_path");
  // Two letters of four changed: another word, not a typo of "jobs".
  assert.equal(closestWord("oops", TOP_LEVEL_KEYS), undefined);
  assert.equal(closestWord("oops", [...TOP_LEVEL_KEYS, ...JOB_KEYS]), undefined);
});

Deno.test("no suggestion when nothing is close, or the word would change altogether", () => {
  assert.equal(closestWord("colour", JOB_KEYS), undefined);
  assert.equal(closestWord("xyzzy", COMMANDS), undefined);
  // Two letters changed in a two-letter word is a different word, not a typo.
  assert.equal(closestWord("ab", ["cd"]), undefined);
  assert.equal(closestWord("anything", []), undefined);
});

Deno.test("longer words allow more edits: a quarter of their letters", () => {
  // 3 edits in a 12-letter word are a typo; in an 8-letter word they are not.
  assert.equal(closestWord("xxx_attempts", ["retry_attempts"]), undefined);
  assert.equal(closestWord("retrx_axxempts", ["retry_attempts"]), "retry_attempts");
  assert.equal(closestWord("sxxxatus", ["status"]), undefined);
});

Deno.test("of two equally close words the first wins", () => {
  assert.equal(closestWord("cat", ["bat", "hat"]), "bat");
  assert.equal(closestWord("cat", ["hat", "bat"]), "hat");
});
