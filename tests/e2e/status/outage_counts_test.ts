/**
 * Files that gave up count once, as failed, in every report before, during and after an outage
 * of their destination: `/metrics`, `/api/status`, the status page (in Chromium), `status`, and
 * the ledger's rows. A real daemon sends with scp to a real sshd whose night folder it may not
 * write; the sshd is stopped (the files' slow retries come due while the destination is down) and
 * started again (the job's pause ends once every waiting file failed at the folder, with no file
 * arriving); once the folder is writable, every file arrives and nothing is counted.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { runCli, startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { getJson } from "../../helpers/status.ts";

const FILES = ["a.fits", "b.fits", "c.fits", "d.fits", "e.fits"];
const NIGHT = "20240315";
const NIGHT_TIME = new Date("2024-03-15T20:00:00Z");

interface Job {
  state: string;
  held: boolean;
  queue: Record<string, number>;
  failed: number;
  sent: number;
}
interface Status {
  jobs: Job[];
  problems: Array<{ relPath: string; state: string; nextAttemptAt: number }>;
}

/** Where each report puts the job's files not arrived yet. */
interface Counts {
  /** Files waiting to be sent (queued, retrying, being sent, planned). */
  waiting: number;
  /** Files that used up their fast retries. */
  failed: number;
}

/** The `image_transfer_*` series of the job (`name{labels}` → value). */
function series(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^(image_transfer_\w+)\{job="default",method="scp"(.*)\} (\S+)$/.exec(line);
    if (match) values.set(match[1] + match[2], Number(match[3]));
  }
  return values;
}

Deno.test("an outage of the destination: files that gave up count once, as failed, in metrics, API, page, status and ledger", async () => {
  const sshd = await startSshd();
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const box = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.3,
    night_date_source: "mtime",
    retry_attempts: 1,
    retry_delay_seconds: 0.2,
    retry_max_delay_seconds: 2,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  // The night folder is there but the login user may not write into it.
  const night = join(box.remote, NIGHT);
  await Deno.mkdir(night);
  await Deno.chown(night, sshd.uid, sshd.gid);
  await Deno.chmod(night, 0o555);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const page = await browser.newPage();
    page.setDefaultTimeout(LEAST_CEILING_MS);
    await page.goto(base + "/");
    const sent = new Map<string, Uint8Array>();
    for (const name of FILES) {
      sent.set(name, randomBytes(4000));
      await Deno.writeFile(join(box.watch, name), sent.get(name)!);
      await Deno.utime(join(box.watch, name), NIGHT_TIME, NIGHT_TIME);
    }

    const reports = {
      async metrics(): Promise<Counts> {
        const values = series(await (await fetch(`${base}/metrics`)).text());
        const queued = ["planning", "queued", "waiting", "sending", "unrecorded"]
          .reduce(
            (sum, state) => sum + values.get(`image_transfer_queue_files,state="${state}"`)!,
            0,
          );
        assert.equal(values.get("image_transfer_files_waiting"), queued, "waiting = its states");
        const failed = values.get("image_transfer_files_failed")!;
        assert.equal(values.get(`image_transfer_queue_files,state="failed"`), failed);
        // The oldest waiting file is one that waits to be sent, not one that failed.
        if (queued === 0) {
          assert.equal(values.get("image_transfer_oldest_waiting_file_age_seconds"), 0);
        }
        return { waiting: queued, failed };
      },
      async api(): Promise<Counts> {
        const [job] = (await getJson<Status>(base, "/api/status")).jobs;
        const { planning, queued, waiting, sending, unrecorded, failed } = job.queue;
        assert.equal(job.failed, failed, "the job's failed files are the queue's");
        return { waiting: planning + queued + waiting + sending + unrecorded, failed };
      },
      async page(): Promise<Counts> {
        const card = await page.locator(".job .q span").allTextContents();
        const number = (words: string) =>
          Number(card.find((text) => text.endsWith(` ${words}`))?.split(" ")[0]);
        return {
          waiting: number("pending") + number("sending") + number("waiting to retry"),
          failed: number("gave up"),
        };
      },
      /** `status`: its live line, and its ledger line (a file being tried again is `transferring`). */
      async status(): Promise<Counts & { ledger: Counts }> {
        const out = await runCli(["status", "-c", box.config], { env: box.env });
        assert.equal(out.code, 0, out.stderr);
        const live = /pending (\d+), sending (\d+), waiting to retry (\d+); sent \d+, failed (\d+)/
          .exec(out.stdout);
        const rows =
          /Job default: pending (\d+), transferring (\d+)(?: \([^)]*\))?, done \d+, failed (\d+)/
            .exec(out.stdout);
        assert.ok(live && rows, out.stdout);
        const [pending, sending, retrying, failed] = live.slice(1).map(Number);
        return {
          waiting: pending + sending + retrying,
          failed,
          ledger: { waiting: Number(rows[1]), failed: Number(rows[2]) + Number(rows[3]) },
        };
      },
    };
    /** What each report counts, read at once (the ledger's as `status` prints its rows). */
    const all = async () => {
      const [metrics, api, shown, status] = await Promise.all([
        reports.metrics(),
        reports.api(),
        reports.page(),
        reports.status(),
      ]);
      return {
        metrics,
        api,
        page: shown,
        status: { waiting: status.waiting, failed: status.failed },
        ledger: status.ledger,
      };
    };
    const failing = { waiting: 0, failed: FILES.length };
    const expectFailing = async (when: string) => {
      for (const [report, counts] of Object.entries(await all())) {
        assert.deepEqual(counts, failing, `${when}: ${report}`);
      }
    };
    /** While waiting for `condition`, every poll of metrics, API and page says all five failed. */
    const holdingWhile = async (condition: () => Promise<boolean>, what: string) => {
      await waitFor(
        async () => {
          const [metrics, api, shown] = await Promise.all([
            reports.metrics(),
            reports.api(),
            reports.page(),
          ]);
          assert.deepEqual({ metrics, api, page: shown }, {
            metrics: failing,
            api: failing,
            page: failing,
          }, `while waiting for ${what}`);
          return await condition();
        },
        LEAST_CEILING_MS,
        what,
      );
    };
    const state = async () => (await getJson<Status>(base, "/api/status")).jobs[0].state;

    // All five give up (the folder refuses them) and are tried again slowly.
    await waitFor(
      () => daemon.stderr().split("Failed to transfer").length - 1 === FILES.length,
      LEAST_CEILING_MS,
      "every file to give up",
    );
    await waitFor(
      async () =>
        JSON.stringify(Object.values(await all())) === JSON.stringify(Array(5).fill(failing)),
      LEAST_CEILING_MS,
      "every report to count the five files as failed",
    );
    await expectFailing("before the outage");

    // The destination goes away. Each file's slow retry comes due while it cannot be reached.
    // A file being tried again at that moment is not listed among the problems: asked again.
    let problems: Status["problems"] = [];
    await waitFor(
      async () =>
        (problems = (await getJson<Status>(base, "/api/status")).problems).length === FILES.length,
      LEAST_CEILING_MS,
      "every file among the problems",
    );
    const lastDue = Math.max(...problems.map((p) => p.nextAttemptAt));
    await sshd.halt();
    await holdingWhile(async () => await state() === "unreachable", "the job to be unreachable");
    await holdingWhile(
      () => Promise.resolve(Date.now() > lastDue + 1000),
      "every slow retry to be due",
    );
    await expectFailing("during the outage");
    // The page promises no try at a time gone by: the files wait for the destination.
    const waitingForIt = Array(FILES.length).fill("failing; waiting for the destination");
    await page.locator(".job .state", { hasText: "destination unreachable" }).waitFor();
    assert.deepEqual(await nextColumn(page), waitingForIt);
    assert.doesNotMatch(daemon.stderr(), /Successfully transferred/);

    // Back: the host answers, the folder still refuses them; still failed, once each.
    await sshd.restart();
    await holdingWhile(async () => await state() === "failing", "the host to answer again");
    // Each file's probe fails at the folder, as no other file would: with none left the pause
    // ends, and no report says the job waits for its destination any more.
    await holdingWhile(
      async () => !(await getJson<Status>(base, "/api/status")).jobs[0].held,
      "the pause to end once every waiting file failed on its own",
    );
    await expectFailing("after the outage");
    await page.locator(".job .state", { hasText: "failing" }).waitFor();
    await holdingWhile(
      async () => !(await nextColumn(page)).some((next) => next.includes("destination")),
      "the page to stop saying the files wait for the destination",
    );
    const after = await runCli(["status", "-c", box.config], { env: box.env });
    assert.doesNotMatch(after.stdout, /paused: destination unreachable/, after.stdout);

    // The folder is writable: every file arrives, nothing is counted any more.
    await Deno.chmod(night, 0o755);
    const none = { waiting: 0, failed: 0 };
    await waitFor(
      async () =>
        JSON.stringify(Object.values(await all())) === JSON.stringify(Array(5).fill(none)),
      LEAST_CEILING_MS,
      "every report to count nothing once the files arrived",
    );
    for (const [name, bytes] of sent) {
      assert.deepEqual(await Deno.readFile(join(night, name)), bytes, name);
    }
  } finally {
    await daemon.stop();
    await browser.close();
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
  }
});

/** The Failures table's "Next" column, as the page shows it. */
async function nextColumn(page: Page): Promise<string[]> {
  return await page.locator("#problems tr.problem td:nth-child(4)").allTextContents();
}
