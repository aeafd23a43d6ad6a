/**
 * The intake over a real ledger and a real watch folder: how files found by
 * scans are taken into observation, and how a file gone is looked at.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { BatchSender } from "../../../src/pipeline/batch_sender.ts";
import { FileTable } from "../../../src/pipeline/file_table.ts";
import { Intake, type IntakeContext } from "../../../src/pipeline/intake.ts";
import { LocalTransport } from "../../../src/transfer/local/local.ts";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { ASTROPY_FITS_DATA, card, imageParts } from "../../helpers/fits.ts";
import { waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { captureLogs } from "../../helpers/log_capture.ts";

/**
 * The intake of `job` over a real ledger (in `root`) and file table, with the real local
 * transport; `scanIfFolder` stands for the watch's look whether a folder took a gone file's name.
 * `queued`: the sizes of the files queued; `settled`: how often the intake said something settled.
 */
function openIntake(
  root: string,
  job: JobConfig,
  scanIfFolder: IntakeContext["scanIfFolder"] = () => Promise.resolve(false),
) {
  const ledger = Ledger.open(join(root, "state"));
  const transport = new LocalTransport(job);
  const state = { queued: [] as number[], settled: 0 };
  const table = new FileTable({
    job,
    ledger,
    filter: createFileFilter(job),
    observe: (path, activity) => intake.observe(path, activity),
    onDue: () => {},
  });
  const intake: Intake = new Intake({
    job,
    table,
    once: false,
    closedForMs: 50,
    transport,
    signal: new AbortController().signal,
    scanIfFolder,
    stopping: () => false,
    onQueued: (bytes) => state.queued.push(bytes),
    onSettled: () => state.settled++,
    onFailedGone: () => {},
  });
  const close = async () => {
    await intake.close();
    table.close();
    await transport.close();
    ledger.close();
  };
  return { ledger, transport, table, intake, state, close };
}

Deno.test("Intake: a file of a folder moved in that another scan found first is told how it came (astropy's double_ext.fits, NEXTEND larger than its extensions, goes without waiting the grace)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const job = localTestJob(root, {
    stability_window_seconds: 0.2,
    fits_incomplete_grace_seconds: 3600,
  });
  await Deno.mkdir(join(job.watch_path, "night1"), { recursive: true });
  const file = { path: join(job.watch_path, "night1", "double_ext.fits"), relPath: "" };
  file.relPath = "night1/double_ext.fits";
  await Deno.copyFile(join(ASTROPY_FITS_DATA, "double_ext.fits"), file.path);
  const { table, intake, state: { queued }, close } = openIntake(root, job);
  try {
    // Found first as any new file is (the re-read of the folder it came into, say) ...
    assert.deepEqual(intake.found([file]), [file]);
    // ... then by the scan of the folder moved in, which tells that it was put there whole.
    assert.deepEqual(intake.found([file], false, "moved"), [], "held already: not found twice");
    await waitFor(() => queued.length > 0, 20_000, "the file queued (not held for the grace)");
    assert.equal(table.rows.get(file.relPath)?.state, "pending");
  } finally {
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * `frame.fits` goes while the intake observes it (`observe`: made and observed, not complete;
 * then deleted, and its removal told) and is back under its name (`comeBack`: the new bytes put
 * there, and told as the watch tells them) while the intake looks whether a folder took it: the
 * file back keeps its record (nothing is said dropped), is found complete, and arrives whole.
 */
async function backWhileLooked(
  observe: (at: string, opened: ReturnType<typeof openIntake>) => Promise<void>,
  comeBack: (at: string, bytes: Uint8Array, intake: Intake) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  // A complete FITS file goes once closed; its header alone waits for the rest (an hour).
  const job = localTestJob(root, {
    file_patterns: ["*.fits"],
    fits_incomplete_grace_seconds: 3600,
  });
  await Deno.mkdir(job.watch_path, { recursive: true });
  const at = join(job.watch_path, "frame.fits");
  const { header, data } = imageParts(120, 80, [card("OBJECT", "back")]);
  const back = new Uint8Array([...header, ...data]);
  let looked = -1; // How often the intake had said something settled when the file was back.
  let cameBack = false; // Set at once: the intake may look again before the file is back.
  const opened = openIntake(root, job, async (path) => {
    if (path !== at || cameBack) return false;
    cameBack = true;
    await comeBack(at, back, opened.intake);
    looked = opened.state.settled;
    return false;
  });
  const { table, intake, state } = opened;
  const logs = await captureLogs();
  try {
    await observe(at, opened);
    const queued = state.queued.length;
    await Deno.remove(at);
    intake.activity(at, "frame.fits", "removed");
    await waitFor(() => looked >= 0 && state.settled > looked, 20_000, "the look settled");
    assert.deepEqual(logs.records.filter((r) => String(r.rawMessage).startsWith("Dropped")), []);
    assert.ok(table.record("frame.fits"), "the file back keeps its record");
    await waitFor(() => state.queued.length > queued, 20_000, "the file back queued");
    assert.equal(state.queued.at(-1), back.length);
    const sender = new BatchSender({
      job,
      table,
      transport: opened.transport,
      signal: new AbortController().signal,
      observe: () => {},
      onSent: () => {},
      onRecognised: () => {},
      onGaveUp: () => {},
      pauseWhenUnavailable: false,
      onHold: () => {},
    });
    assert.equal(await sender.send(table.takeBatch(16)), 1);
    const row = table.rows.get("frame.fits");
    assert.equal(row?.state, "done");
    assert.deepEqual(await Deno.readFile(join(job.remote_base_path, row.destination)), back);
  } finally {
    await logs.stop();
    await opened.close();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("Intake: a file written anew under the name of one deleted before it was complete, while the intake looked whether a folder took that name, is kept and sent", async () => {
  await backWhileLooked(
    async (at, { intake }) => {
      await Deno.writeFile(at, imageParts(100, 100).header);
      intake.activity(at, "frame.fits", "written");
    },
    async (at, bytes, intake) => {
      await Deno.writeFile(at, bytes);
      intake.activity(at, "frame.fits", "closed");
    },
  );
});

Deno.test("Intake: a file moved in under the name of one found complete before and gone, while the intake looked whether a folder took that name, is kept and sent", async () => {
  await backWhileLooked(
    async (at, { intake, table, state }) => {
      // Found complete and queued (nothing sends here), then written again: observed again.
      const { header, data } = imageParts(100, 100);
      await Deno.writeFile(at, new Uint8Array([...header, ...data]));
      intake.activity(at, "frame.fits", "closed");
      await waitFor(() => state.queued.length === 1, 20_000, "the first file queued");
      await Deno.writeFile(at, header);
      intake.activity(at, "frame.fits", "written");
      assert.equal(table.record("frame.fits")?.phase, "queued");
      assert.equal(table.rows.get("frame.fits")?.state, "pending");
    },
    async (at, bytes, intake) => {
      const beside = join(at, "..", "..", "frame.fits");
      await Deno.writeFile(beside, bytes);
      await Deno.rename(beside, at);
      intake.activity(at, "frame.fits", "moved");
    },
  );
});

Deno.test("Intake: a file told gone whose name cannot be looked at when the intake looks (its stat fails otherwise than 'not found') is not dropped: observed until it can be, then sent", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const job = localTestJob(root, { stability_window_seconds: 0.2 });
  await Deno.mkdir(join(job.watch_path, "empty"), { recursive: true });
  await Deno.mkdir(join(job.watch_path, "real"));
  const bytes = new Uint8Array(3000).fill(7);
  await Deno.writeFile(join(job.watch_path, "real", "a.fits"), bytes);
  // The file's folder: at first one without it (the checker tells it gone), then a link to itself
  // (ELOOP, as an I/O error or a stale handle on a share, or a folder's permissions), then the
  // folder that holds it.
  const cam = join(job.watch_path, "cam");
  const point = (to: string) => {
    Deno.removeSync(cam);
    Deno.symlinkSync(to, cam);
  };
  Deno.symlinkSync("empty", cam);
  const at = join(cam, "a.fits");
  let looked = false;
  const opened = openIntake(root, job, (path) => {
    if (path === at && !looked) point("cam");
    looked = true;
    return Promise.resolve(false);
  });
  const logs = await captureLogs();
  try {
    opened.intake.activity(at, "cam/a.fits", "changed");
    await waitFor(() => looked, 20_000, "the intake looked whether a folder took its name");
    await waitFor(
      () => logs.records.some((r) => String(r.rawMessage).startsWith("Cannot look at")),
      20_000,
      "said that it cannot be looked at",
    );
    assert.ok(opened.table.record("cam/a.fits"), "still observed");
    point("real");
    await waitFor(() => opened.state.queued.length > 0, 20_000, "queued once it can be read");
    assert.deepEqual(opened.state.queued, [bytes.length]);
    assert.deepEqual(logs.records.filter((r) => String(r.rawMessage).startsWith("Dropped")), []);
  } finally {
    await logs.stop();
    await opened.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Intake: a scan's file sent before whose name cannot be looked at now is observed (not taken as unchanged), and sent once it can be read, changed", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const job = localTestJob(root, { stability_window_seconds: 0.2 });
  await Deno.mkdir(join(job.watch_path, "real"), { recursive: true });
  const bytes = new Uint8Array(4000).fill(3);
  await Deno.writeFile(join(job.watch_path, "real", "a.fits"), bytes);
  // Its folder is a link to itself while the scan's look fails (ELOOP, as an I/O error would).
  const cam = join(job.watch_path, "cam");
  Deno.symlinkSync("cam", cam);
  const file = { path: join(cam, "a.fits"), relPath: "cam/a.fits" };
  const { table, intake, state, close } = openIntake(root, job);
  try {
    // Sent before at another version.
    table.rows.markDone([{ ...file, size: 10, mtimeMs: 0, destination: "20240801/cam/a.fits" }]);
    assert.deepEqual(intake.found([file]), [file]);
    assert.ok(table.record(file.relPath), "observed");
    Deno.removeSync(cam);
    Deno.symlinkSync("real", cam);
    await waitFor(() => state.queued.length > 0, 20_000, "queued once it can be read");
    assert.deepEqual(state.queued, [bytes.length]);
  } finally {
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Intake: a file under observation that could not be looked at (its share gone) is looked at once a scan lists it again (the share back), not at the end of its wait", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  // A long window: a file that cannot be looked at is looked at again after it (60 s); a complete
  // FITS file written long ago goes without it once looked at.
  const job = localTestJob(root, { stability_window_seconds: 60 });
  await Deno.mkdir(join(job.watch_path, "real"), { recursive: true });
  const { header, data } = imageParts(64, 32, [card("OBJECT", "share back")]);
  const real = join(job.watch_path, "real", "a.fits");
  await Deno.writeFile(real, new Uint8Array([...header, ...data]));
  await Deno.utime(real, new Date("2020-01-01T00:00:00Z"), new Date("2020-01-01T00:00:00Z"));
  // Its folder is a link to itself while the share is gone (ELOOP, as ENOTCONN or an I/O error).
  const cam = join(job.watch_path, "cam");
  Deno.symlinkSync("cam", cam);
  const file = { path: join(cam, "a.fits"), relPath: "cam/a.fits" };
  const { table, intake, state, close } = openIntake(root, job);
  const logs = await captureLogs();
  try {
    assert.deepEqual(intake.found([file]), [file]);
    await waitFor(
      () => logs.records.some((r) => String(r.rawMessage).startsWith("Cannot look at")),
      20_000,
      "said that it cannot be looked at",
    );
    assert.ok(table.record(file.relPath), "observed");
    // The share is back: the scan of the folder back lists the file, held by the table.
    Deno.removeSync(cam);
    Deno.symlinkSync("real", cam);
    assert.deepEqual(intake.found([file]), [], "held: not taken in again");
    // Before the fix it waited for its next look, the window later.
    await waitFor(() => state.queued.length > 0, 20_000, "queued once listed again");
    assert.deepEqual(state.queued, [header.length + data.length]);
  } finally {
    await logs.stop();
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Intake: a file that gave up, told removed, whose name cannot be looked at now (its lstat fails otherwise than 'not found') stays failed; one gone is dropped", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const job = localTestJob(root);
  await Deno.mkdir(join(job.watch_path, "d", "gone"), { recursive: true });
  // A link to itself on the way: ELOOP, as an I/O error or a folder's permissions.
  Deno.symlinkSync("loop", join(job.watch_path, "d", "loop"));
  const { table, intake, close } = openIntake(root, job);
  const logs = await captureLogs();
  try {
    const version = { size: 10, mtimeMs: 1, destination: "x" };
    for (const rel of ["d/loop/a.fits", "d/gone/b.fits"]) {
      table.rows.enqueue(rel, { ...version, destination: `20240801/${rel}` });
      table.rows.recordFailure(rel, { attempts: 4, nextAttemptAt: 0, error: "e", final: true });
    }
    // Their folder removed, as the watch tells it.
    intake.activity(join(job.watch_path, "d"), "d", "removed");
    const dropped = () => logs.records.filter((r) => String(r.rawMessage).startsWith("Dropped"));
    await waitFor(() => dropped().length > 0, 20_000, "the gone one dropped");
    assert.equal(table.rows.get("d/gone/b.fits"), undefined);
    assert.equal(table.rows.get("d/loop/a.fits")?.state, "failed");
    assert.deepEqual(dropped().map((r) => r.properties.path), [
      join(job.watch_path, "d", "gone", "b.fits"),
    ]);
  } finally {
    await logs.stop();
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("Intake: a queued file replaced by a folder of its name is dropped as such (its row goes), whatever the folder holds", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-intake-" });
  const job = localTestJob(root, { stability_window_seconds: 0.2 });
  await Deno.mkdir(job.watch_path, { recursive: true });
  const at = join(job.watch_path, "rep.fits");
  await Deno.writeFile(at, new Uint8Array(4096).fill(3));
  const looked: string[] = [];
  const opened = openIntake(root, job, async (path) => {
    looked.push(path);
    return (await Deno.stat(path).catch(() => null))?.isDirectory === true;
  });
  const { table, intake, state } = opened;
  const logs = await captureLogs();
  try {
    intake.activity(at, "rep.fits", "closed");
    await waitFor(() => state.queued.length > 0, 20_000, "the file queued");
    assert.equal(table.rows.get("rep.fits")?.state, "pending");
    await Deno.remove(at);
    await Deno.mkdir(at);
    await Deno.writeFile(join(at, "inner.fits"), new Uint8Array(100));
    intake.activity(at, "rep.fits", "removed");
    await waitFor(
      () => logs.records.some((r) => String(r.rawMessage).startsWith("Dropped")),
      20_000,
      "the file said dropped",
    );
    assert.deepEqual(looked, [at]);
    const dropped = logs.records.find((r) => String(r.rawMessage).startsWith("Dropped"));
    assert.equal(String(dropped?.rawMessage), "Dropped {path}: a folder took its name");
    assert.equal(table.rows.get("rep.fits"), undefined);
  } finally {
    await logs.stop();
    await opened.close();
    await Deno.remove(root, { recursive: true });
  }
});
