/**
 * What `status` asks a running daemon: its status page's `/api/status`
 * (only the daemon's own page is trusted with the token), and the lines
 * `status` prints of it.
 *
 * @module
 */
import type { Config } from "../config/types.ts";
import { quoteIfUnsafe } from "../log/logging.ts";
import type { JobSnapshot } from "../status/job_status.ts";
import { listenSettings, statusUrl } from "../status/listen.ts";

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
 * (another daemon holding the same `status_listen`) is not taken, and the
 * token is sent only where the daemon says its page listens, and only where that is the
 * config's `status_listen` (what the daemon says is read from a file of the state folder).
 *
 * @param pid the daemon's pid (from its PID file), when known
 * @param listening `HOST:PORT` the daemon says its page listens on (a reload
 *   that changed `status_listen` does not move it), when known
 * @returns the live status, or a reason why there is none
 */
export async function askDaemon(
  config: Config,
  pid?: number,
  listening?: string,
): Promise<LiveStatus | { unavailable: string }> {
  let settings;
  try {
    settings = await listenSettings(config);
  } catch (error) {
    return { unavailable: error instanceof Error ? error.message : String(error) };
  }
  if (!settings) return { unavailable: "status_listen is off" };
  if (listening === undefined && settings.token) {
    // Whatever holds the address may be another program: the token goes to the daemon's page only.
    return {
      unavailable: `the daemon has not said that its status page listens (see its log), so the ` +
        `token is not sent to whatever answers at ${settings.hostname}:${settings.port}`,
    };
  }
  if (listening !== undefined) {
    const colon = listening.lastIndexOf(":");
    const said = { hostname: listening.slice(0, colon), port: Number(listening.slice(colon + 1)) };
    // The state folder's daemon.json says it: the token goes only where the config says too.
    if (settings.token && (said.hostname !== settings.hostname || said.port !== settings.port)) {
      return {
        unavailable: `the daemon says its status page listens at ${quoteIfUnsafe(listening)}, ` +
          `not at status_listen ${config.status_listen} of the config (a reload does not move ` +
          "the page), so the token is not sent there; restart the daemon to serve the page " +
          "at status_listen",
      };
    }
    settings = { ...settings, ...said };
  }
  // A server on every interface answers on loopback too.
  const host = ["0.0.0.0", "::", ""].includes(settings.hostname)
    ? "127.0.0.1"
    : settings.hostname.includes(":")
    ? `[${settings.hostname}]`
    : settings.hostname;
  const url = statusUrl(settings, host);
  // Over HTTPS the daemon's own certificate is trusted (it may be self-signed).
  using client = settings.tls ? Deno.createHttpClient({ caCerts: [settings.tls.cert] }) : undefined;
  try {
    const response = await fetch(`${url}api/status`, {
      headers: settings.token ? { authorization: `Bearer ${settings.token}` } : {},
      signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
      ...(client ? { client } : {}),
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
    const reason = job.reason ? `: ${quoteIfUnsafe(job.reason)}` : "";
    lines.push(
      `  Job ${job.job}: ${job.state} since ${when(job.since)}${reason}; ` +
        `pending ${q.observing + q.planning + q.queued}` +
        (q.observing > 0 ? ` (${q.observing} not complete yet${cannotLook(job.unreadable)})` : "") +
        `, sending ${sendingWords(q.sending, job.transfers)}, ` +
        `waiting to retry ${q.waiting}; sent ${job.sent}, failed ${job.failed} in this run`,
    );
    if (q.unrecorded) {
      lines.push(
        `    ${q.unrecorded} file(s) wait for the ledger to record them (found complete, or ` +
          `arrived at the destination): recorded once it can be written`,
      );
    }
    if (job.watch) lines.push(`    Watched with ${job.watch.summary}`);
    if (job.watch?.unavailable) {
      lines.push(`    Watch folder cannot be read: ${quoteIfUnsafe(job.watch.unavailable)}`);
    }
    // As the status page and /metrics count them.
    if (job.cannotSend > 0) {
      lines.push(
        `    ${job.cannotSend} file(s) or folder(s) found since the daemon started could not be ` +
          `sent (a name that is not UTF-8, a name with a line break over FTP, a folder that cannot ` +
          `be read): those still there are the skipped entries marked NEEDS ATTENTION`,
      );
    }
    if (job.hookFailures > 0) {
      lines.push(
        `    ${job.hookFailures} hook run(s) failed, timed out or could not start since the ` +
          `daemon started: the log says why`,
      );
    }
    if (job.scheduleFailures > 0) {
      lines.push(
        `    ${job.scheduleFailures} scheduled action(s) (command, report, rescan) failed or ` +
          `could not run since the daemon started: the log says why`,
      );
    }
    if (job.cleanupFailures > 0) {
      lines.push(
        `    ${job.cleanupFailures} source(s) after_transfer could not delete or move into the ` +
          `archive since the daemon started: they stay in the watch folder; the log says why`,
      );
    }
  }
  return lines;
}

/**
 * The files being sent and the transfers they go in (each transfer a batch of one or more files,
 * at most `max_concurrent_transfers` at once): `256 file(s) in 4 transfer(s)`; only the files
 * where the daemon does not say how many transfers (an older one).
 */
export function sendingWords(files: number, transfers: number | undefined): string {
  if (files === 0 || transfers === undefined) return String(files);
  return `${files} file(s) in ${transfers} transfer(s)`;
}

/** Of the files not complete yet, those that cannot be looked at now (`count`; none from an older daemon). */
function cannotLook(count: number | undefined): string {
  return count ? `, ${count} of them cannot be looked at now: the log says why` : "";
}
