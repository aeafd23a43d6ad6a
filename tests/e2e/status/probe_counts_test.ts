/**
 * What `/metrics` counts while a job's destination holds it. With no room, a file refused unsent
 * (the room measured is too small) is no failed attempt, so `image_transfer_failures_total` stays
 * at 0 however long the pause lasts, while `image_transfer_probes_total` counts the pause's
 * probes: a real daemon sends to a local folder whose disk never has the room `min_free_space`
 * keeps; its exposition passes `promtool check metrics`. With the host down (a real sshd
 * stopped), each probe tries one file, which is one failed attempt: no more.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runProgram, startCli } from "../../helpers/cli.ts";
import { existsSync, randomBytes, waitFor } from "../../helpers/files.ts";
import { freePort } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { startSshDaemon } from "../../helpers/sshd.ts";
import { getJson } from "../../helpers/status.ts";

/** The job's `image_transfer_*` samples (`name{labels after method}` → value). */
function series(text: string, method = "local"): Map<string, number> {
  const values = new Map<string, number>();
  const sample = new RegExp(
    `^(image_transfer_\\w+)\\{job="default",method="${method}"(.*)\\} (\\S+)$`,
  );
  for (const line of text.split("\n")) {
    const match = sample.exec(line);
    if (match) values.set(match[1] + match[2], Number(match[3]));
  }
  return values;
}

/** The failed attempts of every error class, added up. */
function failures(values: Map<string, number>): number {
  return ["retry", "retry-later", "fatal"]
    .reduce(
      (sum, kind) => sum + values.get(`image_transfer_failures_total,error_class="${kind}"`)!,
      0,
    );
}

Deno.test("metrics: files refused unsent for want of room are no failed attempts; the pause's probes are counted", async () => {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  // No disk here has 99.9 % of itself free: every file is refused before it is sent.
  await using box = await cliSandbox({
    min_free_space: "99.9%",
    status_listen: `127.0.0.1:${port}`,
  });
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await daemon.waitForOutput("Watching");
    await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(4000));
    const metrics = async () => await (await fetch(`${base}/metrics`)).text();
    const state = async () =>
      (await getJson<{ jobs: Array<{ state: string }> }>(base, "/api/status")).jobs[0].state;
    await waitFor(async () => await state() === "full", 60_000, "the job to pause as full");
    // The refusal that paused the job tried nothing.
    let values = series(await metrics());
    assert.equal(failures(values), 0, "a refusal before the file was sent is no failed attempt");
    // Two probes, each refused unsent: the first has ended when the second starts.
    await waitFor(
      async () => (series(await metrics()).get("image_transfer_probes_total") ?? 0) >= 2,
      120_000,
      "two probes",
    );
    const text = await metrics();
    values = series(text);
    assert.equal(failures(values), 0, "nor is a probe refused unsent");
    assert.equal(values.get("image_transfer_files_transferred_total"), 0);
    assert.equal(await state(), "full");
    const arrived = existsSync(box.dest) ? [...Deno.readDirSync(box.dest)] : [];
    assert.deepEqual(arrived.map((entry) => entry.name), [], "nothing was sent");
    const checked = await runProgram("promtool", ["check", "metrics"], { stdin: text });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
  } finally {
    await daemon.stop();
  }
});

Deno.test("metrics: while the host cannot be reached, each probe tries one file: one failed attempt each, no more", async () => {
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  await using running = await startSshDaemon("scp", `127.0.0.1:${port}`);
  const { sshd, box, daemon } = running;
  await daemon.waitForOutput("Watching");
  await sshd.halt();
  await Deno.writeFile(join(box.watch, "a.fits"), randomBytes(4000));
  const metrics = async () => series(await (await fetch(`${base}/metrics`)).text(), "scp");
  // The first probe comes after retry_delay_seconds, the second 15 s later.
  await waitFor(
    async () => ((await metrics()).get("image_transfer_probes_total") ?? 0) >= 2,
    120_000,
    "two probes",
  );
  const values = await metrics();
  const probes = values.get("image_transfer_probes_total")!;
  // The attempt that found the host down, then one per probe (the last may not have ended yet).
  const failed = failures(values);
  assert.ok(failed === probes || failed === probes + 1, `${failed} failures, ${probes} probes`);
  const [job] = (await getJson<{ jobs: Array<{ state: string }> }>(base, "/api/status")).jobs;
  assert.equal(job.state, "unreachable");
});
