/**
 * The status page in a real browser (Debian's Chromium, driven by
 * playwright-core) against a real daemon: files appear as sent without a
 * reload with how long it took, a failing destination shows its reason, Retry
 * sends the file after the fix, Pause and Resume work, a hostile file name is
 * shown as text, and the page fits a phone's width.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { headerBytes, imageCards } from "../../helpers/fits.ts";
import { chromiumPage, getJson, startStatusDaemon } from "../../helpers/status.ts";

const HOSTILE = "<img src=x onerror=alert(1)>.fits";
/** Where each run leaves its screenshot (ignored by git; `docs/status-page.png` is a copy). */
const SCREENSHOT = new URL("../../output/status-page.png", import.meta.url);

Deno.test("status page in Chromium: live updates, failure reason, retry, pause/resume, hostile name as text", async () => {
  await using d = await startStatusDaemon({ retry_attempts: 0, rescan_interval_seconds: 0 });
  await using browser = await chromiumPage({ viewport: { width: 1000, height: 900 } });
  const page = browser.page;
  const dialogs: string[] = [];
  const consoleErrors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await page.goto(d.base + "/");
  await page.locator("#conn", { hasText: "live" }).waitFor();
  await page.locator(".job .state", { hasText: "watching" }).waitFor();
  // Before anything is sent the chart says so, not a maximum of nothing.
  assert.equal(await page.locator("#chartmax").textContent(), "nothing sent in this time");

  // Files written now appear as sent, without a reload.
  const night = new Date("2024-03-16T20:00:00Z");
  const bidi = "bidi \u202estif.exe.fits";
  const files = [HOSTILE, "m31 L 0001.fits", "m31 L 0002.fits", "new\nline.fits", bidi];
  for (const [i, name] of files.entries()) {
    await Deno.writeFile(join(d.watch, name), randomBytes(200_000 + i * 1000));
    await Deno.utime(join(d.watch, name), night, night);
  }
  const hostileRow = page.locator("#recent tr.sent td:first-child", { hasText: HOSTILE });
  await hostileRow.waitFor({ timeout: LEAST_CEILING_MS });
  assert.equal(await hostileRow.textContent(), HOSTILE);
  assert.equal(
    await page.locator("#recent img, #jobs img").count(),
    0,
    "the name made no element",
  );
  assert.deepEqual(dialogs, [], "no script ran from the name");
  await page.locator("#recent tr.sent", { hasText: "m31 L 0002.fits" }).waitFor();
  // A newline in a name is shown as one, escaped in quotes, not as a space.
  const newline = page.locator("#recent tr.sent td:first-child", { hasText: "line.fits" });
  await newline.waitFor({ timeout: LEAST_CEILING_MS });
  assert.equal(await newline.textContent(), '"new\\nline.fits"');
  // So is a bidirectional override, which would show the name's end reversed.
  const override = page.locator("#recent tr.sent td:first-child", { hasText: "stif.exe" });
  await override.waitFor({ timeout: LEAST_CEILING_MS });
  assert.equal(await override.textContent(), '"bidi \\u202estif.exe.fits"');
  // Which job sent it.
  assert.equal(
    await page.locator("#recent tr.sent", { hasText: "m31 L 0002.fits" }).locator("td")
      .nth(1).textContent(),
    "default",
  );
  // How long each transfer of this run took.
  assert.match(
    await page.locator("#recent tr.sent", { hasText: "m31 L 0002.fits" }).locator("td.took")
      .textContent() ?? "",
    /^\d+(\.\d)? m?s$/,
  );
  // The destination's free space, and the chart's bars and throughput line.
  assert.match(
    await page.locator(".job .free").textContent() ?? "",
    /\d (B|KiB|MiB|GiB|TiB) free$/,
  );
  // How the watch folder is watched (a local folder: by its events).
  assert.match(
    await page.locator(".job .watch").textContent() ?? "",
    /^Watched with file events \(/,
  );
  // A FITS file whose data has not come yet is pending, said to be not complete yet.
  await Deno.writeFile(join(d.watch, "partial.fits"), headerBytes(imageCards(100, 100)));
  await page.locator(".job .q span", { hasText: /^1 pending \(1 not complete yet\)$/ })
    .waitFor({ timeout: LEAST_CEILING_MS });
  // The chart is recomputed at most every 2 s.
  await page.locator("#chart rect.bar").first().waitFor({ timeout: LEAST_CEILING_MS });
  assert.match(
    await page.locator("#chartmax").textContent() ?? "",
    /^max [1-9]\d* files\/min, \d+(\.\d)? (B|KiB|MiB|GiB|TiB)\/s$/,
  );
  // A file that is never sent as it is (its name is not UTF-8) is said on the job.
  const python = "import os, sys; open(os.path.join(sys.argv[1].encode(), b'caf\\xe9.fits'), 'wb')";
  assert.equal(
    (await new Deno.Command("python3", { args: ["-c", python, d.watch] }).output()).code,
    0,
  );
  assert.match(
    await page.locator(".job .cannot").textContent() ?? "",
    /^1 file\(s\) or folder\(s\) found since the daemon started could not be sent .*image-transfer status lists those still there$/,
  );

  // A failing destination: the night folder's place is taken by a file.
  const blocked = join(d.dest, "20240315");
  await Deno.writeTextFile(blocked, "in the way");
  const bad = randomBytes(300_000);
  const badNight = new Date("2024-03-15T22:00:00Z");
  await Deno.writeFile(join(d.watch, "bad.fits"), bad);
  await Deno.utime(join(d.watch, "bad.fits"), badNight, badNight);
  const problem = page.locator("#problems tr.problem", { hasText: "bad.fits" });
  await problem.waitFor({ timeout: LEAST_CEILING_MS });
  const reason = await problem.locator("td.err").textContent();
  assert.ok(reason && reason.length > 0, "a reason is shown");
  // Night totals follow (they are recomputed at most every 2 s).
  const badNightRow = page.locator("#nights tr", { hasText: "20240315" });
  await badNightRow.waitFor({ timeout: LEAST_CEILING_MS });
  // The row may be there from before the failure (the file pending): its count follows.
  await waitFor(
    async () => (await badNightRow.locator("td").last().textContent()) === "1",
    LEAST_CEILING_MS,
    "the night's failure counted",
  );
  // So do the job's counts (recomputed at most every second).
  // Files that gave up (the night's column counts every file whose last try failed).
  await page.locator(".job .q span", { hasText: /^1 gave up$/ }).waitFor({
    timeout: LEAST_CEILING_MS,
  });
  // A number's heading stands over it: both end at the column's right edge.
  const rightEdges = await page.evaluate(
    `[...document.querySelectorAll("#nights")].flatMap((body) => {
        const heads = body.closest("table").querySelectorAll("thead th");
        const cells = body.querySelector("tr").querySelectorAll("td");
        return [2, 3, 4].map((i) => {
          const edge = (node) => {
            const range = document.createRange();
            range.selectNodeContents(node);
            return Math.round(range.getBoundingClientRect().right);
          };
          return edge(heads[i]) - edge(cells[i]);
        });
      })`,
  );
  assert.deepEqual(rightEdges, [0, 0, 0]);
  await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
  // On a phone the page, its long reason included, fits the screen's width.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  phone.setDefaultTimeout(LEAST_CEILING_MS);
  await phone.goto(d.base + "/");
  await phone.locator("#problems tr.problem", { hasText: "bad.fits" }).waitFor();
  // Evaluated in the page (a string: the test has no DOM types).
  assert.equal(await phone.evaluate("document.documentElement.scrollWidth"), 390);
  await phone.close();
  // One file that cannot be placed is that file's problem; the destination answers.
  await page.locator(".job .state", { hasText: "watching" }).waitFor();
  assert.match(reason, /bad\.fits: a file named 20240315 is in the way at /);

  // Fixed: Retry sends it.
  await Deno.remove(blocked);
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/api/jobs/default/retry")),
    problem.locator("button.retry").click(),
  ]);
  assert.equal(answer.status(), 200);
  assert.equal(answer.request().postDataJSON().file, "bad.fits");
  await page.locator("#recent tr.sent", { hasText: "bad.fits" }).waitFor({
    timeout: LEAST_CEILING_MS,
  });
  assert.deepEqual(await Deno.readFile(join(d.dest, "20240315", "bad.fits")), bad);
  await page.locator("#problems tr.problem").waitFor({ state: "detached" });
  await page.locator(".job .state", { hasText: "watching" }).waitFor();

  // Pause holds a new file; Resume sends it. The button is pressed while an update arrives (a
  // file sent meanwhile): the click still counts.
  // Over the button (Playwright waits for it, whatever updates replace it meanwhile).
  await page.locator(".job button.pause").hover();
  await page.mouse.down();
  await Deno.writeFile(join(d.watch, "meanwhile.fits"), randomBytes(1000));
  await waitFor(
    async () =>
      (await getJson<{ recent: Array<{ relPath: string }> }>(d.base, "/api/status")).recent
        .some((r) => r.relPath === "meanwhile.fits"),
    LEAST_CEILING_MS,
    "meanwhile.fits sent",
  );
  // The update that came meanwhile waits for the click (evaluated in the page).
  await waitFor(
    async () => await page.evaluate("held !== null") === true,
    LEAST_CEILING_MS,
    "an update while the button is held down",
  );
  await page.mouse.up();
  await page.locator(".job .state", { hasText: "paused" }).waitFor();
  await page.locator("#recent tr.sent", { hasText: "meanwhile.fits" }).waitFor();
  const held = randomBytes(1000);
  await Deno.writeFile(join(d.watch, "held.fits"), held);
  await waitFor(
    async () =>
      (await getJson<{ jobs: Array<{ queue: { queued: number } }> }>(d.base, "/api/status"))
        .jobs[0].queue.queued === 1,
    60_000,
    "held.fits queued while paused",
  );
  // Not sent while paused (an observation period: on a slow machine it only proves less).
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await page.locator("#recent tr.sent", { hasText: "held.fits" }).count(), 0);
  await page.locator(".job button.resume").click();
  await page.locator("#recent tr.sent", { hasText: "held.fits" }).waitFor({
    timeout: LEAST_CEILING_MS,
  });
  await page.locator(".job .state", { hasText: "watching" }).waitFor();
  assert.deepEqual(dialogs, []);
  assert.deepEqual(consoleErrors, [], "no failed request, no script error");
});
