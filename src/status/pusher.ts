/**
 * Server-Sent Events of the status server (`/api/events`): the status pushed
 * to every open page when something changed, throttled, with a heartbeat; at
 * most {@linkcode MAX_STREAMS} pages at once, the others told to come back
 * later (and why, which the page asks when its stream is refused).
 *
 * @module
 */
import { SECURITY_HEADERS } from "./api.ts";

/** Pushed updates are at most this often (a burst must not flood the browser). */
export const PUSH_EVERY_MS = 500;
/** An update is pushed at least this often (uptime, keep-alive). */
const HEARTBEAT_MS = 15_000;
/** Updates a page may leave unread before its stream is ended. */
const MAX_UNREAD = 20;
/** Most pages taking live updates at once; the others are told to come back later. */
export const MAX_STREAMS = 50;
/** Seconds a page turned away is told to wait before it tries again. */
export const RETRY_AFTER_S = 10;
/** Why a page is turned away with {@linkcode MAX_STREAMS} open: the first words of the answer. */
export const TOO_MANY_PAGES = "too many live pages are open";

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
    const refused = this.refusal();
    if (refused) return refused;
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

  /**
   * The answer a new page's stream would be turned away with now (503, `Retry-After`: with
   * {@linkcode MAX_STREAMS} open, or once stopping), or `null` when it would be served. The page
   * asks (`/api/events?probe`) when its stream is refused, as EventSource does not tell why.
   */
  refusal(): Response | null {
    if (!this.#closed && this.#clients.size < MAX_STREAMS) return null;
    const why = this.#closed ? "the daemon is stopping" : TOO_MANY_PAGES;
    return new Response(`${why}; try again later\n`, {
      status: 503,
      headers: {
        "content-type": "text/plain; charset=utf-8",
        "retry-after": String(RETRY_AFTER_S),
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
