/**
 * The daemon's command-line behaviour through the real CLI: `--once`,
 * `--dry-run`, `status`, a stop in the middle of a copy, the state-folder
 * lock and JSON logs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, waitFor, writeConfig } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { card, fitsFile, headerOnlyPrimary, imageParts } from "../../helpers/fits.ts";

const noon = new Date("2024-05-02T12:00:00Z");

Deno.test("run --once sends what is complete, exits 0, and status reports it", async () => {
  const box = await cliSandbox();
  try {
    const bytes = randomBytes(12345);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await Deno.utime(join(box.watch, "a.fits"), noon, noon);
    await Deno.writeFile(join(box.watch, "skip.txt"), randomBytes(10));
    const run = await runCli(["run", "--once", "-c", box.config], {
      env: box.env,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await listFiles(box.dest), ["20240502/a.fits"]);
    assert.deepEqual(
      await Deno.readFile(join(box.dest, "20240502/a.fits")),
      bytes,
    );

    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(
      status.stdout,
      /Job default: pending 0, interrupted 0, done 1, failed 0/,
    );
    assert.match(status.stdout, /a\.fits -> 20240502\/a\.fits/);

    const json = await runCli(["status", "--json", "-c", box.config], {
      env: box.env,
    });
    const parsed = JSON.parse(json.stdout);
    assert.deepEqual(parsed.counts, [
      { job: "default", target: `local:${box.dest}`, state: "done", count: 1 },
    ]);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("run --once exits 1 when a file cannot be delivered, and status shows why", async () => {
  const box = await cliSandbox({ retry_attempts: 1, retry_delay_seconds: 0.05 });
  try {
    // A regular file where the night folder goes: the folder cannot be made. (A destination
    // that is a file itself is refused before the start.)
    await Deno.mkdir(box.dest);
    await Deno.writeTextFile(join(box.dest, "20240502"), "in the way");
    await Deno.writeFile(join(box.watch, "b.fits"), randomBytes(100));
    await Deno.utime(join(box.watch, "b.fits"), noon, noon);
    const run = await runCli(["run", "--once", "-c", box.config], {
      env: box.env,
    });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /Failed to transfer .*b\.fits: /);
    // The status to look at is this config's (-c as given), not the default one's.
    assert.ok(
      run.stderr.includes(
        "error: Not every file was transferred: 1 file(s) failed; see the log and " +
          `\`image-transfer -c ${box.config} status\``,
      ),
      run.stderr,
    );
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, /failed 1/);
    assert.match(
      status.stdout,
      // Failing, as the page says it; with no daemon, tried again at its next start.
      /b\.fits: .+\(failing; next try at the next start; \d+ attempt\(s\)\)/,
    );

    // Fixed: the next start retries the failed file and it arrives.
    await Deno.remove(join(box.dest, "20240502"));
    const again = await runCli(["run", "--once", "-c", box.config], {
      env: box.env,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await listFiles(box.dest)).length, 1);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("run --once -v that ends with a file not sent says so in one line, without a stack trace", async () => {
  const box = await cliSandbox({ retry_attempts: 1, retry_delay_seconds: 0.05 });
  try {
    // A regular file where the night folder goes: the folder cannot be made.
    await Deno.mkdir(box.dest);
    await Deno.writeTextFile(join(box.dest, "20240502"), "in the way");
    await Deno.writeFile(join(box.watch, "b.fits"), randomBytes(100));
    await Deno.utime(join(box.watch, "b.fits"), noon, noon);
    const run = await runCli(["run", "--once", "-v", "-c", box.config], { env: box.env });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^error: Not every file was transferred: 1 file\(s\) failed; /m);
    // An expected outcome, not a bug: no "Error: ..." repeated with the places in the code.
    assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
    assert.doesNotMatch(run.stderr, /^Error: /m);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("run --dry-run lists source -> destination and changes nothing", async () => {
  const box = await cliSandbox();
  try {
    await Deno.mkdir(join(box.watch, "sub dir"));
    await Deno.writeFile(
      join(box.watch, "sub dir", "-x $(y).fits"),
      randomBytes(10),
    );
    await Deno.utime(join(box.watch, "sub dir", "-x $(y).fits"), noon, noon);
    const run = await runCli(["run", "--dry-run", "-c", box.config], {
      env: box.env,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.ok(
      run.stdout.includes(
        `would transfer ${join(box.watch, "sub dir", "-x $(y).fits")} -> ${
          join(box.dest, "20240502", "sub dir", "-x $(y).fits")
        }`,
      ),
      run.stdout,
    );
    assert.match(run.stdout, /job default: 1 file\(s\) would be transferred/);
    // A DATE-OBS that is no date: the night comes from the mtime, and the line says why.
    const { header, data } = imageParts(8, 8, [card("DATE-OBS", "yesterday")]);
    const undated = join(box.watch, "undated.fits");
    await Deno.writeFile(undated, fitsFile(header, data));
    await Deno.utime(undated, noon, noon);
    const byHeader = join(box.root, "by-header.yaml");
    await writeConfig(byHeader, {
      watch_path: box.watch,
      remote_base_path: box.dest,
      transfer_method: "local",
      night_timezone: "UTC",
      night_date_source: "fits",
      state_dir: join(box.root, "state"),
    });
    const dated = await runCli(["run", "--dry-run", "-c", byHeader], {
      env: box.env,
    });
    assert.ok(
      dated.stdout.includes(
        `would transfer ${undated} -> ${join(box.dest, "20240502", "undated.fits")} (`,
      ),
      dated.stdout,
    );
    assert.match(
      dated.stdout,
      /undated\.fits \(.*"yesterday".*using the file mtime instead\)/,
    );
    await Deno.remove(undated);
    // A FITS file still being written is left for a later run, as `run --once` leaves it.
    const open = join(box.watch, "exposure.fits");
    await Deno.writeFile(open, new Uint8Array(0));
    const writing = await runCli(["run", "--dry-run", "-c", box.config], {
      env: box.env,
    });
    assert.ok(
      writing.stdout.includes(
        `would leave ${open} for a later run: its FITS structure is incomplete (empty so far`,
      ),
      writing.stdout,
    );
    assert.match(
      writing.stdout,
      /job default: 1 file\(s\) would be transferred/,
    );
    await Deno.remove(open);
    // A primary HDU that announces extensions not there yet: `run --once` waits for them, and
    // the dry run says so (it said "would transfer").
    const first = join(box.watch, "mef.fits");
    await Deno.writeFile(first, headerOnlyPrimary());
    const announced = await runCli(["run", "--dry-run", "-c", box.config], { env: box.env });
    assert.ok(
      announced.stdout.includes(
        `would leave ${first} for a later run: its FITS structure is incomplete (its primary HDU`,
      ),
      announced.stdout,
    );
    await Deno.remove(first);
    // Nothing written: no destination, no ledger, no log.
    await assert.rejects(Deno.stat(box.dest), Deno.errors.NotFound);
    await assert.rejects(
      Deno.stat(join(box.root, "state")),
      Deno.errors.NotFound,
    );
    // The old tool's top-level flag works too.
    const old = await runCli(["--dry-run", "-c", box.config], { env: box.env });
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stdout, /1 file\(s\) would be transferred/);
    // And `run --once` leaves it, as the dry run said.
    await Deno.writeFile(first, headerOnlyPrimary());
    const once = await runCli(["run", "--once", "-c", box.config], { env: box.env });
    assert.match(once.stderr, /Left .*mef\.fits for a later run: its FITS structure is incomplete/);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("SIGTERM in the middle of a large copy leaves no partial file under a final name; the next start finishes it", async () => {
  const box = await cliSandbox({ verify_transfer: "checksum" });
  try {
    const big = join(box.watch, "big.fits");
    const chunk = randomBytes(1024 * 1024);
    {
      using file = await Deno.open(big, { write: true, create: true });
      for (let i = 0; i < 300; i++) await file.write(chunk);
    }
    await Deno.utime(big, noon, noon);
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    let status: Deno.CommandStatus;
    try {
      // Wait until the temporary file exists, i.e. the copy is under way.
      await waitFor(
        async () => (await listFiles(box.dest).catch(() => [])).length > 0,
        30_000,
      );
    } finally {
      status = await daemon.stop("SIGTERM");
    }
    assert.equal(status.code, 0, daemon.stderr());
    const left = await listFiles(box.dest);
    // Either the copy finished before the signal (then it is whole) or only its temporary copy
    // is left, kept to be continued (resume_partial_hours).
    for (const rel of left) {
      if (rel.includes("image-transfer-partial")) continue;
      assert.equal(
        (await Deno.stat(join(box.dest, rel))).size,
        300 * 1024 * 1024,
      );
    }
    const again = await runCli(["run", "--once", "-c", box.config], {
      env: box.env,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await listFiles(box.dest), ["20240502/big.fits"]);
    const arrived = await Deno.readFile(join(box.dest, "20240502/big.fits"));
    assert.equal(arrived.length, 300 * 1024 * 1024);
    assert.deepEqual(arrived.subarray(299 * 1024 * 1024), chunk);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("a second daemon on the same state_dir refuses to start", async () => {
  const box = await cliSandbox();
  try {
    const first = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await first.waitForOutput("Watching");
      const second = await runCli(["run", "--once", "-c", box.config], {
        env: box.env,
      });
      assert.equal(second.code, 3, second.stderr);
      assert.match(
        second.stderr,
        /another image-transfer daemon is already running/,
      );
      assert.doesNotMatch(second.stderr, /\n\s+at /, "no stack trace");
    } finally {
      await first.stop();
    }
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("log_format: json writes one JSON object per line", async () => {
  const box = await cliSandbox({ log_format: "json" });
  try {
    await Deno.writeFile(join(box.watch, "j.fits"), randomBytes(10));
    const run = await runCli(["run", "--once", "-c", box.config], {
      env: box.env,
    });
    assert.equal(run.code, 0, run.stderr);
    const lines = (await Deno.readTextFile(join(box.root, "logs", "it.log")))
      .trim().split("\n");
    const records = lines.map((line) => JSON.parse(line));
    const sent = records.find((r) => r.message.startsWith("Successfully transferred"));
    assert.ok(sent, lines.join("\n"));
    assert.equal(sent.source, join(box.watch, "j.fits"));
    assert.equal(sent.level, "info");
    assert.equal(sent.job, "default");
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});

Deno.test("run, run --dry-run and run with a log_file that is a folder refuse what validate refuses, every problem at once", async () => {
  const box = await cliSandbox();
  try {
    // Two problems: a log_file that is a folder, and an archive inside the watch folder.
    await writeConfig(box.config, {
      watch_path: box.watch,
      remote_base_path: box.dest,
      transfer_method: "local",
      state_dir: join(box.root, "state"),
      log_file: box.root,
      after_transfer: "move",
      archive_path: join(box.watch, "done"),
    });
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(100));
    for (const args of [["run", "--dry-run"], ["run", "--once"]]) {
      const run = await runCli([...args, "-c", box.config], { env: box.env });
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /config\.yaml:\d+: log_file: .* is a folder/);
      assert.match(
        run.stderr,
        /config\.yaml:\d+: archive_path of job default: .* must not contain/,
      );
      assert.doesNotMatch(run.stdout, /would transfer/);
      assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
    }
    assert.deepEqual(await listFiles(box.watch), ["a.fits"], "nothing moved");
    await assert.rejects(Deno.stat(box.dest), Deno.errors.NotFound);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
});
