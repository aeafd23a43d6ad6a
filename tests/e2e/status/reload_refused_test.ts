/**
 * A reload (SIGHUP) that is refused is said on every view, not in the log
 * alone: above the jobs on the status page, with when and why in
 * `/api/status`, as `image_transfer_config_last_reload_successful 0` in
 * `/metrics`; and the log file is opened again all the same (one moved away
 * by rotation is made anew). The next reload that is taken clears them. A
 * real `local` daemon, its page in Chromium.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { waitFor } from "../../helpers/files.ts";
import { chromiumPage, getJson, startStatusDaemon } from "../../helpers/status.ts";

type Refusal = { reloadRefused: { at: string; reason: string } | null };

const GAUGE = /^image_transfer_config_last_reload_successful (\d)$/m;

Deno.test("a refused reload is said on the page, in /api/status and /metrics, and reopens a rotated log file; the next reload taken clears them", async () => {
  const logs = await Deno.makeTempDir({ prefix: "itx-reload-log-" });
  const log = join(logs, "image_transfer.log");
  try {
    await using d = await startStatusDaemon({ log_file: log });
    await using browser = await chromiumPage({ viewport: { width: 1000, height: 900 } });
    const page = browser.page;
    const metric = async () =>
      Number(GAUGE.exec(await (await fetch(`${d.base}/metrics`)).text())?.[1]);
    assert.equal(await metric(), 1);
    assert.equal((await getJson<Refusal>(d.base, "/api/status")).reloadRefused, null);
    await page.goto(d.base + "/");
    await page.locator("#conn", { hasText: "live" }).waitFor();
    assert.equal(await page.locator("#reload").isVisible(), false);

    // Rotated away, as logrotate would; then a config the daemon must refuse.
    await waitFor(() => existsSync(log), undefined, "the log file");
    await Deno.rename(log, `${log}.1`);
    const good = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(d.config, `${good}retry_delay_seconds: -5\n`);
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput("Reload refused, the running config is kept");

    // Before: the page and /metrics said nothing, and the log went on into the moved file.
    const refused = (await getJson<Refusal>(d.base, "/api/status")).reloadRefused;
    assert.ok(refused, "/api/status says the reload was refused");
    assert.match(refused.reason, /retry_delay_seconds/);
    assert.ok(!Number.isNaN(Date.parse(refused.at)));
    assert.equal(await metric(), 0);
    const banner = page.locator("#reload");
    await banner.filter({ hasText: "was refused" }).waitFor();
    assert.match(
      await banner.innerText(),
      // When, as `status` says times (before: the browser's own way, `11/30/2026, 4:54:41 AM`).
      /^The last reload \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) was refused; the daemon runs with the config it had: .*retry_delay_seconds/,
    );
    await waitFor(
      async () => existsSync(log) && (await Deno.readTextFile(log)).includes("Reload refused"),
      undefined,
      "the refusal in a new log file",
    );

    await Deno.writeTextFile(d.config, good);
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reloaded .*: 1 job\(s\)/);
    assert.equal((await getJson<Refusal>(d.base, "/api/status")).reloadRefused, null);
    assert.equal(await metric(), 1);
    await banner.waitFor({ state: "hidden" });
  } finally {
    await Deno.remove(logs, { recursive: true });
  }
});
