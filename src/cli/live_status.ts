/**
 * The live part of `status`: when the daemon runs with its status server,
 * what each job is doing now, read from `/api/status`. Without an answer
 * `status` shows what the ledger knows, as before.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import type { JobSnapshot } from "../status/job_status.ts";
import { listenSettings } from "../status/listen.ts";
import { escapeControlChars } from "../log/logging.ts";

/** The part of `/api/status` that `status` prints. */
export interface LiveStatus {
  url: string;
  jobs: JobSnapshot[];
  uptimeSeconds: number;
  lastSuccessAt: number | null;
}

/** How long `status` waits for the daemon's answer. */
const ASK_TIMEOUT_MS = 2000;

/**
 * Ask the running daemon's status server. An answer from another process
 * (another daemon holding the same `status_listen`) is not taken.
 *
 * @param pid the daemon's pid (from its PID file), when known
 * @returns the live status, or a reason why there is none
 */
export async function askDaemon(
  config: Config,
  pid?: number,
): Promise<LiveStatus | { unavailable: string }> {
  let settings;
  try {
    settings = await listenSettings(config);
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
  if (!settings) return { unavailable: "status_listen is off" };
  // A server on every interface answers on loopback too.
  const host = ["0.0.0.0", "::", ""].includes(settings.hostname)
    ? "127.0.0.1"
    : settings.hostname.includes(":")
    ? `[${settings.hostname}]`
    : settings.hostname;
  const url = `http://${host}:${settings.port}/`;
  try {
    const response = await fetch(`${url}api/status`, {
      headers: settings.token ? { authorization: `Bearer ${settings.token}` } : {},
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return { unavailable: `${url} answered ${response.status}` };
    }
    const body = await response.json() as Omit<LiveStatus, "url"> & { pid?: number };
    if (pid !== undefined && body.pid !== pid) {
      return {
        unavailable: `${url} is answered by another process (pid ${body.pid ?? "?"}), ` +
          `not by this daemon (pid ${pid}): give each config its own status_listen`,
      };
    }
    return {
      url,
      jobs: body.jobs,
      uptimeSeconds: body.uptimeSeconds,
      lastSuccessAt: body.lastSuccessAt,
    };
  } catch (error) {
    return {
      unavailable: `${url} did not answer: ${error instanceof Error ? error.message : error}`,
    };
  }
}

/** Text lines for the live status. */
export function formatLive(live: LiveStatus): string[] {
  const when = (ms: number) => new Date(ms).toLocaleString("sv-SE");
  const lines = [`Live (${live.url}):`];
  for (const job of live.jobs) {
    const q = job.queue;
    const reason = job.reason ? `: ${escapeControlChars(job.reason)}` : "";
    lines.push(
      `  Job ${job.job}: ${job.state} since ${when(job.since)}${reason}; ` +
        `pending ${q.observing + q.planning + q.queued}, sending ${q.sending}, ` +
        `waiting to retry ${q.waiting}; sent ${job.sent}, failed ${job.failed} in this run`,
    );
    if (job.watch) lines.push(`    Watched with ${job.watch.summary}`);
    if (job.watch?.unavailable) {
      lines.push(`    Watch folder cannot be read: ${escapeControlChars(job.watch.unavailable)}`);
    }
  }
  return lines;
}
