/**
 * A reload that changes a job while its destination cannot be reached: the rebuilt job goes on
 * with the outage (its pause, since when, its failed probes), so it neither tries every waiting
 * file at once nor says the outage again. A real daemon sends with scp to a real sshd, stopped
 * for the outage and started again at the end; every file then arrives, byte for byte.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { reloadDaemon, startCli } from "../../helpers/cli.ts";
import { LEAST_CEILING_MS, randomBytes, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { metricTotal, waitPaused } from "../../helpers/status.ts";

const FILES = ["a.fits", "b.fits", "c.fits", "d.fits", "e.fits", "f.fits"];
const NIGHT = "20240315";
const NIGHT_TIME = new Date("2024-03-15T20:00:00Z");

Deno.test("a reload that changes a job during an outage: the pause, its since and its probes go on; the outage is said once", async () => {
  const sshd = await startSshd();
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  const box = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.3,
    night_date_source: "mtime",
    retry_delay_seconds: 3,
    rescan_interval_seconds: 0,
    status_listen: `127.0.0.1:${port}`,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await sshd.halt();
    const sent = new Map<string, Uint8Array>();
    for (const name of FILES) {
      sent.set(name, randomBytes(3000));
      await Deno.writeFile(join(box.watch, name), sent.get(name)!);
      await Deno.utime(join(box.watch, name), NIGHT_TIME, NIGHT_TIME);
    }
    // Paused, and its first probe failed (said once, under a minute into the outage).
    const pause = await waitPaused(box.config, box.env, "destination unreachable");
    await daemon.waitForOutput("(1 probe(s) failed)");
    assert.match(daemon.stderr(), /still cannot be reached, for under a minute \(1 probe/);
    const before = await metricTotal(base, "image_transfer_failures_total");

    const text = await Deno.readTextFile(box.config);
    await Deno.writeTextFile(
      box.config,
      text.replace("retry_delay_seconds: 3", "retry_delay_seconds: 4"),
    );
    await reloadDaemon(daemon, 1);
    await daemon.waitForOutput("retry_delay_seconds 3 -> 4");
    const logAtReload = daemon.stderr().length;
    // The next failed attempt is the rebuilt job's first probe: one file, not every waiting one.
    let after = before;
    await waitFor(
      async () => (after = await metricTotal(base, "image_transfer_failures_total")) !== before,
      LEAST_CEILING_MS,
      "the next probe after the reload",
    );
    assert.equal(after - before, 1, "one file tried after the reload, as one probe");
    const still = await waitPaused(box.config, box.env, "destination unreachable");
    assert.equal(still.since, pause.since, "the pause began before the reload");
    const log = daemon.stderr();
    assert.equal(log.split(" cannot be reached: ").length - 1, 1, `the outage said once:\n${log}`);
    assert.doesNotMatch(log.slice(logAtReload), /\(1 probe\(s\) failed\)/);

    await sshd.restart();
    for (const [name, bytes] of sent) {
      const copy = join(box.remote, NIGHT, name);
      await waitFor(
        async () => {
          try {
            return (await Deno.readFile(copy)).length === bytes.length;
          } catch {
            return false;
          }
        },
        LEAST_CEILING_MS,
        `${name} at the destination`,
      );
      assert.deepEqual(await Deno.readFile(copy), bytes);
    }
    // The last batch's upload folder goes as that batch ends, a moment after its copies arrived.
    const left = () => [...Deno.readDirSync(join(box.remote, NIGHT))].map((e) => e.name).sort();
    await waitFor(() => left().length === FILES.length, LEAST_CEILING_MS, "the upload folder gone");
    assert.deepEqual(left(), [...FILES].sort(), "no temporary name left");
  } finally {
    await daemon.stop();
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true }).catch(() => {});
  }
});
