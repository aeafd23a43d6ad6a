/**
 * More night folders than the status page's Nights table lists: the page (in
 * Chromium) says the table goes on and where to see more, instead of a table
 * that looks complete (files sent into ten nights, seven shown, the oldest
 * three missing without a word). A real `local` daemon.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { getJson, liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

interface Status {
  nights: Array<{ night: string }>;
  nightsMore: boolean;
}

Deno.test("status page: more night folders than it lists says so and where to see more", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 900 } });
  const page = browser.page;
  const note = page.locator("#nightsmore");
  // One file in each of the nights 1..`to` of March 2024.
  const write = async (from: number, to: number) => {
    for (let day = from; day <= to; day++) {
      const path = join(d.watch, `night_${day}.fits`);
      await Deno.writeFile(path, randomBytes(100));
      const noon = new Date(`2024-03-${String(day).padStart(2, "0")}T12:00:00Z`);
      await Deno.utime(path, noon, noon);
    }
  };

  const rows = page.locator("#nights tr");
  // The page's rows, once it shows `first` .. `last` (files arrive in any order).
  const shows = (first: string, last: string) =>
    waitFor(
      async () =>
        await rows.count() === 7 && (await rows.first().textContent() ?? "").includes(first) &&
        (await rows.last().textContent() ?? "").includes(last),
      LEAST_CEILING_MS,
      `nights ${first} to ${last} on the page`,
    );

  // As many nights as the page lists: no note.
  await write(1, 7);
  await shows("20240307", "20240301");
  assert.equal(await note.textContent(), "");
  assert.equal((await getJson<Status>(d.base, "/api/status")).nightsMore, false);

  // Three more: still 7 rows (the latest), and the page says there are more.
  await write(8, 10);
  await shows("20240310", "20240304");
  await waitFor(
    async () => ((await note.textContent()) ?? "") !== "",
    LEAST_CEILING_MS,
    "the note about more nights",
  );
  assert.equal(
    await note.textContent(),
    "Only the latest 7 rows (night folder and job) of the last 10 days are listed; /api/nights?limit=N lists the latest N",
  );
  const status = await getJson<Status>(d.base, "/api/status");
  assert.deepEqual(status.nights.map((n) => n.night)[6], "20240304");
  assert.equal(status.nightsMore, true);
  const all = await getJson<Status>(d.base, "/api/nights?limit=20");
  assert.equal(all.nights.length, 10);
});
