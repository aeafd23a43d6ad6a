/**
 * The status page on the narrowest phones (320 CSS pixels): the line under the
 * title (connection, last success, uptime, version) wraps instead of running
 * off the screen and making the whole page scroll sideways. A real `local`
 * daemon that has sent a file, in Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes } from "../../helpers/files.ts";
import { chromiumPage, startStatusDaemon } from "../../helpers/status.ts";

Deno.test("status page at 320 px: the header line wraps, nothing runs off the screen", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  await Deno.writeFile(join(d.watch, "m31.fits"), randomBytes(10_000));
  await using browser = await chromiumPage({
    viewport: { width: 320, height: 700 },
    isMobile: true,
  });
  const page = browser.page;
  await page.goto(d.base + "/");
  await page.locator("#conn", { hasText: "live" }).waitFor();
  await page.locator("#last", { hasText: /^last success \d+ s ago$/ }).waitFor();
  await page.locator("#version", { hasText: /^version / }).waitFor();
  // Evaluated in the page (a string: the test has no DOM types).
  assert.equal(await page.evaluate("document.documentElement.scrollWidth"), 320);
  const right = await page.evaluate(
    `Math.max(...["conn", "last", "uptime", "version"].map((id) =>
        document.getElementById(id).getBoundingClientRect().right))`,
  );
  assert.ok(Number(right) <= 320, `the header ends at ${right} px`);
});
