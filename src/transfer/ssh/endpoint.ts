/**
 * Where an SSH destination is and how words reach it intact: the endpoint
 * taken from a job, remote paths under `remote_base_path`, and quoting for a
 * remote POSIX shell, rsync's `-e` and ssh's `%` tokens.
 *
 * @module
 */
import { posix } from "node:path";
import type { JobConfig } from "../../config/types.ts";
import { ConfigError } from "../../errors.ts";

/** How long an idle shared connection stays open, in seconds. */
const CONTROL_PERSIST_S = 180;

/** Where and how to connect, taken from a job. */
export interface SshEndpoint {
  /** Host name or `~/.ssh/config` alias. */
  host: string;
  /** Login name; `""` lets ssh decide (`~/.ssh/config` or the local user). */
  user: string;
  port: number | null;
  identityFile: string | null;
  /** `Key=Value` strings, each passed as `-o Key=Value`. */
  options: string[];
  compression: boolean;
  connectTimeoutS: number;
}

/**
 * The endpoint of an `scp`/`rsync` job.
 *
 * @throws {ConfigError} when the host or user could be mistaken for an option
 */
export function endpointFromJob(job: JobConfig): SshEndpoint {
  const host = job.remote_host.trim();
  const user = job.remote_user.trim();
  if (host === "" || host.startsWith("-") || /[\s@/\\'"`$;&|<>]/.test(host)) {
    throw new ConfigError(
      `Cannot use remote_host ${JSON.stringify(job.remote_host)}: expected a host name, ` +
        "address or ~/.ssh/config alias (the user goes in remote_user)",
    );
  }
  if (user.startsWith("-") || /[\s@/\\:'"`$;&|<>]/.test(user)) {
    throw new ConfigError(
      `Cannot use remote_user ${JSON.stringify(job.remote_user)}: expected a plain login name`,
    );
  }
  return {
    host,
    user,
    port: job.ssh_port,
    identityFile: job.ssh_identity_file,
    options: job.ssh_options,
    compression: job.compression,
    connectTimeoutS: Math.max(1, Math.min(30, Math.ceil(job.transfer_timeout_seconds))),
  };
}

/**
 * Quote `value` as one word of rsync's `-e` command, which rsync splits on
 * spaces itself: inside single quotes everything is literal and `''` is a quote.
 */
export function rsyncRshQuote(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Escape `%` for ssh options that expand `%` tokens (IdentityFile, ControlPath). */
export function escapePercent(value: string): string {
  return value.replaceAll("%", "%%");
}

/**
 * Join a remote base and a destination relative to it.
 *
 * @throws {Error} when `destination` is absolute or climbs out with `..`
 */
export function remoteJoin(base: string, destination: string): string {
  const parts = destination.split("/");
  if (destination.startsWith("/") || parts.some((part) => part === ".." || part === "")) {
    throw new Error(`Cannot place ${JSON.stringify(destination)}: not a plain relative path`);
  }
  return posix.join(base, destination);
}

/**
 * The `-o`/`-i` options shared by ssh and scp (and rsync's ssh): batch mode,
 * the job's `ssh_options`, timeouts, keep-alives, and connection sharing over
 * `controlPath` (none when `null`). The port is not included (`-p` for ssh,
 * `-P` for scp).
 */
export function sshOptionArgs(e: SshEndpoint, controlPath: string | null): string[] {
  // For ssh the first value given for an option wins: BatchMode cannot be
  // overridden, nor can a terminal be asked for (a `RequestTTY force` in the
  // user's ~/.ssh/config would give every session one, whose line discipline
  // changes the bytes: tar refuses to read an archive from it, rsync's stream
  // breaks); the job's ssh_options can override everything after them.
  const args = ["-o", "BatchMode=yes", "-o", "RequestTTY=no"];
  for (const option of e.options) args.push("-o", option);
  args.push(
    "-o",
    `ConnectTimeout=${e.connectTimeoutS}`,
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "ServerAliveCountMax=3",
  );
  if (e.identityFile) {
    args.push("-i", escapePercent(e.identityFile), "-o", "IdentitiesOnly=yes");
  }
  if (controlPath) {
    args.push(
      "-o",
      "ControlMaster=auto",
      "-o",
      `ControlPath=${escapePercent(controlPath)}`,
      "-o",
      `ControlPersist=${CONTROL_PERSIST_S}`,
    );
  }
  return args;
}
