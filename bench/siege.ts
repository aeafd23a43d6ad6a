/**
 * A siege of the status page: a fixed number of connection attempts kept in
 * flight, each sending its request head one line per second and never
 * ending it; a connection the server closes is opened again at once.
 *
 * @module
 */

/** What a siege saw. */
export interface SiegeCount {
  /** Connections opened. */
  opened: number;
  /** Connections the server closed (at once, or when their time ran out). */
  closedByServer: number;
  /** Answers the server sent (a head is never finished, so none should come). */
  answered: number;
}

/** Connection attempts kept in flight against one port until stopped. */
export class Siege {
  #running = true;
  #loops: Promise<void>[];
  #count: SiegeCount = { opened: 0, closedByServer: 0, answered: 0 };
  #open = new Set<Deno.Conn>();

  private constructor(port: number, inFlight: number) {
    this.#loops = Array.from({ length: inFlight }, () => this.#attack(port));
  }

  /** Start `inFlight` attempts against 127.0.0.1:`port`. */
  static start(port: number, inFlight: number): Siege {
    return new Siege(port, inFlight);
  }

  async #attack(port: number): Promise<void> {
    const encoder = new TextEncoder();
    const buffer = new Uint8Array(4096);
    while (this.#running) {
      let conn: Deno.Conn;
      try {
        conn = await Deno.connect({ hostname: "127.0.0.1", port });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      this.#count.opened++;
      this.#open.add(conn);
      const closed = (async () => {
        try {
          const n = await conn.read(buffer);
          if (n !== null) this.#count.answered++;
        } catch { /* reset */ }
        if (this.#running) this.#count.closedByServer++;
      })();
      try {
        await conn.write(encoder.encode(`GET / HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n`));
        for (let line = 0; this.#running; line++) {
          const gone = await Promise.race([
            closed.then(() => true),
            new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000)),
          ]);
          if (gone) break;
          await conn.write(encoder.encode(`x-line-${line}: 1\r\n`));
        }
      } catch { /* closed by the server */ }
      this.#open.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
      await closed;
    }
  }

  /** Stop attacking, close every connection, and say what was seen. */
  async stop(): Promise<SiegeCount> {
    this.#running = false;
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await Promise.all(this.#loops);
    return this.#count;
  }
}
