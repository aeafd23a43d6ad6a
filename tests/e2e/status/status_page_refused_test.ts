/**
 * A status page whose live stream the daemon refuses says why, not that the daemon does not
 * answer: with too many pages open (503) it says so and to close some, and shows the jobs live as
 * soon as one is closed; with a token the daemon no longer takes (401: the token file changed and
 * the daemon started again with it) it says to open the page again with the new link, and that
 * link shows the jobs live. A real `local` daemon under an open page in Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { chromiumPage, startStatusDaemon } from "../../helpers/status.ts";

/** Where the runs leave their screenshots of the page whose stream was refused. */
const SCREENSHOTS = new URL("../../output/", import.meta.url);

Deno.test("status page: opened with too many pages open, the page says so and to close some, and goes live once one is closed", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  await using browser = await chromiumPage({ viewport: { width: 1000, height: 700 } });
  const page = browser.page;
  // Every place taken: the 50 streams the daemon serves at once.
  const others: Response[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const response = await fetch(`${d.base}/api/events`);
      assert.equal(response.status, 200, `stream ${i + 1}`);
      others.push(response);
    }
    await page.goto(d.base + "/");
    const conn = page.locator("#conn.lost");
    await conn.filter({ hasText: "Too many status pages" }).waitFor();
    await Deno.mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({
      path: new URL("status-page-too-many.png", SCREENSHOTS).pathname,
      fullPage: true,
    });
    // Before: "The daemon has not answered since ... (stopped?)", of a daemon that answers.
    assert.equal(
      await conn.innerText(),
      "Too many status pages are open (the daemon serves 50 at once): close some; this page " +
        "tries again every 10 s; what its jobs do now is unknown",
    );
    // One closed: the page takes its place at its next try.
    await others.shift()!.body!.cancel();
    await page.locator("#conn", { hasText: "live" }).waitFor();
    await page.locator('.job[data-job="default"] .state.s-watching').waitFor();
    assert.equal(await page.locator("body.lost").count(), 0);
  } finally {
    for (const response of others) await response.body?.cancel().catch(() => {});
  }
});

Deno.test("status page: a token changed since the page was opened (the daemon started again with the new one) is said, with the new link to open; that link shows the jobs live", async () => {
  const tokens = await Deno.makeTempDir({ prefix: "itx-status-token-" });
  try {
    const file = join(tokens, "token");
    const oldToken = "old-token-0123456789abcdef0123456789";
    const newToken = "new-token-fedcba9876543210fedcba98";
    await Deno.writeTextFile(file, oldToken + "\n", { mode: 0o600 });
    await using d = await startStatusDaemon({
      rescan_interval_seconds: 0,
      status_token_file: file,
    });
    await using browser = await chromiumPage({ viewport: { width: 1000, height: 700 } });
    const page = browser.page;
    await page.goto(`${d.base}/?token=${oldToken}`);
    await page.locator("#conn", { hasText: "live" }).waitFor();
    const job = page.locator('.job[data-job="default"]');
    await job.locator(".state.s-watching").waitFor();

    // A new token, which the daemon takes when it starts again (on the same port).
    await d.daemon.stop();
    await Deno.writeTextFile(file, newToken + "\n", { mode: 0o600 });
    const again = startCli(["run", "-c", d.config], { env: { HOME: join(d.root, "home") } });
    try {
      await again.waitForOutput("Watching");
      const conn = page.locator("#conn.lost");
      await conn.filter({ hasText: "access token" }).waitFor();
      await Deno.mkdir(SCREENSHOTS, { recursive: true });
      await page.screenshot({
        path: new URL("status-page-old-token.png", SCREENSHOTS).pathname,
        fullPage: true,
      });
      // Before: "The daemon has not answered since ... (stopped?)", of a daemon that answers.
      assert.match(
        await conn.innerText(),
        /^The daemon no longer takes this page's access token \(it was changed since the page was opened\): open the page again with the new link \(\/\?token=NEW_TOKEN\); what its jobs do now is unknown; below is what it told at /,
      );
      assert.doesNotMatch(await conn.innerText(), /not answered|stopped/);
      assert.equal(await job.locator(".state").innerText(), "unknown");
      // The new link: live again.
      await page.goto(`${d.base}/?token=${newToken}`);
      await page.locator("#conn", { hasText: "live" }).waitFor();
      await job.locator(".state.s-watching").waitFor();
      assert.equal(await page.locator("body.lost").count(), 0);
    } finally {
      await again.stop();
    }
  } finally {
    await Deno.remove(tokens, { recursive: true });
  }
});
