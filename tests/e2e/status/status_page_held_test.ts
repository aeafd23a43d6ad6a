/**
 * A job its destination pause holds (a `local` destination folder that cannot be written: every
 * file's night folder is made there) shows that pause on the status page as `status` says it
 * (`paused: destination failing`), not only the state of its last failure. A real daemon; the
 * folder is made immutable (root, who runs the tests, is refused too); the page in Chromium.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { whileImmutable } from "../../helpers/immutable.ts";
import { ONE_RETRY_THEN_AN_HOUR } from "../../helpers/jobs.ts";
import { liveStatusPage, startStatusDaemon } from "../../helpers/status.ts";

/** Where the run leaves its screenshot of the paused job's card. */
const SCREENSHOT = new URL("../../output/status-page-held.png", import.meta.url);

Deno.test("status page: a job paused because its destination folder cannot be written says paused: destination failing, as status does", async () => {
  await using d = await startStatusDaemon({
    rescan_interval_seconds: 0,
    ...ONE_RETRY_THEN_AN_HOUR,
  });
  const env = { HOME: join(d.root, "home") };
  await Deno.mkdir(d.dest);
  await whileImmutable(d.dest, async () => {
    await using browser = await liveStatusPage(d.base, { viewport: { width: 1000, height: 700 } });
    const page = browser.page;
    await Deno.writeFile(join(d.watch, "a.fits"), randomBytes(3000));

    let said = "";
    await waitFor(
      async () => {
        const out = await runCli(["status", "-c", d.config], { env });
        said = out.stdout.split("\n").find((line) => line.startsWith("Job default: ")) ?? "";
        return said.includes("; paused: destination failing since ");
      },
      LEAST_CEILING_MS,
      "status to say the job is paused",
    );
    const job = page.locator('.job[data-job="default"]');
    const state = job.locator(".state", { hasText: "paused: destination failing" });
    await state.waitFor();
    await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
    assert.equal(await state.innerText(), "paused: destination failing");
    assert.match(await job.locator(".since").innerText(), /^since \d+ s ago$/);
    assert.match(
      await job.locator(".reason").innerText(),
      /may not write into the destination folder/,
    );
    assert.match(await job.locator(".held").innerText(), /one is tried at a time/);
    assert.match(said, /may not write into the destination folder/);
  });
});
