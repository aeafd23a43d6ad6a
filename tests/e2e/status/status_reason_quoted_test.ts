/**
 * A reason that names a file with a line break is shown as the log shows it: quoted, its line
 * break written `\n` and a backslash `\\`, on the status page (Failures, the job's card) and in
 * `status`; a file whose name holds a backslash and an `n` typed in it reads otherwise (unquoted,
 * `\n` as typed). A real `local` daemon, its night folder's place taken by a file so both files
 * fail on their own; the page in Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

/** Where the run leaves its screenshot of the Failures table. */
const SCREENSHOT = new URL("../../output/status-page-reasons.png", import.meta.url);

Deno.test("status page and status: a reason naming a file with a line break is quoted as the log quotes it, told from a name with a backslash and n typed in it", async () => {
  await using d = await startStatusDaemon({ rescan_interval_seconds: 0, retry_attempts: 0 });
  const env = { HOME: join(d.root, "home") };
  const broken = "-f\nx.fits", typed = "-f\\nx.fits";
  await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 800 } });
  const page = browser.page;
  // Their night folder's place is taken by a file: each fails on its own.
  await Deno.mkdir(d.dest, { recursive: true });
  await Deno.writeTextFile(join(d.dest, "20240315"), "in the way");
  const night = new Date("2024-03-15T22:00:00Z");
  for (const name of [broken, typed]) {
    await Deno.writeFile(join(d.watch, name), randomBytes(2000));
    await Deno.utime(join(d.watch, name), night, night);
  }
  const rows = page.locator("#problems tr.problem");
  await waitFor(async () => await rows.count() === 2, LEAST_CEILING_MS, "both files failing");
  await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
  // As the log writes them: the reason naming the line break quoted, the other as it is.
  const quoted = `"Cannot send ${d.watch}/-f\\nx.fits: `;
  const plain = `Cannot send ${d.watch}/-f\\nx.fits: `;
  const reasons = new Map<string, string>();
  for (const row of await rows.all()) {
    reasons.set(await row.locator("td.name").innerText(), await row.locator("td.err").innerText());
  }
  assert.deepEqual([...reasons.keys()].sort(), ['"-f\\nx.fits"', "-f\\nx.fits"]);
  assert.ok(reasons.get('"-f\\nx.fits"')!.startsWith(quoted), reasons.get('"-f\\nx.fits"'));
  assert.ok(reasons.get('"-f\\nx.fits"')!.endsWith('"'), reasons.get('"-f\\nx.fits"'));
  assert.ok(reasons.get("-f\\nx.fits")!.startsWith(plain), reasons.get("-f\\nx.fits"));
  // The job's card: its last failure's reason, either one, written so too.
  const reason = await page.locator('.job[data-job="default"] .reason').innerText();
  assert.ok(reason.startsWith(quoted) || reason.startsWith(plain), reason);

  const log = d.daemon.stderr();
  assert.ok(log.includes(`: ${quoted}`), log);
  const out = await runCli(["status", "-c", d.config], { env });
  assert.equal(out.code, 0, out.stderr);
  const lines = out.stdout.split("\n");
  const line = (start: string) => lines.find((text) => text.includes(start)) ?? "";
  assert.ok(line(`[default] "-f\\nx.fits": `).includes(`": ${quoted}`), out.stdout);
  assert.ok(line(`[default] -f\\nx.fits: `).includes(`: ${plain}`), out.stdout);
  // The job's line of the live daemon: its last failure's reason, either one, written so too.
  const live = line("Job default: failing since ");
  assert.ok(live.includes(`: ${quoted}`) || live.includes(`: ${plain}`), out.stdout);
});
