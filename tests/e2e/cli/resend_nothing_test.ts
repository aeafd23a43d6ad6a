/**
 * `resend` that chooses nothing exits 1 and says why on stderr (a script can tell): a file that
 * failed, one waiting, and one in the watch folder not sent yet are named with where they stand
 * (they go by themselves), not answered with how a pattern is matched; a night with no file, and
 * files gone from the watch folder, exit 1 too. Real one-shot `local` runs make the ledger.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { existsSync, randomBytes } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

const EVENING = new Date("2024-03-15T20:00:00Z");

Deno.test("resend --name of a file that has not arrived (failed, or not sent yet) says where it stands, not how patterns match; exit 1", async () => {
  await using box = await cliSandbox({ status_listen: "", retry_attempts: 0 });
  // The night folder's place is taken by a file: test1.fits fails.
  await Deno.mkdir(box.dest);
  await Deno.writeTextFile(join(box.dest, "20240315"), "in the way");
  await Deno.writeFile(join(box.watch, "test1.fits"), randomBytes(3000));
  await Deno.utime(join(box.watch, "test1.fits"), EVENING, EVENING);
  const failed = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(failed.code, 1, failed.stderr);
  // Found after the run: in the watch folder, not sent yet.
  await Deno.writeFile(join(box.watch, "neverseen.fits"), randomBytes(3000));
  for (const dryRun of [["--dry-run"], []]) {
    const one = await runCli(["resend", "--name", "test1.fits", ...dryRun, "-c", box.config], {
      env: box.env,
    });
    assert.equal(one.code, 1, one.stderr);
    assert.match(one.stdout, /job default: 0 file\(s\) (would|will) be sent again/);
    assert.match(
      one.stderr,
      /^error: Nothing to send again: no file that arrived matches --name test1\.fits; these have not arrived yet/,
    );
    assert.match(
      one.stderr,
      new RegExp(
        "\n  job default: test1\\.fits failed after 1 attempt\\(s\\) \\(last error: .*\\): " +
          `the next start tries it again \\(image-transfer -c ${box.config} run\\)`,
      ),
      one.stderr,
    );
    assert.doesNotMatch(one.stderr, /A pattern is matched/);
  }
  const unsent = await runCli(["resend", "--name", "neverseen.fits", "-c", box.config], {
    env: box.env,
  });
  assert.equal(unsent.code, 1, unsent.stderr);
  assert.ok(
    unsent.stderr.includes(
      "\n  job default: neverseen.fits is in the watch folder, not sent yet: it goes by itself " +
        `at the next start (image-transfer -c ${box.config} run)`,
    ),
    unsent.stderr,
  );
  assert.doesNotMatch(unsent.stderr, /A pattern is matched/);
  // A pattern taking both names each.
  const both = await runCli(["resend", "--name", "*.fits", "--dry-run", "-c", box.config], {
    env: box.env,
  });
  assert.equal(both.code, 1, both.stderr);
  assert.match(both.stderr, /test1\.fits failed after/);
  assert.match(both.stderr, /neverseen\.fits is in the watch folder, not sent yet/);
});

Deno.test("resend that chooses nothing exits 1, saying why on stderr: a night without files, files gone from the watch folder", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(3000));
  await Deno.utime(join(box.watch, "a.fits"), EVENING, EVENING);
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  const night = await runCli(["resend", "--night", "20200101", "-c", box.config], {
    env: box.env,
  });
  assert.equal(night.code, 1, night.stderr);
  assert.equal(
    night.stderr.trim(),
    "error: Nothing to send again: no file that arrived went to night folder 20200101",
  );
  // Both choices said: a.fits is there, in another night.
  const elsewhere = await runCli(
    ["resend", "--night", "20200101", "--name", "a.fits", "-c", box.config],
    { env: box.env },
  );
  assert.equal(elsewhere.code, 1, elsewhere.stderr);
  assert.equal(
    elsewhere.stderr.trim(),
    "error: Nothing to send again: no file that arrived matches --name a.fits and went to night " +
      "folder 20200101",
  );
  // Choices that contradict or repeat are refused, before anything is chosen.
  for (
    const [args, said] of [
      [
        ["--night", "20240315", "--night", "20200101"],
        /--night is given twice \(20240315, then 20200101\)/,
      ],
      [["--date", "2024-03-15", "--date", "2024-03-16"], /--date is given twice/],
      [["--night", "20240315", "--all"], /--all is every file that arrived, .*give --all alone/],
      [["--all", "--name", "a.fits"], /--all is every file that arrived/],
    ] as const
  ) {
    const refused = await runCli(["resend", ...args, "-c", box.config], { env: box.env });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, said);
  }
  const chosen = await runCli(["resend", "--night", "20240315", "--dry-run", "-c", box.config], {
    env: box.env,
  });
  assert.equal(chosen.code, 0, chosen.stderr);
  assert.equal(chosen.stderr, "");
  await Deno.remove(join(box.watch, "a.fits"));
  const gone = await runCli(["resend", "--all", "-c", box.config], { env: box.env });
  assert.equal(gone.code, 1, gone.stderr);
  assert.match(gone.stdout, /1 chosen file\(s\) are no longer in the watch folder/);
  assert.equal(
    gone.stderr.trim(),
    "error: Nothing to send again: the 1 chosen file(s) are no longer in the watch folder " +
      "(only a file still there can be sent again)",
  );
});

Deno.test("resend of files moved into the archive (after_transfer: move) says where they are and how to send them again, and that way works", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const archive = join(box.root, "archive");
  await box.rewrite({ status_listen: "", after_transfer: "move", archive_path: archive });
  await Deno.mkdir(join(box.watch, "raw"));
  const files = { "raw/it's a.fits": randomBytes(3000), "raw/b.fits": randomBytes(4000) };
  for (const [rel, data] of Object.entries(files)) {
    await Deno.writeFile(join(box.watch, rel), data);
    await Deno.utime(join(box.watch, rel), EVENING, EVENING);
  }
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  for (const rel of Object.keys(files)) {
    assert.ok(existsSync(join(archive, rel)), `${rel} moved into the archive`);
  }
  const none = await runCli(["resend", "--night", "20240315", "-c", box.config], {
    env: box.env,
  });
  assert.equal(none.code, 1, none.stderr);
  assert.match(
    none.stdout,
    /2 chosen file\(s\) are no longer in the watch folder \(2 in the archive, /,
  );
  const first = join(archive, "raw", "b.fits"); // the first chosen, by name
  const back = join(box.watch, "raw", "b.fits");
  assert.equal(
    none.stderr.trim(),
    "error: Nothing to send again: the 2 chosen file(s) are no longer in the watch folder " +
      "(only a file still there can be sent again).\n" +
      `Job default moved 2 of them into its archive (after_transfer: move): ${first} and 1 ` +
      "more, each at its path below the watch folder. To send them again, move them back into " +
      "the watch folder at the same path, keeping their mtime (mv does; one of another mtime is " +
      `taken for a new file, sent beside its copy), e.g. mv ${first} ${back}, then run this ` +
      "resend again (once sent, they go back into the archive)",
  );
  // As told: moved back, then chosen and sent over its own copy (not beside it), and archived.
  await Deno.remove(join(box.dest, "20240315", "raw", "b.fits"));
  await Deno.rename(first, back);
  const again = await runCli(["resend", "--night", "20240315", "-c", box.config], {
    env: box.env,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /job default: 1 file\(s\) will be sent again; 1 chosen file\(s\)/);
  const resent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(resent.code, 0, resent.stderr);
  assert.deepEqual(
    await Deno.readFile(join(box.dest, "20240315", "raw", "b.fits")),
    files["raw/b.fits"],
  );
  assert.deepEqual(
    [...Deno.readDirSync(join(box.dest, "20240315", "raw"))].map((e) => e.name).sort(),
    [
      "b.fits",
      "it's a.fits",
    ],
  );
  assert.ok(existsSync(first), "archived again");
});
