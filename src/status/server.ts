/**
 * The status server: the page, the JSON API, Server-Sent Events and
 * `/metrics` on `status_listen`. Safe by default: loopback only unless a
 * token is set; with a token every request must carry it (compared in
 * constant time); actions are POST only and refused from another origin; a
 * loopback server answers only to its own host names (no DNS rebinding).
 * The connections themselves (deadlines, sizes, how many) are held by
 * `http_server.ts`; the live updates (`/api/events`) by `pusher.ts`.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { logger } from "../log/logging.ts";
import { logLinesLostTotal, onLogFileLoss } from "../log/file_sink.ts";
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
import { Pusher } from "./pusher.ts";

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
  // Lines the log file cannot take: the page says so as they are lost, and once it is written.
  const stopTellingLoss = onLogFileLoss(() => push.changed());
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
    stopTellingLoss();
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
      stopTellingLoss();
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
        // `?probe`: whether a stream would be served now (204), else the refusal it would get.
        if (url.searchParams.has("probe")) {
          return push.refusal() ?? new Response(null, { status: 204, headers: SECURITY_HEADERS });
        }
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
            logLinesLostTotal(),
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
