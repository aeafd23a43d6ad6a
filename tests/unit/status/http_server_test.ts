/**
 * The status server's HTTP/1.1 connections over real sockets, with short
 * limits: a request that does not arrive whole in time and a kept-alive
 * connection left idle are closed, heads and bodies over their size are
 * refused, bodies in chunks and `Expect: 100-continue` work, a connection
 * beyond the limit waits until one ends, an event stream is sent as it comes
 * and cancelled when its client goes, and a stop waits only for answers
 * under way. None of it moves when the wall clock is stepped (NTP).
 */
import assert from "node:assert/strict";
import { type HttpLimits, type HttpServer, serveHttp } from "../../../src/status/http_server.ts";
import { stepDateNow } from "../../helpers/fake_clock.ts";
import { within } from "../../helpers/files.ts";
import { RawClient, selfSignedCert } from "../../helpers/net.ts";

const SHORT: Partial<HttpLimits> = { requestMs: 400, idleMs: 600, maxBodyBytes: 1024 };

/** A server on a free loopback port answering with the method, path and body it got. */
async function echoServer(
  limits: Partial<HttpLimits> = SHORT,
  tls: { cert: string; key: string } | null = null,
): Promise<HttpServer & AsyncDisposable> {
  const server = await serveHttp(
    { hostname: "127.0.0.1", port: 0, tls, limits, onError: () => {} },
    async (request) =>
      new Response(
        `${request.method} ${new URL(request.url).pathname} ${await request.text()}`,
        { headers: { "x-host": request.headers.get("host") ?? "" } },
      ),
  );
  return Object.assign(server, {
    async [Symbol.asyncDispose]() {
      await server.shutdown(0);
    },
  });
}

/** Run `use` with a fresh self-signed certificate and key, as PEM text. */
async function withPem(use: (pem: { cert: string; key: string }) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "itx-https-" });
  try {
    const files = await selfSignedCert(dir);
    await use({
      cert: await Deno.readTextFile(files.cert),
      key: await Deno.readTextFile(files.key),
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("http server: a head that trickles in past the request time is closed unanswered", async () => {
  await using server = await echoServer();
  const client = await RawClient.open(server.addr.port);
  await client.send("GET / HTTP/1.1\r\n");
  // One header line per 150 ms: each byte is in time, the whole is not.
  const trickle = (async () => {
    try {
      for (let i = 0; i < 20; i++) {
        await sleep(150);
        await client.send(`x-slow-${i}: 1\r\n`);
      }
    } catch { /* closed by the server */ }
  })();
  assert.equal(await client.readToEnd(), "");
  await trickle;
  client.close();
});

Deno.test("http server: a connection that sends nothing, and a body that stops short, are closed", async () => {
  await using server = await echoServer();
  const silent = await RawClient.open(server.addr.port);
  assert.equal(await silent.readToEnd(), "");
  silent.close();
  const short = await RawClient.open(server.addr.port);
  await short.send("POST /a HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n12345");
  assert.equal(await short.readToEnd(), "");
  short.close();
});

Deno.test("http server: two requests on one kept-alive connection, then closed when idle", async () => {
  await using server = await echoServer();
  const client = await RawClient.open(server.addr.port);
  await client.send("GET /one HTTP/1.1\r\nhost: h\r\n\r\n");
  await client.readUntil(/GET \/one $/);
  await client.send("POST /two HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello");
  const both = await client.readUntil(/POST \/two hello$/);
  assert.match(both, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(both, /x-host: h\r\n/);
  assert.match(both, /content-length: 9\r\n/);
  // Nothing more is asked: the server closes the idle connection.
  assert.equal(await client.readToEnd(), both);
  assert.equal(server.connections, 0);
  client.close();
});

Deno.test("http server: a request refused with 401 or 403 is answered, then its connection closed though kept alive", async () => {
  const server = await serveHttp(
    { hostname: "127.0.0.1", port: 0, tls: null, limits: { idleMs: 10_000 }, onError: () => {} },
    (request) => {
      const path = new URL(request.url).pathname;
      return new Response(`${path}\n`, {
        status: path === "/401" ? 401 : path === "/403" ? 403 : 200,
      });
    },
  );
  try {
    for (const status of [401, 403]) {
      const client = await RawClient.open(server.addr.port);
      await client.send(`GET /${status} HTTP/1.1\r\nhost: h\r\n\r\n`);
      const answer = await client.readToEnd(); // The server ends it, before its idle time.
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `));
      assert.match(answer, /connection: close\r\n/);
      assert.match(answer, new RegExp(`/${status}\n$`));
      client.close();
    }
    // An answered request keeps its connection for the next.
    const kept = await RawClient.open(server.addr.port);
    await kept.send("GET /a HTTP/1.1\r\nhost: h\r\n\r\n");
    await kept.readUntil(/\/a\n$/);
    await kept.send("GET /b HTTP/1.1\r\nhost: h\r\n\r\n");
    assert.doesNotMatch(await kept.readUntil(/\/b\n$/), /connection: close/);
    kept.close();
  } finally {
    await server.shutdown(0);
  }
});

Deno.test("http server: a body in chunks and Expect: 100-continue reach the handler whole", async () => {
  await using server = await echoServer();
  const chunked = await RawClient.open(server.addr.port);
  await chunked.send(
    "POST /c HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n" +
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
  );
  assert.match(await chunked.readUntil(/POST \/c hello world$/), /^HTTP\/1\.1 200/);
  chunked.close();
  const expecting = await RawClient.open(server.addr.port);
  await expecting.send(
    "POST /e HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n",
  );
  assert.match(await expecting.readUntil(/100 Continue\r\n\r\n/), /^HTTP\/1\.1 100 Continue/);
  await expecting.send("abc");
  await expecting.readUntil(/POST \/e abc$/);
  expecting.close();
});

Deno.test("http server: oversized heads and bodies, and malformed requests, are refused and closed", async () => {
  await using server = await echoServer({ ...SHORT, maxHeadBytes: 1024 });
  const cases: Array<[string, RegExp]> = [
    [`GET / HTTP/1.1\r\nhost: h\r\nx-big: ${"a".repeat(2000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
    ["POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 5000\r\n\r\n", /^HTTP\/1\.1 413 [^]*1 KiB/],
    [
      `POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n800\r\n${
        "a".repeat(2048)
      }\r\n`,
      /^HTTP\/1\.1 413 /,
    ],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["GET / HTTP/1.1\r\n\r\n", /^HTTP\/1\.1 400 [^]*needs Host/],
    ["GET / HTTP/1.1\r\nhost: h\r\n folded\r\n\r\n", /^HTTP\/1\.1 400 /],
    ["GET / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip\r\n\r\n", /^HTTP\/1\.1 501 /],
    ["CONNECT / HTTP/1.1\r\nhost: h\r\n\r\n", /^HTTP\/1\.1 405 /],
  ];
  for (const [request, expected] of cases) {
    const client = await RawClient.open(server.addr.port);
    await client.send(request);
    const answer = await client.readToEnd();
    assert.match(answer, expected, JSON.stringify(request.slice(0, 60)));
    assert.match(answer, /connection: close\r\n/);
    client.close();
  }
});

Deno.test("http server: with the most connections open, a new one waits unaccepted and is served once one ends", async () => {
  let full = 0;
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    tls: null,
    limits: { maxConnections: 3, requestMs: 60_000 },
    onError: () => {},
    onFull: () => full++,
  }, () => new Response("ok"));
  const held = [
    await RawClient.open(server.addr.port),
    await RawClient.open(server.addr.port),
    await RawClient.open(server.addr.port),
  ];
  let fourth: RawClient | undefined;
  try {
    for (const c of held) await c.send("GET / HTTP/1.1\r\n");
    while (server.connections < 3) await sleep(10);
    fourth = await RawClient.open(server.addr.port);
    await fourth.send("GET /fourth HTTP/1.1\r\nhost: h\r\n\r\n");
    const answered = fourth.readUntil(/ok$/);
    answered.catch(() => {});
    // The held ones are still served meanwhile.
    await held[0].send("host: h\r\n\r\n");
    assert.match(await held[0].readUntil(/ok$/), /^HTTP\/1\.1 200/);
    assert.equal(server.connections, 3);
    assert.equal(full, 1);
    assert.equal(fourth.received, "");
    // One ends: the waiting connection is taken and answered.
    held[1].close();
    assert.match(await answered, /^HTTP\/1\.1 200/);
  } finally {
    for (const c of held) c.close();
    fourth?.close();
    await server.shutdown(0);
  }
});

Deno.test("http server: an event stream goes out as it comes, is cancelled when its client goes; a stop waits for it", async () => {
  let cancelled: () => void = () => {};
  const wasCancelled = new Promise<void>((resolve) => cancelled = resolve);
  let headWasCancelled: () => void = () => {};
  const headCancelled = new Promise<void>((resolve) => headWasCancelled = resolve);
  const controllers: ReadableStreamDefaultController<Uint8Array>[] = [];
  const server = await serveHttp(
    { hostname: "127.0.0.1", port: 0, tls: null, limits: SHORT, onError: () => {} },
    () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start: (c) => {
            controllers.push(c);
            c.enqueue(new TextEncoder().encode("data: first\n\n"));
          },
          cancel: () => controllers.length === 2 ? headWasCancelled() : cancelled(),
        }),
        { headers: { "content-type": "text/event-stream" } },
      ),
  );
  try {
    const leaving = await RawClient.open(server.addr.port);
    await leaving.send("GET /events HTTP/1.1\r\nhost: h\r\n\r\n");
    const start = await leaving.readUntil(/data: first\n\n\r\n/);
    assert.match(start, /transfer-encoding: chunked\r\n/);
    assert.match(start, /\r\n\r\nd\r\ndata: first\n\n\r\n$/);
    // Quiet longer than the idle time: a stream being answered stays open.
    await sleep(900);
    controllers[0].enqueue(new TextEncoder().encode("data: second\n\n"));
    await leaving.readUntil(/data: second/);
    leaving.close();
    // The stream's source hears that the client went, with nothing more written.
    await wasCancelled;

    // HEAD of the stream: its head at once, and its source let go.
    const headOnly = await RawClient.open(server.addr.port);
    await headOnly.send("HEAD /events HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n");
    assert.match(
      await within(headOnly.readToEnd(), 60_000, "the head"),
      /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n$/,
    );
    headOnly.close();
    await headCancelled;

    const staying = await RawClient.open(server.addr.port);
    await staying.send("GET /events HTTP/1.1\r\nhost: h\r\n\r\n");
    await staying.readUntil(/data: first/);
    const idle = await RawClient.open(server.addr.port);
    while (server.connections < 2) await sleep(10);
    const stopped = server.shutdown(5_000);
    // The idle connection is closed at once; the stream ends when its source closes.
    assert.equal(await idle.readToEnd(), "");
    controllers[2].close();
    assert.match(await staying.readToEnd(), /\r\n0\r\n\r\n$/);
    assert.equal(await stopped, false);
    idle.close();
    staying.close();
  } finally {
    await server.shutdown(0);
  }
});

Deno.test("http server: HEAD gets the length and no body; a failing handler answers 500 and is reported", async () => {
  const errors: unknown[] = [];
  const server = await serveHttp(
    { hostname: "127.0.0.1", port: 0, tls: null, limits: SHORT, onError: (e) => errors.push(e) },
    (request) => {
      if (new URL(request.url).pathname === "/fail") throw new Error("broken");
      return new Response("twelve bytes");
    },
  );
  try {
    const head = await RawClient.open(server.addr.port);
    await head.send("HEAD / HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n");
    const answer = await head.readToEnd();
    assert.match(answer, /content-length: 12\r\n/);
    assert.ok(answer.endsWith("\r\n\r\n"), JSON.stringify(answer));
    head.close();
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/fail`);
    assert.equal(response.status, 500);
    await response.body?.cancel();
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /broken/);
  } finally {
    await server.shutdown(0);
  }
});

Deno.test("https: a connection that never starts its handshake is closed (its socket freed); requests over TLS are answered", async () => {
  await withPem(async (pem) => {
    await using server = await echoServer(SHORT, pem);
    const silent = await Promise.all([1, 2, 3].map(() => RawClient.open(server.addr.port)));
    // The server's end is really closed: each client reads the end of the stream.
    const ends = await within(Promise.all(silent.map((c) => c.readToEnd())), 60_000, "closes");
    assert.deepEqual(ends, ["", "", ""]);
    for (const c of silent) c.close();
    using client = Deno.createHttpClient({ caCerts: [pem.cert] });
    const base = `https://127.0.0.1:${server.addr.port}`;
    for (const body of ["one", "two"]) {
      const response = await fetch(`${base}/tls`, { method: "POST", body, client });
      assert.equal(await response.text(), `POST /tls ${body}`);
    }
    // A head that trickles in over TLS is closed as over plain HTTP.
    const tls = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: server.addr.port,
      caCerts: [pem.cert],
    });
    await tls.write(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    const got = await within(
      (async () => {
        const buffer = new Uint8Array(1024);
        try {
          return await tls.read(buffer);
        } catch {
          return null;
        }
      })(),
      60_000,
      "the close",
    );
    assert.equal(got, null);
    tls.close();
  });
});

Deno.test("https: beyond the most connections, new ones are closed as they come", async () => {
  await withPem(async (pem) => {
    await using server = await echoServer({ maxConnections: 2, requestMs: 60_000 }, pem);
    const held = [await RawClient.open(server.addr.port), await RawClient.open(server.addr.port)];
    // Taken in the order they connected: the two held ones fill the limit.
    const third = await RawClient.open(server.addr.port);
    assert.equal(await within(third.readToEnd(), 30_000, "the third's close"), "");
    third.close();
    for (const c of held) c.close();
  });
});

Deno.test("http server: the wall clock stepped an hour ahead does not repeat the 'full' report at once", async () => {
  let full = 0;
  const server = await serveHttp({
    hostname: "127.0.0.1",
    port: 0,
    tls: null,
    limits: { maxConnections: 1, requestMs: 60_000 },
    onError: () => {},
    onFull: () => full++,
  }, () => new Response("ok"));
  const first = await RawClient.open(server.addr.port);
  let second: RawClient | undefined;
  try {
    await first.send("GET / HTTP/1.1\r\n");
    while (server.connections < 1) await sleep(10);
    assert.equal(full, 1);
    using _step = stepDateNow(3_600_000);
    // The first ends, the second is taken and fills the server again: said once a minute only.
    second = await RawClient.open(server.addr.port);
    await second.send("GET /second HTTP/1.1\r\nhost: h\r\nconnection: close\r\n\r\n");
    first.close();
    assert.match(await second.readToEnd(), /^HTTP\/1\.1 200 [^]*ok$/);
    // Before the fix the hour ahead made it due at once.
    assert.equal(full, 1);
  } finally {
    first.close();
    second?.close();
    await server.shutdown(0);
  }
});

Deno.test("http server: a slow request under way is answered after the wall clock steps an hour ahead", async () => {
  await using server = await echoServer({ ...SHORT, requestMs: 60_000 });
  const client = await RawClient.open(server.addr.port);
  while (server.connections < 1) await sleep(10);
  using _step = stepDateNow(3_600_000);
  await client.send(
    "POST /e HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n",
  );
  await client.readUntil(/100 Continue\r\n\r\n/);
  // The client takes its time (well within the request time) to send its body.
  await sleep(300);
  await client.send("abc");
  // Before the fix the request's deadline had passed an hour ago: the connection was closed.
  assert.match(await client.readUntil(/POST \/e abc$/), /HTTP\/1\.1 200 OK/);
  client.close();
});

/** A server whose answers wait until `release` is called; `entered` resolves as one starts. */
async function heldServer() {
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let entered: () => void = () => {};
  const started = new Promise<void>((resolve) => entered = resolve);
  const server = await serveHttp(
    { hostname: "127.0.0.1", port: 0, tls: null, limits: SHORT, onError: () => {} },
    async () => {
      entered();
      await released;
      return new Response("late");
    },
  );
  return { server, release, started };
}

Deno.test("http server: a stop waits its time for an answer under way, whichever way the wall clock steps", async () => {
  for (const stepMs of [3_600_000, -3_600_000]) {
    const { server, release, started } = await heldServer();
    const answering = await RawClient.open(server.addr.port);
    const idle = await RawClient.open(server.addr.port);
    try {
      await answering.send("GET / HTTP/1.1\r\nhost: h\r\n\r\n");
      await started;
      // Ahead: the stop has a minute for the answer; back: half a second.
      const stopped = server.shutdown(stepMs > 0 ? 60_000 : 500);
      // The idle connection is closed as the stop starts counting its time.
      assert.equal(await idle.readToEnd(), "");
      using _step = stepDateNow(stepMs);
      if (stepMs > 0) {
        await sleep(500);
        release();
        // Before the fix the answer was cut at the step.
        assert.match(await answering.readToEnd(), /^HTTP\/1\.1 200 [^]*late$/);
        assert.equal(await stopped, false);
      } else {
        // Before the fix the stop waited for the hour to come back.
        assert.equal(await within(stopped, 30_000, "the stop"), true);
        assert.equal(await answering.readToEnd(), "");
      }
    } finally {
      release();
      answering.close();
      idle.close();
      await server.shutdown(0);
    }
  }
});
