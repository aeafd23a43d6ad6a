/**
 * Whose upload folders an SSH transport sweeps: two daemons (two installs, each with its own
 * ledger) sending from the same watch folder path to the same folder of one server under one
 * host name (acquisition PCs cloned from one image) never sweep each other's; an install's own
 * leftovers are swept after a restart, and those of the earlier naming (by host name) once
 * nothing was written in them for long.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import type { Transport } from "../../../src/transfer/transport.ts";
import { uploadFolderName, uploadOwner } from "../../../src/transfer/temp_name.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { startSshd, type TestSshd } from "../../helpers/sshd.ts";
import {
  damageLedger,
  makeItem,
  openInstall,
  plantUploadFolder,
} from "../../helpers/transports.ts";

const never = new AbortController().signal;

/** The owner id in the names of `transport`'s upload folders. */
function ownerOf(transport: Transport): string {
  return (transport as unknown as { owner: string }).owner;
}

/** A private upload folder of the sshd account's (see `plantUploadFolder`). */
const uploadFolder = (sshd: TestSshd, night: string, name: string, at: Date | null) =>
  plantUploadFolder(night, name, at, sshd, 0o700);

Deno.test("scp and rsync: two daemons with one watch folder path and one destination folder never sweep each other's upload folders; their own and the earlier naming's idle ones are swept", async (t) => {
  const sshd = await startSshd();
  const root = await Deno.makeTempDir({ prefix: "itx-owner-" });
  try {
    for (const method of ["scp", "rsync"] as const) {
      await t.step(method, async () => {
        const dst = await sshd.makeRemoteDir();
        const src = join(root, method, "src");
        await Deno.mkdir(src, { recursive: true });
        // The same job on both PCs: watch folder path, host name, account and folder.
        const job = sshd.job({
          transfer_method: method,
          remote_base_path: dst,
          watch_path: "/data/cam",
          resume_partial_hours: 0,
        });
        const open = (pc: string) => openInstall(job, join(root, method), pc);
        const one = await open("one");
        const two = await open("two");
        try {
          assert.notEqual(ownerOf(one.transport), ownerOf(two.transport));
          const night = join(dst, "20240401");
          // The second PC's batch under way: its upload folder there, a copy being written.
          const busy = await uploadFolder(
            sshd,
            night,
            uploadFolderName(ownerOf(two.transport)),
            null,
          );
          // The earlier naming's folders (by host name): one idle for two hours, one in use now.
          const earlierOwner = uploadOwner([Deno.hostname(), job.watch_path, job.remote_base_path]);
          const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
          const idle = await uploadFolder(sshd, night, uploadFolderName(earlierOwner), twoHoursAgo);
          const inUse = await uploadFolder(sshd, night, uploadFolderName(earlierOwner), null);
          // The first PC's own leftover from before its restart.
          await one.transport.close();
          one.ledger.close();
          const ownLeft = await uploadFolder(
            sshd,
            night,
            uploadFolderName(ownerOf(one.transport)),
            twoHoursAgo,
          );
          const again = await open("one");
          Object.assign(one, again);
          assert.equal(
            basename(ownLeft).includes(ownerOf(one.transport)),
            true,
            "same owner after a restart",
          );

          const item = await makeItem(src, "20240401/a.fits", randomBytes(4096));
          const [outcome] = await one.transport.send([item], never);
          assert.equal(outcome.error, null, outcome.error?.message);
          const left = await listFolders(dst);
          assert.deepEqual(
            left.sort(),
            ["20240401", `20240401/${basename(busy)}`, `20240401/${basename(inUse)}`].sort(),
            "the other PC's folder and the earlier naming's folder in use are left; the rest swept",
          );
          assert.deepEqual(await listFiles(busy), ["frame.fits"]);
          for (const folder of [busy, inUse]) await Deno.remove(folder, { recursive: true });
          assert.equal(left.includes(`20240401/${basename(idle)}`), false);
          assert.deepEqual(await listFiles(dst), ["20240401/a.fits"]);
          assert.equal(
            await sha256OfFile(join(dst, "20240401/a.fits")),
            await sha256OfFile(item.source),
          );
          assert.deepEqual(await listFolders(dst), ["20240401"]);
        } finally {
          for (const pc of [one, two]) {
            await pc.transport.close();
            pc.ledger.close();
          }
        }
      });
    }
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

Deno.test("scp and rsync: after a damaged ledger is set aside, the install still sweeps its own upload folders", async (t) => {
  const sshd = await startSshd();
  const root = await Deno.makeTempDir({ prefix: "itx-owner-" });
  try {
    for (const method of ["scp", "rsync"] as const) {
      await t.step(method, async () => {
        const dst = await sshd.makeRemoteDir();
        const src = join(root, method, "src");
        await Deno.mkdir(src, { recursive: true });
        const job = sshd.job({
          transfer_method: method,
          remote_base_path: dst,
          watch_path: "/data/cam",
          resume_partial_hours: 0,
        });
        const before = await openInstall(job, join(root, method), "one");
        const owner = ownerOf(before.transport);
        await before.transport.close();
        before.ledger.close();
        // A batch the install left (killed), written now: only its own are swept so soon.
        const night = join(dst, "20240401");
        await uploadFolder(sshd, night, uploadFolderName(owner), null);
        damageLedger(join(root, method, "one", "state"));
        const after = await openInstall(job, join(root, method), "one");
        try {
          assert.notEqual(after.ledger.rebuilt, null, "the damaged ledger was set aside");
          const item = await makeItem(src, "20240401/a.fits", randomBytes(4096));
          const [outcome] = await after.transport.send([item], never);
          assert.equal(outcome.error, null, outcome.error?.message);
          assert.deepEqual(await listFolders(dst), ["20240401"], "its own upload folder swept");
          assert.deepEqual(await listFiles(dst), ["20240401/a.fits"]);
          assert.equal(
            await sha256OfFile(join(dst, "20240401/a.fits")),
            await sha256OfFile(item.source),
          );
        } finally {
          await after.transport.close();
          after.ledger.close();
        }
      });
    }
  } finally {
    await sshd.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
