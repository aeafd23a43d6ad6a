/**
 * `deno task demo`, the README's first command: it sends three FITS files with `run --once`, and
 * says how to keep it watching; that command, pasted, is the daemon, which sends a file copied in.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT, startCli } from "../../helpers/cli.ts";
import { listArrived, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";

Deno.test("deno task demo says how to keep it watching, and that command sends a file copied in", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "itx-demo-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "--config", join(REPO_ROOT, "deno.json"), "demo"],
      cwd: REPO_ROOT,
      env: { TMPDIR: tmp },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr));
    const root = /^Demo folder: (\S+)$/m.exec(stdout)?.[1] ?? "";
    assert.ok(root.startsWith(tmp), stdout);
    const [config, camera, server] = ["config.yaml", "camera", "server"].map((p) => join(root, p));
    // Before: the demo ended after run --once, without a word of the daemon.
    assert.ok(
      stdout.includes(
        `Keep it watching (Ctrl-C stops): deno task image-transfer run -c ${config}\n` +
          `  and copy a FITS file into ${camera}: it arrives under ${server}\n`,
      ),
      stdout,
    );
    // The command as printed (`deno task image-transfer` is `main.ts` with the permission set),
    // kept off the default status port, which another daemon here may hold.
    await Deno.writeTextFile(config, `status_listen: "127.0.0.1:${freePort()}"\n`, {
      append: true,
    });
    const daemon = startCli(["run", "-c", config]);
    try {
      await daemon.waitForOutput(`Watching ${camera}`);
      const bytes = await Deno.readFile(join(camera, "m42 001.fits"));
      await Deno.writeFile(join(camera, "m42 003.fits"), bytes);
      const arrived = join(server, "20240315", "m42 003.fits");
      // Under its final name (a copy on its way is a hidden temporary file beside it).
      await waitFor(
        () => listArrived(server).then((files) => files.length === 4),
        undefined,
        arrived,
      );
      assert.deepEqual(await Deno.readFile(arrived), bytes);
    } finally {
      assert.equal((await daemon.stop()).code, 0, daemon.stderr());
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
