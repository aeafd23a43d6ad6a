/**
 * A job a reload removed from the config is not the daemon's any more: `status` (text and
 * `--json`) shows only the jobs the daemon runs, as its status page does. A real `local` daemon
 * with two jobs, a file sent by each, then one job removed and the daemon reloaded (SIGHUP).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import {
  LEAST_CEILING_MS,
  listFiles,
  randomBytes,
  sha256Of,
  sha256OfFile,
  waitFor,
} from "../../helpers/files.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

interface Recent {
  job: string;
  relPath: string;
}

Deno.test("status: after a reload removed a job, status (text and --json) and the page's API list only the jobs the daemon runs", async () => {
  const south = await Deno.makeTempDir({ prefix: "itx-south-" });
  try {
    await Deno.mkdir(join(south, "watch"));
    const jobs = [
      { name: "north" },
      { name: "south", watch_path: join(south, "watch"), remote_base_path: join(south, "dest") },
    ];
    await using d = await startStatusDaemon({ rescan_interval_seconds: 0, jobs });
    const env = { HOME: join(d.root, "home") };
    const night = new Date("2024-03-15T22:00:00Z");
    const sent = { north: randomBytes(3000), south: randomBytes(4000) };
    for (const [folder, name] of [[d.watch, "north"], [join(south, "watch"), "south"]] as const) {
      const path = join(folder, `${name}.fits`);
      await Deno.writeFile(path, sent[name]);
      await Deno.utime(path, night, night);
    }
    const arrived = { north: join(d.dest, "20240315/north.fits") };
    const southCopy = join(south, "dest", "20240315/south.fits");
    await waitFor(
      async () =>
        (await sha256OfFile(arrived.north).catch(() => "")) === sha256Of(sent.north) &&
        (await sha256OfFile(southCopy).catch(() => "")) === sha256Of(sent.south),
      LEAST_CEILING_MS,
      "both files to arrive",
    );
    const status = async () => {
      const text = await runCli(["status", "-c", d.config], { env });
      assert.equal(text.code, 0, text.stderr);
      const json = await runCli(["status", "--json", "-c", d.config], { env });
      assert.equal(json.code, 0, json.stderr);
      return {
        text: text.stdout,
        json: JSON.parse(json.stdout) as {
          recent: Recent[];
          counts: Array<{ job: string }>;
          live: { jobs: Array<{ job: string }> };
        },
      };
    };
    const before = await status();
    assert.match(before.text, /\[south\] south\.fits -> 20240315\/south\.fits/, before.text);
    assert.deepEqual(before.json.recent.map((r) => r.job).sort(), ["north", "south"]);

    // South removed from the config, and the daemon reloaded.
    const config = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(
      d.config,
      config.replace(/^jobs: .*$/m, `jobs: ${JSON.stringify([{ name: "north" }])}`),
    );
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reloaded .*: 1 job\(s\)/);

    const api = await getJson<{ jobs: Array<{ job: string }>; recent: Recent[] }>(
      d.base,
      "/api/status",
    );
    assert.deepEqual(api.jobs.map((j) => j.job), ["north"]);
    assert.deepEqual(api.recent.map((r) => `${r.job} ${r.relPath}`), ["north north.fits"]);
    const after = await status();
    assert.doesNotMatch(after.text, /south/, after.text);
    assert.match(after.text, /\[north\] north\.fits -> 20240315\/north\.fits/, after.text);
    assert.deepEqual(after.json.live.jobs.map((j) => j.job), ["north"]);
    assert.deepEqual(after.json.recent.map((r) => `${r.job} ${r.relPath}`), ["north north.fits"]);
    assert.deepEqual([...new Set(after.json.counts.map((c) => c.job))], ["north"]);
  } finally {
    await Deno.remove(south, { recursive: true });
  }
});

Deno.test("status: a job a reload removed while its file was on the way counts that file as interrupted, not transferring", async () => {
  const south = await Deno.makeTempDir({ prefix: "itx-south-" });
  try {
    await Deno.mkdir(join(south, "watch"));
    const slow = {
      name: "south",
      watch_path: join(south, "watch"),
      remote_base_path: join(south, "dest"),
      bandwidth_limit: "1MB/s",
    };
    await using d = await startStatusDaemon({
      rescan_interval_seconds: 0,
      jobs: [{ name: "north" }, slow],
    });
    const env = { HOME: join(d.root, "home") };
    await Deno.writeFile(join(south, "watch", "big.fits"), randomBytes(8_000_000));
    await waitFor(
      async () =>
        (await listFiles(join(south, "dest")).catch(() => [])).some((path) =>
          path.endsWith("image-transfer-partial")
        ),
      LEAST_CEILING_MS,
      "the copy under way",
    );
    // South removed from the config while its copy is on the way, and the daemon reloaded.
    const both = await Deno.readTextFile(d.config);
    await Deno.writeTextFile(
      d.config,
      both.replace(/^jobs: .*$/m, `jobs: ${JSON.stringify([{ name: "north" }])}`),
    );
    d.daemon.process.kill("SIGHUP");
    await d.daemon.waitForOutput(/Reload: job south removed/);
    // The config names it again, not reloaded yet: nothing of it is being sent.
    await Deno.writeTextFile(d.config, both);
    const text = await runCli(["status", "-c", d.config], { env });
    assert.equal(text.code, 0, text.stderr);
    // Before: "transferring 1", while the daemon sends nothing of it.
    assert.match(
      text.stdout,
      /^Job south: pending 0, interrupted 1, done 0, failed 0; not run by the daemon/m,
      text.stdout,
    );
  } finally {
    await Deno.remove(south, { recursive: true });
  }
});
