/**
 * A watch folder removed while the daemon runs and made again: the log says it is watched again
 * (as it says when the folder first appears), and a file written into it then arrives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

Deno.test("daemon: a watch folder removed and made again is said watched again, and its new files arrive", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput(`Watching ${box.watch} for job default`);
    await Deno.remove(box.watch, { recursive: true });
    await daemon.waitForOutput(`Watch folder ${box.watch} was removed`);
    await Deno.mkdir(box.watch);
    await daemon.waitForOutput(`Watching ${box.watch} again`);
    await Deno.writeFile(join(box.watch, "back.fits"), randomBytes(5000));
    // Its night: the file's mtime, in the sandbox's night_timezone (UTC).
    const { mtime } = await Deno.stat(join(box.watch, "back.fits"));
    const night = mtime!.toISOString().slice(0, 10).replaceAll("-", "");
    const copy = join(box.dest, night, "back.fits");
    await waitFor(() => Deno.stat(copy).then(() => true, () => false), undefined, "the copy");
    assert.equal(await sha256OfFile(copy), await sha256OfFile(join(box.watch, "back.fits")));
  } finally {
    await daemon.stop();
  }
});
