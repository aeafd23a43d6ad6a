/**
 * End to end through the real CLI, for local, scp and rsync (a real OpenSSH
 * server on 127.0.0.1): writers that open, append and close a file several
 * times deliver one complete version under the final name, and only one;
 * a truncated FITS file goes after its grace with a warning, and so does an
 * empty one (a FITS file not written yet); another empty file waits the full
 * window; a file deleted 0.5 s after its close is never sent; a complete
 * FITS file renamed or moved in (no close follows) waits neither for a close
 * nor for the extensions a too large NEXTEND counts.
 * The destination is watched (events and polling) while it runs.
 */
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listArrived, listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import {
  ASTROPY_FITS_DATA,
  card,
  fitsFile,
  headerBytes,
  headerOnlyPrimary,
  imageExtension,
  imageParts,
} from "../../helpers/fits.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { sshSandbox, startSshd, type TestSshd } from "../../helpers/sshd.ts";

/**
 * The stability window: far longer than the writers' pauses below (700 ms
 * between two steps, 500 ms before a delete), which a busy machine may stretch.
 */
const WINDOW_SECONDS = 6;
const GRACE_SECONDS = 10;
/** Pause between two open–append–close steps: shorter than the window. */
const STEP_MS = 700;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What was seen under one final name at the destination. */
interface Sighting {
  sizes: Set<number>;
  inodes: Set<number>;
  firstAtMs: number;
}

/**
 * Watches a destination folder with a watcher and by polling, and records
 * every size and inode seen under a final (not hidden) name.
 */
class DestinationMonitor {
  readonly seen = new Map<string, Sighting>();
  #watcher: Deno.FsWatcher;
  #stopped = false;
  #loops: Promise<void>[];

  constructor(readonly root: string) {
    const watcher = Deno.watchFs(root, { recursive: true });
    this.#watcher = watcher;
    this.#loops = [
      (async () => {
        for await (const event of watcher) {
          for (const path of event.paths) this.#observe(path);
        }
      })(),
      (async () => {
        while (!this.#stopped) {
          for (const rel of await listFiles(root).catch(() => [])) {
            this.#observe(join(root, rel));
          }
          await sleep(20);
        }
      })(),
    ];
  }

  #observe(path: string): void {
    const rel = path.slice(this.root.length + 1);
    if (rel.split("/").some((segment) => segment.startsWith("."))) return; // a temporary copy
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return;
    }
    if (!info.isFile) return;
    const name = basename(path);
    const sighting = this.seen.get(name) ??
      { sizes: new Set<number>(), inodes: new Set<number>(), firstAtMs: performance.now() };
    this.seen.set(name, sighting);
    sighting.sizes.add(info.size);
    if (info.ino !== null) sighting.inodes.add(info.ino);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#watcher.close();
    await Promise.all(this.#loops);
  }
}

/** Append `bytes` with one open–write–close. */
async function append(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(path, bytes, { append: true, create: true });
}

/** Every `Successfully transferred` line that names `name`. */
function successLines(log: string, name: string): string[] {
  return log.split("\n").filter((line) =>
    line.includes("Successfully transferred") && line.includes(`/${name} ->`)
  );
}

/** A config for `method`: the sshd sandbox for scp/rsync, a local folder otherwise. */
async function sandbox(
  method: "local" | "scp" | "rsync",
  sshd: TestSshd | null,
  values: Record<string, unknown>,
): Promise<
  { root: string; watch: string; dest: string; config: string; env: Record<string, string> }
> {
  if (sshd !== null && method !== "local") {
    const box = await sshSandbox(sshd, method, values);
    return { ...box, dest: box.remote };
  }
  // Its folder is removed by the test, as the sshd sandbox's is.
  const box = await cliSandbox({ log_file: "", ...values });
  await Deno.mkdir(box.dest);
  return box;
}

for (const method of ["local", "scp", "rsync"] as const) {
  Deno.test(`daemon (${method}): close-and-reopen writers deliver one complete version; truncated FITS after its grace; empty files wait; deleted files are not sent`, async () => {
    const sshd = method === "local" ? null : await startSshd();
    const { root, watch, dest, config, env } = await sandbox(method, sshd, {
      file_patterns: ["*.fits", "*.dat"],
      stability_window_seconds: WINDOW_SECONDS,
      fits_incomplete_grace_seconds: GRACE_SECONDS,
      verify_transfer: "checksum",
    });
    const monitor = new DestinationMonitor(dest);
    const daemon = startCli(["run", "-c", config], { env });
    const expected = new Map<string, Uint8Array>();
    const writtenAt = new Map<string, number>();
    try {
      await daemon.waitForOutput("Watching");

      // A camera: the header first, then the data in four open-append-close steps.
      const fits = imageParts(300, 200); // 120,000 bytes of data
      const headerFirst = async () => {
        const path = join(watch, "header first.fits");
        await append(path, fits.header);
        const step = Math.ceil(fits.data.length / 4);
        for (let i = 0; i < 4; i++) {
          await sleep(STEP_MS);
          await append(path, fits.data.subarray(i * step, (i + 1) * step));
        }
        expected.set("header first.fits", await Deno.readFile(path));
      };
      // Software appending frames to a file that is not FITS.
      const frames = async () => {
        const path = join(watch, "frames.dat");
        for (let i = 0; i < 4; i++) {
          if (i > 0) await sleep(STEP_MS);
          await append(path, randomBytes(20_000));
        }
        expected.set("frames.dat", await Deno.readFile(path));
      };
      // A writer that died: the header promises more data than there is.
      const truncated = async () => {
        const { header, data } = imageParts(100, 100);
        const bytes = new Uint8Array([...header, ...data.subarray(0, 7000)]);
        await Deno.writeFile(join(watch, "truncated.fits"), bytes);
        writtenAt.set("truncated.fits", performance.now());
        expected.set("truncated.fits", bytes);
      };
      // A placeholder created before anything is written.
      // Empty: another file waits the window; one named as FITS is a FITS file not written yet
      // (a camera that creates it when the exposure starts), so it waits the grace.
      const empty = async () => {
        for (const name of ["empty.dat", "empty.fits"]) {
          await Deno.writeFile(join(watch, name), new Uint8Array(0));
          writtenAt.set(name, performance.now());
          expected.set(name, new Uint8Array(0));
        }
      };
      // Written, closed, and deleted 0.5 s later: never sent.
      const deleted = async () => {
        const plain = join(watch, "deleted.dat");
        const header = join(watch, "deleted header.fits");
        await Deno.writeFile(plain, randomBytes(30_000));
        await Deno.writeFile(header, imageParts(100, 100).header);
        await sleep(500);
        await Deno.remove(plain);
        await Deno.remove(header);
      };
      await Promise.all([headerFirst(), frames(), truncated(), empty(), deleted()]);

      await waitFor(
        () => [...expected.keys()].every((name) => successLines(daemon.stderr(), name).length > 0),
        120_000,
        "every expected file transferred",
      );
      // Give a second version, or a deleted file, the chance to show up.
      await sleep(WINDOW_SECONDS * 1000 + 1500);
    } finally {
      await monitor.stop();
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, daemon.stderr());
    }
    try {
      const log = daemon.stderr();
      const finals = await listArrived(dest);
      assert.deepEqual(finals.map((rel) => basename(rel)).sort(), [...expected.keys()].sort(), log);
      for (const rel of finals) {
        const name = basename(rel);
        assert.deepEqual(
          await Deno.readFile(join(dest, rel)),
          expected.get(name),
          `bytes of ${name}`,
        );
        assert.equal(successLines(log, name).length, 1, `one success line for ${name}\n${log}`);
        const sighting = monitor.seen.get(name)!;
        assert.deepEqual(
          [...sighting.sizes],
          [expected.get(name)!.length],
          `sizes seen of ${name}`,
        );
        assert.equal(sighting.inodes.size, 1, `one version of ${name} under its final name`);
      }
      // The truncated file: after its grace, with a warning line before its success line.
      const lines = log.split("\n");
      const warning = lines.findIndex((line) =>
        /WARNING .*Sending .*truncated\.fits although its FITS structure is incomplete/.test(line)
      );
      assert.ok(warning >= 0, `a warning for truncated.fits\n${log}`);
      const sent = lines.indexOf(successLines(log, "truncated.fits")[0]);
      assert.ok(warning < sent, "the warning comes before the transfer");
      assert.match(
        log,
        /truncated\.fits although its FITS structure is incomplete \(HDU 0 ends at byte 23040, the file has 9880\)/,
      );
      const truncatedAfterMs = monitor.seen.get("truncated.fits")!.firstAtMs -
        writtenAt.get("truncated.fits")!;
      assert.ok(
        truncatedAfterMs >= GRACE_SECONDS * 1000 - 50,
        `truncated.fits after ${truncatedAfterMs} ms`,
      );
      const after = (name: string) => monitor.seen.get(name)!.firstAtMs - writtenAt.get(name)!;
      assert.ok(
        after("empty.dat") >= WINDOW_SECONDS * 1000 - 50,
        `empty.dat: ${after("empty.dat")}`,
      );
      assert.ok(
        after("empty.fits") >= GRACE_SECONDS * 1000 - 50,
        `empty.fits: ${after("empty.fits")}`,
      );
      assert.match(log, /empty\.fits although its FITS structure is incomplete \(empty so far/);
      // No other file was flagged truncated, and the deleted ones were dropped.
      assert.equal(log.match(/although its FITS structure is incomplete/g)?.length, 2, log);
      assert.match(
        log,
        /Dropped .*deleted\.dat: it was deleted or moved away before it was complete/,
      );
      assert.match(
        log,
        /Dropped .*deleted header\.fits: it was deleted or moved away before it was complete/,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd?.stop();
    }
  });
}

Deno.test("run --once: a fresh incomplete FITS file is left for a later run; one truncated long ago goes with a warning", async () => {
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 0.2,
    fits_incomplete_grace_seconds: 600,
  });
  try {
    const { header, data } = imageParts(100, 100);
    const complete = new Uint8Array([...header, ...data]);
    await Deno.writeFile(join(watch, "complete.fits"), complete);
    await Deno.writeFile(join(watch, "being written.fits"), header);
    const old = new Uint8Array([...header, ...data.subarray(0, 1000)]);
    await Deno.writeFile(join(watch, "crashed.fits"), old);
    const dayAgo = new Date(Date.now() - 86_400_000);
    await Deno.utime(join(watch, "crashed.fits"), dayAgo, dayAgo);

    const result = await runCli(["run", "--once", "-c", config], { env });
    assert.equal(result.code, 0, result.stderr);
    const log = result.stderr;
    assert.match(
      log,
      /Left .*being written\.fits for a later run: its FITS structure is incomplete/,
    );
    // Before: nothing said which later run sends it: the daemon, which waits for the rest.
    assert.match(
      log,
      /being written\.fits for a later run: .*; `run` without --once waits for it$/m,
    );
    assert.match(
      log,
      /WARNING .*Sending .*crashed\.fits although its FITS structure is incomplete/,
    );
    assert.equal(successLines(log, "being written.fits").length, 0);
    const arrived = new Map<string, Uint8Array>();
    for (const rel of await listFiles(dest)) {
      arrived.set(basename(rel), await Deno.readFile(join(dest, rel)));
    }
    assert.deepEqual([...arrived.keys()].sort(), ["complete.fits", "crashed.fits"]);
    assert.deepEqual(arrived.get("complete.fits"), complete);
    assert.deepEqual(arrived.get("crashed.fits"), old);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("run --once: a file marked for resending whose source was cut short long ago goes with a warning, as one a scan finds, not left for a later run", async () => {
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 0.2,
    fits_incomplete_grace_seconds: 600,
  });
  try {
    const { header, data } = imageParts(100, 100);
    const name = "cut $(id) 'short\".fits";
    const dayAgo = new Date(Date.now() - 86_400_000);
    await Deno.writeFile(join(watch, name), new Uint8Array([...header, ...data]));
    await Deno.utime(join(watch, name), dayAgo, dayAgo);
    const first = await runCli(["run", "--once", "-c", config], { env });
    assert.equal(first.code, 0, first.stderr);
    const resend = await runCli(["resend", "--all", "-c", config], { env });
    assert.equal(resend.code, 0, resend.stderr);
    // Its row is pending again; then the disk lost the end of the file, a day ago (the pending
    // row's size and mtime no longer match it).
    const cut = new Uint8Array([...header, ...data.subarray(0, 1000)]);
    await Deno.writeFile(join(watch, name), cut);
    const longAgo = new Date(dayAgo.getTime() + 60_000);
    await Deno.utime(join(watch, name), longAgo, longAgo);

    // The dry run says where the run puts it: beside the copy, not over it.
    const dry = await runCli(["run", "--dry-run", "-c", config], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /short"~2\.fits \(beside the earlier file of that name\)/);
    const result = await runCli(["run", "--once", "-c", config], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /Left .* for a later run/);
    assert.match(
      result.stderr,
      /WARNING .*Sending .*short".fits although its FITS structure is incomplete/,
    );
    // Before: the cut file went over the complete copy sent first, the only whole one left.
    const arrived = (await listFiles(dest)).sort();
    assert.equal(arrived.length, 2, arrived.join("\n"));
    assert.deepEqual(
      await Deno.readFile(join(dest, arrived[0])),
      new Uint8Array([...header, ...data]),
    );
    assert.match(arrived[1], /~2\.fits$/);
    assert.deepEqual(await Deno.readFile(join(dest, arrived[1])), cut);
    assert.match(result.stderr, /is incomplete now .*: an incomplete file never replaces a copy/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): a FITS file sent complete, then cut short or emptied by its writer, goes beside its copy after the grace; the complete copy stays", async () => {
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 0.5,
    fits_incomplete_grace_seconds: 2,
  });
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    const { header, data } = imageParts(100, 100);
    const whole = new Uint8Array([...header, ...data]);
    const names = ["-cut 'short'.fits", "emptied $(id).fits"];
    for (const name of names) await Deno.writeFile(join(watch, name), whole);
    await waitFor(async () => (await listArrived(dest)).length === 2, 60_000, "both sent");
    const night = dirname((await listArrived(dest))[0]);
    // The instrument's disk loses the end of one; the other is emptied.
    await Deno.truncate(join(watch, names[0]), header.length + 1000);
    await Deno.truncate(join(watch, names[1]), 0);
    await waitFor(async () => (await listArrived(dest)).length === 4, 60_000, "both beside");
    // Before: each went over its complete copy, the only whole one (one became 0 bytes).
    for (const name of names) {
      assert.deepEqual(await Deno.readFile(join(dest, night, name)), whole, name);
    }
    const beside = (name: string) => join(dest, night, name.replace(/\.fits$/, "~2.fits"));
    assert.deepEqual(
      await Deno.readFile(beside(names[0])),
      new Uint8Array([...header, ...data.subarray(0, 1000)]),
    );
    assert.equal((await Deno.stat(beside(names[1]))).size, 0);
    await daemon.stop();
    const log = daemon.stderr();
    assert.equal(
      [...log.matchAll(/is incomplete now .*: an incomplete file never replaces a copy/g)].length,
      2,
      log,
    );
  } finally {
    await daemon.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): a writer that closes a FITS file and appends an HDU later: by default each version goes and a WARNING names the setting; with fits_appends_extensions it goes once, complete", async () => {
  const { header, data } = imageParts(100, 100, [card("EXTEND", true)]);
  const extension = headerBytes([
    card("XTENSION", "IMAGE"),
    card("BITPIX", 8),
    card("NAXIS", 0),
    card("PCOUNT", 0),
    card("GCOUNT", 1),
  ]);
  const whole = fitsFile(header, data, extension);
  for (const appended of [false, true]) {
    const { root, watch, dest, config, env } = await sandbox("local", null, {
      stability_window_seconds: WINDOW_SECONDS,
      fits_appends_extensions: appended,
    });
    const monitor = new DestinationMonitor(dest);
    const daemon = startCli(["run", "-c", config], { env });
    try {
      await daemon.waitForOutput("Watching");
      const path = join(watch, "mef.fits");
      // As astropy's writeto, then fits.append: each a complete file, closed.
      await append(path, fitsFile(header, data));
      if (!appended) await daemon.waitForOutput(/Successfully transferred .*mef\.fits/);
      else await sleep(STEP_MS);
      await append(path, extension);
      await waitFor(
        () => monitor.seen.get("mef.fits")?.sizes.has(whole.length) ?? false,
        60_000,
        "the whole file at the destination",
      );
      const [arrived] = await listFiles(dest);
      assert.deepEqual(await Deno.readFile(join(dest, arrived)), whole);
      const sizes = [...monitor.seen.get("mef.fits")!.sizes].sort((a, b) => a - b);
      if (appended) {
        assert.deepEqual(sizes, [whole.length], "only the complete file under its name");
        assert.doesNotMatch(daemon.stderr(), /HDUs appended/);
      } else {
        assert.deepEqual(sizes, [header.length + data.length, whole.length]);
        await daemon.waitForOutput(
          /WARNING .*mef\.fits was sent with \d+ bytes and has grown .* by HDUs appended .*fits_appends_extensions: true/,
        );
      }
    } finally {
      await monitor.stop();
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
      await Deno.remove(root, { recursive: true });
    }
  }
});

Deno.test("daemon (local): a complete FITS file open to more HDUs, or counting more in NEXTEND than it holds (astropy's double_ext.fits), that is renamed or moved in (no close follows) goes without waiting", async () => {
  const { header, data } = imageParts(100, 100, [card("EXTEND", true)]);
  const kinds = {
    "open": fitsFile(header, data),
    // NEXTEND = 36, one extension there: complete, as a tool that removed extensions left it.
    "double_ext": await Deno.readFile(join(ASTROPY_FITS_DATA, "double_ext.fits")),
  };
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 1,
    // Before, each waited this long for a close, or for the extensions, that never come.
    fits_incomplete_grace_seconds: 3600,
  });
  const daemon = startCli(["run", "-c", config], { env });
  const expected = new Map<string, Uint8Array>();
  try {
    await daemon.waitForOutput("Watching");
    for (const [kind, bytes] of Object.entries(kinds)) {
      // Written under a name the patterns skip, then renamed (as design.md advises writers).
      await Deno.writeFile(join(watch, `renamed ${kind}.fits.tmp`), bytes);
      await Deno.rename(
        join(watch, `renamed ${kind}.fits.tmp`),
        join(watch, `renamed ${kind}.fits`),
      );
      // Written elsewhere and moved in.
      await Deno.writeFile(join(root, `moved ${kind}.fits`), bytes);
      await Deno.rename(join(root, `moved ${kind}.fits`), join(watch, `moved ${kind}.fits`));
      expected.set(`renamed ${kind}.fits`, bytes).set(`moved ${kind}.fits`, bytes);
    }
    await waitFor(
      async () => (await listArrived(dest)).length === expected.size,
      60_000,
      "all four at the destination",
    );
    for (const rel of await listArrived(dest)) {
      const bytes = expected.get(basename(rel));
      assert.ok(bytes, `${rel} was sent`);
      assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, `${rel}\n${daemon.stderr()}`);
    }
    assert.doesNotMatch(daemon.stderr(), /its writer still has it open|incomplete|truncated/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): the files of a folder moved in (mv staging/night1 watch/), astropy's double_ext.fits among them, go without waiting the grace, as a file moved in on its own does", async () => {
  // NEXTEND = 36, one extension there: complete, as a tool that removed extensions left it.
  const doubleExt = await Deno.readFile(join(ASTROPY_FITS_DATA, "double_ext.fits"));
  const { header, data } = imageParts(100, 100, [card("EXTEND", true)]);
  const open = fitsFile(header, data);
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 1,
    // Before, the files of a moved-in folder waited this long for the extensions NEXTEND counts.
    fits_incomplete_grace_seconds: 3600,
  });
  const staging = join(root, "staging");
  const expected = new Map<string, Uint8Array>([
    ["night1/double_ext.fits", doubleExt],
    ["night1/cam2/double_ext.fits", doubleExt],
    ["night1/cam2/open.fits", open],
    // A folder named as the files the patterns match.
    ["batch.fits/double_ext.fits", doubleExt],
  ]);
  for (const [rel, bytes] of expected) {
    await Deno.mkdir(dirname(join(staging, rel)), { recursive: true });
    await Deno.writeFile(join(staging, rel), bytes);
  }
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    for (const folder of ["night1", "batch.fits"]) {
      await Deno.rename(join(staging, folder), join(watch, folder));
    }
    await waitFor(
      async () => (await listArrived(dest)).length === expected.size,
      60_000,
      "the files of both folders at the destination",
    );
    const arrived = new Map<string, Uint8Array>();
    for (const rel of await listArrived(dest)) {
      // The night folder first (YYYYMMDD/), then the path in the watch folder.
      arrived.set(rel.slice(rel.indexOf("/") + 1), await Deno.readFile(join(dest, rel)));
    }
    assert.deepEqual(arrived, expected, daemon.stderr());
    assert.doesNotMatch(daemon.stderr(), /its writer still has it open|incomplete|truncated/);
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): a FITS file copied and then given its mode (shutil.copy, cp + chmod) goes at once; a multi-extension file whose writer pauses after its header waits for the close", async () => {
  const { header, data } = imageParts(100, 100, [card("EXTEND", true)]);
  const bytes = fitsFile(header, data);
  const { root, watch, dest, config, env } = await sandbox("local", null, {
    stability_window_seconds: 1,
    // Before, the copies waited this long for a close that had come before the chmod.
    fits_incomplete_grace_seconds: 3600,
  });
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    // The close and the chmod come together (one gathering of events), and apart.
    Deno.writeFileSync(join(watch, "together.fits"), bytes);
    Deno.chmodSync(join(watch, "together.fits"), 0o640);
    await Deno.writeFile(join(watch, "apart.fits"), bytes);
    await sleep(100);
    await Deno.chmod(join(watch, "apart.fits"), 0o640);
    // A header-only primary HDU that announces extensions, then a pause longer than the window.
    const primary = headerOnlyPrimary();
    const extension = imageExtension(100, 100);
    {
      using file = await Deno.open(join(watch, "mef.fits"), { write: true, create: true });
      await file.write(primary);
      await waitFor(
        async () => (await listArrived(dest)).length === 2,
        60_000,
        "the two copies at the destination while the other file is open",
      );
      await sleep(2_500);
      assert.deepEqual(
        await listFiles(dest),
        await listArrived(dest),
        "the header alone is not sent",
      );
      assert.equal((await listArrived(dest)).length, 2);
      await file.write(extension);
    }
    const night = (await listArrived(dest))[0].split("/")[0];
    const names = ["apart.fits", "mef.fits", "together.fits"].map((name) => `${night}/${name}`);
    await waitFor(
      async () => JSON.stringify(await listFiles(dest)) === JSON.stringify(names),
      60_000,
      "mef.fits sent, and nothing else there",
    );
    for (const rel of await listFiles(dest)) {
      const expected = rel.endsWith("mef.fits") ? fitsFile(primary, extension) : bytes;
      assert.deepEqual(await Deno.readFile(join(dest, rel)), expected, rel);
    }
    assert.equal(
      daemon.stderr().match(/its writer still has it open/g)?.length ?? 0,
      1,
      daemon.stderr(),
    );
    assert.match(
      daemon.stderr(),
      /mef\.fits has not changed for the stability window, but its writer still has it open/,
    );
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): started while a camera holds a multi-extension file open after its header, it waits for the rest; so does a file in a folder made just before", async () => {
  const { watch, dest, config, env, root } = await sandbox("local", null, {
    stability_window_seconds: 1,
    fits_incomplete_grace_seconds: 3600,
  });
  const primary = headerOnlyPrimary();
  const extension = imageExtension(100, 100);
  using early = await Deno.open(join(watch, "early.fits"), { write: true, create: true });
  await early.write(primary);
  const daemon = startCli(["run", "-c", config], { env });
  try {
    await daemon.waitForOutput("Watching");
    // The camera makes tonight's folder and opens its first exposure at once.
    await Deno.mkdir(join(watch, "night"));
    using late = await Deno.open(join(watch, "night", "late.fits"), { write: true, create: true });
    await late.write(primary);
    await daemon.waitForOutput(/late\.fits has not changed for the stability window, but/, 30_000);
    await sleep(2_000);
    assert.deepEqual(await listArrived(dest), [], "no header alone at the destination");
    await early.write(extension);
    early.close();
    await late.write(extension);
    late.close();
    await waitFor(
      async () => (await listArrived(dest)).length === 2,
      60_000,
      "both complete files",
    );
    for (const rel of await listArrived(dest)) {
      assert.deepEqual(await Deno.readFile(join(dest, rel)), fitsFile(primary, extension), rel);
    }
    // Said once each (the line comes just after the rename the listing saw).
    const sent = () => daemon.stderr().match(/Successfully transferred/g)?.length ?? 0;
    await waitFor(() => sent() >= 2, 30_000, "both said");
    assert.equal(sent(), 2, daemon.stderr());
  } finally {
    const status = await daemon.stop();
    assert.equal(status.code, 0, daemon.stderr());
    await Deno.remove(root, { recursive: true });
  }
});
