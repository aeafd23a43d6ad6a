/**
 * A server that allows one login per client (vsftpd `max_per_ip=1`): its
 * `421` while this daemon holds a login there means waiting for that
 * connection, for one job (`run --once` through the CLI) and for two jobs
 * sending to the same server; a `421` while the daemon holds none (someone
 * else has the one login) fails as the destination that cannot be reached,
 * which pauses the job instead of using up each file's retries. A server back
 * from an outage that refuses the login is never said to take files again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { failureScope } from "../../../src/errors.ts";
import { holdsTheJob } from "../../../src/pipeline/attempt_outcome.ts";
import { FtpTransport } from "../../../src/transfer/ftp/ftp.ts";
import type { TransferItem } from "../../../src/transfer/transport.ts";
import { runCli, startCli } from "../../helpers/cli.ts";
import { listFiles, randomBytes, sha256OfFile, waitFor } from "../../helpers/files.ts";
import { captureLogs } from "../../helpers/log_capture.ts";
import { ftpDaemonSandbox, type TestVsftpd, withVsftpdAndRoot } from "../../helpers/vsftpd.ts";

/** Write `count` files of `bytes` each into `folder` and describe them as items. */
async function items(folder: string, count: number, bytes: number): Promise<TransferItem[]> {
  await Deno.mkdir(folder, { recursive: true });
  const out: TransferItem[] = [];
  for (let i = 0; i < count; i++) {
    const source = join(folder, `f${String(i).padStart(2, "0")}.fits`);
    await Deno.writeFile(source, randomBytes(bytes));
    const info = await Deno.stat(source);
    out.push({
      source,
      destination: `night/${i}.fits`,
      size: info.size,
      mtimeMs: info.mtime!.getTime(),
    });
  }
  return out;
}

/**
 * A connection to `server` that it greeted (it counts it), taking the one it
 * allows from this address; retried while it still counts an earlier one
 * (the check that it listens).
 */
async function holdTheLogin(server: TestVsftpd): Promise<Deno.TcpConn> {
  let held: Deno.TcpConn | null = null;
  let said = "";
  await waitFor(
    async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      const buffer = new Uint8Array(512);
      said = new TextDecoder().decode(buffer.subarray(0, await conn.read(buffer) ?? 0));
      if (said.startsWith("220")) held = conn;
      else conn.close();
      return held !== null;
    },
    60_000,
    "the server's greeting",
  );
  return held!;
}

/** Run `fn` with a plain-FTP vsftpd taking one connection per address, and a private folder. */
async function withOneLoginServer(
  fn: (server: TestVsftpd, root: string) => Promise<void>,
): Promise<void> {
  await withVsftpdAndRoot(
    { tls: false, maxPerIp: 1 },
    "itx-ftp-logins-",
    ({ server, root }) => fn(server, root),
  );
}

Deno.test("cli: run --once to a server allowing one login per client sends every file, none fails", async () => {
  await withOneLoginServer(async (server, root) => {
    // Two transfers at once (the ftp default), more files than one batch takes.
    const { dest, watch, config } = await ftpDaemonSandbox(server, root, {
      verify_transfer: "size",
      retry_delay_seconds: 0.2,
      retry_max_delay_seconds: 1,
    });
    const sent = await items(watch, 25, 1024 * 1024);
    const out = await runCli(["--config", config, "run", "--once"], { env: { HOME: root } });
    assert.equal(out.code, 0, out.stderr);
    assert.doesNotMatch(out.stderr, /Attempt \d|Failed to transfer|421 .*; retry/);
    assert.equal(out.stderr.match(/takes 1 login\(s\) from this machine at once/g)?.length, 1);
    const arrived = await listFiles(dest);
    assert.equal(arrived.length, sent.length, arrived.join("\n"));
    for (const item of sent) {
      const name = item.source.slice(item.source.lastIndexOf("/") + 1);
      const [rel] = arrived.filter((rel) => rel.endsWith(`/${name}`));
      assert.equal(await sha256OfFile(join(dest, rel)), await sha256OfFile(item.source), name);
    }
  });
});

Deno.test("two jobs to a server allowing one login per client: each waits for the other's connection", async () => {
  await withOneLoginServer(async (server, root) => {
    const logs = await captureLogs();
    const bases = [await server.makeRemoteDir(), await server.makeRemoteDir()];
    const transports = bases.map((base, i) =>
      new FtpTransport(server.job({ name: `job ${i}`, remote_base_path: base }))
    );
    try {
      const batches = [
        await items(join(root, "a"), 6, 512 * 1024),
        await items(join(root, "b"), 6, 512 * 1024),
      ];
      // Each job holds its connection open between batches: the other's login is refused
      // until that idle connection is closed for it.
      for (let round = 0; round < 2; round++) {
        const outcomes = await Promise.all(
          transports.map(async (transport, i) => {
            let sent = await transport.send(batches[i], new AbortController().signal);
            // Seldom, on a busy machine, the server still counts a login just closed when no
            // other is held here: the job then waits as for a destination that cannot be
            // reached, and its next attempt goes (as the daemon's would after its pause).
            for (let tries = 0; tries < 10; tries++) {
              if (!sent.some((o) => /takes no more connections/.test(o.error?.message ?? ""))) {
                break;
              }
              await new Promise((resolve) => setTimeout(resolve, 500));
              sent = await transport.send(batches[i], new AbortController().signal);
            }
            return sent;
          }),
        );
        assert.deepEqual(outcomes.flat().map((o) => o.error?.message ?? null), [
          ...Array(12).fill(null),
        ]);
      }
      for (const [i, base] of bases.entries()) {
        assert.equal((await listFiles(base)).length, batches[i].length);
      }
      assert.equal(logs.count("warning", "login(s) from this machine at once"), 1, "said once");
    } finally {
      for (const transport of transports) await transport.close();
      await logs.stop();
    }
  });
});

Deno.test("a 421 while this daemon holds no login there fails the whole destination (the job pauses), not the file", async () => {
  await withOneLoginServer(async (server, root) => {
    const dest = await server.makeRemoteDir();
    const sent = await items(join(root, "src"), 2, 64 * 1024);
    // Someone else holds the one connection the server takes from this address.
    const other = await holdTheLogin(server);
    const transport = new FtpTransport(server.job({ remote_base_path: dest }));
    try {
      const refused = await transport.send(sent, new AbortController().signal);
      for (const { error } of refused) {
        assert.ok(error !== null, "refused");
        assert.match(error.message, /421 There are too many connections/);
        assert.equal(failureScope(error), "connection", error.message);
        assert.ok(holdsTheJob(error), "the job waits for its destination");
      }
      other.close();
      // Once it is free the files go (the server may count the closed one a moment longer).
      await waitFor(
        async () =>
          (await transport.send(sent, new AbortController().signal)).every((o) => o.error === null),
        60_000,
        "the files, once the login is free",
      );
      assert.equal((await listFiles(dest)).length, sent.length);
    } finally {
      await transport.close();
      try {
        other.close();
      } catch {
        // Closed above.
      }
    }
  });
});

Deno.test("daemon: an FTP server back from an outage that refuses the login is not said to take files again; once the password is right the file arrives whole, and that is said once", () =>
  withVsftpdAndRoot({}, "itx-ftp-relogin-", async ({ server, root }) => {
    // The job's own copy of the password, to change as a server's new password would.
    const password = join(root, "password");
    await Deno.copyFile(server.passwordFile, password);
    await Deno.chmod(password, 0o600);
    const { dest, watch, config } = await ftpDaemonSandbox(server, root, {
      ftp_password_file: password,
      retry_delay_seconds: 0.3,
      retry_max_delay_seconds: 1,
    });
    const daemon = startCli(["--config", config, "run"], { env: { HOME: root } });
    try {
      await daemon.waitForOutput("Watching");
      await server.kill();
      const bytes = randomBytes(100_000);
      const source = join(watch, "frame.fits");
      await Deno.writeFile(source, bytes);
      const night = new Date("2024-07-01T20:00:00Z");
      await Deno.utime(source, night, night);
      await daemon.waitForOutput(/The destination \S+ cannot be reached: .*Job default pauses/);
      // Back, but the password was changed there meanwhile.
      await Deno.writeTextFile(password, "not the password\n");
      await server.restart();
      await daemon.waitForOutput(/Failed to transfer .*refused the login \(530/);
      // Its next try is refused too (the server's log says so): by then the batch before has ended.
      const refusals = async () =>
        (await Deno.readTextFile(join(server.dir, "vsftpd.log"))).match(/FAIL LOGIN/g)?.length ?? 0;
      await waitFor(async () => await refusals() >= 2, 60_000, "a second refused login");
      // Before the fix: "The destination ... takes files again; job default resumes" right after
      // the refused login, while nothing could arrive.
      assert.doesNotMatch(daemon.stderr(), /takes files again/);
      await Deno.copyFile(server.passwordFile, password);
      const final = join(dest, "20240701", "frame.fits");
      await waitFor(() => Deno.stat(final).then(() => true, () => false), 60_000, "the file");
      assert.deepEqual(await Deno.readFile(final), bytes);
      assert.deepEqual(await listFiles(dest), ["20240701/frame.fits"]);
      await daemon.waitForOutput(/The destination \S+ takes files again/);
      assert.equal(daemon.stderr().match(/takes files again/g)?.length, 1);
    } finally {
      const status = await daemon.stop();
      assert.equal(status.code, 0, daemon.stderr());
    }
  }));
