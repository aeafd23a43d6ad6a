/**
 * `copiesChanged`: which copies of a batch's changed sources were changed at the destination
 * since they were sent, asked in one look for the batch, and none where no source changed.
 */
import assert from "node:assert/strict";
import { copiesChanged, sourceChanged } from "../../../src/pipeline/sent_copy.ts";
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
