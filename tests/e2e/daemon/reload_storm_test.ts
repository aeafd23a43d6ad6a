/**
 * A storm of reloads while files flow (a log rotation's HUPs, a user reloading again and again):
 * a real daemon with two jobs, one left as it was and one changed at every other reload, gets
 * SIGHUP after SIGHUP, without waiting for any reload to end, while files are written into both
 * watch folders. Every file arrives once, byte for byte, nothing is said failed or counted twice,
 * and the daemon stops cleanly.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startCli } from "../../helpers/cli.ts";
import {
  assertCopiesIntact,
  listArrived,
  listFiles,
  randomBytes,
  waitFor,
} from "../../helpers/files.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";

const FILES_PER_JOB = 60;
const RELOADS = 16;

Deno.test("a storm of SIGHUPs while files flow into two jobs (one changed, one not): every file arrives once, intact; nothing fails; a clean stop", async () => {
  await using box = await cliSandbox();
  const watch2 = join(box.root, "watch2");
  const dest2 = join(box.root, "dest2");
  await Deno.mkdir(watch2);
  /** The `nth` reload's config, saved as an editor does: the second job's retries change. */
  const rewrite = (nth: number) =>
    box.rewrite({
      jobs: [
        { name: "steady" },
        {
          name: "edited",
          watch_path: watch2,
          remote_base_path: dest2,
          retry_attempts: 5 + Math.floor(nth / 2) % 2,
        },
      ],
    }, true);
  await rewrite(0);
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  const sent = [new Map<string, Uint8Array>(), new Map<string, Uint8Array>()];
  try {
    await daemon.waitForOutput(`Watching ${watch2} for job edited`);
    await daemon.waitForOutput(`Watching ${box.watch} for job steady`);
    const writing = (async () => {
      for (let index = 0; index < FILES_PER_JOB; index++) {
        for (const [job, folder] of [box.watch, watch2].entries()) {
          const name = `frame ${String(index).padStart(3, "0")}.fits`;
          const bytes = randomBytes(65_536 + 512 * index);
          await Deno.writeFile(join(folder, name), bytes);
          sent[job].set(name, bytes);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    for (let nth = 1; nth <= RELOADS; nth++) {
      await rewrite(nth);
      daemon.process.kill("SIGHUP");
      await new Promise((resolve) => setTimeout(resolve, 30));
    }
    await writing;
    for (const [job, dest] of [box.dest, dest2].entries()) {
      await waitFor(
        async () => (await listArrived(dest).catch(() => [])).length >= FILES_PER_JOB,
        60_000,
        `${FILES_PER_JOB} files in ${dest}`,
      );
      // And no copy on its way, nor one kept from a copy a reload stopped, is left.
      await waitFor(
        async () => (await listFiles(dest)).length === FILES_PER_JOB,
        60_000,
        `only the ${FILES_PER_JOB} copies in ${dest}`,
      );
      // Each arrived once under its own name (nothing sent twice as `~2`), byte for byte, and
      // nothing else is left there (no temporary copy).
      const night = sent[job];
      const files = new Map([...night].map(([name, bytes]) => [name, bytes]));
      await assertCopiesIntact(dest, files, true);
    }
  } finally {
    assert.equal((await daemon.stop()).code, 0, daemon.stderr());
  }
  const log = await Deno.readTextFile(box.logFile);
  assert.match(log, /Reloaded .*: 2 job\(s\)/);
  const said = log.split("\n").filter((line) => / (ERROR|WARN) /.test(line));
  assert.deepEqual(said, [], "no warning or error in the log");
  assert.match(
    log,
    new RegExp(`Stopped: ${2 * FILES_PER_JOB} file\\(s\\) sent, 0 failed in this run`),
  );
});

Deno.test("SIGTERM right after a SIGHUP, while files are written and copied: a clean stop; after a restart every file arrives once, intact", async () => {
  await using box = await cliSandbox();
  await box.rewrite({ jobs: [{ name: "cam", max_concurrent_transfers: 2 }] });
  const files = new Map<string, Uint8Array>();
  const first = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await first.waitForOutput(`Watching ${box.watch} for job cam`);
    for (let index = 0; index < 40; index++) {
      const name = `light ${String(index).padStart(2, "0")}.fits`;
      files.set(name, randomBytes(262_144 + 1024 * index));
      await Deno.writeFile(join(box.watch, name), files.get(name)!);
    }
    // Some arrived, more are on their way: a changed config, its reload, and the stop at once.
    await waitFor(
      async () => (await listFiles(box.dest).catch(() => [])).length >= 5,
      60_000,
      "5 copies",
    );
    await box.rewrite({ jobs: [{ name: "cam", max_concurrent_transfers: 3 }] });
    first.process.kill("SIGHUP");
  } finally {
    assert.equal((await first.stop()).code, 0, first.stderr());
  }
  const second = startCli(["run", "-c", box.config], { env: box.env });
  try {
    await second.waitForOutput(`Watching ${box.watch} for job cam`);
    await waitFor(
      async () => (await listArrived(box.dest)).length >= files.size,
      60_000,
      `${files.size} copies`,
    );
  } finally {
    assert.equal((await second.stop()).code, 0, second.stderr());
  }
  // Each once under its own name, byte for byte, and no temporary copy left behind.
  await assertCopiesIntact(box.dest, files, true);
  const log = await Deno.readTextFile(box.logFile);
  const sent = [...log.matchAll(/Stopped: (\d+) file\(s\) sent, (\d+) failed in this run/g)];
  assert.equal(sent.length, 2, "both runs said what they sent");
  assert.equal(sent.reduce((sum, match) => sum + Number(match[1]), 0), files.size);
  assert.deepEqual(sent.map((match) => match[2]), ["0", "0"]);
});
