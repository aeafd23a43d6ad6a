/**
 * A file at the destination that the job did not send there is never replaced, with every
 * method, through the real CLI (`run --once`) and real servers (OpenSSH with scp and rsync,
 * vsftpd): one with other bytes under a file's final name stays byte for byte and the file
 * arrives beside it (`~2`); one with the file's bytes is left as it is and the file counts as
 * arrived; a file the job sent, changed in place, still replaces its own copy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { isTempName } from "../../../src/layout/destination.ts";
import { mountHoldingView, unmountBindfs } from "../../helpers/bindfs.ts";
import { cliSandbox, countingHook } from "../../helpers/sandbox.ts";
import { listFiles, randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

/** A daemon's config sending `watch` to `dest` (on this machine), as the account `owner`. */
interface Setup {
  watch: string;
  dest: string;
  config: string;
  env?: Record<string, string>;
  owner: { uid: number; gid: number } | null;
}

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> 20240701

/**
 * The keys every method's config gets here, verified as `verify` says (a file someone else wrote
 * is judged by its bytes whatever it says: the one here has the size of the file sent).
 */
const keys = (verify: "size" | "checksum") => ({
  verify_transfer: verify,
  log_file: "",
  stability_window_seconds: 0.2,
});

/** The SHA-256 (hex) of `bytes`: files are compared by it (a diff of megabytes helps no one). */
/** What the destination holds after each run: the foreign files, ours, and ours beside theirs. */
const AT_DESTINATION = [
  "20240701/flat.fits",
  "20240701/light_0001.fits",
  "20240701/light_0001~2.fits",
  "20240701/own.fits",
];

async function writeSource(watch: string, name: string, bytes: Uint8Array): Promise<void> {
  await Deno.writeFile(join(watch, name), bytes);
  await Deno.utime(join(watch, name), NIGHT, NIGHT);
}

/**
 * Run the scenario of the module doc with `setup`, with files of about `size` bytes (over SSH,
 * small files go in one call, large ones by the upload program and the finishing call).
 */
async function foreignFilesStay(
  { watch, dest, config, env, owner }: Setup,
  size = 20_000,
): Promise<void> {
  const night = join(dest, "20240701");
  await Deno.mkdir(night, { recursive: true });
  if (owner) await Deno.chown(night, owner.uid, owner.gid);
  const ours = randomBytes(size);
  const theirs = randomBytes(size); // The same size: only the bytes tell them apart.
  const same = randomBytes(size + 10_000);
  const own = randomBytes(size + 5_000);
  await writeSource(watch, "light_0001.fits", ours);
  await writeSource(watch, "flat.fits", same);
  await writeSource(watch, "own.fits", own);
  // Another instrument's files, under the same names.
  await Deno.writeFile(join(night, "light_0001.fits"), theirs);
  await Deno.writeFile(join(night, "flat.fits"), same);
  const flatBefore = await Deno.stat(join(night, "flat.fits"));

  const first = await runCli(["run", "--once", "-c", config], { env });
  const log = first.stdout + first.stderr;
  assert.equal(first.code, 0, log);
  assert.equal(await sha256OfFile(join(night, "light_0001.fits")), sha256Of(theirs), log);
  assert.equal(await sha256OfFile(join(night, "light_0001~2.fits")), sha256Of(ours), log);
  assert.match(
    log,
    /WARN.*light_0001\.fits would go to \S*20240701\/light_0001\.fits, which holds another file that this job did not send there.*it goes to \S*20240701\/light_0001~2\.fits/,
  );
  // The same bytes: nothing written over them, counted as arrived.
  const flatAfter = await Deno.stat(join(night, "flat.fits"));
  assert.equal(flatAfter.ino, flatBefore.ino, "the file with the same bytes is not written over");
  assert.equal(await sha256OfFile(join(night, "flat.fits")), sha256Of(same));
  assert.match(
    log,
    /1 file\(s\) are at \S* already with their bytes, put there by another than this job .*counted as arrived, not as sent; no on_transfer hook runs for them \(the first: \S*flat\.fits;/,
  );
  assert.equal(await sha256OfFile(join(night, "own.fits")), sha256Of(own));
  assert.deepEqual((await listFiles(dest)).sort(), AT_DESTINATION);

  // Files the job sent, changed in place, replace their own copies.
  const changed = randomBytes(size + 6_000);
  await writeSource(watch, "own.fits", changed);
  const moved = randomBytes(size + 1_000);
  await writeSource(watch, "light_0001.fits", moved);
  const second = await runCli(["run", "--once", "-c", config], { env });
  const log2 = second.stdout + second.stderr;
  assert.equal(second.code, 0, log2);
  assert.equal(await sha256OfFile(join(night, "own.fits")), sha256Of(changed), log2);
  assert.equal(await sha256OfFile(join(night, "light_0001~2.fits")), sha256Of(moved), log2);
  assert.equal(await sha256OfFile(join(night, "light_0001.fits")), sha256Of(theirs));
  assert.equal(await sha256OfFile(join(night, "flat.fits")), sha256Of(same));
  assert.deepEqual((await listFiles(dest)).sort(), AT_DESTINATION);
}

for (const verify of ["checksum", "size"] as const) {
  Deno.test(`local, verify_transfer ${verify}: a file the job did not send is never replaced; one with its bytes counts as arrived`, async () => {
    await using box = await cliSandbox(keys(verify));
    await foreignFilesStay({ ...box, owner: null });
  });
}

for (const method of ["scp", "rsync"] as const) {
  const cases = [["small", 20_000, "checksum"], ["large", 9 * 1024 * 1024, "size"]] as const;
  for (const [files, size, verify] of cases) {
    Deno.test(`${method}, ${files} files, verify_transfer ${verify}: a file the job did not send is never replaced; one with its bytes counts as arrived`, async () => {
      const sshd = await startSshd();
      const box = await sshSandbox(sshd, method, keys(verify));
      try {
        await foreignFilesStay({ ...box, dest: box.remote, owner: sshd }, size);
      } finally {
        await sshd.stop();
        await Deno.remove(box.root, { recursive: true });
      }
    });
  }
}

Deno.test("ftp, verify_transfer size: a file the job did not send is never replaced; one with its bytes counts as arrived", async () => {
  await withVsftpdAndRoot({}, "itx-ftp-foreign-", async ({ server, root }) => {
    const box = await ftpDaemonSandbox(server, root, keys("size"));
    await foreignFilesStay({ ...box, owner: server });
  });
});

for (const method of ["local", "ftp"] as const) {
  Deno.test(`${method}: a folder under a file's final name is never replaced: the file arrives beside it`, async () => {
    await withVsftpdAndRoot({}, "itx-ftp-foreign-", async ({ server, root }) => {
      const box = method === "ftp"
        ? await ftpDaemonSandbox(server, root, keys("checksum"))
        : await cliSandbox(keys("checksum"));
      const taken = join(box.dest, "20240701", "light_0001.fits");
      await Deno.mkdir(taken, { recursive: true });
      if (method === "ftp") {
        await Deno.chown(join(box.dest, "20240701"), server.uid, server.gid);
        await Deno.chown(taken, server.uid, server.gid);
      }
      const ours = randomBytes(20_000);
      await writeSource(box.watch, "light_0001.fits", ours);
      const env = "env" in box ? box.env : undefined;
      const run = await runCli(["run", "--once", "-c", box.config], { env });
      const log = run.stdout + run.stderr;
      assert.equal(run.code, 0, log);
      assert.equal(
        await sha256OfFile(join(box.dest, "20240701", "light_0001~2.fits")),
        sha256Of(ours),
      );
      assert.ok((await Deno.stat(taken)).isDirectory, log);
      assert.deepEqual(await listFiles(box.dest), ["20240701/light_0001~2.fits"], log);
      assert.match(
        log,
        /light_0001\.fits, which holds another file that this job did not send there/,
      );
    });
  });
}

Deno.test("local: two daemons sending files of the same names to one destination at once: neither replaces the other's, the later one's goes beside", async () => {
  // Two acquisition PCs (state_dir and watch folder of their own), one destination folder: the
  // first writes it through a view whose writes wait while `hold` exists (`holding_fs.py`), so
  // the second sends its file while the first's copy is held, looked at and seen free.
  await using first = await cliSandbox(keys("checksum"));
  await using second = await cliSandbox(keys("checksum"));
  const [disk, view, hold] = ["dest", "view", "hold"].map((name) => join(first.root, name));
  const night = join(disk, "20240701");
  await Deno.mkdir(night, { recursive: true });
  await first.rewrite({ ...keys("checksum"), remote_base_path: view });
  await second.rewrite({ ...keys("checksum"), remote_base_path: disk });
  const fromFirst = randomBytes(4 << 20);
  const fromSecond = randomBytes(4 << 20); // The same size: only the bytes tell them apart.
  await writeSource(first.watch, "s1.fits", fromFirst);
  await writeSource(second.watch, "s1.fits", fromSecond);
  await Deno.writeFile(hold, new Uint8Array());
  const server = await mountHoldingView(disk, view, hold);
  try {
    const firstRun = startCli(["run", "--once", "-c", first.config], { env: first.env });
    try {
      // Looked into behind the view: the view answers nothing while a write waits.
      await waitFor(async () => (await listFiles(night)).some((name) => isTempName(name)));
      const secondRun = await runCli(["run", "--once", "-c", second.config], { env: second.env });
      assert.equal(secondRun.code, 0, secondRun.stdout + secondRun.stderr);
      assert.equal(await sha256OfFile(join(night, "s1.fits")), sha256Of(fromSecond));
      await Deno.remove(hold);
      const status = await firstRun.process.status;
      await firstRun.stop();
      const log = firstRun.stdout() + firstRun.stderr();
      assert.equal(status.code, 0, log);
      assert.equal(await sha256OfFile(join(night, "s1.fits")), sha256Of(fromSecond), log);
      assert.equal(await sha256OfFile(join(night, "s1~2.fits")), sha256Of(fromFirst), log);
      assert.deepEqual(await listFiles(disk), ["20240701/s1.fits", "20240701/s1~2.fits"], log);
      assert.match(
        log,
        /WARN.*s1\.fits, which holds another file that this job did not send there.*it goes to \S*s1~2\.fits/,
      );
    } finally {
      await Deno.remove(hold).catch(() => {});
      await firstRun.stop();
    }
  } finally {
    await unmountBindfs(view);
    await server.status;
    await Deno.remove(`${disk}.attic`, { recursive: true }).catch(() => {});
  }
});

Deno.test("a new file under a name sent before goes beside its earlier copy, never over another's file at the numbered name", async () => {
  // Another acquisition machine's daemon put its own light_0001 beside this job's, at ~2.
  await using box = await cliSandbox({ ...keys("checksum"), after_transfer: "delete" });
  const night = join(box.dest, "20240701");
  const first = randomBytes(20_000);
  await writeSource(box.watch, "light_0001.fits", first);
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  await Deno.stat(join(box.watch, "light_0001.fits")).then(
    () => assert.fail(`the source was not deleted once sent:\n${sent.stderr}`),
    () => {},
  );
  const theirs = randomBytes(20_001);
  await Deno.writeFile(join(night, "light_0001~2.fits"), theirs);
  // The camera's counter started again: a new file under the name sent (of the size of theirs).
  const next = randomBytes(20_001);
  await writeSource(box.watch, "light_0001.fits", next);
  const again = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  const log = again.stdout + again.stderr;
  assert.equal(again.code, 0, log);
  assert.equal(await sha256OfFile(join(night, "light_0001.fits")), sha256Of(first), log);
  assert.equal(await sha256OfFile(join(night, "light_0001~2.fits")), sha256Of(theirs), log);
  assert.equal(await sha256OfFile(join(night, "light_0001~3.fits")), sha256Of(next), log);
  assert.match(log, /WARN.*light_0001~2\.fits, which holds another file.*light_0001~3\.fits/);
});

Deno.test("local: a new state_dir over a destination that holds the files sends none of them, counts none as sent and runs no on_transfer hook for them", async () => {
  await using box = await cliSandbox(keys("checksum"));
  const { hook, runs } = await countingHook(box.root);
  await box.rewrite({ ...keys("checksum"), on_transfer: [hook] });
  const bytes = randomBytes(20_000);
  await writeSource(box.watch, "a.fits", bytes);
  await writeSource(box.watch, "b.fits", randomBytes(30_000));
  const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(await runs(), ["a.fits", "b.fits"]);
  const before = await Deno.stat(join(box.dest, "20240701", "a.fits"));

  // A new state folder: its ledger knows nothing of the copies there.
  const state_dir = join(box.root, "state-new");
  await box.rewrite({ ...keys("checksum"), on_transfer: [hook], state_dir });
  const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  const log = second.stdout + second.stderr;
  assert.equal(second.code, 0, log);
  assert.deepEqual(await runs(), ["a.fits", "b.fits"], "no hook ran for the files already there");
  assert.match(log, /file\(s\) are at \S+ already with their bytes, put there by another/);
  assert.match(log, /0 file\(s\) sent/);
  assert.doesNotMatch(log, /Successfully transferred/);
  const after = await Deno.stat(join(box.dest, "20240701", "a.fits"));
  assert.equal(after.ino, before.ino, "not written over");
  assert.deepEqual(await Deno.readFile(join(box.dest, "20240701", "a.fits")), bytes);
  assert.deepEqual(await listFiles(box.dest), ["20240701/a.fits", "20240701/b.fits"]);
});
