/**
 * Whose upload folders an FTP transport sweeps: two daemons (two installs, each with its own
 * ledger) sending from the same watch folder path to the same folder of one server under one
 * host name (acquisition PCs cloned from one image) never sweep each other's; an install's own
 * leftovers are swept after a restart, and those of the earlier naming (by host name) once `MDTM`
 * says nothing was written in them for long.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import {
  hostJobOwner,
  jobOwner,
  senderId,
  uploadFolderName,
} from "../../../src/transfer/temp_name.ts";
import { listFiles, listFolders, randomBytes, sha256OfFile } from "../../helpers/files.ts";
import { makeItem, openInstall, plantUploadFolder } from "../../helpers/transports.ts";
import { type TestVsftpd, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

const never = new AbortController().signal;

/** An upload folder of the FTP login's (see `plantUploadFolder`). */
const uploadFolder = (server: TestVsftpd, night: string, name: string, at: Date | null) =>
  plantUploadFolder(night, name, at, server, 0o755);

Deno.test("ftp: two daemons with one watch folder path and one destination folder never sweep each other's upload folders; their own and the earlier naming's idle ones are swept", async () => {
  await withVsftpdAndRoot({}, "itx-ftp-owner-", async ({ server, root }) => {
    const dst = await server.makeRemoteDir();
    const src = join(root, "src");
    await Deno.mkdir(src, { recursive: true });
    // The same job on both PCs: watch folder path, host name, login and folder.
    const job = server.job({
      remote_base_path: dst,
      watch_path: "/data/cam",
      resume_partial_hours: 0,
    });
    const open = (pc: string) => openInstall(job, root, pc);
    const one = await open("one");
    const two = await open("two");
    try {
      const ownerOne = jobOwner(job, senderId(one.ledger));
      const ownerTwo = jobOwner(job, senderId(two.ledger));
      assert.notEqual(ownerOne, ownerTwo);
      const night = join(dst, "20240401");
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      // The second PC's batch under way.
      const busy = await uploadFolder(server, night, uploadFolderName(ownerTwo), null);
      // The earlier naming's folders (by host name): one idle for two hours, one in use now.
      const earlier = hostJobOwner(job);
      const idle = await uploadFolder(server, night, uploadFolderName(earlier), twoHoursAgo);
      const inUse = await uploadFolder(server, night, uploadFolderName(earlier), null);
      // The first PC's own leftover from before its restart.
      await one.transport.close();
      one.ledger.close();
      const ownLeft = await uploadFolder(server, night, uploadFolderName(ownerOne), null);
      Object.assign(one, await open("one"));
      assert.equal(jobOwner(job, senderId(one.ledger)), ownerOne, "same owner after a restart");

      const item = await makeItem(src, "20240401/a.fits", randomBytes(4096));
      const [outcome] = await one.transport.send([item], never);
      assert.equal(outcome.error, null, outcome.error?.message);
      const left = await listFolders(dst);
      assert.deepEqual(
        left.sort(),
        ["20240401", `20240401/${basename(busy)}`, `20240401/${basename(inUse)}`].sort(),
        "the other PC's folder and the earlier naming's folder in use are left; the rest swept",
      );
      assert.equal(left.includes(`20240401/${basename(idle)}`), false);
      assert.equal(left.includes(`20240401/${basename(ownLeft)}`), false);
      assert.deepEqual(await listFiles(busy), ["frame.fits"]);
      for (const folder of [busy, inUse]) await Deno.remove(folder, { recursive: true });
      assert.deepEqual(await listFiles(dst), ["20240401/a.fits"]);
      assert.equal(
        await sha256OfFile(join(dst, "20240401/a.fits")),
        await sha256OfFile(item.source),
      );
    } finally {
      for (const pc of [one, two]) {
        await pc.transport.close();
        pc.ledger.close();
      }
    }
  });
});
