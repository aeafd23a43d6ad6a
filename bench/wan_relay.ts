/**
 * A long-haul link on loopback: a TCP relay that holds every chunk it reads
 * for a fixed one-way delay before writing it on, in order, in both
 * directions (50 ms each way gives 100 ms of round-trip time). Bandwidth is
 * not limited. It counts connections, bytes and turns: a turn is data from
 * the client after the last data seen came from the server, i.e. one
 * request/response exchange as the relay sees it (SSH's own window
 * adjustments and keep-alives can add some).
 *
 * @module
 */

/** What the relay has seen so far. */
export interface RelayCounts {
  /** TCP connections accepted. */
  connections: number;
  /** Turns (see the module doc), summed over the connections. */
  turns: number;
  /** Bytes client → server. */
  upBytes: number;
  /** Bytes server → client. */
  downBytes: number;
}

const CHUNK_BYTES = 64 * 1024;

/** A running relay; see the module doc. */
export class DelayRelay {
  /** Port the relay listens on (127.0.0.1). */
  readonly port: number;
  readonly oneWayMs: number;
  #listener: Deno.TcpListener;
  #targetPort: number;
  #conns = new Set<Deno.Conn>();
  #counts: RelayCounts = { connections: 0, turns: 0, upBytes: 0, downBytes: 0 };
  #accepting: Promise<void>;

  private constructor(listener: Deno.TcpListener, targetPort: number, oneWayMs: number) {
    this.#listener = listener;
    this.#targetPort = targetPort;
    this.oneWayMs = oneWayMs;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  /** Listen on a free port of 127.0.0.1 and relay to `targetPort` with `oneWayMs` each way. */
  static start(targetPort: number, oneWayMs: number): DelayRelay {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new DelayRelay(listener, targetPort, oneWayMs);
  }

  /** A copy of the counts so far. */
  counts(): RelayCounts {
    return { ...this.#counts };
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.#counts.connections++;
        this.#serve(client).catch(() => {});
      }
    } catch { /* listener closed */ }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.#targetPort });
    } catch {
      client.close();
      this.#conns.delete(client);
      return;
    }
    this.#conns.add(server);
    client.setNoDelay(true);
    server.setNoDelay(true);
    let last: "up" | "down" | null = null;
    const seen = (direction: "up" | "down", bytes: number) => {
      if (direction === "up") {
        this.#counts.upBytes += bytes;
        if (last !== "up") this.#counts.turns++;
      } else {
        this.#counts.downBytes += bytes;
      }
      last = direction;
    };
    await Promise.all([
      this.#pipe(client, server, (n) => seen("up", n)),
      this.#pipe(server, client, (n) => seen("down", n)),
    ]);
    for (const conn of [client, server]) {
      try {
        conn.close();
      } catch { /* closed already */ }
      this.#conns.delete(conn);
    }
  }

  /** Copy `from` to `to`, each chunk `oneWayMs` after it was read. */
  async #pipe(from: Deno.Conn, to: Deno.Conn, onChunk: (bytes: number) => void): Promise<void> {
    const queue: Array<{ atMs: number; data: Uint8Array }> = [];
    const wakeUp = { fn: null as (() => void) | null };
    let ended = false;
    let broken = false;
    const writer = (async () => {
      try {
        while (true) {
          if (queue.length === 0) {
            if (ended) break;
            await new Promise<void>((resolve) => wakeUp.fn = resolve);
            continue;
          }
          const waitMs = queue[0].atMs - performance.now();
          if (waitMs > 0) {
            await new Promise((resolve) => setTimeout(resolve, waitMs));
            continue;
          }
          const { data } = queue.shift()!;
          for (let written = 0; written < data.length;) {
            written += await to.write(data.subarray(written));
          }
        }
        await to.closeWrite();
      } catch {
        broken = true;
      }
    })();
    const buffer = new Uint8Array(CHUNK_BYTES);
    try {
      while (!broken) {
        const n = await from.read(buffer);
        if (n === null) break;
        onChunk(n);
        queue.push({ atMs: performance.now() + this.oneWayMs, data: buffer.slice(0, n) });
        wakeUp.fn?.();
        wakeUp.fn = null;
      }
    } catch { /* the other side went away */ }
    ended = true;
    wakeUp.fn?.();
    await writer;
  }

  /** Stop listening and drop every relayed connection. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* closed already */ }
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* closed already */ }
    }
    await this.#accepting;
  }
}
