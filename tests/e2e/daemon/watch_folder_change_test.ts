/**
 * A job whose `watch_path` changes keeps its name, so the ledger's rows of its files are found by
 * their names: a file of the new folder under a name the old folder's file was sent under is
 * another file, which never replaces that copy. Through the real CLI (`run --once`), a local copy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { reloadDaemon, runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson } from "../../helpers/status.ts";

const NIGHT = new Date("2024-07-01T20:00:00Z"); // -> night folder 20240701

/** `run --once`: asserts it ended well and sent `sent` file(s); its log. */
async function runOnce(config: string, env: Record<string, string>, sent: number) {
  const run = await runCli(["run", "--once", "-c", config], { env });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`Stopped: ${sent} file\\(s\\) sent, 0 failed`), run.stderr);
  return run.stderr;
}

/** The files under `dir` and their text, by relative path. */
async function contents(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for await (const night of Deno.readDir(dir)) {
    for await (const entry of Deno.readDir(join(dir, night.name))) {
      found[`${night.name}/${entry.name}`] = await Deno.readTextFile(
        join(dir, night.name, entry.name),
      );
    }
  }
  return found;
}

Deno.test("watch_path changed to a folder with files of the same names, made before: none replaces the copy of the old folder's file; the same bytes are not sent again; back to the old folder, nothing is sent again", async () => {
  await using box = await cliSandbox();
  const other = join(box.root, "other");
  await Deno.mkdir(other);
  const write = async (path: string, text: string) => {
    await Deno.writeTextFile(path, text);
    await Deno.utime(path, NIGHT, NIGHT);
  };
  // Every file is made before the first run: none is "made after" a copy arrived.
  await write(join(box.watch, "img_0001.dat"), "the first camera's image 1");
  await write(join(box.watch, "img_0002.dat"), "the same bytes in both folders");
  await write(join(other, "img_0001.dat"), "the other folder's own image 1");
  await write(join(other, "img_0002.dat"), "the same bytes in both folders");
  const fields = { file_patterns: ["*.dat"] };
  await box.rewrite(fields);
  await runOnce(box.config, box.env, 2);
  await box.rewrite({ ...fields, watch_path: other });
  // `run --dry-run` says so before the run, the ledger not yet told of the new folder.
  const dry = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would transfer \S+\/other\/img_0001\.dat -> \S+\/img_0001~2\.dat /);
  // Before: the other folder's img_0001.dat went over the first one's copy, and img_0002.dat too.
  const log = await runOnce(box.config, box.env, 1);
  assert.match(
    log,
    /Job default sends from \S+\/other now, no longer from \S+\/watch: .* never goes over that copy/,
  );
  const after = {
    "20240701/img_0001.dat": "the first camera's image 1",
    "20240701/img_0001~2.dat": "the other folder's own image 1",
    "20240701/img_0002.dat": "the same bytes in both folders",
  };
  assert.deepEqual(await contents(box.dest), after);
  // Back to the first folder: its files are there already, under their own names.
  await box.rewrite(fields);
  assert.match(await runOnce(box.config, box.env, 0), /sends from \S+\/watch now/);
  assert.deepEqual(await contents(box.dest), after);
});

Deno.test("a reload that changes watch_path names each unsent file of the old folder where it is, and says it stays there unsent", async () => {
  await using box = await cliSandbox();
  const other = join(box.root, "w2");
  await Deno.mkdir(other);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching ");
    // min_free_space no disk has: the file found next waits, unsent, in the ledger.
    await box.rewrite({ min_free_space: "900 TB" });
    await reloadDaemon(daemon, 1);
    await Deno.writeFile(join(box.watch, "b.fits"), randomBytes(500));
    await daemon.waitForOutput("is full");
    // The new folder has a file of that name too: another file, sent once there is room.
    const own = randomBytes(700);
    await Deno.writeFile(join(other, "b.fits"), own);
    await box.rewrite({ min_free_space: "900 TB", watch_path: other });
    await reloadDaemon(daemon, 2);
    await box.rewrite({ watch_path: other });
    await reloadDaemon(daemon, 3);
    await daemon.waitForOutput("b.fits -> ");
    const night = (await Array.fromAsync(Deno.readDir(box.dest)))[0].name;
    assert.deepEqual(await Deno.readFile(join(box.dest, night, "b.fits")), own);
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  assert.doesNotMatch(log, /Dropped \S+\/w2\/b\.fits/, log);
  assert.match(
    log,
    new RegExp(
      `Dropped ${join(box.watch, "b.fits")}: it is in ${box.watch}, which job default no ` +
        `longer watches \\(its watch_path is ${other} now\\): left there, not sent`,
    ),
  );
  // Said once: the old folder's file is not taken for the new one's at the next reload.
  assert.equal(log.match(/Dropped /g)?.length, 1, log);
  assert.equal(log.match(/Successfully transferred/g)?.length, 1, log);
  // The file is where it was, untouched.
  assert.equal((await Deno.stat(join(box.watch, "b.fits"))).size, 500);
});

Deno.test("a reload that changes watch_path after a long paused night names the first 10 unsent files of the old folder, and the rest in one line with their count", async () => {
  const status = { status_listen: `127.0.0.1:${freePort()}` };
  await using box = await cliSandbox(status);
  const other = join(box.root, "w2");
  await Deno.mkdir(other);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  const files = 30;
  try {
    await daemon.waitForOutput("Watching ");
    // min_free_space no disk has: the files found next wait, unsent, in the ledger.
    await box.rewrite({ ...status, min_free_space: "900 TB" });
    await reloadDaemon(daemon, 1);
    for (let i = 0; i < files; i++) {
      await Deno.writeFile(join(box.watch, `f${String(i).padStart(2, "0")}.fits`), randomBytes(50));
    }
    const base = `http://${status.status_listen}`;
    await waitFor(
      async () => {
        const { counts } = await getJson<{ counts: { state: string; count: number }[] }>(
          base,
          "/api/status",
        );
        const unsent = counts.filter((c) => c.state === "pending" || c.state === "transferring");
        return unsent.reduce((sum, c) => sum + c.count, 0) === files;
      },
      30_000,
      `the ${files} files waiting in the ledger`,
    );
    await box.rewrite({ ...status, min_free_space: "900 TB", watch_path: other });
    await reloadDaemon(daemon, 2);
    // 11 lines now (30 before): the files named and the count of the rest.
    await waitFor(
      () => (daemon.stderr().match(/Dropped /g)?.length ?? 0) >= 11,
      30_000,
      "the old folder's files said",
    );
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = daemon.stderr();
  const where = `in ${box.watch}, which job default no longer watches \\(its watch_path is ` +
    `${other} now\\): left there, not sent`;
  // Before: one INFO line for each of the 30 files.
  const named = log.split("\n").filter((l) => /Dropped \S+\/f\d+\.fits: /.test(l));
  assert.equal(named.length, 10, log);
  for (const line of named) {
    assert.match(line, new RegExp(`INFO .*Dropped ${box.watch}/f\\d+\\.fits: it is ${where}$`));
  }
  const rest = log.split("\n").filter((l) => /Dropped \d+ /.test(l));
  assert.equal(rest.length, 1, log);
  assert.match(
    rest[0],
    new RegExp(
      `INFO .*Dropped 20 more unsent file\\(s\\) of job default \\(30 in all\\): they are ` +
        `${where}; -v logs each$`,
    ),
  );
  // The files are where they were, none sent.
  assert.equal((await Array.fromAsync(Deno.readDir(box.watch))).length, files);
  assert.doesNotMatch(log, /Successfully transferred/);
});
