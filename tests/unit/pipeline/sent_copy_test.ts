/**
 * `copiesChanged`: which copies of a batch's changed sources were changed at the destination
 * since they were sent, asked in one look for the batch, and none where no source changed.
 */
import assert from "node:assert/strict";
import { arrivalWords } from "../../../src/pipeline/arrival_words.ts";
import { copiesChanged, lookAtOwnCopies, sourceChanged } from "../../../src/pipeline/sent_copy.ts";
import type { LedgerRow } from "../../../src/ledger/file_rows.ts";
import type { DestinationVersion } from "../../../src/transfer/destination_sizes.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";

const SENT_MS = 1_700_000_000_500;

function row(destination: string, sent: boolean): LedgerRow {
  return {
    job: "j",
    target: "local:/d",
    relPath: destination,
    size: 100,
    mtimeMs: SENT_MS,
    destination,
    state: "transferring",
    attempts: 0,
    nextAttemptAt: 0,
    lastError: null,
    createdAt: 0,
    updatedAt: 0,
    transferredAt: 1,
    bornMs: null,
    sentSize: sent ? 100 : null,
    sentMtimeMs: sent ? SENT_MS : null,
  };
}

const item = (destination: string, size = 100, mtimeMs = SENT_MS + 60_000): TransferItem => ({
  source: `/w/${destination}`,
  destination,
  size,
  mtimeMs,
});

function transport(there: Record<string, DestinationVersion | null>) {
  const asked: string[][] = [];
  return {
    asked,
    describeTarget: (path: string) => `/d/${path}`,
    destinationVersions: (paths: string[]) => {
      asked.push(paths);
      return Promise.resolve(new Map(paths.map((path) => [path, there[path] ?? null])));
    },
  };
}

const SENT_S = Math.floor(SENT_MS / 1000);

Deno.test("copiesChanged: one look for the batch's changed sources; a copy of another size or mtime is changed", async () => {
  const t = transport({
    "n/same": { size: 100, mtimeS: SENT_S },
    "n/fat": { size: 100, mtimeS: SENT_S + 2 },
    "n/grew": { size: 123, mtimeS: SENT_S },
    "n/touched": { size: 100, mtimeS: SENT_S + 3600 },
  });
  const names = ["n/same", "n/fat", "n/grew", "n/touched", "n/gone"];
  const changed = await copiesChanged(
    t,
    names.map((name) => item(name)),
    names.map((name) => row(name, true)),
    new AbortController().signal,
  );
  assert.deepEqual(t.asked, [names]);
  assert.deepEqual([...changed].sort(), [2, 3]);
});

Deno.test("copiesChanged: nothing is asked where no source changed, nor where the version sent is not recorded", async () => {
  const t = transport({});
  const items = [item("a", 100, SENT_MS), item("b"), item("c")];
  const rows = [row("a", true), row("b", false), null];
  const changed = await copiesChanged(t, items, rows, new AbortController().signal);
  assert.deepEqual(t.asked, []);
  assert.equal(changed.size, 0);
  assert.deepEqual(items.map((it, n) => sourceChanged(it, rows[n])), [false, null, null]);
});

Deno.test("lookAtOwnCopies: one look for every re-send over its own copy, which tells those gone; a look that fails only for the words is let go", async () => {
  const t = transport({ "n/there": { size: 100, mtimeS: SENT_S } });
  // The same version sent again (resend, a catch-up), its copy there or gone; a new file (no row).
  const items = [item("n/there", 100, SENT_MS), item("n/gone", 100, SENT_MS), item("n/new")];
  const rows = [row("n/there", true), row("n/gone", true), null];
  const look = await lookAtOwnCopies(t, items, rows, new AbortController().signal);
  assert.deepEqual(t.asked, [["n/there", "n/gone"]]);
  assert.deepEqual([...look.gone!], [1]);
  assert.equal(look.changed.size, 0);
  const failing = {
    describeTarget: (path: string) => `/d/${path}`,
    destinationVersions: () => Promise.reject(new Error("Connection reset")),
  };
  const unsure = await lookAtOwnCopies(failing, items, rows, new AbortController().signal);
  assert.equal(unsure.gone, null);
  // A changed source must be looked at before its copy is replaced: the batch fails as before.
  await assert.rejects(
    lookAtOwnCopies(
      failing,
      [item("n/there")],
      [row("n/there", true)],
      new AbortController().signal,
    ),
    /Cannot look whether the copies at \/d\/n\/there/,
  );
});

Deno.test("arrivalWords: a copy gone is not said replaced; a copy is said recorded as arrived, not sent (it may have been found there)", () => {
  const at = Date.UTC(2026, 10, 30, 21, 0, 0);
  assert.equal(
    arrivalWords(undefined, { at, changed: false, gone: true }),
    " (sent again: its copy recorded as arrived at 2026-11-30T21:00:00.000Z was no longer at the destination)",
  );
  assert.equal(
    arrivalWords(undefined, { at, changed: true, gone: false }),
    " (replaced its copy recorded as arrived at 2026-11-30T21:00:00.000Z: the source changed since)",
  );
  assert.equal(
    arrivalWords(undefined, { at, changed: false, gone: null }),
    " (replaced its copy recorded as arrived at 2026-11-30T21:00:00.000Z: the same version, sent again)",
  );
  assert.equal(arrivalWords(undefined, undefined), "");
});
