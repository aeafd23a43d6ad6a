/**
 * Polling a watch folder, on real files: what a poll reports (new files, new
 * folders, files still being written, nothing when nothing changed), what it
 * forgets, and how it says how a folder is watched (file system kind, UNC
 * paths, `watch_mode`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createFileFilter } from "../../../src/watch/file_filter.ts";
import { FolderPoller } from "../../../src/watch/poll_loop.ts";
import {
  decideWatch,
  fileSystemOf,
  networkMountOf,
  parseFindmnt,
  parseMacMounts,
  parseNetUse,
  uncShare,
} from "../../../src/watch/fs_type.ts";
import { mountBindfs, unmountBindfs } from "../../helpers/bindfs.ts";
import { localTestJob } from "../../helpers/jobs.ts";

async function withPoller(
  fn: (watch: string, poller: FolderPoller, errors: string[]) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "itx-poller-" });
  try {
    const watch = join(root, "watch");
    await Deno.mkdir(watch);
    const errors: string[] = [];
    const poller = new FolderPoller({
      root: watch,
      filter: createFileFilter(localTestJob(root, { file_patterns: ["*.fits"] })),
      onError: (path) => errors.push(path),
    });
    await fn(watch, poller, errors);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

const rels = (files: { relPath: string }[]) => files.map((file) => file.relPath).sort();

/** Set a folder's mtime to a fixed moment, so a change of it is seen whatever the clock's grain. */
async function pinMtime(path: string, seconds: number): Promise<void> {
  await Deno.utime(path, seconds, seconds);
}

Deno.test("poller: what is there at learning is not reported; new files and folders are, once", async () => {
  await withPoller(async (watch, poller) => {
    await Deno.mkdir(join(watch, "night"));
    await Deno.writeTextFile(join(watch, "night", "old.fits"), "old");
    await Deno.writeTextFile(join(watch, "notes.txt"), "not matched");
    await poller.learn();
    assert.deepEqual(poller.size, { folders: 2, files: 1 });
    assert.deepEqual(await poller.poll(), []);

    await Deno.writeTextFile(join(watch, "night", "new.fits"), "new");
    await Deno.writeTextFile(join(watch, "night", "skip.txt"), "not matched");
    await Deno.mkdir(join(watch, "night", "flats", "deep"), { recursive: true });
    await Deno.writeTextFile(join(watch, "night", "flats", "deep", "f.fits"), "flat");
    assert.deepEqual(rels(await poller.poll()), ["night/flats/deep/f.fits", "night/new.fits"]);
    assert.deepEqual(poller.size, { folders: 4, files: 3 });
    // Reported once: the next polls list the folders again (fresh changes) and find nothing new.
    assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(await poller.poll(), []);
  });
});

Deno.test("poller: a file still being written is reported again when its size moves", async () => {
  await withPoller(async (watch, poller) => {
    await poller.learn();
    const path = join(watch, "growing.fits");
    await Deno.writeTextFile(path, "part one");
    assert.deepEqual(rels(await poller.poll()), ["growing.fits"]);
    assert.deepEqual(await poller.poll(), []);
    await Deno.writeTextFile(path, " and part two", { append: true });
    assert.deepEqual(rels(await poller.poll()), ["growing.fits"]);
    assert.deepEqual(await poller.poll(), []);
  });
});

Deno.test("poller: a folder removed is forgotten; made again, its files are new", async () => {
  await withPoller(async (watch, poller) => {
    await Deno.mkdir(join(watch, "a", "b"), { recursive: true });
    await Deno.writeTextFile(join(watch, "a", "b", "x.fits"), "x");
    await poller.learn();
    await Deno.remove(join(watch, "a"), { recursive: true });
    assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(poller.size, { folders: 1, files: 0 });
    await Deno.mkdir(join(watch, "a", "b"), { recursive: true });
    await Deno.writeTextFile(join(watch, "a", "b", "x.fits"), "x again");
    assert.deepEqual(rels(await poller.poll()), ["a/b/x.fits"]);
  });
});

Deno.test("poller: a folder whose mtime did not move is not listed again", async () => {
  await withPoller(async (watch, poller) => {
    await Deno.mkdir(join(watch, "night"));
    await pinMtime(join(watch, "night"), 1_000_000);
    await poller.learn();
    // A file slipped in and the folder's mtime put back: the poll must not see it
    // (proof that it read the mtime and did not list the folder)...
    await Deno.writeTextFile(join(watch, "night", "hidden.fits"), "h");
    await pinMtime(join(watch, "night"), 1_000_000);
    assert.deepEqual(await poller.poll(), []);
    // ...and sees it once the mtime moves.
    await pinMtime(join(watch, "night"), 2_000_000);
    assert.deepEqual(rels(await poller.poll()), ["night/hidden.fits"]);
  });
});

Deno.test("file system kind: local here, fuse on a bindfs view, and what each mode does with it", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-fskind-" });
  const mount = join(root, "mount");
  try {
    const local = fileSystemOf(root);
    assert.equal(local.remote, false, JSON.stringify(local));
    assert.equal(decideWatch(local, "auto", 2).mode, "events");
    assert.equal(decideWatch(local, "poll", 2).mode, "poll");
    await mountBindfs(root, mount);
    try {
      const fuse = fileSystemOf(mount);
      assert.equal(fuse.type, "fuse");
      assert.equal(fuse.remote, true);
      assert.notEqual(fuse.magic, local.magic);
      const auto = decideWatch(fuse, "auto", 2);
      assert.equal(auto.mode, "events+poll");
      assert.equal(auto.pollIntervalSeconds, 2);
      assert.match(auto.summary, /^file events and a poll every 2 s \(fuse is a network/);
      const events = decideWatch(fuse, "events", 2);
      assert.equal(events.mode, "events");
      assert.equal(events.pollIntervalSeconds, null);
      assert.match(events.summary, /files written by other machines wait for the rescan/);
    } finally {
      await unmountBindfs(mount);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a file system that cannot be told is watched by events, with a hint for shares", () => {
  const unknown = { type: "unknown", remote: false, source: null, magic: null };
  const how = decideWatch(unknown, "auto", 2);
  assert.equal(how.mode, "events");
  assert.match(how.summary, /cannot be told here: for a network share set watch_mode: poll/);
  const unc = { type: "smb", remote: true, source: "\\\\pc\\images", magic: null };
  assert.match(
    decideWatch(unc, "auto", 2).summary,
    /^file events and a poll every 2 s \(smb, \\\\pc\\images is/,
  );
});

Deno.test("UNC paths name their share; drive letters and device paths are no share", () => {
  assert.equal(uncShare("\\\\camera-pc\\images\\night"), "\\\\camera-pc\\images");
  assert.equal(uncShare("//camera-pc/images/night"), "\\\\camera-pc\\images");
  assert.equal(uncShare("\\\\?\\UNC\\camera-pc\\images\\n"), "\\\\camera-pc\\images");
  assert.equal(uncShare("C:\\data\\images"), null);
  assert.equal(uncShare("\\\\?\\C:\\data"), null);
  assert.equal(uncShare("\\\\.\\pipe\\x"), null);
  assert.equal(uncShare("/mnt/camera"), null);
});

Deno.test("macOS: network volumes in the output of mount are remote, local disks are not", () => {
  const output = [
    "/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)",
    "devfs on /dev (devfs, local, nobrowse)",
    "/dev/disk3s5 on /System/Volumes/Data (apfs, local, journaled, nobrowse, protect)",
    "//obs@nas._smb._tcp.local/images on /Volumes/images (smbfs, nodev, nosuid, mounted by obs)",
    "nas:/export/raw on /Volumes/raw (nfs, nodev, nosuid, mounted by obs)",
    "fuse-t:/cam on /Volumes/cam share (nfs, nodev, nosuid, mounted by obs)",
    "/dev/disk4s1 on /Volumes/USB Disk (msdos, local, nodev, nosuid, noowners)",
    "obs@relay:/data on /Users/obs/mnt (macfuse, nodev, nosuid, synchronous, mounted by obs)",
  ].join("\n");
  const mounts = parseMacMounts(output);
  assert.deepEqual(mounts.map((m) => [m.point, m.type]), [
    ["/Volumes/images", "smbfs"],
    ["/Volumes/raw", "nfs"],
    ["/Volumes/cam share", "nfs"],
    ["/Users/obs/mnt", "macfuse"],
  ]);
  const on = (path: string) => networkMountOf(path, mounts, "darwin")?.source ?? null;
  assert.equal(on("/Volumes/images/night/a.fits"), "//obs@nas._smb._tcp.local/images");
  assert.equal(on("/Volumes/images"), "//obs@nas._smb._tcp.local/images");
  assert.equal(on("/Volumes/images2/x"), null, "a longer name is another volume");
  assert.equal(on("/Volumes/cam share/n"), "fuse-t:/cam");
  assert.equal(on("/Volumes/USB Disk/x"), null);
  assert.equal(on("/Users/obs/data"), null);
  assert.equal(networkMountOf("/Volumes/images", null, "darwin"), null, "nothing read");
});

Deno.test("Linux: findmnt's network and FUSE mounts are read (escaped names too); a share mounted inside a local watch folder makes auto poll it, and says where", () => {
  const output = [
    "/ ext4 /dev/vda",
    "/proc proc proc",
    "/sys/fs/fuse/connections fusectl fusectl",
    "/data/cam\\x201 nfs4 nas:/export/raw\\x20frames",
    "/data/relay fuse.sshfs obs@relay:/data",
    "/mnt/usb vfat /dev/sdb1",
    "/media/win fuseblk /dev/sdc1",
    "",
  ].join("\n");
  const mounts = parseFindmnt(output);
  assert.deepEqual(mounts.map((m) => [m.point, m.type, m.source]), [
    ["/data/cam 1", "nfs4", "nas:/export/raw frames"],
    ["/data/relay", "fuse.sshfs", "obs@relay:/data"],
    ["/media/win", "fuseblk", "/dev/sdc1"],
  ]);
  const ext4 = { type: "ext4", remote: false, source: null, magic: null };
  const inside = mounts.slice(0, 1);
  const auto = decideWatch(ext4, "auto", 2, inside);
  assert.equal(auto.mode, "events+poll");
  assert.match(auto.summary, /mounted inside it, on \/data\/cam 1 \(nfs4\)/);
  assert.equal(decideWatch(ext4, "events", 2, inside).mode, "events", "events never polls");
  assert.equal(decideWatch(ext4, "auto", 2, []).mode, "events");
});

Deno.test("Windows: drives net use maps to a share are remote, others are not", () => {
  const output = [
    "New connections will be remembered.",
    "",
    "",
    "Status       Local     Remote                    Network",
    "",
    "-------------------------------------------------------------------------------",
    "OK           Z:        \\\\camera-pc\\images        Microsoft Windows Network",
    "Unavailable  Y:        \\\\nas\\archive             Microsoft Windows Network",
    "OK                     \\\\nas\\IPC$                Microsoft Windows Network",
    "The command completed successfully.",
    "",
  ].join("\r\n");
  const mounts = parseNetUse(output);
  assert.deepEqual(mounts.map((m) => [m.point, m.source]), [
    ["Z:", "\\\\camera-pc\\images"],
    ["Y:", "\\\\nas\\archive"],
  ]);
  assert.equal(
    networkMountOf("z:\\night\\a.fits", mounts, "windows")?.source,
    "\\\\camera-pc\\images",
  );
  assert.equal(networkMountOf("C:\\data", mounts, "windows"), null);
});

/**
 * A poller of `root/watch`, a link to `root/real` (with `night` made) that `unreadable()` turns
 * into a link to itself, so every stat below it fails (ELOOP) as an I/O error or a stale handle on
 * a share would (root reads through any permission), and `readable()` turns back; `errors` are the
 * paths the poller said it could not look at.
 */
async function pollerOfLink(root: string, beforeLearning?: (real: string) => Promise<void>) {
  const real = join(root, "real");
  const watch = join(root, "watch");
  await Deno.mkdir(join(real, "night"), { recursive: true });
  await beforeLearning?.(real);
  await Deno.symlink(real, watch);
  const errors: string[] = [];
  const poller = new FolderPoller({
    root: watch,
    filter: createFileFilter(localTestJob(root, { file_patterns: ["*.fits"] })),
    onError: (path) => errors.push(path),
  });
  await poller.learn();
  const relink = async (target: string) => {
    await Deno.remove(watch);
    await Deno.symlink(target, watch);
  };
  return {
    real,
    watch,
    errors,
    poller,
    unreadable: () => relink("watch"),
    readable: () => relink(real),
  };
}

Deno.test("poller: a file whose stat fails for a while (not 'not found') is kept, and its later change is reported", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-poller-" });
  try {
    const { real, watch, errors, poller, unreadable, readable } = await pollerOfLink(root);
    const path = join(real, "night", "a.fits");
    await Deno.writeTextFile(path, "part one");
    assert.deepEqual(rels(await poller.poll()), ["night/a.fits"]);
    assert.deepEqual(await poller.poll(), []);

    await unreadable();
    assert.throws(() => Deno.statSync(join(watch, "night", "a.fits")), Deno.errors.FilesystemLoop);
    assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(poller.size, { folders: 2, files: 1 }, "nothing forgotten");

    // Readable again; the file grew meanwhile, and no name changed in its folder.
    await Deno.writeTextFile(path, " and part two", { append: true });
    await readable();
    assert.deepEqual(rels(await poller.poll()), ["night/a.fits"]);
    assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(errors, [join(watch, "night")], "its folder said once");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("poller: a folder that cannot be looked at for a while is said once, kept, and listed again once it can", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-poller-" });
  try {
    const { real, watch, errors, poller, unreadable, readable } = await pollerOfLink(
      root,
      (real) => pinMtime(join(real, "night"), 1_000_000),
    );
    await unreadable();
    for (let i = 0; i < 3; i++) assert.deepEqual(await poller.poll(), []);
    assert.deepEqual(
      errors,
      [join(watch, "night")],
      "said once (the watch folder is the caller's)",
    );
    assert.deepEqual(poller.size, { folders: 2, files: 0 }, "nothing forgotten");
    // A file arrived meanwhile, and the folder's mtime says nothing of it (a coarse clock).
    await Deno.writeTextFile(join(real, "night", "new.fits"), "new");
    await pinMtime(join(real, "night"), 1_000_000);
    await readable();
    assert.deepEqual(rels(await poller.poll()), ["night/new.fits"]);
    assert.deepEqual(await poller.poll(), []);
    assert.equal(errors.length, 1);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
