/**
 * Loopback network pieces for tests: a free port, a raw client that can
 * break the rules of HTTP, and a self-signed certificate.
 *
 * @module
 */
import { join } from "node:path";

/**
 * A free TCP port on 127.0.0.1 (closed again, so a daemon can take it): one the system chooses, or
 * one of the range `ITX_TEST_PORTS` names (`19700-19899`), for test runs kept to a range. It is
 * not one handed out in the last {@linkcode CLAIM_MS} to any test (see {@linkcode freePorts}).
 */
export function freePort(): number {
  return freePorts(1);
}

/**
 * The first of `count` consecutive ports free now ({@linkcode freePort}'s choice for one; with
 * `ITX_TEST_PORTS`, all of them inside its range), e.g. a passive FTP server's data ports.
 *
 * Test files run at once and a port is bound later, by the program it is for: two tests looking
 * at the same time would find the same port free and the second program would not start (or
 * another test's server would answer it). So each port handed out is written down in a file all
 * tests share, with the time, and not handed out again before {@linkcode CLAIM_MS} have passed
 * (unless no other port is left).
 */
export function freePorts(count: number): number {
  return withClaims((claims) => {
    const now = Date.now();
    const unclaimed = (port: number) => now - (claims.get(port) ?? 0) >= CLAIM_MS;
    const first = pickPorts(count, unclaimed) ?? pickPorts(count, () => true);
    if (first === null) throw new Error(`No ${count} free port(s) in a row${rangeSaid()}`);
    for (let n = 0; n < count; n++) claims.set(first + n, now);
    for (const [port, at] of claims) if (now - at >= CLAIM_MS) claims.delete(port);
    return first;
  });
}

/** How long a port handed out by {@linkcode freePorts} is not handed out again. */
export const CLAIM_MS = 120_000;

/** The ports handed out lately, and when (see {@linkcode freePorts}). */
const CLAIMS_FILE = `/tmp/itx-test-port-claims-${Deno.uid()}.json`;

/** Run `fn` on the claims, alone (an exclusive lock on the file), and save what it left. */
function withClaims<T>(fn: (claims: Map<number, number>) => T): T {
  using file = Deno.openSync(CLAIMS_FILE, { read: true, write: true, create: true, mode: 0o600 });
  file.lockSync(true);
  const claims = new Map<number, number>();
  try {
    const saved = JSON.parse(Deno.readTextFileSync(CLAIMS_FILE) || "{}");
    for (const [port, at] of Object.entries(saved)) claims.set(Number(port), Number(at));
  } catch { /* unreadable: none claimed */ }
  const result = fn(claims);
  Deno.writeTextFileSync(CLAIMS_FILE, JSON.stringify(Object.fromEntries(claims)));
  file.unlockSync();
  return result;
}

/** `ITX_TEST_PORTS`'s range, in the words of an error. */
function rangeSaid(): string {
  const range = Deno.env.get("ITX_TEST_PORTS");
  return range ? ` in ITX_TEST_PORTS ${range}` : "";
}

/** The first of `count` consecutive ports free now that `allowed` takes, or `null`. */
function pickPorts(count: number, allowed: (port: number) => boolean): number | null {
  const fits = (first: number) =>
    Array.from({ length: count }, (_, n) => first + n).every((port) =>
      allowed(port) && isFree(port)
    );
  const range = /^(\d+)-(\d+)$/.exec(Deno.env.get("ITX_TEST_PORTS") ?? "");
  if (range !== null) {
    const [low, high] = [Number(range[1]), Number(range[2]) - count + 1];
    const start = low + Math.floor(Math.random() * Math.max(1, high - low + 1));
    for (let i = 0; i <= high - low; i++) {
      const first = low + (start - low + i) % (high - low + 1);
      if (fits(first)) return first;
    }
    return null;
  }
  for (let tries = 0; tries <= 100; tries++) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const first = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (first + count - 1 <= 65535 && fits(first)) return first;
  }
  return null;
}

/** Whether `port` on 127.0.0.1 can be taken now. */
function isFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** A raw HTTP client connection: bytes in, bytes out, for clients that break the rules. */
export class RawClient {
  #conn: Deno.Conn;
  #decoder = new TextDecoder();
  received = "";

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connect to `port` on 127.0.0.1. */
  static async open(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async send(text: string): Promise<void> {
    await this.#conn.write(new TextEncoder().encode(text));
  }

  /** Read until `received` matches `pattern`; fails if the server closes first. */
  async readUntil(pattern: RegExp): Promise<string> {
    const buffer = new Uint8Array(64 * 1024);
    while (!pattern.test(this.received)) {
      const n = await this.#conn.read(buffer);
      if (n === null) {
        throw new Error(`closed before ${pattern}; got ${JSON.stringify(this.received)}`);
      }
      this.received += this.#decoder.decode(buffer.subarray(0, n));
    }
    return this.received;
  }

  /** Read until the server closes the connection; what came meanwhile is returned. */
  async readToEnd(): Promise<string> {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await this.#conn.read(buffer);
      } catch (error) {
        // Reset by the server, or closed here meanwhile.
        if (
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.Interrupted ||
          error instanceof Deno.errors.BadResource
        ) return this.received;
        throw error;
      }
      if (n === null) return this.received;
      this.received += this.#decoder.decode(buffer.subarray(0, n));
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/**
 * A self-signed certificate for 127.0.0.1 and localhost (or the `names` given, as openssl's
 * subjectAltName list) made by `openssl` in `dir`: `cert.pem` and `key.pem` (0600).
 */
export async function selfSignedCert(
  dir: string,
  names = "IP:127.0.0.1,DNS:localhost",
): Promise<{ cert: string; key: string }> {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const made = await new Deno.Command("openssl", {
    args: ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert]
      .concat(["-days", "2", "-subj", "/CN=localhost"])
      .concat(["-addext", `subjectAltName=${names}`])
      .concat(["-addext", "basicConstraints=critical,CA:FALSE"]),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!made.success) throw new Error(new TextDecoder().decode(made.stderr));
  await Deno.chmod(key, 0o600);
  return { cert, key };
}

/** A running {@linkcode startCuttingProxy}. */
export interface CuttingProxy {
  /** The port to connect to instead of the server's. */
  port: number;
  /**
   * Cut every connection open now: its server side is closed at once, its client side only when
   * the client next writes (closed then, unanswered): a connection that looks open until used, as
   * one whose server went away without a word on the way.
   */
  cut(): void;
  /** Let the connections held (`held`) through to the server, and those that come later. */
  release(): void;
  stop(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 (a free port) to `serverPort` there that can cut its connections.
 * With `held`, a connection is accepted but reaches the server only once `release` is called (a
 * server slow to answer, for as long as a test needs).
 */
export function startCuttingProxy(
  serverPort: number,
  options: { held?: boolean } = {},
): CuttingProxy {
  let release = () => {};
  const released = options.held ? new Promise<void>((resolve) => release = resolve) : null;
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const pairs = new Set<{ client: Deno.Conn; server: Deno.Conn; cut: boolean }>();
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch { /* closed already */ }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn, stopsOnCut: () => boolean) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null || stopsOnCut()) break;
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch { /* one side closed */ }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      await released;
      const server = await Deno.connect({ hostname: "127.0.0.1", port: serverPort });
      const pair = { client, server, cut: false };
      pairs.add(pair);
      // Client to server: once cut, the client's next bytes close its side, unanswered.
      pipe(client, server, () => pair.cut).finally(() => {
        closeQuietly(client);
        closeQuietly(server);
        pairs.delete(pair);
      });
      // Server to client: a cut server side says nothing to the client.
      pipe(server, client, () => pair.cut).finally(() => {
        if (!pair.cut) closeQuietly(client);
      });
    }
  })().catch(() => {});
  return {
    port,
    release,
    cut() {
      for (const pair of pairs) {
        pair.cut = true;
        closeQuietly(pair.server);
      }
    },
    async stop() {
      release();
      listener.close();
      for (const pair of pairs) {
        closeQuietly(pair.client);
        closeQuietly(pair.server);
      }
      await accepting;
    },
  };
}
