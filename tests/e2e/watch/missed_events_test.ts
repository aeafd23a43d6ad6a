/**
 * Reading again the folders that had events (files whose events were lost),
 * on real folders: which folders are read, which are skipped, and which are
 * reported as possibly unwatched.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import {
  LostEvents,
  MissedFiles,
  parentOf,
  scanDirtyFolders,
} from "../../../src/watch/missed_events.ts";
import { WatchSession } from "../../../src/watch/watch_session.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import type { FoundFile } from "../../../src/watch/scan.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";

const filter = createFileFilter({ file_patterns: ["*.fits"], exclude_patterns: [] });
const LONG_AGO = new Date("2020-01-01T00:00:00Z");

async function put(root: string, rel: string): Promise<void> {
  await Deno.mkdir(join(root, parentOf(rel)), { recursive: true });
  await Deno.writeFile(join(root, rel), new Uint8Array(10));
}

Deno.test("scanDirtyFolders: reads folders with events and their changed subfolders, once each", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  try {
    // Written before the burst: an old night whose folders did not change since.
    await put(root, "old/a.fits");
    await put(root, "night/old sub/b.fits");
    await Deno.utime(join(root, "old"), LONG_AGO, LONG_AGO);
    await Deno.utime(join(root, "night", "old sub"), LONG_AGO, LONG_AGO);
    // The burst: files in "night" (it had events), in "night/new" (it had events too) and in
    // "night/silent" (created during the burst, not one event arrived from it).
    await put(root, "night/c.fits");
    await put(root, "night/new/d.fits");
    await put(root, "night/silent/e.fits");
    await put(root, "night/silent/notes.txt");
    // Written a while ago: its events would have come by now.
    const aWhileAgo = new Date(Date.now() - 10_000);
    await Deno.utime(join(root, "night/silent/e.fits"), aWhileAgo, aWhileAgo);
    // Just written: its events may still be on their way.
    await put(root, "night/fresh/f.fits");

    const seen: string[] = [];
    const start = Date.now();
    const dirty = new Map([["night", start], ["night/new", start]]);
    const result = await scanDirtyFolders(dirty, {
      root,
      filter,
      // Every file counts as missed here, except c.fits (its events arrived).
      onFound: (files: FoundFile[]) => {
        seen.push(...files.map((f) => f.relPath));
        return files.filter((f) => !f.relPath.endsWith("c.fits"));
      },
      onError: (path, error) => assert.fail(`cannot read ${path}: ${error}`),
      isClosed: () => false,
    });
    assert.deepEqual(
      seen.sort(),
      ["night/c.fits", "night/fresh/f.fits", "night/new/d.fits", "night/silent/e.fits"],
      "old folders skipped, night/new read once, only matching files",
    );
    assert.equal(result.found, 3);
    assert.deepEqual(result.unwatched, ["night/silent"], "new files written a while ago, no event");
    // e.fits is overdue; the others were written as their folders were made (just now, in this
    // test): before their watch, maybe; for LostEvents to tell.
    assert.equal(result.overdue, 1);
    assert.deepEqual(result.fresh, []);
    assert.deepEqual(result.missedIn, ["night/silent"], "where the missed files are");
    assert.deepEqual(
      result.newFolders,
      new Map([["night/new", ["night/new/d.fits"]], ["night/fresh", ["night/fresh/f.fits"]]]),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanDirtyFolders: the root as a dirty folder; a folder that vanished is reported, not thrown", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  try {
    await put(root, "a.fits");
    const errors: string[] = [];
    const seen: string[] = [];
    const result = await scanDirtyFolders(new Map([["", Date.now()], ["gone", Date.now()]]), {
      root,
      filter,
      onFound: (files) => {
        seen.push(...files.map((f) => f.relPath));
        return [];
      },
      onError: (path) => errors.push(path),
      isClosed: () => false,
    });
    assert.deepEqual(seen, ["a.fits"]);
    assert.deepEqual(result, {
      found: 0,
      overdue: 0,
      fresh: [],
      unwatched: [],
      newFolders: new Map(),
      missedIn: [],
    });
    assert.deepEqual(errors, [join(root, "gone")]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("WatchSession start: the first scan takes files sent before as unchanged; right after the start every file is looked at again, quietly", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-unwatched-" });
  const logs = await captureLogs();
  const calls: Array<{ quick: boolean; rels: string[] }> = [];
  const session = new WatchSession({
    root,
    job: "test",
    filter,
    once: false,
    missingFolderRetryMs: 1000,
    rescanIntervalMs: 0,
    watchMode: "events",
    onActivity: () => {},
    onFound: (files, quick) => {
      calls.push({ quick, rels: files.map((f) => f.relPath) });
      // Written into a folder the first scan has listed, maybe before the watch covers it.
      if (calls.length === 1) {
        Deno.writeFileSync(
          join(root, parentOf(files[0].relPath), "c.fits"),
          new Uint8Array(10).fill(1),
        );
      }
      return files;
    },
    beforeRescan: () => assert.fail("no periodic rescan"),
  });
  try {
    await put(root, "old/a.fits");
    await put(root, "tonight/b.fits");
    assert.equal(await session.start(), true);
    // The first scan's calls were quick; the file written meanwhile turns up in the second.
    assert.ok(calls.length > 0 && calls.every((call) => call.quick), JSON.stringify(calls));
    const firstScan = calls.length;
    await waitFor(() => calls.length > firstScan, 10_000, "the second scan");
    const checked = calls.slice(firstScan);
    assert.ok(checked.every((call) => !call.quick), "the second scan stats the files sent before");
    await waitFor(
      () => calls.slice(firstScan).flatMap((c) => c.rels).length === 3,
      10_000,
      "every file looked at again",
    );
    const again = calls.slice(firstScan).flatMap((c) => c.rels).sort();
    assert.equal(again.length, 3, JSON.stringify(again));
    assert.deepEqual(again.filter((rel) => !rel.endsWith("/c.fits")), [
      "old/a.fits",
      "tonight/b.fits",
    ]);
    assert.equal(logs.count("warning", "missed"), 0, "found at start-up, not missed");
  } finally {
    session.close();
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a folder whose files come without events is found, and watched again", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  const job = localTestJob(root, { rescan_interval_seconds: 0 });
  const mnt = join(job.watch_path, "night", "share");
  await Deno.mkdir(mnt, { recursive: true });
  const ledger = Ledger.open(join(root, "state"));
  const runner = new JobRunner(job, ledger, new LocalTransport(job), {
    once: false,
    closedForMs: 50,
  });
  try {
    await runner.start();
    // A file system mounted over a watched folder: the watch stays on the folder underneath,
    // so nothing written in the mounted one sends an event (as after a kernel queue overflow).
    await withTmpfs(mnt, "4m", async () => {
      const silent = randomBytes(3000);
      await Deno.writeFile(join(mnt, "silent.fits"), silent);
      // Written a while ago (its events, had there been a watch, would have come by now).
      const earlier = new Date(Date.now() - 10_000);
      await Deno.utime(join(mnt, "silent.fits"), earlier, earlier);
      // An event next to it: its folder is read again once the watcher is quiet.
      await Deno.writeFile(join(job.watch_path, "night", "loud.fits"), randomBytes(100));
      const done = (rel: string) => FileRows.of(ledger, job).get(rel)?.state === "done";
      await waitFor(() => done("night/share/silent.fits"), 10_000, "the silent file");
      assert.deepEqual(
        await Deno.readFile(
          join(
            job.remote_base_path,
            FileRows.of(ledger, job).get("night/share/silent.fits")!.destination,
          ),
        ),
        silent,
      );
      // Watched again: a new file there now comes with events (no rescans in this job).
      const later = randomBytes(2000);
      await Deno.writeFile(join(mnt, "later.fits"), later);
      await waitFor(
        () => done("night/share/later.fits"),
        10_000,
        "a file written after the rewatch",
      );
      assert.deepEqual(
        await Deno.readFile(
          join(
            job.remote_base_path,
            FileRows.of(ledger, job).get("night/share/later.fits")!.destination,
          ),
        ),
        later,
      );
    });
  } finally {
    await runner.stop();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("scanDirtyFolders: files last written before the ledger was started anew are no sign of lost events", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  try {
    // Sent before the ledger was rebuilt (forgotten by it, so found again), and one written since.
    const rebuiltAt = Date.now() - 5_000;
    for (const [rel, ago] of [["night/sent.fits", 60_000], ["night/since.fits", 3_000]] as const) {
      await put(root, rel);
      const mtime = new Date(Date.now() - ago);
      await Deno.utime(join(root, rel), mtime, mtime);
    }
    const result = await scanDirtyFolders(new Map([["", Date.now()]]), {
      root,
      filter,
      onFound: (files) => files, // The rebuilt ledger knows none of them.
      onError: (path, error) => assert.fail(`cannot read ${path}: ${error}`),
      isClosed: () => false,
      forgottenUntil: () => rebuiltAt,
    });
    assert.equal(result.found, 2);
    assert.equal(result.overdue, 1, "only the file written since the rebuild counts as missed");
    assert.deepEqual(result.fresh, []);
    assert.deepEqual(result.unwatched, ["night"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("MissedFiles: overdue files are said at once; a fresh file only when its event does not come in time; each warning says events were lost", async () => {
  const logs = await captureLogs();
  // How often events were said lost (with each warning).
  let lost = 0;
  const missed = new MissedFiles("test", "/watch", 200, () => lost++);
  try {
    const said = () =>
      logs.records.filter((r) => String(r.rawMessage).includes("missed")).map((r) =>
        r.properties.count
      );
    missed.found({ found: 1, overdue: 1, fresh: [], unwatched: [] }, ["night"]);
    assert.deepEqual(said(), [1], "a file written a while ago: said at once");
    assert.equal(lost, 1, "events were lost");

    // Two fresh files: the event of one comes late (after the re-read), the other's never does.
    missed.found({
      found: 2,
      overdue: 0,
      fresh: ["night/late.fits", "night/lost.fits"],
      unwatched: [],
    }, [
      "night",
    ]);
    assert.deepEqual(said(), [1], "fresh files are not said before their events had time");
    assert.equal(lost, 1);
    missed.heard("night/late.fits");
    await waitFor(() => said().length === 2, 10_000, "the second warning");
    assert.deepEqual(said(), [1, 1], "only the file whose event never came");
    assert.equal(lost, 2);
    const record = logs.records.filter((r) => String(r.rawMessage).includes("missed"))[1];
    assert.deepEqual(record.properties.folders, ["/watch/night"]);

    // Every late event came: nothing said.
    missed.found({ found: 1, overdue: 0, fresh: ["night/on time.fits"], unwatched: [] }, ["night"]);
    missed.heard("night/on time.fits");
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(said(), [1, 1]);
    assert.equal(lost, 2, "no event lost: no file stops waiting for its close");
  } finally {
    missed.close();
    await logs.stop();
  }
});

Deno.test("MissedFiles: a warning over many folders names how many and the first three, in words, no JSON list; every folder stays a property for the JSON log", async () => {
  const logs = await captureLogs();
  const missed = new MissedFiles("test", "/watch", 200);
  try {
    const folders = Array.from({ length: 50 }, (_, i) => `flood/f${String(i).padStart(2, "0")}`);
    missed.found({ found: 12303, overdue: 12303, fresh: [], unwatched: [] }, folders);
    missed.found({ found: 1, overdue: 1, fresh: [], unwatched: [] }, ["night"]);
    const records = logs.records.filter((r) => String(r.rawMessage).includes("missed"));
    const text = records.map((r) =>
      r.message.map((part, i) => i % 2 === 0 ? part : String(part)).join("")
    );
    // Before: `in ["/watch/flood/f00","/watch/flood/f01", ... 50 paths]`, 1,722 characters.
    assert.deepEqual(text, [
      "The watcher missed 12303 new file(s) in 50 folders: /watch/flood/f00, /watch/flood/f01, " +
      "/watch/flood/f02 and 47 more; found them by reading the folders again",
      "The watcher missed 1 new file(s) in /watch/night; found them by reading the folders again",
    ]);
    assert.equal(records[0].properties.folderCount, 50);
    assert.equal((records[0].properties.folders as string[]).length, 50);
  } finally {
    missed.close();
    await logs.stop();
  }
});

/**
 * `LostEvents` over `root` whose re-reads give their files to `onFound` (it returns those new);
 * `lost`: the starts of the losses told; `unwatched`: the folders told as never reported.
 */
function lostEventsOf(root: string, onFound: (files: FoundFile[]) => FoundFile[]) {
  const lost: number[] = [];
  const unwatched: string[][] = [];
  const events = new LostEvents({
    job: "test",
    root,
    filter,
    onFound,
    onError: (path, error) => assert.fail(`cannot read ${path}: ${error}`),
    skip: () => false,
    polled: () => false,
    onUnwatched: (folders) => unwatched.push(folders),
    onLost: (beforeMs) => lost.push(beforeMs),
  });
  return { events, lost, unwatched };
}

Deno.test("LostEvents: a loss found is told at once, and again with the next read after the watcher was quiet (events queued ahead of it handled by then), then no more", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  const logs = await captureLogs();
  let reads = 0;
  let missing = true; // The first read finds a file no event told of; later ones nothing new.
  const { events, lost } = lostEventsOf(root, (files) => {
    reads++;
    const found = missing ? files : [];
    missing = false;
    return found;
  });
  try {
    await put(root, "night/a.fits");
    // Written a while ago: its events would have come by now.
    const aWhileAgo = new Date(Date.now() - 10_000);
    await Deno.utime(join(root, "night/a.fits"), aWhileAgo, aWhileAgo);
    events.mark(["night"]);
    await waitFor(() => lost.length === 1, 30_000, "the loss told");
    assert.equal(reads, 1);
    // Events handled after the read that found the loss (queued ahead of it): the next quiet read
    // tells it again, from its start.
    const markedAt = performance.now();
    events.mark(["night"]);
    await waitFor(() => reads === 2, 30_000, "the second read");
    await waitFor(() => lost.length === 2, 30_000, "the loss told again");
    assert.ok(lost[1] > markedAt, "from the start of the quiet read");
    events.mark(["night"]);
    await waitFor(() => reads === 3, 30_000, "the third read");
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(lost.length, 2, "settled: no loss told any more");
  } finally {
    events.close();
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("LostEvents: files written into a folder as it was made, found by a re-read before its creation was told, are normal (no warning, no rewatch, no loss); a new folder never told of still is", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-missed-" });
  const logs = await captureLogs();
  const seen = new Set<string>();
  let reads = 0;
  const { events, lost, unwatched } = lostEventsOf(root, (files) => {
    reads++;
    return files.filter((f) => !seen.has(f.relPath) && seen.add(f.relPath));
  });
  try {
    // A new night folder, made and written into at once: written before the watch covered it, as
    // is normal.
    await put(root, "night/a.fits");
    await put(root, "night/b.fits");
    // A folder no event ever tells of (its watch is missing), made and written into the same way.
    await put(root, "silent/c.fits");
    // The root had an event (the new folders'), and the re-read runs before the watcher's event
    // for "night" itself is handled (a busy burst): it is told after the read.
    events.mark([""]);
    await waitFor(() => reads >= 2, 30_000, "the re-read");
    events.heard("night", true);
    const warnings = () => logs.records.filter((r) => r.level === "warning");
    await waitFor(() => warnings().length > 0, 30_000, "the silent folder said");
    // Before: "The watcher missed 3 new file(s) in <root>" (the watch folder itself).
    assert.deepEqual(warnings()[0].properties.folders, [join(root, "silent")]);
    assert.equal(warnings()[0].properties.count, 1);
    await waitFor(() => unwatched.length > 0, 30_000, "the silent folder watched again");
    assert.deepEqual(unwatched, [[join(root, "silent")]], "only the folder never told of");
    assert.deepEqual(
      [...seen].sort(),
      ["night/a.fits", "night/b.fits", "silent/c.fits"],
      "every file found",
    );
    await new Promise((r) => setTimeout(r, 2500)); // Anything a fresh file's wait would say.
    assert.equal(warnings().length, 1, JSON.stringify(warnings().map((r) => r.message)));
    assert.equal(lost.length, 1, "told once, for the silent folder");
  } finally {
    events.close();
    await logs.stop();
    await Deno.remove(root, { recursive: true });
  }
});
