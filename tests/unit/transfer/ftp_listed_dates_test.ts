/**
 * How late an FTP listing's date of a folder may stand for (`listedLatestMs`), which the sweep of
 * the earlier naming's leftovers waits past: `LIST` dates read in the server's unknown time zone,
 * so twelve hours and a minute on; `MLSD`'s exactly; any other form never idle.
 */
import assert from "node:assert/strict";
import { FileInfo } from "basic-ftp";
import { idleSince, listedLatestMs } from "../../../src/transfer/ftp/leftovers.ts";

/** An entry as a listing gives it: `raw` as `LIST` shows its date, or `MLSD`'s `modifiedAt`. */
function entry(raw: string, modifiedAt?: Date): FileInfo {
  const info = new FileInfo(".incoming-x");
  info.rawModifiedAt = raw;
  info.modifiedAt = modifiedAt;
  return info;
}

const HOUR = 3_600_000;
const LATER = 12 * HOUR + 60_000;

Deno.test("FTP listing dates: a LIST date is taken as late as any time zone makes it; the year is the one that puts it no later than tomorrow", () => {
  const now = Date.UTC(2026, 10, 30, 1, 41, 30);
  assert.equal(listedLatestMs(entry("Nov 30 01:41"), now), Date.UTC(2026, 10, 30, 1, 41) + LATER);
  // Shown in the zone furthest behind UTC: written now, still not idle for an hour.
  assert.equal(idleSince(entry("Nov 29 13:41"), 3600, now), false);
  assert.equal(idleSince(entry("Nov 29 12:00"), 3600, now), true);
  // Early in a year, a date of late December is last year's.
  const january = Date.UTC(2027, 0, 2, 10, 0);
  assert.equal(
    listedLatestMs(entry("Dec 31 23:59"), january),
    Date.UTC(2026, 11, 31, 23, 59) + LATER,
  );
  // Older than six months: a day, to its end.
  assert.equal(listedLatestMs(entry("Oct 26  2025"), now), Date.UTC(2025, 9, 27) + 12 * HOUR);
  assert.equal(idleSince(entry("Oct 26  2025"), 3600, now), true);
});

Deno.test("FTP listing dates: MLSD's modify fact is exact; an unknown form or no entry is never idle", () => {
  const now = Date.UTC(2026, 10, 30, 1, 41, 30);
  const modified = new Date(now - 2 * HOUR);
  assert.equal(listedLatestMs(entry(modified.toISOString(), modified), now), modified.getTime());
  assert.equal(idleSince(entry(modified.toISOString(), modified), 3600, now), true);
  assert.equal(listedLatestMs(entry("11-30-26  01:41AM"), now), null);
  assert.equal(idleSince(entry("11-30-26  01:41AM"), 3600, now), false);
  assert.equal(idleSince(null, 3600, now), false);
});
