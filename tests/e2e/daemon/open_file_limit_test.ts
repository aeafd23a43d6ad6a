/**
 * A daemon under a low open-file limit (`prlimit --nofile`): running out of open files is this
 * machine's shortage, not a file's permissions; what failed for it is tried again soon and every
 * file arrives whole; the start refuses a limit it cannot work under and warns of a low one, and
 * `doctor` says it with what to do.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import {
  assertCopiesIntact,
  listArrived,
  waitFor,
  withTempDir,
  writeConfig,
  writeRandomFiles,
} from "../../helpers/files.ts";
import { sshSandbox, startSshd } from "../../helpers/sshd.ts";

/** 360 files in 6 folders, as the trial that found it had them. */
const RELS = Array.from(
  { length: 360 },
  (_, i) => `cam${i % 6}/a_${i % 6}_${String(i).padStart(5, "0")}.fits`,
);

/** Words of a failure that would wait for a fix: none may be said of a shortage. */
const NEEDS_A_FIX = /fix its permissions|needs a fix first|give the account the daemon runs as/;

for (const method of ["scp", "local"] as const) {
  Deno.test(`daemon (${method}) under 64 open files: every file arrives, none needs a fix`, async () => {
    const values = {
      stability_window_seconds: 0.3,
      retry_delay_seconds: 0.2,
      retry_max_delay_seconds: 2,
      max_concurrent_transfers: 8,
      rescan_interval_seconds: 0,
    };
    const sshd = method === "scp" ? await startSshd() : null;
    const box = sshd === null
      ? await localSandbox(await Deno.makeTempDir({ prefix: "itx-emfile-" }), values)
      : await sshSandbox(sshd, "scp", values);
    try {
      // Half waits at the start; the other half comes in new folders while those are sent, so
      // the watcher reads folders while the transfers hold the files.
      const before = RELS.filter((rel) => /^cam[012]\//.test(rel));
      const files = await writeRandomFiles(box.watch, before, 2_000);
      const daemon = startCli(["run", "-c", box.config], { env: box.env, openFiles: 64 });
      try {
        await daemon.waitForOutput("Watching");
        const later = RELS.filter((rel) => !before.includes(rel));
        for (const [rel, bytes] of await writeRandomFiles(box.watch, later, 2_000)) {
          files.set(rel, bytes);
        }
        await waitFor(
          async () => (await listArrived(box.remote).catch(() => [])).length >= RELS.length,
          600_000,
          `all ${RELS.length} files at the destination`,
        );
        // Every file whole under its name (hidden copies of attempts cut short are not looked at).
        await assertCopiesIntact(box.remote, files);
        assert.equal((await listArrived(box.remote)).length, RELS.length);
        const said = daemon.stderr();
        assert.match(said, /Low open-file limit: this process may open only 64 files/);
        assert.doesNotMatch(said, NEEDS_A_FIX);
        // Eight transfers side by side and ~50 held idle: the daemon ran out, and said it as that.
        const short = said.split("\n").filter((line) => /too many open files/i.test(line));
        assert.ok(short.length > 0, "no transfer ran out of open files: nothing was shown");
        for (const line of short) {
          assert.match(line, /ran out of open files .*raise the limit/, line);
        }
      } finally {
        await daemon.stop();
      }
    } finally {
      await Deno.remove(box.root, { recursive: true });
      await sshd?.stop();
    }
  });
}

Deno.test("run refuses an open-file limit it cannot work under, before anything starts", async () => {
  await withTempDir(async (root) => {
    const box = await localSandbox(root);
    const run = await runCli(["run", "-c", box.config], { openFiles: 40 });
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /error: Cannot start: this process may open only 40 files \(ulimit -n\)/,
    );
    assert.match(run.stderr, /LimitNOFILE=/);
    assert.doesNotMatch(run.stderr, /panicked|Starting/);
  });
});

Deno.test("doctor says a low open-file limit with what to do, and an ample one as ok", async () => {
  await withTempDir(async (root) => {
    const box = await localSandbox(root);
    const low = await runCli(["doctor", "-c", box.config], { openFiles: 128 });
    assert.match(
      low.stdout,
      /^WARN {2}open-file limit: this process may open only 128 files \(ulimit -n\), below the 256 .*"ulimit -n 256"/m,
    );
    const ample = await runCli(["doctor", "-c", box.config], { openFiles: 8192 });
    assert.match(ample.stdout, /^ok {4}open-file limit: 8192 \(ulimit -n; hard limit 8192\)$/m);
    assert.equal(ample.code, 0, ample.stdout + ample.stderr);
  });
});

/** A watch folder, a local destination and a config file below `root` (`values` win). */
async function localSandbox(root: string, values: Record<string, unknown> = {}) {
  const watch = join(root, "watch"), remote = join(root, "dest");
  await Deno.mkdir(watch);
  await Deno.mkdir(remote);
  const config = join(root, "config.yaml");
  await writeConfig(config, {
    watch_path: watch,
    transfer_method: "local",
    remote_base_path: remote,
    night_timezone: "UTC",
    state_dir: join(root, "state"),
    log_file: "",
    ...values,
  });
  return { root, watch, remote, config, env: {} };
}
