/**
 * A siege of the status page: a fixed number of connection attempts kept in
 * flight, each sending its request head one line per second and never
 * ending it; a connection the server closes is opened again at once.
 *
 * Runs in a process of its own (`deno run --allow-net bench/siege.ts PORT
 * IN_FLIGHT`; SIGTERM stops it and it prints its {@linkcode SiegeCount} as
 * JSON), so that it does not slow the benchmark's writer.
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
  #count: SiegeCount = { opened: 0, closedByServer: 0, answered: 0 };
  #open = new Set<Deno.Conn>();

  private constructor(port: number, inFlight: number) {
    for (let i = 0; i < inFlight; i++) this.#attack(port);
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

  /** Stop attacking, close every open connection, and say what was seen. */
  stop(): SiegeCount {
    this.#running = false;
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    // Attempts still connecting (queued by a full server) are left to the process's end.
    return { ...this.#count };
  }
}

/** A siege in a process of its own. */
export class SiegeProcess {
  #child: Deno.ChildProcess;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
  }

  /** Start `inFlight` attempts against 127.0.0.1:`port` from a new process. */
  static start(port: number, inFlight: number): SiegeProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", import.meta.filename!, String(port), String(inFlight)],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return new SiegeProcess(child);
  }

  /** Stop the siege; what it saw. */
  async stop(): Promise<SiegeCount> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* already gone */ }
    const { stdout } = await this.#child.output();
    return JSON.parse(new TextDecoder().decode(stdout));
  }
}

if (import.meta.main) {
  const [port, inFlight] = Deno.args.map(Number);
  const siege = Siege.start(port, inFlight);
  Deno.addSignalListener("SIGTERM", () => {
    console.log(JSON.stringify(siege.stop()));
    Deno.exit(0);
  });
}
