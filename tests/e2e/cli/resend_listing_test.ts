/**
 * `resend --dry-run` lists names as `run --dry-run` and `status` do: a name with a line break
 * in double quotes with escapes, told from a name holding a backslash and an `n`. A real
 * one-shot run sends both first (`local`), then the listing is read.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { randomBytes } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("resend --dry-run: a name with a line break is quoted, told from one with a backslash and an n", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const evening = new Date("2024-03-15T20:00:00Z");
  for (const name of ["a\nb.fits", "a\\nb.fits"]) {
    await Deno.writeFile(join(box.watch, name), randomBytes(3000));
    await Deno.utime(join(box.watch, name), evening, evening);
  }
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  const dry = await runCli(["resend", "--all", "--dry-run", "-c", box.config], { env: box.env });
  assert.equal(dry.code, 0, dry.stderr);
  const lines = dry.stdout.split("\n").filter((line) => line.startsWith("would send again "));
  assert.deepEqual(
    lines.sort(),
    [
      `would send again ${join(box.watch, "a\\nb.fits")} -> 20240315/a\\nb.fits`,
      `would send again "${join(box.watch, "a\\nb.fits")}" -> "20240315/a\\nb.fits"`,
    ].sort(),
    dry.stdout,
  );
});

Deno.test("resend --name takes the absolute path of a file in the watch folder, its name as it is", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const evening = new Date("2024-03-15T20:00:00Z");
  const hostile = [
    `a b 'q" .fits`,
    "-lead.fits",
    "line\nbreak.fits",
    "\u00e9toile \u2605.fits",
    "flat[1].fits",
  ];
  await Deno.mkdir(join(box.watch, "raw"));
  const all = [...hostile, "flat1.fits", "raw/one.fits", "raw/two.fits", "other.fits"];
  for (const name of all) {
    await Deno.writeFile(join(box.watch, name), randomBytes(3000));
    await Deno.utime(join(box.watch, name), evening, evening);
  }
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  const chosen = async (...paths: string[]) => {
    const names = paths.flatMap((path) => ["--name", join(box.watch, path)]);
    const dry = await runCli(["resend", ...names, "--dry-run", "-c", box.config], {
      env: box.env,
    });
    assert.equal(dry.code, 0, dry.stderr);
    return dry.stdout.split("\n").filter((line) => line.startsWith("would send again ")).length;
  };
  // Each hostile name chooses that one file: no glob ('[1]' is not flat1.fits), no option.
  for (const name of hostile) assert.equal(await chosen(name), 1, name);
  // A folder below the watch folder: the files below it.
  assert.equal(await chosen("raw"), 2);
  const real = await runCli(["resend", "--name", join(box.watch, "-lead.fits"), "-c", box.config], {
    env: box.env,
  });
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /job default: 1 file\(s\) will be sent again/);
  // With no daemon running: the run of this config (-c as given), not of the default one.
  assert.ok(
    real.stdout.includes(
      `They are sent at the next start (image-transfer -c ${box.config} run).`,
    ),
    real.stdout,
  );
});

Deno.test("resend --name matches as file_patterns do: a name with a line break under **, either Unicode form, upper and lower case alike", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const evening = new Date("2024-03-15T20:00:00Z");
  await Deno.mkdir(join(box.watch, "raw"));
  // "e\u0301" is an e and a combining accent, as macOS writes names: "\u00e9" typed matches it.
  const names = ["raw/a\nb.fits", "raw/plain.fits", "FLAT_1.fits", "e\u0301toile.fits"];
  for (const name of names) {
    await Deno.writeFile(join(box.watch, name), randomBytes(3000));
    await Deno.utime(join(box.watch, name), evening, evening);
  }
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  const chosen = async (name: string) => {
    const dry = await runCli(["resend", "--name", name, "--dry-run", "-c", box.config], {
      env: box.env,
    });
    assert.equal(dry.code, 0, dry.stderr);
    return dry.stdout.split("\n").filter((line) => line.startsWith("would send again ")).length;
  };
  assert.equal(await chosen("raw/**"), 2, "raw/** takes the name with a line break too");
  assert.equal(await chosen("*\nb.fits"), 1);
  assert.equal(await chosen("flat*"), 1, "case_sensitive_patterns is off by default");
  assert.equal(await chosen("\u00e9toile*"), 1, "the accent typed as one letter");
});

Deno.test("resend --name that matches no file says how a pattern is matched (below the watch folder), instead of a bare 0 files, exit 1", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  await Deno.mkdir(join(box.watch, "raw"));
  await Deno.writeFile(join(box.watch, "raw", "a.fits"), randomBytes(3000));
  const sent = await runCli(["run", "--once", "-c", box.config], { env: box.env });
  assert.equal(sent.code, 0, sent.stderr);
  // The path typed from the folder above the watch folder, and a folder's bare name.
  for (const name of [`${basename(box.watch)}/raw/*`, "raw"]) {
    const dry = await runCli(["resend", "--name", name, "--dry-run", "-c", box.config], {
      env: box.env,
    });
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stdout, /job default: 0 file\(s\) would be sent again/);
    assert.ok(
      dry.stderr.includes(
        `error: Nothing to send again: no file matches --name ${name}. A pattern is matched against the path ` +
          "below the watch folder, not the current folder: 'raw/*.fits' takes " +
          `${join(box.watch, "raw", "x.fits")}, a name without / is looked for in every ` +
          "folder, and a folder's files are 'raw/**' (or its absolute path)",
      ),
      dry.stderr,
    );
  }
  const found = await runCli(["resend", "--name", "raw/*", "--dry-run", "-c", box.config], {
    env: box.env,
  });
  assert.equal(found.code, 0, found.stderr);
  assert.match(found.stdout, /job default: 1 file\(s\) would be sent again/);
  assert.doesNotMatch(found.stderr, /Nothing to send again/);
});

Deno.test("resend before anything was sent says so (exit 1: nothing chosen), and makes no ledger", async () => {
  await using box = await cliSandbox();
  for (const args of [["resend", "--all"], ["resend", "--dry-run", "--all"]]) {
    const result = await runCli([...args, "-c", box.config], { env: box.env });
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^error: No ledger yet in .*: nothing has been sent, so nothing is sent again\.$/m,
    );
  }
  const state = await Array.fromAsync(Deno.readDir(box.stateDir)).catch(() => []);
  assert.deepEqual(state.map((entry) => entry.name), [], "nothing written in state_dir");
});
