/**
 * Night reports on a real ledger: the last nights are counted back from tonight, so a file dated
 * ahead (an instrument with a wrong clock) never takes the place of the nights that are over.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { lastNights, writeNightReport } from "../../../src/pipeline/night_report.ts";
import { testJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

const job = testJob("cam", {
  watch_path: "/in",
  remote_base_path: "/out",
  transfer_method: "local",
  night_timezone: "UTC",
  night_rollover_hour: 12,
});

Deno.test("night report: a night folder dated ahead (a wrong clock) is left out, the last nights up to tonight are reported", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-night-report-" });
  const ledger = Ledger.open(join(root, "state"));
  const logs = await captureLogs();
  try {
    const rows = new FileRows(ledger, "cam", "local:/out/");
    const arrived = Date.parse("2026-12-19T06:00:00Z");
    rows.markDone([
      {
        relPath: "wrong clock.fits",
        size: 7,
        mtimeMs: 0,
        destination: "20270601/wrong clock.fits",
      },
      { relPath: "a.fits", size: 10, mtimeMs: 0, destination: "20261218/a.fits" },
      { relPath: "b.fits", size: 20, mtimeMs: 0, destination: "20261217/b.fits" },
      { relPath: "c.fits", size: 30, mtimeMs: 0, destination: "20261216/c.fits" },
    ], arrived);
    // 08:00 UTC on the 19th, before the rollover at 12:00: tonight is still the 18th's night.
    const now = new Date("2026-12-19T08:00:00Z");
    const file = await writeNightReport(job, rows, 2, now);
    const report = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(
      report.nights.map((n: { night: string; files_sent: number }) => [n.night, n.files_sent]),
      [["20261218", 1], ["20261217", 1]],
    );
    assert.equal(
      logs.count("info", "left out, being after tonight's"),
      1,
      "the night left out is said",
    );
    const said = logs.records.find((r) => String(r.rawMessage).includes("left out"))!;
    assert.equal(said.properties.ahead, "20270601");
    assert.equal(said.properties.tonight, "20261218");
  } finally {
    await logs.stop();
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("lastNights: the newest night folders that hold files up to tonight's, never one after it", () => {
  const names = ["", "20261201", "20261130", "20270601", "20261202", "20261201"];
  const now = new Date("2026-12-02T13:00:00Z"); // after the rollover: tonight is the 2nd's night
  assert.deepEqual(lastNights(job, names, 2, now), {
    recent: ["20261202", "20261201"],
    tonight: "20261202",
    ahead: ["20270601"],
  });
  // Before the rollover the 2nd's night has not begun: a file already in it is dated ahead.
  const morning = new Date("2026-12-02T09:00:00Z");
  assert.deepEqual(lastNights(job, names, 5, morning).recent, ["20261201", "20261130"]);
  assert.deepEqual(lastNights(job, names, 5, morning).ahead, ["20270601", "20261202"]);
});

Deno.test("night report: writing one removes the reports older than 90 days (of any job), nothing else", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-night-report-" });
  const ledger = Ledger.open(join(root, "state"));
  try {
    const reports = join(root, "state", "reports");
    await Deno.mkdir(reports);
    const old = ["cam-20260901T080000Z.json", "a job gone-20260919T075959Z-2.json"];
    const kept = [
      "cam-20260919T080000Z.json", // 90 days before: kept
      "cam-20261201T080000Z.json",
      "notes.txt",
      "cam-20200101T000000Z.json.tmp",
    ];
    for (const name of [...old, ...kept]) await Deno.writeTextFile(join(reports, name), "{}");
    // Not a report file: a link and a folder of that name shape stay, as does the link's target.
    const target = join(root, "target.json");
    await Deno.writeTextFile(target, "mine");
    await Deno.symlink(target, join(reports, "cam-20200101T000000Z.json"));
    await Deno.mkdir(join(reports, "cam-20200102T000000Z.json"));
    const now = new Date("2026-12-18T08:00:00Z");
    const file = await writeNightReport(job, new FileRows(ledger, "cam", "local:/out/"), 1, now);
    const left = [...Deno.readDirSync(reports)].map((entry) => entry.name).sort();
    assert.deepEqual(
      left,
      [
        ...kept,
        "cam-20200101T000000Z.json",
        "cam-20200102T000000Z.json",
        file.split("/").at(-1)!,
      ].sort(),
    );
    assert.equal(await Deno.readTextFile(target), "mine");
  } finally {
    ledger.close();
    await Deno.remove(root, { recursive: true });
  }
});
