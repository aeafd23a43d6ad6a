/**
 * Whose temporary copies a `local` transport sweeps: two daemons (two installs, each with its own
 * ledger) sending from the same watch folder path to the same folder (a share two acquisition PCs
 * cloned from one image mount at one path, under one host name) never sweep each other's; an
 * install's own leftovers are swept after a restart, and those of the earlier naming (by host
 * name) once nothing was written in them for long.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hostJobOwner, jobOwner, senderId, tempNameFor } from "../../../src/transfer/temp_name.ts";
import { listFiles, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { transportTestJob } from "../../helpers/jobs.ts";
import { damageLedger, makeItem, openInstall } from "../../helpers/transports.ts";

const never = new AbortController().signal;

Deno.test("local: two daemons with one watch folder path and one destination folder never sweep each other's temporary copies; their own and the earlier naming's idle ones are swept", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-local-owner-" });
  try {
    const dst = join(root, "dest");
    const src = join(root, "src");
    await Deno.mkdir(src, { recursive: true });
    // The same job on both PCs: watch folder path, host name and destination folder.
    const job = transportTestJob("cam", {
      transfer_method: "local",
      remote_base_path: dst,
      watch_path: "/data/cam",
      resume_partial_hours: 0,
    });
    const open = (pc: string) => openInstall(job, root, pc);
    const one = await open("one");
    const two = await open("two");
    const night = join(dst, "20240401");
    await Deno.mkdir(night, { recursive: true });
    const copy = async (name: string, at: Date | null) => {
      await Deno.writeFile(join(night, name), randomBytes(2048), { mode: 0o600 });
      if (at !== null) await Deno.utime(join(night, name), at, at);
      return name;
    };
    try {
      const ownerOne = jobOwner(job, senderId(one.ledger));
      const ownerTwo = jobOwner(job, senderId(two.ledger));
      assert.notEqual(ownerOne, ownerTwo);
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      // The second PC's copy being written now.
      const busy = await copy(tempNameFor("b.fits", ownerTwo), null);
      // The earlier naming's copies (by host name): one idle for two hours, one written now.
      const earlier = hostJobOwner(job);
      const idle = await copy(tempNameFor("c.fits", earlier), twoHoursAgo);
      const inUse = await copy(tempNameFor("d.fits", earlier), null);
      // The first PC's own leftover from before its restart.
      await one.transport.close();
      one.ledger.close();
      const ownLeft = await copy(tempNameFor("e.fits", ownerOne), null);
      Object.assign(one, await open("one"));
      assert.equal(jobOwner(job, senderId(one.ledger)), ownerOne, "same owner after a restart");

      const a = await makeItem(src, "20240401/a.fits", randomBytes(4096));
      const [sentOne] = await one.transport.send([a], never);
      assert.equal(sentOne.error, null, sentOne.error?.message);
      const left = await listFiles(night);
      assert.deepEqual(
        left.sort(),
        ["a.fits", busy, inUse].sort(),
        "the other PC's copy and the earlier naming's copy in use are left; the rest swept",
      );
      assert.equal(left.includes(idle) || left.includes(ownLeft), false);

      // The first PC's copy being written now: the second PC leaves it too.
      const busyOne = await copy(tempNameFor("f.fits", ownerOne), null);
      const g = await makeItem(src, "20240401/g.fits", randomBytes(3000));
      const [sentTwo] = await two.transport.send([g], never);
      assert.equal(sentTwo.error, null, sentTwo.error?.message);
      // (`busy`, the copy its own process did not hold, is its leftover: swept.)
      assert.deepEqual(
        (await listFiles(night)).sort(),
        ["a.fits", "g.fits", busyOne, inUse].sort(),
      );
      for (const item of [a, g]) {
        assert.equal(
          await sha256OfFile(join(dst, item.destination)),
          await sha256OfFile(item.source),
        );
      }
    } finally {
      for (const pc of [one, two]) {
        await pc.transport.close();
        pc.ledger.close();
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("local: after a damaged ledger is set aside, the install still sweeps its own temporary copies", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-local-owner-" });
  try {
    const dst = join(root, "dest");
    const src = join(root, "src");
    await Deno.mkdir(src, { recursive: true });
    const job = transportTestJob("cam", {
      transfer_method: "local",
      remote_base_path: dst,
      watch_path: "/data/cam",
      resume_partial_hours: 0,
    });
    const before = await openInstall(job, root, "one");
    const owner = jobOwner(job, senderId(before.ledger));
    await before.transport.close();
    before.ledger.close();
    // A copy the install left (killed while writing it), then its ledger damaged.
    const night = join(dst, "20240401");
    await Deno.mkdir(night, { recursive: true });
    const left = tempNameFor("e.fits", owner);
    await Deno.writeFile(join(night, left), randomBytes(2048), { mode: 0o600 });
    damageLedger(join(root, "one", "state"));
    const after = await openInstall(job, root, "one");
    try {
      assert.notEqual(after.ledger.rebuilt, null, "the damaged ledger was set aside");
      const a = await makeItem(src, "20240401/a.fits", randomBytes(4096));
      const [sent] = await after.transport.send([a], never);
      assert.equal(sent.error, null, sent.error?.message);
      assert.deepEqual(await listFiles(night), ["a.fits"], "its own leftover swept");
      assert.equal(await sha256OfFile(join(dst, a.destination)), await sha256OfFile(a.source));
    } finally {
      await after.transport.close();
      after.ledger.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
