/**
 * Symbolic links to folders in the watch folder (real CLI, `local` method): each is logged once,
 * in the same words whether found at the start or made while the daemon runs, whatever its
 * target's form (relative or absolute). No name rule speaks of a link to a folder. (A link made
 * while running that leads out of the watch folder is found by the next scan: the runtime's
 * watcher tells nothing of it.)
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { listFiles, waitFor, writeConfig } from "../../helpers/files.ts";

/** The line a link to a folder gets, at the start or made later (symlinks: skip). */
function linkLine(path: string, target: string): string {
  return `Skipped ${path} of job default: symbolic link to the folder ${target}; linked folders are not entered`;
}

/** Whether `name` arrived in its night folder under `dest`. */
async function arrived(dest: string, name: string): Promise<boolean> {
  return (await listFiles(dest).catch(() => [])).some((file) => file.endsWith(`/${name}`));
}

Deno.test("daemon: a link to a folder made while it runs is logged once, as one found at the start, relative or absolute", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-linksrun-" });
  const watch = join(root, "watch");
  const dest = join(root, "dest");
  const outside = join(root, "else where $(x)");
  for (const dir of [watch, outside, join(watch, "data"), join(root, "home")]) {
    await Deno.mkdir(dir);
  }
  await Deno.writeTextFile(join(outside, "far.fits"), "FAR");
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    remote_base_path: dest,
    transfer_method: "local",
    stability_window_seconds: 1,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
  });
  // [name in the watch folder, target as stored in the link]
  const before: Array<[string, string]> = [
    ["pre rel", "../else where $(x)"],
    ["pre abs", outside],
  ];
  const during: Array<[string, string]> = [
    ["rel in; $(y)", "data"],
    ["abs in", join(watch, "data")],
  ];
  for (const [name, target] of before) await Deno.symlink(target, join(watch, name));
  const daemon = startCli(["run", "-c", config], { env: { HOME: join(root, "home") } });
  try {
    await daemon.waitForOutput("Watching");
    for (const [name, target] of before) {
      await daemon.waitForOutput(linkLine(join(watch, name), target));
    }
    // The start is over (its second scan too) once a file made after it has arrived.
    await Deno.writeTextFile(join(watch, "first.fits"), "FIRST");
    await waitFor(() => arrived(dest, "first.fits"), 30_000, "first.fits to arrive");
    for (const [name, target] of during) await Deno.symlink(target, join(watch, name));
    for (const [name, target] of during) {
      await daemon.waitForOutput(linkLine(join(watch, name), target));
    }
    // A file made after the links, sent: every event before it was handled by then.
    await Deno.writeTextFile(join(watch, "after.fits"), "AFTER");
    await waitFor(() => arrived(dest, "after.fits"), 30_000, "after.fits to arrive");
    const log = daemon.stderr();
    for (const [name] of [...before, ...during]) {
      const path = join(watch, name);
      const lines = log.split("\n").filter((line) => line.includes(`${path} of job default:`));
      assert.equal(lines.length, 1, `${name}: one line:\n${log}`);
      assert.match(lines[0], /INFO/);
    }
    assert.doesNotMatch(log, /matches none of/, log);
    // Nothing was read through the links.
    const sent = await listFiles(dest);
    assert.equal(sent.length, 2, sent.join(", "));
  } finally {
    await daemon.stop();
    await Deno.remove(root, { recursive: true });
  }
});
