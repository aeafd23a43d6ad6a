/**
 * The status server: the page, the JSON API, Server-Sent Events and
 * `/metrics` on `status_listen`. Safe by default: loopback only unless a
 * token is set; with a token every request must carry it (compared in
 * constant time); actions are POST only and refused from another origin; a
 * loopback server answers only to its own host names (no DNS rebinding).
 * The connections themselves (deadlines, sizes, how many) are held by
 * `http_server.ts`.
 *
 * Server-Sent Events of the status server (`/api/events`): the status pushed
 * to every open page when something changed, throttled, with a heartbeat.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { logger } from "../log/logging.ts";
import {
  ApiError,
  jobAction,
  json,
  nightsReport,
  RecentDurations,
  SECURITY_HEADERS,
  statusReport,
  type StatusSource,
  text,
  transfersReport,
} from "./api.ts";
import type { StatusEvents } from "./events.ts";
import type { ListenSettings } from "./listen.ts";
import { Metrics } from "./metrics.ts";
import { OpenFdCounter } from "../process/open_fds.ts";
import { type HttpServer, serveHttp, STATUS_LIMITS } from "./http_server.ts";
import { PAGE_CSP, STATUS_PAGE } from "./page.ts";

/** Longest a stop waits for the status page's open requests. */
const SHUTDOWN_WAIT_MS = 2_000;

/** Name of the cookie that carries the token. */
const TOKEN_COOKIE = "itx_token";

/** A running status server. */
export interface StatusServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Stop listening and end every pushed stream. */
  close(): Promise<void>;
}

/**
 * Start the status server. A busy address or a missing permission is logged
 * and `null` returned: the daemon keeps transferring without the page.
 */
export async function startStatusServer(
  settings: ListenSettings,
  source: StatusSource,
  events: StatusEvents,
): Promise<StatusServer | null> {
  const log = logger("status");
  const metrics = new Metrics();
  // Started now: the daemon may give up starting programs once the page listens.
  const openFds = OpenFdCounter.start();
  const durations = new RecentDurations();
  const push = new Pusher(
    () => JSON.stringify(statusReport(source, durations)),
    () => source.reports.stale,
  );
  const stopListening = events.listen((event) => {
    metrics.record(event);
    durations.record(event);
    source.reports.changed();
    push.changed();
  });
  const handler = (request: Request): Promise<Response> | Response => {
    const refused = checkRequest(request, settings);
    if (refused) return refused;
    return route(request, settings, source, { metrics, durations, push, openFds });
  };
  let server: HttpServer;
  // An IPv6 address in brackets, as in a URL: http://[::1]:8765/.
  const host = settings.hostname.includes(":") ? `[${settings.hostname}]` : settings.hostname;
  const address = `${host}:${settings.port}`;
  try {
    server = await serveHttp({
      hostname: settings.hostname,
      port: settings.port,
      tls: settings.tls,
      onError: (error) => {
        log.error("Status page request failed: {error}", { error: String(error) });
      },
      onFull: () => {
        // Over HTTPS the TLS server cannot leave them queued: they are closed (tls_listener.ts).
        const fate = settings.tls ? "new ones are closed" : "new ones wait until one ends";
        log.warn("Status page: {max} connections are open, the most it serves; {fate}", {
          max: STATUS_LIMITS.maxConnections,
          fate,
        });
      },
    }, handler);
  } catch (error) {
    stopListening();
    openFds?.close();
    const code = (error as { code?: string }).code;
    const reason = error instanceof Deno.errors.AddrInUse || code === "EADDRINUSE"
      ? "the address is in use (another image-transfer, or another program?)"
      : error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied ||
          code === "EACCES"
      ? `the network permission does not allow listening there (started with --deny-net or a narrower --allow-net?); allow ${address}`
      : error instanceof Error
      ? error.message
      : String(error);
    log.error("Status page not started on {address}: {reason}; transfers go on without it", {
      address,
      reason,
    });
    return null;
  }
  log.info(`Status page on ${settings.tls ? "https" : "http"}://{address}/`, { address });
  return {
    addr: server.addr,
    async close() {
      stopListening();
      openFds?.close();
      push.close();
      // Open requests get a moment to finish; a stop never waits longer on a page.
      const waited = await server.shutdown(SHUTDOWN_WAIT_MS);
      if (waited) {
        log.warn("Status page connections still open after {seconds} s; stopping without them", {
          seconds: SHUTDOWN_WAIT_MS / 1000,
        });
      }
    },
  };
}

async function route(
  request: Request,
  settings: ListenSettings,
  source: StatusSource,
  { metrics, durations, push, openFds }: {
    metrics: Metrics;
    durations: RecentDurations;
    push: Pusher;
    openFds: OpenFdCounter | null;
  },
): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  try {
    const action = /^\/api\/jobs\/([^/]+)\/([a-z]+)$/.exec(path);
    if (action) {
      if (request.method !== "POST") return text(405, "actions take POST\n", { allow: "POST" });
      // The connection took the body whole, refusing one over 64 KiB (http_server.ts).
      const given = await request.text();
      // A name that is no valid escape (`%E0`) names no job: 404, as any other unknown name.
      const body = jobAction(source, safeDecode(action[1]), action[2], given);
      source.reports.changed();
      push.changed();
      return json(200, body);
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "read-only: use GET\n", { allow: "GET" });
    }
    switch (path) {
      case "/":
        if (settings.token !== null && url.searchParams.has("token")) {
          // The token from a link becomes a cookie; the address bar forgets it.
          return new Response(null, {
            status: 303,
            headers: {
              location: "/",
              "set-cookie": `${TOKEN_COOKIE}=${
                encodeURIComponent(url.searchParams.get("token")!)
              }; HttpOnly; SameSite=Strict; Path=/${settings.tls ? "; Secure" : ""}`,
            },
          });
        }
        return new Response(STATUS_PAGE, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": PAGE_CSP,
            ...SECURITY_HEADERS,
          },
        });
      case "/api/status":
        return json(200, statusReport(source, durations));
      case "/api/transfers":
        return json(200, transfersReport(source, durations, url.searchParams));
      case "/api/nights":
        return json(200, nightsReport(source, url.searchParams));
      case "/api/events":
        return push.stream();
      case "/metrics":
        return text(
          200,
          metrics.render(
            source.jobs().map((j) => j.snapshot()),
            source.build,
            source.startedAt,
            Date.now(),
            await openFds?.count() ?? null,
            source.reloadRefused() !== null,
          ),
          { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        );
      default:
        return text(404, "not found\n");
    }
  } catch (error) {
    if (error instanceof ApiError) return json(error.status, { error: error.message });
    throw error;
  }
}

/** The refusal for a request that may not be served, or `null`. */
function checkRequest(request: Request, settings: ListenSettings): Response | null {
  const url = new URL(request.url);
  // HTTP/2 (over HTTPS) names the host in :authority, which the request's URL carries.
  const host = request.headers.get("host") ?? url.host;
  if (settings.loopback) {
    const port = settings.port;
    const names = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
    if (!names.includes(host) && host !== `${settings.hostname}:${port}`) {
      return text(403, "unknown host name\n");
    }
  }
  if (settings.token !== null && !hasToken(request, settings.token)) {
    return text(401, "this status page needs its token (open /?token=TOKEN once)\n", {
      "www-authenticate": 'Bearer realm="image-transfer"',
    });
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    const origin = request.headers.get("origin");
    const site = request.headers.get("sec-fetch-site");
    if ((origin !== null && origin !== `${url.protocol}//${host}`) || site === "cross-site") {
      return text(403, "cross-origin request refused\n");
    }
  }
  return null;
}

/** Whether the request carries `token` (Bearer header or cookie), compared in constant time. */
function hasToken(request: Request, token: string): boolean {
  const bearer = /^Bearer (.+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
  const cookie = (request.headers.get("cookie") ?? "").split(/;\s*/)
    .find((c) => c.startsWith(`${TOKEN_COOKIE}=`))?.slice(TOKEN_COOKIE.length + 1);
  const url = new URL(request.url);
  // A link `/?token=...` opens the page once (it then sets the cookie).
  const link = url.pathname === "/" && request.method === "GET"
    ? url.searchParams.get("token") ?? undefined
    : undefined;
  // A fresh link wins over a cookie left by an old token.
  const given = bearer ?? link ?? (cookie === undefined ? undefined : safeDecode(cookie));
  if (given === undefined) return false;
  // Equal-length digests: the comparison takes the same time whatever was given.
  const digest = (s: string) => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Pushed updates are at most this often (a burst must not flood the browser). */
export const PUSH_EVERY_MS = 500;
/** An update is pushed at least this often (uptime, keep-alive). */
const HEARTBEAT_MS = 15_000;
/** Updates a page may leave unread before its stream is ended. */
const MAX_UNREAD = 20;
/** Most pages taking live updates at once; the others are told to come back later. */
export const MAX_STREAMS = 50;
/** Seconds a page turned away is told to wait before it tries again. */
const RETRY_AFTER_S = 10;

/**
 * Server-Sent Events to every open page: the status when something changed,
 * at most once per {@linkcode PUSH_EVERY_MS}, built once for all pages.
 */
export class Pusher {
  #clients = new Set<ReadableStreamDefaultController<Uint8Array>>();
  #build: () => string;
  #stale: () => boolean;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** When the last update went (`performance.now()`: a wall clock set back holds none back). */
  #lastAt = -Infinity;
  #encoder = new TextEncoder();
  #closed = false;

  /** @param stale whether the last update held reused answers (another one follows) */
  constructor(build: () => string, stale: () => boolean) {
    this.#build = build;
    this.#stale = stale;
  }

  /** Something changed: push soon (throttled). */
  changed(): void {
    if (this.#clients.size === 0 || this.#timer !== undefined) return;
    const wait = Math.max(0, this.#lastAt + PUSH_EVERY_MS - performance.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#send();
    }, wait);
  }

  /**
   * A new page listens. Its stream ends when the page goes (the body is
   * cancelled) or the server stops; with {@linkcode MAX_STREAMS} open, or
   * once stopping, the page is told to come back later (503, `Retry-After`).
   */
  stream(): Response {
    if (this.#closed || this.#clients.size >= MAX_STREAMS) {
      const why = this.#closed ? "the daemon is stopping" : "too many live pages are open";
      return new Response(`${why}; try again later\n`, {
        status: 503,
        headers: {
          "content-type": "text/plain; charset=utf-8",
          "retry-after": String(RETRY_AFTER_S),
          ...SECURITY_HEADERS,
        },
      });
    }
    let controller: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.#clients.add(c);
        c.enqueue(this.#encoder.encode(`retry: 2000\nevent: status\ndata: ${this.#build()}\n\n`));
        this.#heartbeat ??= setInterval(() => this.#send(), HEARTBEAT_MS);
      },
      cancel: () => this.#drop(controller),
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        ...SECURITY_HEADERS,
      },
    });
  }

  /** End every stream and timer; pages that come later are turned away. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    for (const c of this.#clients) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    this.#clients.clear();
  }

  #send(): void {
    if (this.#clients.size === 0) return;
    this.#lastAt = performance.now();
    const chunk = this.#encoder.encode(`event: status\ndata: ${this.#build()}\n\n`);
    for (const c of [...this.#clients]) {
      try {
        // A page that stopped reading is dropped instead of piling up updates (it reconnects).
        if ((c.desiredSize ?? 0) < -MAX_UNREAD) {
          this.#drop(c);
          c.close();
          continue;
        }
        c.enqueue(chunk);
      } catch {
        this.#drop(c);
      }
    }
    // Totals reused during a burst are brought up to date by a later update.
    if (this.#stale()) this.changed();
  }

  #drop(c: ReadableStreamDefaultController<Uint8Array>): void {
    this.#clients.delete(c);
    if (this.#clients.size === 0) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    }
  }
}
