/**
 * A watch folder whose path is longer than the system takes (PATH_MAX) can never be read: the run
 * is refused at its start, saying so and what to do, not as a share gone or as permissions.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { removeDeepTree, treePastPathMax } from "../../helpers/files.ts";

Deno.test("cli: a watch folder whose path is past PATH_MAX is refused, said as a path too long for the system", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-long-watch-" });
  try {
    const watch = await treePastPathMax(root, "a.fits");
    const bytes = new TextEncoder().encode(watch).length;
    const out = await runCli(
      [
        "run",
        "--once",
        "--watch",
        watch,
        "--to",
        join(root, "dest"),
        "--set",
        "log_file=",
        "--set",
        "status_listen=",
      ],
      { env: { HOME: root, TZ: "UTC" } },
    );
    assert.equal(out.code, 4, out.stderr);
    assert.ok(
      out.stderr.includes(
        `(job default): its path is too long for the system (${bytes} bytes, where a path ` +
          "may have 4095 at most), so no file in it can be read: choose a folder with a " +
          "shorter path for watch_path",
      ),
      out.stderr,
    );
    assert.doesNotMatch(out.stderr, /os error|File name too long|share|permission/);
  } finally {
    await removeDeepTree(root);
  }
});
