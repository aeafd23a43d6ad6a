/**
 * A file that was sent and is then changed in the watch folder (a header fixed the next
 * afternoon: its mtime now names a later night) goes over its own copy, in the night folder the
 * ledger records it in, with every method, through the real CLI (`run --once`, `run --dry-run`,
 * `status`, `resend`) and real servers (OpenSSH with scp and rsync, vsftpd): the destination
 * holds one copy of it, the latest, never a second one in the later night. A new file under the
 * name (made after the copy arrived), or a FITS file whose DATE-OBS says it is a new observation of
 * a later night, still goes where its own date leads, and the copy sent stays. A growing file
 * (`growing_patterns`, rsync and local) sends its parts where the complete file goes, whatever
 * moves it (beside a copy, past the night's rollover, a name taken, a kill and restart), and no
 * temporary copy of its parts is left anywhere at the destination. A file fixed in place to the
 * same size after an attempt cut off with its copy in place is sent, not taken for that copy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import {
  listArrived,
  listFiles,
  listFolders,
  randomBytes,
  sha256Of,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import {
  ASTROPY_FITS_DATA,
  card,
  fitsFile,
  headerBytes,
  imageCards,
  int16Data,
} from "../../helpers/fits.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { killTree } from "../../helpers/processes.ts";
import { nightFolder } from "../../../src/layout/destination.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";
import { DatabaseSync } from "node:sqlite";
import { LEDGER_FILE } from "../../../src/ledger/ledger.ts";

/** The night the file is taken (UTC night folders in every sandbox here). */
const NIGHT = new Date("2024-07-01T22:00:00Z"); // -> 20240701
/** The afternoon after, when its header is fixed. */
const NEXT_AFTERNOON = new Date("2024-07-02T15:00:00Z"); // -> 20240702

/** A config sending `watch` to `dest` (a folder on this machine), run with `env`. */
interface Setup {
  watch: string;
  dest: string;
  config: string;
  env?: Record<string, string>;
}

/** Write `bytes` into the file at `path` (the same file, when it is there) with mtime `at`. */
async function writeAt(path: string, bytes: Uint8Array, at: Date): Promise<void> {
  await Deno.writeFile(path, bytes); // Opened and truncated in place: the same file.
  await Deno.utime(path, at, at);
}

async function run(args: string[], { config, env }: Setup): Promise<string> {
  const result = await runCli([...args, "-c", config], { env });
  const output = result.stdout + result.stderr;
  assert.equal(result.code, 0, output);
  return output;
}

/**
 * The user's case with `setup`: send a file, change it in place with an mtime in the next night,
 * look at `run --dry-run`, send it, look at the destination and at `status`.
 */
async function editedFileGoesOverItsCopy(setup: Setup, size = 20_000): Promise<void> {
  const { watch, dest } = setup;
  const source = join(watch, "light_0001.fits");
  const first = randomBytes(size);
  await writeAt(source, first, NIGHT);
  await run(["run", "--once"], setup);
  assert.deepEqual(await listFiles(dest), ["20240701/light_0001.fits"]);
  const inode = (await Deno.stat(source)).ino;

  // The header fixed the next afternoon: the same size, other bytes, a later night's mtime.
  const fixed = randomBytes(size);
  await writeAt(source, fixed, NEXT_AFTERNOON);
  assert.equal((await Deno.stat(source)).ino, inode, "the source is changed in place");

  const dry = await run(["run", "--dry-run"], setup);
  assert.match(
    dry,
    /would transfer \S*light_0001\.fits -> \S*20240701\/light_0001\.fits \(over its own copy, sent before\)/,
  );
  assert.doesNotMatch(dry, /20240702/);
  assert.deepEqual(
    await listFiles(dest),
    ["20240701/light_0001.fits"],
    "the dry run sends nothing",
  );

  const log = await run(["run", "--once"], setup);
  assert.deepEqual(await listFiles(dest), ["20240701/light_0001.fits"], log);
  assert.equal(await sha256OfFile(join(dest, "20240701/light_0001.fits")), sha256Of(fixed), log);
  assert.match(
    log,
    /light_0001\.fits goes over its own copy 20240701\/light_0001\.fits, sent before .*not into night folder 20240702/,
  );
  const status = await run(["status"], setup);
  assert.match(status, /light_0001\.fits -> 20240701\/light_0001\.fits/);
  assert.doesNotMatch(status, /20240702/);
}

Deno.test("local: a file changed after it was sent, its mtime in a later night, goes over its own copy in its night folder", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  await editedFileGoesOverItsCopy(box);

  // A new file under the name (the old one deleted, a new one made) taken two nights later goes
  // to its own night folder: it never replaces the copy of another file.
  const source = join(box.watch, "light_0001.fits");
  const copy = join(box.dest, "20240701/light_0001.fits");
  const before = await sha256OfFile(copy);
  await Deno.remove(source);
  const next = randomBytes(30_000);
  await writeAt(source, next, new Date("2024-07-03T22:00:00Z"));
  await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(box.dest), [
    "20240701/light_0001.fits",
    "20240703/light_0001.fits",
  ]);
  assert.equal(await sha256OfFile(copy), before);
  assert.equal(await sha256OfFile(join(box.dest, "20240703/light_0001.fits")), sha256Of(next));
});

Deno.test("local: resend to a running daemon after the night rule changed sends a file over its own copy, not into the night the new rule gives it", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const source = join(box.watch, "flat.fits");
  const bytes = randomBytes(10_000);
  await writeAt(source, bytes, NIGHT);
  await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(box.dest), ["20240701/flat.fits"]);
  // 22:00 UTC is 07:00 the next morning in Tokyo: the rule now names 20240702. The running
  // daemon takes up what `resend` marks at its next rescan.
  await box.rewrite({
    stability_window_seconds: 0.2,
    log_file: "",
    night_timezone: "Asia/Tokyo",
    rescan_interval_seconds: 1,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching ");
    // The copy lost at the destination: `resend` sends it again, where the ledger records it.
    await Deno.remove(join(box.dest, "20240701/flat.fits"));
    await run(["resend", "--all"], box);
    await waitFor(async () => (await listArrived(box.dest)).length > 0, 60_000, "the copy");
  } finally {
    await daemon.stop();
  }
  const log = daemon.stderr();
  assert.deepEqual(await listFiles(box.dest), ["20240701/flat.fits"], log);
  assert.equal(await sha256OfFile(join(box.dest, "20240701/flat.fits")), sha256Of(bytes));
  assert.match(
    log,
    /flat\.fits goes over its own copy 20240701\/flat\.fits.*night folder 20240702/,
  );
});

/** A small FITS image whose header says `dateObs` and `object`. */
function fitsImage(dateObs: string, object: string): Uint8Array {
  const header = headerBytes([
    ...imageCards(16, 16),
    card("DATE-OBS", dateObs),
    card("OBJECT", object),
  ]);
  return fitsFile(header, int16Data(16, 16, (x, y) => x * y));
}

Deno.test("local: a FITS header fixed in place the next afternoon (its DATE-OBS kept) goes over its own copy; with night_date_source fits too", async () => {
  for (const source of ["mtime", "fits"]) {
    await using box = await cliSandbox({
      stability_window_seconds: 0.2,
      log_file: "",
      night_date_source: source,
    });
    const path = join(box.watch, "m42.fits");
    await writeAt(path, fitsImage("2024-07-01T21:55:00", "M 42"), NIGHT);
    await run(["run", "--once"], box);
    assert.deepEqual(await listFiles(box.dest), ["20240701/m42.fits"]);
    // OBJECT fixed the next afternoon, with a tool that writes the header in place.
    const fixed = fitsImage("2024-07-01T21:55:00", "M 42 (Orion)");
    await writeAt(path, fixed, NEXT_AFTERNOON);
    const log = await run(["run", "--once"], box);
    assert.deepEqual(await listFiles(box.dest), ["20240701/m42.fits"], log);
    assert.equal(await sha256OfFile(join(box.dest, "20240701/m42.fits")), sha256Of(fixed));
  }
});

/** Add `cards` HISTORY cards to the header of the FITS file at `path` with astropy, in place. */
async function astropyAddHistory(path: string, cards: number, mtime: Date): Promise<void> {
  const script = "import os, sys\n" +
    "from astropy.io import fits\n" +
    "with fits.open(sys.argv[1], mode='update') as f:\n" +
    "    for i in range(int(sys.argv[2])): f[0].header.add_history('fixed %d' % i)\n" +
    "os.utime(sys.argv[1], (float(sys.argv[3]), float(sys.argv[3])))\n";
  const out = await new Deno.Command("/usr/bin/python3", {
    args: ["-c", script, path, String(cards), String(mtime.getTime() / 1000)],
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

Deno.test("local: a FITS header fixed the next afternoon with astropy, which saves a header grown by a block as a new file renamed over the name, goes beside its copy in that copy's night folder; fixed in place again, over that one", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const path = join(box.watch, "m42.fits");
  const original = fitsImage("2024-07-01T21:55:00", "M 42");
  await writeAt(path, original, NIGHT);
  await run(["run", "--once"], box);
  const inode = (await Deno.stat(path)).ino;
  await astropyAddHistory(path, 40, NEXT_AFTERNOON);
  assert.notEqual((await Deno.stat(path)).ino, inode, "astropy wrote a new file");
  // A new file to the system: its DATE-OBS (the copy's night, begun before that copy was written)
  // keeps it with its copy, beside it (the header alone never has a copy written over).
  const dry = await run(["run", "--dry-run"], box);
  assert.match(dry, /would transfer \S*m42\.fits -> \S*20240701\/m42~2\.fits/);
  const log = await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(box.dest), ["20240701/m42.fits", "20240701/m42~2.fits"], log);
  assert.equal(await sha256OfFile(join(box.dest, "20240701/m42~2.fits")), await sha256OfFile(path));
  assert.equal(await sha256OfFile(join(box.dest, "20240701/m42.fits")), sha256Of(original));
  assert.match(
    log,
    /m42\.fits is a new file under a name sent before, and its DATE-OBS says it holds the observation of its copy 20240701\/m42\.fits .*it goes to 20240701\/m42~2\.fits, beside that copy, not into night folder 20240702/,
  );
  // A header fixed in place by astropy (room in its last block): the same file, over its copy.
  const grown = (await Deno.stat(path)).ino;
  await astropyAddHistory(path, 1, new Date("2024-07-03T15:00:00Z"));
  assert.equal((await Deno.stat(path)).ino, grown, "astropy wrote the header in place");
  await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(box.dest), ["20240701/m42.fits", "20240701/m42~2.fits"]);
  assert.equal(await sha256OfFile(join(box.dest, "20240701/m42~2.fits")), await sha256OfFile(path));
});

Deno.test("local, night_date_source fits: a file whose DATE-OBS now says it began after the version sent was written, in a later night (the next night's image written over it, or a DATE-OBS corrected so), is a new observation: it goes to its night, the copy sent stays", async () => {
  await using box = await cliSandbox({
    stability_window_seconds: 0.2,
    log_file: "",
    night_date_source: "fits",
  });
  const path = join(box.watch, "allsky.fits");
  const first = fitsImage("2024-07-01T21:55:00", "sky");
  await writeAt(path, first, NIGHT);
  await run(["run", "--once"], box);
  // The next night's image written into the same file (in place: the same file to the system).
  const next = fitsImage("2024-07-02T21:55:00", "sky");
  await writeAt(path, next, new Date("2024-07-02T22:00:00Z"));
  const dry = await run(["run", "--dry-run"], box);
  assert.match(
    dry,
    /would transfer \S*allsky\.fits -> \S*20240702\/allsky\.fits \(a new observation under a name sent before: its DATE-OBS\)/,
  );
  const log = await run(["run", "--once"], box);
  assert.deepEqual(
    await listFiles(box.dest),
    ["20240701/allsky.fits", "20240702/allsky.fits"],
    log,
  );
  assert.equal(await sha256OfFile(join(box.dest, "20240701/allsky.fits")), sha256Of(first));
  assert.equal(await sha256OfFile(join(box.dest, "20240702/allsky.fits")), sha256Of(next));
  assert.match(
    log,
    /WARN.*allsky\.fits changed after it was sent to 20240701\/allsky\.fits, and its DATE-OBS says it is a new observation.*it goes to 20240702\/allsky\.fits; the copy sent stays/,
  );
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`${method}: a file changed after it was sent, its mtime in a later night, goes over its own copy in its night folder`, async () => {
    const sshd = await startSshd();
    const box = await sshSandbox(sshd, method, { stability_window_seconds: 0.2 });
    try {
      await editedFileGoesOverItsCopy({ ...box, dest: box.remote });
    } finally {
      await sshd.stop();
      await Deno.remove(box.root, { recursive: true });
    }
  });
}

Deno.test("scp, verify_transfer size: a file fixed in place (same size) after an attempt cut off once its copy was in place, before its arrival was recorded, is sent, not taken for that copy", async () => {
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.2,
    verify_transfer: "size",
  });
  try {
    const source = join(box.watch, "light 'fixed'.fits");
    await Deno.copyFile(join(ASTROPY_FITS_DATA, "test0.fits"), source);
    await Deno.utime(source, NIGHT, NIGHT);
    const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(first.code, 0, first.stderr);
    // As a crash leaves it: the copy renamed into place, the attempt not recorded as ended.
    const db = new DatabaseSync(join(box.root, "state", LEDGER_FILE));
    try {
      db.prepare("UPDATE files SET state = 'transferring', transferred_at = NULL").run();
    } finally {
      db.close();
    }
    // Fixed in place while the daemon was down: the last pixels, the same size.
    const bytes = await Deno.readFile(source);
    bytes.set([1, 2, 3, 4], bytes.length - 4);
    await Deno.writeFile(source, bytes);
    const later = new Date(NIGHT.getTime() + 60_000);
    await Deno.utime(source, later, later);

    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 0, second.stderr);
    const arrived = await listArrived(box.remote);
    const fixed = sha256Of(bytes);
    const held = await Promise.all(arrived.map((rel) => sha256OfFile(join(box.remote, rel))));
    assert.ok(held.includes(fixed), `the fixed file is at the destination: ${arrived}`);
  } finally {
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("ftp: a file changed after it was sent, its mtime in a later night, goes over its own copy in its night folder", async () => {
  await withVsftpdAndRoot({}, "itx-ftp-edited-", async ({ server, root }) => {
    const box = await ftpDaemonSandbox(server, root, { verify_transfer: "size" });
    await editedFileGoesOverItsCopy(box);
  });
});

for (const cleanup of ["delete", "move"] as const) {
  Deno.test(`local, after_transfer ${cleanup} with keep_days: a file changed before its clean-up, its mtime in a later night, goes beside its copy in that copy's night folder, never over it`, async () => {
    await using box = await cliSandbox({
      stability_window_seconds: 0.2,
      log_file: "",
      after_transfer: cleanup,
      keep_days: 2,
    });
    if (cleanup === "move") {
      await box.rewrite({
        stability_window_seconds: 0.2,
        log_file: "",
        after_transfer: cleanup,
        keep_days: 2,
        archive_path: join(box.root, "archive"),
      });
    }
    const source = join(box.watch, "light_0001.fits");
    const first = randomBytes(20_000);
    await writeAt(source, first, NIGHT);
    await run(["run", "--once"], box);
    const fixed = randomBytes(20_000);
    await writeAt(source, fixed, NEXT_AFTERNOON);
    const dry = await run(["run", "--dry-run"], box);
    assert.match(dry, /would transfer \S*light_0001\.fits -> \S*20240701\/light_0001~2\.fits/);
    const log = await run(["run", "--once"], box);
    assert.deepEqual(await listFiles(box.dest), [
      "20240701/light_0001.fits",
      "20240701/light_0001~2.fits",
    ], log);
    assert.match(
      log,
      /light_0001\.fits changed after it was sent to 20240701\/light_0001\.fits .*it goes to 20240701\/light_0001~2\.fits, beside that copy, not into night folder 20240702/,
    );
    assert.equal(await sha256OfFile(join(box.dest, "20240701/light_0001.fits")), sha256Of(first));
    assert.equal(
      await sha256OfFile(join(box.dest, "20240701/light_0001~2.fits")),
      sha256Of(fixed),
    );
    const status = await run(["status"], box);
    assert.match(status, /light_0001\.fits -> 20240701\/light_0001~2\.fits/);
  });
}

Deno.test("local, growing_patterns: a file sent before that grows again sends its parts into its own copy's night folder, where it arrives; nothing goes into the night its new mtime names", async () => {
  await using box = await cliSandbox({
    // Far longer than the pauses between appends (250 ms), which a busy machine may stretch.
    stability_window_seconds: 3,
    log_file: "",
    growing_patterns: ["*.log"],
    file_patterns: ["*.log"],
  });
  const source = join(box.watch, "spectrum.log");
  await writeAt(source, randomBytes(100_000), NIGHT);
  await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(box.dest), ["20240701/spectrum.log"]);
  // It grows again today (its mtime now names today's night), while the daemon watches.
  const daemon = startCli(["run", "-v", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching ");
    for (let i = 0; i < 12; i++) {
      await Deno.writeFile(source, randomBytes(200_000), { append: true });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await daemon.waitForOutput(/Successfully transferred .*spectrum\.log/);
  } finally {
    await daemon.stop();
  }
  const log = daemon.stderr() + daemon.stdout();
  assert.match(log, /Sent a part of/, "parts were sent while it grew");
  assert.deepEqual(await listFiles(box.dest), ["20240701/spectrum.log"], log);
  assert.deepEqual(await listFolders(box.dest), ["20240701"]);
  assert.equal(
    await sha256OfFile(join(box.dest, "20240701/spectrum.log")),
    await sha256OfFile(source),
  );
});

Deno.test("local: a changed file goes over its own copy only at the destination that copy is at; a job sent to a new base folder places it by the night rule there", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 0.2, log_file: "" });
  const source = join(box.watch, "light_0001.fits");
  const first = randomBytes(20_000);
  await writeAt(source, first, NIGHT);
  await run(["run", "--once"], box);
  // Another destination: nothing was sent there yet, so the file goes where its date leads.
  const other = join(box.root, "other");
  await box.rewrite({ stability_window_seconds: 0.2, log_file: "", remote_base_path: other });
  const fixed = randomBytes(20_000);
  await writeAt(source, fixed, NEXT_AFTERNOON);
  const log = await run(["run", "--once"], box);
  assert.deepEqual(await listFiles(other), ["20240702/light_0001.fits"], log);
  assert.equal(await sha256OfFile(join(other, "20240702/light_0001.fits")), sha256Of(fixed));
  assert.deepEqual(await listFiles(box.dest), ["20240701/light_0001.fits"]);
  assert.equal(await sha256OfFile(join(box.dest, "20240701/light_0001.fits")), sha256Of(first));
  assert.doesNotMatch(log, /its own copy/);
});

/** A running-daemon set-up for `method` (local, or rsync to a private sshd), removed after `use`. */
async function withGrowingJob(
  method: "local" | "rsync",
  values: Record<string, unknown>,
  use: (setup: Setup) => Promise<void>,
): Promise<void> {
  const growing = {
    // Far longer than the pauses between appends (250 ms), which a busy machine may stretch.
    stability_window_seconds: 4,
    growing_patterns: ["*.log"],
    file_patterns: ["*.log"],
    ...values,
  };
  if (method === "local") {
    await using box = await cliSandbox({ log_file: "", ...growing });
    return await use(box);
  }
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, method, growing);
  try {
    await use({ ...box, dest: box.remote });
  } finally {
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
  }
}

/** Append `times` × 200 KB to `path`, 250 ms apart, each time dated `mtime` (if given). */
async function grow(path: string, times: number, mtime?: Date): Promise<void> {
  for (let i = 0; i < times; i++) {
    await Deno.writeFile(path, randomBytes(200_000), { append: true });
    if (mtime) await Deno.utime(path, mtime, mtime);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Wait until the files at `dest` (hidden ones and those in upload folders too) are `expected`
 * and no hidden folder is left; the daemon's output on failure.
 */
async function waitForOnly(dest: string, expected: string[], output: () => string) {
  const now = async () => [await listFiles(dest), await listFolders(dest)] as const;
  try {
    await waitFor(async () => {
      const [files, folders] = await now();
      return JSON.stringify(files) === JSON.stringify(expected) &&
        folders.every((folder) => !folder.split("/").some((part) => part.startsWith(".")));
    }, 30_000);
  } catch {
    const [files, folders] = await now();
    assert.fail(
      `at the destination: ${files.join(", ")}; folders: ${folders.join(", ")}\n${output()}`,
    );
  }
}

for (const method of ["local", "rsync"] as const) {
  Deno.test(`${method}, growing_patterns: a new file under a name sent before that grows goes beside the earlier copy (~2), its parts there too; no temporary copy is left at the destination`, async () => {
    await withGrowingJob(method, {}, async (setup) => {
      const source = join(setup.watch, "spectrum.log");
      const first = randomBytes(100_000);
      await Deno.writeFile(source, first);
      await run(["run", "--once"], setup);
      const [sent] = await listFiles(setup.dest);
      const night = sent.slice(0, sent.indexOf("/"));
      assert.equal(sent, `${night}/spectrum.log`);
      // A new file under the name (the old one deleted) grows while the daemon watches.
      await Deno.remove(source);
      const daemon = startCli(["run", "-v", "-c", setup.config], { env: setup.env });
      const output = () => daemon.stderr() + daemon.stdout();
      try {
        await daemon.waitForOutput("Watching ");
        await Deno.writeFile(source, randomBytes(200_000));
        await grow(source, 12);
        await daemon.waitForOutput(/Successfully transferred .*spectrum\.log/);
        assert.match(output(), /Sent a part of/, "parts were sent while it grew");
        await waitForOnly(
          setup.dest,
          [`${night}/spectrum.log`, `${night}/spectrum~2.log`],
          output,
        );
      } finally {
        await daemon.stop();
      }
      assert.equal(await sha256OfFile(join(setup.dest, sent)), sha256Of(first));
      assert.equal(
        await sha256OfFile(join(setup.dest, `${night}/spectrum~2.log`)),
        await sha256OfFile(source),
      );
    });
  });

  Deno.test(`${method}, growing_patterns: a file that grows past the night's rollover arrives in the night its parts went to; no temporary copy is left at the destination`, async () => {
    // The next hour is the rollover: the file begins now, and is written on dated past it.
    const begun = new Date();
    const rollover = (begun.getUTCHours() + 1) % 24;
    const after = new Date(Math.ceil(begun.getTime() / 3_600_000) * 3_600_000 + 600_000);
    const night = nightFolder(begun, rollover, "UTC");
    assert.notEqual(nightFolder(after, rollover, "UTC"), night);
    await withGrowingJob(method, { night_rollover_hour: rollover }, async (setup) => {
      const source = join(setup.watch, "spectrum.log");
      const daemon = startCli(["run", "-v", "-c", setup.config], { env: setup.env });
      const output = () => daemon.stderr() + daemon.stdout();
      try {
        await daemon.waitForOutput("Watching ");
        await Deno.writeFile(source, randomBytes(200_000));
        await Deno.utime(source, begun, begun);
        await grow(source, 4, begun);
        await daemon.waitForOutput(/Sent a part of .*spectrum\.log/);
        await grow(source, 8, after);
        await daemon.waitForOutput(/Successfully transferred .*spectrum\.log/);
        await waitForOnly(setup.dest, [`${night}/spectrum.log`], output);
      } finally {
        await daemon.stop();
      }
      assert.equal(
        await sha256OfFile(join(setup.dest, `${night}/spectrum.log`)),
        await sha256OfFile(source),
      );
    });
  });

  Deno.test(`${method}, growing_patterns: a growing file deleted before it is complete leaves no temporary copy at the destination`, async () => {
    await withGrowingJob(method, {}, async (setup) => {
      const source = join(setup.watch, "spectrum.log");
      const daemon = startCli(["run", "-v", "-c", setup.config], { env: setup.env });
      const output = () => daemon.stderr() + daemon.stdout();
      try {
        await daemon.waitForOutput("Watching ");
        await Deno.writeFile(source, randomBytes(200_000));
        await grow(source, 4);
        await daemon.waitForOutput(/Sent a part of .*spectrum\.log/);
        await Deno.remove(source);
        await daemon.waitForOutput(/Dropped .*spectrum\.log/);
        await waitForOnly(setup.dest, [], output);
      } finally {
        await daemon.stop();
      }
    });
  });
}

/** Wait until a part of a growing file is at `dest` (a temporary copy). */
function waitForPart(dest: string): Promise<void> {
  return waitFor(async () => (await listFiles(dest).catch(() => [])).length > 0, 30_000, "a part");
}

/** Start a daemon for `setup`; `use` it, then stop it (a SIGKILL of it and all it started, if `crash`). */
async function withDaemon(
  setup: Setup,
  use: (output: () => string) => Promise<void>,
  crash = false,
): Promise<void> {
  const daemon = startCli(["run", "-v", "-c", setup.config], { env: setup.env });
  const output = () => daemon.stderr() + daemon.stdout();
  try {
    await daemon.waitForOutput("Watching ");
    await use(output);
  } finally {
    if (crash) await killTree(daemon.process.pid);
    await daemon.stop();
  }
}

for (const method of ["local", "rsync"] as const) {
  Deno.test(`${method}, growing_patterns: a file growing when the daemon is killed, written on past the night's rollover meanwhile, is sent into its night at the next start, and the copy its parts made in the other night is removed`, async () => {
    const begun = new Date();
    const rollover = (begun.getUTCHours() + 1) % 24;
    const after = new Date(Math.ceil(begun.getTime() / 3_600_000) * 3_600_000 + 600_000);
    const night = nightFolder(after, rollover, "UTC");
    await withGrowingJob(method, { night_rollover_hour: rollover }, async (setup) => {
      const source = join(setup.watch, "spectrum.log");
      await withDaemon(setup, async () => {
        await Deno.writeFile(source, randomBytes(200_000));
        await grow(source, 4, begun);
        await waitForPart(setup.dest);
      }, true);
      await grow(source, 4, after);
      await withDaemon(setup, async (output) => {
        await waitForOnly(setup.dest, [`${night}/spectrum.log`], output);
      });
      assert.equal(
        await sha256OfFile(join(setup.dest, `${night}/spectrum.log`)),
        await sha256OfFile(source),
      );
    });
  });

  Deno.test(`${method}, growing_patterns: a file growing when the daemon is killed and deleted meanwhile: the next start removes the copy its parts made`, async () => {
    await withGrowingJob(method, {}, async (setup) => {
      const source = join(setup.watch, "spectrum.log");
      await withDaemon(setup, async () => {
        await Deno.writeFile(source, randomBytes(200_000));
        await grow(source, 4);
        await waitForPart(setup.dest);
      }, true);
      await Deno.remove(source);
      await withDaemon(setup, (output) => waitForOnly(setup.dest, [], output));
    });
  });
}

// rsync's finishing call removes the copy it continued where it finds another file's name taken.
Deno.test("local, growing_patterns: a growing file whose name at the destination another file took meanwhile goes beside it (~2); no temporary copy is left at the destination", async () => {
  await withGrowingJob("local", {}, async (setup) => {
    const source = join(setup.watch, "spectrum.log");
    const other = randomBytes(1000);
    await withDaemon(setup, async (output) => {
      await Deno.writeFile(source, randomBytes(200_000));
      await grow(source, 4);
      await waitForPart(setup.dest);
      // Someone else puts a file under its name there while it grows.
      const [part] = await listFiles(setup.dest);
      const night = part.slice(0, part.indexOf("/"));
      await Deno.writeFile(join(setup.dest, night, "spectrum.log"), other);
      await grow(source, 4);
      await waitFor(() => /Successfully transferred .*spectrum\.log/.test(output()), 60_000);
      await waitForOnly(
        setup.dest,
        [`${night}/spectrum.log`, `${night}/spectrum~2.log`],
        output,
      );
      assert.equal(
        await sha256OfFile(join(setup.dest, night, "spectrum.log")),
        sha256Of(other),
      );
      assert.equal(
        await sha256OfFile(join(setup.dest, night, "spectrum~2.log")),
        await sha256OfFile(source),
      );
    });
  });
});

for (const method of ["local", "rsync"] as const) {
  Deno.test(`${method}, growing_patterns, night_date_source fits: the next night's image written into a file sent before, growing, is a new observation: its parts and the complete file go to its night; no temporary copy is left at the destination`, async () => {
    const now = Date.now();
    const taken = new Date(now - 26 * 3_600_000);
    const next = new Date(now - 60_000);
    const [oldNight, newNight] = [taken, next].map((at) => nightFolder(at, 0, "UTC"));
    const growing = {
      night_date_source: "fits",
      growing_patterns: ["*.fits"],
      file_patterns: ["*.fits"],
    };
    await withGrowingJob(method, growing, async (setup) => {
      const path = join(setup.watch, "allsky.fits");
      const first = fitsImage(taken.toISOString().slice(0, 19), "sky");
      await writeAt(path, first, taken);
      await run(["run", "--once"], setup);
      assert.deepEqual(await listFiles(setup.dest), [`${oldNight}/allsky.fits`]);
      const header = headerBytes([
        ...imageCards(1024, 1024),
        card("DATE-OBS", next.toISOString().slice(0, 19)),
      ]);
      const image = fitsFile(header, int16Data(1024, 1024, (x, y) => x ^ y));
      await withDaemon(setup, async (output) => {
        // Written into the same file (in place), its header first, its data as it comes.
        const piece = 200_000;
        let at = header.length + piece;
        await Deno.writeFile(path, image.subarray(0, at));
        const append = async (until: number) => {
          for (; at < until; at += piece) {
            await Deno.writeFile(path, image.subarray(at, Math.min(until, at + piece)), {
              append: true,
            });
            await new Promise((resolve) => setTimeout(resolve, 250));
          }
        };
        await append(at + 3 * piece);
        await waitForSaid(output, /Sent a part of .*allsky\.fits/);
        await append(image.length);
        await waitForSaid(output, /Successfully transferred .*allsky\.fits/);
        await waitForOnly(
          setup.dest,
          [`${oldNight}/allsky.fits`, `${newNight}/allsky.fits`],
          output,
        );
      });
      assert.equal(
        await sha256OfFile(join(setup.dest, oldNight, "allsky.fits")),
        sha256Of(first),
      );
      assert.equal(
        await sha256OfFile(join(setup.dest, newNight, "allsky.fits")),
        sha256Of(image),
      );
    });
  });
}

/** Wait until the daemon's `output` says `what`. */
function waitForSaid(output: () => string, what: RegExp): Promise<void> {
  return waitFor(() => what.test(output()), 60_000, String(what));
}
