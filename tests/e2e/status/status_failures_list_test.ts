/**
 * More files with an error than the status page lists: the page (in Chromium)
 * says the list goes on and how to see every one, as `status` does, instead of
 * a table that looks complete. A real `local` daemon whose night folder's place
 * is taken by a file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LEAST_CEILING_MS, waitFor } from "../../helpers/files.ts";
import { getJson, liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

interface Status {
  jobs: Array<{ queue: { failed: number } }>;
  problems: unknown[];
  problemsMore: boolean;
}

Deno.test("status page: more failed files than it lists says so and how to list them all", async () => {
  await using d = await startStatusDaemon({ retry_attempts: 0, rescan_interval_seconds: 0 });
  const night = new Date("2024-03-15T22:00:00Z");
  await Deno.mkdir(d.dest);
  await Deno.writeTextFile(join(d.dest, "20240315"), "in the way");
  await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 900 } });
  const page = browser.page;
  const note = page.locator("#problemsmore");

  // Exactly as many as the page lists: no note.
  const write = async (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const path = join(d.watch, `bad_${i}.fits`);
      await Deno.writeTextFile(path, `file ${i}`);
      await Deno.utime(path, night, night);
    }
  };
  await write(0, 20);
  await page.locator(".job .q span", { hasText: /^20 gave up$/ }).waitFor();
  await page.locator("#problems tr.problem").nth(19).waitFor();
  assert.equal(await page.locator("#problems tr.problem").count(), 20);
  assert.equal(await note.textContent(), "");
  assert.equal((await getJson<Status>(d.base, "/api/status")).problemsMore, false);

  // Five more: still 20 rows, and the page says there are more.
  await write(20, 25);
  await page.locator(".job .q span", { hasText: /^25 gave up$/ }).waitFor();
  await waitFor(
    async () => ((await note.textContent()) ?? "") !== "",
    LEAST_CEILING_MS,
    "the note about more failures",
  );
  assert.equal(await page.locator("#problems tr.problem").count(), 20);
  assert.equal(
    await note.textContent(),
    "More files have an error than the latest 20 listed here; image-transfer status -n N lists the latest N",
  );
  const status = await getJson<Status>(d.base, "/api/status");
  assert.equal(status.jobs[0].queue.failed, 25);
  assert.equal(status.problems.length, 20);
  assert.equal(status.problemsMore, true);
});
