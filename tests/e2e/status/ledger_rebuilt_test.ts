/**
 * A ledger found damaged at the start is set aside and a new one started: `status` says so, and
 * so do the status page (above the jobs) and `/api/status` (`ledgerRebuilt`), where the files
 * found at their destination then are listed as arrived. A real `local` daemon, its page in
 * Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes } from "../../helpers/files.ts";
import { chromiumPage, getJson, startStatusDaemon } from "../../helpers/status.ts";

type Rebuilt = { ledgerRebuilt: { at: number; reason: string; damagedCopy: string } | null };

Deno.test("a ledger rebuilt at the start is said on the page and in /api/status, as status says it", async () => {
  await using d = await startStatusDaemon();
  const bytes = randomBytes(3000);
  await Deno.writeFile(join(d.watch, "a.fits"), bytes);
  await d.daemon.waitForOutput("Successfully transferred");
  assert.equal((await getJson<Rebuilt>(d.base, "/api/status")).ledgerRebuilt, null);
  await d.daemon.stop();
  // Its first page overwritten: SQLite finds the file malformed.
  const ledger = await Deno.open(join(d.state, "ledger.sqlite"), { write: true });
  try {
    await ledger.seek(100, Deno.SeekMode.Start);
    await ledger.write(new TextEncoder().encode("garbage".repeat(200)));
  } finally {
    ledger.close();
  }
  const env = { HOME: join(d.root, "home") };
  const daemon = startCli(["run", "-c", d.config], { env });
  try {
    await daemon.waitForOutput("Watching");
    assert.match(daemon.stderr(), /is damaged .* it was moved to /);
    const status = await runCli(["status", "-c", d.config], { env });
    assert.match(status.stdout, /rebuilt .*: the old one was damaged \(.+\); it is kept as /);

    // Before: the page and /api/status said nothing of it.
    const rebuilt = (await getJson<Rebuilt>(d.base, "/api/status")).ledgerRebuilt;
    assert.ok(rebuilt, "/api/status says the ledger was rebuilt");
    assert.ok(rebuilt.at > 0);
    assert.ok(rebuilt.reason.length > 0);
    assert.match(rebuilt.damagedCopy, /ledger\.sqlite\.damaged-/);
    await using browser = await chromiumPage({ viewport: { width: 1000, height: 900 } });
    await browser.page.goto(d.base + "/");
    const banner = browser.page.locator("#rebuilt");
    await banner.filter({ hasText: "rebuilt" }).waitFor();
    assert.match(
      await banner.innerText(),
      /^The ledger was rebuilt .+: the old one was damaged \(.+\); it is kept as .*ledger\.sqlite\.damaged-\S+\. Files found at their destination then are listed as arrived, not sent again\.$/,
    );
  } finally {
    await daemon.stop();
  }
});
