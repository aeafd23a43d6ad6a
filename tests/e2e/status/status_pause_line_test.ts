/**
 * `status` says why a job is paused on its ledger line; the reason names a file, and a file
 * name with a line break must not break that line. A real daemon sends with scp to a real sshd
 * that is stopped before the file is written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

Deno.test("status: a job paused for a destination that cannot be reached is one line, whatever the file's name", async () => {
  const sshd = await startSshd();
  const box = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.3,
    retry_delay_seconds: 0.2,
    rescan_interval_seconds: 0,
    status_listen: "",
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await sshd.halt();
    await Deno.writeFile(join(box.watch, "two\nlines.fits"), randomBytes(3000));
    let stdout = "";
    await waitFor(
      async () => {
        const out = await runCli(["status", "-c", box.config], { env: box.env });
        assert.equal(out.code, 0, out.stderr);
        stdout = out.stdout;
        return /paused: destination unreachable/.test(stdout);
      },
      LEAST_CEILING_MS,
      "status to say the job is paused",
    );
    const line = stdout.split("\n").find((text) => text.includes("paused: destination"))!;
    assert.match(
      line,
      /^Job default: .*; paused: destination unreachable since .*two\\nlines\.fits/,
    );
    assert.ok(
      !stdout.split("\n").some((text) => text.startsWith("lines.fits")),
      `no line begins inside the file's name:\n${stdout}`,
    );
  } finally {
    await daemon.stop();
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
  }
});
