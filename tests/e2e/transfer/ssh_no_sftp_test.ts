/**
 * An SSH server without an SFTP subsystem (no `Subsystem sftp` line in its sshd_config) and
 * `transfer_method: scp`: OpenSSH 9's scp sends with SFTP, and through the shared connection says
 * only `Connection closed`. Logins and commands work (batches of small files go in one call and
 * arrive); `doctor` fails saying why, the scp transfers fail for good saying why, and the daemon
 * counts such a file failed (on_failure runs) rather than pausing the job as unreachable.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { createTransport } from "../../../src/transfer/transport.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, waitFor } from "../../helpers/files.ts";
import { methodJobsConfig, sshSandbox, startSshd } from "../../helpers/sshd.ts";
import { countingHook } from "../../helpers/sandbox.ts";
import { pausedJob } from "../../helpers/status.ts";
import { makeItem } from "../../helpers/transports.ts";

/** What doctor and the transfers say of the server (its host 127.0.0.1). */
const NO_SFTP =
  /the SSH server of 127\.0\.0\.1 offers no SFTP subsystem \(its sshd_config has no "Subsystem sftp" line\), which scp uses .*: add "Subsystem sftp internal-sftp" to its sshd_config and reload sshd, or use transfer_method: rsync/;

Deno.test("a server without an SFTP subsystem: doctor fails its sftp check saying what to add, and scp's upload fails for good saying so, not as a host down", async () => {
  const sshd = await startSshd({ sftpServer: null });
  const dir = await Deno.makeTempDir({ prefix: "itx-no-sftp-" });
  try {
    const dst = await sshd.makeRemoteDir();
    const config = join(dir, "config.yaml");
    await methodJobsConfig(config, sshd, dir, dst, ["scp", "rsync"]);
    const scp = await runCli(["doctor", "-c", config, "--job", "scp"]);
    assert.equal(scp.code, 1, scp.stderr + scp.stdout);
    assert.match(scp.stdout, /^ {2}ok {4}login: /m);
    const line = scp.stdout.split("\n").find((l) => l.startsWith("  FAIL  sftp: "));
    assert.ok(line !== undefined, scp.stdout);
    assert.match(line, NO_SFTP);
    // rsync needs no SFTP: not asked.
    const rsync = await runCli(["doctor", "-c", config, "--job", "rsync"]);
    assert.equal(rsync.code, 0, rsync.stderr + rsync.stdout);
    assert.doesNotMatch(rsync.stdout, /^ {2}\S+ +sftp:/m);

    const runtime = await Deno.makeTempDir({ prefix: "itx-rt-" });
    const transport = createTransport(
      sshd.job({ transfer_method: "scp", remote_base_path: `${dst}/scp` }),
      runtime,
    );
    try {
      // Over the size a batch sent in one call may have: it goes by scp.
      const item = await makeItem(
        join(dir, "src"),
        "20240501/big 'a' $x.fits",
        randomBytes(9 << 20),
      );
      const error = (await transport.send([item], new AbortController().signal))[0].error;
      assert.ok(error, "the upload failed");
      assert.equal(error.kind, "fatal");
      assert.match(error.message, /^Cannot send \S+\/big 'a' \$x\.fits to /);
      assert.match(error.message, NO_SFTP);
      assert.doesNotMatch(error.message, /check that the host is up|the connection to/);
      assert.deepEqual(await listFiles(`${dst}/scp`).catch(() => []), []);
    } finally {
      await transport.close();
      await Deno.remove(runtime, { recursive: true });
    }
  } finally {
    await sshd.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a server without an SFTP subsystem, scp: the daemon counts the large file failed saying why (on_failure runs), never pauses the job as unreachable, and small files arrive", async () => {
  const sshd = await startSshd({ sftpServer: null });
  const hooks = await Deno.makeTempDir({ prefix: "itx-no-sftp-hook-" });
  const { hook, runs } = await countingHook(hooks);
  const box = await sshSandbox(sshd, "scp", {
    stability_window_seconds: 0.3,
    retry_attempts: 2,
    retry_delay_seconds: 0.2,
    // A file failed for good is tried again after this: not while the test looks.
    retry_max_delay_seconds: 120,
    rescan_interval_seconds: 0,
    on_failure: [hook],
  });
  // Both there at the start: found by one scan, they go in one batch, by scp (one file is too
  // large for one call). The small one goes in one call once the large one goes apart.
  const small = randomBytes(4096);
  await Deno.writeFile(join(box.watch, "small.fits"), small);
  await Deno.writeFile(join(box.watch, "big 'one'.fits"), randomBytes(9 << 20));
  const daemon = startCli(["run", "-c", box.config], { env: box.env });
  try {
    // Without the cause known, the job paused as if the host were down.
    await daemon.waitForOutput(/Failed to transfer \S*big 'one'\.fits|cannot be reached/);
    await daemon.waitForOutput(/Successfully transferred \S*small\.fits/);
    const log = daemon.stderr();
    const failed = log.split("\n").find((line) =>
      /Failed to transfer \S*big 'one'\.fits/.test(line)
    );
    assert.ok(failed !== undefined, log);
    assert.match(failed, NO_SFTP);
    assert.doesNotMatch(log, /cannot be reached|check that the host is up|takes files again/, log);
    await waitFor(async () => (await runs()).length > 0, 60_000, "on_failure to run");
    assert.deepEqual(await runs(), ["big 'one'.fits"]);
    assert.equal(await pausedJob(box.config, box.env), undefined);
    const status = await runCli(["status", "-c", box.config], { env: box.env });
    assert.match(status.stdout, /^Job default: pending 0, transferring 0, done 1, failed 1$/m);
    const arrived = await listFiles(box.remote);
    assert.equal(arrived.length, 1, arrived.join(", "));
    assert.match(arrived[0], /^\d{8}\/small\.fits$/);
    assert.deepEqual(await Deno.readFile(join(box.remote, arrived[0])), small);
  } finally {
    await daemon.stop();
    await sshd.stop();
    await Deno.remove(box.root, { recursive: true });
    await Deno.remove(hooks, { recursive: true });
  }
});
