/**
 * A watch folder removed while the daemon runs and made again, or mounted over: the log says it is
 * watched again (as it says when the folder first appears), and a file written into it then
 * arrives.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { withTmpfs } from "../../helpers/tmpfs.ts";

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

Deno.test("daemon: a disk of the same type mounted over the watch folder, and unmounted again, is said as such, and files written on either arrive", async () => {
  await using box = await cliSandbox({ status_listen: "" });
  await Deno.mkdir(box.dest);
  // The watch folder is a tmpfs of its own (a data disk); another tmpfs goes over it.
  await withTmpfs(box.watch, "8m", async () => {
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput(`Watching ${box.watch} for job default`);
      const arrives = async (name: string) => {
        const bytes = randomBytes(5000);
        await Deno.writeFile(join(box.watch, name), bytes);
        await waitFor(
          async () => (await listFiles(box.dest)).some((f) => f.endsWith(`/${name}`)),
          60_000,
          name,
        );
        const copy = (await listFiles(box.dest)).find((f) => f.endsWith(`/${name}`))!;
        assert.deepEqual(await Deno.readFile(join(box.dest, copy)), bytes);
      };
      const said = `Watch folder ${box.watch} is on another file system now (of the same type, ` +
        "tmpfs): something was mounted there, or unmounted; watching it again";
      await withTmpfs(box.watch, "8m", async () => {
        await daemon.waitForOutput(said);
        await arrives("on top.fits");
      });
      await waitFor(() => daemon.stderr().split(said).length === 3, 60_000, "the unmount said");
      await arrives("underneath.fits");
      assert.doesNotMatch(daemon.stderr(), /it was on/);
    } finally {
      await daemon.stop();
    }
  });
});
