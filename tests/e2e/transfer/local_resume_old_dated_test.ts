/**
 * `local` dates a copy as its source before verifying it (with `verify_transfer: checksum` the
 * whole copy is read back) and renaming it. A complete copy of a file whose date is days old (a
 * backlog after an outage), left when the daemon was killed during that verification, is not
 * taken for expired at the restart: the next attempt continues it (the same inode renamed into
 * place, nothing appended). A leftover nothing wrote into for longer than `resume_partial_hours`
 * is still swept and its file copied whole. A copy of the earlier naming (by host name: another
 * daemon's under the same host name, say) written moments ago but dated as an old source is left
 * whole; one nothing wrote into for its idle time is swept. Real files, through the install's own
 * transport.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isTempName } from "../../../src/layout/destination.ts";
import { jobOwners, tempNameFor } from "../../../src/transfer/temp_name.ts";
import { sweepLocalLeftovers } from "../../../src/transfer/local/folders.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import type { JobConfig } from "../../../src/config/types.ts";
import { transportTestJob } from "../../helpers/jobs.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { captureLogs, type LogCapture } from "../../helpers/log_capture.ts";
import { makeItem, openInstall } from "../../helpers/transports.ts";

const never = new AbortController().signal;
const NIGHT = "20240601";
/** `hours` ago, to the second (a time carried in seconds from the source to its copy exactly). */
const hoursAgo = (hours: number) => new Date(Math.floor(Date.now() / 1000 - hours * 3600) * 1000);
const TWO_DAYS_AGO = hoursAgo(48);
const THREE_DAYS_AGO = hoursAgo(72);

/** Where each "Resumed" line of the records since `mark` said the copy was continued from. */
function resumedFrom(logs: LogCapture, mark: number): Map<string, number> {
  return new Map(
    logs.records.slice(mark)
      .filter((record) => String(record.rawMessage).startsWith("Resumed"))
      .map((record) => [String(record.properties.source), Number(record.properties.from)]),
  );
}

/** The temporary copies below `dst`. */
async function temporaries(dst: string): Promise<string[]> {
  return (await listFiles(dst)).filter((rel) => rel.split("/").some(isTempName));
}

/** A source of `size` random bytes, `'`, `$(…)` and a line break in its name, dated `at`. */
async function oldSource(src: string, name: string, size: number, at: Date) {
  const item = await makeItem(src, `${NIGHT}/-x $(touch pwned) '\n${name}`, randomBytes(size));
  await Deno.utime(item.source, at, at);
  return { ...item, mtimeMs: at.getTime() };
}

/**
 * The copy of `item` that `owner`'s daemon left (mode 600, the source's first `bytes`), dated
 * `at`, as it stands now.
 */
async function plantCopy(
  dst: string,
  item: TransferItem,
  owner: string,
  bytes: number,
  at: Date,
): Promise<{ path: string; info: Deno.FileInfo }> {
  const [night, name] = item.destination.split("/");
  await Deno.mkdir(join(dst, night), { recursive: true });
  const path = join(dst, night, tempNameFor(name, owner));
  const data = (await Deno.readFile(item.source)).subarray(0, bytes);
  await Deno.writeFile(path, data, { mode: 0o600, createNew: true });
  await Deno.utime(path, at, at);
  return { path, info: await Deno.stat(path) };
}

/** Open an install of `job` in `root`, run `during` with its transport, close it. */
async function withInstall(
  job: JobConfig,
  root: string,
  during: (install: Awaited<ReturnType<typeof openInstall>>) => Promise<void>,
): Promise<void> {
  const install = await openInstall(job, root, "pc");
  try {
    await during(install);
  } finally {
    await install.transport.close();
    install.ledger.close();
  }
}

Deno.test("local: a complete copy dated as its old source, left by a daemon killed while verifying it, is continued after a restart; a leftover idle past resume_partial_hours is swept", async (t) => {
  const logs = await captureLogs();
  const root = await Deno.makeTempDir({ prefix: "itx-local-olddated-" });
  const src = join(root, "src");
  try {
    await t.step("a complete old-dated copy is continued, not written again", async () => {
      const dst = join(root, "dst-continued");
      // The default resume_partial_hours (24).
      const job = transportTestJob("olddated", {
        transfer_method: "local",
        remote_base_path: dst,
        verify_transfer: "checksum",
      });
      // A large file (copied on the daemon's thread) and a small one (the copier's size).
      const items = [
        await oldSource(src, "large.fits", 9 * 1024 * 1024 + 123, TWO_DAYS_AGO),
        await oldSource(src, "small.fits", 100_000, TWO_DAYS_AGO),
      ];
      await withInstall(job, root, async ({ ledger, transport }) => {
        const owner = jobOwners(job, ledger).owner;
        // What the killed daemon left: each copy complete, dated as its source two days ago.
        const planted = [];
        for (const item of items) {
          planted.push(await plantCopy(dst, item, owner, item.size, TWO_DAYS_AGO));
        }
        const mark = logs.records.length;
        const outcomes = await transport.send(items, never);
        for (const { error } of outcomes) assert.equal(error, null, error?.message);
        // Continued from their end: nothing written again.
        const resumed = resumedFrom(logs, mark);
        for (const [i, item] of items.entries()) {
          assert.equal(resumed.get(item.source), item.size, `${item.source} continued`);
          const final = join(dst, ...item.destination.split("/"));
          const arrived = await Deno.stat(final);
          assert.equal(arrived.ino, planted[i].info.ino, "the kept copy itself was renamed");
          const offMs = Math.abs(arrived.mtime!.getTime() - item.mtimeMs);
          assert.ok(offMs < 1, `dated as its source: ${offMs} ms off`);
          assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
        }
        assert.deepEqual(await temporaries(dst), [], "no temporary copy left");
      });
    });

    await t.step(
      "a leftover nothing wrote into for longer is swept, its file copied whole",
      async () => {
        const dst = join(root, "dst-stale");
        // Kept 3.6 s: the leftover below is older than that once that much time has passed.
        const job = transportTestJob("stale", {
          transfer_method: "local",
          remote_base_path: dst,
          verify_transfer: "checksum",
          resume_partial_hours: 0.001,
        });
        const item = await oldSource(src, "stale.fits", 2 * 1024 * 1024 + 5, THREE_DAYS_AGO);
        await withInstall(job, root, async ({ ledger, transport }) => {
          const owner = jobOwners(job, ledger).owner;
          // A killed run's copy cut halfway (its bytes the source's own: it could be continued).
          const { path } = await plantCopy(dst, item, owner, item.size >> 1, THREE_DAYS_AGO);
          const keepMs = job.resume_partial_hours * 3_600_000;
          // Nothing writes into it until it is older than that (its status change time too).
          await waitFor(
            async () => Date.now() - (await Deno.stat(path)).ctime!.getTime() > keepMs + 1000,
            keepMs + 60_000,
            "the leftover to be idle past resume_partial_hours",
          );
          const mark = logs.records.length;
          const [sent] = await transport.send([item], never);
          assert.equal(sent.error, null, sent.error?.message);
          assert.deepEqual(resumedFrom(logs, mark), new Map(), "not continued");
          const final = join(dst, ...item.destination.split("/"));
          assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
          assert.deepEqual(await temporaries(dst), [], "the leftover swept");
        });
      },
    );
  } finally {
    await logs.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("local: a copy of the earlier naming dated as an old source but written moments ago is left whole; one idle for its idle time is swept", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "itx-local-olddated-earlier-" });
  const src = join(root, "src");
  const dst = join(root, "dst");
  const job = transportTestJob("olddatedearlier", {
    transfer_method: "local",
    remote_base_path: dst,
    verify_transfer: "checksum",
  });
  try {
    await withInstall(job, root, async ({ ledger, transport }) => {
      const { earlier } = jobOwners(job, ledger);
      assert.notEqual(earlier, null, "the install has an earlier naming (by host name)");
      // Another daemon under this host name (an older version, a cloned PC) verifying its copy of
      // an old file: complete, dated as its source two days ago, written moments ago.
      const theirs = await oldSource(src, "theirs.fits", 300_000, TWO_DAYS_AGO);
      const { path } = await plantCopy(dst, theirs, earlier!.owner, theirs.size, TWO_DAYS_AGO);
      const before = await sha256OfFile(path);

      await t.step("the next send into that folder leaves it whole", async () => {
        const item = await makeItem(src, `${NIGHT}/mine.fits`, randomBytes(70_000));
        const [sent] = await transport.send([item], never);
        assert.equal(sent.error, null, sent.error?.message);
        const final = join(dst, ...item.destination.split("/"));
        assert.equal(await sha256OfFile(final), await sha256OfFile(item.source), "byte-exact");
        assert.equal(await sha256OfFile(path).catch(() => null), before, "their copy left whole");
      });

      await t.step("once nothing wrote into it for the idle time, it is swept", async () => {
        // That time is an hour at least (see `jobOwners`): the sweep the transport runs, given a
        // short one, once the copy's status change time is older than that.
        const idle = { owner: earlier!.owner, idleSeconds: 1, own: false, also: [] };
        await waitFor(
          async () => Date.now() - (await Deno.stat(path)).ctime!.getTime() > 2000,
          60_000,
          "the copy to be idle past its idle time",
        );
        const { owner } = jobOwners(job, ledger);
        const keepMs = job.resume_partial_hours * 3_600_000;
        await sweepLocalLeftovers(join(dst, NIGHT), owner, new Set(), keepMs, undefined, idle);
        assert.deepEqual(await temporaries(dst), [], "the idle copy swept");
      });
    });
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
