/**
 * The status page shows a file's name as it is, spaces included: a name with
 * two spaces in a row (`m31  L  0001.fits`) or one after a folder's slash is
 * not shown as another name with one. A real `local` daemon in Chromium; the
 * rendered text (`innerText`, what a person reads and copies) is compared.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes } from "../../helpers/files.ts";
import { liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

Deno.test("status page: names with runs of spaces are shown with every space, in Recent transfers and Failures (name and reason)", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0, retry_attempts: 0 });
  const sent = "m31  L  0001.fits";
  await Deno.mkdir(join(d.watch, "flats"));
  const failing = join("flats", "  flat   V.fits");
  await using browser = await liveStatusPage(d.base);
  const page = browser.page;

  const night = new Date("2024-05-02T12:00:00Z");
  await Deno.writeFile(join(d.watch, sent), randomBytes(2000));
  await Deno.utime(join(d.watch, sent), night, night);
  const row = page.locator("#recent tr.sent", { hasText: "0001.fits" });
  await row.waitFor();
  assert.equal(await row.locator("td").first().innerText(), sent);
  assert.equal(await row.locator("td.name").last().innerText(), `20240502/${sent}`);

  // A failing file (its night folder's place is taken by a file): its name in Failures.
  await Deno.writeTextFile(join(d.dest, "20240315"), "in the way");
  const badNight = new Date("2024-03-15T22:00:00Z");
  await Deno.writeFile(join(d.watch, failing), randomBytes(2000));
  await Deno.utime(join(d.watch, failing), badNight, badNight);
  const problem = page.locator("#problems tr.problem", { hasText: "V.fits" });
  await problem.waitFor();
  assert.equal(await problem.locator("td.name").innerText(), failing);
  // The reason names the file too.
  const reason = `Cannot send ${join(d.watch, failing)}: `;
  assert.ok((await problem.locator("td.err").innerText()).startsWith(reason));
});
