/**
 * The status server is safe by default: cross-origin and GET actions are
 * refused, foreign host names too (DNS rebinding), a non-loopback address
 * needs a token, and a busy address does not stop transfers.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, startCli } from "../../helpers/cli.ts";
import { randomBytes, writeConfig } from "../../helpers/files.ts";
import { freePort, RawClient, selfSignedCert } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson, startStatusDaemon } from "../../helpers/status.ts";

Deno.test("status server: cross-origin POST, GET action and foreign Host are refused", async () => {
  await using d = await startStatusDaemon();
  const evil = await fetch(`${d.base}/api/jobs/default/pause`, {
    method: "POST",
    headers: { origin: "http://evil.example" },
  });
  assert.equal(evil.status, 403);
  assert.match(await evil.text(), /cross-origin/);
  const crossSite = await fetch(`${d.base}/api/jobs/default/pause`, {
    method: "POST",
    headers: { "sec-fetch-site": "cross-site" },
  });
  assert.equal(crossSite.status, 403);
  await crossSite.body?.cancel();
  const get = await fetch(`${d.base}/api/jobs/default/pause`);
  assert.equal(get.status, 405);
  await get.body?.cancel();
  const status = await getJson<{ jobs: Array<{ state: string }> }>(d.base, "/api/status");
  assert.equal(status.jobs[0].state, "watching", "no refused request paused the job");
  // A page served under a foreign name (DNS rebinding) is refused.
  const port = new URL(d.base).port;
  const client = await RawClient.open(Number(port));
  await client.send(
    `GET /api/status HTTP/1.1\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`,
  );
  assert.match(await client.readToEnd(), /^HTTP\/1\.1 403/);
  client.close();
});

Deno.test("status server: a non-loopback address without a token refuses to start", async () => {
  await using box = await cliSandbox({ log_file: "", status_listen: "0.0.0.0:8765" });
  const result = await runCli(["run", "-c", box.config], { env: box.env });
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    /status_listen: 0\.0\.0\.0:8765 can be reached from other machines/,
  );
  assert.match(result.stderr, /status_token_file/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
});

Deno.test("status server: a status_token_file that is a folder (a shared one) is refused as a folder, with no chmod", async () => {
  await using box = await cliSandbox();
  // Named instead of the token file in it, and writable by all, as /tmp is.
  const folder = join(box.root, "secrets");
  await Deno.mkdir(folder);
  await Deno.chmod(folder, 0o1777);
  await box.rewrite({ log_file: "", status_listen: "127.0.0.1:8765", status_token_file: folder });
  const result = await runCli(["config", "validate", "-c", box.config], { env: box.env });
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    /config\.yaml:\d+: status_token_file: .*secrets is a folder, not a file/,
  );
  assert.doesNotMatch(result.stderr, /chmod/);
});

Deno.test("status server: with a token every request needs it (Bearer, or the cookie from ?token=)", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-status-token-" });
  const token = "0123456789abcdef0123456789abcdef";
  await Deno.writeTextFile(join(root, "token"), token + "\n", { mode: 0o600 });
  const port = freePort();
  await using d = await startStatusDaemon({
    status_listen: `0.0.0.0:${port}`,
    status_token_file: join(root, "token"),
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    const none = await fetch(`${base}/api/status`);
    assert.equal(none.status, 401);
    await none.body?.cancel();
    const wrong = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const right = await fetch(`${base}/api/status`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(right.status, 200);
    assert.equal((await right.json()).jobs[0].job, "default");
    // A link with the token sets a cookie and drops the token from the address.
    const link = await fetch(`${base}/?token=${token}`, { redirect: "manual" });
    assert.equal(link.status, 303);
    assert.equal(link.headers.get("location"), "/");
    const cookie = link.headers.get("set-cookie")!.split(";")[0];
    assert.match(link.headers.get("set-cookie")!, /HttpOnly; SameSite=Strict/);
    const page = await fetch(`${base}/`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>/);
    // The API never shows the token.
    const all = await fetch(`${base}/api/status`, { headers: { cookie } });
    assert.doesNotMatch(await all.text(), new RegExp(token));
    assert.ok(d.base);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("status server: a busy address is logged, files are still sent, and status sends the token to no one else", async () => {
  await using box = await cliSandbox();
  const port = freePort();
  // Another program holding the address, answering every request and keeping what it was sent.
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  let received = "";
  const serving = (async () => {
    for await (const conn of squatter) {
      const buffer = new Uint8Array(8192);
      const n = await conn.read(buffer).catch(() => null);
      received += new TextDecoder().decode(buffer.subarray(0, n ?? 0));
      const body = JSON.stringify({ pid: 1, jobs: [], uptimeSeconds: 1, lastSuccessAt: null });
      await conn.write(
        new TextEncoder().encode(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n" +
            `content-length: ${body.length}\r\n\r\n${body}`,
        ),
      ).catch(() => {});
      conn.close();
    }
  })().catch(() => {});
  const token = "0123456789abcdef0123456789abcdef";
  await Deno.writeTextFile(join(box.root, "token"), token + "\n", { mode: 0o600 });
  try {
    await box.rewrite({
      log_file: "",
      status_listen: `127.0.0.1:${port}`,
      status_token_file: join(box.root, "token"),
    });
    const daemon = startCli(["run", "-c", box.config], { env: box.env });
    try {
      await daemon.waitForOutput("Watching");
      assert.match(
        daemon.stderr(),
        /Status page not started on 127\.0\.0\.1:\d+: the address is in use/,
      );
      const bytes = randomBytes(2048);
      await Deno.writeFile(join(box.watch, "a.fits"), bytes);
      await daemon.waitForOutput("Successfully transferred");
      const [night] = await Array.fromAsync(Deno.readDir(box.dest));
      assert.deepEqual(await Deno.readFile(join(box.dest, night.name, "a.fits")), bytes);
      const status = await runCli(["status", "-c", box.config], { env: box.env });
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /^Live status unavailable \(the daemon has not said that its status page listens .*token is not sent/m,
      );
      assert.match(status.stdout, /done 1, failed 0/, status.stdout);
      assert.ok(!received.includes(token), received);
    } finally {
      await daemon.stop();
    }
  } finally {
    squatter.close();
    await serving;
  }
});

Deno.test("status server: an address the network permission denies is logged, files are still sent", async () => {
  const port = freePort();
  await using box = await cliSandbox({ log_file: "", status_listen: `127.0.0.1:${port}` });
  const daemon = startCli(["run", "-c", box.config], {
    env: box.env,
    extraFlags: [`--deny-net=127.0.0.1:${port}`],
  });
  try {
    await daemon.waitForOutput("Watching");
    assert.match(
      daemon.stderr(),
      new RegExp(
        `network permission does not allow listening there.*allow 127\\.0\\.0\\.1:${port}`,
      ),
    );
    const bytes = randomBytes(1024);
    await Deno.writeFile(join(box.watch, "a.fits"), bytes);
    await daemon.waitForOutput("Successfully transferred");
    const [night] = await Array.fromAsync(Deno.readDir(box.dest));
    assert.deepEqual(await Deno.readFile(join(box.dest, night.name, "a.fits")), bytes);
  } finally {
    await daemon.stop();
  }
});

Deno.test("status server: without an ftp job the daemon gives the network up after listening; the page still answers", async () => {
  await using d = await startStatusDaemon();
  // A reload adding an ftp job is refused: the network permission is gone.
  const local = await Deno.readTextFile(d.config);
  await Deno.writeTextFile(
    d.config,
    local.replace('transfer_method: "local"', 'transfer_method: "ftp"\nremote_host: "127.0.0.1"'),
  );
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput(/Reload refused.*restart the daemon to add one/);
  // The socket opened before keeps answering, and the running local job still sends.
  const bytes = randomBytes(1500);
  await Deno.writeFile(join(d.watch, "after.fits"), bytes);
  await d.daemon.waitForOutput("Successfully transferred");
  const status = await getJson<{ jobs: Array<{ job: string; sent: number }> }>(
    d.base,
    "/api/status",
  );
  assert.deepEqual(status.jobs.map((j) => [j.job, j.sent]), [["default", 1]]);
  const [night] = await Array.fromAsync(Deno.readDir(d.dest));
  assert.deepEqual(await Deno.readFile(join(d.dest, night.name, "after.fits")), bytes);
});

Deno.test("status server: HTTPS with status_tls_cert and status_tls_key; status reads it; half a pair or a shared key is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "itx-tls-" });
  try {
    const { cert, key } = await selfSignedCert(dir);
    const token = "t".repeat(32);
    const tokenFile = join(dir, "token");
    await Deno.writeTextFile(tokenFile, token, { mode: 0o600 });
    const tls = { status_tls_cert: cert, status_tls_key: key, status_token_file: tokenFile };

    await using d = await startStatusDaemon(tls);
    const base = d.base.replace("http://", "https://");
    assert.match(d.daemon.stderr() + d.daemon.stdout(), /Status page on https:\/\/127\.0\.0\.1:/);
    using client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cert)] });
    const auth = { authorization: `Bearer ${token}` };
    const answer = await fetch(`${base}/api/status`, { client, headers: auth });
    assert.equal(answer.status, 200);
    const body = await answer.json() as { jobs: Array<{ state: string }> };
    assert.equal(body.jobs[0].state, "watching");
    // Plain HTTP gets no page (nor the token a request would carry in it).
    await assert.rejects(fetch(`${d.base}/api/status`, { headers: auth }).then((r) => r.text()));
    // The cookie a ?token= link sets travels over HTTPS only.
    const link = await fetch(`${base}/?token=${token}`, { client, redirect: "manual" });
    await link.body?.cancel();
    assert.equal(link.status, 303);
    assert.match(link.headers.get("set-cookie") ?? "", /; Secure$/);
    // `status` asks the daemon over HTTPS, trusting its certificate.
    const status = await runCli(["status", "-c", d.config], {
      env: { HOME: join(d.root, "home") },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Live \(https:\/\/127\.0\.0\.1:\d+\/\)/);

    // Half a pair, or a key others can read, is refused by validate as by run.
    const halfConfig = join(dir, "half.yaml");
    const writeHalf = (keys: Record<string, unknown>) =>
      writeConfig(halfConfig, {
        watch_path: d.watch,
        remote_base_path: d.dest,
        transfer_method: "local",
        state_dir: join(dir, "state"),
        log_file: "",
        status_listen: `127.0.0.1:${freePort()}`,
        ...keys,
      });
    await writeHalf({ status_tls_cert: cert });
    const half = await runCli(["config", "validate", "-c", halfConfig], { env: { HOME: dir } });
    assert.equal(half.code, 2, half.stdout + half.stderr);
    assert.match(
      half.stdout + half.stderr,
      /half\.yaml:\d+: status_tls_cert: set without status_tls_key/,
    );
    await Deno.chmod(key, 0o644);
    await writeHalf({ status_tls_cert: cert, status_tls_key: key });
    const shared = await runCli(["run", "--once", "-c", halfConfig], { env: { HOME: dir } });
    assert.equal(shared.code, 2, shared.stderr);
    assert.match(shared.stderr, /status_tls_key: .* can be read or written by others .*chmod 600/);
    assert.doesNotMatch(shared.stderr, /\n\s+at /, "no stack trace");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("status server: on an IPv6 loopback address the log names the page by a URL that opens it", async () => {
  const port = freePort();
  await using d = await startStatusDaemon({ status_listen: `[::1]:${port}` });
  const url = `http://[::1]:${port}/`;
  // The address in brackets, as a browser needs it (not http://::1:PORT/).
  assert.ok(
    (d.daemon.stderr() + d.daemon.stdout()).includes(`Status page on ${url}`),
    d.daemon.stderr(),
  );
  const answer = await fetch(`${url}api/status`);
  assert.equal(answer.status, 200);
  const body = await answer.json() as { jobs: Array<{ state: string }> };
  assert.equal(body.jobs[0].state, "watching");
});
