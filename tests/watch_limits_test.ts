/** The inotify limits against a watch tree, and `doctor`'s line about them. */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkWatchLimits,
  countFolders,
  INOTIFY_LIMITS_COMMAND,
  parseInotifyLimits,
} from "../src/watch/watch_limits.ts";
import { runCli } from "./helpers/cli.ts";
import { writeConfig } from "./helpers/files.ts";

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

    const fine = checkWatchLimits(join(root, "watch"), {
      maxUserWatches: 524_288,
      maxQueuedEvents: 16_384,
    });
    assert.deepEqual(fine, {
      ok: true,
      detail: "6 folder(s) to watch; fs.inotify.max_user_watches 524288, max_queued_events 16384",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("doctor prints the watch limits of a local job", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-limits-doctor-" });
  try {
    await Deno.mkdir(join(root, "watch", "night"), { recursive: true });
    const config = join(root, "config.yaml");
    await writeConfig(config, {
      watch_path: join(root, "watch"),
      remote_base_path: join(root, "dest"),
      transfer_method: "local",
      state_dir: join(root, "state"),
      log_file: "",
    });
    const result = await runCli(["doctor", "-c", config], { env: { HOME: root } });
    const limits = machineLimits();
    const verdict = checkWatchLimits(join(root, "watch"), limits).ok ? "ok  " : "WARN";
    assert.match(
      result.stdout,
      new RegExp(
        `  ${verdict}  watch limits: .*max_user_watches ${limits.maxUserWatches}|` +
          `  ${verdict}  watch limits: .*max_user_watches is ${limits.maxUserWatches}`,
      ),
      result.stdout,
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
