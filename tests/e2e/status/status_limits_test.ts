/**
 * The status server holds against a careless or hostile local client: bodies
 * over 64 KiB are refused (413) without being read into memory, at most 50
 * live-update clients are served (the rest told to retry), a fresh `?token=`
 * link wins over a stale cookie, the page's CSP allows only its own script
 * (by hash) and no framing, forms or `<base>`; connections that trickle
 * their request in are closed after 10 s while files keep arriving; and
 * `config validate` and `doctor` refuse a non-loopback address without a
 * token, as `run` does.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { runCli } from "../../helpers/cli.ts";
import { exists, listFiles, randomBytes, waitFor, within } from "../../helpers/files.ts";
import { freePort, RawClient } from "../../helpers/net.ts";
import { cliSandbox } from "../../helpers/sandbox.ts";
import { getJson, post, startStatusDaemon } from "../../helpers/status.ts";

Deno.test("status server: a 1 MiB POST is refused with 413, declared or streamed; a small one works", async () => {
  await using d = await startStatusDaemon();
  const headers = { origin: d.base, "content-type": "application/json" };
  const big = new Uint8Array(1024 * 1024).fill(0x20);
  const declared = await fetch(`${d.base}/api/jobs/default/retry`, {
    method: "POST",
    headers,
    body: big,
  });
  assert.equal(declared.status, 413);
  assert.match(await declared.text(), /at most 64 KiB/);
  // Without a length: chunks until the limit, then refused.
  const streamed = await fetch(`${d.base}/api/jobs/default/retry`, {
    method: "POST",
    headers,
    body: new ReadableStream({
      start(controller) {
        for (let i = 0; i < 16; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(0x20));
        controller.close();
      },
    }),
    // @ts-ignore: fetch needs it for a stream body
    duplex: "half",
  });
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();
  const small = await post(d.base, "/api/jobs/default/retry", { file: "none.fits" });
  assert.equal(small.status, 200);
  assert.deepEqual(await small.json(), { job: "default", requeued: 0 });
  // The daemon still answers.
  assert.equal((await getJson<{ jobs: unknown[] }>(d.base, "/api/status")).jobs.length, 1);
});

Deno.test("status server: 50 live-update clients are served; the 51st is told to retry later", async () => {
  await using d = await startStatusDaemon();
  const open: Response[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const response = await fetch(`${d.base}/api/events`);
      assert.equal(response.status, 200, `client ${i + 1}`);
      open.push(response);
    }
    const turnedAway = await fetch(`${d.base}/api/events`);
    assert.equal(turnedAway.status, 503);
    assert.match(turnedAway.headers.get("retry-after") ?? "", /^\d+$/);
    await turnedAway.body?.cancel();
    // One leaves: a new one is served again.
    await open.shift()!.body!.cancel();
    let again: Response | undefined;
    for (let tries = 0; tries < 200; tries++) {
      const response = await fetch(`${d.base}/api/events`);
      if (response.status === 200) {
        again = response;
        break;
      }
      await response.body?.cancel();
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(again, "a place came free");
    open.push(again);
  } finally {
    for (const response of open) await response.body?.cancel().catch(() => {});
  }
});

Deno.test("status server: a fresh ?token= link wins over a stale cookie; the page's CSP allows its script by hash only", async () => {
  const root = await Deno.makeTempDir({ prefix: "itx-status-csp-" });
  const token = "0123456789abcdef0123456789abcdef";
  await Deno.writeTextFile(join(root, "token"), token + "\n", { mode: 0o600 });
  const port = freePort();
  await using _d = await startStatusDaemon({
    status_listen: `0.0.0.0:${port}`,
    status_token_file: join(root, "token"),
  });
  try {
    const base = `http://127.0.0.1:${port}`;
    const stale = "itx_token=an-old-token-from-before";
    const link = await fetch(`${base}/?token=${token}`, {
      redirect: "manual",
      headers: { cookie: stale },
    });
    assert.equal(link.status, 303);
    const cookie = link.headers.get("set-cookie")!.split(";")[0];
    assert.equal(cookie, `itx_token=${token}`);
    // The stale cookie alone is still refused.
    const old = await fetch(`${base}/api/status`, { headers: { cookie: stale } });
    assert.equal(old.status, 401);
    await old.body?.cancel();

    const page = await fetch(`${base}/`, { headers: { cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    const csp = page.headers.get("content-security-policy") ?? "";
    const directives = new Map(
      csp.split(/;\s*/).map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]),
    );
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1];
    const hash = createHash("sha256").update(script).digest("base64");
    assert.equal(directives.get("script-src"), `'sha256-${hash}'`);
    assert.doesNotMatch(directives.get("script-src") ?? "", /unsafe-inline/);
    assert.equal(directives.get("frame-ancestors"), "'none'");
    assert.equal(directives.get("form-action"), "'none'");
    assert.equal(directives.get("base-uri"), "'none'");
    assert.equal(directives.get("default-src"), "'none'");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("config validate, doctor and install-service refuse a non-loopback status_listen without a token, as run does", async () => {
  await using box = await cliSandbox({ log_file: "", status_listen: "0.0.0.0:8765" });
  const config = box.config;
  const serviceRoot = join(box.root, "service-root");
  for (
    const args of [
      ["-c", config, "config", "validate"],
      ["-c", config, "doctor"],
      ["-c", config, "install-service", "--print", "--root", serviceRoot],
      ["-c", config, "run"],
    ]
  ) {
    const result = await runCli(args, {
      env: { ...box.env, USER: "observer", SUDO_USER: "" },
    });
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}${result.stderr}`);
    assert.match(
      result.stderr,
      /status_listen: 0\.0\.0\.0:8765 can be reached from other machines/,
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  }
  await box.rewrite({ log_file: "", status_listen: "127.0.0.1:8765" });
  const ok = await runCli(["config", "validate", "-c", config], { env: box.env });
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("a reload (SIGHUP) that changes status_listen says a restart is needed; the page stays where it was", async () => {
  await using d = await startStatusDaemon();
  const text = await Deno.readTextFile(d.config);
  const port = freePort();
  await Deno.writeTextFile(
    d.config,
    text.replace(/status_listen: .*/, `status_listen: "127.0.0.1:${port}"`),
  );
  d.daemon.process.kill("SIGHUP");
  await d.daemon.waitForOutput(
    new RegExp(
      `status_listen is "127\\.0\\.0\\.1:${port}" in the config, but the status page keeps ` +
        `"127\\.0\\.0\\.1:\\d+", as the daemon started, until it restarts`,
    ),
  );
  // The restart it names is of this config file.
  assert.ok(
    d.daemon.stderr().includes(`until it restarts (image-transfer -c ${d.config} restart,`),
    d.daemon.stderr(),
  );
  assert.equal((await getJson<{ jobs: unknown[] }>(d.base, "/api/status")).jobs.length, 1);
});

Deno.test("status server: 200 slow-header connections are closed after 10 s; files arrive and the page answers meanwhile", async () => {
  await using d = await startStatusDaemon();
  const port = Number(new URL(d.base).port);
  const slow = await Promise.all(
    Array.from({ length: 200 }, () => RawClient.open(port)),
  );
  let trickling = true;
  // Each sends one header line every 2 s and never ends its head.
  const trickle = slow.map(async (client, i) => {
    try {
      await client.send(`GET /api/status HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`);
      for (let line = 0; trickling; line++) {
        await new Promise((r) => setTimeout(r, 2_000));
        await client.send(`x-slow-${i}-${line}: 1\r\n`);
      }
    } catch { /* closed by the server */ }
  });
  const ends = slow.map((client) => client.readToEnd());
  try {
    const files = Array.from({ length: 20 }, (_, i) => [`slow_${i}.fits`, randomBytes(50_000)]);
    for (const [name, bytes] of files) {
      await Deno.writeFile(join(d.watch, name as string), bytes as Uint8Array);
    }
    const status = await getJson<{ jobs: unknown[] }>(d.base, "/api/status");
    assert.equal(status.jobs.length, 1);
    const arrived = async () => (await exists(d.dest)) ? await listFiles(d.dest) : [];
    // Under their final names (a temporary name may be there meanwhile).
    const at = async (name: string) => (await arrived()).find((f) => f.endsWith(`/${name}`));
    await waitFor(
      async () => (await Promise.all(files.map(([name]) => at(name as string)))).every(Boolean),
      60_000,
      "files",
    );
    for (const [name, bytes] of files) {
      const found = (await at(name as string))!;
      assert.deepEqual(await Deno.readFile(join(d.dest, found)), bytes, name as string);
    }
    // Every slow connection is closed by the server, none answered.
    const answers = await within(Promise.all(ends), 60_000, "the server to close them");
    assert.deepEqual(new Set(answers), new Set([""]));
  } finally {
    trickling = false;
    for (const client of slow) client.close();
    await Promise.all(trickle);
  }
  assert.equal((await getJson<{ jobs: unknown[] }>(d.base, "/api/status")).jobs.length, 1);
});
