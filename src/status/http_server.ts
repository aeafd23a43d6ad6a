/**
 * The status server's connections: HTTP/1.1 served by the daemon itself, so
 * that no client can hold them. A request must arrive whole (head and body)
 * within {@linkcode HttpLimits.requestMs} of its first byte (of the accept,
 * for a connection's first request); a kept-alive connection waits
 * {@linkcode HttpLimits.idleMs} for its next request, and a response that
 * the client stops reading is given up after as long; a request head may
 * hold 16 KiB and a body 64 KiB; beyond {@linkcode HttpLimits.maxConnections}
 * open connections new ones are closed at once. With a certificate the same
 * is served over TLS.
 *
 * Responses are sent whole with their length, except event streams
 * (`text/event-stream`), which are sent in chunks as they come.
 *
 * @module
 */

/** What a client is allowed. */
export interface HttpLimits {
  /** Time for a request to arrive whole, from its first byte (from the accept for the first). */
  requestMs: number;
  /** Time a kept-alive connection waits for its next request; also the longest stalled write. */
  idleMs: number;
  /** Connections open at once; more are closed as they come. */
  maxConnections: number;
  /** Largest request head (request line and headers). */
  maxHeadBytes: number;
  /** Largest request body. */
  maxBodyBytes: number;
}

/** The limits of the status server. */
export const STATUS_LIMITS: HttpLimits = {
  requestMs: 10_000,
  idleMs: 30_000,
  maxConnections: 256,
  maxHeadBytes: 16 * 1024,
  maxBodyBytes: 64 * 1024,
};

/** Where and how to listen. */
export interface HttpServerOptions {
  hostname: string;
  port: number;
  /** PEM certificate and key: serve HTTPS. */
  tls: { cert: string; key: string } | null;
  limits?: Partial<HttpLimits>;
  /** A request the handler failed on (answered 500). */
  onError(error: unknown): void;
  /** Connections were closed on arrival because {@linkcode HttpLimits.maxConnections} were open. */
  onTurnedAway?(count: number): void;
}

/** A listening HTTP server. */
export interface HttpServer {
  readonly addr: Deno.NetAddr;
  /** Connections open now. */
  readonly connections: number;
  /**
   * Stop accepting, close idle connections, give responses under way
   * `waitMs` to finish, then close the rest.
   *
   * @returns whether responses were cut short
   */
  shutdown(waitMs: number): Promise<boolean>;
}

/** Answers one request. */
export type HttpHandler = (request: Request) => Response | Promise<Response>;

/**
 * Listen on `options.hostname:port` and serve `handler`.
 *
 * @throws {Deno.errors.AddrInUse} and the other errors of `Deno.listen`
 */
export function serveHttp(options: HttpServerOptions, handler: HttpHandler): HttpServer {
  const limits = { ...STATUS_LIMITS, ...options.limits };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({
      hostname: options.hostname,
      port: options.port,
      cert: options.tls.cert,
      key: options.tls.key,
      alpnProtocols: ["http/1.1"],
    })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const addr = listener.addr as Deno.NetAddr;
  const scheme = options.tls ? "https" : "http";
  const open = new Set<Connection>();
  let stopping = false;
  let turnedAway = 0;
  let reportAt = 0;
  const accepting = (async () => {
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) return;
        // Out of descriptors or a connection reset before it was taken: try again soon.
        await new Promise((resolve) => setTimeout(resolve, 100));
        continue;
      }
      if (open.size >= limits.maxConnections) {
        conn.close();
        turnedAway++;
        if (Date.now() >= reportAt) {
          options.onTurnedAway?.(turnedAway);
          turnedAway = 0;
          reportAt = Date.now() + 60_000;
        }
        continue;
      }
      const connection = new Connection(conn, limits, `${scheme}://${hostPort(addr)}`, handler, {
        onError: options.onError,
        stopping: () => stopping,
      });
      open.add(connection);
      connection.serve().finally(() => open.delete(connection));
    }
  })();
  return {
    addr,
    get connections() {
      return open.size;
    },
    async shutdown(waitMs: number) {
      if (!stopping) {
        stopping = true;
        listener.close();
      }
      await accepting;
      for (const c of open) if (!c.responding) c.close();
      const deadline = Date.now() + waitMs;
      while (open.size > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const cut = open.size > 0;
      for (const c of open) c.close();
      return cut;
    },
  };
}

function hostPort(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** A request the connection cannot take, answered and then closed. */
class Refusal {
  constructor(readonly status: number, readonly message: string) {}
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  204: "No Content",
  303: "See Other",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** One client connection: requests read under deadlines, answered in turn. */
class Connection {
  #conn: Deno.Conn;
  #limits: HttpLimits;
  #base: string;
  #handler: HttpHandler;
  #server: { onError(error: unknown): void; stopping(): boolean };
  /** Bytes read and not yet taken. */
  #pending: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #scratch = new Uint8Array(16 * 1024);
  #reading: Promise<boolean> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the request being read must be whole (a write meanwhile keeps it). */
  #deadline: number | null = null;
  #closed = false;
  /** Whether a request is being answered (a stop waits for it). */
  responding = false;

  constructor(
    conn: Deno.Conn,
    limits: HttpLimits,
    base: string,
    handler: HttpHandler,
    server: { onError(error: unknown): void; stopping(): boolean },
  ) {
    this.#conn = conn;
    this.#limits = limits;
    this.#base = base;
    this.#handler = handler;
    this.#server = server;
  }

  /** Answer requests until the client leaves, breaks a limit, or the server stops. */
  async serve(): Promise<void> {
    try {
      let first = true;
      while (!this.#closed && !this.#server.stopping()) {
        const request = await this.#readRequest(first);
        first = false;
        if (request === null) break;
        if (request instanceof Refusal) {
          await this.#send(
            new Response(`${request.message}\n`, {
              status: request.status,
              headers: { "content-type": "text/plain; charset=utf-8" },
            }),
            "GET",
            false,
          );
          await this.#linger();
          break;
        }
        this.responding = true;
        let response: Response;
        try {
          response = await this.#handler(request.request);
        } catch (error) {
          this.#server.onError(error);
          response = new Response("internal error\n", { status: 500 });
        }
        const keep = request.keepAlive && !this.#server.stopping();
        await this.#send(response, request.request.method, keep);
        this.responding = false;
        if (!keep) break;
      }
    } catch {
      // A client gone, reset or out of time: its connection just ends.
    } finally {
      this.close();
    }
  }

  /**
   * After a refusal: stop writing and read (and drop) what the client is
   * still sending, for at most 2 s and 8 MiB, so that it gets to read the
   * answer instead of a reset connection.
   */
  async #linger(): Promise<void> {
    this.#arm(2_000);
    try {
      await this.#conn.closeWrite();
      for (let dropped = 0; dropped < 8 * 1024 * 1024;) {
        const n = await this.#conn.read(this.#scratch);
        if (n === null) return;
        dropped += n;
      }
    } catch { /* closed by the client or by the timer */ }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** Close the connection unless disarmed within `ms` (a pending read or write then fails). */
  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.close(), Math.max(0, ms));
  }

  /** The request being read must be whole within `ms`. */
  #armRequest(ms: number): void {
    this.#deadline = Date.now() + ms;
    this.#arm(ms);
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = null;
  }

  /**
   * Read more bytes; `false` at the end of the stream. One read at a time:
   * a caller while one is under way shares it.
   */
  #fill(): Promise<boolean> {
    this.#reading ??= this.#readMore().finally(() => this.#reading = null);
    return this.#reading;
  }

  async #readMore(): Promise<boolean> {
    const n = await this.#conn.read(this.#scratch);
    if (n === null) return false;
    const joined = new Uint8Array(this.#pending.length + n);
    joined.set(this.#pending);
    joined.set(this.#scratch.subarray(0, n), this.#pending.length);
    this.#pending = joined;
    return true;
  }

  #take(n: number): Uint8Array<ArrayBuffer> {
    const taken = this.#pending.slice(0, n);
    this.#pending = this.#pending.subarray(n);
    return taken;
  }

  /** The next request, a refusal, or `null` when the client left or stayed idle too long. */
  async #readRequest(
    first: boolean,
  ): Promise<{ request: Request; keepAlive: boolean } | Refusal | null> {
    const { requestMs, idleMs, maxHeadBytes } = this.#limits;
    if (first) this.#armRequest(requestMs);
    else {
      this.#arm(idleMs);
      // Blank lines between requests are allowed.
      while (this.#skipBlankLines() === 0) {
        if (this.#closed || !(await this.#fill())) return null;
      }
      this.#armRequest(requestMs);
    }
    let end: number;
    for (;;) {
      this.#skipBlankLines();
      end = indexOfHeadEnd(this.#pending);
      if (end >= 0) break;
      if (this.#pending.length > maxHeadBytes) {
        return new Refusal(431, `a request head may hold at most ${maxHeadBytes / 1024} KiB`);
      }
      if (!(await this.#fill())) return null;
    }
    if (end > maxHeadBytes) {
      return new Refusal(431, `a request head may hold at most ${maxHeadBytes / 1024} KiB`);
    }
    const head = this.#parseHead(latin1.decode(this.#take(end + 4)).slice(0, -4));
    if (head instanceof Refusal) return head;
    const body = await this.#readBody(head.headers);
    this.#disarm();
    if (body instanceof Refusal) return body;
    const hasBody = body.length > 0 && head.method !== "GET" && head.method !== "HEAD";
    let request: Request;
    try {
      request = new Request(head.url, {
        method: head.method,
        headers: head.headers,
        body: hasBody ? body : undefined,
      });
    } catch {
      return new Refusal(405, `method ${head.method} is not served`);
    }
    const connection = head.headers.get("connection")?.toLowerCase() ?? "";
    const keepAlive = head.version === "1"
      ? !/\bclose\b/.test(connection)
      : /\bkeep-alive\b/.test(connection);
    return { request, keepAlive };
  }

  /** Drop leading CR LF pairs; returns how many bytes are left. */
  #skipBlankLines(): number {
    let i = 0;
    while (this.#pending[i] === 13 && this.#pending[i + 1] === 10) i += 2;
    if (i > 0) this.#pending = this.#pending.subarray(i);
    return this.#pending.length;
  }

  #parseHead(
    text: string,
  ): { method: string; url: string; version: string; headers: Headers } | Refusal {
    const lines = text.split("\r\n");
    const line = REQUEST_LINE.exec(lines[0]);
    if (!line) return new Refusal(400, "not an HTTP/1.1 request");
    const [, method, target, version] = line;
    const headers = new Headers();
    for (const field of lines.slice(1)) {
      const colon = field.indexOf(":");
      const name = field.slice(0, colon);
      if (colon <= 0 || !TOKEN.test(name)) return new Refusal(400, "malformed header line");
      try {
        headers.append(name, field.slice(colon + 1).trim());
      } catch {
        return new Refusal(400, `malformed value of header ${name}`);
      }
    }
    const host = headers.get("host");
    if (host === null && version === "1") return new Refusal(400, "an HTTP/1.1 request needs Host");
    if (!target.startsWith("/")) return new Refusal(400, "the request target must be a path");
    let url: string;
    try {
      url = new URL(target, host === null ? this.#base : `${this.#base.split("//")[0]}//${host}`)
        .href;
    } catch {
      return new Refusal(400, "malformed Host or request target");
    }
    return { method, url, version, headers };
  }

  /** The request's body (by length or in chunks), within the size limit. */
  async #readBody(headers: Headers): Promise<Uint8Array<ArrayBuffer> | Refusal> {
    const max = this.#limits.maxBodyBytes;
    const tooLarge = new Refusal(413, `a request body may hold at most ${max / 1024} KiB`);
    const coding = headers.get("transfer-encoding");
    const length = headers.get("content-length");
    if (coding !== null && length !== null) {
      return new Refusal(400, "both Transfer-Encoding and Content-Length");
    }
    if (coding !== null && coding.toLowerCase() !== "chunked") {
      return new Refusal(501, `transfer coding ${coding} is not supported`);
    }
    if (length !== null && !/^\d{1,15}$/.test(length)) {
      return new Refusal(400, "malformed Content-Length");
    }
    const declared = length === null ? 0 : Number(length);
    if (declared > max) return tooLarge;
    if (coding === null && declared === 0) return new Uint8Array(0);
    if (headers.get("expect")?.toLowerCase() === "100-continue") {
      await this.#write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    if (coding === null) {
      while (this.#pending.length < declared) {
        if (!(await this.#fill())) throw new Error("the client left mid-body");
      }
      return this.#take(declared);
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const line = await this.#readLine();
      const chunk = /^([0-9A-Fa-f]{1,8})(;.*)?$/.exec(line);
      if (!chunk) return new Refusal(400, "malformed chunk");
      const n = parseInt(chunk[1], 16);
      if (n === 0) break;
      size += n;
      if (size > max) return tooLarge;
      while (this.#pending.length < n + 2) {
        if (!(await this.#fill())) throw new Error("the client left mid-body");
      }
      parts.push(this.#take(n));
      if (this.#take(2).join() !== "13,10") return new Refusal(400, "malformed chunk");
    }
    // Trailer fields, up to the blank line, are read and dropped.
    while ((await this.#readLine()) !== "");
    const body = new Uint8Array(size);
    let at = 0;
    for (const part of parts) {
      body.set(part, at);
      at += part.length;
    }
    return body;
  }

  /** One CR LF ended line of at most 1 KiB. */
  async #readLine(): Promise<string> {
    for (;;) {
      const end = this.#pending.findIndex((b, i) => b === 13 && this.#pending[i + 1] === 10);
      if (end >= 0) {
        const line = latin1.decode(this.#take(end));
        this.#take(2);
        return line;
      }
      if (this.#pending.length > 1024) throw new Error("a chunk line too long");
      if (!(await this.#fill())) throw new Error("the client left mid-body");
    }
  }

  /** Write `response`: whole with its length, or an event stream in chunks. */
  async #send(response: Response, method: string, keepAlive: boolean): Promise<void> {
    const lines = [`HTTP/1.1 ${response.status} ${REASONS[response.status] ?? ""}`];
    for (const [name, value] of response.headers) {
      if (name !== "content-length" && name !== "transfer-encoding" && name !== "connection") {
        lines.push(`${name}: ${value}`);
      }
    }
    if (!keepAlive) lines.push("connection: close");
    const noBody = method === "HEAD" || response.status === 204 || response.status === 304;
    const streamed = response.body !== null && !noBody &&
      (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
    if (!streamed) {
      const body = response.body === null ? new Uint8Array(0) : await response.bytes();
      if (response.status !== 204 && response.status !== 304) {
        lines.push(`content-length: ${body.length}`);
      }
      const head = encoder.encode(`${lines.join("\r\n")}\r\n\r\n`);
      await this.#write(noBody || body.length === 0 ? head : concat(head, body));
      return;
    }
    lines.push("transfer-encoding: chunked");
    await this.#write(encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
    const reader = response.body!.getReader();
    // A client that goes is seen at once, not at the next write: its end is read meanwhile.
    let streaming = true;
    (async () => {
      const limit = this.#limits.maxHeadBytes + this.#limits.maxBodyBytes;
      while (streaming && this.#pending.length <= limit && await this.#fill());
    })().catch(() => false).then(() => {
      if (streaming) reader.cancel().catch(() => {});
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value.length === 0) continue;
        const size = encoder.encode(`${value.length.toString(16)}\r\n`);
        await this.#write(concat(size, value, encoder.encode("\r\n")));
      }
      streaming = false;
      await this.#write(encoder.encode("0\r\n\r\n"));
    } catch (error) {
      streaming = false;
      // The client went: the stream's source hears of it through the cancel.
      await reader.cancel().catch(() => {});
      throw error;
    }
  }

  /** Write all of `bytes`, giving up after the idle time without progress. */
  async #write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      this.#arm(this.#limits.idleMs);
      at += await this.#conn.write(bytes.subarray(at));
    }
    if (this.#deadline === null) this.#disarm();
    else this.#arm(this.#deadline - Date.now());
  }
}

/** Where the blank line that ends a request head starts, or -1. */
function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return all;
}
