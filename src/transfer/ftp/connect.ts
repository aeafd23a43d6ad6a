/**
 * Opening one FTP or FTPS control connection for a job (`basic-ftp`), and
 * turning what goes wrong into a {@linkcode TransferError} a person can act on.
 *
 * Explicit TLS (`AUTH TLS`, then `PBSZ 0`/`PROT P` so data is encrypted too)
 * unless `ftp_tls: off`; passive mode always. The password comes from
 * `ftp_password_file` or `ftp_password_env` at each login and never appears
 * in a message.
 *
 * @module
 */
import { readFileSync, statSync } from "node:fs";
import type { Client } from "basic-ftp";
import type { JobConfig } from "../../config/types.ts";
import { TransferError } from "../../errors.ts";
import { missingSecretFile } from "../../config/file_mode.ts";
import { posixWord } from "../../shell_words.ts";
import { refuseNonFtpGreeting } from "./greeting.ts";
import { boundHandshake, boundWaits, type FtpWaits, ftpWaits, silenceOf } from "./no_answer.ts";

/** The control port when `ftp_port` is empty. */
export const FTP_DEFAULT_PORT = 21;

/** What to do when the server insists on TLS session reuse for data connections. */
export const SESSION_REUSE_FIX =
  "if the server is vsftpd, set require_ssl_reuse=NO there (TLS session reuse on data connections is not available)";

/** Codes Node's TLS layer gives a server certificate it cannot trust. */
const CERT_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Network failures another attempt may get past. */
const DROP_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
]);

/**
 * The job an FTP transport works for; `fromTo`: a run's without a config file, whose messages name
 * the options that give a key (`--to`, `--ftp-password-*`, `--set`), not the key.
 */
export type FtpJob = JobConfig & { readonly fromTo?: boolean };

/** The steps of a login (a `421` there: the server takes no more connections now). */
const CONNECT_STEPS = new Set(["connect", "tls", "login", "setup"]);

/** `user@host:port` of a job's FTP server, for messages. */
export function ftpServerName(job: JobConfig): string {
  return `${ftpUser(job)}@${job.remote_host}:${job.ftp_port ?? FTP_DEFAULT_PORT}`;
}

/** The login name: `remote_user`, or `anonymous` when empty. */
export function ftpUser(job: JobConfig): string {
  return job.remote_user === "" ? "anonymous" : job.remote_user;
}

/**
 * The password for a job's login, read now (a changed file is picked up at
 * the next login).
 *
 * @throws {TransferError} `fatal` when the file or variable is missing
 */
export function ftpPassword(job: FtpJob): string {
  const [env, file] = job.fromTo
    ? ["--ftp-password-env", "--ftp-password-file"]
    : ["ftp_password_env", "ftp_password_file"];
  if (job.ftp_password_env !== null) {
    const value = Deno.env.get(job.ftp_password_env);
    if (value === undefined) {
      throw new TransferError(
        `FTP password: environment variable ${job.ftp_password_env} (${env}) is not set`,
        "fatal",
      );
    }
    return value;
  }
  if (job.ftp_password_file !== null) {
    const path = job.ftp_password_file;
    try {
      const info = statSync(path);
      if (info.isDirectory()) {
        throw new TransferError(
          `FTP password: ${file} ${path} is a folder, not a file; give the file holding the password`,
          "fatal",
        );
      }
      const mode = info.mode & 0o777;
      if (Deno.build.os !== "windows" && (mode & 0o077) !== 0) {
        throw new TransferError(
          `FTP password: ${file} ${path} can be read or written by others (mode ${
            mode.toString(8).padStart(4, "0")
          }); run: chmod 600 ${posixWord(path)}`,
          "fatal",
        );
      }
      return readWithoutBom(path).split(/\r?\n/)[0];
    } catch (error) {
      if (error instanceof TransferError) throw error;
      if ((error as { code?: unknown }).code === "ENOENT") {
        throw new TransferError(
          `FTP password: ${file}: ${missingSecretFile("the password")}`,
          "fatal",
        );
      }
      const reason = error instanceof Error ? error.message : String(error);
      throw new TransferError(
        `FTP password: cannot read ${file} ${path}: ${reason}`,
        "fatal",
      );
    }
  }
  return "anonymous@";
}

/** The steps of {@linkcode connectFtp}, in order. */
export type FtpStep = "connect" | "tls" | "login" | "setup";

/** What a connection learnt about its server after login. */
export interface FtpFeatures {
  /** `HASH` with SHA-256 (draft-bryan-ftpext-hash). */
  hash: boolean;
  /** `XSHA256`. */
  xsha256: boolean;
  /** `MFMT` (set a file's modification time). */
  mfmt: boolean;
  /** `MDTM` (some servers, vsftpd among them, also set the time with `MDTM <time> <path>`). */
  mdtm: boolean;
}

/** Whether `error` is the FTP library's error for a server's reply (`code`: the reply's). */
export function isFtpError(error: unknown): error is Error & { code: number } {
  return error instanceof Error && error.name === "FTPError" &&
    typeof (error as { code?: unknown }).code === "number";
}

/** A logged-in connection. */
export interface FtpConnection {
  client: Client;
  features: FtpFeatures;
  /** The login folder, for relative `remote_base_path`s. */
  home: string;
}

/**
 * Connect, secure (unless `ftp_tls: off`), log in and read the server's features; the connection
 * is held to `waits` (see `no_answer.ts`).
 *
 * @throws {TransferError} classified: a refused login, TLS refused or an
 *   untrusted certificate are `fatal`; connection problems `retry`
 */
export async function connectFtp(
  job: FtpJob,
  onStep: (step: FtpStep, detail: string) => void = () => {},
  waits: FtpWaits = ftpWaits(job),
): Promise<FtpConnection> {
  // Loaded by the first FTP connection: a daemon without ftp jobs never holds the library.
  const { Client } = await import("basic-ftp");
  const client = new Client(waits.transferMs);
  boundWaits(client, ftpServerName(job), waits);
  let step: FtpStep = "connect";
  try {
    const host = job.remote_host;
    const connecting = client.connect(host, job.ftp_port ?? FTP_DEFAULT_PORT);
    const port = job.ftp_port ?? FTP_DEFAULT_PORT;
    refuseNonFtpGreeting(client, ftpServerName(job), port, waits.replyMs, job.fromTo);
    const welcome = await connecting;
    onStep(step, `${host}:${job.ftp_port ?? FTP_DEFAULT_PORT} (${welcome.message.trim()})`);
    if (job.ftp_tls === "required") {
      step = "tls";
      const ca = job.ftp_ca_file === null ? undefined : readCa(job.ftp_ca_file);
      const tls = { host, servername: isIp(host) ? undefined : host, ca };
      await boundHandshake(client, client.useTLS(tls));
      onStep(step, "AUTH TLS accepted, certificate trusted");
    }
    step = "login";
    await client.sendIgnoringError("OPTS UTF8 ON");
    await client.login(ftpUser(job), ftpPassword(job));
    onStep(step, `logged in as ${ftpUser(job)}`);
    step = "setup";
    await client.useDefaultSettings();
    const feat = await client.features();
    const hashAlgorithms = feat.get("HASH") ?? "";
    const features = {
      hash: /SHA-256/i.test(hashAlgorithms),
      xsha256: feat.has("XSHA256"),
      mfmt: feat.has("MFMT"),
      mdtm: feat.has("MDTM"),
    };
    return { client, features, home: await client.pwd() };
  } catch (error) {
    client.close();
    throw silenceOf(client) ?? classifyFtpError(error, job, step);
  }
}

/**
 * The text of `file` without the byte order mark Windows Notepad puts first: it would be taken as
 * the password's first character, and a CA file starting with it holds no certificate for TLS.
 */
function readWithoutBom(file: string): string {
  return readFileSync(file, "utf8").replace(/^\uFEFF/, "");
}

/** The PEM certificates of `ftp_ca_file` `file`. @throws {TransferError} `fatal` when it holds none */
function readCa(file: string): string {
  let text: string;
  try {
    if (statSync(file).isDirectory()) {
      throw new TransferError(
        `ftp_ca_file ${file} is a folder, not a file; give the file holding the certificate`,
        "fatal",
      );
    }
    text = readWithoutBom(file);
  } catch (error) {
    if (error instanceof TransferError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new TransferError(`cannot read ftp_ca_file ${file}: ${reason}`, "fatal");
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new TransferError(
      `ftp_ca_file ${file} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line); ` +
        "give the certificate of the server's authority (or its own) in PEM form",
      "fatal",
    );
  }
  return text;
}

function isIp(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}

/**
 * Classify an error of `step` (`connect`, `tls`, `login`, `setup`, or an
 * operation such as `upload`) on `job`'s server. `closedIsLost`: a connection the server closed
 * without a word (a server stopped) is lost, as a reset one is.
 */
export function classifyFtpError(
  error: unknown,
  job: FtpJob,
  step: string,
  closedIsLost = false,
): TransferError {
  if (error instanceof TransferError) return error;
  const server = ftpServerName(job);
  const reason = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && (CERT_CODES.has(code) || /certificate/i.test(reason))) {
    return certificateError(job, error, code === "ERR_TLS_CERT_ALTNAME_INVALID");
  }
  if (/session reuse/i.test(reason)) {
    return new TransferError(
      `FTP server ${server}: ${step} refused (${reason}); ${SESSION_REUSE_FIX}`,
      "retry-later",
      { cause: error },
    );
  }
  if (isFtpError(error)) {
    const ftpCode = error.code;
    if (ftpCode === 421 && CONNECT_STEPS.has(step)) {
      // Takes no one from here now (a limit of logins per client or in all): the whole destination.
      return new TransferError(
        `FTP server ${server}: connect: it takes no more connections from this machine now (${reason})`,
        "retry",
        { cause: error },
      );
    }
    if (step === "tls") {
      return new TransferError(
        `FTP server ${server} refused TLS (AUTH TLS: ${reason}); it may offer plain FTP only, where password and data travel readable: ${
          job.fromTo ? "give --to an ftp:// address" : "set ftp_tls: off"
        } only on a trusted network`,
        "fatal",
        { cause: error },
      );
    }
    if ((step === "login" || ftpCode === 530) && /encrypt|TLS|SSL|secure/i.test(reason)) {
      return new TransferError(
        `FTP server ${server} refused the login without encryption (${reason}); the server wants FTPS: ${
          job.fromTo ? "give --to an ftps:// address" : "set ftp_tls: required"
        }`,
        "fatal",
        { cause: error },
      );
    }
    if (step === "login" || ftpCode === 530) {
      return new TransferError(
        `FTP server ${server} refused the login (${reason}); check ${
          job.fromTo
            ? "the user in --to and the password (--ftp-password-file or --ftp-password-env)"
            : "remote_user and the password (ftp_password_file or ftp_password_env)"
        }`,
        "fatal",
        { cause: error },
      );
    }
    if (ftpCode === 452 || ftpCode === 552) {
      const full = `FTP server ${server}: destination is full (${reason})`;
      return new TransferError(full, "retry-later", { cause: error });
    }
    if (ftpCode === 451 && step === "upload" && /writ/i.test(reason)) {
      // vsftpd's answer to a full disk (it says no more): held like one, and probed.
      return new TransferError(
        `FTP server ${server}: destination is full or cannot be written (${reason})`,
        "retry-later",
        { cause: error },
      );
    }
    if (ftpCode === 500 && /too long/i.test(reason)) return commandTooLong(reason);
    if (ftpCode >= 500) {
      return new TransferError(`FTP server ${server}: ${step} refused (${reason})`, "retry-later", {
        cause: error,
      });
    }
    return new TransferError(`FTP server ${server}: ${step} failed (${reason})`, "retry", {
      cause: error,
    });
  }
  if (/certificate|self[- ]signed|UnknownIssuer|NotValidForName/i.test(reason)) {
    return certificateError(job, error, false);
  }
  const why = code === "ENOTFOUND"
    ? `cannot resolve the host name ${job.remote_host}: check ${
      job.fromTo ? "the host in --to" : "remote_host"
    } and DNS (${reason})`
    : (typeof code === "string" && DROP_CODES.has(code)) || closedIsLost
    ? `connection lost or refused (${reason})`
    : reason;
  return new TransferError(`FTP server ${server}: ${step}: ${why}`, "retry", { cause: error });
}

/**
 * The error of a file whose path at the destination is longer than the server takes in one
 * command (vsftpd: `500 Input line too long.`): it never goes as it is, so it is not tried again.
 */
export function commandTooLong(reason: string, path?: string): TransferError {
  const length = path === undefined ? "" : ` (${path.length} characters there)`;
  return new TransferError(
    `the FTP server refuses a command this long (${reason.trim()}): the path at the ` +
      `destination is too long${length}; shorten the folder or file names`,
    "fatal",
  );
}

/**
 * A server certificate TLS refused, as a fatal error: one made for other names than `remote_host`
 * (`wrongName`, or the runtime's words for it) says so, as `ftp_ca_file` cannot help there.
 */
function certificateError(job: FtpJob, error: unknown, wrongName: boolean): TransferError {
  const reason = error instanceof Error ? error.message : String(error);
  const host = job.remote_host;
  const message = wrongName || /altnames|NotValidForName/i.test(reason)
    ? `its TLS certificate is not made for ${host} (${reason}); ${
      job.fromTo ? "give --to" : "set remote_host to"
    } a name the certificate holds, or give the server a certificate for ${host}`
    : `its TLS certificate is not trusted (${reason}); give the certificate of its authority ` +
      `(or its own) ${job.fromTo ? "with --set ftp_ca_file=FILE" : "in ftp_ca_file"}`;
  return new TransferError(`FTP server ${ftpServerName(job)}: ${message}`, "fatal", {
    cause: error,
  });
}
