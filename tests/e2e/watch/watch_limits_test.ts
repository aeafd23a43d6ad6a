/** The inotify limits against a watch tree, and `doctor`'s line about them. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkWatchLimits,
  countFolders,
  INOTIFY_LIMITS_COMMAND,
  parseInotifyLimits,
} from "../../../src/cli/doctor.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

/** The limits of this machine, read independently of the product. */
function machineLimits() {
  const read = (name: string) =>
    Number(Deno.readTextFileSync(`/proc/sys/fs/inotify/${name}`).trim());
  return { maxUserWatches: read("max_user_watches"), maxQueuedEvents: read("max_queued_events") };
}

Deno.test("watch limits: parsed from sysctl, folders counted (hidden ones too), low limits warned", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-limits-" });
  try {
    for (const rel of ["a/b/c", "a/.hidden", "d"]) {
      await Deno.mkdir(join(root, "watch", rel), { recursive: true });
    }
    await Deno.writeTextFile(join(root, "watch", "a", "file.fits"), "x");
    assert.equal(countFolders(join(root, "watch")), 6, "watch, a, a/b, a/b/c, a/.hidden, d");

    assert.deepEqual(parseInotifyLimits("8200\n1024\n"), {
      maxUserWatches: 8200,
      maxQueuedEvents: 1024,
    });
    assert.equal(parseInotifyLimits("sysctl: cannot stat /proc/sys/fs/inotify\n"), null);
    const out = await new Deno.Command(INOTIFY_LIMITS_COMMAND[0], {
      args: INOTIFY_LIMITS_COMMAND.slice(1),
    }).output();
    assert.deepEqual(parseInotifyLimits(new TextDecoder().decode(out.stdout)), machineLimits());
    const low = { maxUserWatches: 8200, maxQueuedEvents: 1024 };
    const judged = checkWatchLimits(join(root, "watch"), low);
    assert.equal(judged.ok, false);
    assert.match(judged.detail, /max_user_watches is 8200 for 6 folder\(s\).*at least 8204/);
    assert.match(judged.detail, /max_queued_events is 1024, below the kernel default 16384/);

    // A user namespace (a container) may allow fewer watches than the system: the lower counts.
    const contained = checkWatchLimits(join(root, "watch"), {
      maxUserWatches: 524_288,
      maxQueuedEvents: 16_384,
      namespaceWatches: 100,
    });
    assert.equal(contained.ok, false);
    assert.match(contained.detail, /^user\.max_inotify_watches is 100 for 6 folder\(s\)/);

    const fine = checkWatchLimits(join(root, "watch"), {
      maxUserWatches: 524_288,
      maxQueuedEvents: 16_384,
    });
    assert.deepEqual(fine, {
      ok: true,
      detail:
        "6 folder(s) to watch; fs.inotify.max_user_watches 524288, fs.inotify.max_queued_events 16384",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("doctor prints the watch limits of a local job", async () => {
  await using box = await cliSandbox({ log_file: "" });
  await Deno.mkdir(join(box.watch, "night"));
  const result = await runCli(["doctor", "-c", box.config], { env: box.env });
  const limits = machineLimits();
  const verdict = checkWatchLimits(box.watch, limits).ok ? "ok  " : "WARN";
  assert.match(
    result.stdout,
    new RegExp(
      `  ${verdict}  watch limits: .*max_user_watches ${limits.maxUserWatches}|` +
        `  ${verdict}  watch limits: .*max_user_watches is ${limits.maxUserWatches}`,
    ),
    result.stdout,
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
});

/** The sources' mtime: night folder 20240315 (UTC). */
const NIGHT_MTIME = new Date("2024-03-15T12:00:00Z");

Deno.test("too few inotify watches for the tree: doctor warns, run says so at ERROR, delivers by rescans and watches again once the tree fits", async () => {
  await using box = await cliSandbox({ stability_window_seconds: 1, log_file: "" });
  const { watch, dest, config } = box;
  for (let i = 0; i < 20; i++) await Deno.mkdir(join(watch, `${i}`), { recursive: true });
  const early = randomBytes(3000);
  await Deno.writeFile(join(watch, "0", "early.fits"), early);
  await Deno.utime(join(watch, "0", "early.fits"), NIGHT_MTIME, NIGHT_MTIME);
  // 21 folders, and a user namespace that allows 12 watches (the machine's limit stays).
  const options = { env: { ...box.env, TZ: "UTC" }, inotifyWatches: 12 };

  const doctor = await runCli(["doctor", "-c", config], options);
  assert.match(
    doctor.stdout,
    / {2}WARN {2}watch limits: user\.max_inotify_watches is 12 for 21 folder\(s\) .*raise it/,
    doctor.stdout + doctor.stderr,
  );

  const daemon = startCli(["run", "-c", config], options);
  try {
    await daemon.waitForOutput(
      /ERROR +\[watch\] Watching .* failed: .*; rescanning every minute instead/,
      30_000,
    );
    const arrived = (name: string) => {
      try {
        return Deno.readFileSync(join(dest, "20240315", ...name.split("/")));
      } catch {
        return null;
      }
    };
    // The start-up scan sends what is there.
    await waitFor(() => arrived("0/early.fits") !== null, 30_000, "early.fits to arrive");
    assert.deepEqual(arrived("0/early.fits"), early);
    // No watch: a later file is found by the next rescan, within a minute.
    const late = randomBytes(4000);
    await Deno.writeFile(join(watch, "19", "late.fits"), late);
    await Deno.utime(join(watch, "19", "late.fits"), NIGHT_MTIME, NIGHT_MTIME);
    await waitFor(() => arrived("19/late.fits") !== null, 90_000, "late.fits to arrive");
    assert.deepEqual(arrived("19/late.fits"), late);
    // Folders removed until the tree fits: the next fallback rescan watches it again.
    for (let i = 1; i < 19; i++) await Deno.remove(join(watch, `${i}`), { recursive: true });
    await daemon.waitForOutput(/Watching .* again; the rescans every minute stop/, 90_000);
    // Only the watcher can find this one now (the periodic rescan is an hour away).
    const after = randomBytes(5000);
    await Deno.writeFile(join(watch, "19", "after.fits"), after);
    await Deno.utime(join(watch, "19", "after.fits"), NIGHT_MTIME, NIGHT_MTIME);
    await waitFor(() => arrived("19/after.fits") !== null, 30_000, "after.fits to arrive");
    assert.deepEqual(arrived("19/after.fits"), after);
    const log = daemon.stderr();
    assert.equal(log.match(/Watching .* failed/g)?.length, 1, `said once: ${log}`);
  } finally {
    const status = await daemon.stop("SIGTERM");
    assert.equal(status.code, 0, daemon.stderr());
  }
});
