/**
 * The status server's connections: HTTP/1.1 served by the daemon itself, so
 * that no client can hold them. A request must arrive whole (head and body)
 * within {@linkcode HttpLimits.requestMs} of its first byte (of the accept,
 * for a connection's first request); a kept-alive connection waits
 * {@linkcode HttpLimits.idleMs} for its next request, and a response that
 * the client stops reading is given up after as long; a request head may
 * hold 16 KiB and a body 64 KiB; with {@linkcode HttpLimits.maxConnections}
 * open, new ones wait in the system's queue (not accepted, costing nothing)
 * until one ends. With a certificate the same is served over TLS.
 *
 * Responses are sent whole with their length, except event streams
 * (`text/event-stream`), which are sent in chunks as they come.
 *
 * @module
 */
import { type ReadRequest, Refusal, RequestReader } from "./http_request.ts";
import { type ByteConn, listenTls } from "./tls_listener.ts";

/** What a client is allowed. */
export interface HttpLimits {
  /** Time for a request to arrive whole, from its first byte (from the accept for the first). */
  requestMs: number;
  /** Time a kept-alive connection waits for its next request; also the longest stalled write. */
  idleMs: number;
  /** Connections open at once; more wait (unaccepted) until one ends. */
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
  /**
   * {@linkcode HttpLimits.maxConnections} are open: new ones wait until one
   * ends (said at most once a minute).
   */
  onFull?(): void;
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
 * @throws {Deno.errors.AddrInUse} and the other errors of `Deno.listen`;
 *   with TLS, the listen error of `node:tls` (`code` `EADDRINUSE`, ...)
 */
export async function serveHttp(
  options: HttpServerOptions,
  handler: HttpHandler,
): Promise<HttpServer> {
  const limits = { ...STATUS_LIMITS, ...options.limits };
  const open = new Set<Connection>();
  let stopping = false;
  /** When the next "full" may be said, on the monotonic clock (a stepped wall clock moves it not). */
  let reportAt = -Infinity;
  /** Resolved when a connection ends: an accept waiting for a free place goes on. */
  let placeFreed: (() => void) | null = null;
  const full = () => {
    if (performance.now() >= reportAt) {
      options.onFull?.();
      reportAt = performance.now() + 60_000;
    }
  };
  let base = "";
  const serve = (conn: ByteConn) => {
    const connection = new Connection(conn, limits, base, handler, {
      onError: options.onError,
      stopping: () => stopping,
    });
    open.add(connection);
    connection.serve().finally(() => {
      open.delete(connection);
      placeFreed?.();
      placeFreed = null;
    });
  };
  let addr: Deno.NetAddr;
  let stopListening: () => void;
  let accepting: Promise<void> = Promise.resolve();
  if (options.tls) {
    const listener = await listenTls(
      { ...options, ...options.tls, handshakeMs: limits.requestMs },
      (handshaking) => {
        const room = open.size + handshaking < limits.maxConnections && !stopping;
        if (!room && !stopping) full();
        return room;
      },
      serve,
    );
    addr = listener.addr;
    stopListening = () => listener.close();
  } else {
    const listener = Deno.listen({ hostname: options.hostname, port: options.port });
    addr = listener.addr as Deno.NetAddr;
    stopListening = () => listener.close();
    accepting = (async () => {
      while (!stopping) {
        if (open.size >= limits.maxConnections) {
          // Full: new connections wait in the system's queue instead of costing an accept each.
          full();
          await new Promise<void>((resolve) => placeFreed = resolve);
          continue;
        }
        try {
          serve(await listener.accept());
        } catch (error) {
          if (stopping || error instanceof Deno.errors.BadResource) return;
          // Out of descriptors or a connection reset before it was taken: try again soon.
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    })();
  }
  base = `${options.tls ? "https" : "http"}://${hostPort(addr)}`;
  return {
    addr,
    get connections() {
      return open.size;
    },
    async shutdown(waitMs: number) {
      if (!stopping) {
        stopping = true;
        stopListening();
        placeFreed?.();
      }
      await accepting;
      for (const c of open) if (!c.responding) c.close();
      const deadline = performance.now() + waitMs;
      while (open.size > 0 && performance.now() < deadline) {
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

/** One client connection: requests read under deadlines, answered in turn. */
class Connection {
  #conn: ByteConn;
  #limits: HttpLimits;
  #handler: HttpHandler;
  #server: { onError(error: unknown): void; stopping(): boolean };
  #reader: RequestReader;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * When the request being read must be whole, on the monotonic clock
   * (`performance.now()`; a write meanwhile keeps it).
   */
  #deadline: number | null = null;
  #closed = false;
  /** Whether a request is being answered (a stop waits for it). */
  responding = false;

  constructor(
    conn: ByteConn,
    limits: HttpLimits,
    base: string,
    handler: HttpHandler,
    server: { onError(error: unknown): void; stopping(): boolean },
  ) {
    this.#conn = conn;
    this.#limits = limits;
    this.#reader = new RequestReader(conn, base, limits);
    this.#handler = handler;
    this.#server = server;
  }

  /** Answer requests until the client leaves, breaks a limit, or the server stops. */
  async serve(): Promise<void> {
    try {
      let first = true;
      while (!this.#closed && !this.#server.stopping()) {
        const request = await this.#nextRequest(first);
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
        // A refused request (no token, an unknown host) keeps no connection: idle ones of clients
        // without the token would otherwise hold every place and starve its user.
        const refused = response.status === 401 || response.status === 403;
        const keep = request.keepAlive && !refused && !this.#server.stopping();
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
      const buffer = new Uint8Array(16 * 1024);
      for (let dropped = 0; dropped < 8 * 1024 * 1024;) {
        const n = await this.#conn.read(buffer);
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

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = null;
  }

  /**
   * The next request, a refusal, or `null` when the client left or stayed
   * idle too long: the first within the request time of the accept, a later
   * one within the idle time and then the request time of its first byte.
   */
  async #nextRequest(first: boolean): Promise<ReadRequest | Refusal | null> {
    const { requestMs, idleMs } = this.#limits;
    if (!first) {
      this.#arm(idleMs);
      if (!(await this.#reader.nextRequestStarted())) return null;
    }
    this.#deadline = performance.now() + requestMs;
    this.#arm(requestMs);
    const request = await this.#reader.read(() =>
      this.#write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"))
    );
    this.#disarm();
    return request;
  }

  /** Write `response`: whole with its length, or an event stream in chunks. */
  async #send(response: Response, method: string, keepAlive: boolean): Promise<void> {
    const lines = [`HTTP/1.1 ${response.status} ${REASONS[response.status] ?? ""}`];
    for (const [name, value] of response.headers) {
      if (name !== "content-length" && name !== "transfer-encoding" && name !== "connection") {
        lines.push(`${name}: ${value}`);
      }
    }
    lines.push(`date: ${new Date().toUTCString()}`);
    if (!keepAlive) lines.push("connection: close");
    const noBody = method === "HEAD" || response.status === 204 || response.status === 304;
    const streamed = response.body !== null &&
      (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
    if (streamed && noBody) {
      // The head of an event stream: it has no length, and its source is let go at once.
      await response.body!.cancel();
      await this.#write(encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
      return;
    }
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
      while (streaming && this.#reader.buffered <= limit && await this.#reader.fill());
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
    else this.#arm(this.#deadline - performance.now());
  }
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
