/**
 * The few named errors a caller acts on, and the program's exit codes.
 * Everything else is a plain `Error` and ends the program with exit code 1.
 *
 * @module
 */

/** Every exit code of the program, in one place (README: "Exit codes"). */
export const ExitCode = {
  /** Success. */
  ok: 0,
  /**
   * A runtime failure: a file could not be delivered (`run --once`), the destination could not be
   * asked (`run --dry-run`), or anything unexpected.
   */
  failure: 1,
  /** The command line is wrong (unknown command or option). */
  usage: 2,
  /** The config file is wrong, unreadable, or writable by others. */
  config: 2,
  /** Another daemon already runs with the same `state_dir`. */
  alreadyRunning: 3,
  /** A watch folder does not exist (`run --once`, `run --dry-run`) or is not a folder. */
  watchFolderMissing: 4,
} as const;

/** A configuration file or value is wrong; the CLI exits with code 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** The config file the error is about, when known. */
  readonly file?: string;
  /** 1-based line in {@linkcode ConfigError.file}, when known. */
  readonly line?: number;

  constructor(message: string, options: { file?: string; line?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.file = options.file;
    this.line = options.line;
  }
}

/** The command line is wrong (unknown option, bad argument); exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Another daemon holds the lock of the state folder; exit code 3. */
export class DaemonRunningError extends Error {
  override name = "DaemonRunningError";
}

/** A watch folder is missing (where it cannot be waited for) or is not a folder; exit code 4. */
export class WatchFolderError extends Error {
  override name = "WatchFolderError";
}

/**
 * A command did its work and its outcome is a failure to report (files that were not all sent,
 * doctor's FAIL lines): exit code 1, said by its message alone, with no stack even with -v.
 */
export class OutcomeError extends Error {
  override name = "OutcomeError";
}

/** The exit code for an error that ended a command. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return ExitCode.usage;
  if (error instanceof ConfigError) return ExitCode.config;
  if (error instanceof DaemonRunningError) return ExitCode.alreadyRunning;
  if (error instanceof WatchFolderError) return ExitCode.watchFolderMissing;
  return ExitCode.failure;
}

/** Everything known about one finished or failed child process run. */
export interface CommandRun {
  /** Program and arguments exactly as spawned. */
  argv: string[];
  /** Exit code, or `null` when the process was killed by a signal. */
  code: number | null;
  /** Signal that ended the process, if any. */
  signal: string | null;
  /** Whether the run was killed because it exceeded its timeout. */
  timedOut: boolean;
  /** Captured standard error (trimmed, possibly truncated). */
  stderr: string;
  /** Captured standard output as text (trimmed, possibly truncated), on failures. */
  stdout?: string;
  /** Wall time in milliseconds. */
  durationMs: number;
}

/**
 * A spawned command failed (see `process/run.ts`): carries the whole run, and
 * the system's error as `cause` when the program could not be started.
 */
export class CommandError extends Error {
  override name = "CommandError";
  readonly run: CommandRun;

  constructor(message: string, run: CommandRun, options: { cause?: unknown } = {}) {
    super(message, options);
    this.run = run;
  }
}

/**
 * How a failed transfer should be treated:
 * - `retry`: transient (timeout, network, busy, source changed); retry with backoff.
 * - `retry-later`: needs a human but may heal (remote permission denied, disk full);
 *   retry with backoff and log loudly.
 * - `fatal`: retrying cannot help (authentication, host key, bad local path);
 *   the file is marked failed at once and tried again only at the next start-up or rescan.
 */
export const TRANSFER_ERROR_KINDS = ["retry", "retry-later", "fatal"] as const;

/** One of {@linkcode TRANSFER_ERROR_KINDS}. */
export type TransferErrorKind = typeof TRANSFER_ERROR_KINDS[number];

/** One file could not be delivered. */
export class TransferError extends Error {
  override name = "TransferError";
  readonly kind: TransferErrorKind;

  constructor(message: string, kind: TransferErrorKind, options: { cause?: unknown } = {}) {
    super(message, options);
    this.kind = kind;
  }

  /** Whether another attempt may succeed without anyone changing anything. */
  get retryable(): boolean {
    return this.kind !== "fatal";
  }
}

/**
 * A file refused before it was sent: the destination has no room for it (`min_free_space`, or a
 * full destination's room measured). Nothing was tried, so it is no failed attempt.
 */
export class RefusedUnsent extends TransferError {
  override name = "RefusedUnsent";
}

/**
 * Why a path the runtime guards (under `/dev`, `/proc` or `/sys`, where it
 * opens nothing without every permission) cannot be used, said without the
 * runtime's advice to run with `--allow-all`, which this program never
 * takes; `null` for any other error.
 */
export function guardedPathReason(error: unknown): string | null {
  const message = error instanceof Error ? error.message : String(error);
  const path = /Requires all access to "([^"]*)"/.exec(message)?.[1];
  if (path === undefined) return null;
  const where = /^\/(dev|proc|sys)\/?$/.test(path) ? "is one of" : "is under";
  return `${path} ${where} /dev, /proc or /sys (or reached through a link to there), where ` +
    "image-transfer cannot open files: the runtime it is built on guards devices and kernel " +
    "files there; choose a folder elsewhere";
}

/**
 * The system's error described by `cause` (from another thread): one of the
 * runtime's error classes when its name is one (`NotFound`, ...), with the
 * system's `code` when known.
 */
export function systemError(cause: { name: string; message: string; code?: string }): Error {
  const known = (Deno.errors as unknown as Record<string, ErrorConstructor | undefined>)[
    cause.name
  ];
  const error = known ? new known(cause.message) : new Error(cause.message);
  error.name = cause.name;
  if (cause.code !== undefined) Object.assign(error, { code: cause.code });
  return error;
}

/**
 * The last non-empty line of `text`, trimmed, for context in messages (what a program said last);
 * with `cap`, at most its first `cap` characters. Empty where `text` has none.
 */
export function lastLine(text: string, { cap }: { cap?: number } = {}): string {
  const line = text.split("\n").map((each) => each.trim()).filter((each) => each !== "").at(-1);
  return cap === undefined ? line ?? "" : (line ?? "").slice(0, cap);
}

/**
 * An error and its `cause` chain, one entry each (a message of several lines stays one entry):
 * the first as it is, the causes as `caused by: ...`.
 */
export function errorChain(error: unknown): string[] {
  const entries: string[] = [];
  let current: unknown = error;
  let depth = 0;
  while (current !== undefined && current !== null && depth < 10) {
    if (current instanceof Error) {
      entries.push(`${depth === 0 ? "" : "caused by: "}${current.message}`);
      current = current.cause;
    } else {
      entries.push(`${depth === 0 ? "" : "caused by: "}${String(current)}`);
      current = undefined;
    }
    depth++;
  }
  return entries;
}

/** Render an error and its `cause` chain, one line each, for `--verbose` output. */
export function describeErrorChain(error: unknown): string {
  return errorChain(error).join("\n");
}

/**
 * Whether `error` says the destination has no space (or the quota is used
 * up), as the transports word it: `transfer/classify.ts` for scp and rsync
 * ("...disk on freya is full (no space left on device)...", "...quota on freya is used up
 * (quota exceeded)...") and the local transport
 * ("destination is full (No space left on device...)"), or no room beyond
 * `min_free_space` (`pipeline/space_guard.ts`: "...but min_free_space keeps...").
 */
export function isDestinationFull(error: TransferError): boolean {
  return error.kind === "retry-later" &&
    /no space left|quota exceeded|disk quota|destination is full|min_free_space keeps/i.test(
      error.message,
    );
}

/**
 * Whether `error` says the file can never arrive as it is: larger than the whole file system
 * there (`pipeline/space_guard.ts`), or a name or path that file system never takes
 * (`transfer/too_long.ts`). It is failed, and tried again only at a rescan, a start-up or a
 * Retry, not every `retry_max_delay_seconds`.
 */
export function neverArrives(error: TransferError): boolean {
  return error.kind === "fatal" &&
    /larger than the whole file system|too long for the destination's file system/.test(
      error.message,
    );
}

/**
 * Whether `error` says the destination's host or the connection to it failed
 * (not one file): no connection, refused login, a login shell that prints
 * text or an account that runs no commands, an unknown or changed host key, a host name that does not resolve, an untrusted TLS certificate, an
 * FTP server that stops answering; as `transfer/classify.ts`, `transfer/ftp/connect.ts` and
 * `transfer/ftp/no_answer.ts` word it.
 */
export function isConnectionFailure(error: TransferError): boolean {
  return /the connection to \S+ failed|authentication was refused|the login shell of \S+ prints text|but the account runs no commands|the host key of|cannot resolve the host name|refused the login|refused TLS|TLS certificate is not (?:trusted|made for)|connection lost or refused|FTP server \S+: connect: |FTP server \S+ does not answer: /i
    .test(error.message);
}

/**
 * What a failed attempt says about the job: `connection` (see
 * {@linkcode isConnectionFailure}), `destination` (the destination folder is
 * gone, or a symbolic link to nothing, or the login may not write into it or make it, no folder
 * can be made there, as
 * `transfer/classify.ts` words them, does not answer, as
 * `transfer/local/local.ts` does, or is on a file system mounted read-only:
 * every file fails alike), or `file` (this file's own problem: a folder below
 * the destination folder it may not write into, a name refused).
 */
export function failureScope(error: TransferError): "file" | "connection" | "destination" {
  if (isConnectionFailure(error)) return "connection";
  return /the destination folder .* is gone \(a share that is not mounted\?\)|the destination folder .* is a symbolic link to .*, which does not exist, and no folder is made through it|may not write into the destination folder |may not make the destination folder |: the destination .* did not answer for |read-only file system/i
      .test(error.message)
    ? "destination"
    : "file";
}

/** What `transfer/classify.ts` says of a destination folder the login may not write into. */
const BASE_REFUSED =
  /may not write into the destination folder (.*) \(([^)]*)\), where every file's folder is made: /;

/**
 * `error` said as one file's failure where it says the login may not write into the destination
 * folder (see `BaseRefusals` in `pipeline/attempt_outcome.ts`): this file's folder cannot be made
 * (a file of another night, or one tried again). With `arrived`, files went into the folders there
 * (a night folder made before), and it says so; without, no file arrived since the start, so it
 * says only that no new folder can be made there. `null`: `error` says something else.
 */
export function ownFolderRefused(error: TransferError, arrived = true): TransferError | null {
  if (!BASE_REFUSED.test(error.message)) return null;
  const why = arrived ? "files whose folder is there arrive" : "no new folder can be made there";
  const message = error.message.replace(
    BASE_REFUSED,
    `may not make this file's folder in the destination folder $1 ($2; ${why}): make its folder ` +
      "there, or ",
  );
  return new TransferError(message, "retry", { cause: error });
}

/**
 * Whether `error` (an error, its causes, or a program's words) says this machine ran out of file
 * descriptors: EMFILE (the process's open-file limit) or ENFILE (the system's), "Too many open
 * files" (os error 24 or 23). A shortage that passes, never a file's or a folder's fault.
 */
export function isDescriptorShortage(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && depth < 10; depth++) {
    const code = (current as { code?: unknown } | null)?.code;
    if (code === "EMFILE" || code === "ENFILE") return true;
    const words = current instanceof Error ? current.message : String(current);
    if (DESCRIPTOR_SHORTAGE_WORDS.test(words)) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}

/** The system's words for a descriptor shortage, as the runtime, node:fs and the tools say them. */
const DESCRIPTOR_SHORTAGE_WORDS = /too many open files|\bE[MN]FILE\b|\(os error 2[34]\)/i;

/**
 * What to do about a descriptor shortage (see {@linkcode isDescriptorShortage}), after its words:
 * the limit to raise, where; the work is tried again.
 */
export const DESCRIPTOR_SHORTAGE_ADVICE = "this machine ran out of open files (the daemon's " +
  "open-file limit, or the system's), not a problem of the file: raise the limit to 4096 or " +
  "more (ulimit -n before starting it, LimitNOFILE= in its systemd service, NumberOfFiles in " +
  "its launchd job); it is tried again";
