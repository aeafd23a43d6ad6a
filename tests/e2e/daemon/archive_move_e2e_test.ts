/**
 * `after_transfer: move` into an archive on another file system (a copy, then
 * the source's removal), through the real CLI, with the archive a FUSE view
 * whose writes wait while the test holds them (`holding_fs.py`): a source
 * written in place during the copy stays and its unfinished copy goes (the
 * change is never lost); a move cut short by a crash leaves a copy that the
 * next move into that folder removes, and nobody else's files; a source that
 * cannot be removed (a read-only share) leaves no copy in the archive, so the
 * next try archives it once; an archive share that is not mounted (any more)
 * gets nothing in its mount point, on the disk below.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isMounted, mountBindfs, mountHoldingView, unmountBindfs } from "../../helpers/bindfs.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { existsSync, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { setImmutable } from "../../helpers/immutable.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

/** A sandbox whose sources `move` into an archive view (not mounted yet). */
async function setUp() {
  const box = await cliSandbox();
  const p = Object.assign(box, {
    /** What the archive view stores; look here while a write is held. */
    disk: join(box.root, "archive-disk"),
    /** The archive_path: a FUSE view of `disk`, another file system than the watch folder. */
    archive: join(box.root, "archive"),
    /** While this file exists, writes into the archive wait. */
    hold: join(box.root, "hold"),
  });
  await Deno.mkdir(p.disk);
  await p.rewrite({ after_transfer: "move", archive_path: p.archive });
  return p;
}

type Paths = Awaited<ReturnType<typeof setUp>>;

/** Run `fn` with the archive view mounted (and writes into it held), then clean up. */
async function withHeldArchive(p: Paths, fn: () => Promise<void>): Promise<void> {
  await Deno.writeTextFile(p.hold, "");
  const view = await mountHoldingView(p.disk, p.archive, p.hold);
  try {
    await fn();
  } finally {
    await Deno.remove(p.hold).catch(() => {});
    await unmountBindfs(p.archive);
    await view.status;
  }
}

/** `night 1` in the archive's disk once the held copy is there (hidden while it is copied). */
async function heldCopyFolder(disk: string): Promise<string> {
  const folder = join(disk, "night 1");
  await waitFor(
    async () => existsSync(folder) && (await hiddenIn(folder)).length > 0,
    60_000,
    "the copy",
  );
  return folder;
}

/** The hidden files (unfinished copies) in `folder` now. */
async function hiddenIn(folder: string): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(folder))).map((entry) => entry.name);
  return names.filter((name) => name.startsWith("."));
}

/** The hidden files (unfinished copies) in the archive's disk now. */
function hiddenInArchive(p: Paths): Promise<string[]> {
  return hiddenIn(p.disk);
}

for (const mtime of ["moved", "restored"] as const) {
  Deno.test(`after_transfer: move across file systems, a source written in place during the copy (its mtime ${mtime}) is kept, never removed with its change`, async () => {
    await using p = await setUp();
    await withHeldArchive(p, async () => {
      const daemon = startCli(["run", "-c", p.config], { env: p.env });
      try {
        await daemon.waitForOutput("Watching");
        const source = join(p.watch, "m1.fits");
        const sent = randomBytes(300_000);
        await Deno.writeFile(source, sent);
        // The copy into the archive has begun (its file is there) and waits for the hold.
        await waitFor(async () => (await hiddenInArchive(p)).length > 0, 60_000, "the copy")
          .catch((e) => {
            throw new Error(`${e}\n${daemon.stderr()}`);
          });
        const before = await Deno.stat(source);
        // 19 bytes written over the source in place, as `dd conv=notrunc` does.
        const patch = new TextEncoder().encode("written in place!!!");
        const file = await Deno.open(source, { write: true });
        await file.seek(1000, Deno.SeekMode.Start);
        await file.write(patch);
        file.close();
        if (mtime === "restored") await Deno.utime(source, before.atime!, before.mtime!);
        const changed = sent.slice();
        changed.set(patch, 1000);
        await Deno.remove(p.hold);

        if (mtime === "restored") {
          // Size and mtime as sent: the daemon does not send it again, but it must not lose it.
          await daemon.waitForOutput(/Moved .*m1\.fits|m1\.fits changed while it was copied/);
          assert.deepEqual(await Deno.readFile(source), changed, daemon.stderr());
        } else {
          // Its new version is sent, then moved, as any changed file.
          await waitFor(() => !existsSync(source), 60_000, "the source moved");
          await daemon.waitForOutput(/Moved .*m1\.fits/);
          assert.deepEqual(await Deno.readFile(join(p.disk, "m1.fits")), changed, daemon.stderr());
          // At the destination, the new version went beside the one sent (a source moved away
          // makes any file of its name new).
          const copies = (await listFiles(p.dest)).sort();
          assert.deepEqual(copies.map((copy) => copy.split("/").pop()), ["m1.fits", "m1~2.fits"]);
          assert.deepEqual(await Deno.readFile(join(p.dest, copies[0])), sent);
          assert.deepEqual(await Deno.readFile(join(p.dest, copies[1])), changed);
        }
        assert.match(daemon.stderr(), /m1\.fits changed while it was copied into the archive/);
        assert.deepEqual(await hiddenInArchive(p), [], "the unfinished copy is removed");
        const archived = (await Array.fromAsync(Deno.readDir(p.disk))).map((e) => e.name);
        assert.deepEqual(archived, mtime === "restored" ? [] : ["m1.fits"]);
      } finally {
        await Deno.remove(p.hold).catch(() => {});
        const status = await daemon.stop();
        assert.equal(status.code, 0, daemon.stderr());
      }
    });
  });
}

Deno.test("after_transfer: move across file systems, a copy left by a daemon killed during a move is removed by the next move into its folder, and nobody else's files", async () => {
  await using p = await setUp();
  await withHeldArchive(p, async () => {
    const env = p.env;
    const sent = randomBytes(200_000);
    await Deno.mkdir(join(p.watch, "night 1"));
    const source = join(p.watch, "night 1", "a.fits");
    const first = startCli(["run", "-c", p.config], { env });
    let leftover: string;
    try {
      await first.waitForOutput("Watching");
      await Deno.writeFile(source, sent);
      const disk = await heldCopyFolder(p.disk);
      leftover = (await hiddenIn(disk))[0];
    } finally {
      // Killed in the middle of the copy; it ends once its held write is let go.
      first.process.kill("SIGKILL");
      await Deno.remove(p.hold);
      await first.stop();
    }
    const folder = join(p.disk, "night 1");
    assert.ok(existsSync(join(folder, leftover)), "the interrupted move left its copy");
    assert.ok(existsSync(source), "the source stays");
    // Files of others beside it, named much like it: another daemon's (another id), older ones.
    const owner = /^\.archiving-([0-9a-f]+)-/.exec(leftover)?.[1];
    assert.ok(owner !== undefined, `${leftover} tells whose it is`);
    const others = [
      `.archiving-${owner === "0123456789" ? "9876543210" : "0123456789"}-${"ab".repeat(12)}` +
      ".image-transfer-partial",
      `.archiving-${owner}-notrandom.image-transfer-partial`,
      `.${crypto.randomUUID()}.part`,
      "notes.txt",
    ];
    for (const name of others) await Deno.writeTextFile(join(folder, name), name);

    const second = startCli(["run", "-c", p.config], { env });
    try {
      await second.waitForOutput(/Moved .*a\.fits/);
      assert.match(second.stderr(), /Removed .*: a copy left unfinished by an interrupted move/);
      assert.deepEqual(await Deno.readFile(join(folder, "a.fits")), sent);
      assert.ok(!existsSync(source));
      const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name).sort();
      assert.deepEqual(names, ["a.fits", ...others].sort(), second.stderr());
    } finally {
      const status = await second.stop();
      assert.equal(status.code, 0, second.stderr());
    }
  });
});

Deno.test("after_transfer: move across file systems, a source that cannot be removed leaves no copy in the archive, and is archived once when it can", async () => {
  await using p = await setUp();
  const night = join(p.watch, "night 1");
  const source = join(night, "a.fits");
  const sent = randomBytes(200_000);
  await Deno.mkdir(night);
  await withHeldArchive(p, async () => {
    const first = startCli(["run", "-c", p.config], { env: p.env });
    try {
      await first.waitForOutput("Watching");
      await Deno.writeFile(source, sent);
      const disk = await heldCopyFolder(p.disk);
      // Its folder cannot be changed now, as on a share mounted read-only meanwhile.
      await setImmutable(night, true);
      await Deno.remove(p.hold);
      await first.waitForOutput(/Cannot move .*a\.fits into the archive/);
      assert.deepEqual(await Deno.readFile(source), sent, "the source stays");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(disk)), [], first.stderr());
    } finally {
      await setImmutable(night, false).catch(() => {});
      await Deno.remove(p.hold).catch(() => {});
      const status = await first.stop();
      assert.equal(status.code, 0, first.stderr());
    }
    const second = startCli(["run", "-c", p.config], { env: p.env });
    try {
      await second.waitForOutput(/Moved .*a\.fits/);
      assert.ok(!existsSync(source));
      const folder = join(p.disk, "night 1");
      const names = (await Array.fromAsync(Deno.readDir(folder))).map((e) => e.name);
      assert.deepEqual(names, ["a.fits"], second.stderr());
      assert.deepEqual(await Deno.readFile(join(folder, "a.fits")), sent);
    } finally {
      const status = await second.stop();
      assert.equal(status.code, 0, second.stderr());
    }
  });
});

Deno.test("after_transfer: move into an archive share that is no longer mounted puts nothing into its mount point: the source stays, said at ERROR, and is archived once the share is back", async () => {
  await using p = await setUp();
  // Another view than the held one: a plain share of the archive's disk.
  await mountBindfs(p.disk, p.archive);
  try {
    const first = startCli(["run", "-c", p.config], { env: p.env });
    const kept = randomBytes(40_000);
    const source = join(p.watch, "b.fits");
    try {
      await first.waitForOutput("Watching");
      const archived = randomBytes(50_000);
      await Deno.writeFile(join(p.watch, "a.fits"), archived);
      await first.waitForOutput(/Moved .*a\.fits/);
      assert.deepEqual(await Deno.readFile(join(p.disk, "a.fits")), archived);

      await unmountBindfs(p.archive);
      await Deno.writeFile(source, kept);
      await first.waitForOutput(
        /Cannot move \S+b\.fits into the archive .*an empty folder on \S+ stands where files were archived on fuse \(a share that is not mounted\): mount it/,
      );
      assert.deepEqual(await Deno.readFile(source), kept, "the source stays");
      assert.deepEqual(await Array.fromAsync(Deno.readDir(p.archive)), [], first.stderr());
    } finally {
      const status = await first.stop();
      assert.equal(status.code, 0, first.stderr());
    }
    // Known after a restart too (the ledger keeps it), and to --dry-run; once the share is back,
    // b.fits goes there.
    const dry = await runCli(["run", "--dry-run", "-c", p.config], { env: p.env });
    assert.match(dry.stdout, /would move nothing into \S+archive: .*a share that is not mounted/);
    assert.doesNotMatch(dry.stdout, /would move \S+b\.fits/);
    const second = startCli(["run", "-c", p.config], { env: p.env });
    try {
      await second.waitForOutput(/Cannot move \S+b\.fits into the archive .*not mounted/);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(p.archive)), [], second.stderr());
    } finally {
      assert.equal((await second.stop()).code, 0, second.stderr());
    }
    await mountBindfs(p.disk, p.archive);
    const third = startCli(["run", "-c", p.config], { env: p.env });
    try {
      await third.waitForOutput(/Moved .*b\.fits/);
      assert.ok(!existsSync(source));
      const names = (await Array.fromAsync(Deno.readDir(p.disk))).map((e) => e.name).sort();
      assert.deepEqual(names, ["a.fits", "b.fits"], third.stderr());
      assert.deepEqual(await Deno.readFile(join(p.disk, "b.fits")), kept);
    } finally {
      assert.equal((await third.stop()).code, 0, third.stderr());
    }
  } finally {
    if (await isMounted(p.archive)) await unmountBindfs(p.archive);
  }
});
