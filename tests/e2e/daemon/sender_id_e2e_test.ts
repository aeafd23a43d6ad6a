/**
 * This install's id (`state_dir/sender_id`, in the names of its temporary copies) through the real
 * CLI: a file that holds no id is replaced with a new one, said in one WARN line that names the
 * file and what the install no longer takes for its own, and so is one removed between runs of an
 * install that sent files; a folder in its place leaves the host name's naming, said once at the
 * start; a state folder emptied while the daemon runs gets the id back, so the next start sweeps
 * the copies the install left before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, sha256Of, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { testJob } from "../../helpers/jobs.ts";
import { cliSandbox, type Sandbox } from "../../helpers/sandbox.ts";
import { SENDER_ID_FILE } from "../../../src/ledger/state_files.ts";
import { jobOwner, tempNameFor } from "../../../src/transfer/temp_name.ts";

const NIGHT_MTIME = new Date("2024-03-15T22:00:00Z");

/** Write `name` (random bytes, of the night 20240315) into the watch folder; its bytes. */
async function writeSource(box: Sandbox, name: string): Promise<Uint8Array> {
  const bytes = randomBytes(3000);
  const path = join(box.watch, name);
  await Deno.writeFile(path, bytes);
  await Deno.utime(path, NIGHT_MTIME, NIGHT_MTIME);
  return bytes;
}

function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, () => false);
}

/** The text of this install's id file (`null`: none). */
async function idFile(box: Sandbox): Promise<string | null> {
  return await Deno.readTextFile(join(box.stateDir, SENDER_ID_FILE)).catch(() => null);
}

/** A `sender_id` spoilt between two runs: how, and what the WARN line at the second says of it. */
const SPOILT_BETWEEN_RUNS = [
  {
    title: "sender_id holding no id: a new id, one WARN line naming the file and the copies left " +
      "under the old one, no stack trace; the file still goes",
    spoil: (path: string) => Deno.writeTextFile(path, "not an id\n"),
    said: /holds no id: a new id was made/,
  },
  {
    title: "sender_id removed between runs of an install that sent files: a new id, one WARN " +
      "line naming the file and the copies left under the old one; none at the first start",
    spoil: (path: string) => Deno.remove(path),
    said: /was missing, although the ledger beside it records files of earlier runs/,
  },
];

for (const { title, spoil, said } of SPOILT_BETWEEN_RUNS) {
  Deno.test(title, async () => {
    await using box = await cliSandbox({ log_file: "" });
    const a = await writeSource(box, "a.fits");
    const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(first.code, 0, first.stderr);
    assert.doesNotMatch(first.stderr, /sender_id/, "a first start makes the id without a word");
    const old = (await idFile(box))?.trim();
    assert.match(old ?? "", /^[0-9a-f]{24}$/);

    await spoil(join(box.stateDir, SENDER_ID_FILE));
    const b = await writeSource(box, "b.fits");
    const second = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(second.code, 0, second.stderr);
    const lines = second.stderr.split("\n").filter((line) => /sender_id/.test(line));
    assert.equal(lines.length, 1, second.stderr);
    assert.match(lines[0], /WARN/);
    assert.ok(lines[0].includes(join(box.stateDir, SENDER_ID_FILE)), lines[0]);
    assert.match(lines[0], said);
    assert.match(
      lines[0],
      /left under its old id .*\.image-transfer-partial.* no longer resumed or removed/,
    );
    assert.doesNotMatch(second.stderr, /^\s+at /m, "no stack trace");
    const made = (await idFile(box))?.trim();
    assert.match(made ?? "", /^[0-9a-f]{24}$/);
    assert.notEqual(made, old);
    for (const [name, bytes] of [["a.fits", a], ["b.fits", b]] as const) {
      assert.equal(await sha256OfFile(join(box.dest, "20240315", name)), sha256Of(bytes), name);
    }

    const third = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.equal(third.code, 0, third.stderr);
    assert.doesNotMatch(third.stderr, /sender_id/, "said once");
    assert.equal((await idFile(box))?.trim(), made);
  });
}

Deno.test("a state folder emptied while the daemon runs gets this install's id back: the next start sweeps the temporary copy it left", async () => {
  await using box = await cliSandbox({ resume_partial_hours: 0 });
  const night = join(box.dest, "20240315");
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    const a = await writeSource(box, "a.fits");
    await waitFor(() => exists(join(night, "a.fits")), undefined, "a.fits sent");
    const id = await idFile(box);
    assert.match(id ?? "", /^[0-9a-f]{24}\n$/);
    await Deno.remove(box.stateDir, { recursive: true });
    // A second apart: the removal is looked for at most once a second, at a write of the ledger.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const b = await writeSource(box, "b.fits");
    await daemon.waitForOutput(/ledger\.sqlite is lost \(it was removed while the daemon ran\)/);
    await waitFor(async () => await idFile(box) === id, undefined, "the id written back");
    await waitFor(() => exists(join(night, "b.fits")), undefined, "b.fits sent");
    assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    assert.equal(await idFile(box), id, "still there after the stop");
    for (const [name, bytes] of [["a.fits", a], ["b.fits", b]] as const) {
      assert.equal(await sha256OfFile(join(night, name)), sha256Of(bytes), name);
    }
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }

  // A copy the install left under its id (killed while writing it), then the next start.
  const job = testJob("test", {
    watch_path: box.watch,
    remote_base_path: box.dest,
    transfer_method: "local",
  });
  const left = tempNameFor("c.fits", jobOwner(job, (await idFile(box))!.trim()));
  await Deno.writeFile(join(night, left), randomBytes(2048), { mode: 0o600 });
  const d = await writeSource(box, "d.fits");
  const next = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(next.code, 0, next.stderr);
  const names = (await Array.fromAsync(Deno.readDir(night))).map((e) => e.name).sort();
  assert.deepEqual(names, ["a.fits", "b.fits", "d.fits"], "its own leftover swept");
  assert.equal(await sha256OfFile(join(night, "d.fits")), sha256Of(d));
});

Deno.test("a folder in the place of sender_id: one WARN line at the start saying the host name's naming and what to do; the file still goes", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const path = join(box.stateDir, SENDER_ID_FILE);
  await Deno.mkdir(path, { recursive: true });
  const bytes = await writeSource(box, "a.fits");
  const run = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stderr.split("\n").filter((line) => /sender_id/.test(line));
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], /WARN/);
  assert.ok(lines[0].includes(`${path} is a folder`), lines[0]);
  assert.match(lines[0], /by this computer's host name/);
  assert.ok(lines[0].includes(`remove the folder ${path}, then restart the daemon`), lines[0]);
  assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
  assert.equal(await sha256OfFile(join(box.dest, "20240315", "a.fits")), sha256Of(bytes));
  assert.ok((await Deno.stat(path)).isDirectory, "left as it is");
});

/** The account the tests give a file of another account to (`nobody`). */
const OTHER_ACCOUNT = 65534;

Deno.test("a state_dir with the sticky bit that another account owns, holding its sender_id: run refuses it before it starts, saying why and what to do; the file left as it is", async () => {
  await using box = await cliSandbox({ log_file: "" });
  // A state_dir shared as /tmp is, holding the id file another account's run left there: whoever
  // can make names in it could put links in place of the daemon's files, or its daemon.json.
  await Deno.mkdir(box.stateDir);
  await Deno.chmod(box.stateDir, 0o1777);
  await Deno.chown(box.stateDir, OTHER_ACCOUNT, OTHER_ACCOUNT);
  const path = join(box.stateDir, SENDER_ID_FILE);
  const theirs = "0123456789abcdef01234567\n";
  await Deno.writeTextFile(path, theirs, { mode: 0o600 });
  await Deno.chown(path, OTHER_ACCOUNT, OTHER_ACCOUNT);
  await writeSource(box, "a.fits");

  const run = await runCli(["run", "--once", "-c", box.config], {
    env: box.env,
    honourFileModes: true,
  });
  assert.equal(run.code, 2, run.stderr);
  assert.ok(
    run.stderr.includes(
      `state_dir: refusing ${box.stateDir}: it is writable by group and others (mode 1777)`,
    ),
    run.stderr,
  );
  assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
  await assert.rejects(Deno.stat(box.dest), Deno.errors.NotFound);
  assert.equal(await Deno.readTextFile(path), theirs, "left as it is");
  const names = (await Array.fromAsync(Deno.readDir(box.stateDir))).map((e) => e.name);
  assert.deepEqual(names, [SENDER_ID_FILE]);
});

Deno.test("a sender_id the daemon's account cannot read: doctor and status say it in one line each (what, what run does, what to do); run then makes a new id, as said", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const options = { env: box.env, honourFileModes: true };
  const bytes = await writeSource(box, "a.fits");
  const first = await runCli(["run", "--once", "-c", box.config], options);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await sha256OfFile(join(box.dest, "20240315", "a.fits")), sha256Of(bytes));
  const path = join(box.stateDir, SENDER_ID_FILE);
  const old = await idFile(box);
  await Deno.chmod(path, 0o000);

  const problem = `${path} cannot be read (permission denied): run makes a new id there and no ` +
    "longer resumes or removes the copies this install left at its destinations under the old " +
    "id (hidden names ending in .image-transfer-partial); to keep the id, let the daemon's " +
    "account read the file";
  const doctor = await runCli(["doctor", "-c", box.config], options);
  assert.equal(doctor.code, 0, "a warning, not a failure: " + doctor.stdout + doctor.stderr);
  assert.deepEqual(idLines(box, doctor.stdout + doctor.stderr), [`  WARN  install id: ${problem}`]);
  const status = await runCli(["status", "-c", box.config], options);
  assert.equal(status.code, 0, status.stdout + status.stderr);
  assert.deepEqual(idLines(box, status.stdout + status.stderr), [`Install id: ${problem}`]);
  const json = await runCli(["status", "--json", "-c", box.config], options);
  assert.equal(json.code, 0, json.stdout + json.stderr);
  assert.equal(JSON.parse(json.stdout).senderIdProblem, problem);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0, "changed by neither");

  const b = await writeSource(box, "b.fits");
  const run = await runCli(["run", "--once", "-c", box.config], options);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stderr.split("\n").filter((line) => /sender_id/.test(line));
  assert.equal(lines.length, 1, run.stderr);
  assert.match(lines[0], /WARN/);
  assert.ok(
    lines[0].includes(`${path} cannot be read (permission denied): a new id was made`),
    lines[0],
  );
  const made = await idFile(box);
  assert.match(made ?? "", /^[0-9a-f]{24}\n$/);
  assert.notEqual(made, old);
  assert.equal(await sha256OfFile(join(box.dest, "20240315", "b.fits")), sha256Of(b));
});

/** The lines of `text` that name the id file of `box`. */
function idLines(box: Sandbox, text: string): string[] {
  const path = join(box.stateDir, SENDER_ID_FILE);
  return text.split("\n").filter((line) => line.includes(path));
}

Deno.test("doctor and status say a sender_id that holds no id, or a folder in its place, in one line each (what, what run does, what to do), changing nothing", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const bytes = await writeSource(box, "a.fits");
  const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(await sha256OfFile(join(box.dest, "20240315", "a.fits")), sha256Of(bytes));
  const path = join(box.stateDir, SENDER_ID_FILE);
  for (const command of ["doctor", "status"]) {
    const sound = await runCli([command, "-c", box.config], { env: box.env });
    assert.equal(sound.code, 0, sound.stdout + sound.stderr);
    assert.deepEqual(idLines(box, sound.stdout + sound.stderr), [], `${command}: a sound id`);
  }

  await Deno.writeTextFile(path, "not an id\n");
  const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
  assert.equal(doctor.code, 0, "a warning, not a failure: " + doctor.stdout + doctor.stderr);
  assert.deepEqual(idLines(box, doctor.stdout + doctor.stderr), [
    `  WARN  install id: ${path} holds no id: run makes a new id there and no longer resumes or ` +
    "removes the copies this install left at its destinations under the old id (hidden names " +
    "ending in .image-transfer-partial); remove those by hand once no transfer is under way",
  ]);
  const status = await runCli(["status", "-c", box.config], { env: box.env });
  assert.equal(status.code, 0, status.stdout + status.stderr);
  const said = idLines(box, status.stdout + status.stderr);
  assert.equal(said.length, 1, status.stdout);
  assert.match(
    said[0],
    /^Install id: .* holds no id: run makes a new id there .*remove those by hand/,
  );
  const json = await runCli(["status", "--json", "-c", box.config], { env: box.env });
  assert.match(JSON.parse(json.stdout).senderIdProblem, /holds no id: run makes a new id there/);
  assert.equal(await Deno.readTextFile(path), "not an id\n", "changed by neither");

  await Deno.remove(path);
  await Deno.mkdir(path);
  const folderDoctor = await runCli(["doctor", "-c", box.config], { env: box.env });
  assert.equal(folderDoctor.code, 0, folderDoctor.stdout + folderDoctor.stderr);
  assert.deepEqual(idLines(box, folderDoctor.stdout), [
    `  WARN  install id: ${path} is a folder: run cannot keep this install's id there and names ` +
    "its temporary copies and upload folders by this computer's host name instead (as another " +
    "PC of that name may); remove the folder",
  ]);
  const folderStatus = await runCli(["status", "-c", box.config], { env: box.env });
  assert.equal(folderStatus.code, 0, folderStatus.stdout + folderStatus.stderr);
  assert.deepEqual(idLines(box, folderStatus.stdout).map((line) => line.slice(0, 12)), [
    "Install id: ",
  ]);
  assert.match(idLines(box, folderStatus.stdout)[0], /is a folder: .*; remove the folder$/);
  assert.ok((await Deno.stat(path)).isDirectory, "left as it is");
});

Deno.test("doctor and status say a sender_id missing beside a ledger that records files (what, what run does, what to do); not on a fresh install, with no ledger or an empty one", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const path = join(box.stateDir, SENDER_ID_FILE);
  /** The lines of `doctor`, `status` and `status --json`'s `senderIdProblem` naming the file. */
  const said = async () => {
    const doctor = await runCli(["doctor", "-c", box.config], { env: box.env });
    assert.equal(doctor.code, 0, "a warning, not a failure: " + doctor.stdout + doctor.stderr);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const json = await runCli(["status", "--json", "-c", box.config], { env: box.env });
    assert.equal(json.code, 0, json.stdout + json.stderr);
    return {
      doctor: idLines(box, doctor.stdout + doctor.stderr),
      status: idLines(box, status.stdout + status.stderr),
      json: JSON.parse(json.stdout).senderIdProblem,
    };
  };
  const nothing = { doctor: [], status: [], json: null };
  assert.deepEqual(await said(), nothing, "no state_dir yet");

  // A first run that sent nothing: a ledger that records no file.
  const empty = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(empty.code, 0, empty.stderr);
  await Deno.remove(path);
  assert.deepEqual(await said(), nothing, "a ledger that records no file");

  const bytes = await writeSource(box, "a.fits");
  const first = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(first.code, 0, first.stderr);
  assert.doesNotMatch(first.stderr, /sender_id/, "made without a word: nothing sent before");
  assert.equal(await sha256OfFile(join(box.dest, "20240315", "a.fits")), sha256Of(bytes));
  assert.deepEqual(await said(), nothing, "a sound id");

  await Deno.remove(path);
  const problem = `${path} is missing, although the ledger beside it records files of earlier ` +
    "runs: run makes a new id there and no longer resumes or removes the copies this install " +
    "left at its destinations under the old id (hidden names ending in " +
    ".image-transfer-partial); restore the file from a backup if there is one, else remove " +
    "those by hand once no transfer is under way";
  assert.deepEqual(await said(), {
    doctor: [`  WARN  install id: ${problem}`],
    status: [`Install id: ${problem}`],
    json: problem,
  });
  assert.equal(await idFile(box), null, "made by neither");
});

Deno.test("status while the daemon runs: a sender_id removed meanwhile is not said, one spoilt is said as written back at the stop, and it is", async () => {
  await using box = await cliSandbox({ log_file: "" });
  const path = join(box.stateDir, SENDER_ID_FILE);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    const bytes = await writeSource(box, "a.fits");
    const sent = join(box.dest, "20240315", "a.fits");
    await waitFor(() => exists(sent), undefined, "a.fits sent");
    assert.equal(await sha256OfFile(sent), sha256Of(bytes));
    const id = await idFile(box);
    assert.match(id ?? "", /^[0-9a-f]{24}\n$/);
    await Deno.remove(path);
    for (const command of ["doctor", "status"]) {
      const missing = await runCli([command, "-c", box.config], { env: box.env });
      assert.deepEqual(idLines(box, missing.stdout + missing.stderr), [], `${command}: missing`);
    }
    await Deno.writeTextFile(path, "spoilt\n");
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.deepEqual(idLines(box, status.stdout), [
      `Install id: ${path} holds no id: the running daemon writes its id back there when it ` +
      "stops (a restart keeps the id)",
    ]);
    assert.equal((await daemon.stop("SIGTERM")).code, 0, daemon.stderr());
    assert.equal(await idFile(box), id, "written back at the stop");
  } finally {
    await daemon.stop("SIGTERM").catch(() => {});
  }
});
