/**
 * Reading HTTP/1.1 requests off a connection within size limits: the head
 * (request line and header fields) and the body, by `Content-Length` or in
 * chunks. Whatever breaks the rules becomes a {@linkcode Refusal} with the
 * status to answer; deadlines are the connection's (`http_server.ts`).
 *
 * @module
 */
import type { ByteConn } from "./tls_listener.ts";

/** A request that cannot be taken: answered with `status`, then the connection is closed. */
export class Refusal {
  constructor(readonly status: number, readonly message: string) {}
}

/** A request read whole, and whether the client keeps the connection for another. */
export interface ReadRequest {
  request: Request;
  keepAlive: boolean;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;
const latin1 = new TextDecoder("latin1");

/** The bytes of one connection, read as requests need them. */
export class RequestReader {
  #conn: ByteConn;
  /** `scheme://host:port` of the server: the base of a request without `Host`. */
  #base: string;
  #limits: { maxHeadBytes: number; maxBodyBytes: number };
  /** Bytes read and not yet taken. */
  #pending: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #scratch = new Uint8Array(16 * 1024);
  #reading: Promise<boolean> | null = null;

  constructor(
    conn: ByteConn,
    base: string,
    limits: { maxHeadBytes: number; maxBodyBytes: number },
  ) {
    this.#conn = conn;
    this.#base = base;
    this.#limits = limits;
  }

  /** Bytes read and not yet taken by a request. */
  get buffered(): number {
    return this.#pending.length;
  }

  /**
   * Read more bytes; `false` at the end of the stream. One read at a time:
   * a caller while one is under way shares it.
   */
  fill(): Promise<boolean> {
    this.#reading ??= this.#readMore().finally(() => this.#reading = null);
    return this.#reading;
  }

  /**
   * Wait for the first byte of the next request (blank lines between
   * requests are dropped); `false` when the client left.
   */
  async nextRequestStarted(): Promise<boolean> {
    while (this.#skipBlankLines() === 0) {
      if (!(await this.fill())) return false;
    }
    return true;
  }

  /**
   * The next request, a refusal, or `null` when the client left before its
   * head was whole. `onContinue` answers `Expect: 100-continue`.
   */
  async read(onContinue: () => Promise<void>): Promise<ReadRequest | Refusal | null> {
    const { maxHeadBytes } = this.#limits;
    const tooLarge = new Refusal(431, `a request head may hold at most ${maxHeadBytes / 1024} KiB`);
    let end: number;
    for (;;) {
      this.#skipBlankLines();
      end = indexOfHeadEnd(this.#pending);
      if (end >= 0) break;
      if (this.#pending.length > maxHeadBytes) return tooLarge;
      if (!(await this.fill())) return null;
    }
    if (end > maxHeadBytes) return tooLarge;
    const head = this.#parseHead(latin1.decode(this.#take(end + 4)).slice(0, -4));
    if (head instanceof Refusal) return head;
    const body = await this.#readBody(head.headers, onContinue);
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
      const base = host === null ? this.#base : `${this.#base.split("//")[0]}//${host}`;
      url = new URL(target, base).href;
    } catch {
      return new Refusal(400, "malformed Host or request target");
    }
    return { method, url, version, headers };
  }

  /** The request's body (by length or in chunks), within the size limit. */
  async #readBody(
    headers: Headers,
    onContinue: () => Promise<void>,
  ): Promise<Uint8Array<ArrayBuffer> | Refusal> {
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
    if (headers.get("expect")?.toLowerCase() === "100-continue") await onContinue();
    if (coding === null) {
      await this.#need(declared);
      return this.#take(declared);
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const chunk = /^([0-9A-Fa-f]{1,8})(;.*)?$/.exec(await this.#readLine());
      if (!chunk) return new Refusal(400, "malformed chunk");
      const n = parseInt(chunk[1], 16);
      if (n === 0) break;
      size += n;
      if (size > max) return tooLarge;
      await this.#need(n + 2);
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

  /** Wait until `n` bytes are buffered. */
  async #need(n: number): Promise<void> {
    while (this.#pending.length < n) {
      if (!(await this.fill())) throw new Error("the client left mid-body");
    }
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
      if (!(await this.fill())) throw new Error("the client left mid-body");
    }
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
