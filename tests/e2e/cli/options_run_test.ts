/**
 * A run without a config file (`run --watch DIR --to DEST --set KEY=VALUE`) as a run with one: its
 * exit before the start is logged.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { withTempDir } from "../../helpers/files.ts";

Deno.test("a run without a config file that exits before it starts logs why (FATAL) to the log file its --set names, or the default one", async () => {
  await withTempDir(async (dir) => {
    const home = join(dir, "home");
    await Deno.mkdir(home);
    const env = { HOME: home, XDG_STATE_HOME: "" };
    const out = join(dir, "out");
    const missing = await runCli(
      ["run", "--once", "--watch", join(dir, "nonexistent"), "--to", out],
      { env },
    );
    assert.equal(missing.code, 4, missing.stderr);
    const usual = join(home, "logs", "image_transfer.log");
    assert.match(
      await Deno.readTextFile(usual),
      /FATAL +\[exit\] Exiting with code 4: Cannot watch \S+nonexistent \(--watch /,
    );

    await Deno.mkdir(join(dir, "watch"));
    const ignored = await runCli([
      "run",
      ...["--watch", join(dir, "watch"), "--to", out],
      ...["--set", 'ssh_options=["RemoteCommand=ls"]'],
    ], { env });
    assert.equal(ignored.code, 2, ignored.stderr);
    assert.match(
      await Deno.readTextFile(usual),
      /FATAL +\[exit\] Exiting with code 2: --set ssh_options=\u2026 would be ignored/,
    );

    // The log file --set names, in its format.
    const named = join(dir, "named.log");
    const json = await runCli([
      "run",
      ...["--once", "--watch", join(dir, "nonexistent"), "--to", out],
      ...["--set", `log_file=${named}`, "--set", "log_format=json"],
    ], { env });
    assert.equal(json.code, 4, json.stderr);
    const line = JSON.parse((await Deno.readTextFile(named)).trim());
    assert.equal(line.level, "fatal");
    assert.equal(line.exitCode, 4);

    // A file that is no log of this program is not appended to (the run refuses it too).
    const foreign = join(dir, "notes.txt");
    await Deno.writeTextFile(foreign, "my notes\n");
    const refused = await runCli([
      "run",
      ...["--once", "--watch", join(dir, "nonexistent"), "--to", out],
      ...["--set", `log_file=${foreign}`],
    ], { env });
    assert.notEqual(refused.code, 0);
    assert.equal(await Deno.readTextFile(foreign), "my notes\n");
  });
});
