/**
 * End to end through the real CLI (`deno run` with the project's permission
 * set), `local` method: a burst of nested files plus one written slowly, a
 * clean stop, and a restart that sends only what is new or changed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { setImmutable } from "../../helpers/immutable.ts";
import {
  assertCopiesIntact,
  listArrived,
  listFiles,
  randomBytes,
  waitFor,
  writeConfig,
} from "../../helpers/files.ts";

const FILES = 200;

Deno.test("daemon (local): burst + slow writer arrive complete in night folders; restart resends nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-e2e-local-" });
  try {
    const watch = join(root, "watch");
    const dest = join(root, "dest");
    const home = join(root, "home");
    await Deno.mkdir(watch);
    await Deno.mkdir(home);
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: watch,
      remote_base_path: dest,
      transfer_method: "local",
      verify_transfer: "checksum",
      // Far longer than the slow writer's pauses (300 ms), which a busy machine may stretch.
      stability_window_seconds: 5,
      night_rollover_hour: 12,
      night_timezone: "UTC",
      state_dir: join(root, "state"),
      log_file: join(root, "logs", "image_transfer.log"),
      max_concurrent_transfers: 4,
    });
    const env = { HOME: home };

    // Expected destination (relative) -> bytes.
    const expected = new Map<string, Uint8Array>();
    const evening = new Date("2024-03-15T20:00:00Z"); // 20240315
    const morning = new Date("2024-03-16T03:00:00Z"); // before 12:00 rollover -> 20240315
    const afternoon = new Date("2024-03-16T13:00:00Z"); // 20240316

    const daemon = startCli(["run", "-c", config], { env });
    let slowDone = false;
    let slowSeenEarly = false;
    try {
      await daemon.waitForOutput("Watching");

      // A file written slowly over ~4 s, in pieces.
      const slowPath = join(watch, "slow", "slow exposure.fits");
      await Deno.mkdir(join(watch, "slow"));
      const slowBytes = randomBytes(14 * 64 * 1024);
      const slowWriter = (async () => {
        using file = await Deno.open(slowPath, { write: true, create: true });
        for (let i = 0; i < 14; i++) {
          await file.write(slowBytes.subarray(i * 65536, (i + 1) * 65536));
          await new Promise((r) => setTimeout(r, 300));
        }
        slowDone = true;
      })();
      const slowWatcher = (async () => {
        while (!slowDone) {
          const info = await Deno.stat(join(dest, "20240315", "slow", "slow exposure.fits"))
            .catch(() => null);
          const today = await listFiles(dest).catch(() => []);
          if (info || today.some((p) => p.endsWith("slow exposure.fits"))) slowSeenEarly = true;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();

      // The burst: nested folders, three night dates.
      for (let i = 0; i < FILES; i++) {
        const sub = `night/${i % 5}/${i % 3 === 0 ? "flats/" : ""}`;
        const name = `img ${String(i).padStart(4, "0")}.fits`;
        const bytes = randomBytes(1000 + i * 37);
        await Deno.mkdir(join(watch, sub), { recursive: true });
        await Deno.writeFile(join(watch, sub, name), bytes);
        const when = [evening, morning, afternoon][i % 3];
        await Deno.utime(join(watch, sub, name), when, when);
        const night = i % 3 === 2 ? "20240316" : "20240315";
        expected.set(`${night}/${sub}${name}`, bytes);
      }
      await slowWriter;
      await slowWatcher;
      await Deno.utime(slowPath, evening, evening);
      expected.set("20240315/slow/slow exposure.fits", slowBytes);

      // Arrived under their final names: a copy on its way (a hidden temporary file) is not one.
      await waitFor(
        async () => (await listArrived(dest).catch(() => [])).length >= expected.size,
        60_000,
      );
      // Give a straggler (a duplicate or a temp file) the chance to show up.
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      const status = await daemon.stop("SIGTERM");
      assert.equal(status.code, 0, `daemon exit code\n${daemon.stderr()}`);
    }

    assert.equal(
      slowSeenEarly,
      false,
      "the slow file appeared at the destination before it was complete",
    );
    const arrived = await listFiles(dest);
    assert.deepEqual(
      arrived.sort(),
      [...expected.keys()].sort(),
      "destination holds exactly the sent files",
    );
    for (const [rel, bytes] of expected) {
      assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, `bytes of ${rel}`);
    }
    const firstLog = daemon.stderr();
    const sentFirst = firstLog.match(/Successfully transferred /g)?.length ?? 0;
    assert.equal(sentFirst, expected.size, "each file sent exactly once");

    // While stopped: one new file, one changed file.
    const added = randomBytes(5000);
    await Deno.writeFile(join(watch, "night", "added while down.fits"), added);
    await Deno.utime(join(watch, "night", "added while down.fits"), evening, evening);
    const changedRel = "night/0/flats/img 0000.fits";
    const changed = randomBytes(7777);
    await Deno.writeFile(join(watch, changedRel), changed);
    await Deno.utime(join(watch, changedRel), evening, evening);

    const second = startCli(["run", "-c", config], { env });
    try {
      await second.waitForOutput(/Successfully transferred .*added while down\.fits/);
      await second.waitForOutput(/Successfully transferred .*img 0000\.fits/);
      await new Promise((r) => setTimeout(r, 1500));
    } finally {
      const status = await second.stop("SIGINT");
      assert.equal(status.code, 0, `second daemon exit code\n${second.stderr()}`);
    }
    const sentSecond = second.stderr().match(/Successfully transferred /g)?.length ?? 0;
    assert.equal(sentSecond, 2, `only the new and the changed file are sent:\n${second.stderr()}`);
    assert.deepEqual(
      await Deno.readFile(join(dest, "20240315/night/added while down.fits")),
      added,
    );
    assert.deepEqual(await Deno.readFile(join(dest, "20240315", changedRel)), changed);

    // The log file got the old tool's greppable lines.
    const logText = await Deno.readTextFile(join(root, "logs", "image_transfer.log"));
    assert.equal(logText.match(/Successfully transferred /g)?.length, expected.size + 2);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("daemon (local): a file waiting for a retry replaced by a folder of its name: the folder's files go, the file's row does not stay pending", async () => {
  await using box = await cliSandbox({ retry_delay_seconds: 0.5, retry_max_delay_seconds: 2 });
  // The night folder is blocked by a file of its name: the first attempt fails.
  await Deno.mkdir(box.dest);
  const night = join(box.dest, "20240315");
  await Deno.writeTextFile(night, "not a folder");
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "rep.fits"), randomBytes(4096));
    await Deno.utime(join(box.watch, "rep.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    await waitFor(() => /WARN|ERROR/.test(daemon.stderr()), 30_000, "the failed attempt");
    await Deno.remove(join(box.watch, "rep.fits"));
    await Deno.mkdir(join(box.watch, "rep.fits"));
    const inner = randomBytes(3000);
    await Deno.writeFile(join(box.watch, "rep.fits", "inner.fits"), inner);
    await Deno.utime(
      join(box.watch, "rep.fits", "inner.fits"),
      0,
      new Date("2024-03-15T21:00:00Z"),
    );
    await Deno.remove(night);
    await waitFor(
      async () => (await listFiles(box.dest)).some((f) => f.endsWith("rep.fits/inner.fits")),
      60_000,
      "the folder's file",
    );
    assert.deepEqual(await Deno.readFile(join(night, "rep.fits", "inner.fits")), inner);
    const status = async () =>
      JSON.parse((await runCli(["status", "--json", "-c", box.config], { env: box.env })).stdout);
    await waitFor(
      async () =>
        !(await status()).counts.some((c: { state: string; count: number }) =>
          c.state !== "done" && c.count > 0
        ),
      90_000,
      "no row left pending or failed",
    );
    // The removal may be seen before the folder is made (then the file is simply gone); the
    // wording of the other order is the intake's unit test.
    assert.match(
      daemon.stderr(),
      /Dropped .*rep\.fits: (a folder took its name|it is gone from the watch folder)/,
    );
    assert.deepEqual((await listFiles(box.dest)).filter((f) => !f.endsWith("inner.fits")), []);
  } finally {
    await daemon.stop();
  }
});

Deno.test("daemon (local): a source deleted while it is copied arrives whole from the open file, and the log does not say it went before it was complete", async () => {
  // Slow enough that the source is deleted while its copy is written.
  await using box = await cliSandbox({ bandwidth_limit: "2MiB/s" });
  const name = "gone $(id) 'while\" sent.fits";
  const data = randomBytes(6 * 1024 * 1024);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, name), data);
    await waitFor(
      async () =>
        (await listFiles(box.dest).catch(() => [])).some((path) =>
          path.endsWith("image-transfer-partial")
        ),
      60_000,
      "the copy under way",
    );
    await Deno.remove(join(box.watch, name));
    await daemon.waitForOutput(/Successfully transferred .*while" sent\.fits/);
    await daemon.waitForOutput(/Dropped .*while" sent\.fits: it is gone from the watch folder/);
    assert.doesNotMatch(daemon.stderr(), /before it was complete/);
    const arrived = await listFiles(box.dest);
    assert.equal(arrived.length, 1, arrived.join("\n"));
    assert.ok(arrived[0].endsWith(`/${name}`), arrived[0]);
    assert.deepEqual(await Deno.readFile(join(box.dest, arrived[0])), data);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, /done 1, failed 0/);
  } finally {
    await daemon.stop();
  }
});

Deno.test("daemon (local): a night folder removed while a burst is copied into it is said by its name, made again at the retry, and every file arrives intact", async () => {
  // Slow enough that the night folder goes while the copies of a batch are written into it.
  await using box = await cliSandbox({
    bandwidth_limit: "4MiB/s",
    retry_delay_seconds: 0.5,
    retry_max_delay_seconds: 2,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const files = new Map<string, Uint8Array>();
    for (let i = 0; i < 12; i++) {
      const name = `light '${i}' $(id).fits`;
      files.set(name, randomBytes(1024 * 1024));
      await Deno.writeFile(join(box.watch, name), files.get(name)!);
      await Deno.utime(join(box.watch, name), 0, new Date("2024-03-15T20:00:00Z"));
    }
    const night = join(box.dest, "20240315");
    await waitFor(
      async () =>
        (await listFiles(night).catch(() => [])).some((f) => f.endsWith("image-transfer-partial")),
      60_000,
      "a copy under way",
    );
    // The archive's clean-up takes the night folder away (moved, so what had arrived is known).
    const away = join(box.root, "night taken away");
    await Deno.rename(night, away);
    const arrived = async () => [
      ...await listArrived(away),
      ...(await listArrived(box.dest)).map((rel) => rel.slice(rel.indexOf("/") + 1)),
    ];
    await waitFor(
      async () => {
        const now = await arrived();
        return [...files.keys()].every((name) => now.includes(name));
      },
      90_000,
      "every file arrived",
    );
    await assertCopiesIntact(away, files);
    await assertCopiesIntact(box.dest, files);
    await waitFor(
      async () => (await listFiles(box.dest)).length === (await listArrived(box.dest)).length,
      30_000,
      "no temporary copy left",
    );
    // Before: "... ENOENT: no such file or directory, open '.../.light...image-transfer-partial'"
    // or "the temporary file .../.light...image-transfer-partial disappeared before the rename".
    const failures = daemon.stderr().split("\n").filter((line) => /Attempt \d+ of /.test(line));
    assert.ok(failures.length > 0, daemon.stderr());
    for (const line of failures) {
      assert.match(
        line,
        /: the destination folder \S+\/dest\/20240315 was removed while the batch was copied into it/,
      );
    }
    assert.doesNotMatch(daemon.stderr(), /image-transfer-partial|ENOENT|os error/);
  } finally {
    await daemon.stop();
  }
});

Deno.test("daemon (local): a night folder that cannot be written is said by its name with what to do, in the log and status; once writable the file arrives", async () => {
  await using box = await cliSandbox({ retry_delay_seconds: 0.5, retry_max_delay_seconds: 2 });
  const night = join(box.dest, "20240315");
  await Deno.mkdir(night, { recursive: true });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  // Immutable: root, which the tests run as, is refused too.
  await setImmutable(night, true);
  try {
    await daemon.waitForOutput("Watching");
    const data = randomBytes(5000);
    await Deno.writeFile(join(box.watch, "refused 'x'.fits"), data);
    await Deno.utime(join(box.watch, "refused 'x'.fits"), 0, new Date("2024-03-15T20:00:00Z"));
    // Before: "permission denied (EPERM: operation not permitted, open '.../.refused 'x'.fits.
    // ....image-transfer-partial')".
    const said = new RegExp(
      `nothing can be written in ${night} \\(operation not permitted\\); give the user the ` +
        "daemon runs as write permission there \\(or lift an immutable attribute: chattr -i\\)",
    );
    await daemon.waitForOutput(said);
    assert.doesNotMatch(daemon.stderr(), /image-transfer-partial|EPERM|os error/);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, said);
    await setImmutable(night, false);
    await daemon.waitForOutput(/Successfully transferred .*refused 'x'\.fits/);
    assert.deepEqual(await Deno.readFile(join(night, "refused 'x'.fits")), data);
  } finally {
    await setImmutable(night, false).catch(() => {});
    await daemon.stop();
  }
});

Deno.test("daemon (local): a copy removed by someone else while it is written is said by its final name, sent again, and arrives intact", async () => {
  // Slow enough that the copy is removed while it is written (a clean-up of hidden files, say).
  await using box = await cliSandbox({
    bandwidth_limit: "2MiB/s",
    retry_delay_seconds: 0.5,
    retry_max_delay_seconds: 2,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    const name = "light '1' $(id).fits";
    const files = new Map([[name, randomBytes(6 * 1024 * 1024)]]);
    await Deno.writeFile(join(box.watch, name), files.get(name)!);
    await Deno.utime(join(box.watch, name), 0, new Date("2024-03-15T20:00:00Z"));
    const night = join(box.dest, "20240315");
    let copy: string | undefined;
    await waitFor(
      async () => {
        const found = await listFiles(night).catch(() => []);
        copy = found.find((f) => f.endsWith("image-transfer-partial"));
        return copy !== undefined;
      },
      60_000,
      "a copy under way",
    );
    await Deno.remove(join(night, copy!));
    await waitFor(
      async () => (await listArrived(box.dest)).includes(`20240315/${name}`),
      60_000,
      "the file arrived",
    );
    await assertCopiesIntact(night, files);
    // Before: "... the temporary file .../.light '1' $(id).fits....image-transfer-partial
    // disappeared before the rename" (or the rename's own "ENOENT ... rename '...partial'").
    const failures = daemon.stderr().split("\n").filter((line) => /Attempt \d+ of /.test(line));
    assert.equal(failures.length, 1, daemon.stderr());
    assert.ok(
      failures[0].includes(
        `: the copy being written to ${join(night, name)} was removed by something else (not ` +
          "this daemon) before it was finished; the next attempt copies the file again",
      ),
      failures[0],
    );
    assert.doesNotMatch(daemon.stderr(), /image-transfer-partial|ENOENT|os error/);
  } finally {
    await daemon.stop();
  }
});
