/**
 * A button pressed on the status page while the daemon does not answer (it
 * stopped, its computer restarts) says the press was not taken, instead of
 * nothing happening (the operator would think the job paused). A real `local`
 * daemon, stopped under an open page in Chromium.
 */
import assert from "node:assert/strict";
import { LEAST_CEILING_MS, waitFor } from "../../helpers/files.ts";
import { chromiumPage, startStatusDaemon } from "../../helpers/status.ts";

Deno.test("status page: Pause pressed while the daemon is down says it was not taken", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0 });
  await using browser = await chromiumPage({ viewport: { width: 1000, height: 900 } });
  const page = browser.page;
  const dialogs: string[] = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  await page.goto(d.base + "/");
  await page.locator("#conn", { hasText: "live" }).waitFor();
  await page.locator(".job button.pause").waitFor();
  await d.daemon.stop();
  // Reconnecting, then (not back in a few seconds) saying the daemon does not answer.
  await page.locator("#conn.off, #conn.lost").waitFor();
  await page.locator(".job button.pause").click();
  await waitFor(() => dialogs.length > 0, LEAST_CEILING_MS, "a message after the press");
  assert.equal(dialogs.length, 1);
  assert.match(dialogs[0], /^pause failed: the daemon did not answer \(.+\)$/);
});
