/**
 * The HTTPS side of the status server, on `node:tls`. `Deno.listenTls` is
 * not used: a connection closed before its TLS handshake (a client that
 * connects and sends nothing) keeps its socket open until the client acts,
 * so a deadline could not free it. Here the handshake must end within the
 * request time, or the plain socket under it is destroyed, which does free
 * it. Connections beyond the most allowed are closed as they come (the
 * `node:tls` server cannot leave them queued).
 *
 * @module
 */
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

/** What the status server's connections need of a socket (a `Deno.Conn` has it). */
export interface ByteConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
}

/** A listening TLS server handing out connections whose handshake is done. */
export interface TlsListener {
  readonly addr: Deno.NetAddr;
  /** Stop listening and drop connections still in their handshake. */
  close(): void;
}

/**
 * Listen on `hostname:port` with `cert` and `key` (PEM), HTTP/1.1 by ALPN.
 *
 * @param room whether another connection may be taken (`handshaking`: those not yet handed out)
 * @throws the listen error (`code` `EADDRINUSE`, `EACCES`, ...)
 */
export async function listenTls(
  options: { hostname: string; port: number; cert: string; key: string; handshakeMs: number },
  room: (handshaking: number) => boolean,
  onConnection: (conn: ByteConn) => void,
): Promise<TlsListener> {
  const tls = await import("node:tls");
  const handshaking = new Map<string, { raw: Socket; timer: ReturnType<typeof setTimeout> }>();
  const idOf = (s: Socket) => `${s.remoteAddress}|${s.remotePort}`;
  const server = tls.createServer(
    { cert: options.cert, key: options.key, ALPNProtocols: ["http/1.1"] },
    (socket: TLSSocket) => {
      const pending = handshaking.get(idOf(socket));
      clearTimeout(pending?.timer);
      handshaking.delete(idOf(socket));
      onConnection(new TlsSocketConn(socket));
    },
  );
  server.on("connection", (raw: Socket) => {
    raw.on("error", () => {});
    if (!room(handshaking.size)) {
      raw.destroy();
      return;
    }
    const id = idOf(raw);
    const timer = setTimeout(() => {
      handshaking.delete(id);
      raw.destroy();
    }, options.handshakeMs);
    handshaking.set(id, { raw, timer });
    raw.once("close", () => {
      if (handshaking.get(id)?.raw === raw) {
        clearTimeout(timer);
        handshaking.delete(id);
      }
    });
  });
  // A failed handshake ends its own connection; nothing to answer.
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as { address: string; port: number };
  return {
    addr: { transport: "tcp", hostname: bound.address, port: bound.port },
    close() {
      server.close();
      for (const { raw, timer } of handshaking.values()) {
        clearTimeout(timer);
        raw.destroy();
      }
      handshaking.clear();
    },
  };
}

/** A `node:tls` socket read and written like a `Deno.Conn`. */
class TlsSocketConn implements ByteConn {
  #socket: TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #failure: Error | null = null;
  #wake: (() => void) | null = null;
  #pendingWrites = new Set<(error: Error) => void>();

  constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on("data", (data: Uint8Array) => {
      this.#chunks.push(data);
      this.#buffered += data.length;
      // Not read yet: stop taking more until it is.
      if (this.#buffered > 64 * 1024) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (error: Error) => {
      this.#failure ??= error;
      this.#notify();
    });
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#failure) throw this.#failure;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length, p.length - n);
      p.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered <= 64 * 1024) this.#socket.resume();
    return n;
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#socket.destroyed) return Promise.reject(new Deno.errors.BadResource("closed"));
    return new Promise((resolve, reject) => {
      // The callback comes once the bytes are handed to the system; a close meanwhile fails it.
      this.#pendingWrites.add(reject);
      this.#socket.write(p, (error) => {
        this.#pendingWrites.delete(reject);
        if (error) reject(error);
        else resolve(p.length);
      });
    });
  }

  closeWrite(): Promise<void> {
    this.#socket.end();
    return Promise.resolve();
  }

  close(): void {
    this.#failure ??= new Deno.errors.Interrupted("closed");
    this.#socket.destroy();
    for (const reject of this.#pendingWrites) reject(this.#failure);
    this.#pendingWrites.clear();
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
