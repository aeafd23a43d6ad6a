/**
 * An open status page whose daemon stops answering (stopped, or killed) says so plainly: the jobs
 * no longer show a live state (grey, `unknown`, since when the daemon does not answer), the uptime
 * is no longer claimed, and it shows the jobs live again once a daemon answers there again (started
 * anew). A daemon that hangs (its connection left open, no word of it) is shown so once no update
 * came for a while, and live again as it goes on. A real `local` daemon under an open page in
 * Chromium: stopped or killed and started again, or stopped (SIGSTOP) and continued.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS } from "../../helpers/files.ts";
import { liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

/** Where the run leaves its screenshot of the page of a daemon that does not answer. */
const SCREENSHOT = new URL("../../output/status-page-lost.png", import.meta.url);

// Stopped (its streams end, and a page coming back while it stops is answered 503) or killed.
for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  Deno.test(`status page: a daemon ended by ${signal} under the open page greys its jobs out as unknown, and a daemon started again shows them live`, async () => {
    await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
    await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 700 } });
    const page = browser.page;
    const job = page.locator('.job[data-job="default"]');
    await job.locator(".state.s-watching", { hasText: "watching" }).waitFor();
    assert.match(await page.locator("#uptime").innerText(), /^up \d+ min$/);

    await d.daemon.stop(signal);
    await page.locator("body.lost").waitFor();
    await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
    if (signal === "SIGKILL") await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
    assert.equal(await job.locator(".state").innerText(), "unknown");
    assert.equal(await page.locator(".s-watching").count(), 0, "no job shown as watching");
    assert.match(
      await job.locator(".since").innerText(),
      /^the daemon has not answered since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d; it was watching at /,
    );
    assert.match(
      await page.locator("#conn.lost").innerText(),
      /^The daemon has not answered since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*what its jobs do now is unknown/,
    );
    assert.equal(await page.locator("#uptime").innerText(), "", "no uptime claimed");
    const filter = await page.evaluate(
      "getComputedStyle(document.querySelector('.job[data-job=default]')).filter",
    );
    assert.match(String(filter), /grayscale\(1\)/, "the job greyed out");

    // The daemon started again (on the same port): the page finds it and shows its jobs live.
    const again = startCli(["run", "-c", d.config], { env: { HOME: join(d.root, "home") } });
    try {
      await again.waitForOutput("Watching");
      await job.locator(".state.s-watching", { hasText: "watching" }).waitFor();
      await page.locator("#conn", { hasText: "live" }).waitFor();
      assert.equal(await page.locator("body.lost").count(), 0);
      assert.match(await job.locator(".since").innerText(), /^since \d+ s ago$/);
      assert.match(await page.locator("#uptime").innerText(), /^up 0 min$/);
    } finally {
      await again.stop();
    }
  });
}

Deno.test("status page: a daemon that hangs (stopped, its connection left open) is shown unknown once no update came for a while, and live again when it goes on", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 700 } });
  const page = browser.page;
  const job = page.locator('.job[data-job="default"]');
  await job.locator(".state.s-watching").waitFor();

  d.daemon.process.kill("SIGSTOP");
  try {
    // No word of the connection: only the updates that stop coming (one every 15 s at least) tell.
    await page.locator("body.lost").waitFor({ timeout: 3 * LEAST_CEILING_MS });
    assert.equal(await job.locator(".state").innerText(), "unknown");
    assert.equal(await page.locator(".s-watching").count(), 0, "no job shown as watching");
  } finally {
    d.daemon.process.kill("SIGCONT");
  }
  await job.locator(".state.s-watching").waitFor({ timeout: 3 * LEAST_CEILING_MS });
  await page.locator("#conn", { hasText: "live" }).waitFor();
  assert.equal(await page.locator("body.lost").count(), 0);
});
