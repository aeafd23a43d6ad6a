/**
 * `run --dry-run` names the place `run` takes for each file, also where the destination holds a
 * file under the planned name that this job did not send there (it is never replaced): a file
 * with the source's bytes is recorded as sent, for another the file goes beside it (`c~2.fits`,
 * or the next name free), as the run then does. Through the CLI, for a local copy, scp and FTPS;
 * the folder the dry run is typed in is left as it was (an SSH job's socket goes elsewhere). A dry
 * run stopped by Ctrl-C while it asks an SSH destination leaves no shared connection behind; one
 * that cannot ask it (its server down) lists the files where they are planned, and exits 1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { exists, randomBytes, waitFor } from "../../helpers/files.ts";
import { standInPrograms } from "../../helpers/recording_tools.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { sshSandbox, startSshd, withStoppedWhileAsking } from "../../helpers/sshd.ts";
import { ftpDaemonSandbox, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

/** An evening of night 20240315 (UTC). */
const EVENING = new Date("2024-03-15T22:00:00Z");

/** Where a destination is and how the CLI reaches the job sending to it. */
interface Place {
  config: string;
  watch: string;
  /** The destination's base folder, on this machine. */
  base: string;
  env: Record<string, string>;
  /** The account that writes there (the login user over SSH), if not this one. */
  owner?: { uid: number; gid: number };
}

/**
 * In the night folder of `place`, files another than this job put there; in its watch folder,
 * sources under those names. The dry run names where each goes, and the run takes those places.
 */
async function assertDryRunNamesThePlaces(place: Place): Promise<void> {
  const night = join(place.base, "20240315");
  await Deno.mkdir(night, { recursive: true });
  if (place.owner) await Deno.chown(night, place.owner.uid, place.owner.gid);
  const theirs = new Map<string, Uint8Array>();
  const put = async (name: string, bytes: Uint8Array) => {
    theirs.set(name, bytes);
    await Deno.writeFile(join(night, name), bytes, { mode: 0o644 });
  };
  const ours = new Map<string, Uint8Array>();
  const source = async (name: string, bytes: Uint8Array) => {
    ours.set(name, bytes);
    await Deno.writeFile(join(place.watch, name), bytes);
    await Deno.utime(join(place.watch, name), EVENING, EVENING);
  };
  // c.fits and c~2.fits are taken: c.fits goes to c~3.fits.
  await put("c.fits", randomBytes(3000));
  await put("c~2.fits", randomBytes(3001));
  await source("c.fits", randomBytes(3002));
  // f.fits holds a file of the source's size, not its bytes: beside it.
  await put("f.fits", randomBytes(4000));
  await source("f.fits", randomBytes(4000));
  // e.fits holds the source's bytes: recorded as sent, left as it is.
  const same = randomBytes(5000);
  await put("e.fits", same);
  await source("e.fits", same);
  // g.fits is taken, and g~2.fits is another source's name: g.fits goes to g~3.fits.
  await put("g.fits", randomBytes(6000));
  await source("g.fits", randomBytes(6001));
  await source("g~2.fits", randomBytes(6002));
  // Nothing under h.fits: it goes there.
  await source("h.fits", randomBytes(7000));

  // Typed in a folder of the user's: left as it was (no socket, its mode kept).
  const here = await Deno.makeTempDir({ prefix: "itx-dry-run-typed-in-" });
  await Deno.chmod(here, 0o755);
  let dry;
  try {
    dry = await runCli(["run", "--dry-run", "-c", place.config], { env: place.env, cwd: here });
    assert.equal(((await Deno.stat(here)).mode ?? 0) & 0o777, 0o755, "the folder's mode");
    assert.deepEqual(await Array.fromAsync(Deno.readDir(here)), [], "nothing left in the folder");
  } finally {
    await Deno.remove(here, { recursive: true });
  }
  assert.equal(dry.code, 0, dry.stderr);
  const goes = (name: string) =>
    new RegExp(`^would transfer ${join(place.watch, name)} -> \\S*/20240315/([^ \\n]+)( |$)`, "m")
      .exec(dry.stdout)?.[1];
  const expected: Record<string, string> = {
    "c.fits": "c~3.fits",
    "f.fits": "f~2.fits",
    "g.fits": "g~3.fits",
    "g~2.fits": "g~2.fits",
    "h.fits": "h.fits",
  };
  for (const [name, there] of Object.entries(expected)) {
    assert.equal(goes(name), there, `${name}:\n${dry.stdout}`);
  }
  assert.match(
    dry.stdout,
    new RegExp(
      `^would transfer ${join(place.watch, "c.fits")} -> \\S*/20240315/c~3\\.fits \\(beside ` +
        "\\S*/20240315/c\\.fits, which holds another file that this job did not send there: it " +
        "is never replaced\\)$",
      "m",
    ),
  );
  assert.match(
    dry.stdout,
    new RegExp(
      `^would record ${join(place.watch, "e.fits")} as sent: \\S*/20240315/e\\.fits is there ` +
        "already with its bytes$",
      "m",
    ),
  );
  assert.match(
    dry.stdout,
    /^job default: 5 file\(s\) would be transferred \(\w+\), 0 skipped, 1 recorded as sent/m,
  );
  // Nothing was sent or written.
  assert.deepEqual((await Array.fromAsync(Deno.readDir(night))).length, theirs.size);

  const run = await runCli(["run", "--once", "-c", place.config], { env: place.env });
  assert.equal(run.code, 0, run.stderr);
  for (const [name, bytes] of theirs) {
    assert.deepEqual(await Deno.readFile(join(night, name)), bytes, `${name} was replaced`);
  }
  for (const [name, there] of Object.entries(expected)) {
    assert.deepEqual(await Deno.readFile(join(night, there)), ours.get(name), name);
  }
  const names = (await Array.fromAsync(Deno.readDir(night), (entry) => entry.name)).sort();
  assert.deepEqual(names, [...new Set([...theirs.keys(), ...Object.values(expected)])].sort());
}

Deno.test("run --dry-run names the place run takes beside files at the destination this job did not send (local)", async () => {
  await using box = await cliSandbox({ file_patterns: ["*.fits"] });
  await assertDryRunNamesThePlaces({
    config: box.config,
    watch: box.watch,
    base: box.dest,
    env: box.env,
  });
});

Deno.test("run --dry-run names the place run takes beside files at the destination this job did not send (scp)", async () => {
  const sshd = await startSshd();
  try {
    const box = await sshSandbox(sshd, "scp", { stability_window_seconds: 0.3 });
    try {
      await assertDryRunNamesThePlaces({
        config: box.config,
        watch: box.watch,
        base: box.remote,
        env: box.env,
        owner: sshd,
      });
    } finally {
      await Deno.remove(box.root, { recursive: true });
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("run --dry-run that cannot ask the destination (its SSH server down) lists the files as planned and exits 1", async () => {
  const sshd = await startSshd();
  try {
    const box = await sshSandbox(sshd, "scp");
    try {
      await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(200));
      await Deno.utime(join(box.watch, "a.fits"), EVENING, EVENING);
      await sshd.halt();
      const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
      assert.equal(dry.code, 1, dry.stdout + dry.stderr);
      assert.match(dry.stdout, /would transfer .*a\.fits -> .*\/20240315\/a\.fits/);
      assert.match(dry.stdout, /cannot ask the destination which of the names planned hold a file/);
      assert.match(
        dry.stderr,
        /^error: The dry run could not ask the destination what it holds \(job default: .+\): its files are listed where they are planned/m,
      );
    } finally {
      await Deno.remove(box.root, { recursive: true });
    }
  } finally {
    await sshd.stop();
  }
});

Deno.test("run --dry-run names the place run takes beside files at the destination this job did not send (ftp)", () =>
  withVsftpdAndRoot({}, "itx-dry-places-ftp-", async ({ server, root }) => {
    await Deno.mkdir(join(root, "home"));
    const { base, watch, config } = await ftpDaemonSandbox(server, root);
    await assertDryRunNamesThePlaces({
      config,
      watch,
      base,
      env: { HOME: join(root, "home") },
      owner: server,
    });
  }));

Deno.test("run --dry-run stopped by Ctrl-C while it asks an SSH destination ends its shared connection: no master outlives it", async () => {
  const tools = await Deno.makeTempDir({ prefix: "itx-dry-run-stop-" });
  await Deno.chmod(tools, 0o777); // The login user writes `asked`.
  // The server's stat (the sizes of files at the destination) waits while `hold` is there.
  const asked = join(tools, "asked");
  const hold = join(tools, "hold");
  await Deno.writeTextFile(hold, "");
  await standInPrograms(tools, {
    stat: `: >'${asked}'; while [ -e '${hold}' ]; do sleep 0.1; done; exec /usr/bin/stat "$@"\n`,
  });
  try {
    await withStoppedWhileAsking(tools, async ({ sshd, box, tmp, theMaster, masterGone }) => {
      // A file under the name it would take is there: its size is asked.
      const night = join(box.remote, "20240315");
      await Deno.mkdir(night);
      await Deno.chown(night, sshd.uid, sshd.gid);
      await Deno.writeFile(join(night, "a.fits"), randomBytes(100));
      await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(200));
      await Deno.utime(join(box.watch, "a.fits"), EVENING, EVENING);
      const dry = startCli(["run", "--dry-run", "-c", box.config], {
        env: { ...box.env, TMPDIR: tmp },
        ownProcessGroup: true,
      });
      let status: Deno.CommandStatus;
      try {
        await waitFor(() => exists(asked), 60_000, "the sizes asked at the destination");
        await theMaster("the dry run");
        Deno.kill(-dry.process.pid, "SIGINT");
        await Deno.remove(hold);
        // A SIGTERM sent before the Ctrl-C was taken in could be the stop it reports.
        await waitFor(() => dry.exited(), 60_000, "the dry run ended by its Ctrl-C");
      } finally {
        await Deno.remove(hold).catch(() => {});
        status = await dry.stop("SIGTERM");
      }
      assert.equal(status.code, 1, dry.stderr());
      assert.match(
        dry.stderr(),
        /error: the dry run was stopped \(SIGINT\) before its listing ended/,
      );
      await masterGone("the dry run");
      assert.equal((await Deno.readFile(join(night, "a.fits"))).length, 100, "nothing sent");
    });
  } finally {
    await Deno.remove(tools, { recursive: true });
  }
});
