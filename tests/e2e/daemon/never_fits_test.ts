/**
 * A file larger than the whole destination file system can never arrive there: it fails on its
 * own, said with its size and the file system's, and the job is not held as full for it; smaller
 * files arrive meanwhile. With a real 4 MiB tmpfs as the destination (local, scp, rsync).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { JobConfig } from "../../../src/config/types.ts";
import { Ledger } from "../../../src/ledger/ledger.ts";
import { FileRows } from "../../../src/ledger/file_rows.ts";
import { JobRunner } from "../../../src/pipeline/job_runner.ts";
import { createTransport } from "../../../src/transfer/transport.ts";
import { listArrived, randomBytes, waitFor } from "../../helpers/files.ts";
import { localTestJob } from "../../helpers/jobs.ts";
import { sshPipelineJob, startSshd } from "../../helpers/sshd.ts";
import { withTmpfsRun } from "../../helpers/tmpfs.ts";

const BIG = 6_000_000;
/** A failing file is tried again every half second: one that can never fit must not be. */
const RETRIES = { retry_attempts: 1, retry_delay_seconds: 0.1, retry_max_delay_seconds: 0.5 };

/** Run the scenario for `job`, whose `remote_base_path` is a 4 MiB tmpfs meanwhile. */
async function neverFits(job: JobConfig, owner: { uid?: number; gid?: number } = {}) {
  const dest = job.remote_base_path;
  await withTmpfsRun(dest, "4m", async ({ runtime, logs }) => {
    await Deno.mkdir(job.watch_path, { recursive: true });
    const ledger = Ledger.open(join(job.watch_path, "..", "state"));
    const runner = new JobRunner(job, ledger, createTransport(job, runtime), {
      once: false,
      closedForMs: 50,
      fullProbeMs: 400,
    });
    const state = (name: string) => FileRows.of(ledger, job).get(name)?.state;
    try {
      await runner.start();
      await Deno.writeFile(join(job.watch_path, "big.fits"), randomBytes(BIG));
      await waitFor(() => state("big.fits") === "failed", 30_000, "the big file to fail");
      const said = logs.records.filter((r) => r.level === "error")
        .map((r) => r.message.map(String).join(""))
        .filter((line) => /larger than the whole file system/.test(line)).join("\n");
      assert.match(said, /Failed to transfer .*big\.fits: it is 5\.7 MiB \(6000000 bytes\)/);
      assert.match(said, /\(4\.0 MiB, 4194304 bytes\), so it can never fit there/);
      assert.match(
        said,
        /this needs a fix first; it is tried again at the next rescan or start-up/,
      );
      const small = new Map<string, Uint8Array>();
      for (const name of ["a.fits", "b.fits", "c.fits"]) {
        small.set(name, randomBytes(100 * 1024));
        await Deno.writeFile(join(job.watch_path, name), small.get(name)!);
      }
      await waitFor(() => [...small.keys()].every((n) => state(n) === "done"), 30_000, "small");
      const arrived = await listArrived(dest);
      for (const [name, bytes] of small) {
        const rel = arrived.find((each) => each.endsWith(`/${name}`))!;
        assert.deepEqual(await Deno.readFile(join(dest, rel)), bytes, name);
      }
      assert.ok(!arrived.some((rel) => rel.endsWith("/big.fits")));
      // Not held for it (a pause the small files met while its copy's room was being freed ends).
      await waitFor(
        () => {
          const snapshot = runner.snapshot();
          return !snapshot.held && snapshot.state !== "full";
        },
        30_000,
        "the job not held as full",
      );
      assert.equal(state("big.fits"), "failed");
      // Not tried again every retry_max_delay_seconds: it would fill the disk at every try.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(logs.count("warning", "still failing"), 0);
      assert.equal(state("big.fits"), "failed");
    } finally {
      await runner.stop();
      ledger.close();
    }
  }, owner);
}

Deno.test("a file larger than the whole destination file system (local) fails on its own, the job not held as full", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-never-fits-" });
  try {
    await neverFits(
      localTestJob(root, { ...RETRIES, verify_transfer: "size" }),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

for (const method of ["scp", "rsync"] as const) {
  Deno.test(`a file larger than the whole destination file system (${method}) fails on its own, the job not held as full`, async () => {
    const sshd = await startSshd();
    const root = await Deno.makeTempDir({ prefix: `itx-never-fits-${method}-` });
    await Deno.chmod(root, 0o755);
    try {
      await neverFits(
        sshPipelineJob(sshd, method, root, {
          name: "never",
          remote_base_path: join(root, "dest"),
          ...RETRIES,
        }),
        { uid: sshd.uid, gid: sshd.gid },
      );
    } finally {
      await Deno.remove(root, { recursive: true });
      await sshd.stop();
    }
  });
}
